// Users per page of an iopt_pages, kept per range (Linux tracks them with interval trees of the areas and
// accesses holding each range): a step function over [0, npages), segment k covering
// [starts[k], starts[k + 1]) with counts[k] users. A user is one holder of a pfnsFor() range (a domain
// fill, an access pin), so segments come from range edges, not from pages.

const NONE: readonly (readonly [number, number])[] = Object.freeze([]);

export class RangeUsers {
  private readonly starts: number[] = [0];
  private readonly counts: number[] = [0];

  constructor(readonly npages: number) {}

  /** Segments of the step function. */
  get segmentCount(): number { return this.starts.length; }
  /** The two columns, counted at 8 bytes an element (a V8 array of numbers). */
  get byteLength(): number { return (this.starts.length + this.counts.length) * 8; }

  // The segment holding `at` (last k with starts[k] <= at).
  private seg(at: number): number {
    let lo = 0;
    let hi = this.starts.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >>> 1;
      if ((this.starts[mid] as number) <= at) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  }

  private end(k: number): number { return this.starts[k + 1] ?? this.npages; }

  // Make `at` a segment start; returns that segment (starts.length when at is npages).
  private cut(at: number): number {
    if (at >= this.npages) return this.starts.length;
    const k = this.seg(at);
    if (this.starts[k] === at) return k;
    this.starts.splice(k + 1, 0, at);
    this.counts.splice(k + 1, 0, this.counts[k] as number);
    return k + 1;
  }

  count(at: number): number { return this.counts[this.seg(at)] ?? 0; }

  /** The fewest users of any page of [first, last]. */
  minUsers(first: number, last: number): number {
    let min = Infinity;
    for (let k = this.seg(first); k < this.starts.length && (this.starts[k] as number) <= last; k++) {
      min = Math.min(min, this.counts[k] as number);
    }
    return min;
  }

  /** The parts of [first, last] without users, as [start, end) pairs, ascending. */
  unused(first: number, last: number): [number, number][] {
    const out: [number, number][] = [];
    for (let k = this.seg(first); k < this.starts.length && (this.starts[k] as number) <= last; k++) {
      if (this.counts[k] !== 0) continue;
      out.push([Math.max(first, this.starts[k] as number), Math.min(last + 1, this.end(k))]);
    }
    return out;
  }

  /**
   * add(at, at, delta) without the list of freed parts (the one-page map and unmap paths): returns the
   * page's new count. Storage of one segment covering just this page changes its count in place.
   */
  addOne(at: number, delta: number): number {
    if (this.npages === 1 && at === 0 && this.starts.length === 1) {
      const c = (this.counts[0] as number) + delta;
      if (c < 0) throw new Error(`page 0 would have ${c} users`);
      this.counts[0] = c;
      return c;
    }
    this.add(at, at, delta);
    return this.count(at);
  }

  /** Add `delta` users to each page of [first, last]; returns the parts left with none, as [start, end). */
  add(first: number, last: number, delta: number): readonly (readonly [number, number])[] {
    const a = this.cut(first);
    const b = this.cut(last + 1);
    // Allocated only when something is freed (adding users, the map path, frees nothing).
    let freed: [number, number][] | null = null;
    for (let k = a; k < b; k++) {
      const c = (this.counts[k] as number) + delta;
      if (c < 0) throw new Error(`page ${this.starts[k]} would have ${c} users`);
      this.counts[k] = c;
      if (c === 0) {
        freed ??= [];
        const prev = freed[freed.length - 1];
        if (prev !== undefined && prev[1] === this.starts[k]) prev[1] = this.end(k);
        else freed.push([this.starts[k] as number, this.end(k)]);
      }
    }
    // Merge equal neighbours around the changed segments.
    for (let k = Math.min(b, this.starts.length - 1); k >= Math.max(a, 1); k--) {
      if (this.counts[k] === this.counts[k - 1]) {
        this.starts.splice(k, 1);
        this.counts.splice(k, 1);
      }
    }
    return freed ?? NONE;
  }
}
