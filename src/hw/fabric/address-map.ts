import type { PciBus } from '../../pci/bus.ts';
import type { PciDev } from '../../pci/dev.ts';
import {
  PCI_BASE_ADDRESS_0, PCI_BASE_ADDRESS_MEM_PREFETCH, PCI_BASE_ADDRESS_MEM_TYPE_64, PCI_BASE_ADDRESS_SPACE_IO,
} from '../../pci/regs.ts';
import type { PciTopology } from '../../pci/topology.ts';

// Memory decoding: which function claims a bus address. BARs are read from config space (the base from
// the registers, the size from ConfigSpace.barSizes, which is what BAR sizing reads back). A BAR whose
// base is 0 counts as unassigned and decodes nothing; the Command register's Memory Space Enable is not
// consulted (host descriptions do not set it).
//
// Bridge windows: a host description has no window registers, so each bridge's windows are derived as
// the span (lowest start to highest end) of the memory BARs of every function below it, one span for
// non-prefetchable BARs (the memory window) and one for prefetchable BARs (the prefetchable window),
// with no rounding to the 1 MiB window granule. An address inside a span but in no BAR below is still
// claimed by the bridge, and then by no function: an Unsupported Request below the bridge. A bridge's
// own BARs are not inside its windows (they are decoded on its primary side).
//
// The map is a snapshot taken when it is built; call refresh() after software reprograms BARs.

const FOUR_GIB = 0x1_0000_0000;

export interface MemBar {
  readonly dev: PciDev;
  /** BAR index (the low register of a 64-bit BAR). */
  readonly index: number;
  readonly start: number;
  /** Inclusive. */
  readonly end: number;
  readonly size: number;
  readonly prefetchable: boolean;
}

export interface BridgeWindow {
  readonly bridge: PciDev;
  readonly kind: 'mem' | 'pref';
  readonly start: number;
  /** Inclusive. */
  readonly end: number;
}

/** The memory BARs `dev` decodes, read from its config space (I/O BARs and unassigned BARs left out). */
export function readMemBars(dev: PciDev): MemBar[] {
  const out: MemBar[] = [];
  const count = dev.isBridge() ? 2 : dev.config.headerType() === 0 ? 6 : 0;
  for (let i = 0; i < count; i++) {
    const size = dev.config.barSizes[i] ?? 0;
    if (size <= 0) continue;
    const reg = dev.config.read32(PCI_BASE_ADDRESS_0 + i * 4);
    if ((reg & PCI_BASE_ADDRESS_SPACE_IO) !== 0) continue;
    const index = i;
    let start = (reg & ~0xf) >>> 0;
    if ((reg & 0x6) === PCI_BASE_ADDRESS_MEM_TYPE_64 && i + 1 < count) {
      start += dev.config.read32(PCI_BASE_ADDRESS_0 + (i + 1) * 4) * FOUR_GIB;
      i++;
    }
    if (start === 0) continue;
    out.push({ dev, index, start, end: start + size - 1, size, prefetchable: (reg & PCI_BASE_ADDRESS_MEM_PREFETCH) !== 0 });
  }
  return out;
}

const EMPTY_BARS: readonly MemBar[] = [];
const EMPTY_WINDOWS: readonly BridgeWindow[] = [];

export class AddressMap {
  private barsByDev = new Map<PciDev, readonly MemBar[]>();
  private windowsByBridge = new Map<PciDev, readonly BridgeWindow[]>();
  /** Every BAR, sorted by start, for lookups by address. */
  private sorted: MemBar[] = [];

  constructor(private readonly topology: PciTopology) {
    this.refresh();
  }

  /** Re-read every BAR from config space and re-derive the bridge windows. */
  refresh(): void {
    this.barsByDev = new Map();
    this.windowsByBridge = new Map();
    const all: MemBar[] = [];
    for (const dev of this.topology.devices()) {
      const bars = readMemBars(dev);
      if (bars.length > 0) this.barsByDev.set(dev, bars);
      all.push(...bars);
    }
    this.sorted = all.sort((a, b) => a.start - b.start);
    for (const root of this.topology.rootBuses) this.deriveWindows(root);
  }

  /** Returns the BARs below `bus` (recursively), recording each bridge's windows on the way. */
  private deriveWindows(bus: PciBus): MemBar[] {
    const below: MemBar[] = [];
    for (const dev of bus.devices) below.push(...this.bars(dev));
    for (const child of bus.children) {
      const inner = this.deriveWindows(child);
      below.push(...inner);
      const bridge = child.self;
      if (bridge === null) continue; // an SR-IOV virtual bus: its BARs count for the bus above
      const windows: BridgeWindow[] = [];
      for (const kind of ['mem', 'pref'] as const) {
        const of = inner.filter((b) => b.prefetchable === (kind === 'pref'));
        if (of.length === 0) continue;
        let start = Infinity;
        let end = -Infinity;
        for (const b of of) { start = Math.min(start, b.start); end = Math.max(end, b.end); }
        windows.push({ bridge, kind, start, end });
      }
      if (windows.length > 0) this.windowsByBridge.set(bridge, windows);
    }
    return below;
  }

  bars(dev: PciDev): readonly MemBar[] { return this.barsByDev.get(dev) ?? EMPTY_BARS; }

  windows(bridge: PciDev): readonly BridgeWindow[] { return this.windowsByBridge.get(bridge) ?? EMPTY_WINDOWS; }

  /** The BAR of `dev` containing `address`, if any. */
  barOf(dev: PciDev, address: number): MemBar | undefined {
    for (const b of this.bars(dev)) if (address >= b.start && address <= b.end) return b;
    return undefined;
  }

  /** Whether `address` falls in one of `bridge`'s windows (so the bridge forwards it downstream). */
  inWindow(bridge: PciDev, address: number): boolean {
    for (const w of this.windows(bridge)) if (address >= w.start && address <= w.end) return true;
    return false;
  }

  /** The BAR that claims `address` anywhere in the topology (the first by start when BARs overlap). */
  barAt(address: number): MemBar | undefined {
    const list = this.sorted;
    let lo = 0;
    let hi = list.length - 1;
    let found = -1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if ((list[mid] as MemBar).start <= address) { found = mid; lo = mid + 1; } else hi = mid - 1;
    }
    for (let i = found; i >= 0; i--) {
      const b = list[i] as MemBar;
      if (address <= b.end) return b;
      if (i < found - 64) break; // BARs are normally disjoint; do not scan the whole list for a miss
    }
    return undefined;
  }

  /**
   * Who claims `address` when a request for it is sent down onto `bus`: a function's BAR on the bus, or
   * (through a bridge whose window holds it) something further down. `claimedBy` is the bridge or function
   * on `bus` that took it; `bar` is undefined when a bridge took it and nothing below decodes it.
   */
  claimOnBus(bus: PciBus, address: number, exclude?: PciDev): { claimedBy: PciDev; bar: MemBar | undefined } | undefined {
    for (const dev of bus.devices) {
      if (dev === exclude) continue;
      const bar = this.barOf(dev, address);
      if (bar !== undefined) return { claimedBy: dev, bar };
    }
    for (const dev of bus.devices) {
      if (dev === exclude || dev.subordinate === null || !this.inWindow(dev, address)) continue;
      return { claimedBy: dev, bar: this.claimBelow(dev.subordinate, address) };
    }
    // Functions on an SR-IOV virtual bus hang off this bus without a bridge.
    for (const child of bus.children) {
      if (child.self !== null) continue;
      const hit = this.claimOnBus(child, address, exclude);
      if (hit !== undefined) return hit;
    }
    return undefined;
  }

  /** The BAR below `bus` (recursively) that decodes `address`. */
  claimBelow(bus: PciBus, address: number): MemBar | undefined {
    const hit = this.claimOnBus(bus, address);
    return hit?.bar;
  }
}
