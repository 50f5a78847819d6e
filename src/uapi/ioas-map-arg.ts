// IOMMU_IOAS_MAP from the typed API, the call of the IO page fault loop, with its struct written field by
// field into the API's buffer from the call's own numbers: no object of fields, no bigint per u64 field
// and no walk of the generic encoder. The bytes are the ones ioctlField() would encode (the property test
// in test/uapi/ioas-map-arg.property.test.ts compares them); any value that is not plain (a number that
// is not a safe non-negative integer, a u32 out of range) makes the caller take ioctlField(), which
// encodes, converts and throws as it always did.

import type { Result } from '../kernel/errno.ts';
import type { Process } from '../kernel/process/process.ts';
import { giveArgBuf, ioctlFieldEncoded, scratchAddr, takeArgBuf } from './api-ioctl.ts';
import { IOMMU_IOAS_MAP } from './ioctl.ts';
import { iommu_ioas_map as MAP } from './iommufd-structs.ts';
import { putU32, storeU32, storeU64, storeU64Number } from './le-scalars.ts';

const SIZE = MAP.offsetof('size');
const FLAGS = MAP.offsetof('flags');
const IOAS_ID = MAP.offsetof('ioas_id');
const RESERVED = MAP.offsetof('__reserved');
const USER_VA = MAP.offsetof('user_va');
const LENGTH = MAP.offsetof('length');
const IOVA = MAP.offsetof('iova');

const storeU64Of = (b: Uint8Array, o: number, v: number | bigint): boolean =>
  typeof v === 'bigint' ? storeU64(b, o, v) : storeU64Number(b, o, v);

/**
 * Every field of struct iommu_ioas_map in b[0, sizeof) as ioctlField() encodes { flags, ioas_id, user_va:
 * BigInt(userVa), length: BigInt(length), iova: iova === undefined ? 0n : BigInt(iova) } with size
 * sizeof; false when a value is not plain (the bytes are then partly written).
 */
export function writeMapArg(
  b: Uint8Array, flags: number, ioasId: number, userVa: number | bigint, length: number | bigint, iova: number | bigint | undefined,
): boolean {
  putU32(b, SIZE, MAP.sizeof);
  putU32(b, RESERVED, 0);
  return storeU32(b, FLAGS, flags) && storeU32(b, IOAS_ID, ioasId) && storeU64Of(b, USER_VA, userVa) &&
    storeU64Of(b, LENGTH, length) && storeU64Of(b, IOVA, iova ?? 0);
}

/**
 * IOMMU_IOAS_MAP through writeMapArg(): the IOVA written back, or null when a value is not plain (nothing
 * done; the caller takes ioctlField()).
 */
export function ioasMapPlain(
  proc: Process, fd: number, flags: number, ioasId: number, userVa: number | bigint, length: number | bigint, iova: number | bigint | undefined,
): Result<bigint> | null {
  const b = takeArgBuf(proc, MAP.sizeof);
  if (!writeMapArg(b.bytes, flags, ioasId, userVa, length, iova)) {
    giveArgBuf(proc, b);
    return null;
  }
  // ioctlField() takes the scratch buffer before it encodes: encoding a plain struct cannot fail, so
  // taking it after changes nothing.
  const base = scratchAddr(proc, MAP.sizeof);
  if (typeof base !== 'number') {
    giveArgBuf(proc, b);
    return base;
  }
  return ioctlFieldEncoded(proc, fd, IOMMU_IOAS_MAP, MAP, 'iova', b, base);
}
