import { addressKey } from '../address.ts';
import { hostSpecSchema, type FunctionSpecInput, type HostSpec, type HostSpecInput } from '../spec.ts';
import { lineError, LspciError } from './errors.ts';
import { expressOffset, extCapOffsets, fittingBars, type ExtCapName } from './layout.ts';
import { detectIommu } from './platform.ts';
import type { RawFunction } from './raw.ts';
import { linkVirtualFunctions, type SriovPf } from './virtfn.ts';
import type { Warnings } from './warnings.ts';

const CLASS_PCI_BRIDGE = 0x0604;
const CLASS_CARDBUS_BRIDGE = 0x0607;

/** Turn the records of a dump into a validated host spec (ACS Control as read after boot). */
export function assembleSpec(fns: readonly RawFunction[], name: string, observedGroups: boolean, warnings: Warnings): HostSpec {
  const byKey = new Map<number, RawFunction>();
  for (const fn of fns) {
    const key = addressKey(fn.header.address);
    const prior = byKey.get(key);
    if (prior !== undefined) {
      throw lineError('invalid', fn.line, `${fn.address} is listed twice (first at line ${prior.line}); was the dump pasted twice?`);
    }
    byKey.set(key, fn);
  }
  const pfs = new Map<RawFunction, SriovPf>();
  for (const fn of fns) {
    const pf = sriovPf(fn, warnings);
    if (pf !== undefined) pfs.set(fn, pf);
  }
  const pfOf = linkVirtualFunctions([...pfs.values()], byKey, warnings);
  warnUnreadAcs(fns, warnings);
  const functions = fns.map((fn) => functionSpec(fn, pfs.get(fn), pfOf.get(fn), warnings));
  const input: HostSpecInput = {
    name,
    description: `imported from lspci -vvnn: ${fns.length} functions${observedGroups ? ', with the IOMMU groups the source kernel formed' : ''}`,
    platform: { iommu: detectIommu(fns, observedGroups, warnings), firmwareAliases: [] },
    acsCtl: 'post-boot',
    functions,
  };
  const parsed = hostSpecSchema.safeParse(input);
  if (parsed.success) return parsed.data;
  const issue = parsed.error.issues[0];
  const index = issue?.path[0] === 'functions' && typeof issue.path[1] === 'number' ? issue.path[1] : -1;
  const fn = fns[index];
  const field = issue?.path.slice(fn === undefined ? 0 : 2).join('.') ?? '';
  const what = `${field === '' ? '' : `${field}: `}${issue?.message ?? 'invalid'}`;
  if (fn === undefined) throw new LspciError('invalid', `the imported host is not valid: ${what}`);
  throw lineError('invalid', fn.line, `${fn.address}: the imported function is not valid: ${what}`);
}

function sriovPf(fn: RawFunction, warnings: Warnings): SriovPf | undefined {
  const s = fn.sriov;
  if (s === undefined) return undefined;
  if (s.totalVfs === undefined || s.numVfs === undefined || s.vfOffset === undefined || s.vfDevice === undefined) {
    warnings.add(`line ${s.line}: ${fn.address}: SR-IOV capability without its VF counts and routing (dump made with -v rather than -vv?); ignored`);
    return undefined;
  }
  // Linux clears NumVFs when it disables VFs; VF Enable is what makes them exist.
  const numVfs = s.enabled === false ? 0 : s.numVfs;
  return { fn, totalVfs: s.totalVfs, numVfs, vfOffset: s.vfOffset, vfStride: s.vfStride ?? 1, vfDevice: s.vfDevice };
}

/** ACS capabilities whose registers were not printed are ignored: guessing either way would invent isolation. */
function warnUnreadAcs(fns: readonly RawFunction[], warnings: Warnings): void {
  const unread = fns.filter((fn) => fn.acs !== undefined && fn.acs.cap === undefined).map((fn) => fn.address);
  if (unread.length === 0) return;
  warnings.add(`ACS registers were not printed for ${unread.join(', ')} (dump made with -v rather than -vv?); their ACS capability is ignored, which can only make groups larger`);
}

// Intel Sunrise Point / Union Point PCH root ports (quirks.c pci_quirk_intel_spt_pch_acs): ACS laid out as dwords.
const SPT_RANGES: ReadonlyArray<readonly [number, number]> = [[0xa110, 0xa11f], [0xa167, 0xa16a], [0xa290, 0xa29f], [0xa2e7, 0xa2ee], [0x9d10, 0x9d1b]];

function isSptRootPort(fn: RawFunction): boolean {
  const d = fn.header.device;
  return fn.header.vendor === 0x8086 && fn.express?.type === 'root-port' && SPT_RANGES.some(([lo, hi]) => d >= lo && d <= hi);
}

function functionSpec(fn: RawFunction, pf: SriovPf | undefined, physfn: RawFunction | undefined, warnings: Warnings): FunctionSpecInput {
  const h = fn.header;
  const out: FunctionSpecInput = {
    address: fn.address,
    id: `${hex4(h.vendor)}:${hex4(h.device)}`,
    class: h.classCode,
    progIf: h.progIf,
    revision: h.revision,
    name: h.name,
  };
  if (fn.subsystem !== undefined) out.subsystem = fn.subsystem;
  if (fn.driver !== undefined) out.driver = fn.driver;
  if (fn.group !== undefined) out.observedGroup = fn.group;
  if (physfn !== undefined) out.virtfnOf = physfn.address;
  const isBridge = fn.bus !== undefined || h.classCode === CLASS_PCI_BRIDGE || h.classCode === CLASS_CARDBUS_BRIDGE;
  if (isBridge) out.bridge = bridgeRange(fn, warnings);
  out.bars = fittingBars(fn, fn.bars, isBridge ? 2 : 6, warnings)
    .map((b) => ({ index: b.index, type: b.type, prefetchable: b.prefetchable, base: b.base, size: b.size }));
  if (fn.express !== undefined) {
    const e = fn.express;
    out.express = { type: e.type, version: e.version, slot: e.slot, ariForwarding: e.ariForwarding, offset: expressOffset(fn, e.offset, warnings) };
  }
  addExtCaps(fn, out, pf, warnings);
  return out;
}

function bridgeRange(fn: RawFunction, warnings: Warnings): NonNullable<FunctionSpecInput['bridge']> {
  const bus = fn.bus;
  const own = fn.header.address.bus;
  if (bus === undefined) {
    // An unconfigured window: the topology leaves the bridge childless, like Linux for secondary = 0.
    warnings.add(`line ${fn.line}: ${fn.address} is a bridge without a "Bus:" line; nothing can be placed below it`);
    return { primary: own, secondary: 0, subordinate: 0 };
  }
  if (bus.secondary <= own || bus.subordinate < bus.secondary) {
    warnings.add(`line ${fn.line}: ${fn.address}: bus range secondary=${hex2(bus.secondary)}, subordinate=${hex2(bus.subordinate)} `
      + `cannot hang below bus ${hex2(own)}; nothing is placed below this bridge`);
  }
  return { primary: bus.primary, secondary: bus.secondary, subordinate: bus.subordinate };
}

function addExtCaps(fn: RawFunction, out: FunctionSpecInput, pf: SriovPf | undefined, warnings: Warnings): void {
  const present: Array<readonly [ExtCapName, number]> = [];
  const acs = fn.acs?.cap === undefined ? undefined : fn.acs;
  // The order synth.ts places capabilities without a fixed offset in.
  if (acs !== undefined) present.push(['acs', acs.offset]);
  if (fn.ari !== undefined) present.push(['ari', fn.ari.offset]);
  if (fn.ats !== undefined) present.push(['ats', fn.ats.offset]);
  if (pf !== undefined) present.push(['sriov', pf.fn.sriov?.offset ?? 0]);
  if (fn.pri !== undefined) present.push(['pri', fn.pri.offset]);
  if (fn.pasid !== undefined) present.push(['pasid', fn.pasid.offset]);
  if (present.length === 0) return;
  const { offsets, dropped } = extCapOffsets(fn, present, warnings);
  const keep = (name: ExtCapName): boolean => !dropped.includes(name);
  if (acs !== undefined && keep('acs')) {
    out.acs = { cap: acs.cap ?? 0, ctl: acs.ctl ?? 0, offset: offsets.get('acs') };
    if (isSptRootPort(fn)) {
      warnings.add(`line ${acs.line}: ${fn.address} (${hex4(fn.header.vendor)}:${hex4(fn.header.device)}) is an Intel Sunrise Point/Union Point PCH `
        + 'root port: its ACS registers are dwords (control at +8), and lspci decodes ACSCtl from +6, which is wrong for it. '
        + 'ACSCap and the printed ACSCtl are imported as shown; booting enables the real control register.');
    }
  }
  if (fn.ari !== undefined && keep('ari')) out.ari = { nextFunction: Math.min(255, fn.ari.nextFunction), offset: offsets.get('ari') };
  if (fn.ats !== undefined && keep('ats')) out.ats = { queueDepth: Math.min(31, fn.ats.queueDepth), offset: offsets.get('ats') };
  if (pf !== undefined && keep('sriov')) {
    out.sriov = { totalVfs: pf.totalVfs, numVfs: pf.numVfs, vfOffset: pf.vfOffset, vfStride: pf.vfStride, vfDevice: pf.vfDevice, offset: offsets.get('sriov') };
  }
  if (fn.pri !== undefined && keep('pri')) {
    out.pri = { enabled: fn.pri.enabled, offset: offsets.get('pri'), ...(fn.pri.outstanding === undefined ? {} : { outstanding: fn.pri.outstanding }) };
  }
  if (fn.pasid !== undefined && keep('pasid')) {
    const p = fn.pasid;
    let width = p.width;
    // The Max PASID Width field is 5 bits; PASIDs themselves are at most 20 bits wide.
    if (width !== undefined && (width < 1 || width > 20)) {
      warnings.add(`line ${fn.line}: ${fn.address}: Max PASID Width ${width} is outside 1-20; imported as ${width < 1 ? 1 : 20}`);
      width = width < 1 ? 1 : 20;
    }
    out.pasid = { exec: p.exec, privileged: p.privileged, enabled: p.enabled, offset: offsets.get('pasid'), ...(width === undefined ? {} : { width }) };
  }
}

function hex4(n: number): string { return n.toString(16).padStart(4, '0'); }
function hex2(n: number): string { return n.toString(16).padStart(2, '0'); }
