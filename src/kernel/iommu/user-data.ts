// Driver-typed user data as the IOMMU core hands it to a driver (Linux's struct iommu_user_data and
// struct iommu_user_data_array, include/linux/iommu.h) and the copy helpers drivers use on it. One concept
// for every user: nested-domain data, vIOMMU data, paging-domain data and cache-invalidation arrays.
//
// The rules are Linux's:
//  * iommu_copy_struct_from_user(): a type other than the driver's → EINVAL; a user length below the
//    struct's first version (min) or above the kernel's size → EINVAL (a longer struct is refused outright,
//    before copy_struct_from_user could tail-check it); then copy_from_user (EFAULT), zero-extended.
//  * iommu_copy_struct_from_user_array(): entry `index` by the rules above (entry_num 0, or an index past
//    it → EINVAL).
//  * iommu_copy_struct_from_full_user_array(): type → EINVAL, entry_num 0 → EINVAL, then every entry by
//    plain copy_struct_from_user(): a shorter entry is zero-extended (no minimum), a longer one must be
//    zero past the kernel's size (E2BIG), unreadable → EFAULT.
//  * iommu_copy_struct_to_user(): type → EINVAL, length outside [min, kernel size] → EINVAL, then
//    copy_struct_to_user(): the first `len` bytes of the kernel's struct are written (EFAULT).

import { fail, ok, type Result } from '../errno.ts';

/** copy_from_user into `dest` from the calling process. */
export type UserReader = (addr: number, dest: Uint8Array) => Result;
/** copy_to_user of `src` to the calling process. */
export type UserWriter = (addr: number, src: Uint8Array) => Result;

/** struct iommu_user_data: one driver struct at `uptr`. */
export interface IommuUserData {
  readonly type: number;
  readonly uptr: bigint;
  readonly len: number;
  readonly read: UserReader;
  readonly write: UserWriter;
}

/** struct iommu_user_data_array: `entryNum` driver structs of `entryLen` bytes each from `uptr`. */
export interface IommuUserDataArray {
  readonly type: number;
  readonly uptr: bigint;
  readonly entryLen: number;
  readonly entryNum: number;
  readonly read: UserReader;
}

const CHUNK = 4096;

function userAddr(uptr: bigint, len: number): Result<number> {
  if (uptr < 0n || uptr + BigInt(len) > BigInt(Number.MAX_SAFE_INTEGER)) return fail('EFAULT', `0x${uptr.toString(16)} + ${len} is not a user address`);
  return ok(Number(uptr));
}

/** copy_struct_from_user(): `kernelSize` bytes from a `len`-byte user struct, zero-extended or tail-checked. */
function copyStructFromUserRaw(read: UserReader, uptr: bigint, len: number, kernelSize: number): Result<Uint8Array> {
  const at = userAddr(uptr, len);
  if (!at.ok) return at;
  const out = new Uint8Array(kernelSize);
  const n = Math.min(len, kernelSize);
  if (n > 0 && !read(at.value, out.subarray(0, n)).ok) return fail('EFAULT', `cannot read ${n} bytes of driver data at 0x${uptr.toString(16)}`);
  // check_zeroed_user() over the part this kernel does not know, a chunk at a time.
  for (let off = kernelSize; off < len; off += CHUNK) {
    const chunk = new Uint8Array(Math.min(CHUNK, len - off));
    if (!read(at.value + off, chunk).ok) return fail('EFAULT', `cannot read driver data at 0x${(at.value + off).toString(16)}`);
    if (chunk.some((b) => b !== 0)) return fail('E2BIG', `driver data is ${len} bytes, the kernel knows ${kernelSize}, and the rest is not zero`);
  }
  return ok(out);
}

const hexType = (t: number): string => `0x${(t >>> 0).toString(16)}`;

/** __iommu_copy_struct_from_user(): the kernel-size bytes of the user's struct, zero-extended. */
export function copyStructFromUser(src: IommuUserData, dataType: number, kernelSize: number, minSize: number): Result<Uint8Array> {
  if (src.type !== dataType) return fail('EINVAL', `data_type ${hexType(src.type)} is not the ${hexType(dataType)} this driver takes here`);
  if (src.len < minSize || src.len > kernelSize) {
    return fail('EINVAL', `data_len ${src.len} is outside [${minSize}, ${kernelSize}], the sizes this driver's struct has had`);
  }
  return copyStructFromUserRaw(src.read, src.uptr, src.len, kernelSize);
}

/** __iommu_copy_struct_from_user_array(): entry `index` of the array, by the same rules. */
export function copyStructFromUserArray(src: IommuUserDataArray, dataType: number, index: number, kernelSize: number, minSize: number): Result<Uint8Array> {
  if (src.entryNum === 0 || index >= src.entryNum) return fail('EINVAL', `entry ${index} is beyond the ${src.entryNum} entries given`);
  return copyStructFromUser(
    { type: src.type, uptr: src.uptr + BigInt(src.entryLen) * BigInt(index), len: src.entryLen, read: src.read, write: () => ok() },
    dataType, kernelSize, minSize,
  );
}

/**
 * iommu_copy_struct_from_full_user_array(): every entry, each `entrySize` kernel bytes laid end to end.
 * Entries are copied one by one with copy_struct_from_user(), so no minimum length applies.
 */
export function copyStructFromFullUserArray(src: IommuUserDataArray, dataType: number, entrySize: number): Result<Uint8Array> {
  if (src.type !== dataType) return fail('EINVAL', `data_type ${hexType(src.type)} is not the ${hexType(dataType)} this driver takes here`);
  if (src.entryNum === 0) return fail('EINVAL', 'an empty array cannot be copied');
  const out = new Uint8Array(entrySize * src.entryNum);
  for (let i = 0; i < src.entryNum; i++) {
    const e = copyStructFromUserRaw(src.read, src.uptr + BigInt(src.entryLen) * BigInt(i), src.entryLen, entrySize);
    if (!e.ok) return e;
    out.set(e.value, i * entrySize);
  }
  return ok(out);
}

/** __iommu_copy_struct_to_user(): the first `len` bytes of the kernel's `data` back to the user's struct. */
export function copyStructToUser(dst: IommuUserData, dataType: number, data: Uint8Array, minSize: number): Result {
  if (dst.type !== dataType) return fail('EINVAL', `data_type ${hexType(dst.type)} is not the ${hexType(dataType)} this driver writes here`);
  if (dst.len < minSize || dst.len > data.length) {
    return fail('EINVAL', `data_len ${dst.len} is outside [${minSize}, ${data.length}], the sizes this driver's struct has had`);
  }
  const at = userAddr(dst.uptr, dst.len);
  if (!at.ok) return at;
  return dst.write(at.value, data.subarray(0, dst.len)).ok ? ok() : fail('EFAULT', `cannot write driver data to 0x${dst.uptr.toString(16)}`);
}

/** A little-endian u64 of `b` at `at` as a bigint. */
export function u64At(b: Uint8Array, at: number): bigint {
  return new DataView(b.buffer, b.byteOffset, b.byteLength).getBigUint64(at, true);
}

/** A little-endian u32 of `b` at `at`. */
export function u32At(b: Uint8Array, at: number): number {
  return new DataView(b.buffer, b.byteOffset, b.byteLength).getUint32(at, true);
}
