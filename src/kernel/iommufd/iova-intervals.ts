// Interval structures over the 64-bit IOVA space, the stand-ins for Linux's interval trees in an
// io_pagetable (area_itree, reserved_itree, allowed_itree).
//
// IOVAs are `bigint` everywhere in iommufd: the ABI uses full u64 ranges (iova = 0, length = U64_MAX
// unmaps everything; the default allocation span ends at ULONG_MAX - PAGE_SIZE; aperture exclusions run
// to ULONG_MAX), which a double cannot hold past 2^53. Intervals are inclusive [start, last] as in the
// kernel, so [0, 2^64 - 1] is representable without a 2^64 end. Values outside [0, U64_MAX] are bugs in
// the caller (uapi decodes u64 fields) and throw.
//
// `IntervalMap` keeps non-overlapping intervals sorted by start in two BigUint64Array columns (16 bytes
// per interval) plus a parallel value array: lookups are binary searches, inserts and removals move the
// shorter side (memmove speed; O(1) at either end). For the allocator it keeps, per block of GAP_BLOCK intervals, the largest gap
// before an interval of the block (the free-gap augmentation of a tree, over a sorted array): a first-fit
// search skips whole blocks whose gaps are all too small. Summaries are recomputed lazily, from the lowest
// block an insert or removal touched, as far as a search reads them. `IntervalList` allows overlaps
// (reserved ranges of several owners may overlap); it is small and scanned linearly.

export const U64_MAX = (1n << 64n) - 1n;
/** ULONG_MAX on the 64-bit kernels iommufd runs on. */
export const ULONG_MAX = U64_MAX;

export interface IovaRange {
  readonly start: bigint;
  /** Inclusive. */
  readonly last: bigint;
}

export function assertU64(v: bigint, what: string): void {
  if (typeof v !== 'bigint' || v < 0n || v > U64_MAX) throw new RangeError(`${what} ${String(v)} is not a u64`);
}

export const hex64 = (v: bigint): string => `0x${v.toString(16)}`;

// Scratch for u64ToNumber(): written and read back within one call, so it holds no state between calls.
const U64_SCRATCH = new BigUint64Array(1);
const U64_HALVES = new Uint32Array(U64_SCRATCH.buffer);

/**
 * Number(v) for a u64 (0 <= v <= U64_MAX), through a typed array: V8 makes Number(bigint) a runtime call
 * (~20 ns, more than the rest of a bigint check), while a BigUint64Array store and two word loads are
 * inline. Exact: hi * 2^32 is exact and the one addition rounds as Number(v) does.
 */
export function u64ToNumber(v: bigint): number {
  U64_SCRATCH[0] = v;
  return (U64_HALVES[0] as number) + (U64_HALVES[1] as number) * 4294967296;
}

/**
 * A u64 as a number when it is at most Number.MAX_SAFE_INTEGER (its high word below 2^21), else -1: the
 * check and the conversion without a bigint comparison (each one a builtin call in V8).
 */
export function u64ToSafeNumber(v: bigint): number {
  U64_SCRATCH[0] = v;
  const hi = U64_HALVES[1] as number;
  return hi < 0x20_0000 ? (U64_HALVES[0] as number) + hi * 4294967296 : -1;
}

/**
 * BigInt(n) for an integer 0 <= n <= Number.MAX_SAFE_INTEGER, through the typed array: BigInt(number) is a
 * runtime call (~50 ns in V8), two word stores and a load are a few.
 */
export function safeNumberToU64(n: number): bigint {
  U64_HALVES[0] = n >>> 0;
  U64_HALVES[1] = Math.floor(n / 4294967296);
  return U64_SCRATCH[0] as bigint;
}

/** v === U64_MAX for a u64 (so v >= ULONG_MAX), from its two words rather than a bigint comparison. */
export function isU64Max(v: bigint): boolean {
  U64_SCRATCH[0] = v;
  return U64_HALVES[0] === 0xffff_ffff && U64_HALVES[1] === 0xffff_ffff;
}

export function intersects(a: IovaRange, start: bigint, last: bigint): boolean {
  return a.start <= last && a.last >= start;
}

/** Sorted, non-overlapping inclusive intervals with a value each. */
/** Intervals per free-gap summary block. */
export const GAP_BLOCK = 64;

export class IntervalMap<T> {
  // Interval i lives at slot head + i of the columns: a removal or insertion moves the shorter side, so
  // removing the lowest area (an unmap of everything goes lowest first) or appending above the highest
  // (ascending maps) costs O(1) instead of a memmove of the whole table.
  private starts = new BigUint64Array(16);
  private lasts = new BigUint64Array(16);
  private vals: (T | undefined)[] = new Array<T | undefined>(16).fill(undefined);
  private head = 0;
  private n = 0;
  /** Per block: the largest gap(i) of its intervals (gap(0) counts as 0). Valid below `dirtyFrom`. */
  private gapMax = new BigUint64Array(1);
  private dirtyFrom = 0;

  get size(): number { return this.n; }

  start(i: number): bigint { return this.starts[this.head + i] as bigint; }
  last(i: number): bigint { return this.lasts[this.head + i] as bigint; }
  value(i: number): T { return this.vals[this.head + i] as T; }

  /** Index of the first interval whose last >= `at` (size when none). */
  firstEndingAtOrAfter(at: bigint): number {
    const h = this.head;
    // Past the highest interval (maps mostly go upwards), or at the lowest (an unmap of everything
    // removes the lowest area each time): no search.
    if (this.n === 0 || (this.lasts[h + this.n - 1] as bigint) < at) return this.n;
    if ((this.lasts[h] as bigint) >= at) return 0;
    let lo = 0;
    let hi = this.n - 1;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if ((this.lasts[h + mid] as bigint) < at) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /** Index of the lowest interval intersecting [start, last], or -1. */
  firstIntersecting(start: bigint, last: bigint): number {
    const i = this.firstEndingAtOrAfter(start);
    return i < this.n && (this.starts[this.head + i] as bigint) <= last ? i : -1;
  }

  /** The index holding `at`, or -1. */
  indexOf(at: bigint): number { return this.firstIntersecting(at, at); }

  /** Insert; the caller has checked that nothing intersects (a bug otherwise). Returns the index. */
  insert(start: bigint, last: bigint, value: T): number {
    if (start > last) throw new RangeError(`interval ${hex64(start)}..${hex64(last)} is empty`);
    const i = this.firstEndingAtOrAfter(start);
    if (i < this.n && (this.starts[this.head + i] as bigint) <= last) throw new Error(`interval ${hex64(start)}..${hex64(last)} overlaps`);
    const n = this.n;
    if (this.head > 0 && (i < n - i || this.head + n === this.starts.length)) {
      // Move [0, i) down one slot.
      const h = this.head;
      if (i > 0) this.moveColumns(h - 1, h, h + i);
      for (let k = h - 1; k < h + i - 1; k++) this.vals[k] = this.vals[k + 1];
      this.head = h - 1;
    } else {
      if (this.head + n === this.starts.length) this.regrow();
      // Move [i, n) up one slot.
      const h = this.head;
      if (i < n) this.moveColumns(h + i + 1, h + i, h + n);
      for (let k = h + n; k > h + i; k--) this.vals[k] = this.vals[k - 1];
    }
    const at = this.head + i;
    this.starts[at] = start;
    this.lasts[at] = last;
    this.vals[at] = value;
    this.n = n + 1;
    this.touch(i);
    return i;
  }

  // No free slot above the intervals: move them to slot 0 when that frees enough, else double the columns.
  private regrow(): void {
    const h = this.head;
    const n = this.n;
    const cap = this.starts.length;
    if (h > 0 && n < cap / 2) {
      this.starts.copyWithin(0, h, h + n);
      this.lasts.copyWithin(0, h, h + n);
      for (let k = 0; k < n; k++) this.vals[k] = this.vals[h + k];
      this.vals.fill(undefined, n, h + n);
    } else {
      const s = new BigUint64Array(cap * 2);
      const l = new BigUint64Array(cap * 2);
      s.set(this.starts.subarray(h, h + n));
      l.set(this.lasts.subarray(h, h + n));
      this.starts = s;
      this.lasts = l;
      const v = new Array<T | undefined>(cap * 2).fill(undefined);
      for (let k = 0; k < n; k++) v[k] = this.vals[h + k];
      this.vals = v;
    }
    this.head = 0;
  }

  removeAt(i: number): T {
    const n = this.n;
    if (i < 0 || i >= n) throw new RangeError(`no interval ${i}`);
    const h = this.head;
    const v = this.vals[h + i] as T;
    if (i < n - 1 - i) {
      // Move [0, i) up one slot.
      if (i > 0) this.moveColumns(h + 1, h, h + i);
      for (let k = h + i; k > h; k--) this.vals[k] = this.vals[k - 1];
      this.vals[h] = undefined;
      this.head = h + 1;
    } else {
      // Move [i + 1, n) down one slot.
      if (i + 1 < n) this.moveColumns(h + i, h + i + 1, h + n);
      for (let k = h + i; k < h + n - 1; k++) this.vals[k] = this.vals[k + 1];
      this.vals[h + n - 1] = undefined;
    }
    this.n = n - 1;
    if (this.n === 0) this.head = 0;
    this.touch(i);
    return v;
  }

  // copyWithin() on both columns; callers skip empty moves (each call costs more than a short move).
  private moveColumns(to: number, from: number, end: number): void {
    this.starts.copyWithin(to, from, end);
    this.lasts.copyWithin(to, from, end);
  }

  private touch(i: number): void {
    this.dirtyFrom = Math.min(this.dirtyFrom, Math.floor(i / GAP_BLOCK));
    const blocks = Math.ceil(this.n / GAP_BLOCK);
    if (blocks > this.gapMax.length) {
      const g = new BigUint64Array(Math.max(blocks, this.gapMax.length * 2));
      g.set(this.gapMax);
      this.gapMax = g;
    }
  }

  /** Free IOVAs between interval i - 1 and interval i (0 for i = 0). */
  gapBefore(i: number): bigint {
    const h = this.head;
    return i === 0 ? 0n : (this.starts[h + i] as bigint) - (this.lasts[h + i - 1] as bigint) - 1n;
  }

  private blockMax(b: number): bigint {
    while (this.dirtyFrom <= b) {
      const d = this.dirtyFrom;
      let max = 0n;
      const end = Math.min(this.n, (d + 1) * GAP_BLOCK);
      for (let i = d * GAP_BLOCK; i < end; i++) {
        const g = this.gapBefore(i);
        if (g > max) max = g;
      }
      this.gapMax[d] = max;
      this.dirtyFrom = d + 1;
    }
    return this.gapMax[b] as bigint;
  }

  /** The smallest j >= i with gapBefore(j) >= need, or `end` when none is below `end`. */
  nextGapAtLeast(i: number, need: bigint, end: number): number {
    let j = i;
    while (j < end) {
      if (j % GAP_BLOCK === 0 && j + GAP_BLOCK <= end && this.blockMax(j / GAP_BLOCK) < need) {
        j += GAP_BLOCK;
        continue;
      }
      if (this.gapBefore(j) >= need) return j;
      j++;
    }
    return end;
  }

  /** Index of the first interval starting after `at` (size when none). */
  firstStartingAfter(at: bigint): number {
    const h = this.head;
    let lo = 0;
    let hi = this.n;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if ((this.starts[h + mid] as bigint) <= at) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /** Bytes of the typed columns actually in use plus their spare capacity (memory accounting). */
  get columnBytes(): number { return this.starts.byteLength + this.lasts.byteLength + this.gapMax.byteLength; }

  *entries(): IterableIterator<[bigint, bigint, T]> {
    for (let i = 0; i < this.n; i++) yield [this.start(i), this.last(i), this.value(i)];
  }
}

export interface OwnedRange<O> extends IovaRange {
  readonly owner: O;
}

/** Inclusive intervals that may overlap, sorted by start, each with an owner. */
export class IntervalList<O> {
  private items: OwnedRange<O>[] = [];

  get size(): number { return this.items.length; }
  list(): readonly OwnedRange<O>[] { return this.items; }

  anyIntersecting(start: bigint, last: bigint): OwnedRange<O> | undefined {
    for (const r of this.items) {
      if (r.start > last) return undefined;
      if (r.last >= start) return r;
    }
    return undefined;
  }

  add(start: bigint, last: bigint, owner: O): void {
    let i = 0;
    while (i < this.items.length && (this.items[i] as OwnedRange<O>).start <= start) i++;
    this.items.splice(i, 0, { start, last, owner });
  }

  removeOwner(owner: O): number {
    const before = this.items.length;
    this.items = this.items.filter((r) => r.owner !== owner);
    return before - this.items.length;
  }

  replaceAll(ranges: readonly OwnedRange<O>[]): void {
    this.items = [...ranges].sort((a, b) => (a.start < b.start ? -1 : a.start > b.start ? 1 : 0));
  }

  /** The union as disjoint sorted ranges, clipped to [lo, hi]. */
  merged(lo: bigint, hi: bigint): IovaRange[] {
    const out: { start: bigint; last: bigint }[] = [];
    for (const r of this.items) {
      if (r.last < lo || r.start > hi) continue;
      const s = r.start < lo ? lo : r.start;
      const l = r.last > hi ? hi : r.last;
      const prev = out[out.length - 1];
      if (prev !== undefined && (prev.last === U64_MAX || s <= prev.last + 1n)) {
        if (l > prev.last) prev.last = l;
      } else {
        out.push({ start: s, last: l });
      }
    }
    return out;
  }
}

/** The holes of `used` (disjoint, sorted) inside [lo, hi]. */
export function holes(used: readonly IovaRange[], lo: bigint, hi: bigint): IovaRange[] {
  const out: IovaRange[] = [];
  let at = lo;
  for (const u of used) {
    if (u.last < at) continue;
    if (u.start > hi) break;
    if (u.start > at) out.push({ start: at, last: u.start - 1n });
    if (u.last >= hi) return out;
    at = u.last + 1n;
  }
  if (at <= hi) out.push({ start: at, last: hi });
  return out;
}

/** roundup_pow_of_two() for 1 <= v <= 2^63. */
export function roundupPowOfTwo(v: bigint): bigint {
  let p = 1n;
  while (p < v) p <<= 1n;
  return p;
}

/** 1 << __ffs64(v), v != 0. */
export function lowestSetBit(v: bigint): bigint {
  return v & -v;
}

/** ALIGN(v, a) for a power of two a. */
export function alignUp(v: bigint, a: bigint): bigint {
  return (v + a - 1n) & ~(a - 1n);
}
