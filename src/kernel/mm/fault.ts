// The page fault handler (handle_mm_fault() for one page): fills a VMA's page table on first touch and
// breaks copy-on-write. The caller has found the VMA and checked the access against its protection.
// A first write to an empty 2 MiB slot of a THP-eligible VMA maps a whole order-9 folio with one PMD entry.

import { PAGE_SIZE } from '../../hw/memory/physical-memory.ts';
import { fail, ok, type Result } from '../errno.ts';
import { NO_FRAME } from './frame-allocator.ts';
import { PMD_PAGES, pmdIndex, thpAllowed } from './thp.ts';
import { entryFlags, entryPfn, PTE_ANON, PTE_EXCLUSIVE, type Vma } from './vma.ts';

/**
 * read: map something readable. write: FAULT_FLAG_WRITE, the page must be writable by this mapping.
 * unshare: FAULT_FLAG_UNSHARE, used by long-term read-only pins of private mappings (gup_must_unshare()):
 * the mapping gets its own exclusive anonymous page, as for a write, but nothing is written.
 */
export type FaultKind = 'read' | 'write' | 'unshare';

/**
 * The shared zero page: a read fault on an untouched private anonymous page maps it (do_anonymous_page()
 * without FAULT_FLAG_WRITE) rather than allocating. ioasis records no entry and reads zeros; the first
 * write or pin allocates.
 */
export const ZERO_PAGE = -2;

/** Access to a file page at or past i_size is SIGBUS; to the kernel's user copies it is EFAULT. */
export function beyondEof(vma: Vma, vpn: number): boolean {
  return vma.file !== null && vma.fileIndex(vpn) >= vma.file.file.pageCount;
}

/**
 * The frame a present PTE of `vma` gives for a read or write of page `vpn` with no fault to take, or -1
 * (take handleFault()): exactly the cases where handleFault() returns the entry's frame at once. The
 * kernel's user copies of ioctl arguments and fault records ask this first, without a result object.
 */
export function presentPfn(vma: Vma, vpn: number, kind: 'read' | 'write'): number {
  if (vma.pfnmap !== null || vma.file !== null) return -1;
  const entry = vma.pages.get(vpn);
  if (entry === undefined) return -1;
  if (vma.shared || kind === 'read' || (entryFlags(entry) & PTE_EXCLUSIVE) !== 0) return entryPfn(entry);
  return -1;
}

/** Resolve page `vpn` of `vma` for `kind`: its frame, or ZERO_PAGE for a read of an untouched anonymous page. */
export function handleFault(vma: Vma, vpn: number, kind: FaultKind): Result<number> {
  // A driver's pages (VM_PFNMAP) are mapped as they are: no page cache, no copy-on-write.
  if (vma.pfnmap !== null) return ok(vma.pfnmap.map.pfn + vma.fileIndex(vpn));
  if (beyondEof(vma, vpn)) return fail('EFAULT', `page ${vpn} is past the end of ${vma.file?.file.name} (SIGBUS)`);
  const entry = vma.pages.get(vpn);
  if (entry === undefined && vma.huge.size > 0 && vma.huge.has(pmdIndex(vpn))) return hugeFault(vma, vpn, kind);
  if (vma.shared) return entry !== undefined ? ok(entryPfn(entry)) : mapFilePage(vma, vpn);
  if (entry !== undefined) {
    const pfn = entryPfn(entry);
    const flags = entryFlags(entry);
    if (kind === 'read' || flags & PTE_EXCLUSIVE) return ok(pfn);
    // wp_can_reuse_anon_folio(): an anonymous page nobody else references any more is taken over as is.
    if (flags & PTE_ANON && vma.frames.refCount(pfn) === 1) {
      vma.updateFlags(vpn, PTE_ANON | PTE_EXCLUSIVE);
      return ok(pfn);
    }
    // wp_page_copy(): a shared anonymous page or a page-cache page is copied into a new exclusive page.
    return copyInto(vma, vpn, pfn);
  }
  if (vma.file === null) {
    if (kind === 'read') return ok(ZERO_PAGE);
    if (thpAllowed(vma, vpn) && vma.pmdNone(vpn)) {
      const huge = newAnonFolio(vma, vpn);
      if (huge !== NO_FRAME) return ok(huge);
    }
    return newAnonPage(vma, vpn);
  }
  if (kind === 'read') return mapFilePage(vma, vpn);
  // do_cow_fault(): read the file page (filling the cache) and map a private copy of it.
  const page = vma.file.file.getPage(vma.fileIndex(vpn));
  if (!page.ok) return page;
  return copyInto(vma, vpn, page.value);
}

/**
 * do_huge_pmd_wp_page() and friends: a read, or any access to an exclusive folio, uses the PMD entry as
 * is; a write or unshare of a shared (after fork) folio takes it over when nothing else references it,
 * else splits the PMD and copies the one page (Linux's fallback to PTEs).
 */
function hugeFault(vma: Vma, vpn: number, kind: FaultKind): Result<number> {
  const pmd = pmdIndex(vpn);
  const e = vma.huge.get(pmd) as number;
  const pfn = entryPfn(e) + (vpn % PMD_PAGES);
  if (kind === 'read' || entryFlags(e) & PTE_EXCLUSIVE) return ok(pfn);
  if (vma.frames.refCount(pfn) === 1) {
    vma.updateHugeFlags(pmd, PTE_ANON | PTE_EXCLUSIVE);
    return ok(pfn);
  }
  vma.splitPmd(pmd);
  return handleFault(vma, vpn, kind);
}

/**
 * The THP write fault alone (for GUP's walk, which needs no Result per folio): when the slot of `vpn` is
 * empty and THP-eligible, map a new folio there and return the frame of `vpn`; else NO_FRAME (the caller
 * takes the general path).
 */
export function hugeAnonFault(vma: Vma, vpn: number): number {
  if (vma.file !== null || !thpAllowed(vma, vpn) || !vma.pmdNone(vpn)) return NO_FRAME;
  return newAnonFolio(vma, vpn);
}

/** do_huge_pmd_anonymous_page(): a zeroed exclusive folio for the slot of `vpn`; NO_FRAME to fall back. */
function newAnonFolio(vma: Vma, vpn: number): number {
  const head = vma.frames.allocFolio();
  if (head === NO_FRAME) return NO_FRAME;
  vma.setHuge(pmdIndex(vpn), head, PTE_ANON | PTE_EXCLUSIVE);
  return head + (vpn % PMD_PAGES);
}

/** do_read_fault()/do_shared_fault(): map the page-cache page, filling a hole. */
function mapFilePage(vma: Vma, vpn: number): Result<number> {
  const file = vma.file;
  if (file === null) throw new Error('file fault on an anonymous mapping');
  const page = file.file.getPage(vma.fileIndex(vpn));
  if (!page.ok) return page;
  vma.frames.get(page.value);
  vma.setEntry(vpn, page.value, 0);
  return page;
}

/** do_anonymous_page() for a write: a zero-filled exclusive page. */
function newAnonPage(vma: Vma, vpn: number): Result<number> {
  const pfn = vma.frames.alloc();
  if (pfn === NO_FRAME) return fail('ENOMEM', `no free frame for page ${vpn}`);
  vma.setEntry(vpn, pfn, PTE_ANON | PTE_EXCLUSIVE);
  return ok(pfn);
}

function copyInto(vma: Vma, vpn: number, from: number): Result<number> {
  const pfn = vma.frames.alloc();
  if (pfn === NO_FRAME) return fail('ENOMEM', `no free frame to copy page ${vpn}`);
  vma.frames.memory.copy(pfn * PAGE_SIZE, from * PAGE_SIZE, PAGE_SIZE);
  vma.setEntry(vpn, pfn, PTE_ANON | PTE_EXCLUSIVE);
  return ok(pfn);
}
