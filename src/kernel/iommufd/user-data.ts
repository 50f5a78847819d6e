// The iommufd side of struct iommu_user_data(_array): built from an ioctl's data_type/data_uptr/data_len
// (or entry_len/entry_num) and the calling process, whose memory the driver's copies read and write. The
// copy rules themselves are in kernel/iommu/user-data.ts.

import type { IommuUserData, IommuUserDataArray } from '../iommu/user-data.ts';
import type { Process } from '../process/process.ts';

/** The user_data of an ioctl: `type`, `uptr`, `len` as the user gave them. */
export function userData(proc: Process, type: number, uptr: bigint, len: number): IommuUserData {
  return { type, uptr, len, read: (a, d) => proc.mm.read(a, d), write: (a, s) => proc.mm.write(a, s) };
}

/** The data array of IOMMU_HWPT_INVALIDATE: `entryNum` entries of `entryLen` bytes from `uptr`. */
export function userDataArray(proc: Process, type: number, uptr: bigint, entryLen: number, entryNum: number): IommuUserDataArray {
  return { type, uptr, entryLen, entryNum, read: (a, d) => proc.mm.read(a, d) };
}
