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

/** The u64 at `o` as a bigint (through a number when it is a safe integer: one allocation, not three). */
export function getU64(b: Uint8Array, o: number): bigint {
  const lo = getU32(b, o);
  const hi = getU32(b, o + 4);
  return hi < SAFE_HI ? BigInt(hi * TWO_32 + lo) : (BigInt(hi) << 32n) | BigInt(lo);
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
