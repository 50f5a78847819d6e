// The kernel's page allocator over a range of simulated physical memory (Linux's buddy allocator reduced
// to two orders: single 4 KiB frames and order-9 folios of 512 naturally aligned frames, what a THP fault
// asks for). A frame's life is its reference count in PhysicalMemory, as a struct page's _refcount:
// alloc_page() hands it out at 1, get_page()/put_page() move it, and it returns to the free list when it
// reaches 0. Pins (FOLL_PIN) hold a reference too, so a pinned frame outlives every mapping of it.
// A large folio keeps its reference and pin counts on its head frame, as Linux keeps them on the folio:
// every operation on any of its 512 frames acts on the head, and the folio is freed whole.

import type { PhysicalMemory } from '../../hw/memory/physical-memory.ts';

/** alloc() found no free frame: the caller turns this into ENOMEM. */
export const NO_FRAME = -1;
/** HPAGE_PMD_ORDER on x86-64: a PMD maps 2^9 frames. */
export const FOLIO_ORDER = 9;
/** Frames in an order-9 folio (HPAGE_PMD_NR). */
export const FOLIO_PAGES = 1 << FOLIO_ORDER;

export interface FrameAllocatorOptions {
  /** First frame number handed out. Default 0. */
  readonly firstPfn?: number;
  /** Number of frames managed. Default: every frame from firstPfn to the end of memory. */
  readonly count?: number;
}

export class FrameAllocator {
  readonly memory: PhysicalMemory;
  readonly firstPfn: number;
  readonly total: number;
  /** One bit per managed frame: handed out by this allocator and not yet returned. */
  private readonly inUse: Uint32Array;
  /** Returned frames, reused last-in first-out (Linux's per-cpu lists hand back hot pages first). */
  private freeStack = new Uint32Array(64);
  private freeTop = 0;
  /** Frames at or above firstPfn + watermark have never been handed out. */
  private watermark = 0;
  private used = 0;
  /** One byte per naturally aligned 512-frame block of memory: 1 when it is an allocated order-9 folio. */
  private readonly large: Uint8Array;
  /**
   * Heads of free order-9 blocks (a freed folio goes back whole), handed out oldest first so that a range
   * freed in address order comes back in address order (keeps later allocations physically contiguous).
   */
  private freeFolios: number[] = [];
  private freeFoliosHead = 0;

  constructor(memory: PhysicalMemory, opts: FrameAllocatorOptions = {}) {
    this.memory = memory;
    this.firstPfn = opts.firstPfn ?? 0;
    this.total = opts.count ?? memory.frameCount - this.firstPfn;
    if (!Number.isSafeInteger(this.firstPfn) || !Number.isSafeInteger(this.total) || this.firstPfn < 0 ||
      this.total < 0 || this.firstPfn + this.total > memory.frameCount) {
      throw new RangeError(`frame range ${this.firstPfn}+${this.total} is outside memory (${memory.frameCount} frames)`);
    }
    this.inUse = new Uint32Array(Math.ceil(this.total / 32));
    this.large = new Uint8Array(Math.ceil(memory.frameCount / FOLIO_PAGES));
  }

  /** The head frame of the folio holding `pfn` (itself for a 4 KiB page): folio_pfn(page_folio()). */
  folioHead(pfn: number): number {
    return this.large[pfn >>> FOLIO_ORDER] === 1 ? pfn - (pfn % FOLIO_PAGES) : pfn;
  }
  /** folio_nr_pages() of the folio holding `pfn`. */
  folioPages(pfn: number): number { return this.large[pfn >>> FOLIO_ORDER] === 1 ? FOLIO_PAGES : 1; }
  /** folio_ref_count() of the folio holding `pfn`. */
  refCount(pfn: number): number { return this.memory.refCount(this.folioHead(pfn)); }
  /** The folio's pin count (folio_maybe_dma_pinned() when above 0). */
  pinCount(pfn: number): number { return this.memory.pinCount(this.folioHead(pfn)); }

  /** Frames handed out and not yet freed. */
  get allocated(): number { return this.used; }
  get free(): number { return this.total - this.used; }

  /** Whether this allocator manages `pfn` (inside its range). */
  owns(pfn: number): boolean {
    return Number.isInteger(pfn) && pfn >= this.firstPfn && pfn < this.firstPfn + this.total;
  }

  isAllocated(pfn: number): boolean {
    if (!this.owns(pfn)) return false;
    const i = pfn - this.firstPfn;
    return ((this.inUse[i >>> 5] ?? 0) & (1 << (i & 31))) !== 0;
  }

  /**
   * alloc_page(GFP_KERNEL | __GFP_ZERO): a zero-filled frame with reference count 1, or NO_FRAME.
   * A frame whose reference count is not 0 belongs to someone outside this allocator and is skipped.
   */
  alloc(): number {
    while (this.freeTop > 0) {
      const pfn = this.freeStack[--this.freeTop] as number;
      if (this.memory.refCount(pfn) === 0) return this.handOut(pfn);
    }
    while (this.watermark < this.total) {
      const pfn = this.firstPfn + this.watermark++;
      if (this.memory.refCount(pfn) === 0) return this.handOut(pfn);
    }
    // The buddy allocator splits a higher order block when the lower orders are empty.
    const head = this.takeFreeFolio();
    if (head === undefined) return NO_FRAME;
    for (let pfn = head + FOLIO_PAGES - 1; pfn > head; pfn--) this.pushFree(pfn);
    return this.handOut(head);
  }

  /**
   * alloc_pages(order 9) for a THP (vma_alloc_folio()): a zeroed folio of 512 naturally aligned frames with
   * reference count 1 on its head, or NO_FRAME when no aligned free block is left (the fault then falls
   * back to 4 KiB pages, as Linux does). Frames skipped to reach the alignment stay free for order 0.
   */
  allocFolio(): number {
    const reused = this.takeFreeFolio();
    if (reused !== undefined) return this.handOutFolio(reused);
    for (;;) {
      const at = this.firstPfn + this.watermark;
      const head = Math.ceil(at / FOLIO_PAGES) * FOLIO_PAGES;
      if (head + FOLIO_PAGES > this.firstPfn + this.total) return NO_FRAME;
      for (let pfn = at; pfn < head; pfn++) if (this.memory.refCount(pfn) === 0) this.pushFree(pfn);
      this.watermark = head + FOLIO_PAGES - this.firstPfn;
      if (this.memory.refsZero(head, FOLIO_PAGES)) return this.handOutFolio(head);
      // Someone outside the allocator holds a frame of the block: give the free ones to order 0.
      for (let pfn = head; pfn < head + FOLIO_PAGES; pfn++) if (this.memory.refCount(pfn) === 0) this.pushFree(pfn);
    }
  }

  private takeFreeFolio(): number | undefined {
    if (this.freeFoliosHead === this.freeFolios.length) return undefined;
    const head = this.freeFolios[this.freeFoliosHead++];
    if (this.freeFoliosHead === this.freeFolios.length) {
      this.freeFolios = [];
      this.freeFoliosHead = 0;
    }
    return head;
  }

  private handOutFolio(head: number): number {
    this.setBits(head - this.firstPfn, FOLIO_PAGES, true);
    this.large[head >>> FOLIO_ORDER] = 1;
    this.used += FOLIO_PAGES;
    this.memory.addRef(head, 1);
    return head;
  }

  // Set or clear `n` bits of inUse from bit `i`, a word at a time where possible.
  private setBits(i: number, n: number, on: boolean): void {
    for (let b = i; b < i + n;) {
      const w = b >>> 5;
      const lo = b & 31;
      const k = Math.min(32 - lo, i + n - b);
      const mask = k === 32 ? 0xffff_ffff : ((1 << k) - 1) << lo;
      this.inUse[w] = on ? (this.inUse[w] ?? 0) | mask : (this.inUse[w] ?? 0) & ~mask;
      b += k;
    }
  }

  private pushFree(pfn: number): void {
    if (this.freeTop === this.freeStack.length) {
      const grown = new Uint32Array(this.freeStack.length * 2);
      grown.set(this.freeStack);
      this.freeStack = grown;
    }
    this.freeStack[this.freeTop++] = pfn;
  }

  private handOut(pfn: number): number {
    const i = pfn - this.firstPfn;
    this.inUse[i >>> 5] = (this.inUse[i >>> 5] ?? 0) | (1 << (i & 31));
    this.used++;
    this.memory.addRef(pfn, 1);
    return pfn;
  }

  /** get_page() (folio_ref_add() with n): `n` more references to an allocated frame's folio. */
  get(pfn: number, n = 1): void {
    this.check(pfn, 'get');
    this.memory.addRef(this.folioHead(pfn), n);
  }

  /**
   * put_page() (and __free_page(), which is the same drop): one reference less; at 0 the frame's data is
   * discarded, so the next user cannot read it, and the frame goes back to the free list. True when freed.
   */
  put(pfn: number, n = 1): boolean {
    this.check(pfn, 'put');
    const head = this.folioHead(pfn);
    if (this.memory.addRef(head, -n) !== 0) return false;
    if (this.memory.pinCount(head) !== 0) throw new Error(`frame ${head} freed while pinned`);
    if (this.large[head >>> FOLIO_ORDER] === 1) {
      // A large folio is freed whole (its frames go back as one order-9 block).
      for (let f = head; f < head + FOLIO_PAGES; f++) this.memory.discardFrame(f);
      this.setBits(head - this.firstPfn, FOLIO_PAGES, false);
      this.large[head >>> FOLIO_ORDER] = 0;
      this.used -= FOLIO_PAGES;
      this.freeFolios.push(head);
      return true;
    }
    this.memory.discardFrame(pfn);
    const i = pfn - this.firstPfn;
    this.inUse[i >>> 5] = (this.inUse[i >>> 5] ?? 0) & ~(1 << (i & 31));
    this.used--;
    this.pushFree(pfn);
    return true;
  }

  /**
   * FOLL_PIN on `n` pages of one folio from `pfn` (try_grab_folio() with refs = n): n pins plus the
   * references that keep the folio allocated, added once on the folio.
   */
  pin(pfn: number, n = 1): void {
    this.check(pfn, 'pin');
    const head = this.folioHead(pfn);
    if (pfn + n > head + this.folioPages(pfn)) throw new RangeError(`pin of ${n} pages from ${pfn} crosses its folio`);
    this.memory.addRef(head, n);
    this.memory.addPin(head, n);
  }

  /** unpin_user_page() for `n` pages of one folio; the folio is freed if those were its last references. */
  unpin(pfn: number, n = 1): boolean {
    this.check(pfn, 'unpin');
    const head = this.folioHead(pfn);
    if (this.memory.pinCount(head) < n) throw new Error(`frame ${pfn} unpinned but not pinned`);
    this.memory.addPin(head, -n);
    return this.put(head, n);
  }

  /** FOLL_PIN on [pfn, pfn + n), a folio at a time: one count update per folio, not per page. */
  pinRange(pfn: number, n: number): void {
    const end = pfn + n;
    for (let at = pfn; at < end;) {
      const large = this.large[at >>> FOLIO_ORDER] === 1;
      const head = large ? at - (at % FOLIO_PAGES) : at;
      const k = Math.min(end, large ? head + FOLIO_PAGES : at + 1) - at;
      this.check(head, 'pin');
      this.memory.addCounts(head, k, k);
      at += k;
    }
  }

  /** unpin_user_page_range_dirty_lock() without the dirtying: unpin [pfn, pfn + n), a folio at a time. */
  unpinRange(pfn: number, n: number): void {
    for (let at = pfn; at < pfn + n;) {
      const head = this.folioHead(at);
      const k = Math.min(pfn + n, head + this.folioPages(at)) - at;
      this.unpin(at, k);
      at += k;
    }
  }

  /** Calls `fn` with every allocated frame, lowest first (leak checks, dumps). */
  forEachAllocated(fn: (pfn: number) => void): void {
    for (let w = 0; w < this.inUse.length; w++) {
      let bits = this.inUse[w] ?? 0;
      while (bits !== 0) {
        const b = 31 - Math.clz32(bits & -bits);
        fn(this.firstPfn + w * 32 + b);
        bits &= bits - 1;
      }
    }
  }

  // A reference operation on a frame that is not allocated is a kernel bug (Linux: "Bad page state").
  private check(pfn: number, what: string): void {
    if (!this.isAllocated(pfn)) throw new Error(`${what} of frame ${pfn}, which is not allocated here`);
  }
}
