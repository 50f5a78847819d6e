import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Iotlb, SIZE_1G, SIZE_2M } from '../../src/hw/iommu/iotlb.ts';
import { LruIndex } from '../../src/hw/iommu/lru.ts';
import { iotlbTag } from '../../src/hw/iommu/pasid-cache.ts';

const SIZE_4K = 4096;

// A short IOTLB range invalidation looks its keys up; it must remove exactly the entries the slot scan
// removes (same DID and PASID, overlapping the range, whatever their page size), in the same slot order,
// so that later inserts reuse the same slots.
describe('Iotlb.invalidateRange by key lookup', () => {
  const entry = fc.record({
    did: fc.integer({ min: 1, max: 2 }),
    pasid: fc.integer({ min: 0, max: 1 }),
    size: fc.constantFrom(SIZE_4K, SIZE_4K, SIZE_2M, SIZE_1G),
    // Pages within the first 3 GiB, so that ranges, 2 MiB and 1 GiB entries overlap.
    page: fc.nat({ max: 3 * SIZE_1G / SIZE_4K - 1 }),
  });
  const insert = (t: Iotlb, e: { did: number; pasid: number; size: number; page: number }): number => {
    const tag = iotlbTag(e.did, e.pasid);
    const iova = e.page * SIZE_4K;
    return t.insert(tag, LruIndex.mixA(tag), e.did, e.pasid, iova, 0x1_0000_0000 + iova, e.size, 3);
  };

  it('equals the scan over every slot', () => {
    fc.assert(fc.property(
      fc.array(entry, { maxLength: 60 }), fc.array(fc.record({ did: fc.integer({ min: 1, max: 2 }), pasid: fc.integer({ min: 0, max: 1 }), near: fc.nat({ max: 59 }), off: fc.integer({ min: -600, max: 600 }), pages: fc.integer({ min: 0, max: 64 }) }), { maxLength: 8 }),
      fc.array(entry, { maxLength: 10 }),
      (entries, ranges, later) => {
        const fast = new Iotlb(32);
        const scan = new Iotlb(32);
        for (const e of entries) expect(insert(fast, e)).toBe(insert(scan, e));
        for (const r of ranges) {
          // Ranges near inserted entries (or anywhere when there are none), so that they hit some.
          const anchor = entries.length > 0 ? (entries[r.near % entries.length] as { page: number }).page : 0;
          const first = Math.max(0, anchor + r.off);
          fast.invalidateRange(r.did, r.pasid, first, r.pages);
          // The reference: the slot scan, in slot order.
          const start = first * SIZE_4K;
          const end = (first + r.pages) * SIZE_4K;
          for (let s = 0; s < scan.capacity; s++) {
            if (!scan.slots().includes(s) || scan.did[s] !== r.did || scan.pasid[s] !== r.pasid) continue;
            const base = scan.iovaBase[s] as number;
            if (base < end && base + (scan.pageSize[s] as number) > start) scan.remove(s);
          }
          expect(fast.slots()).toEqual(scan.slots());
        }
        for (const e of later) expect(insert(fast, e)).toBe(insert(scan, e));
        expect(fast.slots()).toEqual(scan.slots());
      },
    ), { numRuns: 300 });
  });
});
