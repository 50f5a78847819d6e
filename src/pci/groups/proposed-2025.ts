import { PCI_SLOT } from '../address.ts';
import type { PciDev } from '../dev.ts';
import { PCI_DEV_FLAGS_BRIDGE_XLATE_ROOT } from '../dev.ts';
import type { AcsContext } from './acs.ts';
import { describeKind } from './acs.ts';
import { devsAreDmaAliases, realDmaDev } from './dma-alias.ts';
import type { GroupTable } from './group-table.ts';
import { acsEnabled2025, acsWhy2025, PCI_ACS_ISOLATED } from './proposed-2025-acs.ts';
import { busIsolated, type BusVerdict } from './proposed-2025-bus.ts';
import type { GroupStep, IommuGroup, RuleId, UncoveredDevice } from './types.ts';

// The proposed 2025 rework of pci_device_group(): J. Gunthorpe, "Fix incorrect iommu_groups with PCIe
// ACS" v3 (September 2025, branch pcie_switch_groups; not merged). Isolation is a property of buses:
//  1. a device that issues DMA as another device (pci_real_dma_dev) shares that device's group;
//  2. a bridge where DMA alias walks stop (BRIDGE_XLATE_ROOT) gets a group of its own;
//  3. the first non-isolated bus on the way down captures everything below it: a group flagged
//     non-isolated (IommuGroup.nonIsolated) is joined by every device whose upstream bridge is in it;
//  4. otherwise the device's own bus decides (pci_bus_isolated): an isolated bus leaves the device to
//     its same-slot functions and DMA aliases (pci_get_function_group), or a group of its own; a
//     non-isolated bus puts it with the bridge above, or with its peers on the bus.
// Probing out of order is refused (-EPROBE_DEFER) instead of silently forming narrower groups; this
// model retries the refused devices after the pass (see groupProposed2025).

/** A device whose probe was refused at first because a device it depends on had no group yet. */
export interface DeferredProbe {
  readonly device: PciDev;
  /** The device it waited for: its upstream bridge, or the device it issues DMA as. */
  readonly waitedFor: PciDev;
  /** Which retry round placed it (1 = the first pass after the main one), or null if none did. */
  readonly placedInRound: number | null;
}

export interface Proposed2025Report {
  readonly deferred: readonly DeferredProbe[];
  /** Devices the kernel would leave without a group: still deferred when retries stopped helping. */
  readonly unresolved: readonly UncoveredDevice[];
}

type Outcome =
  | { readonly kind: 'placed' }
  | { readonly kind: 'wait'; readonly on: PciDev; readonly why: string }
  | { readonly kind: 'fail'; readonly why: string };

/**
 * Group every device of `order` (probe order) with the proposed algorithm. A device whose upstream
 * bridge (or real DMA device) has no group yet is deferred, as the kernel's -EPROBE_DEFER would; after
 * the pass the deferred devices are retried in their original order, round after round, until a round
 * places none. Whatever is still waiting then gets no group, as in the kernel, and is reported.
 */
export function groupProposed2025(order: readonly PciDev[], table: GroupTable, ctx: AcsContext): Proposed2025Report {
  const run = new ProposedRun(table, ctx);
  const deferred = new Map<PciDev, { waitedFor: PciDev; placedInRound: number | null }>();
  const failed: UncoveredDevice[] = [];
  let waiting: Array<{ dev: PciDev; on: PciDev; why: string }> = [];
  for (const dev of order) {
    const out = run.place(dev, '');
    if (out.kind === 'wait') {
      waiting.push({ dev, on: out.on, why: out.why });
      deferred.set(dev, { waitedFor: out.on, placedInRound: null });
    } else if (out.kind === 'fail') {
      failed.push({ device: dev, reason: out.why });
    }
  }
  for (let round = 1; waiting.length > 0; round++) {
    const still: typeof waiting = [];
    for (const w of waiting) {
      const out = run.place(w.dev, ` (probed late: it waited for ${w.on.shortBdf}, which had no group yet)`);
      if (out.kind === 'placed') deferred.set(w.dev, { waitedFor: w.on, placedInRound: round });
      else if (out.kind === 'wait') still.push({ dev: w.dev, on: out.on, why: out.why });
      else failed.push({ device: w.dev, reason: out.why });
    }
    if (still.length === waiting.length) { waiting = still; break; }
    waiting = still;
  }
  const unresolved = [
    ...failed,
    ...waiting.map((w) => ({ device: w.dev, reason: `probe deferred for good: ${w.why}, and ${w.on.shortBdf} never got one; Linux leaves it without a group` })),
  ];
  return { deferred: [...deferred].map(([device, d]) => ({ device, ...d })), unresolved };
}

/** One reason two functions on a bus belong together, for the explanation of a function group. */
interface Link { readonly from: PciDev; readonly alias: boolean; readonly text: string }

class ProposedRun {
  /** For each group that captures its subtree: why, as a clause ending in what it captures. */
  private readonly captureWhy = new Map<IommuGroup, string>();

  constructor(private readonly table: GroupTable, private readonly ctx: AcsContext) {}

  /** pci_device_group() for one device: place it, or say what it must wait for. */
  place(dev: PciDev, late: string): Outcome {
    const step = (rule: RuleId, text: string, via?: PciDev): GroupStep =>
      (via === undefined ? { rule, device: dev, text: text + late } : { rule, device: dev, via, text: text + late });
    const join = (g: IommuGroup, rule: RuleId, via: PciDev, text: string): Outcome => {
      this.table.join(g, step(rule, text, via));
      return { kind: 'placed' };
    };

    // 1. Architectures may name a different device that really issues the DMA (Intel VMD).
    const real = realDmaDev(dev);
    if (real !== dev) {
      const g = this.table.groupOf(real);
      if (g === undefined) return { kind: 'wait', on: real, why: `the device it issues DMA as (${real.shortBdf}) has no group yet` };
      return join(g, 'real-dma-dev', real, `${dev.shortBdf} joins ${real.shortBdf}'s group: its DMA is issued as ${real.shortBdf}`);
    }
    // 2. Alias walks stop at this bridge: nothing above can be confused with it.
    if ((dev.devFlags & PCI_DEV_FLAGS_BRIDGE_XLATE_ROOT) !== 0) {
      this.table.alloc(step('new-group', `${dev.shortBdf} gets its own group: DMA alias walks stop at it (BRIDGE_XLATE_ROOT), so it is grouped like a root`));
      return { kind: 'placed' };
    }
    // 3. pci_hierarchy_group(): an upstream group that captures its subtree takes the device. SR-IOV
    //    VFs may sit on a virtual bus without a bridge; the PF's bus is used for them throughout.
    const pf = dev.physfn ?? dev;
    const bus = pf.bus;
    const vfNote = dev === pf ? '' : ` (as SR-IOV virtual function of ${pf.shortBdf}, it is judged on its PF's bus ${hex2(bus.number)})`;
    if (!bus.isRoot()) {
      const up = bus.self;
      if (up === null) return { kind: 'fail', why: `bus ${hex2(bus.number)} has no bridge above it` };
      const g = this.table.groupOf(up);
      if (g === undefined) return { kind: 'wait', on: up, why: `its upstream bridge ${up.shortBdf} has no group yet` };
      if (g.nonIsolated) return join(g, 'bus-not-isolated', up, `${dev.shortBdf} joins ${up.shortBdf}'s group${vfNote}: ${this.whyCaptures(g)}`);
    }
    // 4. The device's own bus decides.
    const verdict = busIsolated(bus, this.ctx);
    switch (verdict.kind) {
      case 'PCIE_ISOLATED':
        return this.isolatedBus(dev, verdict, vfNote, step);
      case 'PCI_BRIDGE_NON_ISOLATED':
      case 'PCIE_NON_ISOLATED': {
        // The bridge (or switch upstream port) is reachable from below: the whole bus joins its group,
        // and so does everything further down.
        const up = bus.self;
        const g = up === null ? undefined : this.table.groupOf(up);
        if (up === null || g === undefined) return { kind: 'fail', why: `the bridge above bus ${hex2(bus.number)} has no group` };
        const kind = describeKind(up);
        this.markCaptures(g, `${verdict.why}; everything below ${kind} ${up.shortBdf} shares its group`);
        return join(g, 'bus-not-isolated', up, `${dev.shortBdf} joins ${up.shortBdf}'s group${vfNote}: ${verdict.why}`);
      }
      case 'PCI_BUS_NON_ISOLATED':
      case 'PCIE_SWITCH_DSP_NON_ISOLATED': {
        // The devices on the bus (a switch's downstream ports, or conventional PCI behind a bridge
        // without MMIO) share one group; the bridge above stays out of it.
        const below = verdict.kind === 'PCIE_SWITCH_DSP_NON_ISOLATED' ? 'so everything below them shares one group'
          : `so everything on bus ${hex2(bus.number)} and below shares one group`;
        for (const peer of bus.devices) {
          const g = this.table.groupOf(peer);
          if (g === undefined) continue;
          const warn = g.nonIsolated ? '' : ' (Linux warns: that group was not yet marked as capturing its subtree; now it is)';
          this.markCaptures(g, `${verdict.why}, ${below}`);
          return join(g, 'bus-not-isolated', peer, `${dev.shortBdf} joins ${peer.shortBdf}'s group${vfNote}: ${verdict.why}${warn}`);
        }
        const g = this.table.alloc(step('new-group', `${dev.shortBdf} starts the shared group of bus ${hex2(bus.number)}${vfNote}: ${verdict.why}`));
        this.markCaptures(g, `${verdict.why}, ${below}`);
        return { kind: 'placed' };
      }
    }
  }

  /** An isolated bus: same-slot functions and DMA aliases may still share, else a group of its own. */
  private isolatedBus(dev: PciDev, verdict: BusVerdict, vfNote: string, step: (rule: RuleId, text: string, via?: PciDev) => GroupStep): Outcome {
    const reach = this.reachable(dev);
    if (reach.members.length === 0) {
      this.table.alloc(step('new-group', `${dev.shortBdf} gets its own group${vfNote}: ${verdict.why}${this.aloneNote(dev)}`));
      return { kind: 'placed' };
    }
    const names = listed([dev, ...reach.members].sort((a, b) => a.devfn - b.devfn).map((d) => d.shortBdf), ', ');
    const bridges = [dev, ...reach.members].filter((d) => d.isBridge());
    const below = bridges.length === 0 ? '' : `; everything below ${listed(bridges.map((b) => b.shortBdf), ', ')} shares the group too`;
    const relations = listed(reach.all, '; ');
    const capture = `${names} can reach one another (${relations})${below}`;
    // The first function of the set (by devfn) that already has a group lends it.
    for (const holder of reach.members) {
      const g = this.table.groupOf(holder);
      if (g === undefined) continue;
      const path = reach.pathTo(holder);
      const rule: RuleId = path.every((l) => l.alias) ? 'dma-alias' : 'function-group';
      const warn = g.nonIsolated ? '' : ' (Linux warns: that group was not yet marked as capturing its subtree; now it is)';
      this.markCaptures(g, capture);
      this.table.join(g, step(rule, `${dev.shortBdf} joins ${holder.shortBdf}'s group${vfNote}: ${path.map((l) => l.text).join('; ')}${warn}`, holder));
      return { kind: 'placed' };
    }
    const g = this.table.alloc(step('new-group', `${dev.shortBdf} starts a group for ${names}${vfNote}: ${verdict.why}, but ${relations}${below}`));
    this.markCaptures(g, capture);
    return { kind: 'placed' };
  }

  /** Why a device without any sibling relation stands alone, when that is worth saying. */
  private aloneNote(dev: PciDev): string {
    if (!dev.multifunction || dev.isVirtfn()) return '';
    if (dev.acsCap === 0) return '; it lacks ACS, so it is assumed to have no internal loopback to its sibling functions';
    return `; it ${acsWhy2025(dev, PCI_ACS_ISOLATED, this.ctx)}, which keeps it from its sibling functions`;
  }

  /** Flag `g` as capturing everything downstream of its members, remembering the first reason. */
  private markCaptures(g: IommuGroup, why: string): void {
    g.nonIsolated = true;
    if (!this.captureWhy.has(g)) this.captureWhy.set(g, why);
  }

  private whyCaptures(g: IommuGroup): string {
    return this.captureWhy.get(g) ?? 'its group captures everything below it';
  }

  /**
   * pci_reachable_set() with the v3 relation: the same-bus functions reachable from `start` through DMA
   * aliases and same-slot loopback. `members` excludes `start` and is in devfn order.
   */
  private reachable(start: PciDev): { members: PciDev[]; all: string[]; pathTo: (d: PciDev) => Link[] } {
    const parent = new Map<PciDev, Link>();
    const seen = new Set<PciDev>([start]);
    const queue = [start];
    const all: string[] = [];
    for (let a = queue.shift(); a !== undefined; a = queue.shift()) {
      for (const b of start.bus.devices) {
        if (seen.has(b)) continue;
        const link = this.sameGroup(a, b);
        if (link === null) continue;
        seen.add(b);
        parent.set(b, link);
        all.push(link.text);
        queue.push(b);
      }
    }
    const members = [...seen].filter((d) => d !== start).sort((x, y) => x.devfn - y.devfn);
    const pathTo = (d: PciDev): Link[] => {
      const out: Link[] = [];
      let link = parent.get(d);
      while (link !== undefined) {
        out.unshift(link);
        link = parent.get(link.from);
      }
      return out;
    };
    return { members, all, pathTo };
  }

  /** pci_devs_are_same_group(a, b): DMA aliases, or functions of one device that may loop back. */
  private sameGroup(a: PciDev, b: PciDev): Link | null {
    if (devsAreDmaAliases(a, b)) {
      const text = a.hasDmaAlias(b.devfn) ? `${a.shortBdf} issues DMA as ${b.shortBdf}`
        : b.hasDmaAlias(a.devfn) ? `${b.shortBdf} issues DMA as ${a.shortBdf}` : `${a.shortBdf} and ${b.shortBdf} share a requester ID`;
      return { from: a, alias: true, text };
    }
    // pci_mfds_are_same_group(). VFs never join by this rule (a VF with loose ACS is not supported).
    if (a.isVirtfn() || b.isVirtfn() || PCI_SLOT(a.devfn) !== PCI_SLOT(b.devfn)) return null;
    if (a.multifunction !== b.multifunction) {
      return { from: a, alias: false, text: `${a.shortBdf} and ${b.shortBdf} disagree on being multifunction, so they are assumed to reach each other` };
    }
    if (!a.multifunction) return null;
    // v3: a function without an ACS capability is taken to have no internal loopback (PCIe r6
    // §6.12.1.2); one whose ACS capability does not isolate it reaches every function of its device.
    for (const f of [a, b]) {
      if (f.acsCap !== 0 && !acsEnabled2025(f, PCI_ACS_ISOLATED, this.ctx)) {
        const slot = `${hex2(f.busNumber)}:${hex2(f.slot)}`;
        return { from: a, alias: false, text: `function ${f.shortBdf} ${acsWhy2025(f, PCI_ACS_ISOLATED, this.ctx)}, so it can reach the other functions of ${slot}` };
      }
    }
    return null;
  }
}

function hex2(n: number): string { return n.toString(16).padStart(2, '0'); }

/** Join at most four items, then say how many more: explanations stay one readable line. */
function listed(items: readonly string[], sep: string): string {
  return items.length <= 4 ? items.join(sep) : `${items.slice(0, 3).join(sep)}${sep}and ${items.length - 3} more`;
}
