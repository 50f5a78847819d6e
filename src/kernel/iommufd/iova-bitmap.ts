// The user bitmap of IOMMU_HWPT_GET_DIRTY_BITMAP (Linux's struct iova_bitmap, drivers/iommu/iommufd/
// iova_bitmap.c): bit n stands for [iova + n * 2^pgshift, +2^pgshift), stored as little-endian u64 words,
// so bit n is bit (n & 7) of byte n >> 3 at any byte alignment of `data`. Bits are only ever set: bits the
// user left set stay set. As in Linux, user memory is touched lazily, only once a bit must be set in a
// window; a bitmap nobody needs to write is never faulted in, and the first failed write is the call's error.
//
// Bits collect in a kernel window of WINDOW_BYTES (Linux pins up to 2 MiB of bitmap at a time); when a
// bit falls past it, or at finish(), the bytes between the window's first and last byte set get one
// read-modify-write (one copy_from_user and one copy_to_user, never one a bit).

import { PAGE_SIZE } from '../../hw/memory/physical-memory.ts';
import { ok, type Result } from '../errno.ts';
import { U64_MAX } from './iova-intervals.ts';

/** What the bitmap needs of the process: its copy_from_user / copy_to_user. */
export interface BitmapUserMemory {
  read(addr: number, dest: Uint8Array): Result;
  write(addr: number, src: Uint8Array): Result;
}

/** The largest window; a smaller bitmap gets a window its own size. */
const WINDOW_BYTES = 1 << 20;

export class IovaBitmap {
  private readonly window: Uint8Array;
  private readonly windowBytes: number;
  /** Per user page of the window: the first and last window byte set (-1: untouched). */
  private readonly pageFirst: Int32Array;
  private readonly pageLast: Int32Array;
  /** Bitmap byte at window[0]; -1 before the first bit. */
  private windowByte = -1;
  private readonly totalBits: number;
  private readonly base: number;
  /** 2^-pgshift: a multiplication by it is an exact division by the granule. */
  private readonly perByte: number;
  /** User address of window[0] and its page number (valid once the window is placed). */
  private userBase = 0;
  private page0 = 0;
  /** The window's first bit and the bit after its last (both 0 before it is placed), userBase % PAGE_SIZE. */
  private bit0 = 0;
  private bitEnd = 0;
  private userOff = 0;
  private error: Result = ok();

  /**
   * `iova`/`length`: the IOVA range the bitmap covers (u64); `pgshift`: log2 of the bytes a bit stands
   * for; `data`: the user address of bit 0.
   */
  constructor(private readonly mem: BitmapUserMemory, private readonly data: number, iova: bigint, length: bigint, pgshift: number) {
    this.perByte = 2 ** -pgshift;
    // Marks come from areas, which live below 2^53; a bitmap starting higher can never be written.
    this.base = iova > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER : Number(iova);
    const bits = (((length - 1n) & U64_MAX) >> BigInt(pgshift)) + 1n;
    this.totalBits = bits > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER : Number(bits);
    this.windowBytes = Math.min(WINDOW_BYTES, Math.ceil(this.totalBits / 8));
    this.window = new Uint8Array(this.windowBytes);
    // An unaligned window straddles one more page than its size.
    const pages = Math.ceil(this.windowBytes / PAGE_SIZE) + 1;
    this.pageFirst = new Int32Array(pages).fill(-1);
    this.pageLast = new Int32Array(pages).fill(-1);
  }

  /** iova_bitmap_set(): set the bits of every granule [iova, iova + bytes) touches (within the bitmap). */
  set(iova: number, bytes: number): void {
    const rel = iova - this.base;
    if (!this.error.ok || bytes <= 0 || rel + bytes <= 0) return;
    const from = rel < 0 ? 0 : Math.floor(rel * this.perByte);
    const to = Math.min(this.totalBits - 1, Math.floor((rel + bytes - 1) * this.perByte));
    // The common case: one bit inside the current window.
    if (from === to && from >= this.bit0 && from < this.bitEnd) {
      const b = from - this.bit0;
      const byte = b >>> 3;
      this.window[byte] = (this.window[byte] as number) | (1 << (b & 7));
      // A window is at most 1 MiB and starts userOff into a page: small integers, no division.
      const page = (this.userOff + byte) >>> 12;
      const first = this.pageFirst[page] as number;
      if (first < 0 || byte < first) this.pageFirst[page] = byte;
      if (byte > (this.pageLast[page] as number)) this.pageLast[page] = byte;
      return;
    }
    let bit = from;
    while (bit <= to) {
      const byte = Math.floor(bit / 8);
      if (this.windowByte < 0 || byte < this.windowByte || byte >= this.windowByte + this.windowBytes) {
        if (!this.flush()) return;
        this.windowByte = byte - (byte % this.windowBytes);
        this.userBase = this.data + this.windowByte;
        this.page0 = Math.floor(this.userBase / PAGE_SIZE);
        this.userOff = this.userBase - this.page0 * PAGE_SIZE;
        this.bit0 = this.windowByte * 8;
        this.bitEnd = (this.windowByte + this.windowBytes) * 8;
      }
      const last = Math.min(to, (this.windowByte + this.windowBytes) * 8 - 1);
      this.setInWindow(bit - this.windowByte * 8, last - this.windowByte * 8);
      bit = last + 1;
    }
  }

  /** Write what is left and return the first user-copy error (EFAULT), if any. */
  finish(): Result {
    this.flush();
    return this.error;
  }

  /** Set window bits [b0, b1] and note the user pages they fall in. */
  private setInWindow(b0: number, b1: number): void {
    const w = this.window;
    let b = b0;
    while (b <= b1) {
      if ((b & 7) === 0 && b + 7 <= b1) {
        const n = Math.floor((b1 + 1 - b) / 8);
        w.fill(0xff, b >> 3, (b >> 3) + n);
        b += n * 8;
      } else {
        w[b >> 3] = (w[b >> 3] as number) | (1 << (b & 7));
        b++;
      }
    }
    this.touch(b0 >> 3, b1 >> 3);
  }

  /** Record window bytes [first, last] as set, per user page. */
  private touch(first: number, last: number): void {
    const userBase = this.userBase;
    const page0 = this.page0;
    let at = first;
    while (at <= last) {
      const page = Math.floor((userBase + at) / PAGE_SIZE) - page0;
      const pageEnd = (page + page0 + 1) * PAGE_SIZE - userBase - 1;
      const upto = Math.min(last, pageEnd);
      if ((this.pageFirst[page] as number) < 0 || at < (this.pageFirst[page] as number)) this.pageFirst[page] = at;
      if (upto > (this.pageLast[page] as number)) this.pageLast[page] = upto;
      at = upto + 1;
    }
  }

  /**
   * OR the window into user memory and clear it; false after a failed copy. Like Linux, which pins the
   * window's user pages (iova_bitmap_get) once a bit lands in it, the span from the first to the last byte
   * set goes as one copy_from_user and one copy_to_user; pages before and after it are never accessed.
   */
  private flush(): boolean {
    if (this.windowByte < 0) return this.error.ok;
    let first = -1;
    let last = -1;
    for (let p = 0; p < this.pageFirst.length; p++) {
      const f = this.pageFirst[p] as number;
      if (f < 0) continue;
      if (first < 0) first = f;
      last = this.pageLast[p] as number;
      this.pageFirst[p] = -1;
      this.pageLast[p] = -1;
    }
    if (first < 0) return this.error.ok;
    // Whole u64 words of the bitmap (the kernel writes it as an array of them), which also lets orInto work
    // a word at a time; the bytes added are zero in the window and stay as the user had them.
    first -= first % 8;
    last = Math.min(this.windowBytes - 1, last + 7 - (last % 8));
    const mine = this.window.subarray(first, last + 1);
    if (!this.error.ok) { mine.fill(0); return false; }
    const user = new Uint8Array(mine.length);
    const addr = this.data + this.windowByte + first;
    const got = this.mem.read(addr, user);
    if (got.ok) orInto(user, mine);
    mine.fill(0);
    if (!got.ok) { this.error = got; return false; }
    const put = this.mem.write(addr, user);
    if (!put.ok) this.error = put;
    return this.error.ok;
  }
}

/** dst |= src, word-wise where both views are 4-byte aligned (they are for a fresh dst and an aligned window slice). */
function orInto(dst: Uint8Array, src: Uint8Array): void {
  const n = dst.length;
  let i = 0;
  if (dst.byteOffset % 4 === 0 && src.byteOffset % 4 === 0 && n >= 16) {
    const words = n >>> 2;
    const d = new Uint32Array(dst.buffer, dst.byteOffset, words);
    const s = new Uint32Array(src.buffer, src.byteOffset, words);
    for (let w = 0; w < words; w++) {
      const v = s[w] as number;
      if (v !== 0) d[w] = (d[w] as number) | v;
    }
    i = words * 4;
  }
  for (; i < n; i++) dst[i] = (dst[i] as number) | (src[i] as number);
}
