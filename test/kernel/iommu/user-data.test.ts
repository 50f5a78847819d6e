// struct iommu_user_data(_array) and the copy helpers of include/linux/iommu.h: the errno of each rule,
// over a user memory of a few mapped bytes (anything else is EFAULT).

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { fail, ok, type Result } from '../../../src/kernel/errno.ts';
import {
  copyStructFromFullUserArray, copyStructFromUser, copyStructFromUserArray, copyStructToUser, type IommuUserData, type IommuUserDataArray,
} from '../../../src/kernel/iommu/user-data.ts';

const BASE = 0x1000;
const SIZE = 256;
const TYPE = 0xdead;

/** A user memory of SIZE bytes at BASE. */
function userMemory(init: readonly number[] = []) {
  const mem = new Uint8Array(SIZE);
  mem.set(init);
  const inside = (a: number, n: number) => a >= BASE && a + n <= BASE + SIZE;
  const read = (a: number, d: Uint8Array): Result => {
    if (!inside(a, d.length)) return fail('EFAULT', 'unmapped');
    d.set(mem.subarray(a - BASE, a - BASE + d.length));
    return ok();
  };
  const write = (a: number, s: Uint8Array): Result => {
    if (!inside(a, s.length)) return fail('EFAULT', 'unmapped');
    mem.set(s, a - BASE);
    return ok();
  };
  const data = (len: number, o: { type?: number; at?: number } = {}): IommuUserData =>
    ({ type: o.type ?? TYPE, uptr: BigInt(o.at ?? BASE), len, read, write });
  const array = (entryLen: number, entryNum: number, o: { type?: number; at?: number } = {}): IommuUserDataArray =>
    ({ type: o.type ?? TYPE, uptr: BigInt(o.at ?? BASE), entryLen, entryNum, read });
  return { mem, data, array };
}
const errno = (r: Result<unknown>): string => (r.ok ? 'ok' : r.errno);

describe('iommu_copy_struct_from_user', () => {
  it('type EINVAL; len below min or above the kernel size EINVAL (a longer struct is refused, even with a zero tail); EFAULT; shorter zero-extended', () => {
    const u = userMemory([1, 2, 3, 4, 5, 6, 7, 8, 0, 0, 0, 0]);
    expect(errno(copyStructFromUser(u.data(8, { type: 1 }), TYPE, 8, 4))).toBe('EINVAL');
    expect(errno(copyStructFromUser(u.data(3), TYPE, 8, 4))).toBe('EINVAL');
    expect(errno(copyStructFromUser(u.data(12), TYPE, 8, 4))).toBe('EINVAL');
    expect(errno(copyStructFromUser(u.data(8, { at: BASE + SIZE - 4 }), TYPE, 8, 4))).toBe('EFAULT');
    expect([...(copyStructFromUser(u.data(4), TYPE, 8, 4) as { value: Uint8Array }).value]).toEqual([1, 2, 3, 4, 0, 0, 0, 0]);
    expect([...(copyStructFromUser(u.data(8), TYPE, 8, 4) as { value: Uint8Array }).value]).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
  });

  it('the _array variant: entry_num 0 or an index past it EINVAL; entry i from uptr + i * entry_len', () => {
    const u = userMemory([1, 0, 0, 0, 2, 0, 0, 0]);
    expect(errno(copyStructFromUserArray(u.array(4, 0), TYPE, 0, 4, 4))).toBe('EINVAL');
    expect(errno(copyStructFromUserArray(u.array(4, 2), TYPE, 2, 4, 4))).toBe('EINVAL');
    expect([...(copyStructFromUserArray(u.array(4, 2), TYPE, 1, 4, 4) as { value: Uint8Array }).value]).toEqual([2, 0, 0, 0]);
    expect(errno(copyStructFromUserArray(u.array(5, 1), TYPE, 0, 4, 4))).toBe('EINVAL');
  });
});

describe('iommu_copy_struct_from_full_user_array', () => {
  it('type and entry_num 0 EINVAL; a shorter entry zero-extended (no minimum); a longer one zero-tailed or E2BIG; EFAULT', () => {
    const u = userMemory([1, 2, 0, 3, 4, 0, 5, 6, 7]);
    expect(errno(copyStructFromFullUserArray(u.array(3, 1, { type: 1 }), TYPE, 2))).toBe('EINVAL');
    expect(errno(copyStructFromFullUserArray(u.array(3, 0), TYPE, 2))).toBe('EINVAL');
    expect([...(copyStructFromFullUserArray(u.array(3, 2), TYPE, 2) as { value: Uint8Array }).value]).toEqual([1, 2, 3, 4]);
    expect([...(copyStructFromFullUserArray(u.array(1, 2), TYPE, 2) as { value: Uint8Array }).value]).toEqual([1, 0, 2, 0]);
    expect(errno(copyStructFromFullUserArray(u.array(3, 3), TYPE, 2))).toBe('E2BIG');
    expect(errno(copyStructFromFullUserArray(u.array(2, 2, { at: BASE + SIZE - 2 }), TYPE, 2))).toBe('EFAULT');
  });

  it('with entry_len = the kernel size it is every entry as stored (property)', () => {
    fc.assert(fc.property(fc.integer({ min: 1, max: 16 }), fc.integer({ min: 1, max: 8 }), fc.uint8Array({ minLength: SIZE, maxLength: SIZE }), (len, n, bytes) => {
      const u = userMemory([...bytes]);
      const r = copyStructFromFullUserArray(u.array(len, n), TYPE, len);
      expect(r.ok).toBe(true);
      expect([...(r as { value: Uint8Array }).value]).toEqual([...bytes.subarray(0, len * n)]);
    }));
  });
});

describe('iommu_copy_struct_to_user', () => {
  it('type EINVAL; len outside [min, kernel size] EINVAL; the first len bytes written; EFAULT', () => {
    const u = userMemory();
    const k = new Uint8Array([9, 8, 7, 6, 5, 4, 3, 2]);
    expect(errno(copyStructToUser(u.data(8, { type: 1 }), TYPE, k, 4))).toBe('EINVAL');
    expect(errno(copyStructToUser(u.data(3), TYPE, k, 4))).toBe('EINVAL');
    expect(errno(copyStructToUser(u.data(9), TYPE, k, 4))).toBe('EINVAL');
    expect(errno(copyStructToUser(u.data(6), TYPE, k, 4))).toBe('ok');
    expect([...u.mem.subarray(0, 8)]).toEqual([9, 8, 7, 6, 5, 4, 0, 0]);
    expect(errno(copyStructToUser(u.data(8, { at: BASE + SIZE - 4 }), TYPE, k, 4))).toBe('EFAULT');
  });
});
