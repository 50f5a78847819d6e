import type { PciDev } from './dev.ts';

/** A PCI bus (struct pci_bus): its number, the bridge above it (`self`), and its functions. */
export class PciBus {
  /** Functions on this bus in devfn order. */
  readonly devices: PciDev[] = [];
  /** Buses below bridges on this bus, in the order of those bridges. */
  readonly children: PciBus[] = [];

  constructor(
    readonly domain: number,
    readonly number: number,
    /** The bridge whose secondary bus this is; null for a root bus or an SR-IOV virtual bus. */
    readonly self: PciDev | null,
    readonly parent: PciBus | null,
  ) {}

  isRoot(): boolean { return this.parent === null; }

  /** pci_is_root_bus() walks stop here; a virtual bus has a parent but no self. */
  isVirtual(): boolean { return this.parent !== null && this.self === null; }

  deviceAt(devfn: number): PciDev | undefined {
    return this.devices.find((d) => d.devfn === devfn);
  }
}
