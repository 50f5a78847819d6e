import { formatShortAddress } from '../address.ts';
import { bootHost, type BootedHost } from '../boot.ts';
import { acsBitNames } from '../groups/acs-names.ts';
import type { Algorithm } from '../groups/types.ts';
import { parseKernelCmdline } from '../kernel-options.ts';
import { PCI_ACS_CR, PCI_ACS_RR, PCI_ACS_SV, PCI_ACS_UF } from '../regs.ts';
import { hostSpecSchema, type FunctionSpec, type HostSpec, type PlatformSpec } from '../spec.ts';
import { acsNotes, type AcsEditRecord } from './acs-notes.ts';
import { moveCard } from './move.ts';
import { formatWhatIf } from './parse.ts';
import {
  addressOf, appendOptions, describeFunction, functionAt, isAcsOverrideWord, isIommuOffWord, removeOptions, splitWords,
} from './spec-edit.ts';
import { WhatIfError, type WhatIfBase, type WhatIfChange, type WhatIfResult } from './types.ts';

/** The bits Linux's pci_std_enable_acs() turns on, and what a firmware "ACS enable" option sets. */
const ISOLATION_BITS = PCI_ACS_SV | PCI_ACS_RR | PCI_ACS_CR | PCI_ACS_UF;

/** Mutable state threaded through the changes; the input is never touched. */
interface State {
  spec: HostSpec;
  cmdline: string;
  algorithm: Algorithm;
  readonly applied: string[];
  renamed: Map<string, string>;
  readonly acsEdits: AcsEditRecord[];
  biosAcs: boolean;
}

/**
 * Apply what-if changes in order to a host, its command line and algorithm, and return the new ones with
 * a line per change saying what it does. Pure: the input spec is not mutated. Observed group numbers are
 * dropped from the result, since no kernel ever ran the hypothetical host.
 */
export function applyWhatIf(base: WhatIfBase, changes: readonly WhatIfChange[]): WhatIfResult {
  const st: State = {
    spec: structuredClone(base.spec), cmdline: base.cmdline.trim(), algorithm: base.algorithm,
    applied: [], renamed: new Map(), acsEdits: [], biosAcs: false,
  };
  for (const change of changes) applyOne(st, change);
  if (changes.length === 0) return { spec: st.spec, cmdline: st.cmdline, algorithm: st.algorithm, applied: [], renamed: st.renamed };

  let spec: HostSpec;
  let booted: BootedHost;
  try {
    spec = hostSpecSchema.parse({ ...st.spec, functions: st.spec.functions.map(withoutObservation) });
    booted = bootHost(spec, st.cmdline);
  } catch (e) {
    throw new WhatIfError(`the changed host cannot boot: ${e instanceof Error ? e.message : String(e)}`);
  }
  const applied = [...st.applied, ...acsNotes(st.acsEdits, booted), ...biosAcsNote(st, booted)];
  return { spec, cmdline: st.cmdline, algorithm: st.algorithm, applied, renamed: st.renamed };
}

function applyOne(st: State, change: WhatIfChange): void {
  switch (change.kind) {
    case 'acs': return editAcs(st, change);
    case 'bios-acs': return biosAcs(st, change.enabled);
    case 'cmdline': {
      st.cmdline = appendOptions(st.cmdline, change.options);
      st.applied.push(`kernel command line + ${change.options}${glossOptions(change.options)}`);
      return;
    }
    case 'move': {
      const out = moveCard(st.spec, change.device, change.bridge);
      st.spec = out.spec;
      // Compose with earlier moves, and follow ACS edits made before this move to their new address.
      const composed = new Map<string, string>();
      for (const [from, to] of st.renamed) composed.set(from, out.renamed.get(to) ?? to);
      for (const [from, to] of out.renamed) if (![...st.renamed.values()].includes(from)) composed.set(from, to);
      for (const [from, to] of composed) if (from === to) composed.delete(from);
      st.renamed = composed;
      for (const e of st.acsEdits) e.address = out.renamed.get(e.address) ?? e.address;
      st.applied.push(out.text);
      return;
    }
    case 'algorithm': {
      st.algorithm = change.algorithm;
      st.applied.push(change.algorithm === 'linux'
        ? 'groups formed by mainline pci_device_group() (Linux v3.x to v6.17)'
        : 'groups formed by the proposed 2025 rework ("Fix incorrect iommu_groups with PCIe ACS", not in mainline); it may widen groups');
      return;
    }
    case 'iommu': return change.enabled ? iommuOn(st) : iommuOff(st);
  }
}

function replaceFunction(st: State, old: FunctionSpec, next: FunctionSpec): void {
  st.spec = { ...st.spec, functions: st.spec.functions.map((f) => (f === old ? next : f)) };
}

function postBootWords(spec: HostSpec): string {
  return spec.acsCtl === 'post-boot'
    ? 'the value the lspci dump shows, read after the source kernel enabled ACS; the firmware value is not in a dump'
    : 'the firmware value, before Linux enables ACS at boot';
}

function editAcs(st: State, change: Extract<WhatIfChange, { kind: 'acs' }>): void {
  const what = formatWhatIf(change);
  const fn = functionAt(st.spec, change.device, what);
  if (fn.acs === undefined) {
    throw new WhatIfError(`${what}: ${describeFunction(fn)} has no ACS capability, so it has no ACS Control to change; only a quirk or pcie_acs_override changes how Linux judges it`);
  }
  const { cap, ctl } = fn.acs;
  const e = change.edit;
  let next: number;
  let extra = '';
  if (e.mode === 'on') next = cap;
  else if (e.mode === 'off') next = 0;
  else {
    const missing = e.set & ~cap;
    if (missing !== 0) throw new WhatIfError(`${what}: ${describeFunction(fn)} does not implement ${acsBitNames(missing)} (its ACSCap has ${acsBitNames(cap)}); an unimplemented bit reads as 0 and cannot be set`);
    const idle = e.clear & ~cap;
    if (idle !== 0) extra = `; ${acsBitNames(idle)} ${idle & (idle - 1) ? 'are' : 'is'} not implemented, nothing to clear`;
    next = (ctl | e.set) & ~e.clear;
  }
  // What Linux would run with if it honoured the edit: today's effective value, edited.
  const address = formatShortAddress(addressOf(fn));
  const before = bootHost(st.spec, st.cmdline).host.topology.get(address)?.acsCtrlReg() ?? ctl;
  const intended = e.mode === 'bits' ? (before | e.set) & ~e.clear : next;
  replaceFunction(st, fn, { ...fn, acs: { ...fn.acs, ctl: next } });
  st.acsEdits.push({ address, intended, what });
  st.applied.push(`ACS Control of ${describeFunction(fn)}: ${acsBitNames(ctl)} -> ${acsBitNames(next)} (${postBootWords(st.spec)})${extra}`);
}

function biosAcs(st: State, enabled: boolean): void {
  const touched: string[] = [];
  const functions = st.spec.functions.map((f) => {
    if (f.acs === undefined) return f;
    const ctl = enabled ? f.acs.cap & ISOLATION_BITS : 0;
    if (ctl === f.acs.ctl) return f;
    touched.push(formatShortAddress(addressOf(f)));
    return { ...f, acs: { ...f.acs, ctl } };
  });
  st.spec = { ...st.spec, functions };
  st.biosAcs = true;
  const list = touched.length === 0 ? 'no ACS Control changes' : `ACS Control ${enabled ? 'set to the SV RR CR UF implemented' : 'cleared'} on ${touched.length} function${touched.length === 1 ? '' : 's'} (${abbreviate(touched)})`;
  st.applied.push(`BIOS ACS ${enabled ? 'enabled' : 'disabled'}: ${list}; ${postBootWords(st.spec)}`);
}

function biosAcsNote(st: State, booted: BootedHost): string[] {
  if (!st.biosAcs) return [];
  if (!booted.options.iommu || booted.host.platform.iommu === 'none') {
    return ['with the IOMMU off Linux enables no ACS, so the firmware values stay; but there are no groups either'];
  }
  return ['at boot the IOMMU driver has Linux enable SV RR CR UF on every function with an ACS capability, whatever the firmware left (pci_enable_acs), so the firmware setting alone does not change the groups; TB, EC and DT keep the firmware values'];
}

function iommuOff(st: State): void {
  const platform = st.spec.platform.iommu;
  if (platform === 'none') {
    st.applied.push('iommu:off: the host has no IOMMU already');
    return;
  }
  const word = platform === 'intel' ? 'intel_iommu=off' : platform === 'amd' ? 'amd_iommu=off' : 'iommu=off';
  const { cmdline } = removeOptions(st.cmdline, (w) => /^(intel_|amd_)?iommu=on\b/.test(w));
  st.cmdline = appendOptions(cmdline, word);
  st.applied.push(`kernel command line + ${word}: no IOMMU groups at all, no DMA isolation, and no ACS enabling at boot`);
}

function iommuOn(st: State): void {
  const { cmdline, removed } = removeOptions(st.cmdline, isIommuOffWord);
  st.cmdline = cmdline;
  const notes: string[] = [];
  if (removed.length > 0) notes.push(`removed ${removed.join(' ')} from the command line`);
  if (st.spec.platform.iommu === 'none') {
    const iommu = guessIommu(st.spec);
    const platform: PlatformSpec = { ...st.spec.platform, iommu };
    st.spec = { ...st.spec, platform };
    notes.push(`the host description had no IOMMU; assuming ${iommu === 'amd' ? 'an AMD-Vi' : 'an Intel VT-d'} IOMMU from the vendor of its root-bus devices`);
  }
  if (st.spec.platform.iommu === 'intel' && !splitWords(st.cmdline).some((w) => w.startsWith('intel_iommu='))) {
    // Many distributions leave VT-d off unless asked: the option is what a user has to add.
    st.cmdline = appendOptions(st.cmdline, 'intel_iommu=on');
    notes.push('added intel_iommu=on (VT-d is active only with it or a distribution default)');
  }
  if (!parseKernelCmdline(st.cmdline).iommu) throw new WhatIfError(`iommu:on: the command line still turns the IOMMU off: ${st.cmdline}`);
  st.applied.push(`IOMMU on${notes.length > 0 ? `: ${notes.join('; ')}` : ''}`);
}

function guessIommu(spec: HostSpec): 'intel' | 'amd' {
  // The host bridge's vendor decides; failing that, the majority of root-bus functions.
  const vendors = spec.functions.filter((f) => addressOf(f).bus === 0).map((f) => ({ v: f.id.slice(0, 4).toLowerCase(), hostBridge: addressOf(f).devfn === 0 }));
  const hb = vendors.find((x) => x.hostBridge)?.v;
  if (hb === '1022' || hb === '8086') return hb === '1022' ? 'amd' : 'intel';
  const amd = vendors.filter((x) => x.v === '1022').length;
  return amd > vendors.filter((x) => x.v === '8086').length ? 'amd' : 'intel';
}

/** A few words on what a group-changing option does, for the applied line. */
function glossOptions(options: string): string {
  const words = splitWords(options);
  const gloss: string[] = [];
  if (words.some(isAcsOverrideWord)) gloss.push('pcie_acs_override changes what Linux believes, not what the hardware routes');
  if (words.some((w) => w.includes('config_acs='))) gloss.push('config_acs rewrites ACS Control at boot, which may widen or narrow groups');
  if (words.some((w) => w.includes('disable_acs_redir='))) gloss.push('disable_acs_redir clears RR CR EC at boot to allow P2P, which widens groups');
  if (words.some(isIommuOffWord)) gloss.push('the IOMMU is off: no groups');
  return gloss.length === 0 ? '' : ` (${gloss.join('; ')})`;
}

function abbreviate(list: readonly string[]): string {
  return list.length <= 6 ? list.join(' ') : `${list.slice(0, 6).join(' ')} and ${list.length - 6} more`;
}

function withoutObservation(f: FunctionSpec): FunctionSpec {
  const copy = { ...f };
  delete copy.observedGroup;
  return copy;
}
