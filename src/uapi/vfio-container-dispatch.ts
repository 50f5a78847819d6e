// ioctl(fd, cmd, arg) on a legacy VFIO container fd (container.c vfio_fops_unl_ioctl, then the type1
// backend's vfio_iommu_type1_ioctl), from bytes: GET_API_VERSION, CHECK_EXTENSION and SET_IOMMU take
// their argument by value; the backend ioctls copy an argsz struct (vfio-argsz.ts rules). Before
// SET_IOMMU every other number is EINVAL; the no-IOMMU backend answers ENOTTY; type1 answers ENOTTY for
// numbers it does not know (VFIO_IOMMU_DIRTY_PAGES included: dirty tracking is not modelled).

import { fail, ok, type Result } from '../kernel/errno.ts';
import type { Process } from '../kernel/process/process.ts';
import { VFIO_API_VERSION, type VfioContainer } from '../kernel/vfio/container.ts';
import { Type1Iommu } from '../kernel/vfio/type1/iommu.ts';
import { type1Map, type1Unmap } from '../kernel/vfio/type1/map-unmap.ts';
import {
  VFIO_CHECK_EXTENSION, VFIO_GET_API_VERSION, VFIO_IOMMU_GET_INFO, VFIO_IOMMU_MAP_DMA, VFIO_IOMMU_UNMAP_DMA, VFIO_SET_IOMMU,
} from './ioctl.ts';
import {
  copyArgszFromUser, copyArgszToUser, placeCapChain, vfioArgszOp, writeCapChain, type VfioCap,
} from './vfio-argsz.ts';
import {
  VFIO_IOMMU_INFO_CAPS, VFIO_IOMMU_INFO_PGSIZES, VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE,
  VFIO_IOMMU_TYPE1_INFO_CAP_MIGRATION, VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL,
} from './vfio-consts.ts';
import { mapDmaFromUser, unmapDmaFromUser } from './vfio-dma-ioctls.ts';
import * as V from './vfio-structs.ts';

/** DIRTY_BITMAP_SIZE_MAX: the bitmap bytes for INT_MAX pages, rounded to u64s. */
const DIRTY_BITMAP_SIZE_MAX = 268_435_456n;
const HDR = V.vfio_info_cap_header.sizeof;

function minsz(cmd: number): number {
  const o = vfioArgszOp('container', cmd);
  if (o === undefined) throw new Error(`no argsz op for 0x${cmd.toString(16)}`);
  return o.minsz;
}

/** The body (after the 8-byte header) of a capability struct. */
const body = (b: Uint8Array, size: number): Uint8Array => b.subarray(HDR, size);

/** IOVA_RANGE (when the list is not empty), MIGRATION and DMA_AVAIL, in type1's order. */
export function type1InfoCaps(iommu: Type1Iommu): VfioCap[] {
  const caps: VfioCap[] = [];
  const mig = V.vfio_iommu_type1_info_cap_migration;
  caps.push({ id: VFIO_IOMMU_TYPE1_INFO_CAP_MIGRATION, version: 1, body: body(mig.encode({ flags: 0, pgsize_bitmap: iommu.minPageSize(), max_dirty_bitmap_size: DIRTY_BITMAP_SIZE_MAX }), mig.sizeof) });
  const avail = V.vfio_iommu_type1_info_dma_avail;
  caps.push({ id: VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL, version: 1, body: body(avail.encode({ avail: iommu.dmaAvail }), avail.sizeof) });
  const list = iommu.iovaList();
  if (list.length > 0) {
    const head = V.vfio_iommu_type1_info_cap_iova_range;
    const range = V.vfio_iova_range;
    const b = new Uint8Array(head.sizeof - HDR + list.length * range.sizeof);
    b.set(body(head.encode({ nr_iovas: list.length }), head.sizeof));
    list.forEach((r, i) => { b.set(range.encode({ start: r.start, end: r.last }), head.sizeof - HDR + i * range.sizeof); });
    caps.push({ id: VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE, version: 1, body: b });
  }
  return caps;
}

/** vfio_iommu_type1_get_info(): writes min(argsz, sizeof) bytes; the chain only when argsz holds it all. */
function getInfo(proc: Process, iommu: Type1Iommu, arg: number): Result<number> {
  const S = V.vfio_iommu_type1_info;
  const c = copyArgszFromUser(proc.mm, arg, S, minsz(VFIO_IOMMU_GET_INFO));
  if (!c.ok) return c;
  const n = Math.min(c.value.argsz, S.sizeof);
  const placed = placeCapChain(S.sizeof, c.value.argsz, type1InfoCaps(iommu));
  const w = writeCapChain(proc.mm, arg, S.sizeof, placed);
  if (!w.ok) return w;
  const flags = VFIO_IOMMU_INFO_PGSIZES | (placed.hasCaps ? VFIO_IOMMU_INFO_CAPS : 0);
  const out = { argsz: placed.argsz, flags, iova_pgsizes: iommu.pgsizeBitmap(), cap_offset: placed.capOffset, pad: 0 };
  const wb = copyArgszToUser(proc.mm, arg, S, out, n);
  return wb.ok ? ok(0) : wb;
}



/** ioctl() on a container fd: the return value (0, an extension answer) or the errno. */
export function dispatchVfioContainer(proc: Process, container: VfioContainer, cmd: number, arg: number): Result<number> {
  switch (cmd >>> 0) {
    case VFIO_GET_API_VERSION: return ok(VFIO_API_VERSION);
    case VFIO_CHECK_EXTENSION: return ok(container.checkExtension(arg));
    case VFIO_SET_IOMMU: {
      const r = container.setIommu(proc, arg);
      return r.ok ? ok(0) : r;
    }
    default: break;
  }
  const b = container.backend;
  if (b === null) return fail('EINVAL', 'no IOMMU backend is set (VFIO_SET_IOMMU first)');
  if (!(b instanceof Type1Iommu)) return fail('ENOTTY', 'the no-IOMMU backend has no ioctls besides VFIO_CHECK_EXTENSION');
  switch (cmd >>> 0) {
    case VFIO_IOMMU_GET_INFO: return getInfo(proc, b, arg);
    case VFIO_IOMMU_MAP_DMA: return mapDmaFromUser(proc, arg, (a) => type1Map(b, proc, a));
    case VFIO_IOMMU_UNMAP_DMA: return unmapDmaFromUser(proc, arg, (a) => type1Unmap(b, a));
    default: return fail('ENOTTY', `0x${(cmd >>> 0).toString(16)} is not a type1 ioctl ioasis models`);
  }
}
