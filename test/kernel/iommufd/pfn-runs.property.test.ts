// Property: PinnedRuns (its only run kept inline until a second one is needed) records exactly the frames
// inserted, page by page, over random inserts and removals; removeOne(at) leaves the same runs as
// remove(at, 1) and returns the frame remove() reports.

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { NO_PFN, PinnedRuns, runPfns } from '../../../src/kernel/iommufd/pfn-runs.ts';

const PAGES = 48;

type Op = { op: 'insert'; at: number; count: number; pfn: number } | { op: 'remove'; at: number; count: number } | { op: 'removeOne'; at: number };

const opArb: fc.Arbitrary<Op> = fc.oneof(
  fc.record({ op: fc.constant('insert' as const), at: fc.nat(PAGES - 1), count: fc.integer({ min: 1, max: 6 }), pfn: fc.constantFrom(100, 200, 300, 1000) }),
  fc.record({ op: fc.constant('remove' as const), at: fc.nat(PAGES - 1), count: fc.integer({ min: 1, max: 8 }) }),
  fc.record({ op: fc.constant('removeOne' as const), at: fc.nat(PAGES - 1) }),
);

describe('PinnedRuns', () => {
  it('matches a per-page map; removeOne is remove(at, 1)', () => {
    fc.assert(fc.property(fc.array(opArb, { maxLength: 60 }), (ops) => {
      const a = new PinnedRuns();
      const b = new PinnedRuns();
      const ref = new Map<number, number>();
      for (const o of ops) {
        if (o.op === 'insert') {
          const count = Math.min(o.count, PAGES - o.at);
          let free = true;
          for (let k = 0; k < count; k++) if (ref.has(o.at + k)) free = false;
          // Frames follow the page index, so neighbouring inserts may merge into one run.
          const pfn = o.pfn + o.at;
          if (!free) {
            expect(() => a.insert(o.at, pfn, count)).toThrow();
            continue;
          }
          a.insert(o.at, pfn, count);
          b.insert(o.at, pfn, count);
          for (let k = 0; k < count; k++) ref.set(o.at + k, pfn + k);
        } else if (o.op === 'remove') {
          const got = runPfns(a.remove(o.at, o.count));
          runPfns(b.remove(o.at, o.count));
          const want: number[] = [];
          for (let k = o.at; k < o.at + o.count; k++) {
            const f = ref.get(k);
            if (f !== undefined) want.push(f);
            ref.delete(k);
          }
          expect(got).toEqual(want);
        } else {
          const viaRemove = runPfns(a.remove(o.at, 1));
          const one = b.removeOne(o.at);
          expect(one).toBe(viaRemove[0] ?? NO_PFN);
          expect(one).toBe(ref.get(o.at) ?? NO_PFN);
          ref.delete(o.at);
        }
        expect(b.slice(0, PAGES - 1)).toEqual(a.slice(0, PAGES - 1));
        expect(b.runCount).toBe(a.runCount);
      }
      for (let k = 0; k < PAGES; k++) expect(a.pfnAt(k)).toBe(ref.get(k) ?? NO_PFN);
      const all = a.slice(0, PAGES - 1);
      for (let k = 1; k < all.length; k++) {
        const p = all[k - 1];
        const q = all[k];
        expect(p !== undefined && q !== undefined && p.index + p.count <= q.index).toBe(true);
      }
    }), { numRuns: 400 });
  });
});
