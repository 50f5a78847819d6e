// Property: RangeUsers (one segment held in a field until a second one appears) is the per-page user
// count it stands for: counts, minimum, unused parts, freed parts and merged segments agree with a plain
// array over random adds, one-page adds and removals, on storages of one page and of several.

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { RangeUsers } from '../../../src/kernel/iommufd/range-users.ts';

type Op = { first: number; len: number; delta: 1 | -1; one: boolean };

const runsOf = (model: number[], first: number, last: number, pick: (c: number) => boolean): [number, number][] => {
  const out: [number, number][] = [];
  for (let i = first; i <= last; i++) {
    if (!pick(model[i] as number)) continue;
    const prev = out[out.length - 1];
    if (prev !== undefined && prev[1] === i) prev[1] = i + 1;
    else out.push([i, i + 1]);
  }
  return out;
};

describe('RangeUsers', () => {
  it.each([1, 9])('matches per-page counts (%i pages)', (npages) => {
    const opArb: fc.Arbitrary<Op> = fc.record({
      first: fc.nat(npages - 1), len: fc.integer({ min: 1, max: npages }), delta: fc.constantFrom(1 as const, -1 as const), one: fc.boolean(),
    });
    fc.assert(fc.property(fc.array(opArb, { maxLength: 50 }), (ops) => {
      const u = new RangeUsers(npages);
      const model = new Array<number>(npages).fill(0);
      for (const o of ops) {
        const first = o.first;
        const last = o.one ? first : Math.min(npages - 1, first + o.len - 1);
        let ok = true;
        for (let i = first; i <= last; i++) if ((model[i] as number) + o.delta < 0) ok = false;
        // Going below zero is a bug (it throws part-way); the callers never ask for it.
        if (!ok) continue;
        for (let i = first; i <= last; i++) model[i] = (model[i] as number) + o.delta;
        if (o.one) expect(u.addOne(first, o.delta)).toBe(model[first]);
        else expect(u.add(first, last, o.delta)).toEqual(o.delta < 0 ? runsOf(model, first, last, (c) => c === 0) : []);
        for (let i = 0; i < npages; i++) expect(u.count(i)).toBe(model[i]);
        expect(u.minUsers(first, last)).toBe(Math.min(...model.slice(first, last + 1)));
        expect(u.unused(0, npages - 1)).toEqual(runsOf(model, 0, npages - 1, (c) => c === 0));
      }
    }), { numRuns: 300 });
  });
});
