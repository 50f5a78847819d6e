// The type1 backend's only dependency on the kernel mm (kept in one file so changes to GUP and pin
// storage stay local): vaddr_get_pfns() (a FOLL_LONGTERM pin of the mapping task's pages),
// put_pfn() (unpin), vfio_lock_acct() (mm->locked_vm of the mapping task, against its RLIMIT_MEMLOCK
// unless the task had CAP_IPC_LOCK when it mapped) and the user copies of vfio_dma_rw().

import type { Result } from '../../errno.ts';
import type { Process } from '../../process/process.ts';

/** Pin `npages` pages from user VA `vaddr` of `task`: the PFNs, all or nothing (EFAULT, ENOMEM). */
export function pinUser(task: Process, vaddr: number, npages: number, write: boolean): Result<number[]> {
  return task.mm.pinUserPages(vaddr, npages, write);
}

/** put_pfn() for each PFN. */
export function unpinUser(task: Process, pfns: readonly number[]): void {
  task.mm.unpinUserPages(pfns);
}

/** vfio_lock_acct(dma, +npages): ENOMEM over RLIMIT_MEMLOCK unless `lockCap`. */
export function chargeLocked(task: Process, npages: number, lockCap: boolean): Result {
  return task.account('mm', npages, 'add', { bypassRlimit: lockCap });
}

/** vfio_lock_acct(dma, -npages): never fails. */
export function unchargeLocked(task: Process, npages: number): void {
  const r = task.account('mm', npages, 'sub');
  if (!r.ok) throw new Error(`locked_vm uncharge failed: ${r.reason}`);
}

/** copy_from_user / copy_to_user in the mapping task's mm (vfio_dma_rw under kthread_use_mm). */
export function copyUser(task: Process, vaddr: number, data: Uint8Array, write: boolean): Result {
  return write ? task.mm.write(vaddr, data) : task.mm.read(vaddr, data);
}
