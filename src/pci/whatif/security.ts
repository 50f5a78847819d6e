import { selectorMatches } from '../boot.ts';
import type { PciDev } from '../dev.ts';
import { acsEnabled, acsPathBlocker, acsVerdictReason, describeKind } from '../groups/acs.ts';
import { acsBitNames } from '../groups/acs-names.ts';
import { acsContextOf, type GroupingRun } from '../groups/compute.ts';
import type { IommuGroup } from '../groups/types.ts';
import { REQ_ACS_FLAGS } from '../regs.ts';
import { configAcsBits } from './acs-notes.ts';
import { DeviceIdentity, groupsByKey, type DiffOptions } from './diff.ts';
import { groupsWithoutOverride } from './hardware.ts';

/**
 * What the change from `before` to `after` means for isolation, in plain words: for device sets that
 * stopped or started sharing a group, the cause. A split is checked against the same host without
 * pcie_acs_override, so an isolation the hardware does not provide is called out.
 */
export function securityNotes(before: GroupingRun, after: GroupingRun, options: DiffOptions = {}): string[] {
  if (before.groups.length > 0 && after.groups.length === 0) {
    return ['With the IOMMU off no device has a group: nothing confines DMA, any device can read and write all of memory, and vfio-pci can assign devices only in the unsafe no-IOMMU mode.'];
  }
  if (before.groups.length === 0 && after.groups.length > 0) {
    return ['With the IOMMU on every covered device gets a group: its DMA is confined to what the IOMMU maps, and a VM can be given whole groups.'];
  }
  const why = new Causes(before, after, new DeviceIdentity(options.renamed));
  const notes: string[] = [];
  for (const [pieces, side] of [...why.splits().map((p) => [p, 'split'] as const), ...why.merges().map((p) => [p, 'merge'] as const)]) {
    // Pairs of pieces with the same cause make one note naming all of them.
    const buckets = new Map<string, { cause: Cause; pieces: Set<readonly string[]> }>();
    for (let i = 0; i < pieces.length; i++) {
      for (let j = i + 1; j < pieces.length; j++) {
        const [x, y] = [pieces[i] ?? [], pieces[j] ?? []];
        const cause = side === 'split' ? why.separation(x, y) : why.joining(x, y);
        const b = buckets.get(cause.key) ?? { cause, pieces: new Set() };
        b.pieces.add(x).add(y);
        buckets.set(cause.key, b);
      }
    }
    for (const b of buckets.values()) {
      const n = b.cause.text([...b.pieces]);
      if (!notes.includes(n)) notes.push(n);
    }
  }
  return notes.length > 0 ? notes : ['No device changes company: isolation is unchanged.'];
}

const EDITED = 'its ACS Control was changed';

/** A reason, and how to say it for the device sets it applies to. */
interface Cause {
  readonly key: string;
  readonly text: (pieces: ReadonlyArray<readonly string[]>) => string;
}

/** Finds, for device sets that parted or joined, the most specific reason. */
class Causes {
  private readonly bOf: Map<string, IommuGroup>;
  private readonly aOf: Map<string, IommuGroup>;
  private hwAfter: Map<string, IommuGroup> | null | undefined;
  private hwBefore: Map<string, IommuGroup> | null | undefined;

  constructor(private readonly before: GroupingRun, private readonly after: GroupingRun, private readonly ids: DeviceIdentity) {
    this.bOf = groupsByKey(before, (d) => ids.beforeKey(d));
    this.aOf = groupsByKey(after, (d) => ids.afterKey(d));
  }

  /** Old groups whose devices now sit in several groups: the pieces, as device keys. */
  splits(): string[][][] {
    return this.partitionBy(this.bOf, this.aOf).filter((p) => p.length > 1);
  }

  /** New groups drawing devices from several old groups. */
  merges(): string[][][] {
    return this.partitionBy(this.aOf, this.bOf).filter((p) => p.length > 1);
  }

  /** For each `outer` group, its devices split by their `inner` group. */
  private partitionBy(outer: Map<string, IommuGroup>, inner: Map<string, IommuGroup>): string[][][] {
    const out = new Map<IommuGroup, Map<IommuGroup, string[]>>();
    for (const [k, g] of outer) {
      const h = inner.get(k);
      if (h === undefined) continue;
      let m = out.get(g);
      if (m === undefined) out.set(g, (m = new Map<IommuGroup, string[]>()));
      m.set(h, [...(m.get(h) ?? []), k]);
    }
    return [...out.values()].map((m) => [...m.values()]);
  }

  separation(x: readonly string[], y: readonly string[]): Cause {
    const hw = this.hw('after');
    if (hw !== null && x.some((a) => y.some((b) => hw.get(a) !== undefined && hw.get(a) === hw.get(b)))) {
      return {
        key: 'override',
        text: (p) => `pcie_acs_override makes ${this.list(p)} look isolated while the hardware still allows P2P between them: Linux now believes it, the hardware does not. A guest given one can reach the other${p.length > 2 ? 's' : ''} by DMA the IOMMU never sees.`,
      };
    }
    const moved = [...x, ...y].find((k) => this.ids.wasMoved(k));
    if (moved !== undefined) {
      const old = this.upstream(moved, 'before');
      const now = this.upstream(moved, 'after');
      const result = now.isolated
        ? `now ${now.reason}, so its peer traffic goes up through the IOMMU and it is isolated for real`
        : `now ${now.reason}`;
      return {
        key: `moved ${moved}`,
        text: (p) => `${this.ids.label(moved)} moved from ${old.where} to ${now.where}: before, ${old.reason}; ${result}. It no longer shares a group with ${this.others(p, moved)}.`,
      };
    }
    if (this.before.algorithm !== this.after.algorithm) {
      return this.after.algorithm === 'proposed-2025'
        ? { key: 'algorithm', text: (p) => `The proposed 2025 algorithm separates ${this.list(p)}: it assumes functions and root ports without an ACS capability have no internal P2P path (PCIe r6 §6.12.1.2). That is a reading of the specification, not new isolation in the hardware.` }
        : { key: 'algorithm', text: (p) => `Mainline Linux separates ${this.list(p)}, which the proposed 2025 algorithm keeps together: where mainline is narrower it is the known isolation bug (e.g. switch downstream ports without ACS), not real isolation.` };
    }
    const acs = this.acsChange([...x, ...y], 'gained');
    if (acs !== null) {
      return {
        key: `acs ${acs.port}`,
        text: (p) => `ACS on ${acs.port} now enables ${acs.bits} (${acs.source}): peer requests between ${this.list(p)} are redirected up through the IOMMU, a real isolation gain.`,
      };
    }
    return { key: 'other', text: (p) => `Linux now treats ${this.list(p)} as isolated from each other.` };
  }

  joining(x: readonly string[], y: readonly string[]): Cause {
    const hwBefore = this.hw('before');
    if (hwBefore !== null && this.after.booted.options.acsOverride === null
      && x.some((a) => y.some((b) => hwBefore.get(a) !== undefined && hwBefore.get(a) === hwBefore.get(b)))) {
      return { key: 'override', text: (p) => `Without pcie_acs_override Linux again sees the P2P path the hardware always had between ${this.list(p)}: the wider group is the true one.` };
    }
    const moved = [...x, ...y].find((k) => this.ids.wasMoved(k));
    if (moved !== undefined) {
      const now = this.upstream(moved, 'after');
      return {
        key: `moved ${moved}`,
        text: (p) => `${this.ids.label(moved)} moved to ${now.where}, where ${now.reason}: it can now reach ${this.others(p, moved)} by P2P without the IOMMU seeing it, so they share a group.`,
      };
    }
    if (this.before.algorithm !== this.after.algorithm) {
      return this.after.algorithm === 'proposed-2025'
        ? { key: 'algorithm', text: (p) => `The proposed 2025 algorithm puts ${this.list(p)} in one group because the old result was too narrow: a real isolation bug fixed (they can reach each other by P2P, which mainline Linux ignores). A setup that assigned only some of them is no longer viable until the rest go too.` }
        : { key: 'algorithm', text: (p) => `Mainline Linux groups ${this.list(p)} together: it assumes functions and root ports without an ACS capability can pass P2P traffic internally.` };
    }
    const acs = this.acsChange([...x, ...y], 'lost');
    if (acs !== null) {
      const what = acs.source === EDITED ? `ACS Control of ${acs.port} loses ${acs.bits}` : `${acs.source} clears ${acs.bits} on ${acs.port}`;
      return { key: `acs ${acs.port}`, text: (p) => `${what}: P2P is now allowed, and the groups widen to match (${this.list(p)} can reach each other without the IOMMU).` };
    }
    return { key: 'other', text: (p) => `${this.list(p)} can now reach each other without the IOMMU in between, so Linux groups them together.` };
  }

  /** The first device on the way up from these devices whose ACS verdict changed in the given direction. */
  private acsChange(keys: readonly string[], direction: 'gained' | 'lost'): { port: string; bits: string; source: string } | null {
    const ctxB = acsContextOf(this.before.booted);
    const ctxA = acsContextOf(this.after.booted);
    const seen = new Set<PciDev>();
    for (const k of keys) {
      for (let p: PciDev | null | undefined = this.afterDev(k); p !== null && p !== undefined && !seen.has(p); p = p.bus.self) {
        seen.add(p);
        const q = this.before.booted.host.topology.get(this.ids.afterKey(p));
        if (q === undefined) continue;
        const was = acsEnabled(q, REQ_ACS_FLAGS, ctxB);
        const is = acsEnabled(p, REQ_ACS_FLAGS, ctxA);
        if (direction === 'gained' ? was || !is : !was || is) continue;
        const diff = direction === 'gained' ? p.acsCtrlReg() & ~q.acsCtrlReg() : q.acsCtrlReg() & ~p.acsCtrlReg();
        return { port: `${describeKind(p)} ${p.shortBdf}`, bits: acsBitNames(diff & REQ_ACS_FLAGS), source: this.acsSource(p) };
      }
    }
    return null;
  }

  /** The command-line option that rewrote a device's ACS Control, else a plain edit. */
  private acsSource(dev: PciDev): string {
    const o = this.after.booted.options;
    const old = this.before.booted.options;
    const redir = o.disableAcsRedir.find((s) => selectorMatches(s, dev) && !old.disableAcsRedir.some((t) => t.text === s.text));
    if (redir !== undefined) return `pci=disable_acs_redir=${redir.text}`;
    const cfg = o.configAcs.find((c) => selectorMatches(c.selector, dev) && !old.configAcs.some((t) => t.selector.text === c.selector.text && t.mask === c.mask && t.flags === c.flags));
    if (cfg !== undefined) return `pci=config_acs=${configAcsBits(cfg.mask, cfg.flags)}@${cfg.selector.text}`;
    return EDITED;
  }

  private hw(side: 'before' | 'after'): Map<string, IommuGroup> | null {
    const cached = side === 'before' ? this.hwBefore : this.hwAfter;
    if (cached !== undefined) return cached;
    const run = groupsWithoutOverride(side === 'before' ? this.before : this.after);
    const map = run === null ? null : groupsByKey(run, (d) => (side === 'before' ? this.ids.beforeKey(d) : this.ids.afterKey(d)));
    if (side === 'before') this.hwBefore = map;
    else this.hwAfter = map;
    return map;
  }

  private afterDev(key: string): PciDev | undefined {
    return this.after.booted.host.topology.get(this.ids.afterAddress(key));
  }

  /** Where a device sits: the bridge above it, whether that path isolates, and Linux's reason. */
  private upstream(key: string, side: 'before' | 'after'): { where: string; reason: string; isolated: boolean } {
    const run = side === 'before' ? this.before : this.after;
    const dev = run.booted.host.topology.get(side === 'before' ? key : this.ids.afterAddress(key));
    const up = dev?.bus.self ?? null;
    if (up === null) return { where: 'a root bus', reason: 'no bridge stood in between', isolated: true };
    const ctx = acsContextOf(run.booted);
    const blocker = acsPathBlocker(up, REQ_ACS_FLAGS, ctx);
    return { where: `behind ${describeKind(up)} ${up.shortBdf}`, reason: acsVerdictReason(blocker ?? up, REQ_ACS_FLAGS, ctx), isolated: blocker === null };
  }

  /** "01:00.0, {02:02.0 04:00.0} and 03:00.0": pieces of a group, a multi-device piece in braces. */
  private list(pieces: ReadonlyArray<readonly string[]>): string {
    const names = pieces.map((p) => (p.length === 1 ? this.ids.label(p[0] ?? '') : `{${p.map((k) => this.ids.label(k)).join(' ')}}`));
    const shown = names.length > 5 ? [...names.slice(0, 4), `${names.length - 4} more`] : names;
    return shown.length <= 1 ? shown.join('') : `${shown.slice(0, -1).join(', ')} and ${shown[shown.length - 1]}`;
  }

  /** The pieces other than the one holding `key`. */
  private others(pieces: ReadonlyArray<readonly string[]>, key: string): string {
    return this.list(pieces.filter((p) => !p.includes(key)));
  }
}
