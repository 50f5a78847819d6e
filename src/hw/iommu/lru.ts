// The index under every cache of the unit (context cache, PASID cache, IOTLB): a fixed number of slots,
// each holding a two-number key, found through an open-addressing (linear probing) hash table, with exact
// least-recently-used eviction. Everything lives in typed arrays: lookups, touches, inserts and removals
// allocate nothing. Payloads live in the caches' own arrays, indexed by the slot.
//
// The buckets hold the keys themselves as well as the slot, so a probe's loads depend only on the
// bucket index (no bucket → slot → key chain): that is most of the IOTLB-hit path's latency.
//
// Recency is a stamp per slot from a counter, so a touch (every IOTLB hit) is one store. The victim is
// found from a buffer of the CANDIDATES oldest entries, collected by one scan: the oldest candidate whose
// stamp has not changed since is the least recently used entry of the whole cache, because every entry
// outside the buffer was younger at the scan and stamps only grow. A touched or removed candidate is
// skipped; when none is left, the cache is scanned again.

/** Size of the eviction candidate buffer: a full scan happens at most once per this many evictions. */
const CANDIDATES = 256;

export class LruIndex {
  readonly capacity: number;
  /** Keys of each slot. */
  private readonly keyA: Float64Array;
  private readonly keyB: Float64Array;
  /** Bucket each slot's key hashes to (where a search for it starts). */
  private readonly home: Int32Array;
  /** Hash buckets: the key (b at 2i, a at 2i + 1) and the slot, or slot -1 (and NaN keys) when empty. At most half full. */
  private readonly bucketKey: Float64Array;
  private readonly bucketSlot: Int32Array;
  private readonly mask: number;
  private readonly shift: number;
  /** Recency: the clock value at each slot's last use. */
  private readonly stamp: Float64Array;
  private clock = 0;
  /** Eviction candidates, oldest first, with the stamps they had when collected. */
  private readonly candSlot: Int32Array;
  private readonly candStamp: Float64Array;
  /** Scratch for the quickselect over live stamps. */
  private readonly select: Float64Array;
  private candPos = 0;
  private candLen = 0;
  private count = 0;
  private readonly free: Int32Array;
  private freeTop: number;
  /** 1 when the slot holds an entry. */
  readonly live: Uint8Array;

  constructor(capacity: number) {
    if (!Number.isInteger(capacity) || capacity < 1 || capacity > 1 << 24) {
      throw new RangeError(`cache capacity must be an integer from 1 to ${1 << 24}, not ${capacity}`);
    }
    this.capacity = capacity;
    let bits = 1;
    while (1 << bits < capacity * 2) bits++;
    this.bucketKey = new Float64Array(2 << bits).fill(NaN);
    this.bucketSlot = new Int32Array(1 << bits).fill(-1);
    this.mask = (1 << bits) - 1;
    this.shift = 32 - bits;
    this.keyA = new Float64Array(capacity);
    this.keyB = new Float64Array(capacity);
    this.home = new Int32Array(capacity);
    this.stamp = new Float64Array(capacity);
    const cands = Math.min(capacity, CANDIDATES);
    this.candSlot = new Int32Array(cands);
    this.candStamp = new Float64Array(cands);
    this.select = new Float64Array(capacity > cands ? capacity : 0);
    this.live = new Uint8Array(capacity);
    this.free = new Int32Array(capacity);
    for (let i = 0; i < capacity; i++) this.free[i] = capacity - 1 - i;
    this.freeTop = capacity;
  }

  get size(): number { return this.count; }
  get full(): boolean { return this.count === this.capacity; }

  /**
   * The part of a key's hash that depends on `a` alone: callers that look up many `b` under one `a`
   * (the IOTLB: many pages of one DID and PASID) compute it once.
   */
  static mixA(a: number): number {
    // The divisor is a literal on purpose: V8 turns a division by a literal power of two into a
    // multiplication, but not one by a module-level constant (a real divide costs more than a lookup).
    return Math.imul(a >>> 0, 0x165667b1) ^ Math.imul((a / 4294967296) | 0, 0x61c88647);
  }

  /**
   * Bucket of (a, b): b contributes its low 32 bits only (ToUint32, one instruction). Keys differing only
   * above them share a probe chain, which costs probes, never correctness (the full key is compared).
   */
  private bucketOf(mixA: number, b: number): number {
    const x = (b >>> 0) ^ mixA;
    return Math.imul(x ^ (x >>> 15), 0x9e3779b1) >>> this.shift;
  }

  /** The slot holding key (a, b), or -1. Does not touch the LRU order. */
  find(a: number, b: number): number { return this.findMixed(a, LruIndex.mixA(a), b); }

  /** find() with `mixA` = LruIndex.mixA(a) precomputed. */
  findMixed(a: number, mixA: number, b: number): number {
    const bucketKey = this.bucketKey;
    const bucketSlot = this.bucketSlot;
    const mask = this.mask;
    let i = this.bucketOf(mixA, b);
    for (;;) {
      const s = bucketSlot[i] as number;
      if (bucketKey[2 * i] === b && bucketKey[2 * i + 1] === a) return s;
      // Linear probing never places a key beyond an empty bucket of its chain.
      if (s < 0) return -1;
      i = (i + 1) & mask;
    }
  }

  /** Make `slot` the most recently used. */
  touch(slot: number): void {
    this.stamp[slot] = ++this.clock;
  }

  /** The least recently used slot (the one to evict), or -1 when empty. */
  victim(): number {
    for (;;) {
      while (this.candPos < this.candLen) {
        const s = this.candSlot[this.candPos] as number;
        if (this.live[s] === 1 && this.stamp[s] === this.candStamp[this.candPos]) return s;
        this.candPos++;
      }
      if (this.count === 0) return -1;
      this.collectCandidates();
    }
  }

  /**
   * Fill the candidate buffer with the oldest live entries, oldest first. Stamps are unique, so the
   * buffer's youngest stamp is the k-th smallest live stamp: a quickselect over a copy of the live stamps
   * finds it in linear time, and only entries at or below it go through the max-heap (then a heap sort
   * puts them oldest first). Selecting with the heap alone cost log k moves for nearly every entry:
   * slots are reused in eviction order, so a scan meets long runs of entries older than all kept so far.
   */
  private collectCandidates(): void {
    const max = this.candSlot.length;
    const cs = this.candSlot;
    const ct = this.candStamp;
    const live = this.live;
    const stamp = this.stamp;
    const capacity = this.capacity;
    let limit = Infinity;
    if (this.count > max) {
      const sel = this.select;
      let m = 0;
      for (let s = 0; s < capacity; s++) if (live[s] === 1) sel[m++] = stamp[s] as number;
      limit = kthSmallest(sel, m, max - 1);
    }
    let n = 0;
    for (let s = 0; s < capacity; s++) {
      if (live[s] !== 1) continue;
      const t = stamp[s] as number;
      if (t > limit) continue;
      if (n < max) {
        // Sift up from the end.
        let i = n++;
        while (i > 0) {
          const p = (i - 1) >> 1;
          if ((ct[p] as number) >= t) break;
          cs[i] = cs[p] as number;
          ct[i] = ct[p] as number;
          i = p;
        }
        cs[i] = s;
        ct[i] = t;
      } else if (t < (ct[0] as number)) {
        this.siftDown(s, t, n);
      }
    }
    // Heap sort: move the youngest kept to the end, repeatedly; the buffer ends oldest first.
    for (let end = n - 1; end > 0; end--) {
      const rs = cs[0] as number;
      const rt = ct[0] as number;
      this.siftDown(cs[end] as number, ct[end] as number, end);
      cs[end] = rs;
      ct[end] = rt;
    }
    this.candPos = 0;
    this.candLen = n;
  }

  /** Put (slot, stamp) at the root of the candidate max-heap of `size` entries and sift it down. */
  private siftDown(slot: number, t: number, size: number): void {
    const cs = this.candSlot;
    const ct = this.candStamp;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= size) break;
      const r = l + 1;
      const c = r < size && (ct[r] as number) > (ct[l] as number) ? r : l;
      if ((ct[c] as number) <= t) break;
      cs[i] = cs[c] as number;
      ct[i] = ct[c] as number;
      i = c;
    }
    cs[i] = slot;
    ct[i] = t;
  }

  /** Add key (a, b) as the most recently used entry; the caller has made room (see `full`, `victim`). */
  insert(a: number, b: number): number { return this.insertMixed(a, LruIndex.mixA(a), b); }

  /** insert() with `mixA` = LruIndex.mixA(a) precomputed. */
  insertMixed(a: number, mixA: number, b: number): number {
    if (this.freeTop === 0) return -1;
    const slot = this.free[--this.freeTop] as number;
    this.keyA[slot] = a;
    this.keyB[slot] = b;
    const h = this.bucketOf(mixA, b);
    let i = h;
    while ((this.bucketSlot[i] as number) >= 0) i = (i + 1) & this.mask;
    this.bucketKey[2 * i] = b;
    this.bucketKey[2 * i + 1] = a;
    this.bucketSlot[i] = slot;
    this.home[slot] = h;
    this.live[slot] = 1;
    this.stamp[slot] = ++this.clock;
    this.count++;
    return slot;
  }

  /** Remove the entry in `slot` (backward-shift deletion keeps every other key reachable). */
  remove(slot: number): void {
    if (this.live[slot] !== 1) return;
    const bucketSlot = this.bucketSlot;
    const mask = this.mask;
    let i = this.home[slot] as number;
    while (bucketSlot[i] !== slot) i = (i + 1) & mask;
    let j = i;
    for (;;) {
      j = (j + 1) & mask;
      const s = bucketSlot[j] as number;
      if (s < 0) break;
      const k = this.home[s] as number;
      // Move the entry at j back to the hole at i unless its home lies cyclically in (i, j].
      const between = i <= j ? k > i && k <= j : k > i || k <= j;
      if (!between) {
        this.bucketKey[2 * i] = this.bucketKey[2 * j] as number;
        this.bucketKey[2 * i + 1] = this.bucketKey[2 * j + 1] as number;
        bucketSlot[i] = s;
        i = j;
      }
    }
    this.bucketKey[2 * i] = NaN;
    this.bucketKey[2 * i + 1] = NaN;
    bucketSlot[i] = -1;
    this.live[slot] = 0;
    this.free[this.freeTop++] = slot;
    this.count--;
  }

  clear(): void {
    for (let s = 0; s < this.capacity; s++) if (this.live[s] === 1) this.remove(s);
  }

  keyAOf(slot: number): number { return this.keyA[slot] as number; }
  keyBOf(slot: number): number { return this.keyB[slot] as number; }

  /** Slots from most to least recently used (for tests and diagnostics). */
  order(): number[] {
    const out: number[] = [];
    for (let s = 0; s < this.capacity; s++) if (this.live[s] === 1) out.push(s);
    return out.sort((x, y) => (this.stamp[y] as number) - (this.stamp[x] as number));
  }
}

/**
 * The k-th smallest (0-based) of a[0..n): Hoare's quickselect with a median-of-three pivot, in place
 * (it reorders a). n > k >= 0.
 */
function kthSmallest(a: Float64Array, n: number, k: number): number {
  let lo = 0;
  let hi = n - 1;
  while (hi > lo) {
    const mid = (lo + hi) >>> 1;
    // Median of three: order a[lo] <= a[mid] <= a[hi], pivot a[mid].
    if ((a[mid] as number) < (a[lo] as number)) swap(a, mid, lo);
    if ((a[hi] as number) < (a[lo] as number)) swap(a, hi, lo);
    if ((a[hi] as number) < (a[mid] as number)) swap(a, hi, mid);
    const pivot = a[mid] as number;
    let i = lo;
    let j = hi;
    while (i <= j) {
      while ((a[i] as number) < pivot) i++;
      while ((a[j] as number) > pivot) j--;
      if (i <= j) {
        swap(a, i, j);
        i++;
        j--;
      }
    }
    // [lo, j] <= pivot <= [i, hi]; between them, elements equal to the pivot.
    if (k <= j) hi = j;
    else if (k >= i) lo = i;
    else return a[k] as number;
  }
  return a[k] as number;
}

function swap(a: Float64Array, i: number, j: number): void {
  const t = a[i] as number;
  a[i] = a[j] as number;
  a[j] = t;
}
