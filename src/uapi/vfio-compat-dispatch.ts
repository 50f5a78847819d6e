// ioctl(fd, cmd, arg) for the VFIO container numbers on an iommufd (vfio_compat.c iommufd_vfio_ioctl),
// from bytes. GET_INFO follows iommufd's own writer, not VFIO's: DMA_AVAIL (avail = U32_MAX) then
// IOVA_RANGE, each capability (and each IOVA range) written only when it fits inside argsz, the links
// patched only when argsz reaches them, cap_offset set when the whole chain fit, argsz raised to the
// full size, and never a byte past argsz. Other numbers (VFIO_IOMMU_DIRTY_PAGES...) are ENOTTY.

import { fail, ok, type Result } from '../kernel/errno.ts';
import type { IommufdCtx } from '../kernel/iommufd/context.ts';
import {
  compatCheckExtension, compatInfo, compatMap, compatSetIommu, compatUnmap, type CompatInfo,
} from '../kernel/iommufd/vfio-compat.ts';
import type { Process } from '../kernel/process/process.ts';
import type { UserMemory } from './copy-struct.ts';
import {
  VFIO_API_VERSION, VFIO_CHECK_EXTENSION, VFIO_GET_API_VERSION, VFIO_IOMMU_GET_INFO, VFIO_IOMMU_MAP_DMA,
  VFIO_IOMMU_UNMAP_DMA, VFIO_SET_IOMMU,
} from './ioctl.ts';
import { copyArgszFromUser, copyArgszToUser, vfioArgszOp } from './vfio-argsz.ts';
import {
  VFIO_IOMMU_INFO_CAPS, VFIO_IOMMU_INFO_PGSIZES, VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE, VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL,
} from './vfio-consts.ts';
import { mapDmaFromUser, unmapDmaFromUser } from './vfio-dma-ioctls.ts';
import * as V from './vfio-structs.ts';

const U32_MAX = 0xffff_ffff;
const align8 = (n: number): number => Math.ceil(n / 8) * 8;

function minsz(cmd: number): number {
  const o = vfioArgszOp('container', cmd);
  if (o === undefined) throw new Error(`no argsz op for 0x${cmd.toString(16)}`);
  return o.minsz;
}

const put = (mm: UserMemory, at: number, b: Uint8Array): Result =>
  (mm.write(at, b).ok ? ok() : fail('EFAULT', `cannot write the capability chain at 0x${at.toString(16)}`));

/** A capability filler: writes what fits in `avail` bytes at `at`, returns the capability's full size. */
type Fill = (mm: UserMemory, at: number, avail: number, info: CompatInfo) => Result<number>;

// iommufd_fill_cap_dma_avail(): all or nothing.
const fillDmaAvail: Fill = (mm, at, avail) => {
  const S = V.vfio_iommu_type1_info_dma_avail;
  if (avail >= S.sizeof) {
    const w = put(mm, at, S.encode({ id: VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL, version: 1, next: 0, avail: U32_MAX }));
    if (!w.ok) return w;
  }
  return ok(S.sizeof);
};

// iommufd_fill_cap_iova(): each range when it fits, the header when all of them do.
const fillIova: Fill = (mm, at, avail, info) => {
  const H = V.vfio_iommu_type1_info_cap_iova_range;
  const R = V.vfio_iova_range;
  for (let i = 0; i < info.iovas.length && avail >= H.sizeof + (i + 1) * R.sizeof; i++) {
    const r = info.iovas[i] as CompatInfo['iovas'][number];
    const w = put(mm, at + H.sizeof + i * R.sizeof, R.encode({ start: r.start, end: r.last }));
    if (!w.ok) return w;
  }
  const size = H.sizeof + info.iovas.length * R.sizeof;
  if (avail >= size) {
    const w = put(mm, at, H.encode({ id: VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE, version: 1, next: 0, nr_iovas: info.iovas.length, reserved: 0 }));
    if (!w.ok) return w;
  }
  return ok(size);
};

/** iommufd_vfio_iommu_get_info(). */
function getInfo(proc: Process, ctx: IommufdCtx, arg: number): Result<number> {
  const S = V.vfio_iommu_type1_info;
  const c = copyArgszFromUser(proc.mm, arg, S, minsz(VFIO_IOMMU_GET_INFO));
  if (!c.ok) return c;
  const argsz = c.value.argsz;
  const n = Math.min(argsz, S.sizeof);
  const info = compatInfo(ctx);
  if (!info.ok) return info;
  let total = S.sizeof;
  let lastCap = -1;
  for (const fill of [fillDmaAvail, fillIova]) {
    const size = fill(proc.mm, arg + total, argsz > total ? argsz - total : 0, info.value);
    if (!size.ok) return size;
    if (lastCap >= 0 && argsz >= total) {
      const next = new Uint8Array(4);
      new DataView(next.buffer).setUint32(0, total, true);
      const w = put(proc.mm, arg + lastCap + 4, next);
      if (!w.ok) return w;
    }
    lastCap = total;
    total += align8(size.value);
  }
  const out = {
    argsz: total, flags: VFIO_IOMMU_INFO_PGSIZES | VFIO_IOMMU_INFO_CAPS, iova_pgsizes: info.value.pgsizes,
    cap_offset: argsz >= total ? S.sizeof : 0, pad: 0,
  };
  const wb = copyArgszToUser(proc.mm, arg, S, out, n);
  return wb.ok ? ok(0) : wb;
}



/** A VFIO container ioctl on an iommufd: the return value or the errno. */
export function dispatchVfioCompat(proc: Process, ctx: IommufdCtx, cmd: number, arg: number): Result<number> {
  switch (cmd >>> 0) {
    case VFIO_GET_API_VERSION: return ok(VFIO_API_VERSION);
    case VFIO_CHECK_EXTENSION: return compatCheckExtension(ctx, arg);
    case VFIO_SET_IOMMU: {
      const r = compatSetIommu(ctx, proc, arg);
      return r.ok ? ok(0) : r;
    }
    case VFIO_IOMMU_GET_INFO: return getInfo(proc, ctx, arg);
    case VFIO_IOMMU_MAP_DMA: return mapDmaFromUser(proc, arg, (a) => compatMap(ctx, proc, a));
    case VFIO_IOMMU_UNMAP_DMA: return unmapDmaFromUser(proc, arg, (a) => compatUnmap(ctx, a));
    default: return fail('ENOTTY', `0x${(cmd >>> 0).toString(16)} is not a VFIO ioctl iommufd emulates`);
  }
}
