// The vfio-pci PCI driver (drivers/vfio/pci/vfio_pci.c): binds functions for user-space drivers. It sets
// driver_managed_dma, so binding it does not take the group's default domain: the group stays claimable
// by a VFIO user. It matches nothing by itself: functions come to it through driver_override, the ids=
// module parameter or new_id (dynamic ids).
//
//  * probe: only normal (type 0) headers (bridges → EINVAL); the function becomes a VFIO device in its
//    IOMMU group's VFIO group (vfio_register_group_dev: no IOMMU group without no-IOMMU mode → EINVAL).
//  * remove: unregisters the device; while user space has it open that is EBUSY here (Linux blocks the
//    unbind and signals the REQ interrupt until the user closes it).

import type { PciDev } from '../../../pci/dev.ts';
import { PCI_HEADER_TYPE_NORMAL } from '../../../pci/regs.ts';
import type { DriverCore } from '../../drivers/driver-core.ts';
import type { PciDriver } from '../../drivers/pci-driver.ts';
import { fail, ok, type Result } from '../../errno.ts';
import { VfioDevice } from '../vfio-device.ts';
import type { VfioCore } from '../vfio.ts';
import { REQ } from './irqs.ts';
import { VfioPciCore, type BarMemorySource, type BarModelSource } from './vfio-pci-core.ts';

export interface VfioPciOptions {
  /** vfio-pci.ids=: "vendor:device[,vendor:device...]" (hex; ffff matches any). */
  readonly ids?: string;
  /** Functions matched at boot because the host file shows them on vfio-pci. */
  readonly bootDevices?: ReadonlySet<PciDev>;
  /** Device models behind BARs (the machine's MMIO bus): their regions are served by the model. */
  readonly barModel?: BarModelSource;
}

const ANY = 0xffff;

export class VfioPciDriver implements PciDriver {
  readonly name = 'vfio-pci';
  readonly driverManagedDma = true;
  /** ids= and new_id entries, as [vendor, device] (PCI_ANY_ID = 0xffff). */
  readonly ids: Array<readonly [number, number]> = [];
  private readonly bound = new Map<PciDev, VfioDevice>();
  private readonly bootDevices: ReadonlySet<PciDev>;
  private readonly barModel: BarModelSource;

  constructor(private readonly vfio: VfioCore, private readonly barMemory: BarMemorySource, opts: VfioPciOptions = {}) {
    this.bootDevices = opts.bootDevices ?? new Set();
    this.barModel = opts.barModel ?? (() => undefined);
    for (const part of (opts.ids ?? '').split(',').filter((s) => s.trim() !== '')) {
      const [v, d] = part.trim().split(':').map((x) => parseInt(x, 16));
      if (v === undefined || d === undefined || Number.isNaN(v) || Number.isNaN(d)) throw new Error(`vfio-pci.ids: bad entry "${part}"`);
      this.ids.push([v, d]);
    }
  }

  matches(dev: PciDev): boolean {
    return this.bootDevices.has(dev) || this.ids.some(([v, d]) => (v === ANY || v === dev.vendor) && (d === ANY || d === dev.device));
  }

  /**
   * echo "VVVV DDDD" > /sys/bus/pci/drivers/vfio-pci/new_id: add a dynamic id (EEXIST if present) and
   * offer every unbound matching function to this driver (driver_attach).
   */
  newId(drivers: DriverCore, text: string): Result {
    const [v, d] = text.trim().split(/\s+/).map((x) => parseInt(x, 16));
    if (v === undefined || d === undefined || Number.isNaN(v) || Number.isNaN(d)) return fail('EINVAL', `new_id wants "vendor device" in hex, got "${text}"`);
    if (this.ids.some(([a, b]) => a === v && b === d)) return fail('EEXIST', `${text.trim()} is already an id of vfio-pci`);
    this.ids.push([v, d]);
    for (const dev of drivers.devices) {
      if (drivers.boundDriver(dev) === null && drivers.match(this, dev)) void drivers.bind(dev, this.name);
    }
    return ok();
  }

  probe(dev: PciDev): Result {
    if (dev.hdrType !== PCI_HEADER_TYPE_NORMAL) return fail('EINVAL', `${dev.bdf} is a bridge: vfio-pci drives only type 0 functions`);
    const type = this.vfio.deps.core.groupOf(dev) === undefined ? 'no-iommu' : 'iommu';
    const vdev = new VfioDevice(dev.bdf, type, new VfioPciCore(dev, this.barMemory, this.barModel), dev);
    const r = this.vfio.registerGroupDev(vdev);
    if (!r.ok) return r;
    this.bound.set(dev, vdev);
    return ok();
  }

  remove(dev: PciDev): Result {
    const vdev = this.bound.get(dev);
    if (vdev === undefined) return ok();
    const core = vdev.ops instanceof VfioPciCore ? vdev.ops : null;
    const r = this.vfio.unregister(vdev);
    if (!r.ok) {
      core?.raise(REQ);
      return r;
    }
    this.bound.delete(dev);
    return ok();
  }

  /** The VFIO device of a function bound here. */
  vfioDevice(dev: PciDev): VfioDevice | undefined { return this.bound.get(dev); }

  /** The vfio-pci state of a function bound here (to plug BAR handlers, raise interrupts). */
  core(dev: PciDev): VfioPciCore | undefined {
    const ops = this.bound.get(dev)?.ops;
    return ops instanceof VfioPciCore ? ops : undefined;
  }
}
