// VFIO_IOMMU_MAP_DMA and VFIO_IOMMU_UNMAP_DMA from bytes, for both backends that answer them (the type1
// container and iommufd's compat layer): copy the argsz struct in (EFAULT, EINVAL below minsz), call the
// backend, and for an unmap write back `size` = the bytes unmapped, never past what the user gave.

import { ok, type Result } from '../kernel/errno.ts';
import type { Process } from '../kernel/process/process.ts';
import { VFIO_IOMMU_MAP_DMA, VFIO_IOMMU_UNMAP_DMA } from './ioctl.ts';
import { copyArgszFromUser, copyArgszToUser, vfioArgszOp } from './vfio-argsz.ts';
import * as V from './vfio-structs.ts';

export interface DmaMapFields { readonly flags: number; readonly vaddr: bigint; readonly iova: bigint; readonly size: bigint }
export interface DmaUnmapFields { readonly flags: number; readonly iova: bigint; readonly size: bigint }

const minsz = (cmd: number): number => vfioArgszOp('container', cmd)?.minsz ?? 0;

export function mapDmaFromUser(proc: Process, arg: number, map: (a: DmaMapFields) => Result): Result<number> {
  const c = copyArgszFromUser(proc.mm, arg, V.vfio_iommu_type1_dma_map, minsz(VFIO_IOMMU_MAP_DMA));
  if (!c.ok) return c;
  const r = map(c.value.value);
  return r.ok ? ok(0) : r;
}

export function unmapDmaFromUser(proc: Process, arg: number, unmap: (a: DmaUnmapFields) => Result<bigint>): Result<number> {
  const S = V.vfio_iommu_type1_dma_unmap;
  const m = minsz(VFIO_IOMMU_UNMAP_DMA);
  const c = copyArgszFromUser(proc.mm, arg, S, m);
  if (!c.ok) return c;
  const r = unmap(c.value.value);
  if (!r.ok) return r;
  const wb = copyArgszToUser(proc.mm, arg, S, { ...c.value.value, size: r.value }, m);
  return wb.ok ? ok(0) : wb;
}
