// Property: IntervalMap (whose columns move the shorter side on insert and removal, so intervals sit at a
// moving offset) answers every query exactly as a plain sorted array of intervals does, over random
// inserts and removals at the front, the back and the middle.

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { IntervalMap, ULONG_MAX } from '../../../src/kernel/iommufd/iova-intervals.ts';

type Op = { op: 'insert'; slot: number; len: number; high: boolean } | { op: 'remove'; pick: number; front: boolean };

const opArb: fc.Arbitrary<Op> = fc.oneof(
  fc.record({ op: fc.constant('insert' as const), slot: fc.nat(400), len: fc.integer({ min: 1, max: 3 }), high: fc.boolean() }),
  fc.record({ op: fc.constant('remove' as const), pick: fc.nat(), front: fc.boolean() }),
);

interface Ref { start: bigint; last: bigint; v: number }

describe('IntervalMap', () => {
  it('matches a sorted-array reference', () => {
    fc.assert(fc.property(fc.array(opArb, { maxLength: 300 }), (ops) => {
      const m = new IntervalMap<number>();
      const ref: Ref[] = [];
      let next = 0;
      for (const o of ops) {
        if (o.op === 'insert') {
          const base = o.high ? ULONG_MAX - 4096n : 0x1000n;
          const start = base + BigInt(o.slot) * 4n;
          const last = start + BigInt(o.len) - 1n;
          if (ref.some((r) => r.start <= last && r.last >= start)) continue;
          const v = next++;
          const i = m.insert(start, last, v);
          let k = 0;
          while (k < ref.length && (ref[k] as Ref).start < start) k++;
          ref.splice(k, 0, { start, last, v });
          expect(i).toBe(k);
        } else if (ref.length > 0) {
          const i = o.front ? o.pick % Math.min(3, ref.length) : o.pick % ref.length;
          expect(m.removeAt(i)).toBe((ref[i] as Ref).v);
          ref.splice(i, 1);
        }
        expect(m.size).toBe(ref.length);
      }
      for (let i = 0; i < ref.length; i++) {
        const r = ref[i] as Ref;
        expect([m.start(i), m.last(i), m.value(i)]).toEqual([r.start, r.last, r.v]);
        expect(m.indexOf(r.start)).toBe(i);
        expect(m.indexOf(r.last)).toBe(i);
        expect(m.firstStartingAfter(r.start)).toBe(i + 1);
        expect(m.firstEndingAtOrAfter(r.last + 1n)).toBe(i + 1);
      }
      expect([...m.entries()].map(([s, l, v]) => ({ start: s, last: l, v }))).toEqual(ref);
      // The free-gap summaries agree with a scan of the gaps.
      for (const need of [1n, 2n, 5n, 1n << 40n]) {
        let want = ref.length;
        for (let j = 1; j < ref.length; j++) {
          if ((ref[j] as Ref).start - (ref[j - 1] as Ref).last - 1n >= need) { want = j; break; }
        }
        expect(m.nextGapAtLeast(1, need, ref.length)).toBe(want);
      }
    }), { numRuns: 300 });
  });
});
