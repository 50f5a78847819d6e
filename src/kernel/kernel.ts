// One booted system: the composition root of the kernel layer. It owns the simulated machine (PCI
// topology, memory, IOMMU units), the IOMMU core with its groups, the process table, the PCI driver core
// with the host drivers of the host file, and /dev. Subsystems that register device nodes (iommufd here;
// VFIO and mdev) hang off it. Nothing is global: two Kernels are two machines.

import { Machine } from '../hw/machine.ts';
import { PhysicalMemory } from '../hw/memory/physical-memory.ts';
import type { IommuUnit } from '../hw/iommu/unit.ts';
import { bootHost, type BootedHost } from '../pci/boot.ts';
import { computeGroups } from '../pci/groups/compute.ts';
import type { Algorithm } from '../pci/groups/types.ts';
import type { KernelOptions } from '../pci/kernel-options.ts';
import type { HostSpec, HostSpecInput } from '../pci/spec.ts';
import type { PciDev } from '../pci/dev.ts';
import { DriverCore } from './drivers/driver-core.ts';
import type { IopfOptions } from './iommu/io-pgfault.ts';
import { IommuCore } from './iommu/core.ts';
import { IommufdCtx, type IommufdParams } from './iommufd/context.ts';
import { FrameAllocator } from './mm/frame-allocator.ts';
import { IommufdSelftest } from './iommufd/selftest/selftest.ts';
import { ProcessTable } from './process/process-table.ts';
import { DevFs } from './vfs/devfs.ts';
import { VfioPciDriver, type VfioPciOptions } from './vfio/pci/vfio-pci-driver.ts';
import { registerVfioContainerNode } from './vfio/container.ts';
import { VfioCore, type VfioOptions } from './vfio/vfio.ts';
import { Sysfs } from './sysfs/sysfs.ts';
import { buildVfioMdevTree } from './sysfs/vfio-mdev-tree.ts';
import { MdevCore } from './mdev/mdev-core.ts';
import { ok } from './errno.ts';
import type { PasidAllocationPolicy } from './iommu/global-pasid.ts';
import { attachDeviceModels, type DeviceModelKind } from './device-models.ts';
import { ModelBarHandler } from './vfio/pci/model-bar.ts';

/** MISC_MAJOR: /dev/iommu and /dev/vfio/vfio are misc devices. */
export const MISC_MAJOR = 10;
/** VFIO_MINOR, fixed for /dev/vfio/vfio. */
export const VFIO_MINOR = 196;

export interface KernelBootOptions {
  /** The kernel command line (intel_iommu=on, iommu=pt, pcie_acs_override=...). */
  readonly cmdline?: string | KernelOptions;
  /** Bytes of simulated physical memory (sparse: only touched frames cost). Default 16 GiB. */
  readonly memSize?: number;
  readonly iopf?: IopfOptions;
  /** Group algorithm (default 'linux'). */
  readonly algorithm?: Algorithm;
  /** Attach the simulated NIC and accelerator models to the functions that have them (default true). */
  readonly deviceModels?: boolean;
  /** Per-device PASIDs (Linux, the default) or the 2021 system-wide allocator (an option; global-pasid.ts). */
  readonly pasidAllocation?: PasidAllocationPolicy;
  /** VFIO module parameters. */
  readonly vfio?: VfioOptions;
  /**
   * iommufd module parameters. allowUnsafeInterrupts defaults to vfio.allowUnsafeInterrupts, so one
   * switch covers both paths as VfioOptions documents.
   */
  readonly iommufd?: { readonly allowUnsafeInterrupts?: boolean };
  /** vfio-pci module parameters (ids=). */
  readonly vfioPci?: VfioPciOptions;
  /**
   * CONFIG_IOMMUFD_TEST (default off): the selftest's mock IOMMU driver and IOMMU_TEST_CMD on /dev/iommu
   * (kernel/iommufd/selftest). Off, IOMMU_TEST_CMD is ENOTTY as on a production kernel.
   */
  readonly iommufdTest?: boolean;
}

export class Kernel {
  readonly booted: BootedHost;
  readonly memory: PhysicalMemory;
  readonly machine: Machine<IommuUnit>;
  readonly core: IommuCore;
  /** Frames for processes (user memory, page cache). The IOMMU drivers' tables come from the upper half. */
  readonly frames: FrameAllocator;
  readonly processes: ProcessTable;
  readonly drivers: DriverCore;
  readonly devfs = new DevFs();
  readonly vfio: VfioCore;
  /** iommufd's module parameters, shared by every /dev/iommu context of this kernel. */
  readonly iommufdParams: IommufdParams;
  readonly sysfs: Sysfs = new Sysfs(this);
  /** The functions with a device model behind their BARs (device-models.ts). */
  readonly models: ReadonlyMap<PciDev, DeviceModelKind>;
  /** The vfio-pci driver (registered at boot, as `modprobe vfio-pci`). */
  readonly vfioPci: VfioPciDriver;
  /** The mdev core: parents, types and mdevs (/sys/bus/mdev). Parent drivers live in kernel/mdev/. */
  readonly mdev = new MdevCore();
  private nextMiscMinor = 127;

  constructor(booted: BootedHost, opts: KernelBootOptions = {}) {
    this.booted = booted;
    const allowUnsafeInterrupts = opts.iommufd?.allowUnsafeInterrupts ?? opts.vfio?.allowUnsafeInterrupts ?? false;
    this.memory = new PhysicalMemory({ size: opts.memSize ?? 16 * 2 ** 30 });
    this.machine = new Machine(booted, { memory: this.memory });
    const half = Math.floor(this.memory.frameCount / 2);
    // Frames below 16 stay unused, as the first pages of a PC are (real-mode IVT, BIOS data).
    this.frames = new FrameAllocator(this.memory, { firstPfn: 16, count: half - 16 });
    const tableFrames = new FrameAllocator(this.memory, { firstPfn: half });
    this.core = new IommuCore(this.machine, computeGroups(booted, opts.algorithm ?? 'linux'), {
      frames: tableFrames, ...(opts.iopf !== undefined ? { iopf: opts.iopf } : {}),
      ...(opts.pasidAllocation !== undefined ? { pasidAllocation: opts.pasidAllocation } : {}),
    });
    this.iommufdParams = opts.iommufdTest === true
      ? { allowUnsafeInterrupts, selftest: new IommufdSelftest(this.core, tableFrames) }
      : { allowUnsafeInterrupts };
    this.processes = new ProcessTable({ frames: this.frames });
    this.drivers = new DriverCore(this.core, booted.host.topology.devices());
    this.drivers.probeHostDrivers();
    this.vfio = new VfioCore({ core: this.core, devfs: this.devfs, drivers: this.drivers }, opts.vfio);
    // vfio_container_init(): /dev/vfio/vfio (or iommufd's, with CONFIG_IOMMUFD_VFIO_CONTAINER).
    registerVfioContainerNode(this);
    // Functions the host file lists on vfio-pci are bound to it at boot, as vfio-pci.ids= would.
    const onVfio = new Set(booted.host.topology.devices().filter((d) => d.info.driver === 'vfio-pci'));
    this.models = opts.deviceModels === false ? new Map() : attachDeviceModels(this.machine, booted.host.topology.devices(),
      (dev, index, vector) => { this.vfioPci.core(dev)?.raise(index, vector); });
    this.vfioPci = new VfioPciDriver(this.vfio, (dev, bar) => this.machine.barMemory(dev, bar), {
      ...opts.vfioPci, bootDevices: onVfio,
      barModel: (dev, bar) => (this.machine.mmio.modelFor(dev, bar) === undefined ? undefined : new ModelBarHandler(this.machine.mmio, dev, bar)),
    });
    this.drivers.registerDriver(this.vfioPci);
    // mdev_sysfs.c and VFIO's fake groups and cdev devices in /sys.
    this.sysfs.addProvider((root) => { buildVfioMdevTree(this, root); });
    if (this.core.groups.length > 0 || this.iommufdParams.selftest !== undefined) {
      // iommufd_init(): /dev/iommu, mode 0660 root in upstream udev rules; root opens it.
      this.devfs.register('/dev/iommu', { mode: 0o660, uid: 0, gid: 0, major: MISC_MAJOR, minor: this.miscMinor() },
        (proc) => ok(new IommufdCtx(this.core, proc, { params: this.iommufdParams })));
    }
  }

  /** Boot a host file (or built-in host spec) with a kernel command line. */
  static boot(spec: HostSpec | HostSpecInput, opts: KernelBootOptions = {}): Kernel {
    return new Kernel(bootHost(spec, opts.cmdline), opts);
  }

  /** A dynamic misc minor (misc_register with MISC_DYNAMIC_MINOR). */
  miscMinor(): number { return this.nextMiscMinor--; }

  /** The function at a BDF ("0000:39:00.0" or "39:00.0"), or undefined. */
  device(bdf: string): PciDev | undefined { return this.machine.device(bdf); }
}
