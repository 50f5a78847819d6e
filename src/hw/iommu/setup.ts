// Software's side of the programming model, for test benches and the kernel's IOMMU driver: allocate and
// write device-table structures in memory, program the queues, post commands and consume records. It
// touches the unit only through its registers (a RegisterPort) and memory, as a driver would; the unit
// never calls into it.

import type { PhysicalMemory } from '../memory/physical-memory.ts';
import { encodeCommand, type Command } from './commands.ts';
import {
  CONTEXT_ENTRY_BYTES, CONTEXT_TABLE_BYTES, encodeContextEntry, encodePasidEntry, encodePointerEntry, PASID_DIR_ENTRY_BYTES,
  PASID_ENTRY_BYTES, PASID_TABLE_BYTES, ROOT_ENTRY_BYTES, type ContextEntrySpec, type PasidEntrySpec,
} from './device-table.ts';
import type { TableAllocator } from './pgtable/builder.ts';
import { entryAddress } from './pgtable/format.ts';
import { QCSR_EN, RECORD_BYTES, RECORD_HALVES } from './queues.ts';
import { decodeFaultRecord, decodePageRequestRecord, type FaultRecord, type PageRequestRecord } from './records.ts';
import { GCMD_TE, Reg } from './registers.ts';

const FRAME = 4096;

/** What software needs of a unit: its registers. */
export interface RegisterPort {
  readReg(offset: number): number;
  writeReg(offset: number, value: number): void;
}

/** `count` physically contiguous zeroed frames from `alloc`; -1 (nothing kept) if it cannot give them. */
export function allocFrames(alloc: TableAllocator, count: number): number {
  const got: number[] = [];
  for (let i = 0; i < count; i++) {
    const pa = alloc.alloc();
    if (pa < 0 || (i > 0 && pa !== (got[0] as number) + i * FRAME)) {
      if (pa >= 0) alloc.free(pa);
      for (const g of got) alloc.free(g);
      return -1;
    }
    got.push(pa);
  }
  return got[0] ?? -1;
}

/** A zeroed root table (256 one-word entries). */
export function allocRootTable(alloc: TableAllocator): number { return allocFrames(alloc, 1); }

/** Point root entry `bus` at `contextTable`, or clear it (null). */
export function writeRootEntry(mem: PhysicalMemory, root: number, bus: number, contextTable: number | null): boolean {
  const at = root + (bus & 0xff) * ROOT_ENTRY_BYTES;
  if (contextTable === null) return mem.write64(at, 0, 0);
  const [lo, hi] = encodePointerEntry(contextTable);
  return mem.write64(at, lo, hi);
}

/** Follow a present one-word pointer entry at `at`; -1 when not present or outside memory. */
function pointerAt(mem: PhysicalMemory, at: number): number {
  const e = new Uint32Array(2);
  if (!mem.read64(at, e) || ((e[0] as number) & 1) === 0) return -1;
  return entryAddress(e[0] as number, e[1] as number);
}

/** PA of the context entry of `rid`, or -1 when its bus has no context table. */
export function contextEntryAddress(mem: PhysicalMemory, root: number, rid: number): number {
  const table = pointerAt(mem, root + ((rid >>> 8) & 0xff) * ROOT_ENTRY_BYTES);
  return table < 0 ? -1 : table + (rid & 0xff) * CONTEXT_ENTRY_BYTES;
}

function writeHalves(mem: PhysicalMemory, pa: number, h: Uint32Array): boolean {
  // Entries and queue records are 32 bytes, 32-byte aligned: one block inside a frame.
  if ((pa & 31) === 0 && mem.writeWords(pa, h, 0, 8)) return true;
  let ok = true;
  for (let i = 0; i < 4; i++) ok = mem.write64(pa + i * 8, h[2 * i] as number, h[2 * i + 1] as number) && ok;
  return ok;
}

/**
 * Write the context entry of `rid` (bus << 8 | devfn), allocating its bus's context table (8 KiB) if the
 * root entry is not present. Returns the entry's PA, or -1 when out of memory.
 */
export function writeContext(mem: PhysicalMemory, alloc: TableAllocator, root: number, rid: number, spec: ContextEntrySpec): number {
  let at = contextEntryAddress(mem, root, rid);
  if (at < 0) {
    const table = allocFrames(alloc, CONTEXT_TABLE_BYTES / FRAME);
    if (table < 0) return -1;
    writeRootEntry(mem, root, rid >>> 8, table);
    at = table + (rid & 0xff) * CONTEXT_ENTRY_BYTES;
  }
  return writeHalves(mem, at, encodeContextEntry(spec)) ? at : -1;
}

/** Clear (V = 0) the context entry of `rid`; false when its bus has no context table. */
export function clearContext(mem: PhysicalMemory, root: number, rid: number): boolean {
  const at = contextEntryAddress(mem, root, rid);
  return at >= 0 && writeHalves(mem, at, new Uint32Array(RECORD_HALVES));
}

/** A zeroed PASID directory of 2^pdts entries (contiguous frames). */
export function allocPasidDirectory(alloc: TableAllocator, pdts: number): number {
  return allocFrames(alloc, Math.max(1, Math.ceil((2 ** pdts * PASID_DIR_ENTRY_BYTES) / FRAME)));
}

/** PA of the PASID-table entry of `pasid` under `dir`, or -1 when its directory entry is not present. */
export function pasidEntryAddress(mem: PhysicalMemory, dir: number, pasid: number): number {
  const table = pointerAt(mem, dir + (pasid >>> 6) * PASID_DIR_ENTRY_BYTES);
  return table < 0 ? -1 : table + (pasid & 63) * PASID_ENTRY_BYTES;
}

/**
 * Write the PASID-table entry of `pasid` under the directory at `dir` (which must be large enough for it),
 * allocating the PASID table if its directory entry is not present. Returns the entry's PA, or -1.
 */
export function writePasidEntry(mem: PhysicalMemory, alloc: TableAllocator, dir: number, pasid: number, spec: PasidEntrySpec): number {
  let at = pasidEntryAddress(mem, dir, pasid);
  if (at < 0) {
    const table = allocFrames(alloc, Math.ceil(PASID_TABLE_BYTES / FRAME));
    if (table < 0) return -1;
    const [lo, hi] = encodePointerEntry(table);
    mem.write64(dir + (pasid >>> 6) * PASID_DIR_ENTRY_BYTES, lo, hi);
    at = table + (pasid & 63) * PASID_ENTRY_BYTES;
  }
  return writeHalves(mem, at, encodePasidEntry(spec)) ? at : -1;
}

/** Clear (P = 0) the PASID-table entry of `pasid`; false when its directory entry is not present. */
export function clearPasidEntry(mem: PhysicalMemory, dir: number, pasid: number): boolean {
  const at = pasidEntryAddress(mem, dir, pasid);
  return at >= 0 && writeHalves(mem, at, new Uint32Array(RECORD_HALVES));
}

/** Program DTADDR and set GCMD.TE. */
export function enableTranslation(port: RegisterPort, root: number): void {
  port.writeReg(Reg.DTADDR, root);
  port.writeReg(Reg.GCMD, GCMD_TE);
}

export type QueueName = 'command' | 'fault' | 'page-request';

interface QueueRegs { readonly base: number; readonly head: number; readonly tail: number; readonly csr: number }

const QUEUE_REGS: Record<QueueName, QueueRegs> = {
  command: { base: Reg.CQB, head: Reg.CQH, tail: Reg.CQT, csr: Reg.CQCSR },
  fault: { base: Reg.FQB, head: Reg.FQH, tail: Reg.FQT, csr: Reg.FQCSR },
  'page-request': { base: Reg.PQB, head: Reg.PQH, tail: Reg.PQT, csr: Reg.PQCSR },
};

/** Zeroed, contiguous memory for a queue of 2^log2Entries records. */
export function allocQueue(alloc: TableAllocator, log2Entries: number): number {
  return allocFrames(alloc, Math.max(1, Math.ceil((2 ** log2Entries * RECORD_BYTES) / FRAME)));
}

/** Program a queue's base and size and enable it (which starts it empty with its error flags clear). */
export function setupQueue(port: RegisterPort, which: QueueName, base: number, log2Entries: number): void {
  const r = QUEUE_REGS[which];
  port.writeReg(r.csr, 0);
  port.writeReg(r.base, base + log2Entries);
  port.writeReg(r.csr, QCSR_EN);
}


/** 2^0 .. 2^31: the entry counts a base register can select. */
const POW2: readonly number[] = Array.from({ length: 32 }, (_, i) => 2 ** i);

/** Entries in a queue whose base register reads `b` (log2 of the size in its low 5 bits). */
function queueEntries(b: number): number {
  // Bits 4:0 (the base is a non-negative safe integer: its low bits survive ToUint32).
  const log2 = (b >>> 0) & 31;
  return POW2[log2] ?? 2 ** log2;
}

/** Bits 51:12 of a base register: the queue's PA (a division by a literal power of two is a multiply). */
function queueBase(b: number): number {
  return Math.floor(b / 4096) * 4096;
}

/**
 * (i + 1) % entries for a ring index. The entry count comes from a table that holds 2^31 and so is a double:
 * `%` would be a floating-point remainder (a library call) on every record; a compare is not.
 */
function nextIndex(i: number, entries: number): number {
  const next = i + 1;
  return next < entries ? next : next === entries ? 0 : next % entries;
}

/**
 * Write `cmd` at the command queue's tail and ring it (CQT). False when the queue is full or outside memory.
 * `words`: where to encode it (a driver passes its own 8-word buffer rather than one per command).
 */
export function postCommand(port: RegisterPort, mem: PhysicalMemory, cmd: Command, words?: Uint32Array<ArrayBuffer>): boolean {
  return postInto(port, mem, cmd, null, words);
}

/** postCommand() of a command already encoded into 8 halves (see encodePageResponse, encodeFence). */
export function postCommandWords(port: RegisterPort, mem: PhysicalMemory, words: Uint32Array): boolean {
  return postInto(port, mem, null, words, undefined);
}

/** Where a queue is and how many entries it has: what its driver programmed into the base register. */
export interface QueueLayout {
  readonly base: number;
  readonly entries: number;
}

/** The layout setupQueue(port, which, base, log2Entries) programs (the base register reads back exactly that). */
export function queueLayout(base: number, log2Entries: number): QueueLayout {
  return { base: queueBase(base + log2Entries), entries: queueEntries(base + log2Entries) };
}

/**
 * postCommand() for the driver that programmed the queue and alone writes CQB: the base and size it wrote
 * are not read back for every command (intel's struct q_inval keeps them too); the indices are.
 */
export function postCommandAt(port: RegisterPort, mem: PhysicalMemory, q: QueueLayout, cmd: Command, words?: Uint32Array<ArrayBuffer>): boolean {
  return postAt(port, mem, q.base, q.entries, cmd, null, words);
}

/** postCommandAt() of a command already encoded into 8 halves (see encodePageResponse, encodeFence). */
export function postCommandWordsAt(port: RegisterPort, mem: PhysicalMemory, q: QueueLayout, words: Uint32Array): boolean {
  return postAt(port, mem, q.base, q.entries, null, words, undefined);
}

/**
 * Two encoded commands, then one tail write (intel's qi_submit_sync writes its descriptor and the wait
 * descriptor, then IQT once). False, with the tail unmoved, unless both fit and are written: the caller then
 * posts them one at a time (postCommandWordsAt), which writes the same slots.
 */
export function postCommandWordsPairAt(port: RegisterPort, mem: PhysicalMemory, q: QueueLayout, first: Uint32Array, second: Uint32Array): boolean {
  const head = port.readReg(Reg.CQH);
  const tail = port.readReg(Reg.CQT);
  const t1 = nextIndex(tail, q.entries);
  const t2 = nextIndex(t1, q.entries);
  if (t1 === head || t2 === head) return false;
  if (!writeHalves(mem, q.base + tail * RECORD_BYTES, first) || !writeHalves(mem, q.base + t1 * RECORD_BYTES, second)) return false;
  port.writeReg(Reg.CQT, t2);
  return true;
}

function postInto(port: RegisterPort, mem: PhysicalMemory, cmd: Command | null, encoded: Uint32Array | null, words: Uint32Array<ArrayBuffer> | undefined): boolean {
  // The registers are read one by one rather than into a state object: this runs for every command.
  const b = port.readReg(QUEUE_REGS.command.base);
  return postAt(port, mem, queueBase(b), queueEntries(b), cmd, encoded, words);
}

// The tail slot is checked before the command is encoded: a full queue refuses without looking at it.
function postAt(
  port: RegisterPort, mem: PhysicalMemory, base: number, entries: number, cmd: Command | null, encoded: Uint32Array | null, words: Uint32Array<ArrayBuffer> | undefined,
): boolean {
  const r = QUEUE_REGS.command;
  const head = port.readReg(r.head);
  const tail = port.readReg(r.tail);
  // A queue is full when (tail + 1) % entries == head.
  const next = nextIndex(tail, entries);
  if (next === head) return false;
  const h = encoded ?? encodeCommand(cmd as Command, words);
  if (!writeHalves(mem, base + tail * RECORD_BYTES, h)) return false;
  port.writeReg(Reg.CQT, next);
  return true;
}

/** Buffers a queue reader may lend `consume` (a driver polling on every fault keeps one: no allocation per read). */
export interface RecordScratch { readonly h: Uint32Array }

export function newRecordScratch(): RecordScratch {
  return { h: new Uint32Array(RECORD_HALVES) };
}

/**
 * Read and consume up to `max` records of queue `r`, decoded and appended to `out`; the number read. An
 * empty queue (what polling mostly finds) costs two register reads: no record to read, no head to move.
 */
function consumeInto<T>(
  port: RegisterPort, mem: PhysicalMemory, r: QueueRegs, max: number, decode: (h: Uint32Array) => T, scratch: RecordScratch | undefined, out: T[],
  layout: QueueLayout | null = null,
): number {
  let head = port.readReg(r.head);
  const tail = port.readReg(r.tail);
  if (head === tail) return 0;
  let base: number;
  let entries: number;
  if (layout !== null) {
    base = layout.base;
    entries = layout.entries;
  } else {
    const b = port.readReg(r.base);
    base = queueBase(b);
    entries = queueEntries(b);
  }
  const h = scratch?.h ?? new Uint32Array(RECORD_HALVES);
  let n = 0;
  while (head !== tail && n < max) {
    // A record outside memory reads as zeros.
    if (!mem.readWords(base + head * RECORD_BYTES, h, 0, RECORD_HALVES)) h.fill(0);
    out.push(decode(h));
    n++;
    head = nextIndex(head, entries);
  }
  port.writeReg(r.head, head);
  return n;
}

/** Read and consume (advance FQH past) up to `max` fault records. */
export function readFaultRecords(port: RegisterPort, mem: PhysicalMemory, max = Infinity, scratch?: RecordScratch): FaultRecord[] {
  const out: FaultRecord[] = [];
  consumeInto(port, mem, QUEUE_REGS.fault, max, decodeFaultRecord, scratch, out);
  return out;
}

/** Read and consume (advance PQH past) up to `max` page-request records. */
export function readPageRequests(port: RegisterPort, mem: PhysicalMemory, max = Infinity, scratch?: RecordScratch): PageRequestRecord[] {
  const out: PageRequestRecord[] = [];
  consumeInto(port, mem, QUEUE_REGS['page-request'], max, decodePageRequestRecord, scratch, out);
  return out;
}

/**
 * readFaultRecords() appending to `out` rather than returning a new array (a driver polling on every fault
 * reuses one): the number of records read.
 */
export function readFaultRecordsInto(port: RegisterPort, mem: PhysicalMemory, out: FaultRecord[], scratch?: RecordScratch, layout?: QueueLayout): number {
  return consumeInto(port, mem, QUEUE_REGS.fault, Infinity, decodeFaultRecord, scratch, out, layout ?? null);
}

/**
 * readPageRequests() appending to `out`: the number of records read. `layout`: the queue as the driver
 * that programmed it (and alone writes PQB) knows it, so the base register is not read back.
 */
export function readPageRequestsInto(port: RegisterPort, mem: PhysicalMemory, out: PageRequestRecord[], scratch?: RecordScratch, layout?: QueueLayout): number {
  return consumeInto(port, mem, QUEUE_REGS['page-request'], Infinity, decodePageRequestRecord, scratch, out, layout ?? null);
}
