// copy_from_user()/copy_to_user(): the kernel reading and writing a process's memory through its VMAs,
// faulting pages in as the CPU would. An address in no VMA, or an access the VMA's protection refuses
// (a write to PROT_READ, anything to PROT_NONE), or a file page past EOF, is EFAULT. ioasis checks the
// whole range before copying, so an EFAULT copy changes nothing (Linux may copy a prefix first).

import { PAGE_SIZE, type PhysicalMemory } from '../../hw/memory/physical-memory.ts';
import { fail, ok, type Result } from '../errno.ts';
import { handleFault, presentPfn, ZERO_PAGE } from './fault.ts';
import type { Vma } from './vma.ts';

/**
 * The last page a one-page user copy of an address space resolved, as a TLB holds it: the frames a read
 * and a write of page `vpn` reach with no fault to take (presentPfn() of a VMA that allows the access), or
 * -1. It holds while the address space's mapGen is still `gen`: every change to a VMA (the list, a range,
 * a protection) or to a page-table entry moves mapGen, and an exit removes every VMA. So a hit is exactly
 * what onePageVma() and presentPfn() would answer: the ioctl argument, fault record and response copies,
 * which hit the same scratch page call after call, skip the VMA search and the page-table lookup.
 */
export class UaccessTlb {
  vpn = -1;
  gen = -1;
  readPfn = -1;
  writePfn = -1;
}

/**
 * A buffer reused for user copies (an ioctl argument, fault records), with a 32-bit view of the same
 * bytes: a copy of whole words at a word-aligned address (every struct copy) then moves a word at a time.
 */
export class CopyBuffer {
  readonly bytes: Uint8Array;
  readonly words: Uint32Array;

  constructor(size: number) {
    const storage = new ArrayBuffer(Math.ceil(size / 4) * 4);
    this.bytes = new Uint8Array(storage);
    this.words = new Uint32Array(storage);
  }
}

/** What uaccess needs of an address space. */
export interface UserSpace {
  readonly taskSize: number;
  readonly alive: boolean;
  readonly memory: PhysicalMemory;
  /** See UaccessTlb. */
  readonly mapGen: number;
  readonly tlb: UaccessTlb;
  findVma(addr: number): Vma | undefined;
}

const hex = (n: number): string => `0x${n.toString(16)}`;

/** access_ok() plus the VMA checks for every page of [addr, addr + length), a VMA at a time. */
export function checkRange(mm: UserSpace, addr: number, length: number, write: boolean): Result {
  if (!mm.alive) return fail('EFAULT', 'the address space is gone (the process exited)');
  if (!Number.isSafeInteger(addr) || addr < 0 || addr + length > mm.taskSize) {
    return fail('EFAULT', `${hex(addr)}+${length} is outside user space`);
  }
  if (length === 0) return ok();
  const end = addr + length;
  for (let at = Math.floor(addr / PAGE_SIZE) * PAGE_SIZE; at < end;) {
    const vma = mm.findVma(at);
    if (vma === undefined) return fail('EFAULT', `${hex(Math.max(at, addr))} is not mapped`);
    if (write ? !vma.writable : !vma.readable) {
      return fail('EFAULT', `${hex(Math.max(at, addr))} is mapped ${vma.perms}: no ${write ? 'write' : 'read'} access`);
    }
    if (vma.file !== null) {
      // The first page at or past EOF, if the range reaches it inside this VMA.
      const eofVpn = vma.startVpn + vma.file.file.pageCount - vma.pgoff;
      const lastVpn = Math.min(vma.endVpn, Math.ceil(end / PAGE_SIZE)) - 1;
      if (lastVpn >= eofVpn) {
        const bad = Math.max(eofVpn, at / PAGE_SIZE);
        return fail('EFAULT', `${hex(Math.max(bad * PAGE_SIZE, addr))} is past the end of the mapped file (SIGBUS)`);
      }
    }
    at = vma.end;
  }
  return ok();
}

/**
 * The VMA of a copy of [addr, addr + length) that lies inside one page of an anonymous mapping allowing
 * the access, or undefined for any other copy. Such a copy passes checkRange() with this VMA and is one
 * page's fault and copy: the struct-sized copies of every ioctl, read(2) and write(2) take this path,
 * which finds the VMA once and skips the general loop. Anything else goes the general way.
 */
function onePageVma(mm: UserSpace, addr: number, length: number, write: boolean): Vma | undefined {
  if (length === 0 || !Number.isSafeInteger(addr) || addr < 0 || addr + length > mm.taskSize || !mm.alive) return undefined;
  // A literal 4096 (not PAGE_SIZE): V8 turns the division into a multiply.
  if (Math.floor(addr / 4096) !== Math.floor((addr + length - 1) / 4096)) return undefined;
  const vma = mm.findVma(addr);
  if (vma === undefined || vma.file !== null || (write ? !vma.writable : !vma.readable)) return undefined;
  return vma;
}

/**
 * The frame the TLB holds for a `write` or read copy of [addr, addr + len) (inside one page, which the
 * caller checks), or -1 (take the page-table path).
 */
function tlbPfn(mm: UserSpace, addr: number, write: boolean): number {
  const tlb = mm.tlb;
  if (tlb.gen !== mm.mapGen || Math.floor(addr / 4096) !== tlb.vpn || !Number.isSafeInteger(addr)) return -1;
  return write ? tlb.writePfn : tlb.readPfn;
}

/** Remember page `vpn` of `vma` after a one-page copy (its faults taken: read mapGen only now). */
function tlbFill(mm: UserSpace, vma: Vma, vpn: number): void {
  const tlb = mm.tlb;
  tlb.vpn = vpn;
  tlb.gen = mm.mapGen;
  tlb.readPfn = vma.readable ? presentPfn(vma, vpn, 'read') : -1;
  tlb.writePfn = vma.writable ? presentPfn(vma, vpn, 'write') : -1;
}

/**
 * Copy the `len` bytes at `pa` (inside one frame) into dest[0, len): a word at a time when `words` views
 * dest's bytes and the copy is of whole aligned words, else a byte at a time.
 */
function readFrame(memory: PhysicalMemory, pa: number, dest: Uint8Array, len: number, words: Uint32Array | undefined): void {
  if (words !== undefined && ((pa | len) & 3) === 0) memory.readWords(pa, words, 0, len >>> 2);
  else memory.readInto(pa, dest, 0, len);
}

/** Copy src[0, len) to `pa` (inside one frame), as readFrame() does. */
function writeFrame(memory: PhysicalMemory, pa: number, src: Uint8Array, len: number, words: Uint32Array | undefined): void {
  if (words !== undefined && ((pa | len) & 3) === 0) memory.writeWords(pa, words, 0, len >>> 2);
  else memory.writeFrom(pa, src, 0, len);
}

/** Whether [addr, addr + len) is a non-empty range inside one page below the task size. */
const inOnePage = (mm: UserSpace, addr: number, len: number): boolean =>
  len > 0 && addr + len <= mm.taskSize && Math.floor(addr / 4096) === Math.floor((addr + len - 1) / 4096);

/** copy_from_user(): fill `dest` from user address `addr`. */
export function copyFromUser(mm: UserSpace, addr: number, dest: Uint8Array): Result {
  return copyFromUserTo(mm, addr, dest, dest.length);
}

/**
 * copy_from_user() of `len` bytes into dest[0, len): copyFromUser(mm, addr, dest.subarray(0, len))
 * without the view, so a caller can keep one buffer for copies of any size up to its length. `words`,
 * when given, is a 32-bit view of dest's bytes from its first (a CopyBuffer's).
 */
export function copyFromUserTo(mm: UserSpace, addr: number, dest: Uint8Array, len: number, words?: Uint32Array): Result {
  if (inOnePage(mm, addr, len)) {
    const hit = tlbPfn(mm, addr, false);
    if (hit >= 0) {
      readFrame(mm.memory, hit * PAGE_SIZE + (addr % 4096), dest, len, words);
      return ok();
    }
  }
  const vma = onePageVma(mm, addr, len, false);
  if (vma !== undefined) {
    const vpn = Math.floor(addr / 4096);
    let pfn = presentPfn(vma, vpn, 'read');
    if (pfn < 0) {
      const page = handleFault(vma, vpn, 'read');
      if (!page.ok) return page;
      pfn = page.value;
    }
    if (pfn === ZERO_PAGE) dest.fill(0, 0, len);
    else readFrame(mm.memory, pfn * PAGE_SIZE + (addr - vpn * 4096), dest, len, words);
    tlbFill(mm, vma, vpn);
    return ok();
  }
  return copyFromUserPages(mm, addr, len === dest.length ? dest : dest.subarray(0, len));
}

/** copy_from_user() the general way: checkRange() over the whole range, then page by page. */
export function copyFromUserPages(mm: UserSpace, addr: number, dest: Uint8Array): Result {
  const checked = checkRange(mm, addr, dest.length, false);
  if (!checked.ok) return checked;
  const length = dest.length;
  let done = 0;
  while (done < length) {
    const at = addr + done;
    const inPage = at % PAGE_SIZE;
    const len = Math.min(PAGE_SIZE - inPage, length - done);
    const page = handleFault(mm.findVma(at) as Vma, Math.floor(at / PAGE_SIZE), 'read');
    if (!page.ok) return page;
    // A copy inside one page uses `dest` itself: no view.
    const chunk = len === length ? dest : dest.subarray(done, done + len);
    if (page.value === ZERO_PAGE) chunk.fill(0);
    else mm.memory.read(page.value * PAGE_SIZE + inPage, chunk);
    done += len;
  }
  return checked;
}

/** copy_to_user(): write `src` at user address `addr` (breaking copy-on-write where needed). */
export function copyToUser(mm: UserSpace, addr: number, src: Uint8Array): Result {
  return copyToUserFrom(mm, addr, src, src.length);
}

/** copy_to_user() of src[0, len): copyToUser(mm, addr, src.subarray(0, len)) without the view (`words` as for copyFromUserTo). */
export function copyToUserFrom(mm: UserSpace, addr: number, src: Uint8Array, len: number, words?: Uint32Array): Result {
  if (inOnePage(mm, addr, len)) {
    const hit = tlbPfn(mm, addr, true);
    if (hit >= 0) {
      writeFrame(mm.memory, hit * PAGE_SIZE + (addr % 4096), src, len, words);
      return ok();
    }
  }
  const vma = onePageVma(mm, addr, len, true);
  if (vma !== undefined) {
    const vpn = Math.floor(addr / 4096);
    let pfn = presentPfn(vma, vpn, 'write');
    if (pfn < 0) {
      const page = handleFault(vma, vpn, 'write');
      if (!page.ok) return page;
      pfn = page.value;
    }
    writeFrame(mm.memory, pfn * PAGE_SIZE + (addr - vpn * 4096), src, len, words);
    tlbFill(mm, vma, vpn);
    return ok();
  }
  return copyToUserPages(mm, addr, len === src.length ? src : src.subarray(0, len));
}

/** copy_to_user() the general way: checkRange() over the whole range, then page by page. */
export function copyToUserPages(mm: UserSpace, addr: number, src: Uint8Array): Result {
  const checked = checkRange(mm, addr, src.length, true);
  if (!checked.ok) return checked;
  const length = src.length;
  let done = 0;
  while (done < length) {
    const at = addr + done;
    const inPage = at % PAGE_SIZE;
    const len = Math.min(PAGE_SIZE - inPage, length - done);
    const page = handleFault(mm.findVma(at) as Vma, Math.floor(at / PAGE_SIZE), 'write');
    if (!page.ok) return page;
    mm.memory.write(page.value * PAGE_SIZE + inPage, len === length ? src : src.subarray(done, done + len));
    done += len;
  }
  return checked;
}

// Both copies go page by page, as the CPU does: fault the page in, then copy. A copy that runs into ENOMEM
// has done the pages before it (Linux's copy_to_user() likewise leaves a prefix written). Faulting in page
// by page matters when one write covers a shared and a private mapping of the same file page: the private
// copy is taken when its page is reached, after the shared page was written.
