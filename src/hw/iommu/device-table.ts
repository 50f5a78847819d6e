// The device table of docs/hw-iommu.md ("Device table"): root entries, context entries, PASID directory
// entries and PASID-table entries. The fetch functions are what the unit does on a cache miss (read the
// entry, apply every validity rule, decode into a reusable struct, never throw, never allocate); the encode
// functions are what software (setup.ts, the kernel driver) uses to write entries.

import type { PhysicalMemory } from '../memory/physical-memory.ts';
import { addressHalves, entryAddress } from './pgtable/format.ts';
import { FaultReason, type IommuCaps } from './types.ts';

export const ROOT_ENTRIES = 256;
export const ROOT_ENTRY_BYTES = 8;
export const CONTEXT_ENTRIES = 256;
export const CONTEXT_ENTRY_BYTES = 32;
export const PASID_DIR_ENTRY_BYTES = 8;
export const PASID_TABLE_ENTRIES = 64;
export const PASID_ENTRY_BYTES = 32;
/** Bytes of a context table (256 entries of 4 words). */
export const CONTEXT_TABLE_BYTES = CONTEXT_ENTRIES * CONTEXT_ENTRY_BYTES;
/** Bytes of a PASID table (64 entries of 4 words). */
export const PASID_TABLE_BYTES = PASID_TABLE_ENTRIES * PASID_ENTRY_BYTES;

/** Root and PASID-directory entries: bit 0 present. */
export const ROOT_P = 1;
export const PASID_DIR_P = 1;

// Context entry, word 0 (low half).
export const CTX_V = 1 << 0;
export const CTX_MODE_SHIFT = 1;
export const CTX_PRE = 1 << 4;
export const CTX_PASIDE = 1 << 5;
/** Word 0 bits 11:6 and 63:52 are not defined: reserved. */
const CTX_W0_RSVD_LO = 0x0000_0fc0;
const CTX_W0_RSVD_HI = 0xfff0_0000;
// Context entry, word 1 (low half): bits 19:0 RID_PASID, bits 28:24 PDTS.
const CTX_RID_PASID_MASK = 0x000f_ffff;
const CTX_PDTS_SHIFT = 24;
/** Word 1 bits 23:20 and 63:29 are not defined: reserved. */
const CTX_W1_RSVD_LO = 0xe0f0_0000;

export const ContextMode = { Blocked: 0, PassThrough: 1, Translate: 2 } as const;
export type ContextMode = (typeof ContextMode)[keyof typeof ContextMode];

// PASID-table entry, word 0 (low half).
export const PE_P = 1 << 0;
export const PE_PGTT_SHIFT = 1;
export const PE_SSADE = 1 << 4;
export const PE_SSLVL_SHIFT = 5;
export const PE_FSLVL_SHIFT = 7;
export const PE_SRE = 1 << 9;
/** Word 0 bits 11:10 and 63:52 are not defined: reserved. */
const PE_W0_RSVD_LO = 0x0000_0c00;
const PE_W0_RSVD_HI = 0xfff0_0000;
/** Word 1: bits 15:0 DID, other bits reserved. */
const PE_W1_RSVD_LO = 0xffff_0000;
/** Word 2: only the PA field (bits 51:12) is defined. */
const PE_W2_RSVD_LO = 0x0000_0fff;
const PE_W2_RSVD_HI = 0xfff0_0000;

export const Pgtt = { FirstStage: 1, SecondStage: 2, Nested: 3, PassThrough: 4 } as const;
export type Pgtt = (typeof Pgtt)[keyof typeof Pgtt];

/** A context entry as the unit uses it. */
export interface ContextFields {
  mode: number;
  pri: boolean;
  pasidEnable: boolean;
  ridPasid: number;
  pdts: number;
  pasidDir: number;
}

export function newContextFields(): ContextFields {
  return { mode: 0, pri: false, pasidEnable: false, ridPasid: 0, pdts: 0, pasidDir: 0 };
}

/** A PASID-table entry as the unit uses it. */
export interface PasidFields {
  pgtt: number;
  ssade: boolean;
  sre: boolean;
  ssLevels: number;
  fsLevels: number;
  did: number;
  ssRoot: number;
  fsRoot: number;
}

export function newPasidFields(): PasidFields {
  return { pgtt: 0, ssade: false, sre: false, ssLevels: 4, fsLevels: 4, did: 0, ssRoot: 0, fsRoot: 0 };
}

/** Read the four words at `pa` into `w` (8 halves) through the 2-half scratch `e`; false when outside memory. */
export function readEntry(mem: PhysicalMemory, pa: number, w: Uint32Array, e: Uint32Array): boolean {
  if (!mem.contains(pa, 32)) return false;
  for (let i = 0; i < 4; i++) {
    mem.read64(pa + i * 8, e);
    w[2 * i] = e[0] as number;
    w[2 * i + 1] = e[1] as number;
  }
  return true;
}

/**
 * Find and check the context entry of `rid` (bus = rid >> 8, devfn = rid & 0xff) from the root table at
 * `dtaddr`. Returns FaultReason.None with `out` filled, or the fault. `w` (8 halves) and `e` (2) are scratch.
 */
export function fetchContext(
  mem: PhysicalMemory, caps: IommuCaps, dtaddr: number, rid: number, w: Uint32Array, e: Uint32Array, out: ContextFields,
): FaultReason {
  // Root table at DTADDR: 256 entries of one word, indexed by bus. A table pointer outside memory is a table read error.
  if (!mem.read64(dtaddr + (rid >>> 8) * ROOT_ENTRY_BYTES, e)) return FaultReason.TableReadError;
  // Root entry bit 0: present.
  if (((e[0] as number) & ROOT_P) === 0) return FaultReason.RootNotPresent;
  const table = entryAddress(e[0] as number, e[1] as number);
  // Context table: 256 entries of 4 words, indexed by devfn.
  if (!readEntry(mem, table + (rid & 0xff) * CONTEXT_ENTRY_BYTES, w, e)) return FaultReason.TableReadError;
  // Context word 0 bit 0: V.
  if (((w[0] as number) & CTX_V) === 0) return FaultReason.ContextNotPresent;
  return decodeContext(caps, w, out) ? FaultReason.None : FaultReason.ContextInvalid;
}

/** Apply the context entry's validity rules to the 8 halves in `w`; false when the entry is invalid. */
export function decodeContext(caps: IommuCaps, w: Uint32Array, out: ContextFields): boolean {
  const lo0 = w[0] as number;
  const hi0 = w[1] as number;
  const lo1 = w[2] as number;
  const hi1 = w[3] as number;
  // Reserved bits that are set make the entry invalid: word 0 bits 11:6 and 63:52.
  if ((lo0 & CTX_W0_RSVD_LO) !== 0 || (hi0 & CTX_W0_RSVD_HI) !== 0) return false;
  // Word 1: bits 23:20 and 63:29 are reserved.
  if ((lo1 & CTX_W1_RSVD_LO) !== 0 || hi1 !== 0) return false;
  // Words 2, 3: reserved, must be zero.
  if ((w[4] as number) !== 0 || (w[5] as number) !== 0 || (w[6] as number) !== 0 || (w[7] as number) !== 0) return false;
  const mode = (lo0 >>> CTX_MODE_SHIFT) & 7;
  // MODE: 0 blocked, 1 pass-through, 2 translate; any other value is not defined.
  if (mode > ContextMode.Translate) return false;
  // A MODE that is not supported makes the entry invalid: pass-through needs caps.passThrough.
  if (mode === ContextMode.PassThrough && !caps.passThrough) return false;
  const pri = (lo0 & CTX_PRE) !== 0;
  const pasidEnable = (lo0 & CTX_PASIDE) !== 0;
  // PRE on a unit without page requests is a reserved bit set.
  if (pri && !caps.pri) return false;
  // PASIDE on a unit without PASID support (pasidWidth 0) is a reserved bit set.
  if (pasidEnable && caps.pasidWidth === 0) return false;
  const ridPasid = lo1 & CTX_RID_PASID_MASK;
  // RID_PASID bits at or above the unit's PASID width are reserved.
  if (ridPasid >= 2 ** caps.pasidWidth) return false;
  out.mode = mode;
  out.pri = pri;
  out.pasidEnable = pasidEnable;
  out.ridPasid = ridPasid;
  out.pdts = (lo1 >>> CTX_PDTS_SHIFT) & 0x1f;
  out.pasidDir = entryAddress(lo0, hi0);
  return true;
}

/**
 * Find and check the PASID-table entry of `pasid` under the PASID directory at `pasidDir` (the caller has
 * checked the PASID against the directory size). Returns FaultReason.None with `out` filled, or the fault.
 */
export function fetchPasidEntry(
  mem: PhysicalMemory, caps: IommuCaps, pasidDir: number, pasid: number, w: Uint32Array, e: Uint32Array, out: PasidFields,
): FaultReason {
  // PASID directory: entries of one word; entry pasid >> 6. A pointer outside memory is a table read error.
  if (!mem.read64(pasidDir + (pasid >>> 6) * PASID_DIR_ENTRY_BYTES, e)) return FaultReason.TableReadError;
  // Directory entry bit 0: present.
  if (((e[0] as number) & PASID_DIR_P) === 0) return FaultReason.PasidDirNotPresent;
  const table = entryAddress(e[0] as number, e[1] as number);
  // PASID table: 64 entries of 4 words; entry pasid & 63.
  if (!readEntry(mem, table + (pasid & 63) * PASID_ENTRY_BYTES, w, e)) return FaultReason.TableReadError;
  // PASID entry word 0 bit 0: P.
  if (((w[0] as number) & PE_P) === 0) return FaultReason.PasidNotPresent;
  return decodePasidEntry(caps, w, out) ? FaultReason.None : FaultReason.PasidEntryInvalid;
}

/** Apply the PASID entry's validity rules to the 8 halves in `w`; false when the entry is invalid. */
export function decodePasidEntry(caps: IommuCaps, w: Uint32Array, out: PasidFields): boolean {
  const lo0 = w[0] as number;
  const hi0 = w[1] as number;
  // Reserved bits that are set make the entry invalid: word 0 bits 11:10 and 63:52.
  if ((lo0 & PE_W0_RSVD_LO) !== 0 || (hi0 & PE_W0_RSVD_HI) !== 0) return false;
  // Word 1: bits 15:0 DID, other bits reserved.
  if (((w[2] as number) & PE_W1_RSVD_LO) !== 0 || (w[3] as number) !== 0) return false;
  // Word 2: the PA field (bits 51:12) only.
  if (((w[4] as number) & PE_W2_RSVD_LO) !== 0 || ((w[5] as number) & PE_W2_RSVD_HI) !== 0) return false;
  // Word 3: reserved.
  if ((w[6] as number) !== 0 || (w[7] as number) !== 0) return false;
  const pgtt = (lo0 >>> PE_PGTT_SHIFT) & 7;
  // PGTT: 1 first-stage, 2 second-stage, 3 nested, 4 pass-through; other values are not defined; unsupported types are invalid.
  if (!pgttSupported(caps, pgtt)) return false;
  const ssade = (lo0 & PE_SSADE) !== 0;
  // SSADE on a unit without second-stage A/D (dirtyTracking) is a reserved bit set.
  if (ssade && !caps.dirtyTracking) return false;
  const usesSecond = pgtt === Pgtt.SecondStage || pgtt === Pgtt.Nested;
  const usesFirst = pgtt === Pgtt.FirstStage || pgtt === Pgtt.Nested;
  // SSLVL (0 4-level, 1 5-level) of a stage the PGTT uses: undefined values or levels the unit does not support are invalid.
  const ssLevels = levelsOf((lo0 >>> PE_SSLVL_SHIFT) & 3, caps);
  if (usesSecond && ssLevels === 0) return false;
  // FSLVL likewise for the first stage.
  const fsLevels = levelsOf((lo0 >>> PE_FSLVL_SHIFT) & 3, caps);
  if (usesFirst && fsLevels === 0) return false;
  out.pgtt = pgtt;
  out.ssade = ssade;
  out.sre = (lo0 & PE_SRE) !== 0;
  out.ssLevels = ssLevels === 0 ? 4 : ssLevels;
  out.fsLevels = fsLevels === 0 ? 4 : fsLevels;
  out.did = (w[2] as number) & 0xffff;
  out.ssRoot = entryAddress(lo0, hi0);
  out.fsRoot = entryAddress(w[4] as number, w[5] as number);
  return true;
}

function pgttSupported(caps: IommuCaps, pgtt: number): boolean {
  switch (pgtt) {
    case Pgtt.FirstStage: return caps.firstStage;
    case Pgtt.SecondStage: return caps.secondStage;
    case Pgtt.Nested: return caps.nesting && caps.firstStage && caps.secondStage;
    case Pgtt.PassThrough: return caps.passThrough;
    default: return false;
  }
}

/** Table depth for an SSLVL/FSLVL value: 4, 5, or 0 when undefined or unsupported. */
function levelsOf(code: number, caps: IommuCaps): number {
  if (code === 0) return 4;
  if (code === 1 && caps.fiveLevel) return 5;
  return 0;
}

// ---- Encoding, for software ----

/** One root or PASID-directory entry: present, pointing at `table` (4 KiB aligned). */
export function encodePointerEntry(table: number): [number, number] {
  checkPa(table, 'table');
  const [lo, hi] = addressHalves(table);
  return [(lo | 1) >>> 0, hi];
}

export type ContextModeName = 'blocked' | 'pass-through' | 'translate';

export interface ContextEntrySpec {
  readonly mode: ContextModeName;
  /** PRE: page requests allowed from this function. */
  readonly pri?: boolean;
  /** PASIDE: requests carrying a PASID allowed. */
  readonly pasidEnable?: boolean;
  /** The PASID entry used for requests without a PASID (default 0). */
  readonly ridPasid?: number;
  /** The PASID directory has 2^pdts entries (default 0: one entry, PASIDs 0 to 63). */
  readonly pdts?: number;
  /** PASID directory PA (default 0). */
  readonly pasidDir?: number;
}

const MODE_CODES: Record<ContextModeName, number> = { blocked: ContextMode.Blocked, 'pass-through': ContextMode.PassThrough, translate: ContextMode.Translate };

/** The 8 halves of a valid (V set) context entry. */
export function encodeContextEntry(spec: ContextEntrySpec, out = new Uint32Array(8)): Uint32Array {
  const ridPasid = spec.ridPasid ?? 0;
  const pdts = spec.pdts ?? 0;
  const dir = spec.pasidDir ?? 0;
  checkField(ridPasid, 0xfffff, 'ridPasid');
  checkField(pdts, 31, 'pdts');
  checkPa(dir, 'pasidDir');
  const [alo, ahi] = addressHalves(dir);
  out.fill(0);
  out[0] = (alo | CTX_V | (MODE_CODES[spec.mode] << CTX_MODE_SHIFT) | (spec.pri === true ? CTX_PRE : 0) | (spec.pasidEnable === true ? CTX_PASIDE : 0)) >>> 0;
  out[1] = ahi;
  out[2] = (ridPasid | (pdts << CTX_PDTS_SHIFT)) >>> 0;
  return out;
}

export type PgttName = 'first' | 'second' | 'nested' | 'pass-through';

export interface PasidEntrySpec {
  readonly pgtt: PgttName;
  /** Domain ID, the IOTLB tag (16 bits). */
  readonly did: number;
  /** Second-stage table root PA (PGTT second and nested). */
  readonly ssRoot?: number;
  /** First-stage table root (a guest PA when nested). */
  readonly fsRoot?: number;
  readonly ssLevels?: 4 | 5;
  readonly fsLevels?: 4 | 5;
  /** SSADE: second-stage accessed/dirty update. */
  readonly ssade?: boolean;
  /** SRE: privileged requests allowed. */
  readonly sre?: boolean;
}

const PGTT_CODES: Record<PgttName, number> = { first: Pgtt.FirstStage, second: Pgtt.SecondStage, nested: Pgtt.Nested, 'pass-through': Pgtt.PassThrough };

/** The 8 halves of a present PASID-table entry. */
export function encodePasidEntry(spec: PasidEntrySpec, out = new Uint32Array(8)): Uint32Array {
  checkField(spec.did, 0xffff, 'did');
  const ss = spec.ssRoot ?? 0;
  const fs = spec.fsRoot ?? 0;
  checkPa(ss, 'ssRoot');
  checkPa(fs, 'fsRoot');
  const [slo, shi] = addressHalves(ss);
  const [flo, fhi] = addressHalves(fs);
  out.fill(0);
  out[0] = (slo | PE_P | (PGTT_CODES[spec.pgtt] << PE_PGTT_SHIFT) | (spec.ssade === true ? PE_SSADE : 0)
    | ((spec.ssLevels === 5 ? 1 : 0) << PE_SSLVL_SHIFT) | ((spec.fsLevels === 5 ? 1 : 0) << PE_FSLVL_SHIFT)
    | (spec.sre === true ? PE_SRE : 0)) >>> 0;
  out[1] = shi;
  out[2] = spec.did;
  out[4] = flo;
  out[5] = fhi;
  return out;
}

function checkField(value: number, max: number, what: string): void {
  if (!Number.isInteger(value) || value < 0 || value > max) throw new RangeError(`${what} must be an integer from 0 to ${max}, not ${value}`);
}

function checkPa(pa: number, what: string): void {
  if (!Number.isSafeInteger(pa) || pa < 0 || pa >= 2 ** 52 || pa % 4096 !== 0) throw new RangeError(`${what} must be a 4 KiB-aligned PA below 2^52, not ${pa}`);
}
