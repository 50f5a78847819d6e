// The three in-memory rings of docs/hw-iommu.md (command, fault and page-request queues): a base register
// (bits 51:12 base PA, bits 4:0 log2 of the entry count), a head and a tail index, and a control/status
// register (bit 0 enable, bits 8 and 9 error flags, write 1 to clear). Records are 4 words (32 bytes).
// One class, used as a consumer ring (the command queue: software produces, the unit consumes) or a
// producer ring (fault and page-request queues: the unit produces, software consumes).

import type { PhysicalMemory } from '../memory/physical-memory.ts';

/** Bytes of one queue record or command. */
export const RECORD_BYTES = 32;
/** 32-bit halves of one record. */
export const RECORD_HALVES = 8;

/** CSR bit 0: the queue is enabled. */
export const QCSR_EN = 1 << 0;
/** CSR bit 8: CMD_ILL (command queue) or FQOF / PQOF (overflow). Write 1 to clear. */
export const QCSR_ERR = 1 << 8;
/** CSR bit 9: CQMF / FQMF / PQMF, the queue memory fault. Write 1 to clear. */
export const QCSR_MF = 1 << 9;

/** What happened to a record the unit tried to produce. */
export const Produce = {
  /** Written at the tail; the tail moved on. */
  Written: 0,
  /** The queue is disabled. */
  Off: 1,
  /** The overflow or memory-fault flag was already set: the record is dropped without further effect. */
  Blocked: 2,
  /** The queue was full: the overflow flag is now set. */
  Overflow: 3,
  /** The record's memory lies outside physical memory: the memory-fault flag is now set. */
  MemoryFault: 4,
} as const;
export type Produce = (typeof Produce)[keyof typeof Produce];

const TWO_52 = 2 ** 52;
/** 2^0 .. 2^31, the entry counts a base register can select (a table: `2 **` is a call on every use). */
const POW2: readonly number[] = Array.from({ length: 32 }, (_, i) => 2 ** i);

export class MemQueue {
  /** Base PA (4 KiB aligned, below 2^52). */
  base = 0;
  /** log2 of the number of entries (0 to 31). */
  log2 = 0;
  head = 0;
  tail = 0;
  enabled = false;
  /** QCSR_ERR | QCSR_MF bits currently set. */
  errors = 0;
  /**
   * entries - 1: indices wrap with `&` (entries is a power of two up to 2^31, a double for 2^31, and `%`
   * on a double is a library call, several per device fault).
   */
  private mask = 0;

  /**
   * `hardwareIndex` is the index the unit owns ('head' for the command queue, which the unit consumes;
   * 'tail' for the fault and page-request queues, which it produces); software writes the other one.
   */
  constructor(readonly hardwareIndex: 'head' | 'tail') {}

  get entries(): number { return POW2[this.log2] ?? 2 ** this.log2; }

  readBase(): number { return this.base + this.log2; }

  /** xQB write: bits 51:12 base, bits 4:0 log2(entries); other bits read as zero. */
  writeBase(value: number): void {
    const v = value % TWO_52;
    this.base = v - (v % 4096);
    this.log2 = value % 32;
    this.mask = this.log2 === 31 ? 0x7fff_ffff : (1 << this.log2) - 1;
    // Indices are always below the entry count.
    this.head &= this.mask;
    this.tail &= this.mask;
  }

  /** The software-owned index register (CQT, FQH, PQH): written modulo the entry count. */
  writeSoftwareIndex(value: number): void {
    // value % entries: a register value is an integer in [0, 2^53), whose low 32 bits ToUint32 keeps.
    const i = (value >>> 0) & this.mask;
    if (this.hardwareIndex === 'head') this.tail = i; else this.head = i;
  }

  readCsr(): number { return (this.enabled ? QCSR_EN : 0) | this.errors; }

  /**
   * CSR write: bit 0 enables; bits 8 and 9 are cleared by writing 1. Enabling a disabled queue starts it
   * empty (head = tail = 0) with both error flags clear, as the RISC-V IOMMU does on cqen/fqen/pqen 0 → 1.
   */
  writeCsr(value: number): void {
    const lo = value % 4294967296;
    const enable = (lo & QCSR_EN) !== 0;
    this.errors &= ~(lo & (QCSR_ERR | QCSR_MF));
    if (enable && !this.enabled) {
      this.head = 0;
      this.tail = 0;
      this.errors = 0;
    }
    this.enabled = enable;
  }

  /** A queue is full when (tail + 1) % entries == head. */
  isFull(): boolean { return ((this.tail + 1) & this.mask) === this.head; }
  isEmpty(): boolean { return this.head === this.tail; }

  /** PA of entry `index`. */
  entryAddress(index: number): number { return this.base + index * RECORD_BYTES; }

  /**
   * Write one record (8 halves) at the tail, as the unit produces fault and page-request records. A record
   * that does not fit is dropped and the overflow bit set; while overflow or a memory fault is flagged, no
   * new record is written.
   */
  produce(mem: PhysicalMemory, halves: Uint32Array): Produce {
    // FQCSR/PQCSR bit 0: records are written only when the queue is enabled.
    if (!this.enabled) return Produce.Off;
    // The overflow bit stays set until software clears it, and while set no new records are written (as fqof/pqof).
    if (this.errors !== 0) return Produce.Blocked;
    // A queue is full when (tail + 1) % entries == head: the record is dropped and the overflow bit set.
    if (this.isFull()) {
      this.errors |= QCSR_ERR;
      return Produce.Overflow;
    }
    const at = this.entryAddress(this.tail);
    // Queue memory outside physical memory: memory fault (FQMF/PQMF), record dropped.
    if (!mem.contains(at, RECORD_BYTES)) {
      this.errors |= QCSR_MF;
      return Produce.MemoryFault;
    }
    mem.writeWords(at, halves, 0, RECORD_HALVES);
    this.tail = (this.tail + 1) & this.mask;
    return Produce.Written;
  }

  /** Read the entry at the head into `halves` (the unit consumes commands); false when outside memory. */
  readHead(mem: PhysicalMemory, halves: Uint32Array): boolean {
    const at = this.entryAddress(this.head);
    if (!mem.contains(at, RECORD_BYTES)) return false;
    // Records are 32-byte aligned, so one never crosses a frame.
    return mem.readWords(at, halves, 0, RECORD_HALVES);
  }

  advanceHead(): void { this.head = (this.head + 1) & this.mask; }
}
