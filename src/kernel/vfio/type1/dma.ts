// One type1 mapping (Linux's struct vfio_dma): [iova, iova + size) backed by the mapping task's VA
// [vaddr, vaddr + size). Its pages are pinned once for the IOMMU domains (all of them, at MAP_DMA or
// when the first IOMMU-backed group joins), and separately per page by emulated devices through
// vfio_pin_pages() (the pfn_list, refcounted per IOVA page). mm->locked_vm of the task is charged once
// per page pinned by either, as vfio_pin_pages_remote() skips pages already in the pfn_list and
// vfio_pin_page_external() charges only while no IOMMU domain exists.

import { PAGE_SIZE } from '../../../hw/memory/physical-memory.ts';
import { fail, ok, type Result } from '../../errno.ts';
import type { Process } from '../../process/process.ts';
import { chargeLocked, pinUser, unchargeLocked, unpinUser } from './mm-adapter.ts';

export interface DmaProt { readonly read: boolean; readonly write: boolean }

/** A page an emulated device pinned (struct vfio_pfn). */
export interface ExternalPin { readonly pfn: number; refs: number }

export class VfioDma {
  /** The user VA (u64); invalid between a VADDR unmap and the VADDR map that supplies a new one. */
  vaddr: bigint;
  vaddrInvalid = false;
  /** dma->task: the process that mapped (its mm is charged). */
  task: Process;
  /** dma->lock_cap: the task had CAP_IPC_LOCK when it mapped (no RLIMIT_MEMLOCK check). */
  lockCap: boolean;
  /** PFNs pinned for the IOMMU domains (dma->iommu_mapped), or null. */
  iommuPfns: number[] | null = null;
  /** The pfn_list: page index → external pin. */
  readonly external = new Map<number, ExternalPin>();
  /** Pages charged to task's mm->locked_vm. */
  charged = 0;

  constructor(
    readonly iova: bigint,
    readonly size: bigint,
    vaddr: bigint,
    readonly prot: DmaProt,
    task: Process,
  ) {
    this.vaddr = vaddr;
    this.task = task;
    this.lockCap = task.capable('CAP_IPC_LOCK');
  }

  get last(): bigint { return this.iova + this.size - 1n; }
  get npages(): number { return Number(this.size / BigInt(PAGE_SIZE)); }
  /** Pages pinned by either user: what locked_vm should hold for this mapping. */
  get wantCharged(): number { return this.iommuPfns !== null ? this.npages : this.external.size; }

  /** Bring the locked_vm charge in line with the pins (ENOMEM when growing over the limit; nothing changes then). */
  reaccount(): Result {
    const delta = this.wantCharged - this.charged;
    if (delta > 0) {
      const r = chargeLocked(this.task, delta, this.lockCap);
      if (!r.ok) return r;
    } else if (delta < 0) unchargeLocked(this.task, -delta);
    this.charged += delta;
    return ok();
  }

  /** vfio_pin_pages_remote() over the whole mapping, charging the pages not already pinned externally. */
  pinForIommu(): Result {
    if (this.iommuPfns !== null) return ok();
    if (this.vaddr + this.size > BigInt(Number.MAX_SAFE_INTEGER)) return fail('EFAULT', `vaddr 0x${this.vaddr.toString(16)} is beyond the user address space`);
    const pfns = pinUser(this.task, Number(this.vaddr), this.npages, this.prot.write);
    if (!pfns.ok) return pfns;
    this.iommuPfns = pfns.value;
    const r = this.reaccount();
    if (!r.ok) {
      unpinUser(this.task, pfns.value);
      this.iommuPfns = null;
      return r;
    }
    return ok();
  }

  /** vfio_unpin_pages_remote() for the IOMMU pins; external pins keep their charge. */
  unpinForIommu(): void {
    if (this.iommuPfns === null) return;
    unpinUser(this.task, this.iommuPfns);
    this.iommuPfns = null;
    const r = this.reaccount();
    if (!r.ok) throw new Error(`uncharge failed: ${r.reason}`);
  }

  /** Drop every external pin (only at release, after a WARN: devices must unpin before). */
  dropExternal(): void {
    for (const p of this.external.values()) unpinUser(this.task, [p.pfn]);
    this.external.clear();
    const r = this.reaccount();
    if (!r.ok) throw new Error(`uncharge failed: ${r.reason}`);
  }
}
