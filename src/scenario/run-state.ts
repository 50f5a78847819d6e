// The state of a scenario run: the booted kernel, the scenario's processes by name, what each has open
// (fds by name) and mapped (memory regions by name), and the values steps stored ($name).

import type { Kernel } from '../kernel/kernel.ts';
import type { Process } from '../kernel/process/process.ts';
import type { PciDev } from '../pci/dev.ts';
import { EmulatedParentDriver } from '../kernel/mdev/emulated-parent.ts';
import { IommuBackedParentDriver, type MdevGroupPolicy } from '../kernel/mdev/iommu-backed-parent.ts';
import { PasidBackedParentDriver } from '../kernel/mdev/pasid-backed-parent.ts';
import type { MdevDevice } from '../kernel/mdev/types.ts';
import type { VfioDevice } from '../kernel/vfio/vfio-device.ts';
import type { GuestPageTable } from '../uapi/guest-pagetable.ts';
import { resolveValue, type NumberLike, type ValueScope } from './values.ts';

export interface Region {
  readonly va: bigint;
  readonly size: bigint;
}

export interface ScenarioProcess {
  readonly name: string;
  readonly proc: Process;
  readonly fds: Map<string, number>;
  readonly regions: Map<string, Region>;
}

/** A step could not run as written (an unknown name, a bad value): the run reports it, nothing changes. */
export class StepError extends Error {
  override readonly name = 'StepError';
}

export class RunState {
  readonly processes = new Map<string, ScenarioProcess>();
  readonly variables = new Map<string, bigint>();
  /** Guests' first-stage IO page tables by name (guest-pagetable steps). */
  readonly guestTables = new Map<string, GuestPageTable>();

  /** Isolation breaches fail the run (options.isolation: enforce) or are only shown by isolation-check. */
  isolationEnforced = true;
  /** options.vfioApi: how the assign step reaches a device (cdev, or the legacy group API). */
  vfioApi: 'cdev' | 'group' = 'cdev';
  private emulated: EmulatedParentDriver | null = null;
  private iommuBacked: IommuBackedParentDriver | null = null;
  private pasidBacked: PasidBackedParentDriver | null = null;

  constructor(readonly kernel: Kernel, readonly mdevGroupPolicy: MdevGroupPolicy = 'inherit-parent-group') {}

  /** The mdev parent drivers, made on first use (as modprobe would load them). */
  emulatedDriver(): EmulatedParentDriver {
    return (this.emulated ??= new EmulatedParentDriver({ vfio: this.kernel.vfio, memory: this.kernel.memory }));
  }

  iommuBackedDriver(): IommuBackedParentDriver {
    if (this.iommuBacked === null) {
      const k = this.kernel;
      this.iommuBacked = new IommuBackedParentDriver({ core: k.core, vfio: k.vfio, mdev: k.mdev }, this.mdevGroupPolicy);
      k.drivers.registerDriver(this.iommuBacked.pciDriver);
    }
    return this.iommuBacked;
  }

  pasidBackedDriver(): PasidBackedParentDriver {
    const k = this.kernel;
    return (this.pasidBacked ??= new PasidBackedParentDriver({ core: k.core, vfio: k.vfio, mdev: k.mdev, machine: k.machine }));
  }

  mdev(uuid: string): MdevDevice {
    const m = this.kernel.mdev.device(uuid);
    if (m === undefined) throw new StepError(`no mdev ${uuid} (create it with mdev-create)`);
    return m;
  }

  /** The VFIO device named by a PCI address or an mdev UUID. */
  vfioDevice(name: string): VfioDevice {
    const m = this.kernel.mdev.device(name);
    if (m !== undefined) {
      if (m.vdev === null) throw new StepError(`mdev ${name} has no VFIO device`);
      return m.vdev;
    }
    const v = this.kernel.vfio.deviceOfPci(this.device(name));
    if (v === undefined) throw new StepError(`${name} is not a VFIO device (bind it to vfio-pci first)`);
    return v;
  }

  process(name: string): ScenarioProcess {
    const p = this.processes.get(name);
    if (p === undefined) throw new StepError(`no process "${name}" (known: ${[...this.processes.keys()].join(', ') || 'none'})`);
    return p;
  }

  /** An fd the process opened under `name` (or a plain number). */
  fd(p: ScenarioProcess, name: string | number): number {
    if (typeof name === 'number') return name;
    const fd = p.fds.get(name);
    if (fd === undefined) throw new StepError(`${p.name} has no fd named "${name}" (open one with as: ${name})`);
    return fd;
  }

  device(bdf: string): PciDev {
    const d = this.kernel.device(bdf);
    if (d === undefined) throw new StepError(`no PCI function ${bdf} on host ${this.kernel.booted.host.name}`);
    return d;
  }

  /** A value in the context of process `p` (its regions) and the run's variables. */
  value(v: NumberLike, p?: ScenarioProcess): bigint {
    const scope: ValueScope = {
      variable: (n) => this.variables.get(n),
      region: (n) => p?.regions.get(n)?.va,
    };
    const r = resolveValue(v, scope);
    if (typeof r === 'string') throw new StepError(r);
    return r;
  }

  /** As value(), but a JavaScript number (an ID, an fd, a size that fits). */
  num(v: NumberLike, p?: ScenarioProcess): number {
    const b = this.value(v, p);
    if (b > BigInt(Number.MAX_SAFE_INTEGER)) throw new StepError(`${String(v)} is too large here`);
    return Number(b);
  }

  set(name: string | undefined, v: bigint | number): void {
    if (name !== undefined) this.variables.set(name.replace(/^\$/, ''), BigInt(v));
  }
}
