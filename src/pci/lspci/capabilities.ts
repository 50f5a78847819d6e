import { PCIE_TYPE_NAMES } from '../regs.ts';
import { PCIE_TYPE_KEYS, type PcieTypeKey } from '../spec.ts';
import { lineError, type LspciError } from './errors.ts';
import { flagOn, parseAcsTokens } from './flags.ts';
import type { DumpLine } from './lines.ts';
import type { RawFunction } from './raw.ts';
import type { Warnings } from './warnings.ts';

export type CapKind = 'express' | 'acs' | 'ari' | 'ats' | 'pri' | 'pasid' | 'sriov' | 'other';

/** The capability whose detail lines are being read. */
export interface CapCursor {
  readonly kind: CapKind;
  readonly title: string;
  readonly line: number;
  /** Last line read inside it: where a cut dump ends. */
  lastLine: number;
  details: number;
  /** The register a continuation line (one level deeper) belongs to: "DevCap2", "DevCtl2", ... */
  register: string;
  /** A line whose last flag lost its +/-: the dump was cut there if nothing follows. */
  cutLine: number | undefined;
}

// `Capabilities: [off]` for the standard list, `[off vN]` for extended capabilities (ls-caps.c, ls-ecaps.c).
const CAP_RE = /^Capabilities: \[([0-9a-fA-F]+)(?: v\d+)?\] (.*)$/;
const EXPRESS_RE = /^Express \(v(\d+)\) (.*)$/;

const TITLES: Readonly<Record<string, CapKind>> = {
  'Access Control Services': 'acs',
  'Alternative Routing-ID Interpretation (ARI)': 'ari',
  'Address Translation Service (ATS)': 'ats',
  'Page Request Interface (PRI)': 'pri',
  'Process Address Space ID (PASID)': 'pasid',
  'Single Root I/O Virtualization (SR-IOV)': 'sriov',
};

// "Root Port (Slot+), MSI 00" etc.: lspci's cap_express() names, longest first so no name shadows another.
const EXPRESS_TYPES: ReadonlyArray<readonly [string, PcieTypeKey]> = (Object.keys(PCIE_TYPE_KEYS) as PcieTypeKey[])
  .map((key) => [PCIE_TYPE_NAMES[PCIE_TYPE_KEYS[key]], key] as const)
  .sort((a, b) => b[0].length - a[0].length);

/**
 * Start reading a `Capabilities:` line. A non-root dump (`Capabilities: <access denied>`) cannot be
 * imported: without capabilities there are no port types and no ACS, so no groups.
 */
export function openCapability(fn: RawFunction, text: string, line: number, warnings: Warnings): CapCursor {
  const m = CAP_RE.exec(text);
  if (m === null) {
    if (text.startsWith('Capabilities: <access denied>')) {
      throw lineError('non-root', line, `${fn.address}: "Capabilities: <access denied>": lspci ran without root, so no capability `
        + 'was readable. The PCI Express port types, ACS, ARI and SR-IOV state are unknown, and IOMMU groups cannot be '
        + 'computed from this dump. Run "sudo lspci -vvnn" and import that output instead.');
    }
    return cursor('other', text, line);
  }
  const offset = parseInt(m[1] ?? '', 16);
  const title = m[2] ?? '';
  const e = EXPRESS_RE.exec(title);
  if (e !== null) {
    const rest = e[2] ?? '';
    const type = expressType(rest);
    if (type === undefined) warnings.add(`line ${line}: ${fn.address}: unknown PCI Express type "${rest}"; imported as an endpoint`);
    const version = Math.min(2, Math.max(1, parseInt(e[1] ?? '', 10) || 1));
    fn.express = { offset, type: type ?? 'endpoint', version, slot: rest.includes('(Slot+)'), ariForwarding: false };
    return cursor('express', title, line);
  }
  const kind = TITLES[title] ?? 'other';
  switch (kind) {
    case 'acs': fn.acs = { offset, line, cap: undefined, ctl: undefined }; break;
    case 'ari': fn.ari = { offset, nextFunction: 0 }; break;
    case 'ats': fn.ats = { offset, queueDepth: 0 }; break;
    case 'pri': fn.pri = { offset, enabled: false, outstanding: undefined }; break;
    case 'pasid': fn.pasid = { offset, width: undefined, exec: false, privileged: false, enabled: false }; break;
    case 'sriov':
      fn.sriov = { offset, line, enabled: undefined, totalVfs: undefined, numVfs: undefined, vfOffset: undefined, vfStride: undefined, vfDevice: undefined };
      break;
    case 'express': case 'other': break;
  }
  return cursor(kind, title, line);
}

/** "Upstream Port, MSI 00" -> 'upstream-port': the name must end at a space, comma or the line's end. */
function expressType(rest: string): PcieTypeKey | undefined {
  for (const [name, key] of EXPRESS_TYPES) {
    if (!rest.startsWith(name)) continue;
    const next = rest.charAt(name.length);
    if (next === '' || next === ' ' || next === ',') return key;
  }
  return undefined;
}

function cursor(kind: CapKind, title: string, line: number): CapCursor {
  return { kind, title, line, lastLine: line, details: 0, register: '', cutLine: undefined };
}

const ARI_NEXT_RE = /Next Function: (\d+)/;
const ATS_DEPTH_RE = /Invalidate Queue Depth: ([0-9a-fA-F]+)/;
const PRI_CAPACITY_RE = /Page Request Capacity: ([0-9a-fA-F]+)/;
const PASID_WIDTH_RE = /Max PASID Width: ([0-9a-fA-F]+)/;
const SRIOV_COUNTS_RE = /Initial VFs: (\d+), Total VFs: (\d+), Number of VFs: (\d+)/;
const SRIOV_ROUTING_RE = /VF offset: (\d+), stride: (\d+), Device ID: ([0-9a-fA-F]+)/;

/** One detail line (depth 2 or deeper) of the open capability. */
export function capabilityDetail(fn: RawFunction, cur: CapCursor, line: DumpLine): void {
  cur.details++;
  cur.lastLine = line.no;
  const text = line.text;
  if (line.depth === 2) {
    const colon = text.indexOf(':');
    cur.register = colon < 0 ? '' : text.slice(0, colon);
  }
  const reg = cur.register;
  switch (cur.kind) {
    case 'express':
      // DevCtl2 ARIFwd+ is Linux's pci_enable_ari() having turned forwarding on; DevCap2 only says it could.
      if (reg === 'DevCtl2' && fn.express !== undefined && flagOn(text, 'ARIFwd')) fn.express.ariForwarding = true;
      break;
    case 'acs':
      if (fn.acs === undefined || line.depth !== 2 || (reg !== 'ACSCap' && reg !== 'ACSCtl')) break;
      {
        const tokens = parseAcsTokens(text.slice(reg.length + 1));
        if (!tokens.complete) cur.cutLine = line.no;
        if (reg === 'ACSCap') fn.acs.cap = tokens.bits;
        else fn.acs.ctl = tokens.bits;
      }
      break;
    case 'ari':
      if (fn.ari !== undefined && reg === 'ARICap') fn.ari.nextFunction = decimal(ARI_NEXT_RE, text) ?? 0;
      break;
    case 'ats':
      if (fn.ats !== undefined && reg === 'ATSCap') fn.ats.queueDepth = hex(ATS_DEPTH_RE, text) ?? 0;
      break;
    case 'pri':
      if (fn.pri === undefined) break;
      if (reg === 'PRICtl') fn.pri.enabled = flagOn(text, 'Enable');
      fn.pri.outstanding ??= hex(PRI_CAPACITY_RE, text);
      break;
    case 'pasid':
      if (fn.pasid === undefined) break;
      if (reg === 'PASIDCap') {
        fn.pasid.exec = flagOn(text, 'Exec');
        fn.pasid.privileged = flagOn(text, 'Priv');
        fn.pasid.width = hex(PASID_WIDTH_RE, text);
      } else if (reg === 'PASIDCtl') {
        fn.pasid.enabled = flagOn(text, 'Enable');
      }
      break;
    case 'sriov':
      sriovDetail(fn, reg, text);
      break;
    case 'other':
      break;
  }
}

function sriovDetail(fn: RawFunction, reg: string, text: string): void {
  const s = fn.sriov;
  if (s === undefined) return;
  if (reg === 'IOVCtl') {
    s.enabled = flagOn(text, 'Enable');
    return;
  }
  const counts = SRIOV_COUNTS_RE.exec(text);
  if (counts !== null) {
    s.totalVfs = parseInt(counts[2] ?? '', 10);
    s.numVfs = parseInt(counts[3] ?? '', 10);
    return;
  }
  const routing = SRIOV_ROUTING_RE.exec(text);
  if (routing !== null) {
    s.vfOffset = parseInt(routing[1] ?? '', 10);
    s.vfStride = parseInt(routing[2] ?? '', 10);
    s.vfDevice = parseInt(routing[3] ?? '', 16);
  }
}

/**
 * The capability ended (another began, a device field followed, or the dump ended). At the end of a
 * dump made with -vv, a capability missing the lines lspci always prints after it means the dump was
 * cut short there.
 */
export function closeCapability(fn: RawFunction, cur: CapCursor, atEof: boolean, verbose: boolean, warnings: Warnings): void {
  if (cur.kind === 'acs' && fn.acs !== undefined) {
    if (atEof && cur.cutLine === cur.lastLine) throw cutShort(fn, cur, 'its last line stops mid-word');
    if (fn.acs.cap !== undefined && fn.acs.ctl === undefined) {
      if (atEof) throw cutShort(fn, cur, 'ACSCap without ACSCtl');
      warnings.add(`line ${cur.line}: ${fn.address}: ACSCap printed without ACSCtl; ACS Control imported as 0 (nothing enabled)`);
    }
  }
  if (cur.kind === 'sriov' && fn.sriov !== undefined && fn.sriov.totalVfs !== undefined && fn.sriov.vfOffset === undefined && atEof) {
    throw cutShort(fn, cur, 'VF counts without the VF offset line');
  }
  if (atEof && verbose && cur.kind !== 'other' && cur.details === 0) throw cutShort(fn, cur, 'none of its register lines');
}

function cutShort(fn: RawFunction, cur: CapCursor, what: string): LspciError {
  return lineError('truncated', cur.lastLine, `the dump ends inside ${fn.address}'s ${cur.title} capability (${what}): `
    + 'it was cut short. Import the complete output of "sudo lspci -vvnn".');
}

function decimal(re: RegExp, text: string): number | undefined {
  const m = re.exec(text);
  return m === null ? undefined : parseInt(m[1] ?? '', 10);
}

function hex(re: RegExp, text: string): number | undefined {
  const m = re.exec(text);
  return m === null ? undefined : parseInt(m[1] ?? '', 16);
}
