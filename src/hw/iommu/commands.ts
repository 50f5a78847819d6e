// The 4-word commands of docs/hw-iommu.md ("Commands"): decoding with every reserved-bit rule (the unit
// stops with CMD_ILL on anything that fails), and encoding for software that builds commands. A command is
// 8 little-endian 32-bit halves: [w0.lo, w0.hi, w1.lo, w1.hi, w2.lo, w2.hi, w3.lo, w3.hi].

import { NO_PASID, PageResponseCode } from './types.ts';

export const Opcode = { ContextInval: 0x01, PasidCacheInval: 0x02, IotlbInval: 0x03, PageResponse: 0x04, Fence: 0x05 } as const;
export type Opcode = (typeof Opcode)[keyof typeof Opcode];

/** What an invalidation covers: everything, a domain, or a domain's PASID. */
export type InvalScope =
  | { readonly scope: 'global' }
  | { readonly scope: 'domain'; readonly did: number }
  | { readonly scope: 'pasid'; readonly did: number; readonly pasid: number };

/** IOTLB invalidation adds a range of 4 KiB pages within a domain's PASID. */
export type IotlbScope = InvalScope | { readonly scope: 'range'; readonly did: number; readonly pasid: number; readonly address: number; readonly pages: number };

export type Command =
  /** CONTEXT_INVAL: every RID (rid null) or one. */
  | { readonly op: 'context-inval'; readonly rid: number | null }
  | ({ readonly op: 'pasid-cache-inval' } & InvalScope)
  | ({ readonly op: 'iotlb-inval' } & IotlbScope)
  | {
    readonly op: 'page-response';
    readonly rid: number;
    /** NO_PASID when the response carries none. */
    readonly pasid: number;
    readonly prgi: number;
    readonly code: PageResponseCode;
    /** Echoed private data (lo, hi), or null (PDP clear). */
    readonly privateData: readonly [number, number] | null;
  }
  | {
    readonly op: 'fence';
    /** Raise the command-completion interrupt (IPSR bit 2). */
    readonly interrupt: boolean;
    /** PA (4-byte aligned) to write `statusData` to once every earlier command is done; 0 for none. */
    readonly statusAddress: number;
    readonly statusData: number;
  };

const TWO_32 = 4294967296;
const SCOPES = ['global', 'domain', 'pasid', 'range'] as const;

/**
 * Decode the command in halves[at .. at + 8). Returns null for an unknown opcode, an undefined
 * granularity or code, or any reserved bit set: what the unit reports as CMD_ILL.
 */
export function decodeCommand(h: Uint32Array, at = 0): Command | null {
  const lo0 = h[at] as number;
  const hi0 = h[at + 1] as number;
  const lo1 = h[at + 2] as number;
  const hi1 = h[at + 3] as number;
  const lo2 = h[at + 4] as number;
  const hi2 = h[at + 5] as number;
  const lo3 = h[at + 6] as number;
  const hi3 = h[at + 7] as number;
  const gran = (lo0 >>> 8) & 3;
  switch (lo0 & 0xff) {
    case Opcode.ContextInval: {
      // Word 0: bits 9:8 granularity (0 global, 1 one RID), bits 31:16 RID; bits 15:10 and 63:32 reserved; words 1-3 reserved.
      if ((lo0 & 0xfc00) !== 0 || hi0 !== 0 || (lo1 | hi1 | lo2 | hi2 | lo3 | hi3) !== 0) return null;
      if (gran > 1) return null;
      return { op: 'context-inval', rid: gran === 1 ? lo0 >>> 16 : null };
    }
    case Opcode.PasidCacheInval: {
      if (!invalHeaderWellFormed(h, at)) return null;
      // PASID_CACHE_INVAL: granularity 0 global, 1 DID, 2 DID+PASID (3 undefined); words 2, 3 reserved.
      if (gran === 3 || (lo2 | hi2 | lo3 | hi3) !== 0) return null;
      return scoped('pasid-cache-inval', gran, lo1 & 0xffff, hi1 & 0xfffff);
    }
    case Opcode.IotlbInval: {
      if (!iotlbInvalWellFormed(h, at)) return null;
      const did = lo1 & 0xffff;
      const pasid = hi1 & 0xfffff;
      if (gran < 3) return scoped('iotlb-inval', gran, did, pasid);
      return { op: 'iotlb-inval', scope: 'range', did, pasid, address: hi2 * TWO_32 + lo2, pages: hi3 * TWO_32 + lo3 };
    }
    case Opcode.PageResponse: {
      if (!pageResponseWellFormed(h, at)) return null;
      const code = ((lo0 >>> 8) & 0xf) as PageResponseCode;
      const pasidValid = (lo0 & (1 << 12)) !== 0;
      const pdp = (lo0 & (1 << 13)) !== 0;
      return {
        op: 'page-response', rid: lo0 >>> 16, pasid: pasidValid ? hi1 & 0xfffff : NO_PASID, prgi: lo1 & 0x1ff,
        code: code, privateData: pdp ? [lo2, hi2] : null,
      };
    }
    case Opcode.Fence: {
      if (!fenceWellFormed(h, at)) return null;
      return { op: 'fence', interrupt: (lo0 & 0x100) !== 0, statusAddress: hi1 * TWO_32 + lo1, statusData: lo2 };
    }
    default:
      // An unknown opcode stops processing with CMD_ILL.
      return null;
  }
}

/** Words 0 and 1 of a PASID_CACHE_INVAL or IOTLB_INVAL have no reserved bit set. */
function invalHeaderWellFormed(h: Uint32Array, at: number): boolean {
  // Word 0: bits 9:8 granularity, bits 31:10 and 63:32 reserved.
  if (((h[at] as number) & 0xffff_fc00) !== 0 || h[at + 1] !== 0) return false;
  // Word 1: bits 15:0 DID, bits 51:32 PASID; bits 31:16 and 63:52 reserved.
  return ((h[at + 2] as number) & 0xffff_0000) === 0 && ((h[at + 3] as number) & 0xfff0_0000) === 0;
}

/**
 * The IOTLB_INVAL in h[at .. at + 8) (opcode 0x03) has no reserved bit set. Granularity 3 (range): word 2
 * the address (4 KiB aligned: bits 11:0 reserved), word 3 the number of 4 KiB pages; other granularities
 * ignore words 2 and 3.
 */
export function iotlbInvalWellFormed(h: Uint32Array, at = 0): boolean {
  if (!invalHeaderWellFormed(h, at)) return false;
  return (((h[at] as number) >>> 8) & 3) < 3 || ((h[at + 4] as number) & 0xfff) === 0;
}

/**
 * The PAGE_RESPONSE in h[at .. at + 8) (opcode 0x04) has a defined code and no reserved bit set. The unit
 * executes page responses, fences and IOTLB invalidations straight from the words with these checks (no
 * Command object).
 */
export function pageResponseWellFormed(h: Uint32Array, at = 0): boolean {
  const lo0 = h[at] as number;
  // Word 0: bits 11:8 code (0 SUCCESS, 1 INVALID, 15 FAILURE), bit 12 PASID valid, bit 13 PDP,
  // bits 31:16 RID; bits 15:14 and 63:32 reserved.
  if ((lo0 & 0xc000) !== 0 || h[at + 1] !== 0) return false;
  const code = (lo0 >>> 8) & 0xf;
  if (code !== PageResponseCode.Success && code !== PageResponseCode.Invalid && code !== PageResponseCode.Failure) return false;
  // Word 1: bits 8:0 PRGI, bits 51:32 PASID; bits 31:9 and 63:52 reserved. Word 3 reserved.
  return ((h[at + 2] as number) & 0xffff_fe00) === 0 && ((h[at + 3] as number) & 0xfff0_0000) === 0 && ((h[at + 6] as number) | (h[at + 7] as number)) === 0;
}

/** The FENCE in h[at .. at + 8) (opcode 0x05) has no reserved bit set. */
export function fenceWellFormed(h: Uint32Array, at = 0): boolean {
  // Word 0: bit 8 interrupt; bits 31:9 and 63:32 reserved.
  if (((h[at] as number) & 0xffff_fe00) !== 0 || h[at + 1] !== 0) return false;
  // Word 1: a PA (4-byte aligned, below 2^52) to write word 2's low 32 bits to; word 3 reserved.
  return ((h[at + 2] as number) & 3) === 0 && ((h[at + 3] as number) & 0xfff0_0000) === 0 && ((h[at + 6] as number) | (h[at + 7] as number)) === 0;
}

function scoped<Op extends 'pasid-cache-inval' | 'iotlb-inval'>(op: Op, gran: number, did: number, pasid: number): Command {
  if (gran === 0) return { op, scope: 'global' };
  if (gran === 1) return { op, scope: 'domain', did };
  return { op, scope: 'pasid', did, pasid };
}

/** Encode `cmd` into 8 halves. Throws RangeError for a field that does not fit (a software bug). */
export function encodeCommand(cmd: Command, out = new Uint32Array(8)): Uint32Array {
  // Eight stores: TypedArray.prototype.fill costs more for so few.
  for (let i = 0; i < 8; i++) out[i] = 0;
  switch (cmd.op) {
    case 'context-inval':
      if (cmd.rid !== null) field(cmd.rid, 0xffff, 'rid');
      out[0] = (Opcode.ContextInval | (cmd.rid === null ? 0 : (1 << 8) | (cmd.rid << 16))) >>> 0;
      return out;
    case 'pasid-cache-inval':
    case 'iotlb-inval': {
      const opcode = cmd.op === 'iotlb-inval' ? Opcode.IotlbInval : Opcode.PasidCacheInval;
      const gran = SCOPES.indexOf(cmd.scope);
      out[0] = opcode | (gran << 8);
      if (cmd.scope === 'global') return out;
      field(cmd.did, 0xffff, 'did');
      out[2] = cmd.did;
      if (cmd.scope === 'domain') return out;
      field(cmd.pasid, 0xfffff, 'pasid');
      out[3] = cmd.pasid;
      if (cmd.scope === 'pasid') return out;
      if (!Number.isSafeInteger(cmd.address) || cmd.address < 0 || cmd.address % 4096 !== 0) throw new RangeError(`address must be a 4 KiB-aligned IOVA, not ${cmd.address}`);
      if (!Number.isSafeInteger(cmd.pages) || cmd.pages < 0) throw new RangeError(`pages must be a non-negative integer, not ${cmd.pages}`);
      out[4] = cmd.address % TWO_32;
      out[5] = Math.floor(cmd.address / TWO_32);
      out[6] = cmd.pages % TWO_32;
      out[7] = Math.floor(cmd.pages / TWO_32);
      return out;
    }
    case 'page-response':
      return encodePageResponse(out, cmd.rid, cmd.pasid, cmd.prgi, cmd.code, cmd.privateData);
    case 'fence':
      return encodeFence(out, cmd.interrupt, cmd.statusAddress, cmd.statusData);
  }
}

/** encodeCommand of a PAGE_RESPONSE from its fields (a driver answering a fault builds no Command object). */
export function encodePageResponse(
  out: Uint32Array, rid: number, pasid: number, prgi: number, code: PageResponseCode, privateData: readonly [number, number] | null,
): Uint32Array {
  field(rid, 0xffff, 'rid');
  field(prgi, 0x1ff, 'prgi');
  const pv = pasid !== NO_PASID;
  if (pv) field(pasid, 0xfffff, 'pasid');
  for (let i = 0; i < 8; i++) out[i] = 0;
  out[0] = (Opcode.PageResponse | (code << 8) | (pv ? 1 << 12 : 0) | (privateData !== null ? 1 << 13 : 0) | (rid << 16)) >>> 0;
  out[2] = prgi;
  out[3] = pv ? pasid : 0;
  if (privateData !== null) {
    out[4] = privateData[0] >>> 0;
    out[5] = privateData[1] >>> 0;
  }
  return out;
}

/** encodeCommand of a FENCE from its fields. */
export function encodeFence(out: Uint32Array, interrupt: boolean, statusAddress: number, statusData: number): Uint32Array {
  const a = statusAddress;
  if (!Number.isSafeInteger(a) || a < 0 || a >= 2 ** 52 || a % 4 !== 0) throw new RangeError(`statusAddress must be a 4-byte-aligned PA below 2^52, not ${a}`);
  for (let i = 0; i < 8; i++) out[i] = 0;
  out[0] = Opcode.Fence | (interrupt ? 1 << 8 : 0);
  out[2] = a % TWO_32;
  out[3] = Math.floor(a / TWO_32);
  out[4] = statusData >>> 0;
  return out;
}

function field(value: number, max: number, what: string): void {
  if (!Number.isInteger(value) || value < 0 || value > max) throw new RangeError(`${what} must be an integer from 0 to ${max}, not ${value}`);
}
