// IOMMU_HWPT_SET_DIRTY_TRACKING and IOMMU_HWPT_GET_DIRTY_BITMAP through the byte-level dispatch (uAPI
// reference §6.12, §10; selftest oracle §4.5): every errno in the kernel's order, bitmaps at unaligned
// user addresses, NO_CLEAR, granules larger and smaller than the leaves, and bits that only device writes
// through the simulated IOMMU set.

import { describe, expect, it } from 'vitest';
import { IoPageTableDomain } from '../../src/kernel/iommu/domain.ts';
import { IoasisIommuDriver } from '../../src/kernel/iommu/ioasis-iommu-driver.ts';
import { MAP_ANONYMOUS, MAP_PRIVATE, PROT_READ } from '../../src/kernel/mm/mman.ts';
import { dirtySetup, setBits, SZ_2M } from '../kernel/iommufd/dirty-setup.ts';
import { PAGE, U64_MAX, value } from './dispatch-helpers.ts';

const IOVA = 0x4000_0000;
const PAGES = 64;

function ready() {
  const s = dirtySetup();
  s.map(IOVA, PAGES * PAGE);
  const bitmap = s.c.anon(4);
  const read = (at: number, n: number): Uint8Array => {
    const b = new Uint8Array(n);
    value(s.c.proc.mm.read(at, b));
    return b;
  };
  const clear = (): void => { value(s.c.proc.mm.write(bitmap, new Uint8Array(4 * PAGE))); };
  return { ...s, bitmap, read, clear };
}

describe('IOMMU_HWPT_SET_DIRTY_TRACKING', () => {
  it('errnos: unknown flags, not a HWPT_PAGING, no dirty ops', () => {
    const s = ready();
    expect(s.c.call('IOMMU_HWPT_SET_DIRTY_TRACKING', { hwpt_id: s.hwptId, flags: 2 }).e).toBe('EOPNOTSUPP');
    // Flags are checked before the lookup.
    expect(s.c.call('IOMMU_HWPT_SET_DIRTY_TRACKING', { hwpt_id: 999, flags: 2 }).e).toBe('EOPNOTSUPP');
    expect(s.setTracking(999, true).e).toBe('ENOENT');
    expect(s.setTracking(s.ioasId, true).e).toBe('ENOENT');
    expect(s.setTracking(s.plainHwptId, true).e).toBe('EOPNOTSUPP');
    expect(s.setTracking(s.plainHwptId, false).e).toBe('EOPNOTSUPP');
    // The kernel does not look at __reserved here.
    expect(s.c.call('IOMMU_HWPT_SET_DIRTY_TRACKING', { hwpt_id: s.hwptId, flags: 1, __reserved: 7 }).e).toBe('ok');
  });

  it('enable sets SSADE where the domain is programmed; disable clears it; both are idempotent', () => {
    const s = ready();
    const driver = s.w.core.driverOf(s.dev);
    if (!(driver instanceof IoasisIommuDriver)) throw new Error('the default host runs the ioasis driver');
    const ssade = (): boolean | undefined => driver.readRid(s.dev.rid).ridPasidEntry?.ssade;
    expect(ssade()).toBe(false);
    expect(s.setTracking(s.hwptId, true).e).toBe('ok');
    expect(ssade()).toBe(true);
    expect(s.setTracking(s.hwptId, true).e).toBe('ok');
    expect(s.setTracking(s.hwptId, false).e).toBe('ok');
    expect(ssade()).toBe(false);
    expect(s.setTracking(s.hwptId, false).e).toBe('ok');
  });

  it('enabling starts from a clean snapshot: bits left from an earlier tracking period are cleared', () => {
    const s = ready();
    expect(s.setTracking(s.hwptId, true).e).toBe('ok');
    expect(s.dma(IOVA + 3 * PAGE, true)).toBe('ok');
    expect(s.setTracking(s.hwptId, false).e).toBe('ok');
    expect(s.setTracking(s.hwptId, true).e).toBe('ok');
    expect(s.getBitmap({ iova: IOVA, length: PAGES * PAGE, data: s.bitmap }).e).toBe('ok');
    expect(setBits(s.read(s.bitmap, PAGES / 8))).toEqual([]);
  });
});

describe('IOMMU_HWPT_GET_DIRTY_BITMAP', () => {
  it('errnos in the kernel order', () => {
    const s = ready();
    const base = { iova: IOVA, length: PAGES * PAGE, data: s.bitmap };
    // Tracking is off after allocation: the driver refuses the read.
    expect(s.getBitmap(base).e).toBe('EINVAL');
    expect(s.setTracking(s.hwptId, true).e).toBe('ok');
    expect(s.getBitmap(base).e).toBe('ok');
    expect(s.getBitmap({ ...base, flags: 2 }).e).toBe('EOPNOTSUPP');
    expect(s.getBitmap({ ...base, __reserved: 1 }).e).toBe('EOPNOTSUPP');
    expect(s.getBitmap({ ...base, flags: 2, hwpt_id: 999 }).e).toBe('EOPNOTSUPP');
    expect(s.getBitmap({ ...base, hwpt_id: 999 }).e).toBe('ENOENT');
    expect(s.getBitmap({ ...base, hwpt_id: s.ioasId }).e).toBe('ENOENT');
    // The range checks, before the dirty ops are looked at.
    expect(s.getBitmap({ ...base, iova: U64_MAX - BigInt(PAGE) + 1n, length: 2 * PAGE }).e).toBe('EOVERFLOW');
    expect(s.getBitmap({ ...base, iova: BigInt(PAGE), length: U64_MAX }).e).toBe('EOVERFLOW');
    // length 0 is length - 1 = U64_MAX in u64: it wraps from any IOVA but 0, and from 0 covers no area.
    expect(s.getBitmap({ ...base, length: 0 }).e).toBe('EOVERFLOW');
    expect(s.getBitmap({ ...base, iova: 0, length: 0 }).e).toBe('EINVAL');
    expect(s.getBitmap({ ...base, iova: IOVA + 1 }).e).toBe('EINVAL');
    expect(s.getBitmap({ ...base, length: PAGES * PAGE - 1 }).e).toBe('EINVAL');
    expect(s.getBitmap({ ...base, page_size: 0 }).e).toBe('EINVAL');
    expect(s.getBitmap({ ...base, iova: IOVA + PAGE, length: SZ_2M, page_size: SZ_2M }).e).toBe('EINVAL');
    expect(s.getBitmap({ ...base, length: PAGE, page_size: 2 * PAGE }).e).toBe('EINVAL');
    expect(s.getBitmap({ ...base, hwpt_id: s.plainHwptId, page_size: 0 }).e).toBe('EINVAL');
    expect(s.getBitmap({ ...base, hwpt_id: s.plainHwptId }).e).toBe('EOPNOTSUPP');
    // Not covered by contiguous areas: past the end, before the start, or across a hole.
    expect(s.getBitmap({ ...base, length: (PAGES + 1) * PAGE }).e).toBe('EINVAL');
    expect(s.getBitmap({ ...base, iova: IOVA - PAGE }).e).toBe('EINVAL');
    s.map(IOVA + (PAGES + 1) * PAGE, PAGE);
    expect(s.getBitmap({ ...base, length: (PAGES + 2) * PAGE }).e).toBe('EINVAL');
    s.map(IOVA + PAGES * PAGE, PAGE);
    expect(s.getBitmap({ ...base, length: (PAGES + 2) * PAGE }).e).toBe('ok');
  });

  it('reports the pages device writes dirtied, not the ones it read; a clearing read empties the next', () => {
    const s = ready();
    expect(s.setTracking(s.hwptId, true).e).toBe('ok');
    for (const p of [0, 5, 9, 63]) expect(s.dma(IOVA + p * PAGE + 16, true)).toBe('ok');
    for (const p of [1, 6, 9]) expect(s.dma(IOVA + p * PAGE, false)).toBe('ok');
    expect(s.getBitmap({ iova: IOVA, length: PAGES * PAGE, data: s.bitmap }).e).toBe('ok');
    expect(setBits(s.read(s.bitmap, PAGES / 8))).toEqual([0, 5, 9, 63]);
    s.clear();
    expect(s.getBitmap({ iova: IOVA, length: PAGES * PAGE, data: s.bitmap }).e).toBe('ok');
    expect(setBits(s.read(s.bitmap, PAGES / 8))).toEqual([]);
    // The IOTLB was invalidated: a second write to a cleared page sets D again.
    expect(s.dma(IOVA + 5 * PAGE, true)).toBe('ok');
    expect(s.getBitmap({ iova: IOVA, length: PAGES * PAGE, data: s.bitmap }).e).toBe('ok');
    expect(setBits(s.read(s.bitmap, PAGES / 8))).toEqual([5]);
  });

  it('a clearing read over several areas gathers: one IOTLB invalidation for the request, and every area was covered', () => {
    const s = ready();
    // Three more areas right after the first: four contiguous areas under one request.
    for (let k = 1; k <= 3; k++) s.map(IOVA + k * PAGES * PAGE, PAGES * PAGE);
    expect(s.setTracking(s.hwptId, true).e).toBe('ok');
    const pages = [3, PAGES + 7, 2 * PAGES + 1, 3 * PAGES + 60];
    for (const p of pages) expect(s.dma(IOVA + p * PAGE, true)).toBe('ok');
    const driver = s.w.core.ioasisDriverOf(s.dev)!;
    const before = driver.stats.invalidations;
    expect(s.getBitmap({ iova: IOVA, length: 4 * PAGES * PAGE, data: s.bitmap }).e).toBe('ok');
    expect(driver.stats.invalidations - before).toBe(1);
    expect(setBits(s.read(s.bitmap, (4 * PAGES) / 8))).toEqual(pages);
    // The one invalidation covered every area: writing each page again sets its D bit again.
    s.clear();
    for (const p of pages) expect(s.dma(IOVA + p * PAGE, true)).toBe('ok');
    expect(s.getBitmap({ iova: IOVA, length: 4 * PAGES * PAGE, data: s.bitmap, flags: 1 }).e).toBe('ok');
    expect(setBits(s.read(s.bitmap, (4 * PAGES) / 8))).toEqual(pages);
  });

  it('NO_CLEAR reports without clearing: the same bits again, then a clearing read, then none', () => {
    const s = ready();
    expect(s.setTracking(s.hwptId, true).e).toBe('ok');
    for (const p of [2, 40]) expect(s.dma(IOVA + p * PAGE, true)).toBe('ok');
    for (let round = 0; round < 2; round++) {
      s.clear();
      expect(s.getBitmap({ iova: IOVA, length: PAGES * PAGE, data: s.bitmap, flags: 1 }).e).toBe('ok');
      expect(setBits(s.read(s.bitmap, PAGES / 8))).toEqual([2, 40]);
    }
    s.clear();
    expect(s.getBitmap({ iova: IOVA, length: PAGES * PAGE, data: s.bitmap }).e).toBe('ok');
    expect(setBits(s.read(s.bitmap, PAGES / 8))).toEqual([2, 40]);
    s.clear();
    expect(s.getBitmap({ iova: IOVA, length: PAGES * PAGE, data: s.bitmap }).e).toBe('ok');
    expect(setBits(s.read(s.bitmap, PAGES / 8))).toEqual([]);
  });

  it('bitmaps at any byte alignment, across a page boundary; bits already set by the user stay set', () => {
    const s = ready();
    expect(s.setTracking(s.hwptId, true).e).toBe('ok');
    const dirty = [0, 7, 8, 31, 33, 62];
    for (const at of [s.bitmap + 1, s.bitmap + 3, s.bitmap + PAGE - 5, s.bitmap + PAGE - 1, s.bitmap + 2 * PAGE + 7]) {
      s.clear();
      for (const p of dirty) expect(s.dma(IOVA + p * PAGE, true)).toBe('ok');
      // A byte before and after the bitmap, and one bit inside it, set by the user.
      value(s.c.proc.mm.write(at - 1, new Uint8Array([0xff])));
      value(s.c.proc.mm.write(at + PAGES / 8, new Uint8Array([0x80])));
      value(s.c.proc.mm.write(at + 2, new Uint8Array([0x02])));
      expect(s.getBitmap({ iova: IOVA, length: PAGES * PAGE, data: at }).e).toBe('ok');
      expect(setBits(s.read(at, PAGES / 8))).toEqual([...dirty, 17].sort((a, b) => a - b));
      expect(s.read(at - 1, 1)[0]).toBe(0xff);
      expect(s.read(at + PAGES / 8, 1)[0]).toBe(0x80);
    }
  });

  it('a sub-range: bit 0 is the first granule of the range asked for', () => {
    const s = ready();
    expect(s.setTracking(s.hwptId, true).e).toBe('ok');
    for (const p of [3, 16, 17, 30]) expect(s.dma(IOVA + p * PAGE, true)).toBe('ok');
    expect(s.getBitmap({ iova: IOVA + 16 * PAGE, length: 16 * PAGE, data: s.bitmap }).e).toBe('ok');
    expect(setBits(s.read(s.bitmap, 2))).toEqual([0, 1, 14]);
    // Outside the range nothing was cleared.
    s.clear();
    expect(s.getBitmap({ iova: IOVA, length: PAGES * PAGE, data: s.bitmap }).e).toBe('ok');
    expect(setBits(s.read(s.bitmap, PAGES / 8))).toEqual([3]);
  });

  it('2 MiB granules over 4 KiB leaves, and a 2 MiB leaf over 4 KiB granules', () => {
    const s = dirtySetup();
    const HUGE = 0x8000_0000;
    s.map(0x4000_0000, SZ_2M, { smallLeaves: true });
    s.map(HUGE, 2 * SZ_2M);
    const d = s.hwpt.domain;
    if (!(d instanceof IoPageTableDomain)) throw new Error('the ioasis driver allocates IoPageTable domains');
    expect(d.table.lookup(0x4000_0000)?.pageSize).toBe(PAGE);
    expect(d.table.lookup(HUGE)?.pageSize).toBe(SZ_2M);
    const bitmap = s.c.anon(1);
    expect(s.setTracking(s.hwptId, true).e).toBe('ok');
    // Small granules over 4 KiB leaves first: the leaf sizes the domain chose.
    expect(s.dma(0x4000_0000 + 7 * PAGE, true)).toBe('ok');
    expect(s.dma(HUGE + SZ_2M + 5 * PAGE, true)).toBe('ok');
    const bits = (iova: number, length: number, pageSize: number, flags = 0): number[] => {
      value(s.c.proc.mm.write(bitmap, new Uint8Array(PAGE)));
      expect(s.getBitmap({ iova, length, page_size: pageSize, data: bitmap, flags }).e).toBe('ok');
      const b = new Uint8Array(PAGE);
      value(s.c.proc.mm.read(bitmap, b));
      return setBits(b);
    };
    // 2 MiB granules: the 4 KiB page 7 is in granule 0; the written page of the second 2 MiB is in granule 1.
    expect(bits(0x4000_0000, SZ_2M, SZ_2M, 1)).toEqual([0]);
    expect(bits(HUGE, 2 * SZ_2M, SZ_2M, 1)).toEqual([1]);
    // 4 KiB granules over the huge mapping: a dirty 2 MiB leaf sets all 512 bits of its granules.
    expect(bits(HUGE, 2 * SZ_2M, PAGE)).toEqual(Array.from({ length: 512 }, (_, i) => 512 + i));
    expect(bits(0x4000_0000, SZ_2M, PAGE)).toEqual([7]);
  });

  it('a bitmap the process cannot write is EFAULT, but only when a bit must be written', () => {
    const s = ready();
    expect(s.setTracking(s.hwptId, true).e).toBe('ok');
    const ro = value(s.c.proc.mmap(0, PAGE, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
    // Nothing dirty: the bitmap is never touched (iova_bitmap pins lazily).
    expect(s.getBitmap({ iova: IOVA, length: PAGES * PAGE, data: ro }).e).toBe('ok');
    expect(s.getBitmap({ iova: IOVA, length: PAGES * PAGE, data: 0 }).e).toBe('ok');
    expect(s.dma(IOVA, true)).toBe('ok');
    expect(s.getBitmap({ iova: IOVA, length: PAGES * PAGE, data: ro, flags: 1 }).e).toBe('EFAULT');
    expect(s.getBitmap({ iova: IOVA, length: PAGES * PAGE, data: 0, flags: 1 }).e).toBe('EFAULT');
    expect(s.getBitmap({ iova: IOVA, length: PAGES * PAGE, data: U64_MAX - 7n, flags: 1 }).e).toBe('EFAULT');
    // With NO_CLEAR the bit is still there for a good bitmap.
    expect(s.getBitmap({ iova: IOVA, length: PAGES * PAGE, data: s.bitmap }).e).toBe('ok');
    expect(setBits(s.read(s.bitmap, PAGES / 8))).toEqual([0]);
  });

  it('the typed API: setDirtyTracking and getDirtyBitmap go through the same dispatch', async () => {
    const api = await import('../../src/uapi/api.ts');
    const s = ready();
    const { proc, fd } = s.c;
    expect(api.getDirtyBitmap({ proc, fd, hwptId: s.hwptId, iova: IOVA, length: PAGES * PAGE }).ok).toBe(false);
    value(api.setDirtyTracking({ proc, fd, hwptId: s.hwptId, enabled: true }));
    expect(s.dma(IOVA + 12 * PAGE, true)).toBe('ok');
    expect(setBits(value(api.getDirtyBitmap({ proc, fd, hwptId: s.hwptId, iova: IOVA, length: PAGES * PAGE, noClear: true })))).toEqual([12]);
    expect(setBits(value(api.getDirtyBitmap({ proc, fd, hwptId: s.hwptId, iova: IOVA, length: PAGES * PAGE })))).toEqual([12]);
    expect(setBits(value(api.getDirtyBitmap({ proc, fd, hwptId: s.hwptId, iova: IOVA, length: PAGES * PAGE })))).toEqual([]);
    const e = api.setDirtyTracking({ proc, fd, hwptId: s.plainHwptId, enabled: true });
    expect(e.ok ? 'ok' : e.errno).toBe('EOPNOTSUPP');
  });
});
