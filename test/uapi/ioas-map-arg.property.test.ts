// ioasMap() writes IOMMU_IOAS_MAP's struct field by field (ioas-map-arg.ts). Properties:
// - whenever writeMapArg() takes the values, its bytes are the generic encoder's bytes of the same call
//   (over a buffer holding garbage: every byte is written);
// - it declines exactly the values the generic path would not encode as plain safe integers, and then
//   ioasMap() behaves as before (the generic path encodes, or throws the same RangeError).

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { writeMapArg } from '../../src/uapi/ioas-map-arg.ts';
import { iommu_ioas_map } from '../../src/uapi/iommufd-structs.ts';

const U64_MAX = (1n << 64n) - 1n;

/** What ioctlField() encodes for the call (encodeArg: zeroed, fields, then size). */
function generic(flags: number, ioasId: number, userVa: number | bigint, length: number | bigint, iova: number | bigint | undefined): Uint8Array | 'throws' {
  try {
    const b = new Uint8Array(iommu_ioas_map.sizeof);
    iommu_ioas_map.encodeAt({ flags, ioas_id: ioasId, user_va: BigInt(userVa), length: BigInt(length), iova: iova === undefined ? 0n : BigInt(iova) }, b, 0);
    iommu_ioas_map.encodeAt({ size: iommu_ioas_map.sizeof }, b, 0);
    return b;
  } catch {
    return 'throws';
  }
}

const u64ish = fc.oneof(
  fc.integer({ min: 0, max: 2 ** 32 }),
  fc.constantFrom(0, 4096, 2 ** 32 - 1, 2 ** 32, 2 ** 53 - 1, 2 ** 53, 2 ** 60, -1, 0.5, Number.NaN),
  fc.bigInt({ min: 0n, max: U64_MAX }),
  fc.constantFrom(-1n, U64_MAX + 1n, U64_MAX, 1n << 53n),
);

describe('writeMapArg equals the generic IOMMU_IOAS_MAP encoding', () => {
  it('same bytes whenever it takes the values; declines only values that are not plain', () => {
    fc.assert(fc.property(
      fc.integer({ min: 0, max: 7 }), fc.oneof(fc.nat(), fc.constantFrom(-1, 2 ** 32, 1.5)), u64ish, u64ish, fc.option(u64ish, { nil: undefined }),
      fc.uint8Array({ minLength: 64, maxLength: 64 }),
      (flags, ioasId, userVa, length, iova, garbage) => {
        const b = garbage.slice();
        const took = writeMapArg(b, flags, ioasId, userVa, length, iova);
        const want = generic(flags, ioasId, userVa, length, iova);
        const plain = (v: number | bigint | undefined): boolean =>
          v === undefined || (typeof v === 'bigint' ? v >= 0n && v <= U64_MAX : Number.isSafeInteger(v) && v >= 0);
        const u32 = Number.isInteger(ioasId) && ioasId >= 0 && ioasId <= 0xffff_ffff;
        expect(took).toBe(u32 && plain(userVa) && plain(length) && plain(iova));
        if (took) expect(b.subarray(0, iommu_ioas_map.sizeof)).toEqual(want);
      }), { numRuns: 2000 });
  });
});
