// Property: u64ToNumber() (a typed-array conversion, the fast form the map path uses) is Number() for
// every u64, including the rounding above 2^53 and the edges of each 32-bit half.

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { u64ToNumber, U64_MAX } from '../../../src/kernel/iommufd/iova-intervals.ts';

describe('u64ToNumber', () => {
  it('equals Number() on random u64 values', () => {
    fc.assert(fc.property(fc.bigInt({ min: 0n, max: U64_MAX }), (v) => {
      expect(u64ToNumber(v)).toBe(Number(v));
    }), { numRuns: 2000 });
  });

  it('equals Number() at the edges', () => {
    const edges = [0n, 1n, 4095n, 4096n, 2n ** 31n, 2n ** 32n - 1n, 2n ** 32n, 2n ** 52n, 2n ** 53n - 1n, 2n ** 53n, 2n ** 53n + 1n,
      2n ** 53n + 3n, 2n ** 63n, 2n ** 64n - 4096n, U64_MAX - 1n, U64_MAX];
    for (const v of edges) expect(u64ToNumber(v)).toBe(Number(v));
  });
});
