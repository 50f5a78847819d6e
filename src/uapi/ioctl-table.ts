// iommufd's ioctl table (drivers/iommu/iommufd/main.c, IOCTL_OP): for each command its struct and the
// minimum user size, offsetofend() of the last field that existed when the ioctl was introduced (fields
// added later are optional). Plus the routing main.c applies to a number before any table lookup.

import {
  _IOC_NR, IOMMU_DESTROY, IOMMU_FAULT_QUEUE_ALLOC, IOMMU_GET_HW_INFO, IOMMU_HW_QUEUE_ALLOC, IOMMU_HWPT_ALLOC,
  IOMMU_HWPT_GET_DIRTY_BITMAP, IOMMU_HWPT_INVALIDATE, IOMMU_HWPT_SET_DIRTY_TRACKING, IOMMU_IOAS_ALLOC,
  IOMMU_IOAS_ALLOW_IOVAS, IOMMU_IOAS_CHANGE_PROCESS, IOMMU_IOAS_COPY, IOMMU_IOAS_IOVA_RANGES, IOMMU_IOAS_MAP,
  IOMMU_IOAS_MAP_FILE, IOMMU_IOAS_UNMAP, IOMMU_OPTION, IOMMU_TEST_CMD, IOMMU_VDEVICE_ALLOC, IOMMU_VEVENTQ_ALLOC,
  IOMMU_VFIO_IOAS, IOMMU_VIOMMU_ALLOC, IOMMUFD_CMD_BASE, VFIO_CHECK_EXTENSION, VFIO_GET_API_VERSION,
  VFIO_IOMMU_GET_INFO, VFIO_IOMMU_MAP_DMA, VFIO_IOMMU_UNMAP_DMA, VFIO_SET_IOMMU,
} from './ioctl.ts';
import * as S from './iommufd-structs.ts';
import type { FieldMap, StructDef } from './struct.ts';

export interface IoctlOp {
  /** The full command number (`ioctl_num`): a number with the right nr but other bits does not match. */
  readonly cmd: number;
  readonly nr: number;
  readonly name: string;
  readonly struct: StructDef;
  /** The last mandatory field of the struct. */
  readonly lastMandatory: string;
  /** offsetofend(struct, lastMandatory): a smaller user `size` is EINVAL. */
  readonly minSize: number;
}

function op<F extends FieldMap>(cmd: number, name: string, struct: StructDef<F>, last: keyof F & string): IoctlOp {
  return { cmd, nr: _IOC_NR(cmd), name, struct, lastMandatory: last, minSize: struct.offsetofend(last) };
}

/** main.c's IOCTL_OP table (ordered by nr here; the kernel indexes it by nr - IOMMUFD_CMD_BASE). */
export const IOMMUFD_IOCTLS: readonly IoctlOp[] = [
  op(IOMMU_DESTROY, 'IOMMU_DESTROY', S.iommu_destroy, 'id'),
  op(IOMMU_IOAS_ALLOC, 'IOMMU_IOAS_ALLOC', S.iommu_ioas_alloc, 'out_ioas_id'),
  op(IOMMU_IOAS_ALLOW_IOVAS, 'IOMMU_IOAS_ALLOW_IOVAS', S.iommu_ioas_allow_iovas, 'allowed_iovas'),
  op(IOMMU_IOAS_COPY, 'IOMMU_IOAS_COPY', S.iommu_ioas_copy, 'src_iova'),
  op(IOMMU_IOAS_IOVA_RANGES, 'IOMMU_IOAS_IOVA_RANGES', S.iommu_ioas_iova_ranges, 'out_iova_alignment'),
  op(IOMMU_IOAS_MAP, 'IOMMU_IOAS_MAP', S.iommu_ioas_map, 'iova'),
  op(IOMMU_IOAS_UNMAP, 'IOMMU_IOAS_UNMAP', S.iommu_ioas_unmap, 'length'),
  op(IOMMU_OPTION, 'IOMMU_OPTION', S.iommu_option, 'val64'),
  op(IOMMU_VFIO_IOAS, 'IOMMU_VFIO_IOAS', S.iommu_vfio_ioas, '__reserved'),
  op(IOMMU_HWPT_ALLOC, 'IOMMU_HWPT_ALLOC', S.iommu_hwpt_alloc, '__reserved'),
  op(IOMMU_GET_HW_INFO, 'IOMMU_GET_HW_INFO', S.iommu_hw_info, '__reserved'),
  op(IOMMU_HWPT_SET_DIRTY_TRACKING, 'IOMMU_HWPT_SET_DIRTY_TRACKING', S.iommu_hwpt_set_dirty_tracking, '__reserved'),
  op(IOMMU_HWPT_GET_DIRTY_BITMAP, 'IOMMU_HWPT_GET_DIRTY_BITMAP', S.iommu_hwpt_get_dirty_bitmap, 'data'),
  op(IOMMU_HWPT_INVALIDATE, 'IOMMU_HWPT_INVALIDATE', S.iommu_hwpt_invalidate, '__reserved'),
  op(IOMMU_FAULT_QUEUE_ALLOC, 'IOMMU_FAULT_QUEUE_ALLOC', S.iommu_fault_alloc, 'out_fault_fd'),
  op(IOMMU_IOAS_MAP_FILE, 'IOMMU_IOAS_MAP_FILE', S.iommu_ioas_map_file, 'iova'),
  op(IOMMU_VIOMMU_ALLOC, 'IOMMU_VIOMMU_ALLOC', S.iommu_viommu_alloc, 'out_viommu_id'),
  op(IOMMU_VDEVICE_ALLOC, 'IOMMU_VDEVICE_ALLOC', S.iommu_vdevice_alloc, 'virt_id'),
  op(IOMMU_IOAS_CHANGE_PROCESS, 'IOMMU_IOAS_CHANGE_PROCESS', S.iommu_ioas_change_process, '__reserved'),
  op(IOMMU_VEVENTQ_ALLOC, 'IOMMU_VEVENTQ_ALLOC', S.iommu_veventq_alloc, 'out_veventq_fd'),
  op(IOMMU_HW_QUEUE_ALLOC, 'IOMMU_HW_QUEUE_ALLOC', S.iommu_hw_queue_alloc, 'length'),
];

/**
 * The VFIO container numbers iommufd's vfio_compat handler implements (iommufd_vfio_ioctl). Other numbers
 * that reach it (VFIO_IOMMU_DIRTY_PAGES included) get ENOIOCTLCMD → ENOTTY.
 */
export const VFIO_COMPAT_IOCTLS: readonly number[] = [
  VFIO_GET_API_VERSION, VFIO_CHECK_EXTENSION, VFIO_SET_IOMMU, VFIO_IOMMU_GET_INFO, VFIO_IOMMU_MAP_DMA,
  VFIO_IOMMU_UNMAP_DMA,
];

export type IoctlClass =
  | { readonly kind: 'iommufd'; readonly op: IoctlOp }
  | { readonly kind: 'vfio-compat'; readonly cmd: number }
  | { readonly kind: 'unknown'; readonly routedTo: 'iommufd' | 'vfio-compat'; readonly reason: string };

export interface ClassifyOptions {
  /** CONFIG_IOMMUFD_TEST: IOMMU_TEST_CMD (nr 0xa0) is in the table, which then spans nr 0x80..0xa0. */
  readonly testCmd?: boolean;
}

const byNr = new Map(IOMMUFD_IOCTLS.map((o) => [o.nr, o]));
/** The table by nr - IOMMUFD_CMD_BASE, as main.c indexes it (iommufdIoctlOp's array lookup). */
const byIndex: readonly (IoctlOp | undefined)[] = Array.from(
  { length: IOMMUFD_IOCTLS.length }, (_, i) => byNr.get(IOMMUFD_CMD_BASE + i));
/** The 'iommufd' class of each table entry, made once (lookupIoctl runs on every ioctl). */
const classOf = new Map<IoctlOp, IoctlClass>(IOMMUFD_IOCTLS.map((o) => [o, Object.freeze({ kind: 'iommufd' as const, op: o })]));
const compat = new Set(VFIO_COMPAT_IOCTLS);
const hex = (n: number): string => `0x${n.toString(16)}`;

/**
 * Where main.c sends `cmd`: a table op; numbers whose nr is below the base or past the table's end go to
 * vfio_compat (which knows only VFIO_COMPAT_IOCTLS); a hole in the table or a full number that differs
 * from the entry's is unknown. The dispatcher turns 'unknown' into ENOTTY. With `testCmd` the caller
 * handles IOMMU_TEST_CMD itself: it is reported as unknown routed to 'iommufd' with that reason.
 */
export function lookupIoctl(cmd: number, opts: ClassifyOptions = {}): IoctlClass {
  const nr = _IOC_NR(cmd);
  const last = opts.testCmd === true ? _IOC_NR(IOMMU_TEST_CMD) : IOMMUFD_CMD_BASE + IOMMUFD_IOCTLS.length - 1;
  if (nr < IOMMUFD_CMD_BASE || nr > last) {
    if (compat.has(cmd >>> 0)) return { kind: 'vfio-compat', cmd: cmd >>> 0 };
    return { kind: 'unknown', routedTo: 'vfio-compat', reason: `${hex(cmd)} is outside the iommufd table and vfio_compat does not know it` };
  }
  const entry = byNr.get(nr);
  if (entry !== undefined && entry.cmd === cmd >>> 0) return classOf.get(entry) ?? { kind: 'iommufd', op: entry };
  if (opts.testCmd === true && cmd >>> 0 === IOMMU_TEST_CMD) {
    return { kind: 'unknown', routedTo: 'iommufd', reason: 'IOMMU_TEST_CMD: selftest commands are handled by the test layer' };
  }
  return { kind: 'unknown', routedTo: 'iommufd', reason: entry === undefined ? `no iommufd ioctl has nr ${hex(nr)}` : `${hex(cmd)} is not ${entry.name} (${hex(entry.cmd)})` };
}

/**
 * The table entry `cmd` is, exactly (lookupIoctl(cmd)'s 'iommufd' class, without IOMMU_TEST_CMD), or
 * undefined for every other number: the dispatcher's allocation-free test on each ioctl.
 */
export function iommufdIoctlOp(cmd: number): IoctlOp | undefined {
  const i = _IOC_NR(cmd) - IOMMUFD_CMD_BASE;
  const entry = i >= 0 && i < byIndex.length ? byIndex[i] : undefined;
  return entry !== undefined && entry.cmd === cmd >>> 0 ? entry : undefined;
}
