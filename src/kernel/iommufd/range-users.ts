// Users per page of an iopt_pages, kept per range (Linux tracks them with interval trees of the areas and
// accesses holding each range): a step function over [0, npages), segment k covering
// [starts[k], starts[k + 1]) with counts[k] users. A user is one holder of a pfnsFor() range (a domain
// fill, an access pin), so segments come from range edges, not from pages.

const NONE: readonly (readonly [number, number])[] = Object.freeze([]);

export class RangeUsers {
  // Until a second segment appears the step function is one segment over every page, whose count is
  // `only`, and the columns are not allocated: every one-page storage (each IO page fault maps one) stays
  // in that state for its whole life.
  private starts: number[] | null = null;
  private counts: number[] | null = null;
  private only = 0;

  constructor(readonly npages: number) {}

  /** Segments of the step function. */
  get segmentCount(): number { return this.starts === null ? 1 : this.starts.length; }
  /** The two columns, counted at 8 bytes an element (a V8 array of numbers); 0 while not allocated. */
  get byteLength(): number { return this.starts === null ? 0 : this.starts.length * 16; }

  // Allocate the columns from the single segment on first need.
  private columns(): void {
    if (this.starts !== null) return;
    this.starts = [0];
    this.counts = [this.only];
  }

  // The segment holding `at` (last k with starts[k] <= at).
  private seg(starts: readonly number[], at: number): number {
    let lo = 0;
    let hi = starts.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >>> 1;
      if ((starts[mid] as number) <= at) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  }

  private end(starts: readonly number[], k: number): number { return starts[k + 1] ?? this.npages; }

  // Make `at` a segment start; returns that segment (starts.length when at is npages).
  private cut(at: number): number {
    this.columns();
    const starts = this.starts as number[];
    const counts = this.counts as number[];
    if (at >= this.npages) return starts.length;
    const k = this.seg(starts, at);
    if (starts[k] === at) return k;
    starts.splice(k + 1, 0, at);
    counts.splice(k + 1, 0, counts[k] as number);
    return k + 1;
  }

  count(at: number): number {
    if (this.starts === null || this.counts === null) return this.only;
    return this.counts[this.seg(this.starts, at)] ?? 0;
  }

  /** The fewest users of any page of [first, last]. */
  minUsers(first: number, last: number): number {
    this.columns();
    const starts = this.starts as number[];
    const counts = this.counts as number[];
    let min = Infinity;
    for (let k = this.seg(starts, first); k < starts.length && (starts[k] as number) <= last; k++) {
      min = Math.min(min, counts[k] as number);
    }
    return min;
  }

  /** The parts of [first, last] without users, as [start, end) pairs, ascending. */
  unused(first: number, last: number): [number, number][] {
    this.columns();
    const starts = this.starts as number[];
    const counts = this.counts as number[];
    const out: [number, number][] = [];
    for (let k = this.seg(starts, first); k < starts.length && (starts[k] as number) <= last; k++) {
      if (counts[k] !== 0) continue;
      out.push([Math.max(first, starts[k] as number), Math.min(last + 1, this.end(starts, k))]);
    }
    return out;
  }

  /**
   * add(at, at, delta) without the list of freed parts (the one-page map and unmap paths): returns the
   * page's new count. A one-page storage changes its single count in place.
   */
  addOne(at: number, delta: number): number {
    if (this.starts === null && this.npages === 1 && at === 0) {
      const c = this.only + delta;
      if (c < 0) throw new Error(`page 0 would have ${c} users`);
      this.only = c;
      return c;
    }
    this.add(at, at, delta);
    return this.count(at);
  }

  /** Add `delta` users to each page of [first, last]; returns the parts left with none, as [start, end). */
  add(first: number, last: number, delta: number): readonly (readonly [number, number])[] {
    const a = this.cut(first);
    const b = this.cut(last + 1);
    this.columns();
    const starts = this.starts as number[];
    const counts = this.counts as number[];
    // Allocated only when something is freed (adding users, the map path, frees nothing).
    let freed: [number, number][] | null = null;
    for (let k = a; k < b; k++) {
      const c = (counts[k] as number) + delta;
      if (c < 0) throw new Error(`page ${starts[k]} would have ${c} users`);
      counts[k] = c;
      if (c === 0) {
        freed ??= [];
        const prev = freed[freed.length - 1];
        if (prev !== undefined && prev[1] === starts[k]) prev[1] = this.end(starts, k);
        else freed.push([starts[k] as number, this.end(starts, k)]);
      }
    }
    // Merge equal neighbours around the changed segments.
    for (let k = Math.min(b, starts.length - 1); k >= Math.max(a, 1); k--) {
      if (counts[k] === counts[k - 1]) {
        starts.splice(k, 1);
        counts.splice(k, 1);
      }
    }
    return freed ?? NONE;
  }
}
