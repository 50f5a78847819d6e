import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { MAP_ANONYMOUS, MAP_FIXED, MAP_PRIVATE, PROT_READ, PROT_WRITE } from '../../src/kernel/mm/mman.ts';
import { checkZeroedUser, copyStructFromUser, copyStructToUser } from '../../src/uapi/copy-struct.ts';
import { iommu_destroy, iommu_ioas_map } from '../../src/uapi/iommufd-structs.ts';
import { IOMMUFD_IOCTLS } from '../../src/uapi/ioctl-table.ts';
import { errno, machine, P, readBack, value } from '../kernel/mm/helpers.ts';

const RW = PROT_READ | PROT_WRITE;
const ANON = MAP_PRIVATE | MAP_ANONYMOUS;
const MAP_MIN = IOMMUFD_IOCTLS.find((o) => o.name === 'IOMMU_IOAS_MAP')!.minSize;

/** A process with two RW pages at `va` and nothing mapped after them. */
function setup() {
  const m = machine(32);
  const p = m.table.spawn();
  const va = value(p.mm.mmap(0x40_0000, 2 * P, RW, ANON | MAP_FIXED, null, 0));
  return { mm: p.mm, va };
}

function put(mm: ReturnType<typeof setup>['mm'], addr: number, b: Uint8Array): void { value(mm.write(addr, b)); }

const mapArg = (size: number) => iommu_ioas_map.encode({
  size, flags: 7, ioas_id: 3, __reserved: 0, user_va: 0x1000n, length: 0x2000n, iova: 0xffff_ffff_ffff_f000n,
});

describe('copyStructFromUser', () => {
  it('accepts an exact-size struct and reports the user size', () => {
    const { mm, va } = setup();
    put(mm, va, mapArg(40));
    const r = value(copyStructFromUser(mm, va, iommu_ioas_map, MAP_MIN));
    expect(r.userSize).toBe(40);
    expect(r.value).toMatchObject({ size: 40, flags: 7, ioas_id: 3, iova: 0xffff_ffff_ffff_f000n });
  });

  it('EINVAL below the minimum size', () => {
    const { mm, va } = setup();
    put(mm, va, mapArg(MAP_MIN - 1));
    expect(errno(copyStructFromUser(mm, va, iommu_ioas_map, MAP_MIN))).toBe('EINVAL');
  });

  it('accepts a larger struct whose tail is zero, and E2BIG when it is not', () => {
    const { mm, va } = setup();
    const big = new Uint8Array(64);
    big.set(mapArg(64));
    put(mm, va, big);
    expect(value(copyStructFromUser(mm, va, iommu_ioas_map, MAP_MIN)).userSize).toBe(64);
    put(mm, va + 63, Uint8Array.of(1));
    expect(errno(copyStructFromUser(mm, va, iommu_ioas_map, MAP_MIN))).toBe('E2BIG');
  });

  it('zero-extends a short but valid size (bytes past size are not read)', () => {
    const { mm, va } = setup();
    const d = iommu_destroy.encode({ size: 8, id: 9 });
    // a struct with a later optional field: use ioas_map with minSize lowered to 24, garbage after byte 24
    const b = mapArg(24);
    b.fill(0xee, 24);
    put(mm, va, b);
    const r = value(copyStructFromUser(mm, va, iommu_ioas_map, 24));
    expect(r.value.user_va).toBe(0x1000n);
    expect(r.value.length).toBe(0n);
    expect(r.value.iova).toBe(0n);
    expect([...r.bytes.subarray(24)]).toEqual(new Array(16).fill(0));
    put(mm, va, d);
    expect(value(copyStructFromUser(mm, va, iommu_destroy, 8)).value).toEqual({ size: 8, id: 9 });
  });

  it('EFAULT for an unmapped pointer', () => {
    const { mm } = setup();
    expect(errno(copyStructFromUser(mm, 0x1000_0000, iommu_ioas_map, MAP_MIN))).toBe('EFAULT');
  });

  it('EFAULT when the size is readable but the struct runs into an unmapped page', () => {
    const { mm, va } = setup();
    const end = va + 2 * P;
    put(mm, end - 8, mapArg(40).subarray(0, 8));
    expect(errno(copyStructFromUser(mm, end - 8, iommu_ioas_map, MAP_MIN))).toBe('EFAULT');
  });

  it('EFAULT when the oversized tail runs into an unmapped page', () => {
    const { mm, va } = setup();
    const at = va + 2 * P - 48;
    put(mm, at, mapArg(40 + 4096));
    expect(errno(copyStructFromUser(mm, at, iommu_ioas_map, MAP_MIN))).toBe('EFAULT');
  });

  it('property: sizes in [min, sizeof] always decode to the zero-extended prefix', () => {
    const { mm, va } = setup();
    fc.assert(fc.property(fc.integer({ min: MAP_MIN, max: 80 }), fc.uint8Array({ minLength: 80, maxLength: 80 }), (size, raw) => {
      const b = raw.slice();
      new DataView(b.buffer).setUint32(0, size, true);
      if (size > 40) b.fill(0, 40);
      put(mm, va, b);
      const r = value(copyStructFromUser(mm, va, iommu_ioas_map, MAP_MIN));
      const expected = new Uint8Array(40);
      expected.set(b.subarray(0, Math.min(size, 40)));
      expect(r.bytes).toEqual(expected);
    }), { numRuns: 100 });
  });
});

describe('copyStructToUser', () => {
  it('writes back min(userSize, sizeof) bytes', () => {
    const { mm, va } = setup();
    put(mm, va, new Uint8Array(64).fill(0xaa));
    const v = { ...iommu_ioas_map.zero(), size: 64, iova: 5n };
    value(copyStructToUser(mm, va, iommu_ioas_map, v, 64));
    const back = readBack(mm, va, 64);
    expect(iommu_ioas_map.decode(back).iova).toBe(5n);
    expect([...back.subarray(40)]).toEqual(new Array(24).fill(0xaa));
    put(mm, va, new Uint8Array(64).fill(0xaa));
    value(copyStructToUser(mm, va, iommu_ioas_map, v, 24));
    expect([...readBack(mm, va, 40).subarray(24)]).toEqual(new Array(16).fill(0xaa));
  });

  it('EFAULT on an unwritable destination', () => {
    const { mm } = setup();
    expect(errno(copyStructToUser(mm, 0x1000_0000, iommu_destroy, { size: 8, id: 1 }, 8))).toBe('EFAULT');
  });
});

describe('checkZeroedUser', () => {
  it('scans large ranges in chunks', () => {
    const { mm, va } = setup();
    expect(value(checkZeroedUser(mm, va, 2 * P))).toBe(true);
    expect(errno(checkZeroedUser(mm, va, 2 * P + 1))).toBe('EFAULT');
    put(mm, va + P + 100, Uint8Array.of(1));
    expect(value(checkZeroedUser(mm, va, 2 * P))).toBe(false);
    // Like the kernel's word-by-word scan, a non-zero byte found before the fault decides.
    expect(value(checkZeroedUser(mm, va, 2 * P + 1))).toBe(false);
  });
});
