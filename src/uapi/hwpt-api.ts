// The typed API of HWPTs (api.ts): IOMMU_HWPT_ALLOC (paging, nested on a parent or a vIOMMU, with driver
// data), IOMMU_HWPT_INVALIDATE and dirty tracking (SET_DIRTY_TRACKING, GET_DIRTY_BITMAP), through the
// byte-level dispatch.

import { fail, ok, type Result } from '../kernel/errno.ts';
import { big, get, ioctl, ioctlRaw, put, type FdArgs } from './api-ioctl.ts';
import { IOMMU_HWPT_ALLOC, IOMMU_HWPT_GET_DIRTY_BITMAP, IOMMU_HWPT_INVALIDATE, IOMMU_HWPT_SET_DIRTY_TRACKING } from './ioctl.ts';
import {
  IOMMU_HWPT_DIRTY_TRACKING_ENABLE, IOMMU_HWPT_FAULT_ID_VALID, IOMMU_HWPT_DATA_NONE, IOMMU_HWPT_DATA_VTD_S1,
  IOMMU_HWPT_GET_DIRTY_BITMAP_NO_CLEAR, IOMMU_HWPT_INVALIDATE_DATA_VTD_S1,
} from './iommufd-consts.ts';
import * as S from './iommufd-structs.ts';

const PAGE = 4096;

/** IOMMU_HWPT_ALLOC on `ptId` for device `devId`: the new HWPT id. `faultId` sets IOMMU_HWPT_FAULT_ID_VALID. */
export function hwptAlloc(a: FdArgs & {
  readonly devId: number; readonly ptId: number; readonly flags?: number; readonly faultId?: number;
  readonly data?: { readonly type: number; readonly bytes: Uint8Array };
}): Result<number> {
  const len = a.data?.bytes.length ?? 0;
  const r = ioctl(a.proc, a.fd, IOMMU_HWPT_ALLOC, S.iommu_hwpt_alloc, {
    flags: (a.flags ?? 0) | (a.faultId === undefined ? 0 : IOMMU_HWPT_FAULT_ID_VALID), dev_id: a.devId, pt_id: a.ptId,
    data_type: a.data?.type ?? IOMMU_HWPT_DATA_NONE, data_len: len, fault_id: a.faultId ?? 0,
  }, {
    bytes: len,
    fill: (base) => {
      if (a.data === undefined) return { data_uptr: 0n };
      const at = base + S.iommu_hwpt_alloc.sizeof;
      put(a.proc, at, a.data.bytes);
      return { data_uptr: big(at) };
    },
  });
  return r.ok ? ok(r.value.out.out_hwpt_id) : r;
}

/** struct iommu_hwpt_vtd_s1: the guest's stage-1 table for a nested HWPT. */
export interface VtdS1 {
  /** IOMMU_VTD_S1_* (default 0). */
  readonly flags?: number | bigint;
  /** GPA of the first-stage root. */
  readonly pgtblAddr: number | bigint;
  /** 48 or 57 (default 48). */
  readonly addrWidth?: number;
}

/** IOMMU_HWPT_ALLOC of a nested HWPT on the NEST_PARENT HWPT `parentId` with VT-d stage-1 data: the new id. */
export function hwptAllocNested(a: FdArgs & {
  readonly devId: number; readonly parentId: number; readonly s1: VtdS1; readonly flags?: number; readonly faultId?: number;
}): Result<number> {
  const bytes = S.iommu_hwpt_vtd_s1.encode({ flags: big(a.s1.flags ?? 0), pgtbl_addr: big(a.s1.pgtblAddr), addr_width: a.s1.addrWidth ?? 48 });
  return hwptAlloc({
    proc: a.proc, fd: a.fd, devId: a.devId, ptId: a.parentId, data: { type: IOMMU_HWPT_DATA_VTD_S1, bytes },
    ...(a.flags === undefined ? {} : { flags: a.flags }), ...(a.faultId === undefined ? {} : { faultId: a.faultId }),
  });
}

/** One struct iommu_hwpt_vtd_s1_invalidate entry. */
export interface VtdS1Invalidation {
  readonly addr: number | bigint;
  /** 4 KiB pages; 2^64 - 1 (with addr 0): everything. */
  readonly npages: number | bigint;
  /** IOMMU_VTD_INV_FLAGS_LEAF (default 0). */
  readonly flags?: number;
}

/**
 * IOMMU_HWPT_INVALIDATE of a nested HWPT with VT-d stage-1 entries: the number handled. On failure the
 * error carries the reason; `handled` (entry_num as written back) is in the returned object either way.
 */
export function hwptInvalidate(a: FdArgs & { readonly hwptId: number; readonly entries: readonly VtdS1Invalidation[] }): { readonly result: Result<number>; readonly handled: number } {
  const n = a.entries.length;
  const len = S.iommu_hwpt_vtd_s1_invalidate.sizeof;
  const raw = ioctlRaw(a.proc, a.fd, IOMMU_HWPT_INVALIDATE, S.iommu_hwpt_invalidate, {
    data_type: IOMMU_HWPT_INVALIDATE_DATA_VTD_S1, entry_len: len, entry_num: n,
  }, {
    bytes: n * len,
    fill: (base) => {
      const at = base + S.iommu_hwpt_invalidate.sizeof;
      const arr = new Uint8Array(n * len);
      a.entries.forEach((e, i) => S.iommu_hwpt_vtd_s1_invalidate.encode({ addr: big(e.addr), npages: big(e.npages), flags: e.flags ?? 0 }, arr.subarray(i * len, (i + 1) * len)));
      if (n > 0) put(a.proc, at, arr);
      return { hwpt_id: a.hwptId, data_uptr: n > 0 ? big(at) : 0n };
    },
  });
  if (!raw.ok) return { result: raw, handled: 0 };
  const handled = raw.value.out.entry_num;
  return { result: raw.value.r.ok ? ok(handled) : raw.value.r, handled };
}

/** IOMMU_HWPT_SET_DIRTY_TRACKING: turn hardware dirty tracking of HWPT `hwptId` on or off. */
export function setDirtyTracking(a: FdArgs & { readonly hwptId: number; readonly enabled: boolean }): Result {
  const r = ioctl(a.proc, a.fd, IOMMU_HWPT_SET_DIRTY_TRACKING, S.iommu_hwpt_set_dirty_tracking, {
    flags: a.enabled ? IOMMU_HWPT_DIRTY_TRACKING_ENABLE : 0, hwpt_id: a.hwptId,
  });
  return r.ok ? ok() : r;
}

/**
 * IOMMU_HWPT_GET_DIRTY_BITMAP over [iova, iova + length) at `pageSize` granules (default 4 KiB). The
 * bitmap is a fresh zeroed buffer in the process's scratch memory, after the struct; returns its bytes
 * (bit n, LSB first, is the granule at iova + n * pageSize). `noClear` leaves the dirty bits set.
 */
export function getDirtyBitmap(a: FdArgs & {
  readonly hwptId: number; readonly iova: number | bigint; readonly length: number | bigint;
  readonly pageSize?: number | bigint; readonly noClear?: boolean;
}): Result<Uint8Array> {
  const pageSize = big(a.pageSize ?? PAGE);
  // Whole u64 words, as the kernel's bitmap is an array of them. A zero page size or length gets one
  // word: the kernel refuses those itself.
  const bits = pageSize > 0n && big(a.length) > 0n ? (big(a.length) + pageSize - 1n) / pageSize : 1n;
  if (bits > 2n ** 33n) return fail('ENOMEM', `a bitmap of ${bits} bits is more than the typed API will allocate`);
  const bytes = Number(((bits + 63n) / 64n) * 8n);
  const at = S.iommu_hwpt_get_dirty_bitmap.sizeof;
  const r = ioctl(a.proc, a.fd, IOMMU_HWPT_GET_DIRTY_BITMAP, S.iommu_hwpt_get_dirty_bitmap, {
    hwpt_id: a.hwptId, flags: a.noClear === true ? IOMMU_HWPT_GET_DIRTY_BITMAP_NO_CLEAR : 0,
    iova: big(a.iova), length: big(a.length), page_size: pageSize,
  }, {
    bytes,
    fill: (base) => {
      put(a.proc, base + at, new Uint8Array(bytes));
      return { data: big(base + at) };
    },
  });
  if (!r.ok) return r;
  return get(a.proc, r.value.base + at, bytes);
}
