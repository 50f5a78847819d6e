import type { PciDev } from '../dev.ts';
import type { GroupingRun } from '../groups/compute.ts';
import type { IommuGroup } from '../groups/types.ts';

/** A group as the diff shows it: its ID and member labels ("03:00.0", or "03:00.0→05:00.0" when moved). */
export interface DiffGroup {
  readonly id: number;
  readonly members: readonly string[];
}

export interface GroupDiff {
  /** Same members, same ID. */
  readonly unchanged: readonly DiffGroup[];
  /** Same members, another ID: only the numbering changed. */
  readonly renumbered: ReadonlyArray<{ readonly from: number; readonly to: number; readonly members: readonly string[] }>;
  /** Several groups became one. */
  readonly merged: ReadonlyArray<{ readonly from: readonly DiffGroup[]; readonly into: DiffGroup }>;
  /** One group became several. */
  readonly split: ReadonlyArray<{ readonly from: DiffGroup; readonly into: readonly DiffGroup[] }>;
  /** A device that left one group for another, where groups did not simply merge or split. */
  readonly moved: ReadonlyArray<{ readonly device: string; readonly from: DiffGroup; readonly to: DiffGroup }>;
  /** Devices that had a group and have none now (IOMMU off, not covered). */
  readonly ungrouped: ReadonlyArray<{ readonly device: string; readonly from: number; readonly reason: string }>;
  /** Devices that have a group only now. */
  readonly newlyGrouped: ReadonlyArray<{ readonly device: string; readonly to: DiffGroup }>;
  /** No device changed company: at most the numbering differs. */
  readonly samePartition: boolean;
}

export interface DiffOptions {
  /** Old short BDF -> new short BDF for devices a what-if moved, so they are matched across the runs. */
  readonly renamed?: ReadonlyMap<string, string>;
}

/**
 * Devices are matched across two runs by address; a moved device by its address before the move, which
 * is its key. A label shows both addresses of a moved device.
 */
export class DeviceIdentity {
  private readonly back = new Map<string, string>();
  constructor(private readonly renamed: ReadonlyMap<string, string> = new Map()) {
    for (const [from, to] of renamed) this.back.set(to, from);
  }
  beforeKey(dev: PciDev): string { return dev.shortBdf; }
  afterKey(dev: PciDev): string { return this.back.get(dev.shortBdf) ?? dev.shortBdf; }
  label(key: string): string {
    const to = this.renamed.get(key);
    return to === undefined ? key : `${key}→${to}`;
  }
  /** The new address of a device known by its key. */
  afterAddress(key: string): string { return this.renamed.get(key) ?? key; }
  wasMoved(key: string): boolean { return this.renamed.has(key); }
}

/** Each run's groups by device key. */
export function groupsByKey(run: GroupingRun, key: (d: PciDev) => string): Map<string, IommuGroup> {
  const out = new Map<string, IommuGroup>();
  for (const g of run.groups) for (const d of g.devices) out.set(key(d), g);
  return out;
}

/** Compare two groupings of (nearly) the same host, matching devices by address. */
export function diffGroupings(before: GroupingRun, after: GroupingRun, options: DiffOptions = {}): GroupDiff {
  const ids = new DeviceIdentity(options.renamed);
  const bOf = groupsByKey(before, (d) => ids.beforeKey(d));
  const aOf = groupsByKey(after, (d) => ids.afterKey(d));
  const view = (g: IommuGroup, side: 'before' | 'after'): DiffGroup => ({
    id: g.id,
    members: g.devices.map((d) => ids.label(side === 'before' ? ids.beforeKey(d) : ids.afterKey(d))),
  });

  const ungrouped = [...bOf].filter(([k]) => !aOf.has(k)).map(([k, g]) => {
    const u = after.uncovered.find((x) => ids.afterKey(x.device) === k);
    return { device: ids.label(k), from: g.id, reason: u?.reason ?? 'the device is no longer present' };
  });
  const newlyGrouped = [...aOf].filter(([k]) => !bOf.has(k)).map(([k, g]) => ({ device: ids.label(k), to: view(g, 'after') }));

  // Groups on both sides are nodes; a device found in both links its two groups. Each connected
  // component is one story: unchanged, renumbered, a merge, a split, or devices moving around.
  const parent = new Map<string, string>();
  const find = (x: string): string => {
    let r = x;
    while (parent.has(r) && parent.get(r) !== r) r = parent.get(r) ?? r;
    parent.set(x, r);
    return r;
  };
  const union = (x: string, y: string): void => { parent.set(find(x), find(y)); };
  const common = [...bOf.keys()].filter((k) => aOf.has(k));
  for (const k of common) union(`b${bOf.get(k)?.id}`, `a${aOf.get(k)?.id}`);
  const components = new Map<string, { bs: Set<IommuGroup>; as: Set<IommuGroup>; keys: string[] }>();
  for (const k of common) {
    const root = find(`b${bOf.get(k)?.id}`);
    let c = components.get(root);
    if (c === undefined) components.set(root, (c = { bs: new Set(), as: new Set(), keys: [] }));
    c.bs.add(bOf.get(k) as IommuGroup);
    c.as.add(aOf.get(k) as IommuGroup);
    c.keys.push(k);
  }

  const unchanged: DiffGroup[] = [];
  const renumbered: Array<GroupDiff['renumbered'][number]> = [];
  const merged: Array<GroupDiff['merged'][number]> = [];
  const split: Array<GroupDiff['split'][number]> = [];
  const moved: Array<GroupDiff['moved'][number]> = [];
  for (const c of [...components.values()].sort((x, y) => minId(x.bs) - minId(y.bs))) {
    const bs = [...c.bs].sort((x, y) => x.id - y.id);
    const as = [...c.as].sort((x, y) => x.id - y.id);
    const [b0] = bs;
    const [a0] = as;
    if (b0 === undefined || a0 === undefined) continue;
    if (bs.length === 1 && as.length === 1) {
      if (b0.id === a0.id) unchanged.push(view(a0, 'after'));
      else renumbered.push({ from: b0.id, to: a0.id, members: view(a0, 'after').members });
    } else if (bs.length === 1) {
      split.push({ from: view(b0, 'before'), into: as.map((g) => view(g, 'after')) });
    } else if (as.length === 1) {
      merged.push({ from: bs.map((g) => view(g, 'before')), into: view(a0, 'after') });
    } else {
      for (const k of movedKeys(c.keys, bOf, aOf)) {
        moved.push({ device: ids.label(k), from: view(bOf.get(k) as IommuGroup, 'before'), to: view(aOf.get(k) as IommuGroup, 'after') });
      }
    }
  }
  const samePartition = merged.length === 0 && split.length === 0 && moved.length === 0 && ungrouped.length === 0 && newlyGrouped.length === 0;
  return { unchanged, renumbered, merged, split, moved, ungrouped, newlyGrouped, samePartition };
}

function minId(groups: Set<IommuGroup>): number {
  return Math.min(...[...groups].map((g) => g.id));
}

/**
 * In a tangled component, pair each old group with the new group it overlaps most (same ID first on a
 * tie, so stable numbering wins); devices whose old and new group are not a pair are the ones that moved.
 */
function movedKeys(keys: readonly string[], bOf: Map<string, IommuGroup>, aOf: Map<string, IommuGroup>): string[] {
  const overlap = new Map<string, { b: IommuGroup; a: IommuGroup; n: number }>();
  for (const k of keys) {
    const b = bOf.get(k) as IommuGroup;
    const a = aOf.get(k) as IommuGroup;
    const id = `${b.id}/${a.id}`;
    const o = overlap.get(id);
    if (o === undefined) overlap.set(id, { b, a, n: 1 });
    else o.n++;
  }
  const pairs = [...overlap.values()].sort((x, y) => y.n - x.n || Number(y.b.id === y.a.id) - Number(x.b.id === x.a.id) || x.b.id - y.b.id || x.a.id - y.a.id);
  const usedB = new Set<IommuGroup>();
  const usedA = new Set<IommuGroup>();
  const matched = new Set<string>();
  for (const p of pairs) {
    if (usedB.has(p.b) || usedA.has(p.a)) continue;
    usedB.add(p.b);
    usedA.add(p.a);
    matched.add(`${p.b.id}/${p.a.id}`);
  }
  return keys.filter((k) => !matched.has(`${bOf.get(k)?.id}/${aOf.get(k)?.id}`));
}

/** The diff as lines a person reads, most consequential first. */
export function formatGroupDiff(diff: GroupDiff): string[] {
  const g = (x: DiffGroup): string => `group ${x.id} {${x.members.join(' ')}}`;
  const lines: string[] = [];
  for (const m of diff.merged) lines.push(`merged: ${m.from.map(g).join(' + ')} -> ${g(m.into)}`);
  for (const s of diff.split) lines.push(`split: ${g(s.from)} -> ${s.into.map(g).join(' + ')}`);
  for (const m of diff.moved) lines.push(`moved: ${m.device} from ${g(m.from)} to ${g(m.to)}`);
  for (const u of diff.ungrouped) lines.push(`no group now: ${u.device} (was group ${u.from}): ${u.reason}`);
  for (const n of diff.newlyGrouped) lines.push(`grouped now: ${n.device} in ${g(n.to)}`);
  for (const r of diff.renumbered) lines.push(`renumbered only: group ${r.from} -> ${r.to} {${r.members.join(' ')}}`);
  if (diff.unchanged.length > 0) lines.push(`unchanged: ${diff.unchanged.length} group${diff.unchanged.length === 1 ? '' : 's'}`);
  if (diff.samePartition) lines.unshift(diff.renumbered.length === 0 ? 'no change in the groups' : 'the same groups; only their numbers change');
  return lines;
}
