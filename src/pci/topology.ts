import { addressKey, formatShortAddress, parseAddress, type PciAddress } from './address.ts';
import { PciBus } from './bus.ts';
import type { ConfigSpace } from './config-space.ts';
import { PciDev, type PciDevInfo } from './dev.ts';
import { PCI_HEADER_TYPE_BRIDGE, PCI_SECONDARY_BUS, PCI_SUBORDINATE_BUS } from './regs.ts';

/** One function found by enumeration: where it is, its config space, and what a person reads of it. */
export interface EnumeratedFunction {
  readonly address: PciAddress;
  readonly config: ConfigSpace;
  readonly info?: PciDevInfo;
  /** Set for an SR-IOV virtual function: its physical function's address. */
  readonly virtfnOf?: PciAddress;
}

/** Thrown for a set of functions that cannot form a PCI hierarchy (duplicate addresses, ...). */
export class TopologyError extends Error {}

/**
 * The PCI hierarchy of a host: root buses per domain, bridges and their secondary buses recovered from
 * the bridges' bus-number registers (as `lspci -t` would draw it), and Linux's device registration
 * order, which is the order the IOMMU core probes devices in.
 */
export class PciTopology {
  readonly rootBuses: PciBus[] = [];
  /** Things about the hierarchy a person should know (a bus no bridge claims, ...). */
  readonly warnings: string[] = [];
  private readonly byKey = new Map<number, PciDev>();
  private readonly busByKey = new Map<number, PciBus>();
  private readonly order: PciDev[] = [];

  constructor(functions: readonly EnumeratedFunction[]) {
    const seen = new Set<number>();
    for (const f of functions) {
      const key = addressKey(f.address);
      if (seen.has(key)) throw new TopologyError(`function ${formatShortAddress(f.address)} is listed twice`);
      seen.add(key);
    }
    const physical = functions.filter((f) => f.virtfnOf === undefined);
    const virtual = functions.filter((f) => f.virtfnOf !== undefined);
    this.buildBuses(physical);
    this.addVirtualFunctions(virtual);
  }

  /** Every function in registration order: each bus's functions, then each bridge's bus depth-first; VFs last. */
  devices(): readonly PciDev[] { return this.order; }

  get size(): number { return this.order.length; }

  /** Look a function up by address or "[dddd:]bb:dd.f". */
  get(where: PciAddress | string): PciDev | undefined {
    const a = typeof where === 'string' ? parseAddress(where) : where;
    return a === undefined ? undefined : this.byKey.get(addressKey(a));
  }

  bus(domain: number, number: number): PciBus | undefined {
    return this.busByKey.get(domain * 0x100 + number);
  }

  private buildBuses(functions: readonly EnumeratedFunction[]): void {
    const busKey = (domain: number, n: number): number => domain * 0x100 + n;
    const byBus = new Map<number, EnumeratedFunction[]>();
    for (const f of functions) {
      const k = busKey(f.address.domain, f.address.bus);
      let list = byBus.get(k);
      if (list === undefined) byBus.set(k, (list = []));
      list.push(f);
    }
    for (const list of byBus.values()) list.sort((a, b) => a.address.devfn - b.address.devfn);

    // Which bridge claims each bus: the one whose secondary bus it is. A bus inside a bridge's range
    // that no bridge names as secondary hangs under the narrowest range containing it.
    const bridges = functions.filter((f) => isBridgeConfig(f.config));
    const parentOf = new Map<number, EnumeratedFunction>();
    for (const b of bridges) {
      const sec = b.config.read8(PCI_SECONDARY_BUS);
      const sub = b.config.read8(PCI_SUBORDINATE_BUS);
      if (sec <= b.address.bus || sub < sec) continue; // unconfigured or nonsensical window
      const k = busKey(b.address.domain, sec);
      const prior = parentOf.get(k);
      if (prior !== undefined) {
        this.warnings.push(`bus ${hex2(sec)} is the secondary bus of both ${formatShortAddress(prior.address)} and ${formatShortAddress(b.address)}; using the first`);
        continue;
      }
      parentOf.set(k, b);
    }
    for (const k of byBus.keys()) {
      if (parentOf.has(k)) continue;
      const domain = Math.floor(k / 0x100);
      const n = k % 0x100;
      let best: EnumeratedFunction | undefined;
      let bestWidth = Infinity;
      for (const b of bridges) {
        const sec = b.config.read8(PCI_SECONDARY_BUS);
        const sub = b.config.read8(PCI_SUBORDINATE_BUS);
        if (b.address.domain !== domain || sec <= b.address.bus || n < sec || n > sub) continue;
        if (sub - sec < bestWidth) { best = b; bestWidth = sub - sec; }
      }
      if (best !== undefined) {
        parentOf.set(k, best);
        this.warnings.push(`bus ${hex2(n)} has no bridge whose secondary bus it is; placed under ${formatShortAddress(best.address)}, whose range covers it`);
      }
    }

    // Create buses top-down: root buses are those no bridge claims.
    const rootKeys = [...byBus.keys()].filter((k) => !parentOf.has(k)).sort((a, b) => a - b);
    const created = new Set<number>();
    const makeBus = (k: number, self: PciDev | null, parent: PciBus | null): PciBus => {
      if (created.has(k)) throw new TopologyError(`bus ${hex2(k % 0x100)} is reached twice: the bridge ranges form a loop`);
      created.add(k);
      const bus = new PciBus(Math.floor(k / 0x100), k % 0x100, self, parent);
      this.busByKey.set(k, bus);
      for (const f of byBus.get(k) ?? []) {
        const dev = new PciDev(bus, f.address.devfn, f.config, f.info);
        bus.devices.push(dev);
        this.byKey.set(addressKey(f.address), dev);
      }
      return bus;
    };
    const childKeysOf = new Map<number, number>(); // bridge address key -> child bus key
    for (const [k, b] of parentOf) childKeysOf.set(addressKey(b.address), k);

    const attachChildren = (bus: PciBus): void => {
      for (const dev of bus.devices) {
        const ck = childKeysOf.get(addressKey(dev.address));
        // Every configured bridge gets its secondary bus, empty or not, as Linux's scan creates it.
        if (ck === undefined) continue;
        const child = makeBus(ck, dev, bus);
        dev.subordinate = child;
        bus.children.push(child);
        attachChildren(child);
      }
    };
    for (const k of rootKeys) {
      const root = makeBus(k, null, null);
      this.rootBuses.push(root);
      attachChildren(root);
    }
    // pci_bus_add_devices(): all functions of a bus, then each child bus in bridge order.
    const visit = (bus: PciBus): void => {
      this.order.push(...bus.devices);
      for (const child of bus.children) visit(child);
    };
    for (const root of this.rootBuses) visit(root);
  }

  private addVirtualFunctions(virtual: readonly EnumeratedFunction[]): void {
    // VFs are added when SR-IOV is enabled, after boot: they come last, PF by PF.
    for (const f of virtual) {
      const pf = f.virtfnOf === undefined ? undefined : this.get(f.virtfnOf);
      if (pf === undefined) throw new TopologyError(`virtual function ${formatShortAddress(f.address)} names a physical function that does not exist`);
      let bus = this.bus(f.address.domain, f.address.bus);
      if (bus === undefined) {
        // A VF beyond the PF's bus sits on a virtual bus with no bridge above it (pci_iov_add_virtfn).
        bus = new PciBus(f.address.domain, f.address.bus, null, pf.bus);
        this.busByKey.set(f.address.domain * 0x100 + f.address.bus, bus);
        pf.bus.children.push(bus);
      }
      const dev = new PciDev(bus, f.address.devfn, f.config, f.info);
      dev.physfn = pf;
      bus.devices.push(dev);
      bus.devices.sort((a, b) => a.devfn - b.devfn);
      this.byKey.set(addressKey(f.address), dev);
      this.order.push(dev);
    }
  }
}

function isBridgeConfig(cfg: ConfigSpace): boolean {
  return cfg.headerType() === PCI_HEADER_TYPE_BRIDGE;
}

function hex2(n: number): string { return n.toString(16).padStart(2, '0'); }
