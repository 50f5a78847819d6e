// A virtual memory area (Linux's vm_area_struct): a page-aligned range with one protection, one kind of
// backing, and its own page table, a Map from virtual page number to an entry (frame number and two bits).
// Only touched pages have entries; a private anonymous page read before any write has none and reads as
// the zero page.

import { PAGE_SIZE } from '../../hw/memory/physical-memory.ts';
import type { OpenFile } from '../process/file.ts';
import type { FrameAllocator } from './frame-allocator.ts';
import type { FileMapping, MemFile } from './memfile.ts';
import { PROT_EXEC, PROT_READ, PROT_WRITE } from './mman.ts';

/** The frame is an anonymous page owned by this mapping (possibly shared copy-on-write), not page cache. */
export const PTE_ANON = 1;
/** PageAnonExclusive: no other mapping shares the anonymous page, so a write needs no copy. */
export const PTE_EXCLUSIVE = 2;
const FLAG_BITS = 4;

export const entryPfn = (entry: number): number => Math.floor(entry / FLAG_BITS);
export const entryFlags = (entry: number): number => entry % FLAG_BITS;

/** Index of the first VMA of a sorted list whose end is above `addr` (binary search): find_vma(). */
export function firstEndingAfter(vmas: readonly Vma[], addr: number): number {
  let lo = 0;
  let hi = vmas.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if ((vmas[mid] as Vma).end > addr) hi = mid;
    else lo = mid + 1;
  }
  return lo;
}

/** Whether no VMA of a sorted list overlaps [start, end). */
export function rangeFree(vmas: readonly Vma[], start: number, end: number): boolean {
  const v = vmas[firstEndingAfter(vmas, start)];
  return v === undefined || v.start >= end;
}

/** The RSS counters a VMA keeps current (MM_ANONPAGES, MM_SHMEMPAGES; memfd pages are shmem). */
export interface RssCounters {
  rssAnon: number;
  rssShmem: number;
}

export class Vma implements FileMapping {
  /** Virtual page number -> entry (pfn * 4 + PTE_* bits). */
  readonly pages = new Map<number, number>();

  constructor(
    readonly frames: FrameAllocator,
    readonly rss: RssCounters,
    public start: number,
    public end: number,
    public prot: number,
    /** VM_SHARED: writes reach the file; otherwise a private (copy-on-write) mapping. */
    readonly shared: boolean,
    /** The mapped file (a reference the VMA owns), or null for private anonymous memory. */
    readonly file: OpenFile<MemFile> | null,
    /** File page at `start`. */
    public pgoff: number,
  ) {
    file?.file.addMapping(this);
  }

  get startVpn(): number { return this.start / PAGE_SIZE; }
  get endVpn(): number { return this.end / PAGE_SIZE; }
  get pageCount(): number { return (this.end - this.start) / PAGE_SIZE; }
  /** x86: any access right implies read for the CPU. */
  get readable(): boolean { return (this.prot & (PROT_READ | PROT_WRITE | PROT_EXEC)) !== 0; }
  get writable(): boolean { return (this.prot & PROT_WRITE) !== 0; }
  /** is_cow_mapping(): private mappings may always become writable (VM_MAYWRITE), so they copy on write. */
  get cow(): boolean { return !this.shared; }

  contains(addr: number): boolean { return addr >= this.start && addr < this.end; }

  /** File page mapped at `vpn` (linear_page_index()). */
  fileIndex(vpn: number): number { return this.pgoff + (vpn - this.startVpn); }

  /** Install an entry; the frame reference it stands for is the caller's, passed to the VMA. */
  setEntry(vpn: number, pfn: number, flags: number): void {
    const old = this.pages.get(vpn);
    if (old !== undefined) this.dropEntry(vpn, old);
    this.pages.set(vpn, pfn * FLAG_BITS + flags);
    if (flags & PTE_ANON) this.rss.rssAnon++;
    else this.rss.rssShmem++;
  }

  /** Change an entry's PTE_* bits (same frame, same reference). */
  updateFlags(vpn: number, flags: number): void {
    const old = this.pages.get(vpn);
    if (old === undefined) throw new Error(`no entry at page ${vpn}`);
    this.pages.set(vpn, entryPfn(old) * FLAG_BITS + flags);
  }

  /** zap_pte_range() for one page: unmap it and drop its frame reference. */
  clearEntry(vpn: number): void {
    const old = this.pages.get(vpn);
    if (old !== undefined) this.dropEntry(vpn, old);
  }

  private dropEntry(vpn: number, entry: number): void {
    this.pages.delete(vpn);
    if (entry & PTE_ANON) this.rss.rssAnon--;
    else this.rss.rssShmem--;
    this.frames.put(entryPfn(entry));
  }

  /** Truncation: drop every page at file index >= pgoff, private copies included. */
  zapFrom(pgoff: number): void {
    for (const vpn of [...this.pages.keys()]) if (this.fileIndex(vpn) >= pgoff) this.clearEntry(vpn);
  }

  /**
   * __split_vma(): cut at `addr` (page aligned, strictly inside). This VMA keeps [start, addr); the returned
   * one, with its own file reference, takes [addr, end) and the entries there.
   */
  splitAt(addr: number): Vma {
    if (addr <= this.start || addr >= this.end || addr % PAGE_SIZE !== 0) throw new Error(`bad split at ${addr}`);
    const upper = new Vma(this.frames, this.rss, addr, this.end, this.prot, this.shared, this.file?.get() ?? null,
      this.pgoff + (addr - this.start) / PAGE_SIZE);
    const cut = addr / PAGE_SIZE;
    for (const [vpn, entry] of this.pages) {
      if (vpn < cut) continue;
      upper.pages.set(vpn, entry);
      this.pages.delete(vpn);
    }
    this.end = addr;
    return upper;
  }

  /** A copy for a forked child: same range and backing, a new file reference, no pages yet. */
  cloneEmpty(frames: FrameAllocator, rss: RssCounters): Vma {
    return new Vma(frames, rss, this.start, this.end, this.prot, this.shared, this.file?.get() ?? null, this.pgoff);
  }

  /** remove_vma(): drop every page and the file reference. */
  release(): void {
    for (const [vpn, entry] of [...this.pages]) this.dropEntry(vpn, entry);
    if (this.file !== null) {
      this.file.file.removeMapping(this);
      this.file.put();
    }
  }

  /** The permission column of /proc/PID/maps ('rw-p'). */
  get perms(): string {
    const p = (bit: number, c: string): string => (this.prot & bit ? c : '-');
    return p(PROT_READ, 'r') + p(PROT_WRITE, 'w') + p(PROT_EXEC, 'x') + (this.shared ? 's' : 'p');
  }

  /** This VMA as a /proc/PID/maps line (without device and inode). */
  describe(): string {
    const hex = (n: number): string => n.toString(16).padStart(12, '0');
    const what = this.file === null ? '' : ` ${this.file.file.name}`;
    const offset = (this.pgoff * PAGE_SIZE).toString(16).padStart(8, '0');
    return `${hex(this.start)}-${hex(this.end)} ${this.perms} ${offset}${what}`;
  }
}
