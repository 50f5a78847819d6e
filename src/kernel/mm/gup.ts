// pin_user_pages(FOLL_LONGTERM [| FOLL_WRITE]): the long-term pins iommufd and VFIO take on user memory.
// Each pinned frame gets a pin and a reference in PhysicalMemory, so it stays allocated after munmap, exit
// or truncation until unpin_user_pages(). Like Linux's GUP, pinning does not touch mm->pinned_vm or
// locked_vm: the pinner accounts (iommufd's iopt_pages_update_pinned(), VFIO's vfio_lock_acct()).

import { PAGE_SIZE } from '../../hw/memory/physical-memory.ts';
import { fail, ok, type Result } from '../errno.ts';
import { handleFault, ZERO_PAGE, type FaultKind } from './fault.ts';
import type { FrameAllocator } from './frame-allocator.ts';
import { PROT_READ } from './mman.ts';
import { checkRange, type UserSpace } from './uaccess.ts';

export interface GupSpace extends UserSpace {
  readonly frames: FrameAllocator;
}

/**
 * Pin `npages` pages from the page containing `addr`. All or nothing: on any error nothing stays pinned.
 * - EFAULT: the mm is gone (mmget_not_zero() failed), a page is in no VMA, past EOF of a mapped file, or
 *   the VMA refuses the access (check_vma_flags(): FOLL_WRITE needs PROT_WRITE, a read pin PROT_READ);
 * - ENOMEM: a frame could not be allocated while faulting in.
 * A write pin breaks copy-on-write first. A read-only long-term pin of a private mapping unshares
 * (gup_must_unshare()): the mapping gets its own page, so a later write by the process does not move it
 * away from the pinned frame (the selftest ro_unshare).
 */
export function pinUserPages(mm: GupSpace, addr: number, npages: number, write: boolean): Result<number[]> {
  if (!Number.isSafeInteger(npages) || npages < 0) return fail('EINVAL', `cannot pin ${npages} pages`);
  if (!Number.isSafeInteger(addr) || addr < 0) return fail('EFAULT', `bad user address ${addr}`);
  const start = addr - (addr % PAGE_SIZE);
  const checked = checkRange(mm, start, npages * PAGE_SIZE, write);
  if (!checked.ok) return checked;
  for (let i = 0; i < npages && !write; i++) {
    const at = start + i * PAGE_SIZE;
    const vma = mm.findVma(at);
    if (vma !== undefined && (vma.prot & PROT_READ) === 0) {
      return fail('EFAULT', `0x${at.toString(16)} is mapped ${vma.perms}: a read pin needs PROT_READ`);
    }
  }
  const pfns: number[] = [];
  for (let i = 0; i < npages; i++) {
    const at = start + i * PAGE_SIZE;
    const vma = mm.findVma(at);
    if (vma === undefined) throw new Error('VMA vanished during pin');
    const kind: FaultKind = write ? 'write' : vma.cow ? 'unshare' : 'read';
    const page = handleFault(vma, at / PAGE_SIZE, kind);
    if (!page.ok) {
      unpinAll(mm.frames, pfns);
      return page;
    }
    if (page.value === ZERO_PAGE) throw new Error('pinned the zero page');
    mm.frames.pin(page.value);
    pfns.push(page.value);
  }
  return ok(pfns);
}

/** unpin_user_pages(): drop one pin (and its reference) per frame; frames nobody maps any more are freed. */
export function unpinAll(frames: FrameAllocator, pfns: readonly number[]): void {
  for (const pfn of pfns) frames.unpin(pfn);
}
