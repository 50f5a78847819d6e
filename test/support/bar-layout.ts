import type { PciBus } from '../../src/pci/bus.ts';
import type { PciDev } from '../../src/pci/dev.ts';
import {
  PCI_BASE_ADDRESS_0, PCI_BASE_ADDRESS_MEM_PREFETCH, PCI_BASE_ADDRESS_MEM_TYPE_64, PCI_BASE_ADDRESS_SPACE_IO,
} from '../../src/pci/regs.ts';
import type { PciTopology } from '../../src/pci/topology.ts';

// Address-space sanity for host descriptions: BARs decoded from config space, and bridge windows sized
// the way Linux's pci_bus_size_bridges() would (the hull of everything below, 1 MiB / 4 KiB granular),
// since the host spec carries no window registers of its own.

export interface BarRange {
  readonly dev: PciDev;
  readonly index: number;
  readonly space: 'io' | 'mem';
  readonly prefetchable: boolean;
  readonly start: number;
  /** Inclusive. */
  readonly end: number;
}

export interface BridgeWindow {
  readonly bridge: PciDev;
  readonly kind: 'io' | 'mem' | 'pref';
  readonly start: number;
  readonly end: number;
}

const MEM_GRANULE = 0x10_0000;
const IO_GRANULE = 0x1000;
const FOUR_GIB = 0x1_0000_0000;

/** The BARs a function decodes, read back from its config space. */
export function barsOf(dev: PciDev): BarRange[] {
  const out: BarRange[] = [];
  const count = dev.isBridge() ? 2 : 6;
  for (let i = 0; i < count; i++) {
    const size = dev.config.barSizes[i] ?? 0;
    if (size === 0) continue;
    const reg = dev.config.read32(PCI_BASE_ADDRESS_0 + i * 4);
    if ((reg & PCI_BASE_ADDRESS_SPACE_IO) !== 0) {
      const start = reg & ~0x3;
      out.push({ dev, index: i, space: 'io', prefetchable: false, start, end: start + size - 1 });
      continue;
    }
    const index = i;
    let start = (reg & ~0xf) >>> 0;
    if ((reg & 0x6) === PCI_BASE_ADDRESS_MEM_TYPE_64) {
      start += dev.config.read32(PCI_BASE_ADDRESS_0 + (i + 1) * 4) * FOUR_GIB;
      i++; // the upper half is not a BAR of its own
    }
    out.push({ dev, index, space: 'mem', prefetchable: (reg & PCI_BASE_ADDRESS_MEM_PREFETCH) !== 0, start, end: start + size - 1 });
  }
  return out;
}

function below(bus: PciBus): PciDev[] {
  return [...bus.devices, ...bus.children.flatMap(below)];
}

/** Windows of `bridge`: the granule-aligned hull of the BARs below it, per kind (none when nothing needs one). */
export function bridgeWindows(bridge: PciDev): BridgeWindow[] {
  if (bridge.subordinate === null) return [];
  const bars = below(bridge.subordinate).flatMap(barsOf);
  const out: BridgeWindow[] = [];
  const hull = (kind: BridgeWindow['kind'], list: BarRange[], granule: number): void => {
    if (list.length === 0) return;
    const start = Math.min(...list.map((b) => b.start));
    const end = Math.max(...list.map((b) => b.end));
    out.push({ bridge, kind, start: Math.floor(start / granule) * granule, end: Math.ceil((end + 1) / granule) * granule - 1 });
  };
  hull('io', bars.filter((b) => b.space === 'io'), IO_GRANULE);
  hull('mem', bars.filter((b) => b.space === 'mem' && !b.prefetchable), MEM_GRANULE);
  hull('pref', bars.filter((b) => b.space === 'mem' && b.prefetchable), MEM_GRANULE);
  return out;
}

const overlaps = (a: { start: number; end: number }, b: { start: number; end: number }): boolean => a.start <= b.end && b.start <= a.end;
const spaceOf = (w: BridgeWindow): 'io' | 'mem' => (w.kind === 'io' ? 'io' : 'mem');
const hex = (n: number): string => `0x${n.toString(16)}`;

/**
 * Everything wrong with a topology's address layout, as sentences (empty when it is sound): BARs that are
 * not naturally aligned or overlap, bridge windows that overlap a sibling's or take in a BAR that is not
 * below the bridge, and non-prefetchable windows above 4 GiB (the register is 32 bits wide).
 */
export function layoutProblems(topology: PciTopology): string[] {
  const problems: string[] = [];
  const devices = topology.devices();
  const bars = devices.flatMap(barsOf);
  for (const b of bars) {
    const size = b.end - b.start + 1;
    if (b.start % size !== 0) problems.push(`${b.dev.shortBdf} BAR ${b.index} at ${hex(b.start)} is not aligned to its size ${hex(size)}`);
  }
  for (const space of ['io', 'mem'] as const) {
    const sorted = bars.filter((b) => b.space === space).sort((a, b) => a.start - b.start);
    for (let i = 1; i < sorted.length; i++) {
      const prev = sorted[i - 1]!;
      const cur = sorted[i]!;
      if (cur.start <= prev.end) problems.push(`${cur.dev.shortBdf} BAR ${cur.index} overlaps ${prev.dev.shortBdf} BAR ${prev.index} (${space} ${hex(cur.start)})`);
    }
  }
  const bridges = devices.filter((d) => d.isBridge());
  const windows = bridges.flatMap(bridgeWindows);
  for (const w of windows) {
    if (w.kind === 'mem' && w.end >= FOUR_GIB) problems.push(`${w.bridge.shortBdf} needs a non-prefetchable window above 4 GiB (${hex(w.start)}-${hex(w.end)})`);
    const inside = new Set(w.bridge.subordinate === null ? [] : below(w.bridge.subordinate));
    for (const b of bars) {
      if (b.space === spaceOf(w) && !inside.has(b.dev) && overlaps(w, b)) {
        problems.push(`${w.bridge.shortBdf} ${w.kind} window ${hex(w.start)}-${hex(w.end)} takes in ${b.dev.shortBdf} BAR ${b.index}, which is not below it`);
      }
    }
  }
  // Sibling bridges (same bus) and root buses (host bridge apertures) must decode disjoint ranges.
  const groups = new Map<PciBus | 'roots', BridgeWindow[]>();
  for (const w of windows) {
    const list = groups.get(w.bridge.bus) ?? [];
    list.push(w);
    groups.set(w.bridge.bus, list);
  }
  for (const [, list] of groups) {
    for (let i = 0; i < list.length; i++) {
      for (let j = i + 1; j < list.length; j++) {
        const a = list[i]!;
        const b = list[j]!;
        if (a.bridge !== b.bridge && spaceOf(a) === spaceOf(b) && overlaps(a, b)) {
          problems.push(`${a.bridge.shortBdf} ${a.kind} window overlaps sibling ${b.bridge.shortBdf} ${b.kind} window`);
        }
      }
    }
  }
  // Each host bridge gets its own slice of I/O, 32-bit and 64-bit memory space.
  const rangeClass = (b: BarRange): string => (b.space === 'io' ? 'io' : b.end < FOUR_GIB ? 'mem32' : 'mem64');
  const rootHulls = topology.rootBuses.flatMap((bus) => {
    const list = below(bus).flatMap(barsOf);
    return ['io', 'mem32', 'mem64'].flatMap((cls) => {
      const of = list.filter((b) => rangeClass(b) === cls);
      return of.length === 0 ? [] : [{ bus, cls, start: Math.min(...of.map((b) => b.start)), end: Math.max(...of.map((b) => b.end)) }];
    });
  });
  for (let i = 0; i < rootHulls.length; i++) {
    for (let j = i + 1; j < rootHulls.length; j++) {
      const a = rootHulls[i]!;
      const b = rootHulls[j]!;
      if (a.cls === b.cls && overlaps(a, b)) {
        problems.push(`root buses ${a.bus.domain.toString(16)}:${a.bus.number.toString(16)} and ${b.bus.domain.toString(16)}:${b.bus.number.toString(16)} interleave their ${a.cls} ranges`);
      }
    }
  }
  return problems;
}
