// pin_user_pages(FOLL_LONGTERM [| FOLL_WRITE]): the long-term pins iommufd and VFIO take on user memory.
// Each pinned page gets a pin and a reference on its folio in PhysicalMemory, so it stays allocated after
// munmap, exit or truncation until unpin_user_pages(). Like Linux's GUP, pinning does not touch
// mm->pinned_vm or locked_vm: the pinner accounts (iommufd's iopt_pages_update_pinned(), VFIO's
// vfio_lock_acct()). Pages come back as runs of contiguous frames: the part of a large folio a PMD entry
// maps is resolved and pinned in one step (gup_huge_pmd()/try_grab_folio() with refs = pages), so pinning
// a THP-backed range costs per folio, not per page.

import { PAGE_SIZE } from '../../hw/memory/physical-memory.ts';
import { fail, ok, type KernelError, type Result } from '../errno.ts';
import { beyondEof, handleFault, hugeAnonFault, ZERO_PAGE, type FaultKind } from './fault.ts';
import { NO_FRAME, type FrameAllocator } from './frame-allocator.ts';
import { PROT_READ } from './mman.ts';
import { PMD_PAGES, pmdIndex } from './thp.ts';
import { entryFlags, entryPfn, PTE_EXCLUSIVE, type Vma } from './vma.ts';
import { checkRange, type UserSpace } from './uaccess.ts';

export interface GupSpace extends UserSpace {
  readonly frames: FrameAllocator;
}

/** Pinned pages as runs: page k of run i is frame pfns[i] + k, for counts[i] pages; in address order. */
export class PfnRuns {
  readonly pfns: number[] = [];
  readonly counts: number[] = [];
  private total = 0;

  /** Pages in all runs. */
  get pages(): number { return this.total; }
  get length(): number { return this.pfns.length; }

  /** Append `n` pages from `pfn`, extending the last run when the frames follow on. */
  push(pfn: number, n: number): void {
    const last = this.pfns.length - 1;
    if (last >= 0 && (this.pfns[last] as number) + (this.counts[last] as number) === pfn) {
      this.counts[last] = (this.counts[last] as number) + n;
    } else {
      this.pfns.push(pfn);
      this.counts.push(n);
    }
    this.total += n;
  }

  /** One frame number per page (the exact per-page view). */
  toArray(): number[] {
    const out: number[] = [];
    for (let i = 0; i < this.pfns.length; i++) {
      for (let k = 0; k < (this.counts[i] as number); k++) out.push((this.pfns[i] as number) + k);
    }
    return out;
  }
}

/**
 * Pin `npages` pages from the page containing `addr`, returning runs. All or nothing: on any error nothing
 * stays pinned.
 * - EFAULT: the mm is gone (mmget_not_zero() failed), a page is in no VMA, past EOF of a mapped file, or
 *   the VMA refuses the access (check_vma_flags(): FOLL_WRITE needs PROT_WRITE, a read pin PROT_READ);
 * - ENOMEM: a frame could not be allocated while faulting in.
 * A write pin breaks copy-on-write first. A read-only long-term pin of a private mapping unshares
 * (gup_must_unshare()): the mapping gets its own page, so a later write by the process does not move it
 * away from the pinned frame (the selftest ro_unshare).
 */
// Faults first, pins after: the walk only reads and faults, so an error leaves nothing to undo.
export function pinUserPageRuns(mm: GupSpace, addr: number, npages: number, write: boolean): Result<PfnRuns> {
  if (!Number.isSafeInteger(npages) || npages < 0) return fail('EINVAL', `cannot pin ${npages} pages`);
  if (!Number.isSafeInteger(addr) || addr < 0) return fail('EFAULT', `bad user address ${addr}`);
  const start = addr - (addr % PAGE_SIZE);
  const checked = checkRange(mm, start, npages * PAGE_SIZE, write);
  if (!checked.ok) return checked;
  for (let at = start; !write && at < start + npages * PAGE_SIZE;) {
    const vma = mm.findVma(at);
    if (vma === undefined) break;
    if ((vma.prot & PROT_READ) === 0) return fail('EFAULT', `0x${at.toString(16)} is mapped ${vma.perms}: a read pin needs PROT_READ`);
    at = vma.end;
  }
  const runs = new PfnRuns();
  let vma = mm.findVma(start);
  for (let i = 0; i < npages;) {
    const at = start + i * PAGE_SIZE;
    const vpn = at / PAGE_SIZE;
    if (vma === undefined || at >= vma.end) vma = mm.findVma(at);
    if (vma === undefined) throw new Error('VMA vanished during pin');
    // check_vma_flags(): VM_IO|VM_PFNMAP pages have no struct page to pin.
    if (vma.pfnmap !== null) return fail('EFAULT', `0x${at.toString(16)} is a device mapping (VM_PFNMAP): it cannot be pinned`);
    const pfn = resolveForPin(vma, vpn, write);
    if (typeof pfn !== 'number') return pfn; // nothing is pinned yet
    // A PMD entry maps the rest of its folio: one run for all of it.
    const n = vma.huge.size > 0 && vma.huge.has(pmdIndex(vpn)) ? Math.min(PMD_PAGES - (vpn % PMD_PAGES), npages - i) : 1;
    runs.push(pfn, n);
    i += n;
  }
  // Every page is resolved: take the pins, a folio at a time (try_grab_folio() with refs = pages).
  for (let k = 0; k < runs.length; k++) mm.frames.pinRange(runs.pfns[k] as number, runs.counts[k] as number);
  return ok(runs);
}

/**
 * The frame of page `vpn` of `vma` for a pin, faulting as the pin needs. gup_huge_pmd(): a PMD entry that
 * needs no fault is used as is; else fault first (which may map a new THP, or split a shared one) and look
 * again. Afterwards a PMD entry at `vpn`'s slot, if any, maps the frame returned.
 */
function resolveForPin(vma: Vma, vpn: number, write: boolean): number | KernelError {
  const kind: FaultKind = write ? 'write' : vma.cow ? 'unshare' : 'read';
  // A PTE that serves the pin as it is (a page pinned before, or written by the process): the frame
  // handleFault() would return. A PTE means no PMD entry and a non-empty PMD slot, so the THP steps
  // below would do nothing.
  const pte = vma.pages.get(vpn);
  if (pte !== undefined && !beyondEof(vma, vpn) && (vma.shared || kind === 'read' || (entryFlags(pte) & PTE_EXCLUSIVE) !== 0)) {
    return entryPfn(pte);
  }
  const pmd = pmdIndex(vpn);
  let e = vma.huge.size > 0 ? vma.huge.get(pmd) : undefined;
  if (e === undefined && kind !== 'read' && hugeAnonFault(vma, vpn) !== NO_FRAME) e = vma.huge.get(pmd);
  if (e === undefined || (kind !== 'read' && (entryFlags(e) & PTE_EXCLUSIVE) === 0)) {
    const page = handleFault(vma, vpn, kind);
    if (!page.ok) return page;
    if (page.value === ZERO_PAGE) throw new Error('pinned the zero page');
    e = vma.huge.size > 0 ? vma.huge.get(pmd) : undefined;
    if (e === undefined) return page.value;
  }
  return entryPfn(e) + (vpn - pmd * PMD_PAGES); // vpn % PMD_PAGES (pmd is floor(vpn / PMD_PAGES))
}

/**
 * pinUserPageRuns(mm, addr, 1, write) for the page of `addr`, returning its frame rather than a run list
 * (the IO page fault path pins one page per map): the same checks in the same order, fault and pin.
 */
export function pinUserPage(mm: GupSpace, addr: number, write: boolean): number | KernelError {
  if (!Number.isSafeInteger(addr) || addr < 0) return fail('EFAULT', `bad user address ${addr}`);
  // addr - addr % PAGE_SIZE without `%`, a C call on a double (user VAs are above 2^31).
  const vpn = Math.floor(addr / PAGE_SIZE);
  const start = vpn * PAGE_SIZE;
  const checked = checkRange(mm, start, PAGE_SIZE, write);
  if (!checked.ok) return checked;
  // checkRange() found a VMA holding the page.
  const vma = mm.findVma(start) as Vma;
  if (!write && (vma.prot & PROT_READ) === 0) return fail('EFAULT', `0x${start.toString(16)} is mapped ${vma.perms}: a read pin needs PROT_READ`);
  if (vma.pfnmap !== null) return fail('EFAULT', `0x${start.toString(16)} is a device mapping (VM_PFNMAP): it cannot be pinned`);
  const pfn = resolveForPin(vma, vpn, write);
  if (typeof pfn === 'number') mm.frames.pinRange(pfn, 1);
  return pfn;
}

/** pinUserPageRuns() with one frame number per page (callers that want the exact per-page list). */
export function pinUserPages(mm: GupSpace, addr: number, npages: number, write: boolean): Result<number[]> {
  const r = pinUserPageRuns(mm, addr, npages, write);
  return r.ok ? ok(r.value.toArray()) : r;
}

/** unpin_user_pages(): drop one pin (and its reference) per frame; frames nobody maps any more are freed. */
export function unpinAll(frames: FrameAllocator, pfns: readonly number[]): void {
  for (const pfn of pfns) frames.unpin(pfn);
}

/** unpin_user_page_range_dirty_lock() per run: a folio at a time. */
export function unpinRuns(frames: FrameAllocator, runs: PfnRuns): void {
  for (let i = 0; i < runs.length; i++) frames.unpinRange(runs.pfns[i] as number, runs.counts[i] as number);
}
