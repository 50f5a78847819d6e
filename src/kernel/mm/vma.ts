// A virtual memory area (Linux's vm_area_struct): a page-aligned range with one protection, one kind of
// backing, and its own page table: a Map from virtual page number to a PTE-level entry (frame number and
// two bits), and a Map from PMD index to a PMD-level entry mapping a whole order-9 folio (a THP). Only
// touched pages have entries; a private anonymous page read before any write has none and reads as the
// zero page. A PMD entry holds one folio reference; splitting it (__split_huge_pmd()) turns it into 512
// PTE entries holding one reference each, the folio itself staying whole.

import { PAGE_SIZE } from '../../hw/memory/physical-memory.ts';
import type { OpenFile, PfnMapping } from '../process/file.ts';
import type { FrameAllocator } from './frame-allocator.ts';
import type { FileMapping, MemFile } from './memfile.ts';
import { PROT_EXEC, PROT_READ, PROT_WRITE } from './mman.ts';
import { PMD_PAGES, pmdIndex, type ThpAdvice, type ThpSettings, type ThpVma } from './thp.ts';

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

/** The per-mm counters a VMA keeps current: RSS (MM_ANONPAGES, MM_SHMEMPAGES; memfd pages are shmem) and mapGen. */
export interface RssCounters {
  rssAnon: number;
  rssShmem: number;
  /**
   * Bumped by every change to a page-table entry of the mm's VMAs (here) and to its VMA list or a VMA's
   * range or protection (mm.ts): uaccess's UaccessTlb holds while it stays the same.
   */
  mapGen: number;
}

/** A VM_PFNMAP mapping: the file f_op->mmap ran on (a reference this VMA owns) and what it mapped. */
export interface PfnMap {
  readonly file: OpenFile;
  readonly map: PfnMapping;
}

export class Vma implements FileMapping, ThpVma {
  /** Virtual page number -> entry (pfn * 4 + PTE_* bits). */
  readonly pages = new Map<number, number>();
  /** PMD index -> PMD entry (head pfn * 4 + PTE_* bits) mapping a whole THP. */
  readonly huge = new Map<number, number>();
  /** PMD index -> PTE entries under it (a PTE table exists there: pmd_none() is false). */
  private readonly ptes = new Map<number, number>();
  /** MADV_HUGEPAGE / MADV_NOHUGEPAGE advice. */
  thpAdvice: ThpAdvice = 'none';
  /**
   * A driver's pages (VM_PFNMAP|VM_IO), set right after construction by mmap(): page `vpn` is frame
   * map.pfn + fileIndex(vpn), with no page-table entry, no frame reference and no RSS, as Linux keeps no
   * struct page accounting for them. `file` is then null.
   */
  pfnmap: PfnMap | null = null;

  constructor(
    readonly frames: FrameAllocator,
    readonly rss: RssCounters,
    readonly thp: ThpSettings,
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

  /** The entry mapping `vpn` at either level (a PMD entry gives the subpage's frame), or undefined. */
  entryAt(vpn: number): number | undefined {
    const e = this.pages.get(vpn);
    if (e !== undefined || this.huge.size === 0) return e;
    const h = this.huge.get(pmdIndex(vpn));
    return h === undefined ? undefined : h + (vpn % PMD_PAGES) * FLAG_BITS;
  }

  /** Pages from `vpn` that the same PMD entry maps (1 for a PTE or nothing). */
  mappedSpan(vpn: number): number {
    // No PTE lives under a PMD entry, so the PMD map alone decides.
    if (this.huge.size === 0 || !this.huge.has(pmdIndex(vpn))) return 1;
    return PMD_PAGES - (vpn % PMD_PAGES);
  }

  /** Whether the PMD slot of `vpn` is empty (pmd_none(): no PMD entry and no PTE table). */
  pmdNone(vpn: number): boolean {
    const pmd = pmdIndex(vpn);
    return !this.ptes.has(pmd) && !this.huge.has(pmd);
  }

  /** Install a PMD entry for the folio at `head` (do_huge_pmd_anonymous_page()); the reference is passed in. */
  setHuge(pmd: number, head: number, flags: number): void {
    this.rss.mapGen++;
    if (this.huge.has(pmd) || this.ptes.has(pmd)) throw new Error(`PMD ${pmd} is not empty`);
    this.huge.set(pmd, head * FLAG_BITS + flags);
    if (flags & PTE_ANON) this.rss.rssAnon += PMD_PAGES;
    else this.rss.rssShmem += PMD_PAGES;
  }

  /** Change a PMD entry's PTE_* bits. */
  updateHugeFlags(pmd: number, flags: number): void {
    this.rss.mapGen++;
    const old = this.huge.get(pmd);
    if (old === undefined) throw new Error(`no PMD entry at ${pmd}`);
    this.huge.set(pmd, entryPfn(old) * FLAG_BITS + flags);
  }

  /**
   * __split_huge_pmd(): replace the PMD entry by 512 PTE entries with the same bits. Each takes a folio
   * reference (the PMD's one is reused by the first); RSS does not change.
   */
  splitPmd(pmd: number): void {
    this.rss.mapGen++;
    const e = this.huge.get(pmd);
    if (e === undefined) return;
    this.huge.delete(pmd);
    const head = entryPfn(e);
    const flags = entryFlags(e);
    for (let i = 0; i < PMD_PAGES; i++) this.pages.set(pmd * PMD_PAGES + i, (head + i) * FLAG_BITS + flags);
    this.ptes.set(pmd, PMD_PAGES);
    this.frames.get(head, PMD_PAGES - 1);
  }

  /** Install an entry; the frame reference it stands for is the caller's, passed to the VMA. */
  setEntry(vpn: number, pfn: number, flags: number): void {
    this.rss.mapGen++;
    if (this.huge.size > 0 && this.huge.has(pmdIndex(vpn))) throw new Error(`page ${vpn} is under a PMD entry`);
    const old = this.pages.get(vpn);
    if (old !== undefined) this.dropEntry(vpn, old);
    this.pages.set(vpn, pfn * FLAG_BITS + flags);
    this.countPte(vpn, 1);
    if (flags & PTE_ANON) this.rss.rssAnon++;
    else this.rss.rssShmem++;
  }

  private countPte(vpn: number, delta: number): void {
    const pmd = pmdIndex(vpn);
    const n = (this.ptes.get(pmd) ?? 0) + delta;
    if (n === 0) this.ptes.delete(pmd);
    else this.ptes.set(pmd, n);
  }

  /** Change an entry's PTE_* bits (same frame, same reference). */
  updateFlags(vpn: number, flags: number): void {
    this.rss.mapGen++;
    const old = this.pages.get(vpn);
    if (old === undefined) throw new Error(`no entry at page ${vpn}`);
    this.pages.set(vpn, entryPfn(old) * FLAG_BITS + flags);
  }

  /** zap_pte_range() for one page: unmap it and drop its frame reference. */
  clearEntry(vpn: number): void {
    if (this.huge.size > 0) this.splitPmd(pmdIndex(vpn));
    const old = this.pages.get(vpn);
    if (old !== undefined) this.dropEntry(vpn, old);
  }

  private dropEntry(vpn: number, entry: number): void {
    this.rss.mapGen++;
    this.pages.delete(vpn);
    this.countPte(vpn, -1);
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
    this.rss.mapGen++;
    if (addr <= this.start || addr >= this.end || addr % PAGE_SIZE !== 0) throw new Error(`bad split at ${addr}`);
    const upper = new Vma(this.frames, this.rss, this.thp, addr, this.end, this.prot, this.shared, this.file?.get() ?? null,
      this.pgoff + (addr - this.start) / PAGE_SIZE);
    upper.thpAdvice = this.thpAdvice;
    upper.pfnmap = this.dupPfnmap();
    const cut = addr / PAGE_SIZE;
    // vma_adjust_trans_huge(): a PMD entry straddling the cut is split first.
    if (cut % PMD_PAGES !== 0) this.splitPmd(pmdIndex(cut));
    for (const [pmd, entry] of this.huge) {
      if (pmd * PMD_PAGES < cut) continue;
      upper.huge.set(pmd, entry);
      this.huge.delete(pmd);
    }
    for (const [vpn, entry] of this.pages) {
      if (vpn < cut) continue;
      upper.pages.set(vpn, entry);
      upper.countPte(vpn, 1);
      this.pages.delete(vpn);
      this.countPte(vpn, -1);
    }
    this.end = addr;
    return upper;
  }

  /** A copy for a forked child: same range, backing and advice, a new file reference, no pages yet. */
  cloneEmpty(frames: FrameAllocator, rss: RssCounters): Vma {
    const copy = new Vma(frames, rss, this.thp, this.start, this.end, this.prot, this.shared, this.file?.get() ?? null, this.pgoff);
    copy.thpAdvice = this.thpAdvice;
    copy.pfnmap = this.dupPfnmap();
    return copy;
  }

  /** A new VMA maps the same driver pages: another file reference and vm_ops->open. */
  private dupPfnmap(): PfnMap | null {
    const p = this.pfnmap;
    if (p === null) return null;
    p.file.get();
    p.map.open();
    return { file: p.file, map: p.map };
  }

  /** Calls `fn` for each entry: `pages` is 512 for a PMD entry (one reference for the whole folio), else 1. */
  forEachEntry(fn: (vpn: number, pfn: number, flags: number, pages: number) => void): void {
    for (const [pmd, e] of this.huge) fn(pmd * PMD_PAGES, entryPfn(e), entryFlags(e), PMD_PAGES);
    for (const [vpn, e] of this.pages) fn(vpn, entryPfn(e), entryFlags(e), 1);
  }

  /** remove_vma(): drop every page and the file reference. */
  release(): void {
    this.rss.mapGen++;
    for (const [pmd, entry] of [...this.huge]) {
      this.huge.delete(pmd);
      if (entry & PTE_ANON) this.rss.rssAnon -= PMD_PAGES;
      else this.rss.rssShmem -= PMD_PAGES;
      this.frames.put(entryPfn(entry));
    }
    for (const [vpn, entry] of [...this.pages]) this.dropEntry(vpn, entry);
    if (this.file !== null) {
      this.file.file.removeMapping(this);
      this.file.put();
    }
    const p = this.pfnmap;
    this.pfnmap = null;
    if (p !== null) {
      // vm_ops->close before the file reference goes (remove_vma()).
      p.map.close();
      p.file.put();
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
    const what = this.file !== null ? ` ${this.file.file.name}` : this.pfnmap !== null ? ` [${this.pfnmap.file.file.kind}]` : '';
    const offset = (this.pgoff * PAGE_SIZE).toString(16).padStart(8, '0');
    return `${hex(this.start)}-${hex(this.end)} ${this.perms} ${offset}${what}`;
  }
}
