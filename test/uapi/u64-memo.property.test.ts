// getU64 and u64Big hand back memoized bigints for values seen recently (le-scalars.ts). Property: on
// random sequences of values, with repeats and colliding slots, each answer is exactly BigInt(n) (and
// u64Big throws BigInt's RangeError for a number that is not an integer).

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { getU64, storeU64, u64Big } from '../../src/uapi/le-scalars.ts';

const value = fc.oneof(
  fc.integer({ min: 0, max: 2 ** 20 }).map((n) => n * 4096),
  fc.constantFrom(0, 1, 4096, 2 ** 32 - 1, 2 ** 32, 2 ** 53 - 1, 0x40000000, 0x7f0000001000),
  fc.maxSafeNat(),
);

describe('memoized u64 bigints equal BigInt()', () => {
  it('getU64 and u64Big over random sequences with repeats', () => {
    fc.assert(fc.property(fc.array(value, { minLength: 1, maxLength: 300 }), fc.array(fc.nat(), { maxLength: 300 }), (vals, picks) => {
      const seq = [...vals, ...picks.map((i) => vals[i % vals.length] as number)];
      const b = new Uint8Array(8);
      for (const n of seq) {
        expect(u64Big(n)).toBe(BigInt(n));
        expect(storeU64(b, 0, BigInt(n))).toBe(true);
        expect(getU64(b, 0)).toBe(BigInt(n));
      }
    }), { numRuns: 200 });
  });

  it('values beyond 2^53 and odd numbers', () => {
    const b = new Uint8Array(8);
    for (const v of [2n ** 53n, 2n ** 64n - 1n, 2n ** 60n + 3n]) {
      storeU64(b, 0, v);
      expect(getU64(b, 0)).toBe(v);
    }
    expect(u64Big(2 ** 60)).toBe(2n ** 60n);
    expect(u64Big(-1)).toBe(-1n);
    expect(() => u64Big(0.5)).toThrow(RangeError);
    expect(() => u64Big(Number.NaN)).toThrow(RangeError);
  });
});
