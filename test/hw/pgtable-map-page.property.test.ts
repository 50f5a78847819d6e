import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { IoPageTable } from '../../src/hw/iommu/pgtable/builder.ts';
import { newMemory, tableAllocator } from '../support/hw-bench.ts';

const PAGE = 4096;
const MiB = 2 ** 20;
const GiB = 2 ** 30;

// mapPage() (one walk) against what the domain did before it: a lookup for an existing leaf, then map()
// of 4 KiB. Two tables take the same random maps (4 KiB, 2 MiB, 1 GiB), unmaps and single-page maps,
// with a small table allocator so that some run out of memory; results, translations and table counts
// must stay the same.
describe('IoPageTable.mapPage', () => {
  const op = fc.record({
    kind: fc.constantFrom('page', 'page', 'page', 'map', 'unmap'),
    unit: fc.constantFrom(PAGE, 2 * MiB, GiB),
    at: fc.nat({ max: 2 * GiB / PAGE - 1 }),
    pages: fc.integer({ min: 1, max: 8 }),
  });

  // Within a few 2 MiB slots, consecutive single-page maps reuse the last walk (mapPage()'s walk cache),
  // and unmaps and out-of-memory failures free the tables under it.
  const near = fc.record({
    kind: fc.constantFrom('page', 'page', 'page', 'map', 'unmap'),
    unit: fc.constantFrom(PAGE, PAGE, 2 * MiB),
    at: fc.nat({ max: 8 * MiB / PAGE - 1 }),
    pages: fc.integer({ min: 1, max: 8 }),
  });

  it.each([
    ['second', 'anywhere', op], ['first', 'anywhere', op], ['second', 'in a few 2 MiB slots', near], ['first', 'in a few 2 MiB slots', near],
  ] as const)('%s stage, %s: same as lookup + map of 4 KiB', (format, _where, opArb) => {
    fc.assert(fc.property(fc.array(opArb, { maxLength: 30 }), fc.integer({ min: 2, max: 30 }), (ops, frames) => {
      const make = (base: number): IoPageTable => {
        const mem = newMemory(8 * GiB);
        return new IoPageTable(mem, tableAllocator(mem, base, frames * PAGE), { format, levels: 4, pageSize2M: true, pageSize1G: true });
      };
      const a = make(0x1000_0000);
      const b = make(0x1000_0000);
      const probes: number[] = [];
      for (const o of ops) {
        const iova = Math.floor((o.at * PAGE) / o.unit) * o.unit;
        const pa = 0x2_0000_0000 + iova;
        probes.push(iova);
        if (o.kind === 'page') {
          const general = a.lookup(iova) !== null ? 0 : a.map(iova, pa, PAGE, { read: true, write: true }) ? 1 : -1;
          if (general < 0) a.unmap(iova, PAGE);
          const fast = b.mapPage(iova, pa, { read: true, write: true });
          if (fast < 0) b.unmap(iova, PAGE);
          expect(fast).toBe(general);
        } else if (o.kind === 'map') {
          expect(b.map(iova, pa, o.unit * o.pages, { read: true, write: false })).toBe(a.map(iova, pa, o.unit * o.pages, { read: true, write: false }));
        } else {
          try {
            a.unmap(iova, o.unit * o.pages);
          } catch {
            expect(() => b.unmap(iova, o.unit * o.pages)).toThrow();
            continue;
          }
          b.unmap(iova, o.unit * o.pages);
        }
        expect(b.tableBytes).toBe(a.tableBytes);
      }
      for (const p of probes) expect(b.lookup(p)).toEqual(a.lookup(p));
    }), { numRuns: 200 });
  });

  // unmap() of one 4 KiB leaf takes its own walk (clear, then free the emptied tables of the path): the
  // table must end up as the same pages mapped into a fresh table would leave it.
  it('one-page unmaps leave the tables a fresh map of the remaining pages has', () => {
    const op = fc.record({ unmap: fc.boolean(), at: fc.nat({ max: 3 * 512 - 1 }), far: fc.boolean() });
    fc.assert(fc.property(fc.array(op, { maxLength: 80 }), (ops) => {
      const make = (): IoPageTable => {
        const mem = newMemory(8 * GiB);
        return new IoPageTable(mem, tableAllocator(mem), { format: 'second', levels: 4, pageSize2M: true, pageSize1G: true });
      };
      const pt = make();
      const model = new Set<number>();
      for (const o of ops) {
        // Pages in three leaf tables, and some under another level-3 table (512 GiB away).
        const iova = (o.far ? 512 * GiB : GiB) + o.at * PAGE;
        if (o.unmap) {
          expect(pt.unmap(iova, PAGE)).toBe(model.has(iova) ? PAGE : 0);
          model.delete(iova);
        } else if (!model.has(iova)) {
          expect(pt.mapPage(iova, 0x2_0000_0000 + iova, { read: true, write: true })).toBe(1);
          model.add(iova);
        }
        const fresh = make();
        for (const m of [...model].sort((x, y) => x - y)) fresh.map(m, 0x2_0000_0000 + m, PAGE, { read: true, write: true });
        expect(pt.tableBytes).toBe(fresh.tableBytes);
        expect(pt.emptyTableBytes()).toBe(0);
        expect(pt.lookup(iova)).toEqual(fresh.lookup(iova));
      }
    }), { numRuns: 100 });
  });
});
