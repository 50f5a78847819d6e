import { formatAddress, parseAddress } from '../../pci/address.ts';
import type { DiffGroup, GroupDiff } from '../../pci/whatif/diff.ts';
import type { Colors } from '../io.ts';
import { groupPaint } from './palette.ts';

// --what-if: the changes, the group diff before -> after, and what the change means for isolation.

const members = (g: DiffGroup): string => g.members.join(' ');
/** Items of one kind spelled out one per line before they are summarised. */
const MAX_LISTED = 4;

/** The diff, most consequential first: merges, splits, moves, coverage; then renumbering and the rest. */
export function renderDiff(diff: GroupDiff, c: Colors): string[] {
  const tag = (g: DiffGroup): string => `${groupPaint(c, g.id)(`group ${g.id}`)} {${members(g)}}`;
  const out: string[] = [];
  if (diff.samePartition) {
    out.push(diff.renumbered.length === 0 ? c.green('no change in the groups') : c.green('the same groups; only their numbers change'));
  }
  for (const m of diff.merged) {
    out.push(`${c.red('merged')}: ${m.from.map(tag).join(' + ')}`);
    out.push(`     -> ${tag(m.into)}`);
  }
  for (const s of diff.split) {
    out.push(`${c.green('split')}: ${tag(s.from)}`);
    out.push(`    -> ${s.into.map(tag).join(' + ')}`);
  }
  for (const m of diff.moved) out.push(`${c.yellow('moved')}: ${m.device} from ${tag(m.from)} to ${tag(m.to)}`);
  // Many devices losing their group for one reason (the IOMMU turned off) read best as one line.
  const byReason = new Map<string, Array<GroupDiff['ungrouped'][number]>>();
  for (const u of diff.ungrouped) byReason.set(u.reason, [...(byReason.get(u.reason) ?? []), u]);
  for (const [reason, list] of byReason) {
    if (list.length <= MAX_LISTED) {
      for (const u of list) out.push(`${c.red('no group now')}: ${u.device} (was group ${u.from}): ${reason}`);
    } else {
      const all = diff.unchanged.length === 0 && diff.renumbered.length === 0 && byReason.size === 1 && diff.merged.length === 0 && diff.split.length === 0 && diff.moved.length === 0;
      const who = all ? `all ${list.length} functions` : `${list.length} functions (${list.slice(0, MAX_LISTED).map((u) => u.device).join(' ')} ...)`;
      out.push(`${c.red('no group now')}: ${who}: ${reason}`);
    }
  }
  for (const n of diff.newlyGrouped) out.push(`${c.green('grouped now')}: ${n.device} in ${tag(n.to)}`);
  // Renumbering is a side effect; spell out only groups holding moved devices when there are many.
  const renumberedMoved = diff.renumbered.filter((r) => r.members.some((m) => m.includes('→')));
  const renumberedRest = diff.renumbered.filter((r) => !renumberedMoved.includes(r));
  const spelled = diff.renumbered.length <= MAX_LISTED ? diff.renumbered : renumberedMoved;
  for (const r of spelled) out.push(c.dim(`renumbered: group ${r.from} -> ${r.to} {${r.members.join(' ')}}`));
  if (spelled !== diff.renumbered && renumberedRest.length > 0) {
    out.push(c.dim(`renumbered, same members: ${renumberedRest.length} groups (${renumberedRest.map((r) => `${r.from}->${r.to}`).join(', ')})`));
  }
  if (diff.unchanged.length > 0) out.push(c.dim(`unchanged: ${diff.unchanged.length} group${diff.unchanged.length === 1 ? '' : 's'}`));
  return out;
}

/** "03:00.0" -> "0000:03:00.0"; "03:00.0→05:00.0" -> both full. Anything else unchanged. */
export function fullLabel(label: string): string {
  return label.split('→').map((part) => {
    const a = parseAddress(part);
    return a === undefined ? part : formatAddress(a);
  }).join('→');
}

const fullGroup = (g: DiffGroup): DiffGroup => ({ id: g.id, members: g.members.map(fullLabel) });

/** The diff for --json, with every address in dddd:bb:dd.f form. */
export function diffJson(diff: GroupDiff): GroupDiff {
  return {
    unchanged: diff.unchanged.map(fullGroup),
    renumbered: diff.renumbered.map((r) => ({ from: r.from, to: r.to, members: r.members.map(fullLabel) })),
    merged: diff.merged.map((m) => ({ from: m.from.map(fullGroup), into: fullGroup(m.into) })),
    split: diff.split.map((s) => ({ from: fullGroup(s.from), into: s.into.map(fullGroup) })),
    moved: diff.moved.map((m) => ({ device: fullLabel(m.device), from: fullGroup(m.from), to: fullGroup(m.to) })),
    ungrouped: diff.ungrouped.map((u) => ({ device: fullLabel(u.device), from: u.from, reason: u.reason })),
    newlyGrouped: diff.newlyGrouped.map((n) => ({ device: fullLabel(n.device), to: fullGroup(n.to) })),
    samePartition: diff.samePartition,
  };
}
