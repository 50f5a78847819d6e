// struct iommu_user_data and struct iommu_user_data_array (include/linux/iommu.h): driver-typed structs in
// the caller's memory that the core hands to a driver op, with the copy rules of
// iommu_copy_struct_from_user(), iommu_copy_struct_to_user() and copy_struct_from_user():
//  * a type other than the one the driver expects → EINVAL; a user length below the driver's minimum → EINVAL;
//  * a longer user struct must be zero past the kernel's size (E2BIG); a shorter one is zero-extended;
//  * copying back writes min(user length, kernel size) and zeroes the rest of the user's struct;
//  * an unreadable or unwritable pointer → EFAULT.

import { fail, ok, type Result } from '../errno.ts';
import type { IommuUserData, IommuUserDataArray } from '../iommu/viommu-ops.ts';
import type { Process } from '../process/process.ts';

const CHUNK = 4096;

function userAddr(uptr: bigint, len: number): Result<number> {
  if (uptr + BigInt(len) > BigInt(Number.MAX_SAFE_INTEGER)) return fail('EFAULT', `0x${uptr.toString(16)} + ${len} is not a user address`);
  return ok(Number(uptr));
}

/** copy_struct_from_user(): `kernelLen` bytes from a `len`-byte user struct at `addr`. */
function copyStructIn(proc: Process, addr: number, len: number, kernelLen: number): Result<Uint8Array> {
  const out = new Uint8Array(kernelLen);
  const n = Math.min(len, kernelLen);
  if (n > 0 && !proc.mm.read(addr, out.subarray(0, n)).ok) return fail('EFAULT', `cannot read driver data at 0x${addr.toString(16)}`);
  // check_zeroed_user() over the part the kernel does not know, a chunk at a time.
  for (let off = kernelLen; off < len; off += CHUNK) {
    const chunk = new Uint8Array(Math.min(CHUNK, len - off));
    if (!proc.mm.read(addr + off, chunk).ok) return fail('EFAULT', `cannot read driver data at 0x${(addr + off).toString(16)}`);
    if (chunk.some((b) => b !== 0)) return fail('E2BIG', `driver data is ${len} bytes, the kernel knows ${kernelLen}, and the rest is not zero`);
  }
  return ok(out);
}

/** The user_data of an ioctl: `type`, `uptr`, `len` as the user gave them. */
export function userData(proc: Process, type: number, uptr: bigint, len: number): IommuUserData {
  return {
    type,
    len,
    copyIn(want: number, minLen: number, kernelLen: number): Result<Uint8Array> {
      if (type !== want) return fail('EINVAL', `driver data of type 0x${(type >>> 0).toString(16)}, the driver wants 0x${(want >>> 0).toString(16)}`);
      if (len < minLen) return fail('EINVAL', `driver data is ${len} bytes, at least ${minLen} are needed`);
      const addr = userAddr(uptr, len);
      return addr.ok ? copyStructIn(proc, addr.value, len, kernelLen) : addr;
    },
    copyOut(data: Uint8Array): Result {
      const addr = userAddr(uptr, len);
      if (!addr.ok) return addr;
      const out = new Uint8Array(len);
      out.set(data.subarray(0, Math.min(len, data.length)));
      return proc.mm.write(addr.value, out).ok ? ok() : fail('EFAULT', `cannot write driver data to 0x${addr.value.toString(16)}`);
    },
  };
}

/** The data array of IOMMU_HWPT_INVALIDATE: `entryNum` entries of `entryLen` bytes from `uptr`. */
export function userDataArray(proc: Process, type: number, uptr: bigint, entryLen: number, entryNum: number): IommuUserDataArray {
  return {
    type,
    entryLen,
    entryNum,
    entry(index: number, kernelLen: number): Result<Uint8Array> {
      if (index < 0 || index >= entryNum) throw new RangeError(`entry ${index} of ${entryNum}`);
      const addr = userAddr(uptr + BigInt(index) * BigInt(entryLen), entryLen);
      return addr.ok ? copyStructIn(proc, addr.value, entryLen, kernelLen) : addr;
    },
  };
}
