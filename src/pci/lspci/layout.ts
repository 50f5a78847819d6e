import {
  EXT_CAP_SIZES, PCI_CFG_SPACE_EXP_SIZE, PCI_CFG_SPACE_SIZE, PCI_EXP_CAP_SIZEOF_V2, PCI_EXT_CAP_ID_ACS,
  PCI_EXT_CAP_ID_ARI, PCI_EXT_CAP_ID_ATS, PCI_EXT_CAP_ID_PASID, PCI_EXT_CAP_ID_PRI, PCI_EXT_CAP_ID_SRIOV,
} from '../regs.ts';
import type { RawBar, RawFunction } from './raw.ts';
import type { Warnings } from './warnings.ts';

// The offsets and BAR numbers lspci prints are kept when the synthesiser (synth.ts) can lay them out
// as given; anything that would not fit a 4 KiB config space is moved, dropped or warned about here so
// that every imported spec builds.

/**
 * The Express capability offset to keep: its body must fit below 0x100; otherwise the synthesiser
 * chooses (only the offset moves). synth.ts puts Power Management in the first free gap.
 */
export function expressOffset(fn: RawFunction, offset: number, warnings: Warnings): number | undefined {
  if (offset < 0x40 || offset > 0xfc) {
    warnings.add(`line ${fn.line}: ${fn.address}: PCI Express capability at 0x${offset.toString(16)} is outside 0x40-0xfc; placed elsewhere`);
    return undefined;
  }
  return offset + PCI_EXP_CAP_SIZEOF_V2 <= PCI_CFG_SPACE_SIZE ? offset : undefined;
}

export type ExtCapName = 'acs' | 'ari' | 'ats' | 'pri' | 'pasid' | 'sriov';

const EXT_IDS: Readonly<Record<ExtCapName, number>> = {
  acs: PCI_EXT_CAP_ID_ACS, ari: PCI_EXT_CAP_ID_ARI, ats: PCI_EXT_CAP_ID_ATS,
  pri: PCI_EXT_CAP_ID_PRI, pasid: PCI_EXT_CAP_ID_PASID, sriov: PCI_EXT_CAP_ID_SRIOV,
};

/**
 * Decide each extended capability's offset: as printed when it lies in 0x100-0xfff and does not
 * overlap another's body; otherwise undefined (placed after the fixed ones). Returns the capabilities
 * that do not fit at all, which the caller drops.
 */
export function extCapOffsets(fn: RawFunction, caps: ReadonlyArray<readonly [ExtCapName, number]>, warnings: Warnings): { offsets: Map<ExtCapName, number | undefined>; dropped: ExtCapName[] } {
  const size = (name: ExtCapName): number => EXT_CAP_SIZES[EXT_IDS[name]] ?? 8;
  const offsets = new Map<ExtCapName, number | undefined>();
  const sorted = [...caps].sort((a, b) => a[1] - b[1]);
  let end = PCI_CFG_SPACE_SIZE;
  for (const [name, at] of sorted) {
    const inRange = at >= PCI_CFG_SPACE_SIZE && at + size(name) <= PCI_CFG_SPACE_EXP_SIZE;
    if (inRange && at >= end) {
      offsets.set(name, at);
      end = at + size(name);
    } else {
      warnings.add(`line ${fn.line}: ${fn.address}: ${name.toUpperCase()} capability at 0x${at.toString(16)} overlaps another or leaves config space; placed elsewhere`);
      offsets.set(name, undefined);
    }
  }
  // synth.ts places the unfixed ones, 4-aligned, after the highest fixed one.
  const dropped: ExtCapName[] = [];
  let cursor = end;
  for (const [name] of caps) {
    if (offsets.get(name) !== undefined) continue;
    cursor = (cursor + 3) & ~3;
    if (cursor + size(name) > PCI_CFG_SPACE_EXP_SIZE) {
      warnings.add(`line ${fn.line}: ${fn.address}: no room left for its ${name.toUpperCase()} capability; dropped`);
      dropped.push(name);
      offsets.delete(name);
      continue;
    }
    cursor += size(name);
  }
  return { offsets, dropped };
}

/** BARs that fit the header (6 for type 0, 2 for a bridge), each register described once. */
export function fittingBars(fn: RawFunction, bars: readonly RawBar[], count: number, warnings: Warnings): RawBar[] {
  const used = new Set<number>();
  const out: RawBar[] = [];
  for (const bar of bars) {
    const slots = bar.type === 'mem64' ? 2 : 1;
    const taken = used.has(bar.index) || (slots === 2 && used.has(bar.index + 1));
    if (bar.index + slots > count || taken) {
      warnings.add(`line ${bar.line}: ${fn.address}: region ${bar.index} ${taken ? 'is described twice' : `does not fit a header with ${count} BARs`}; dropped`);
      continue;
    }
    used.add(bar.index);
    if (slots === 2) used.add(bar.index + 1);
    out.push(bar);
  }
  return out;
}
