// Dirty tracking on a HWPT_PAGING (uAPI reference §6.12, §10): IOMMU_HWPT_SET_DIRTY_TRACKING and
// IOMMU_HWPT_GET_DIRTY_BITMAP (hw_pagetable.c), over the io_pagetable halves iopt_set_dirty_tracking()
// and iopt_read_and_clear_dirty_data() (io_pagetable.c). The bits come from the domain's dirty ops, i.e.
// from the D bits the simulated IOMMU sets in the page table when a device writes.

import { fail, ok, type Result } from '../errno.ts';
import type { IotlbGather, PagingDomain } from '../iommu/domain.ts';
import type { HwptPaging } from './hw-pagetable.ts';
import type { IoPagetable } from './io-pagetable.ts';
import { handler } from './ioas-ioctls.ts';
import { hex64, lowestSetBit, ULONG_MAX, U64_MAX } from './iova-intervals.ts';
import { IovaBitmap, type BitmapUserMemory } from './iova-bitmap.ts';

export const IOMMU_HWPT_DIRTY_TRACKING_ENABLE = 1;
export const IOMMU_HWPT_GET_DIRTY_BITMAP_NO_CLEAR = 1;

export interface SetDirtyTrackingCmd { size: number; flags: number; hwpt_id: number; __reserved: number }

export interface GetDirtyBitmapCmd {
  size: number; hwpt_id: number; flags: number; __reserved: number;
  iova: bigint; length: bigint; page_size: bigint; data: bigint;
}

/** What the read needs besides the range: page_size, the user bitmap and NO_CLEAR. */
export interface DirtyBitmapRequest {
  readonly iova: bigint;
  readonly length: bigint;
  readonly pageSize: bigint;
  readonly data: bigint;
  readonly noClear: boolean;
}

const noMark = (): void => undefined;

/**
 * iopt_set_dirty_tracking(): EOPNOTSUPP without dirty ops. Enabling also clears the D bits of every area,
 * so the first read after it reports only writes made since (a clean snapshot). Linux clears before it
 * turns tracking on, with a read that records nothing; the DirtyOps interface has no such read (a read
 * while tracking is off is EINVAL), so this turns tracking on first and clears right after. Nothing can
 * run in between in the simulation, so the snapshot is the same.
 */
export function ioptSetDirtyTracking(iopt: IoPagetable, domain: PagingDomain, enable: boolean): Result {
  const ops = domain.dirtyOps;
  if (ops === null) return fail('EOPNOTSUPP', `domain ${domain.id} has no dirty tracking (not allocated with IOMMU_HWPT_ALLOC_DIRTY_TRACKING)`);
  const set = ops.setDirtyTracking(domain, enable);
  if (!set.ok || !enable) return set;
  for (const area of iopt.areaList()) {
    if (area.pages === null) continue;
    const r = ops.readAndClearDirty(domain, Number(area.iova), Number(area.length), false, noMark);
    if (!r.ok) return r;
  }
  return ok();
}

/**
 * iommufd_check_iova_range(): EOVERFLOW when iova + length - 1 wraps u64 (or passes ULONG_MAX); EINVAL
 * when iova or the end is not aligned to the IOAS alignment, for page_size 0, or when iova or the end is
 * not aligned to page_size.
 */
export function checkIovaRange(iopt: IoPagetable, iova: bigint, length: bigint, pageSize: bigint): Result {
  // u64 arithmetic: length 0 makes length - 1 wrap to U64_MAX.
  const lengthMinus1 = (length - 1n) & U64_MAX;
  const last = iova + lengthMinus1;
  if (last > U64_MAX || iova > ULONG_MAX || last > ULONG_MAX) return fail('EOVERFLOW', `${hex64(iova)} + ${hex64(length)} wraps`);
  const end = (last + 1n) & U64_MAX;
  const align = iopt.iovaAlignment - 1n;
  if ((iova & align) !== 0n || (end & align) !== 0n) {
    return fail('EINVAL', `${hex64(iova)}..${hex64(last)} is not aligned to the IOAS alignment ${hex64(iopt.iovaAlignment)}`);
  }
  if (pageSize === 0n) return fail('EINVAL', 'page_size is 0');
  const mask = pageSize - 1n;
  if ((iova & mask) !== 0n || (end & mask) !== 0n) return fail('EINVAL', `${hex64(iova)}..${hex64(last)} is not aligned to page_size ${hex64(pageSize)}`);
  return ok();
}

/**
 * iopt_read_and_clear_dirty_data(): the range checks, EOPNOTSUPP without dirty ops, then the domain's
 * read_and_clear_dirty over each area's part of the range while the areas are contiguous, each dirty
 * granule setting its bit in the user bitmap. A gap (or an area still being mapped) is EINVAL after the
 * areas before it were read (and cleared), as in Linux. A bitmap write that faults is EFAULT.
 */
export function ioptReadAndClearDirtyData(iopt: IoPagetable, domain: PagingDomain, mem: BitmapUserMemory, req: DirtyBitmapRequest): Result {
  const checked = checkIovaRange(iopt, req.iova, req.length, req.pageSize);
  if (!checked.ok) return checked;
  const ops = domain.dirtyOps;
  if (ops === null) return fail('EOPNOTSUPP', `domain ${domain.id} has no dirty tracking (not allocated with IOMMU_HWPT_ALLOC_DIRTY_TRACKING)`);
  // iova_bitmap: one bit per 2^__ffs(page_size) bytes.
  const pgshift = lowestSetBit(req.pageSize).toString(2).length - 1;
  const data = req.data > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER : Number(req.data);
  const bitmap = new IovaBitmap(mem, data, req.iova, req.length, pgshift);
  const mark = (iova: number, bytes: number): void => { bitmap.set(iova, bytes); };
  const last = req.iova + ((req.length - 1n) & U64_MAX);
  // One gather for the whole request and one IOTLB sync after the last area, as iopt_read_and_clear_dirty_data does.
  const gather: IotlbGather = { start: 0, end: 0 };
  const walked = iopt.forEachContigArea(req.iova, last, (from, to) => ops.readAndClearDirty(domain, Number(from), Number(to - from + 1n), req.noClear, mark, gather));
  if (ops.iotlbSync !== undefined) ops.iotlbSync(domain, gather);
  const written = bitmap.finish();
  if (!walked.ok) return walked;
  if (!walked.value) return fail('EINVAL', `${hex64(req.iova)}..${hex64(last)} is not covered by contiguous mapped areas`);
  return written;
}

/** IOMMU_HWPT_SET_DIRTY_TRACKING: unknown flags → EOPNOTSUPP; hwpt_id not a HWPT_PAGING → ENOENT. */
export const iommufdHwptSetDirtyTracking = handler<SetDirtyTrackingCmd>((ctx, _proc, cmd) => {
  if ((cmd.flags & ~IOMMU_HWPT_DIRTY_TRACKING_ENABLE) !== 0) {
    return fail('EOPNOTSUPP', `unknown SET_DIRTY_TRACKING flags 0x${(cmd.flags & ~IOMMU_HWPT_DIRTY_TRACKING_ENABLE).toString(16)}`);
  }
  const hwpt = ctx.objects.get<HwptPaging>(cmd.hwpt_id, 'hwpt_paging');
  if (!hwpt.ok) return hwpt;
  const r = ioptSetDirtyTracking(hwpt.value.ioas.iopt, hwpt.value.domain, (cmd.flags & IOMMU_HWPT_DIRTY_TRACKING_ENABLE) !== 0);
  return r.ok ? ok(undefined) : r;
});

/**
 * IOMMU_HWPT_GET_DIRTY_BITMAP: flags beyond NO_CLEAR or a non-zero __reserved → EOPNOTSUPP; hwpt_id not
 * a HWPT_PAGING → ENOENT; then ioptReadAndClearDirtyData(). Nothing is written back to the struct.
 */
export const iommufdHwptGetDirtyBitmap = handler<GetDirtyBitmapCmd>((ctx, proc, cmd) => {
  if ((cmd.flags & ~IOMMU_HWPT_GET_DIRTY_BITMAP_NO_CLEAR) !== 0 || cmd.__reserved !== 0) {
    return fail('EOPNOTSUPP', `unknown GET_DIRTY_BITMAP flags 0x${cmd.flags.toString(16)} or __reserved not zero`);
  }
  const hwpt = ctx.objects.get<HwptPaging>(cmd.hwpt_id, 'hwpt_paging');
  if (!hwpt.ok) return hwpt;
  const r = ioptReadAndClearDirtyData(hwpt.value.ioas.iopt, hwpt.value.domain, proc.mm, {
    iova: cmd.iova, length: cmd.length, pageSize: cmd.page_size, data: cmd.data,
    noClear: (cmd.flags & IOMMU_HWPT_GET_DIRTY_BITMAP_NO_CLEAR) !== 0,
  });
  return r.ok ? ok(undefined) : r;
});
