// The HW_QUEUE object (drivers/iommu/iommufd/viommu.c iommufd_hw_queue_*): a guest queue the hardware
// reads by physical address (Tegra241 VCMDQ-like). uAPI reference §6.20, §11.4:
//
//  * The queue memory is [nesting_parent_iova, + length) in the nesting parent's IOAS. The core pins it
//    through an internal access (PAGE_SIZE alignment, no ID, never told about unmaps) and locks the areas
//    under it (area->num_locks), so IOAS_UNMAP of that range is EBUSY while the queue lives.
//  * The pages must be physically contiguous (EFAULT); an unmapped IOVA is ENOENT (the pin's error);
//    offset + length overflowing a size is ERANGE.
//  * The queue holds the vIOMMU's `users`. The driver may make a queue depend on another
//    (iommufd_hw_queue_depend), which then holds that queue's `users`: destroying it first is EBUSY.
//  * Destroy (or abort): the driver's destroy, then unpin/unlock and the access goes, then the vIOMMU's
//    reference.

import { PAGE_SIZE } from '../../hw/memory/physical-memory.ts';
import { fail, ok, type Result } from '../errno.ts';
import type { DriverObjectHooks, HwQueueCore } from '../iommu/viommu-ops.ts';
import {
  IommufdAccess, iommufdAccessAttach, iommufdAccessDetach, iommufdAccessPinPages, iommufdAccessUnpinPages,
} from './access.ts';
import type { IommufdCtx } from './context.ts';
import type { IoptArea } from './iopt-area.ts';
import type { Ioas } from './ioas.ts';
import { hex64, U64_MAX } from './iova-intervals.ts';
import type { IommufdObject } from './object.ts';
import type { Viommu } from './viommu.ts';

const PAGE = BigInt(PAGE_SIZE);

/** The internal access of a queue: what it pinned and locked. */
export interface QueuePin {
  readonly access: IommufdAccess;
  /** Page-aligned start and length of the pin. */
  readonly iova: bigint;
  readonly length: bigint;
  /** The areas whose num_locks the pin raised. */
  readonly areas: readonly IoptArea[];
  /** Physical address of nesting_parent_iova. */
  readonly basePa: number;
}

export class HwQueue implements IommufdObject, HwQueueCore {
  readonly type = 'hw_queue' as const;
  id = 0;
  users = 0;
  /** Set once the queue holds the vIOMMU (after the pin succeeded). */
  viommu: Viommu | null = null;
  pin: QueuePin | null = null;
  /** What hw_queue_init_phys returned (hw_queue->destroy). */
  hooks: DriverObjectHooks = {};
  private destroyed = false;

  constructor(
    readonly ctx: IommufdCtx,
    readonly queueType: number,
    readonly index: number,
    readonly baseIova: bigint,
    readonly length: bigint,
  ) {}

  /** Take the pin and the vIOMMU's reference (done between allocation and the driver's init). */
  attach(viommu: Viommu, pin: QueuePin): void {
    this.pin = pin;
    this.viommu = viommu;
    this.ctx.objects.ref(viommu);
  }

  /** iommufd_hw_queue_destroy(). */
  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    this.hooks.destroy?.();
    if (this.pin !== null) releaseQueuePin(this.pin);
    this.pin = null;
    if (this.viommu !== null) this.ctx.objects.unref(this.viommu);
    this.viommu = null;
  }
}

/**
 * iommufd_hw_queue_alloc_phys(): pin [iova, iova + length) (page-widened) in `ioas` through a new internal
 * access, check the frames follow on, lock the areas. Returns the pin with the physical address of `iova`.
 */
export function hwQueuePinPhys(ctx: IommufdCtx, ioas: Ioas, iova: bigint, length: bigint): Result<QueuePin> {
  const aligned = iova - (iova % PAGE);
  const offset = iova - aligned;
  // DIV_ROUND_UP(offset + length, PAGE_SIZE) pages, each step checked for size_t overflow.
  if (offset + length > U64_MAX || offset + length + PAGE - 1n > U64_MAX) {
    return fail('ERANGE', `${hex64(offset)} + ${hex64(length)} does not fit a size`);
  }
  const npages = (offset + length + PAGE - 1n) / PAGE;
  const pinLength = npages * PAGE;
  const access = new IommufdAccess(ctx, { needsPinPages: true, unmap: () => { /* internal: never notified */ } }, true, null);
  const attached = iommufdAccessAttach(access, ioas.id);
  if (!attached.ok) {
    access.destroy();
    return attached;
  }
  const undo = (): void => {
    iommufdAccessDetach(access);
    access.destroy();
  };
  const pfns = iommufdAccessPinPages(access, aligned, pinLength);
  if (!pfns.ok) {
    undo();
    return pfns;
  }
  for (let i = 1; i < pfns.value.length; i++) {
    if (pfns.value[i] !== (pfns.value[i - 1] as number) + 1) {
      iommufdAccessUnpinPages(access, aligned, pinLength);
      undo();
      return fail('EFAULT', `the queue memory at ${hex64(iova)} is not physically contiguous (page ${i})`);
    }
  }
  // iopt_area_add_access(.., lock_area): every area under the pin refuses unmap while the queue lives.
  const areas: IoptArea[] = [];
  const last = aligned + pinLength - 1n;
  for (let at = aligned; at <= last;) {
    const area = ioas.iopt.areaAt(at);
    if (area === undefined) break;
    area.numLocks++;
    areas.push(area);
    at = area.last + 1n;
  }
  return ok({ access, iova: aligned, length: pinLength, areas, basePa: (pfns.value[0] as number) * PAGE_SIZE + Number(offset) });
}

/** iommufd_hw_queue_destroy_access(): unlock, unpin, detach and drop the internal access. */
export function releaseQueuePin(pin: QueuePin): void {
  for (const a of pin.areas) a.numLocks--;
  iommufdAccessUnpinPages(pin.access, pin.iova, pin.length);
  iommufdAccessDetach(pin.access);
  pin.access.destroy();
}
