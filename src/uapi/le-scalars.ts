// Little-endian scalars read from and stored into a Uint8Array directly: the struct codecs' fast path. A
// DataView over a small on-heap Uint8Array costs far more than the field itself (taking .buffer moves the
// array off the heap). Each store checks its value first and writes nothing when it is not valid for the
// kind (the codecs then take their checked path, which throws naming the field).

const TWO_32 = 2 ** 32;
/** hi words below this keep hi * 2^32 + lo a safe integer. */
const SAFE_HI = 2 ** 21;
const U64_MAX = (1n << 64n) - 1n;

export const getU32 = (b: Uint8Array, o: number): number =>
  ((b[o] as number) | ((b[o + 1] as number) << 8) | ((b[o + 2] as number) << 16) | ((b[o + 3] as number) << 24)) >>> 0;

// A small direct-mapped memo of u64 values as bigints. The same values cross the uAPI several times per
// call (the IOVA of a fault record goes into IOAS_MAP, is decoded by the kernel and read back; a user VA
// is converted by the API and decoded by the kernel; a length is the same every call), and each BigInt()
// is a heap object. A bigint is immutable and has no identity, so handing back the one made earlier for
// the same value is unobservable.
const MEMO_SIZE = 256;
const memoKeys = new Float64Array(MEMO_SIZE).fill(-1);
const memoVals: bigint[] = new Array<bigint>(MEMO_SIZE).fill(0n);

/** BigInt(n) for a safe non-negative integer n whose 32-bit halves are lo and hi. */
function memoBig(n: number, lo: number, hi: number): bigint {
  const i = (lo ^ (lo >>> 12) ^ (lo >>> 20) ^ hi) & (MEMO_SIZE - 1);
  if (memoKeys[i] === n) return memoVals[i] as bigint;
  const v = BigInt(n);
  memoKeys[i] = n;
  memoVals[i] = v;
  return v;
}

/** BigInt(n), through the memo for a safe non-negative integer (BigInt() itself, and its RangeError, else). */
export function u64Big(n: number): bigint {
  if (!Number.isSafeInteger(n) || n < 0) return BigInt(n);
  const hi = Math.floor(n / TWO_32);
  return memoBig(n, n - hi * TWO_32, hi);
}

/** The u64 at `o` as a bigint (through a number when it is a safe integer: one allocation, not three). */
export function getU64(b: Uint8Array, o: number): bigint {
  const lo = getU32(b, o);
  const hi = getU32(b, o + 4);
  return hi < SAFE_HI ? memoBig(hi * TWO_32 + lo, lo, hi) : (BigInt(hi) << 32n) | BigInt(lo);
}

export function putU32(b: Uint8Array, o: number, v: number): void {
  b[o] = v & 0xff;
  b[o + 1] = (v >>> 8) & 0xff;
  b[o + 2] = (v >>> 16) & 0xff;
  b[o + 3] = (v >>> 24) & 0xff;
}

const isInt = (v: unknown, min: number, max: number): v is number => typeof v === 'number' && Number.isInteger(v) && v >= min && v <= max;

export function storeU8(b: Uint8Array, o: number, v: unknown): boolean {
  if (!isInt(v, 0, 0xff)) return false;
  b[o] = v;
  return true;
}

export function storeU16(b: Uint8Array, o: number, v: unknown): boolean {
  if (!isInt(v, 0, 0xffff)) return false;
  b[o] = v & 0xff;
  b[o + 1] = v >>> 8;
  return true;
}

export function storeU32(b: Uint8Array, o: number, v: unknown): boolean {
  if (!isInt(v, 0, 0xffff_ffff)) return false;
  putU32(b, o, v);
  return true;
}

export function storeS32(b: Uint8Array, o: number, v: unknown): boolean {
  if (!isInt(v, -0x8000_0000, 0x7fff_ffff)) return false;
  putU32(b, o, v >>> 0);
  return true;
}

/** A u64 bigint in [0, 2^64). */
export function storeU64(b: Uint8Array, o: number, v: unknown): boolean {
  if (typeof v !== 'bigint') return false;
  // The usual value is a safe integer: one conversion decides it, cheaper than comparing with bigint
  // bounds. Number() rounds monotonically and every integer below 2^53 is exact, so n lands in
  // [0, 2^53 - 1] exactly when v is there, and then n is v.
  const n = Number(v);
  if (n >= 0 && n <= Number.MAX_SAFE_INTEGER) {
    const hi = Math.floor(n / TWO_32);
    putU32(b, o, n - hi * TWO_32);
    putU32(b, o + 4, hi);
    return true;
  }
  if (v < 0n || v > U64_MAX) return false;
  putU32(b, o, Number(v & 0xffff_ffffn));
  putU32(b, o + 4, Number(v >> 32n));
  return true;
}

/**
 * The u64 whose value is the number `n`, for a safe non-negative integer (what storeU64(BigInt(n)) stores,
 * without making the bigint); false, nothing written, for any other number.
 */
export function storeU64Number(b: Uint8Array, o: number, n: number): boolean {
  if (!Number.isSafeInteger(n) || n < 0) return false;
  const hi = Math.floor(n / TWO_32);
  putU32(b, o, n - hi * TWO_32);
  putU32(b, o + 4, hi);
  return true;
}
