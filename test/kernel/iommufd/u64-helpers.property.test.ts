// Property: the typed-array forms the map path uses instead of bigint operations agree with them for
// every u64: u64ToNumber() is Number() (rounding above 2^53 included), u64ToSafeNumber() is Number() up to
// MAX_SAFE_INTEGER and -1 above, isU64Max() is `>= ULONG_MAX`; at the edges of each 32-bit half too.

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { isU64Max, u64ToNumber, u64ToSafeNumber, U64_MAX } from '../../../src/kernel/iommufd/iova-intervals.ts';

describe('u64 helpers', () => {
  const same = (v: bigint): void => {
    expect(u64ToNumber(v)).toBe(Number(v));
    expect(u64ToSafeNumber(v)).toBe(v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : -1);
    expect(isU64Max(v)).toBe(v >= U64_MAX);
  };

  it('agree on random u64 values', () => {
    fc.assert(fc.property(fc.bigInt({ min: 0n, max: U64_MAX }), same), { numRuns: 2000 });
    fc.assert(fc.property(fc.bigInt({ min: 0n, max: 2n ** 54n }), same), { numRuns: 2000 });
  });

  it('agree at the edges', () => {
    const edges = [0n, 1n, 4095n, 4096n, 2n ** 31n, 2n ** 32n - 1n, 2n ** 32n, 2n ** 52n, 2n ** 53n - 1n, 2n ** 53n, 2n ** 53n + 1n,
      2n ** 53n + 3n, 2n ** 63n, 2n ** 64n - 4096n, 2n ** 64n - 2n ** 32n, U64_MAX - 2n ** 32n, U64_MAX - 1n, U64_MAX];
    for (const v of edges) same(v);
  });
});
