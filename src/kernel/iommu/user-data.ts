// Driver-specific user data as the IOMMU core hands it to a driver (Linux's struct iommu_user_data and
// struct iommu_user_data_array), and the two copy helpers drivers use on it. The rules are Linux's
// __iommu_copy_struct_from_user(_array): the type must be the one the driver expects (EINVAL), the user
// length must lie between the struct's first version (min) and the kernel's size (EINVAL: a larger user
// struct is refused outright, not tail-checked as copy_struct_from_user alone would), the bytes are read
// with copy_from_user (EFAULT) and zero-extended to the kernel's size.

import { fail, ok, type Result } from '../errno.ts';

/** copy_from_user into `dest` from the calling process. */
export type UserReader = (addr: number, dest: Uint8Array) => Result;

/** struct iommu_user_data: one driver struct at `uptr`. */
export interface IommuUserData {
  readonly type: number;
  readonly uptr: bigint;
  readonly len: number;
  readonly read: UserReader;
}

/** struct iommu_user_data_array: `entryNum` driver structs of `entryLen` bytes each from `uptr`. */
export interface IommuUserDataArray {
  readonly type: number;
  readonly uptr: bigint;
  readonly entryLen: number;
  readonly entryNum: number;
  readonly read: UserReader;
}

/** __iommu_copy_struct_from_user(): the kernel-size bytes of the user's struct, zero-extended. */
export function copyStructFromUserData(src: IommuUserData, dataType: number, kernelSize: number, minSize: number): Result<Uint8Array> {
  if (src.type !== dataType) return fail('EINVAL', `data_type ${src.type} is not the ${dataType} this driver takes here`);
  if (src.len < minSize || src.len > kernelSize) {
    return fail('EINVAL', `data_len ${src.len} is outside [${minSize}, ${kernelSize}], the sizes this driver's struct has had`);
  }
  const out = new Uint8Array(kernelSize);
  const at = Number(src.uptr);
  if (!Number.isSafeInteger(at)) return fail('EFAULT', `data_uptr 0x${src.uptr.toString(16)} is not a user address`);
  const r = src.read(at, out.subarray(0, src.len));
  if (!r.ok) return fail('EFAULT', `cannot read ${src.len} bytes of driver data at 0x${src.uptr.toString(16)}`);
  return ok(out);
}

/** __iommu_copy_struct_from_user_array(): entry `index` of the array, by the same rules. */
export function copyStructFromUserArray(src: IommuUserDataArray, dataType: number, index: number, kernelSize: number, minSize: number): Result<Uint8Array> {
  if (src.entryNum === 0 || index >= src.entryNum) return fail('EINVAL', `entry ${index} is beyond the ${src.entryNum} entries given`);
  return copyStructFromUserData(
    { type: src.type, uptr: src.uptr + BigInt(src.entryLen) * BigInt(index), len: src.entryLen, read: src.read },
    dataType, kernelSize, minSize,
  );
}

/** A little-endian u64 of `b` at `at` as a bigint. */
export function u64At(b: Uint8Array, at: number): bigint {
  return new DataView(b.buffer, b.byteOffset, b.byteLength).getBigUint64(at, true);
}

/** A little-endian u32 of `b` at `at`. */
export function u32At(b: Uint8Array, at: number): number {
  return new DataView(b.buffer, b.byteOffset, b.byteLength).getUint32(at, true);
}
