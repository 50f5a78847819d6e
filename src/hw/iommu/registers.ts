// The register file of docs/hw-iommu.md, "Registers": offsets, the CAP encoding, and the state behind
// readReg/writeReg. Values are numbers below 2^53; a write of anything else (negative, fractional, NaN,
// 2^53 or more) is not a value a 64-bit register can be given through this interface and is ignored.

import type { IommuCaps } from './types.ts';
import { MemQueue } from './queues.ts';

export const Reg = {
  VER: 0x00,
  CAP: 0x08,
  GCMD: 0x10,
  GSTS: 0x18,
  DTADDR: 0x20,
  CQB: 0x28,
  CQH: 0x30,
  CQT: 0x38,
  CQCSR: 0x40,
  FQB: 0x48,
  FQH: 0x50,
  FQT: 0x58,
  FQCSR: 0x60,
  PQB: 0x68,
  PQH: 0x70,
  PQT: 0x78,
  PQCSR: 0x80,
  IPSR: 0x88,
} as const;

/** VER reads 0x10. */
export const IOMMU_VERSION = 0x10;
/** GCMD bit 0: enable translation; GSTS bit 0: translation enabled. */
export const GCMD_TE = 1;
export const GSTS_TES = 1;
/** CQCSR bits (the queue CSR layout is shared: see queues.ts). */
export const CQCSR_CMD_ILL = 1 << 8;
export const CQCSR_CQMF = 1 << 9;
export const FQCSR_FQOF = 1 << 8;
export const FQCSR_FQMF = 1 << 9;
export const PQCSR_PQOF = 1 << 8;
export const PQCSR_PQMF = 1 << 9;
/** IPSR bits (write 1 to clear). */
export const IPSR_FQ = 1 << 0;
export const IPSR_PQ = 1 << 1;
export const IPSR_CQ = 1 << 2;

const TWO_52 = 2 ** 52;
const TWO_32 = 2 ** 32;

/** The CAP register value for `caps` (bits as in docs/hw-iommu.md, "Capabilities"). */
export function encodeCaps(caps: IommuCaps): number {
  const bit = (b: boolean, n: number): number => (b ? 1 << n : 0);
  return ((
    (caps.inputAddressWidth & 0xff) |
    ((caps.physAddressWidth & 0xff) << 8) |
    bit(caps.fiveLevel, 16) |
    bit(caps.pageSize2M, 17) |
    bit(caps.pageSize1G, 18) |
    ((caps.pasidWidth & 0x1f) << 19) |
    bit(caps.pri, 24) |
    bit(caps.nesting, 25) |
    bit(caps.dirtyTracking, 26) |
    bit(caps.coherent, 27) |
    bit(caps.firstStage, 28) |
    bit(caps.secondStage, 29) |
    bit(caps.passThrough, 30) |
    bit(caps.snoopControl, 31)
  ) >>> 0) + (caps.deviceTlb ? TWO_32 : 0);
}

/** Capabilities as software reads them from the CAP register. */
export function decodeCaps(value: number): IommuCaps {
  const v = value % 4294967296;
  const bit = (n: number): boolean => ((v >>> n) & 1) === 1;
  return {
    inputAddressWidth: (v & 0xff) === 57 ? 57 : 48,
    physAddressWidth: (v >>> 8) & 0xff,
    fiveLevel: bit(16),
    pageSize2M: bit(17),
    pageSize1G: bit(18),
    pasidWidth: (v >>> 19) & 0x1f,
    pri: bit(24),
    nesting: bit(25),
    dirtyTracking: bit(26),
    coherent: bit(27),
    firstStage: bit(28),
    secondStage: bit(29),
    passThrough: bit(30),
    snoopControl: bit(31),
    deviceTlb: Math.floor(value / TWO_32) % 2 === 1,
  };
}

/** Throws for capabilities no unit could have (a machine description error, not something software does). */
export function checkCaps(caps: IommuCaps): void {
  const problems: string[] = [];
  if (caps.inputAddressWidth !== 48 && caps.inputAddressWidth !== 57) problems.push('inputAddressWidth must be 48 or 57');
  if (!Number.isInteger(caps.physAddressWidth) || caps.physAddressWidth < 32 || caps.physAddressWidth > 52) problems.push('physAddressWidth must be 32 to 52');
  if (!Number.isInteger(caps.pasidWidth) || caps.pasidWidth < 0 || caps.pasidWidth > 20) problems.push('pasidWidth must be 0 to 20');
  if (problems.length > 0) throw new RangeError(`bad IOMMU capabilities: ${problems.join('; ')}`);
}

/** A register write value: an integer in [0, 2^53), else null (the write is ignored). */
export function registerValue(value: number): number | null {
  return Number.isSafeInteger(value) && value >= 0 ? value : null;
}

/** The unit's architectural register state. */
export class RegisterFile {
  readonly cap: number;
  /** GSTS.TES, set by GCMD.TE. */
  te = false;
  /** DTADDR: root table PA (4 KiB aligned, below 2^52). */
  dtaddr = 0;
  /** IPSR pending bits. */
  ipsr = 0;
  readonly cq = new MemQueue('head');
  readonly fq = new MemQueue('tail');
  readonly pq = new MemQueue('tail');

  constructor(caps: IommuCaps) {
    this.cap = encodeCaps(caps);
  }

  /** Bad offsets (unknown or unaligned) and write-only registers read 0. */
  read(offset: number): number {
    switch (offset) {
      case Reg.VER: return IOMMU_VERSION;
      case Reg.CAP: return this.cap;
      case Reg.GSTS: return this.te ? GSTS_TES : 0;
      case Reg.DTADDR: return this.dtaddr;
      case Reg.CQB: return this.cq.readBase();
      case Reg.CQH: return this.cq.head;
      case Reg.CQT: return this.cq.tail;
      case Reg.CQCSR: return this.cq.readCsr();
      case Reg.FQB: return this.fq.readBase();
      case Reg.FQH: return this.fq.head;
      case Reg.FQT: return this.fq.tail;
      case Reg.FQCSR: return this.fq.readCsr();
      case Reg.PQB: return this.pq.readBase();
      case Reg.PQH: return this.pq.head;
      case Reg.PQT: return this.pq.tail;
      case Reg.PQCSR: return this.pq.readCsr();
      case Reg.IPSR: return this.ipsr;
      default: return 0; // GCMD is write-only; other offsets hold no register
    }
  }

  /** Writes to read-only registers and bad offsets are ignored. */
  write(offset: number, raw: number): void {
    const value = registerValue(raw);
    if (value === null) return;
    // The low 32 bits: ToUint32 of a non-negative safe integer is it modulo 2^32 (a `%` on a double is a
    // library call, and this runs for every queue index software writes).
    const lo = value >>> 0;
    switch (offset) {
      // GCMD bit 0 TE: enable translation (GSTS.TES follows at once).
      case Reg.GCMD: this.te = (lo & GCMD_TE) !== 0; return;
      // DTADDR: the device (root) table PA, 4 KiB aligned.
      case Reg.DTADDR: { const v = value % TWO_52; this.dtaddr = v - (v % 4096); return; }
      case Reg.CQB: this.cq.writeBase(value); return;
      case Reg.CQT: this.cq.writeSoftwareIndex(value); return;
      case Reg.CQCSR: this.cq.writeCsr(value); return;
      case Reg.FQB: this.fq.writeBase(value); return;
      case Reg.FQH: this.fq.writeSoftwareIndex(value); return;
      case Reg.FQCSR: this.fq.writeCsr(value); return;
      case Reg.PQB: this.pq.writeBase(value); return;
      case Reg.PQH: this.pq.writeSoftwareIndex(value); return;
      case Reg.PQCSR: this.pq.writeCsr(value); return;
      // IPSR is write-1-to-clear.
      case Reg.IPSR: this.ipsr &= ~(lo & (IPSR_FQ | IPSR_PQ | IPSR_CQ)); return;
      default: return;
    }
  }
}
