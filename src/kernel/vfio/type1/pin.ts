// The type1 side of vfio_pin_pages() / vfio_unpin_pages() / vfio_dma_rw() for emulated (mdev-style)
// devices (vfio_iommu_type1_pin_pages, _unpin_pages, _dma_rw): page pins recorded per mapping in its
// pfn_list with a reference count, charged to the mapping task only while the container has no IOMMU
// domain (with one, every page is already pinned and charged).

import { PAGE_SIZE } from '../../../hw/memory/physical-memory.ts';
import { fail, ok, type Result } from '../../errno.ts';
import type { VfioDma } from './dma.ts';
import type { Type1Iommu } from './iommu.ts';
import { copyUser, pinUser, unpinUser } from './mm-adapter.ts';

const PAGE = BigInt(PAGE_SIZE);
const hex = (v: bigint): string => `0x${v.toString(16)}`;

function pageIndex(dma: VfioDma, iova: bigint): number { return Number((iova - dma.iova) / PAGE); }

function unpinOne(dma: VfioDma, index: number): void {
  const p = dma.external.get(index);
  if (p === undefined) return;
  if (--p.refs > 0) return;
  unpinUser(dma.task, [p.pfn]);
  dma.external.delete(index);
  const r = dma.reaccount();
  if (!r.ok) throw new Error(`uncharge failed: ${r.reason}`);
}

/**
 * Pin `npage` pages from `iova` (page aligned down) for an emulated device: the PFNs. EACCES on a v1
 * container; EBUSY while vaddrs are invalid; EINVAL with no emulated device registered or a page in no
 * mapping; EPERM for a write pin of a read-only mapping; pin errors (EFAULT, ENOMEM for RLIMIT_MEMLOCK).
 * All or nothing.
 */
export function type1PinPages(iommu: Type1Iommu, iova: bigint, npage: number, write: boolean): Result<number[]> {
  if (!iommu.v2) return fail('EACCES', 'vfio_pin_pages needs a TYPE1v2 container');
  if (iommu.vaddrInvalidCount > 0) return fail('EBUSY', 'mappings have invalid vaddrs');
  if (iommu.devices.size === 0) return fail('EINVAL', 'no emulated device with a dma_unmap callback is registered');
  const base = iova - (iova % PAGE);
  const done: { dma: VfioDma; index: number }[] = [];
  const pfns: number[] = [];
  const unwind = (): void => { for (const d of done) unpinOne(d.dma, d.index); };
  for (let i = 0; i < npage; i++) {
    const at = base + BigInt(i) * PAGE;
    const dma = iommu.findDma(at, PAGE);
    if (dma === undefined) { unwind(); return fail('EINVAL', `${hex(at)} is not mapped`); }
    if (write && !dma.prot.write) { unwind(); return fail('EPERM', `the mapping at ${hex(dma.iova)} is not writeable`); }
    const index = pageIndex(dma, at);
    const have = dma.external.get(index);
    if (have !== undefined) {
      have.refs++;
    } else {
      const va = dma.vaddr + (at - dma.iova);
      if (va >= BigInt(Number.MAX_SAFE_INTEGER)) { unwind(); return fail('EFAULT', `${hex(va)} is not a user address`); }
      const got = pinUser(dma.task, Number(va), 1, dma.prot.write);
      if (!got.ok) { unwind(); return got; }
      dma.external.set(index, { pfn: got.value[0] as number, refs: 1 });
      const r = dma.reaccount();
      if (!r.ok) {
        unpinUser(dma.task, got.value);
        dma.external.delete(index);
        unwind();
        return r;
      }
    }
    done.push({ dma, index });
    pfns.push((dma.external.get(index) as { pfn: number }).pfn);
  }
  return ok(pfns);
}

/** vfio_iommu_type1_unpin_pages(): drop one reference per page; a WARN (logged) for pages in no mapping. */
export function type1UnpinPages(iommu: Type1Iommu, iova: bigint, npage: number): void {
  const base = iova - (iova % PAGE);
  for (let i = 0; i < npage; i++) {
    const at = base + BigInt(i) * PAGE;
    const dma = iommu.findDma(at, PAGE);
    if (dma === undefined) {
      iommu.log.push(`WARN: invalid unpin of ${npage} page(s) at ${hex(iova)}: ${hex(at)} is not mapped`);
      return;
    }
    unpinOne(dma, pageIndex(dma, at));
  }
}

/**
 * vfio_iommu_type1_dma_rw(): CPU "DMA" through the mapping task's mm, chunk by mapping. EBUSY (and a
 * WARN) while vaddrs are invalid; EINVAL for an IOVA in no mapping; EPERM when the mapping is not readable (or not writeable for a write); EFAULT when
 * the user copy fails.
 */
export function type1DmaRw(iommu: Type1Iommu, iova: bigint, data: Uint8Array, write: boolean): Result {
  // WARN_ONCE in Linux: emulated groups and invalid vaddrs are kept apart, so this should not happen.
  if (iommu.vaddrInvalidCount > 0) {
    iommu.log.push('WARN: vfio_dma_rw not allowed with VFIO_UPDATE_VADDR');
    return fail('EBUSY', 'mappings have invalid vaddrs');
  }
  let done = 0;
  while (done < data.length) {
    const at = iova + BigInt(done);
    const dma = iommu.findDma(at, 1n);
    if (dma === undefined) return fail('EINVAL', `${hex(at)} is not mapped`);
    if ((write && !dma.prot.write) || !dma.prot.read) return fail('EPERM', `the mapping at ${hex(dma.iova)} does not allow this access`);
    const n = Math.min(data.length - done, Number(dma.last - at + 1n));
    const va = dma.vaddr + (at - dma.iova);
    if (va + BigInt(n) > BigInt(Number.MAX_SAFE_INTEGER)) return fail('EFAULT', `${hex(va)} is not a user address`);
    const r = copyUser(dma.task, Number(va), data.subarray(done, done + n), write);
    if (!r.ok) return fail('EFAULT', r.reason);
    done += n;
  }
  return ok();
}
