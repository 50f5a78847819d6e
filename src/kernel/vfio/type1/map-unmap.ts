// VFIO_IOMMU_MAP_DMA and VFIO_IOMMU_UNMAP_DMA on a type1 container (vfio_dma_do_map, vfio_dma_do_unmap),
// on decoded arguments, with the checks in the kernel's order. Pinning is immediate when the container
// has an IOMMU domain, lazy (at vfio_pin_pages) when it has only emulated groups.

import { fail, ok, type Result } from '../../errno.ts';
import type { Process } from '../../process/process.ts';
import { VfioDma } from './dma.ts';
import type { Type1Iommu } from './iommu.ts';

export const VFIO_DMA_MAP_FLAG_READ = 1 << 0;
export const VFIO_DMA_MAP_FLAG_WRITE = 1 << 1;
export const VFIO_DMA_MAP_FLAG_VADDR = 1 << 2;
export const VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP = 1 << 0;
export const VFIO_DMA_UNMAP_FLAG_ALL = 1 << 1;
export const VFIO_DMA_UNMAP_FLAG_VADDR = 1 << 2;
const MAP_FLAGS_VALID = VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE | VFIO_DMA_MAP_FLAG_VADDR;
const UNMAP_FLAGS_VALID = VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP | VFIO_DMA_UNMAP_FLAG_ALL | VFIO_DMA_UNMAP_FLAG_VADDR;
const U64_MAX = (1n << 64n) - 1n;
/** type1 restarts an unmap this many times for one mapping whose external pins stay, then BUG()s. */
export const UNMAP_RETRY_LIMIT = 10;

/** Thrown where Linux hits BUG_ON(): the model's state is no longer trustworthy. */
export class KernelBug extends Error {}

export interface DmaMapArgs { readonly flags: number; readonly vaddr: bigint; readonly iova: bigint; readonly size: bigint }
export interface DmaUnmapArgs { readonly flags: number; readonly iova: bigint; readonly size: bigint }

const hex = (v: bigint): string => `0x${v.toString(16)}`;

/**
 * vfio_iommu_type1_map_dma() + vfio_dma_do_map(): EINVAL for unknown flags, for neither READ nor WRITE
 * without VADDR (or either with it), size 0, misalignment to the smallest page size or a wrapping IOVA
 * or VA; VADDR: ENOENT without a mapping there, EINVAL unless it is an invalidated mapping of exactly
 * this range; EEXIST over a mapping; ENOSPC past dma_entry_limit; EINVAL outside the valid IOVA list;
 * then pinning (ENOMEM over RLIMIT_MEMLOCK, EFAULT) and the domain maps.
 */
export function type1Map(iommu: Type1Iommu, proc: Process, a: DmaMapArgs): Result {
  if ((a.flags & ~MAP_FLAGS_VALID) !== 0) return fail('EINVAL', `unknown map flags 0x${(a.flags & ~MAP_FLAGS_VALID).toString(16)}`);
  const setVaddr = (a.flags & VFIO_DMA_MAP_FLAG_VADDR) !== 0;
  const prot = { read: (a.flags & VFIO_DMA_MAP_FLAG_READ) !== 0, write: (a.flags & VFIO_DMA_MAP_FLAG_WRITE) !== 0 };
  const hasProt = prot.read || prot.write;
  if (hasProt === setVaddr) return fail('EINVAL', setVaddr ? 'VADDR cannot change READ/WRITE' : 'a mapping needs READ or WRITE');
  const pg = iommu.minPageSize();
  if (a.size === 0n || ((a.size | a.iova | a.vaddr) & (pg - 1n)) !== 0n) {
    return fail('EINVAL', `size ${hex(a.size)}, iova ${hex(a.iova)} and vaddr ${hex(a.vaddr)} must be non-zero multiples of ${hex(pg)}`);
  }
  if (a.iova + a.size - 1n > U64_MAX || a.vaddr + a.size - 1n > U64_MAX) return fail('EINVAL', 'the IOVA or VA range wraps');
  const dma = iommu.findDma(a.iova, a.size);
  if (setVaddr) {
    if (dma === undefined) return fail('ENOENT', `no mapping at ${hex(a.iova)}`);
    if (!dma.vaddrInvalid || dma.iova !== a.iova || dma.size !== a.size) return fail('EINVAL', 'VADDR must name exactly one invalidated mapping');
    if (dma.task !== proc) {
      // vfio_change_dma_owner(): the charge moves to the new task's mm.
      const old = { task: dma.task, lockCap: dma.lockCap, charged: dma.charged };
      dma.task = proc;
      dma.lockCap = proc.capable('CAP_IPC_LOCK');
      dma.charged = 0;
      const r = dma.reaccount();
      if (!r.ok) { Object.assign(dma, old); return r; }
      old.task.account('mm', old.charged, 'sub');
    }
    dma.vaddr = a.vaddr;
    dma.vaddrInvalid = false;
    iommu.vaddrInvalidCount--;
    return ok();
  }
  if (dma !== undefined) return fail('EEXIST', `${hex(a.iova)}+${hex(a.size)} overlaps the mapping at ${hex(dma.iova)}`);
  if (iommu.dmaAvail === 0) return fail('ENOSPC', 'dma_entry_limit mappings already exist');
  if (!iommu.iovaValid(a.iova, a.iova + a.size - 1n)) return fail('EINVAL', `${hex(a.iova)}+${hex(a.size)} is outside the valid IOVA ranges`);
  const created = new VfioDma(a.iova, a.size, a.vaddr, prot, proc);
  iommu.linkDma(created);
  if (iommu.domains.length === 0) return ok();
  // vfio_pin_map_dma(): on failure the mapping is removed again.
  const pinned = created.pinForIommu();
  if (!pinned.ok) { iommu.removeDma(created); return pinned; }
  for (const d of iommu.domains) {
    const m = iommu.mapIntoDomain(created, d.domain);
    if (!m.ok) { iommu.removeDma(created); return m; }
  }
  return ok();
}

/**
 * vfio_iommu_type1_unmap_dma() + vfio_dma_do_unmap(): the unmapped byte count. EINVAL for unknown
 * flags, GET_DIRTY_BITMAP (dirty tracking is not running) or combined with ALL/VADDR, misalignment,
 * ALL with a range, a zero, misaligned or wrapping size; EBUSY for VADDR with emulated groups; v2:
 * EINVAL when the range bisects a mapping. v1: the walk stops at a mapping that starts before iova
 * (success with what was unmapped, possibly 0) and takes whole mappings otherwise. Mappings with
 * external pins: the emulated devices are told to unpin and the walk restarts (a BUG after 10 retries).
 */
export function type1Unmap(iommu: Type1Iommu, a: DmaUnmapArgs): Result<bigint> {
  if ((a.flags & ~UNMAP_FLAGS_VALID) !== 0) return fail('EINVAL', `unknown unmap flags 0x${(a.flags & ~UNMAP_FLAGS_VALID).toString(16)}`);
  if ((a.flags & VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP) !== 0) {
    return fail('EINVAL', (a.flags & ~VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP) !== 0 ? 'GET_DIRTY_BITMAP cannot be combined with ALL or VADDR' : 'dirty page tracking is not started');
  }
  const unmapAll = (a.flags & VFIO_DMA_UNMAP_FLAG_ALL) !== 0;
  const invalidateVaddr = (a.flags & VFIO_DMA_UNMAP_FLAG_VADDR) !== 0;
  if (invalidateVaddr && iommu.hasEmulated()) return fail('EBUSY', 'VADDR unmap is refused while emulated groups can pin');
  const pg = iommu.minPageSize();
  if ((a.iova & (pg - 1n)) !== 0n) return fail('EINVAL', `iova ${hex(a.iova)} is not a multiple of ${hex(pg)}`);
  let size = a.size;
  if (unmapAll) {
    if (a.iova !== 0n || a.size !== 0n) return fail('EINVAL', 'UNMAP_ALL needs iova and size 0');
    size = U64_MAX;
  } else if (size === 0n || (size & (pg - 1n)) !== 0n || a.iova + size - 1n > U64_MAX) {
    return fail('EINVAL', `size ${hex(size)} is zero, misaligned or wraps`);
  }
  const iova = a.iova;
  const end = unmapAll ? U64_MAX : iova + size - 1n;
  if (iommu.v2 && !unmapAll) {
    const first = iommu.findDma(iova, 1n);
    if (first !== undefined && first.iova !== iova) return fail('EINVAL', `${hex(iova)} is inside the mapping at ${hex(first.iova)}`);
    const lastDma = iommu.findDma(end, 1n);
    if (lastDma !== undefined && lastDma.last !== end) return fail('EINVAL', `${hex(end)} is inside the mapping at ${hex(lastDma.iova)}`);
  }
  let unmapped = 0n;
  let retries = 0;
  let lastBusy: object | null = null;
  const invalidated: VfioDma[] = [];
  for (let i = iommu.lowerBound(iova); i < iommu.dmas.length;) {
    const dma = iommu.dmas[i] as VfioDma;
    if (dma.iova > end) break;
    if (!iommu.v2 && iova > dma.iova) break;
    if (invalidateVaddr) {
      if (dma.vaddrInvalid) {
        for (const d of invalidated) { d.vaddrInvalid = false; iommu.vaddrInvalidCount--; }
        return fail('EINVAL', `the mapping at ${hex(dma.iova)} already has an invalid vaddr`);
      }
      dma.vaddrInvalid = true;
      iommu.vaddrInvalidCount++;
      invalidated.push(dma);
      unmapped += dma.size;
      i++;
      continue;
    }
    if (dma.external.size > 0) {
      if (lastBusy === dma) {
        if (++retries > UNMAP_RETRY_LIMIT) throw new KernelBug(`BUG: emulated devices keep pages of the mapping at ${hex(dma.iova)} pinned after ${UNMAP_RETRY_LIMIT} unmap notifications`);
      } else { lastBusy = dma; retries = 0; }
      // vfio_notify_dma_unmap(): every open emulated device, then the walk restarts.
      for (const vdev of [...iommu.devices]) vdev.ops.dmaUnmap?.(vdev, dma.iova, dma.size);
      i = iommu.lowerBound(iova);
      continue;
    }
    unmapped += dma.size;
    iommu.removeDma(dma);
  }
  return ok(unmapped);
}
