// A process's address space (Linux's mm_struct): sorted, non-overlapping VMAs, the mmap/munmap/mprotect
// system calls over them, user-memory access and pinning, fork's copy, and the /proc/PID/status counters.

import { PAGE_SIZE, type PhysicalMemory } from '../../hw/memory/physical-memory.ts';
import { fail, ok, type KernelError, type Result } from '../errno.ts';
import { OpenFile } from '../process/file.ts';
import { handleFault } from './fault.ts';
import { NO_FRAME, type FrameAllocator } from './frame-allocator.ts';
import { pinUserPage, pinUserPageRuns, pinUserPages, unpinAll, unpinRuns, type PfnRuns } from './gup.ts';
import { MemFile } from './memfile.ts';
import {
  DEFAULT_MM_LAYOUT, MADV_HUGEPAGE, MADV_NOHUGEPAGE, MAP_ANONYMOUS, MAP_FIXED, MAP_KNOWN_FLAGS, MAP_POPULATE, MAP_PRIVATE, MAP_SHARED,
  MAP_SHARED_VALIDATE, MAP_TYPE, PROT_EXEC, PROT_READ, PROT_WRITE, type MmLayout,
} from './mman.ts';
import { copyFromUser, copyFromUserTo, copyToUser, copyToUserFrom, UaccessTlb } from './uaccess.ts';
import { getUnmappedArea } from './unmapped-area.ts';
import { defaultThpSettings, type ThpSettings } from './thp.ts';
import { entryPfn, firstEndingAfter, PTE_ANON, PTE_EXCLUSIVE, Vma } from './vma.ts';

const PROT_ALL = PROT_READ | PROT_WRITE | PROT_EXEC;
const pageAlign = (n: number): number => Math.ceil(n / PAGE_SIZE) * PAGE_SIZE;
const hex = (n: number): string => `0x${n.toString(16)}`;

/** /proc/PID/status memory lines, in kB as Linux prints them. */
export interface MmStatus {
  readonly VmSize: number;
  readonly VmLck: number;
  readonly VmPin: number;
  readonly VmRSS: number;
  readonly RssAnon: number;
  readonly RssFile: number;
  readonly RssShmem: number;
}

export class Mm {
  readonly frames: FrameAllocator;
  readonly layout: MmLayout;
  private vmas: Vma[] = [];
  /** MM_ANONPAGES and MM_SHMEMPAGES, kept current by the VMAs. */
  private readonly rss = { rssAnon: 0, rssShmem: 0, mapGen: 0 };
  /** uaccess's last one-page translation (valid while mapGen has not moved). */
  readonly tlb = new UaccessTlb();
  private pinned = 0;
  private locked = 0;
  /** mm_users: the process and any mmget() holder (a remote pinner). At 0 the mappings go. */
  private users = 1;
  /** /sys/kernel/mm/transparent_hugepage/enabled: system-wide, so shared with every mm of the machine. */
  readonly thp: ThpSettings;

  constructor(frames: FrameAllocator, layout: Partial<MmLayout> = {}, thp: ThpSettings = defaultThpSettings()) {
    this.frames = frames;
    this.layout = { ...DEFAULT_MM_LAYOUT, ...layout };
    this.thp = thp;
  }

  get memory(): PhysicalMemory { return this.frames.memory; }
  /** Moves on every change to the VMAs or their page-table entries (RssCounters.mapGen). */
  get mapGen(): number { return this.rss.mapGen; }
  get taskSize(): number { return this.layout.taskSize; }
  /** False once the last mmput() tore the mappings down (the process exited). */
  get alive(): boolean { return this.users > 0; }
  /** mm->pinned_vm, in pages (VmPin). */
  get pinnedVm(): number { return this.pinned; }
  /** mm->locked_vm, in pages (VmLck). */
  get lockedVm(): number { return this.locked; }
  get rssAnon(): number { return this.rss.rssAnon; }
  get rssShmem(): number { return this.rss.rssShmem; }
  /** Resident pages: entries in the page tables (the zero page is not counted, as in Linux). */
  get rssPages(): number { return this.rss.rssAnon + this.rss.rssShmem; }
  /** map_count. */
  get mapCount(): number { return this.vmas.length; }
  /** total_vm, in pages. */
  get totalVm(): number { return this.vmas.reduce((n, v) => n + v.pageCount, 0); }

  status(): MmStatus {
    const kb = (pages: number): number => (pages * PAGE_SIZE) / 1024;
    return {
      VmSize: kb(this.totalVm), VmLck: kb(this.locked), VmPin: kb(this.pinned), VmRSS: kb(this.rssPages),
      RssAnon: kb(this.rss.rssAnon), RssFile: 0, RssShmem: kb(this.rss.rssShmem),
    };
  }

  /** The VMAs, ascending (read-only view). */
  vmaList(): readonly Vma[] { return this.vmas; }

  /** find_vma() proper: the VMA containing `addr`, or undefined. */
  findVma(addr: number): Vma | undefined {
    const i = firstEndingAfter(this.vmas, addr);
    const v = this.vmas[i];
    return v !== undefined && v.start <= addr ? v : undefined;
  }

  /**
   * mmap(): map `length` bytes (rounded up to pages) and return the address. `file` is the open file for a
   * file mapping (ignored with MAP_ANONYMOUS, as Linux ignores the fd). Errors as do_mmap():
   * EINVAL (length 0, unaligned offset or fixed address, no or both of MAP_SHARED/MAP_PRIVATE, bad prot),
   * EBADF (no file without MAP_ANONYMOUS), ENODEV (the file cannot be mapped), EOVERFLOW (file offset
   * wraps), EPERM (below mmap_min_addr), EEXIST (MAP_FIXED_NOREPLACE over a mapping), EOPNOTSUPP (unknown
   * flag with MAP_SHARED_VALIDATE), ENOMEM (too long, no room, or vm.max_map_count reached).
   */
  mmap(addr: number, length: number, prot: number, flags: number, file: OpenFile | null, offset: number): Result<number> {
    if (!this.alive) throw new Error('mmap on an exited mm');
    const type = flags & MAP_TYPE;
    if (type !== MAP_SHARED && type !== MAP_PRIVATE && type !== MAP_SHARED_VALIDATE) {
      return fail('EINVAL', 'flags must hold exactly one of MAP_SHARED and MAP_PRIVATE');
    }
    if (type === MAP_SHARED_VALIDATE && (flags & ~MAP_KNOWN_FLAGS) !== 0) {
      return fail('EOPNOTSUPP', `unknown mmap flags ${hex(flags & ~MAP_KNOWN_FLAGS)}`);
    }
    if ((prot & ~PROT_ALL) !== 0) return fail('EINVAL', `unknown prot bits ${hex(prot & ~PROT_ALL)}`);
    if (!Number.isSafeInteger(length) || length <= 0) return fail('EINVAL', `length ${length}`);
    if (!Number.isSafeInteger(offset) || offset < 0 || offset % PAGE_SIZE !== 0) {
      return fail('EINVAL', `offset ${offset} is not page aligned`);
    }
    const len = pageAlign(length);
    if (len > this.layout.taskSize) return fail('ENOMEM', `length ${length} is larger than user space`);
    const shared = type !== MAP_PRIVATE;
    const anon = (flags & MAP_ANONYMOUS) !== 0;
    if (!anon && file === null) return fail('EBADF', 'a file mapping needs an open file');
    const devMap = !anon && file?.file.mmap !== undefined;
    if (!anon && !devMap && !(file?.file instanceof MemFile)) return fail('ENODEV', `a ${file?.file.kind} cannot be mapped`);
    if (!anon && offset + len > Number.MAX_SAFE_INTEGER) return fail('EOVERFLOW', 'file offset + length wraps');

    const placed = getUnmappedArea(this.vmas, this.layout, addr, len, flags);
    if (!placed.ok) return placed;
    const start = placed.value;
    if (flags & MAP_FIXED) {
      const unmapped = this.unmapRange(start, start + len);
      if (!unmapped.ok) return unmapped;
    }
    if (this.vmas.length >= this.layout.maxMapCount) return fail('ENOMEM', `vm.max_map_count (${this.layout.maxMapCount}) reached`);

    if (devMap && file !== null) return this.mmapPfn(start, len, prot, shared, file, offset / PAGE_SIZE);
    let backing: OpenFile<MemFile> | null = null;
    if (!anon) backing = (file as OpenFile<MemFile>).get();
    // shmem_zero_setup(): shared anonymous memory is a new shmem file of the mapping's size.
    else if (shared) backing = new OpenFile(new MemFile(this.frames, 'dev/zero (deleted)', len));
    const vma = new Vma(this.frames, this.rss, this.thp, start, start + len, prot, shared, backing, anon ? 0 : offset / PAGE_SIZE);
    this.vmas.splice(firstEndingAfter(this.vmas, start), 0, vma);
    this.rss.mapGen++;
    if (flags & MAP_POPULATE) this.populate(vma);
    return ok(start);
  }

  // mmap_region() with f_op->mmap for a driver's pages: the file decides (its errors leave nothing mapped,
  // though a MAP_FIXED unmap already done stays done, as in Linux); vm_pgoff becomes 0 as remap_pfn_range
  // leaves it, and the VMA holds a file reference.
  private mmapPfn(start: number, len: number, prot: number, shared: boolean, file: OpenFile, pgoff: number): Result<number> {
    if (file.file.mmap === undefined) throw new Error(`${file.file.kind} has no mmap op`);
    const map = file.file.mmap({ length: len, pgoff, prot, shared });
    if (!map.ok) return map;
    const vma = new Vma(this.frames, this.rss, this.thp, start, start + len, prot, shared, null, 0);
    vma.pfnmap = { file: file.get(), map: map.value };
    this.vmas.splice(firstEndingAfter(this.vmas, start), 0, vma);
    this.rss.mapGen++;
    return ok(start);
  }

  // populate_vma_page_range(): write-fault private writable mappings, read-fault the rest; errors ignored.
  private populate(vma: Vma): void {
    const kind = vma.writable && !vma.shared ? 'write' : 'read';
    for (let vpn = vma.startVpn; vpn < vma.endVpn; vpn++) {
      if (!handleFault(vma, vpn, kind).ok) return;
    }
  }

  /**
   * munmap(): remove [addr, addr + length) (length rounded up), splitting VMAs at the edges and dropping
   * their pages. Unmapping a hole is not an error. EINVAL for an unaligned address, length 0 or a range
   * leaving user space; ENOMEM if a split would pass vm.max_map_count.
   */
  munmap(addr: number, length: number): Result {
    const { taskSize } = this.layout;
    if (!Number.isSafeInteger(addr) || addr % PAGE_SIZE !== 0 || addr < 0 || addr > taskSize ||
      !Number.isSafeInteger(length) || length < 0 || length > taskSize - addr) {
      return fail('EINVAL', `munmap(${hex(addr)}, ${length}): unaligned or outside user space`);
    }
    const len = pageAlign(length);
    if (len === 0) return fail('EINVAL', 'munmap of length 0');
    return this.unmapRange(addr, addr + len);
  }

  private unmapRange(start: number, end: number): Result {
    const split = this.splitEdges(start, end);
    if (!split.ok) return split;
    const first = firstEndingAfter(this.vmas, start);
    let last = first;
    while (last < this.vmas.length && (this.vmas[last] as Vma).start < end) last++;
    for (const vma of this.vmas.splice(first, last - first)) vma.release();
    this.rss.mapGen++;
    return ok();
  }

  // Split the VMAs straddling `start` and `end` so that [start, end) is made of whole VMAs.
  private splitEdges(start: number, end: number): Result {
    const a = this.findVma(start);
    const b = this.findVma(end - 1);
    const cuts = (a !== undefined && a.start < start ? 1 : 0) + (b !== undefined && b.end > end ? 1 : 0);
    if (cuts > 0 && this.vmas.length + cuts > this.layout.maxMapCount) {
      return fail('ENOMEM', `splitting would pass vm.max_map_count (${this.layout.maxMapCount})`);
    }
    if (a !== undefined && a.start < start) this.vmas.splice(this.vmas.indexOf(a) + 1, 0, a.splitAt(start));
    const c = this.findVma(end - 1);
    if (c !== undefined && c.end > end) this.vmas.splice(this.vmas.indexOf(c) + 1, 0, c.splitAt(end));
    this.rss.mapGen++;
    return ok();
  }

  /**
   * mprotect(): set the protection of [addr, addr + length), which must be fully mapped (else ENOMEM).
   * EINVAL for an unaligned address or unknown bits; length 0 succeeds without doing anything.
   */
  mprotect(addr: number, length: number, prot: number): Result {
    if (!Number.isSafeInteger(addr) || addr < 0 || addr % PAGE_SIZE !== 0) return fail('EINVAL', `mprotect at unaligned ${hex(addr)}`);
    if ((prot & ~PROT_ALL) !== 0) return fail('EINVAL', `unknown prot bits ${hex(prot & ~PROT_ALL)}`);
    return this.forEachVmaIn(addr, length, (vma) => { vma.prot = prot; });
  }

  /**
   * madvise(MADV_HUGEPAGE | MADV_NOHUGEPAGE) (hugepage_madvise()): set the THP advice of [addr, addr +
   * length), splitting VMAs at the edges; pages already mapped stay as they are. EINVAL for an unaligned
   * address or other advice, ENOMEM when part of the range is not mapped (nothing changes then).
   */
  madvise(addr: number, length: number, advice: number): Result {
    if (!Number.isSafeInteger(addr) || addr < 0 || addr % PAGE_SIZE !== 0) return fail('EINVAL', `madvise at unaligned ${hex(addr)}`);
    if (advice !== MADV_HUGEPAGE && advice !== MADV_NOHUGEPAGE) return fail('EINVAL', `advice ${advice} is not modelled`);
    return this.forEachVmaIn(addr, length, (vma) => { vma.thpAdvice = advice === MADV_HUGEPAGE ? 'huge' : 'nohuge'; });
  }

  // What mprotect() and madvise() share: EINVAL for a bad length, nothing for 0, ENOMEM when the range
  // leaves user space or has a hole (nothing changes then), VMAs split at both edges, then `change` on each.
  private forEachVmaIn(addr: number, length: number, change: (vma: Vma) => void): Result {
    if (!Number.isSafeInteger(length) || length < 0) return fail('EINVAL', `length ${length}`);
    if (length === 0) return ok();
    const end = addr + pageAlign(length);
    if (end > this.layout.taskSize) return fail('ENOMEM', `${hex(addr)}+${length} leaves user space`);
    for (let at = addr; at < end;) {
      const vma = this.findVma(at);
      if (vma === undefined) return fail('ENOMEM', `${hex(at)} is not mapped`);
      at = vma.end;
    }
    const split = this.splitEdges(addr, end);
    if (!split.ok) return split;
    for (let i = firstEndingAfter(this.vmas, addr); i < this.vmas.length && (this.vmas[i] as Vma).start < end; i++) change(this.vmas[i] as Vma);
    this.rss.mapGen++;
    return ok();
  }

  /** copy_from_user(): EFAULT for an unmapped page, PROT_NONE, or a file page past EOF. */
  read(addr: number, dest: Uint8Array): Result { return copyFromUser(this, addr, dest); }

  /** copy_to_user(): EFAULT for an unmapped page, a mapping without PROT_WRITE, or a file page past EOF. */
  write(addr: number, src: Uint8Array): Result { return copyToUser(this, addr, src); }

  /** read(addr, dest.subarray(0, len)) without the view (a reused buffer longer than the copy; `words`: its 32-bit view, see CopyBuffer). */
  readTo(addr: number, dest: Uint8Array, len: number, words?: Uint32Array): Result { return copyFromUserTo(this, addr, dest, len, words); }

  /** write(addr, src.subarray(0, len)) without the view. */
  writeFrom(addr: number, src: Uint8Array, len: number, words?: Uint32Array): Result { return copyToUserFrom(this, addr, src, len, words); }

  /** pin_user_pages(FOLL_LONGTERM [| FOLL_WRITE]); see gup.ts. */
  pinUserPages(addr: number, npages: number, write: boolean): Result<number[]> {
    return pinUserPages(this, addr, npages, write);
  }

  /** pin_user_pages() returning runs of contiguous frames (a folio at a time); see gup.ts. */
  pinUserPageRuns(addr: number, npages: number, write: boolean): Result<PfnRuns> {
    return pinUserPageRuns(this, addr, npages, write);
  }

  /** pinUserPageRuns(addr, 1, write) returning the frame (or the error) without a run list. */
  pinUserPage(addr: number, write: boolean): number | KernelError {
    return pinUserPage(this, addr, write);
  }

  /** unpin_user_pages(): works after the mm is gone too, as pins outlive it. */
  unpinUserPages(pfns: readonly number[]): void { unpinAll(this.frames, pfns); }

  /** unpin_user_pages() for runs from pinUserPageRuns(). */
  unpinUserPageRuns(runs: PfnRuns): void { unpinRuns(this.frames, runs); }

  /** The frame mapped at `addr` without faulting (follow_page()), or NO_FRAME (unmapped or zero page). */
  lookupPfn(addr: number): number {
    const vma = this.findVma(addr);
    const entry = vma?.entryAt(Math.floor(addr / PAGE_SIZE));
    return entry === undefined ? NO_FRAME : entryPfn(entry);
  }

  /** atomic64_add/sub(npages, &mm->pinned_vm): the pinner's charge, shown as VmPin. */
  accountPinnedVm(npages: number, op: 'add' | 'sub'): void {
    if (!Number.isSafeInteger(npages) || npages < 0) throw new RangeError(`bad page count ${npages}`);
    if (op === 'sub' && npages > this.pinned) throw new Error(`pinned_vm would go below zero (${this.pinned} - ${npages})`);
    this.pinned += op === 'add' ? npages : -npages;
  }

  /**
   * __account_locked_vm(mm, npages, inc, task, bypass_rlim): charge mm->locked_vm (VmLck). Adding fails with
   * ENOMEM when locked_vm + npages would exceed RLIMIT_MEMLOCK (bytes, taken in pages) unless bypassed.
   */
  accountLockedVm(npages: number, op: 'add' | 'sub', rlimitBytes: number, bypassRlimit: boolean): Result {
    if (!Number.isSafeInteger(npages) || npages < 0) throw new RangeError(`bad page count ${npages}`);
    if (op === 'sub') {
      if (npages > this.locked) throw new Error(`locked_vm would go below zero (${this.locked} - ${npages})`);
      this.locked -= npages;
      return ok();
    }
    const limit = Math.floor(rlimitBytes / PAGE_SIZE);
    if (!bypassRlimit && this.locked + npages > limit) {
      return fail('ENOMEM', `locked_vm ${this.locked} + ${npages} pages exceeds RLIMIT_MEMLOCK (${limit} pages)`);
    }
    this.locked += npages;
    return ok();
  }

  /**
   * dup_mmap(): the child's address space. Shared mappings share the file and fault in lazily. Private
   * pages are shared copy-on-write: both sides lose PageAnonExclusive and the frame gains a reference,
   * except pinned anonymous pages, which the child gets a copy of at once (folio_try_dup_anon_rmap()
   * refuses a maybe-pinned page), so the parent keeps the frame a device may be writing. The child's
   * pinned_vm and locked_vm start at 0. ENOMEM when a copy cannot be allocated (nothing is left behind).
   */
  fork(): Result<Mm> {
    if (!this.alive) throw new Error('fork of an exited mm');
    const child = new Mm(this.frames, this.layout, this.thp);
    for (const vma of this.vmas) {
      const copy = vma.cloneEmpty(this.frames, child.rss);
      child.vmas.push(copy);
      if (vma.shared) continue;
      // copy_huge_pmd(): a maybe-pinned THP is split and handled page by page below; others are shared.
      for (const [pmd, entry] of [...vma.huge]) {
        const head = entryPfn(entry);
        if (this.frames.pinCount(head) > 0) {
          vma.splitPmd(pmd);
          continue;
        }
        this.frames.get(head);
        vma.updateHugeFlags(pmd, PTE_ANON);
        copy.setHuge(pmd, head, PTE_ANON);
      }
      let failed: number | null = null;
      vma.forEachEntry((vpn, pfn, flags, pages) => {
        if (pages !== 1 || failed !== null) return;
        if (flags & PTE_ANON && this.frames.pinCount(pfn) > 0) {
          const fresh = this.frames.alloc();
          if (fresh === NO_FRAME) {
            failed = vpn;
            return;
          }
          this.memory.copy(fresh * PAGE_SIZE, pfn * PAGE_SIZE, PAGE_SIZE);
          copy.setEntry(vpn, fresh, PTE_ANON | PTE_EXCLUSIVE);
          return;
        }
        this.frames.get(pfn);
        if (flags & PTE_ANON) vma.updateFlags(vpn, PTE_ANON);
        copy.setEntry(vpn, pfn, flags & PTE_ANON);
      });
      if (failed !== null) {
        child.mmput();
        return fail('ENOMEM', `no free frame to copy pinned page ${hex(failed * PAGE_SIZE)} at fork`);
      }
    }
    return ok(child);
  }

  /** mmget(): keep the mappings alive (a remote user of this mm). */
  mmget(): void {
    if (!this.alive) throw new Error('mmget on an exited mm');
    this.users++;
  }

  /** mmget_not_zero(): as mmget() if the mm is still alive; false once it exited. */
  mmgetNotZero(): boolean {
    if (!this.alive) return false;
    this.users++;
    return true;
  }

  /** mmput(): the last user tears the address space down (exit_mmap()): every mapping is removed. */
  mmput(): void {
    if (!this.alive) throw new Error('mmput on an exited mm');
    if (--this.users > 0) return;
    for (const vma of this.vmas.splice(0)) vma.release();
    this.rss.mapGen++;
  }

  /**
   * Calls `fn` for every page-table entry (leak checks). `anon` is false for page-cache pages; `pages` is
   * 512 for a PMD entry mapping a THP from `pfn` (it holds one folio reference), else 1.
   */
  forEachPage(fn: (vpn: number, pfn: number, anon: boolean, pages: number) => void): void {
    for (const vma of this.vmas) vma.forEachEntry((vpn, pfn, flags, pages) => fn(vpn, pfn, (flags & PTE_ANON) !== 0, pages));
  }
}
