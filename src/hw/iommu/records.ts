// Fault-queue and page-request-queue records of docs/hw-iommu.md ("Faults", "Page requests and
// responses"): 4 words each, as 8 little-endian 32-bit halves. The unit writes them with the numeric
// encoders (no allocation); software reads them with the decoders.

import { NO_PASID, type FaultReason, type PageRequestMessage } from './types.ts';

const TWO_32 = 4294967296;
const TWO_53 = 2 ** 53;

/** A fault record as software reads it. */
export interface FaultRecord {
  readonly reason: FaultReason;
  readonly stage: 0 | 1 | 2;
  readonly write: boolean;
  readonly exec: boolean;
  readonly priv: boolean;
  readonly rid: number;
  /** NO_PASID when the request carried none. */
  readonly pasid: number;
  /** The IOVA (low 12 bits zero for addresses above 2^53). */
  readonly iova: number;
  /** The guest physical address being translated (nested second-stage faults), else 0. */
  readonly gpa: number;
}

/** Split an address into a word's halves; above 2^53 only bits 63:12 are kept. Never throws. */
function putAddress(out: Uint32Array, at: number, value: number): void {
  if (!(value >= 0) || !Number.isFinite(value)) { out[at] = 0; out[at + 1] = 0; return; }
  const hi = Math.floor(value / 4294967296); // TWO_32: a literal divisor is a multiplication, a module constant a division
  let lo = value - hi * TWO_32;
  if (value >= TWO_53) lo -= lo % 4096;
  out[at] = lo >>> 0;
  out[at + 1] = hi >>> 0;
}

/** The PASID field and PASID-valid flag of a request's PASID (anything but NO_PASID is carried, 20 bits). */
function pasidField(pasid: number): number { return pasid === NO_PASID ? 0 : (pasid >>> 0) & 0xfffff; }

/** Write a fault record into out[0..8). */
export function encodeFaultRecord(
  out: Uint32Array, reason: number, stage: number, write: boolean, exec: boolean, priv: boolean,
  rid: number, pasid: number, iova: number, gpa: number,
): void {
  // Word 0: bits 7:0 REASON; 9:8 STAGE; 10 write; 11 execute; 12 privileged; 13 PASID valid; 31:16 RID; 51:32 PASID.
  out[0] = ((reason & 0xff) | ((stage & 3) << 8) | (write ? 1 << 10 : 0) | (exec ? 1 << 11 : 0) | (priv ? 1 << 12 : 0)
    | (pasid !== NO_PASID ? 1 << 13 : 0) | ((rid & 0xffff) << 16)) >>> 0;
  out[1] = pasidField(pasid);
  // Word 1: the IOVA. Word 2: the GPA being translated (nested second-stage faults), else 0. Word 3: reserved.
  putAddress(out, 2, iova);
  putAddress(out, 4, gpa);
  out[6] = 0;
  out[7] = 0;
}

export function decodeFaultRecord(h: Uint32Array, at = 0): FaultRecord {
  const lo0 = h[at] as number;
  return {
    reason: (lo0 & 0xff) as FaultReason,
    stage: ((lo0 >>> 8) & 3) as 0 | 1 | 2,
    write: (lo0 & (1 << 10)) !== 0,
    exec: (lo0 & (1 << 11)) !== 0,
    priv: (lo0 & (1 << 12)) !== 0,
    rid: lo0 >>> 16,
    pasid: (lo0 & (1 << 13)) !== 0 ? (h[at + 1] as number) & 0xfffff : NO_PASID,
    iova: (h[at + 3] as number) * TWO_32 + (h[at + 2] as number),
    gpa: (h[at + 5] as number) * TWO_32 + (h[at + 4] as number),
  };
}

/** A page-request record as software reads it: the same fields as the message the device sent. */
export type PageRequestRecord = PageRequestMessage;

/** Write the page-request record of `msg` into out[0..8). */
export function encodePageRequestRecord(out: Uint32Array, msg: PageRequestMessage): void {
  // Word 0: bits 15:0 RID; 16 PASID valid; 17 read; 18 write; 19 execute; 20 privileged; 21 LPIG; 22 PDP;
  // bits 31:23 PRGI; bits 51:32 PASID.
  out[0] = ((msg.rid & 0xffff) | (msg.pasid !== NO_PASID ? 1 << 16 : 0) | (msg.read ? 1 << 17 : 0) | (msg.write ? 1 << 18 : 0)
    | (msg.exec ? 1 << 19 : 0) | (msg.priv ? 1 << 20 : 0) | (msg.lastInGroup ? 1 << 21 : 0) | (msg.privateData !== null ? 1 << 22 : 0)
    | ((msg.prgi & 0x1ff) << 23)) >>> 0;
  out[1] = pasidField(msg.pasid);
  // Word 1: the page address (4 KiB aligned).
  putAddress(out, 2, msg.address);
  out[2] = ((out[2] as number) & 0xfffff000) >>> 0;
  // Word 2: private data (echoed in the response when PDP). Word 3: reserved.
  out[4] = msg.privateData === null ? 0 : msg.privateData[0] >>> 0;
  out[5] = msg.privateData === null ? 0 : msg.privateData[1] >>> 0;
  out[6] = 0;
  out[7] = 0;
}

export function decodePageRequestRecord(h: Uint32Array, at = 0): PageRequestRecord {
  const lo0 = h[at] as number;
  const pdp = (lo0 & (1 << 22)) !== 0;
  return {
    rid: lo0 & 0xffff,
    pasid: (lo0 & (1 << 16)) !== 0 ? (h[at + 1] as number) & 0xfffff : NO_PASID,
    read: (lo0 & (1 << 17)) !== 0,
    write: (lo0 & (1 << 18)) !== 0,
    exec: (lo0 & (1 << 19)) !== 0,
    priv: (lo0 & (1 << 20)) !== 0,
    lastInGroup: (lo0 & (1 << 21)) !== 0,
    prgi: lo0 >>> 23,
    address: (h[at + 3] as number) * TWO_32 + (h[at + 2] as number),
    privateData: pdp ? [h[at + 4] as number, h[at + 5] as number] : null,
  };
}
