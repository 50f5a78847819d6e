import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { IoPageTable } from '../../src/hw/iommu/pgtable/builder.ts';
import { newMemory, tableAllocator } from '../support/hw-bench.ts';

const PAGE = 4096;
const MiB = 2 ** 20;
const GiB = 2 ** 30;

// An unmap prunes only the tables its range touches; a whole-tree prune (what every unmap used to do)
// must then find nothing left to free, so the same tables are freed and the frame counts match.
describe('IoPageTable.unmap prunes the tables of its range', () => {
  const op = fc.record({
    unmap: fc.boolean(),
    // IOVAs spread over 2 GiB (several level-2 and level-3 tables) in 4 KiB, 2 MiB or 1 GiB units.
    unit: fc.constantFrom(PAGE, 2 * MiB, GiB),
    at: fc.nat({ max: GiB / PAGE - 1 }),
    pages: fc.integer({ min: 1, max: 48 }),
  });

  it.each(['second', 'first'] as const)('%s stage: no empty table is left behind, table bytes equal frames held', (format) => {
    fc.assert(fc.property(fc.array(op, { maxLength: 25 }), fc.integer({ min: 2, max: 40 }), (ops, frames) => {
      const mem = newMemory(8 * GiB);
      // A small table allocator, so that some maps run out of memory part-way and leave empty tables.
      const alloc = tableAllocator(mem, 0x1000_0000, frames * PAGE);
      const pt = new IoPageTable(mem, alloc, { format, levels: 4, pageSize2M: true, pageSize1G: true });
      const mapped: [number, number][] = [];
      let complete = true;
      const unmapChecked = (iova: number, size: number): void => {
        try {
          pt.unmap(iova, size);
          expect(pt.emptyTableBytes()).toBe(0);
        } catch (e) {
          // Out of table memory to split a large leaf: the unmap stops part-way, and the next one
          // prunes what it left (as it always did).
          expect(e).toBeInstanceOf(RangeError);
          complete = false;
        }
      };
      for (const o of ops) {
        const iova = o.unit === PAGE ? o.at * PAGE : (o.at % (2 * GiB / o.unit)) * o.unit;
        const size = o.unit === GiB ? GiB : Math.min(o.pages * o.unit, 2 * GiB - iova);
        if (o.unmap) {
          unmapChecked(iova, size);
        } else {
          pt.map(iova, 0x2_0000_0000 + iova, size, { read: true, write: true });
          mapped.push([iova, size]);
        }
        expect(pt.tableBytes).toBe(alloc.used() * PAGE);
      }
      // Empty the table range by range (a 2 GiB unmap would step through the holes 4 KiB at a time).
      for (const [iova, size] of mapped) unmapChecked(iova, size);
      if (complete) expect(pt.tableBytes).toBe(PAGE);
      expect(pt.tableBytes).toBe(alloc.used() * PAGE);
    }), { numRuns: 40 });
  });

  it('a run of one-page unmaps frees each table once it is empty', () => {
    const mem = newMemory(8 * GiB);
    const alloc = tableAllocator(mem);
    const pt = new IoPageTable(mem, alloc, { format: 'second', levels: 4 });
    const n = 1024 + 7; // three leaf tables, the last one partly used
    for (let i = 0; i < n; i++) expect(pt.map(GiB + i * PAGE, 0x1_0000_0000 + i * PAGE, PAGE, { read: true, write: true })).toBe(true);
    expect(pt.tableBytes).toBe((1 + 1 + 1 + 3) * PAGE);
    for (let i = 0; i < n; i++) {
      expect(pt.unmap(GiB + i * PAGE, PAGE)).toBe(PAGE);
      // Pages i+1 .. n-1 remain: their leaf tables, and the level-3 and level-2 tables above while any do.
      const leafTables = i + 1 < n ? Math.floor((n - 1) / 512) - Math.floor((i + 1) / 512) + 1 : 0;
      expect(pt.tableBytes).toBe((1 + (leafTables > 0 ? 2 + leafTables : 0)) * PAGE);
      expect(pt.emptyTableBytes()).toBe(0);
    }
    expect(pt.tableBytes).toBe(PAGE);
  });
});
