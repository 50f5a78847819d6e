// The pinned PFNs of an iopt_pages as sorted runs (Linux keeps them in an xarray and in the domains, and
// its pfn_batch holds runs of contiguous PFNs): run k maps page indexes [index, index + length) to frames
// [pfn, pfn + length). Contiguous pages on contiguous frames share one run, so a range backed by large
// folios costs one run however many 4 KiB pages it has; the worst case (no two frames adjacent) is one
// run, 16 bytes, per page.

/** A page with no pinned frame. */
export const NO_PFN = 0xffff_ffff;
const MAX_RUN = 0xffff_ffff;

/** Pages [index, index + count) on frames [pfn, pfn + count). */
export interface PagesRun {
  readonly index: number;
  readonly pfn: number;
  readonly count: number;
}

// Shared empty columns (nothing can be written to a zero-length array).
const NO_INDEX = new Float64Array(0);
const NO_U32 = new Uint32Array(0);

export class PinnedRuns {
  // Most storage holds one run (a single page, or a range on one contiguous stretch of frames): that run
  // lives in the three fields below and the columns stay unallocated until a second run is needed, so
  // creating and pinning a one-page iopt_pages allocates no typed array.
  private index = NO_INDEX;
  private pfn = NO_U32;
  private len = NO_U32;
  private oneIndex = 0;
  private onePfn = 0;
  private oneLen = 0;
  private n = 0;

  get runCount(): number { return this.n; }
  /** Bytes of the three columns as allocated (0 while the only run is kept inline). */
  get byteLength(): number { return this.index.byteLength + this.pfn.byteLength + this.len.byteLength; }

  // Run k's fields, inline or in the columns.
  private ix(k: number): number { return this.index.length === 0 ? this.oneIndex : this.index[k] as number; }
  private pf(k: number): number { return this.index.length === 0 ? this.onePfn : this.pfn[k] as number; }
  private ln(k: number): number { return this.index.length === 0 ? this.oneLen : this.len[k] as number; }

  private set(k: number, at: number, pfn: number, count: number): void {
    if (this.index.length === 0) {
      this.oneIndex = at;
      this.onePfn = pfn;
      this.oneLen = count;
    } else {
      this.index[k] = at;
      this.pfn[k] = pfn;
      this.len[k] = count;
    }
  }

  private setLen(k: number, count: number): void {
    if (this.index.length === 0) this.oneLen = count;
    else this.len[k] = count;
  }

  /** The first run ending after `at` (binary search); n when none. */
  private find(at: number): number {
    let lo = 0;
    let hi = this.n;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.ix(mid) + this.ln(mid) > at) hi = mid;
      else lo = mid + 1;
    }
    return lo;
  }

  /** The frame of page `at`, or NO_PFN. */
  pfnAt(at: number): number {
    const k = this.find(at);
    if (k >= this.n || this.ix(k) > at) return NO_PFN;
    return this.pf(k) + (at - this.ix(k));
  }

  /** Record pages [at, at + count) on frames from `pfn`; none of them may be recorded already. */
  insert(at: number, pfn: number, count: number): void {
    if (count <= 0) return;
    const k = this.find(at);
    if (k < this.n && this.ix(k) < at + count) throw new Error(`page ${at} is already pinned`);
    const p = k - 1;
    if (p >= 0 && this.ix(p) + this.ln(p) === at && this.pf(p) + this.ln(p) === pfn && this.ln(p) + count <= MAX_RUN) {
      this.setLen(p, this.ln(p) + count);
      if (k < this.n && at + count === this.ix(k) && pfn + count === this.pf(k) && this.ln(p) + this.ln(k) <= MAX_RUN) {
        this.setLen(p, this.ln(p) + this.ln(k));
        this.removeAt(k, 1);
      }
      return;
    }
    if (k < this.n && at + count === this.ix(k) && pfn + count === this.pf(k) && this.ln(k) + count <= MAX_RUN) {
      this.set(k, at, pfn, this.ln(k) + count);
      return;
    }
    this.insertAt(k, at, pfn, count);
  }

  /** The runs covering [first, last] clipped to it (pages without a frame are left out). */
  slice(first: number, last: number): PagesRun[] {
    const out: PagesRun[] = [];
    for (let k = this.find(first); k < this.n && this.ix(k) <= last; k++) {
      const s = Math.max(first, this.ix(k));
      const e = Math.min(last + 1, this.ix(k) + this.ln(k));
      out.push({ index: s, pfn: this.pf(k) + (s - this.ix(k)), count: e - s });
    }
    return out;
  }

  /** Forget pages [first, first + count): the runs that held them, clipped (for unpinning). */
  remove(first: number, count: number): PagesRun[] {
    const end = first + count;
    const out: PagesRun[] = [];
    const k0 = this.find(first);
    let k1 = k0;
    while (k1 < this.n && this.ix(k1) < end) {
      const s0 = this.ix(k1);
      const s = Math.max(first, s0);
      const e = Math.min(end, s0 + this.ln(k1));
      out.push({ index: s, pfn: this.pf(k1) + (s - s0), count: e - s });
      k1++;
    }
    if (k0 === k1) return out;
    // Runs k0..k1-1 overlap: keep the part of the first before `first` and of the last after `end`.
    const headS = this.ix(k0);
    const headP = this.pf(k0);
    const lastK = k1 - 1;
    const tailS = this.ix(lastK);
    const tailE = tailS + this.ln(lastK);
    const tailP = this.pf(lastK);
    this.removeAt(k0, k1 - k0);
    let at = k0;
    if (headS < first) this.insertAt(at++, headS, headP, first - headS);
    if (tailE > end) this.insertAt(at, end, tailP + (end - tailS), tailE - end);
    return out;
  }

  /** remove(at, 1) for one page: its frame (NO_PFN when it had none), without the run list. */
  removeOne(at: number): number {
    const k = this.find(at);
    if (k >= this.n || this.ix(k) > at) return NO_PFN;
    const s0 = this.ix(k);
    const p0 = this.pf(k);
    const e0 = s0 + this.ln(k);
    this.removeAt(k, 1);
    let i = k;
    if (s0 < at) this.insertAt(i++, s0, p0, at - s0);
    if (e0 > at + 1) this.insertAt(i, at + 1, p0 + (at + 1 - s0), e0 - at - 1);
    return p0 + (at - s0);
  }

  private insertAt(k: number, at: number, pfn: number, count: number): void {
    if (this.index.length === 0) {
      if (this.n === 0) {
        this.n = 1;
        this.set(0, at, pfn, count);
        return;
      }
      // A second run: the inline one moves to the columns.
      this.index = new Float64Array(4);
      this.pfn = new Uint32Array(4);
      this.len = new Uint32Array(4);
      this.set(0, this.oneIndex, this.onePfn, this.oneLen);
    } else if (this.n === this.index.length) {
      const grow = <T extends Float64Array | Uint32Array>(a: T, make: (n: number) => T): T => {
        const b = make(a.length * 2);
        b.set(a);
        return b;
      };
      this.index = grow(this.index, (n) => new Float64Array(n));
      this.pfn = grow(this.pfn, (n) => new Uint32Array(n));
      this.len = grow(this.len, (n) => new Uint32Array(n));
    }
    // Appending moves nothing (and each copyWithin() call costs more than a short move).
    if (k < this.n) {
      this.index.copyWithin(k + 1, k, this.n);
      this.pfn.copyWithin(k + 1, k, this.n);
      this.len.copyWithin(k + 1, k, this.n);
    }
    this.index[k] = at;
    this.pfn[k] = pfn;
    this.len[k] = count;
    this.n++;
  }

  private removeAt(k: number, count: number): void {
    if (this.index.length === 0) {
      // The inline run (k = 0, count = 1).
      this.n -= count;
      return;
    }
    if (k + count < this.n) {
      this.index.copyWithin(k, k + count, this.n);
      this.pfn.copyWithin(k, k + count, this.n);
      this.len.copyWithin(k, k + count, this.n);
    }
    this.n -= count;
  }
}

/** One frame per page of `runs`, in order (the exact per-page view, for tests and small callers). */
export function runPfns(runs: readonly PagesRun[]): number[] {
  const out: number[] = [];
  for (const r of runs) for (let k = 0; k < r.count; k++) out.push(r.pfn + k);
  return out;
}
