// The kernel's page allocator over a range of simulated physical memory (Linux's buddy allocator reduced
// to single 4 KiB frames). A frame's life is its reference count in PhysicalMemory, as a struct page's
// _refcount: alloc_page() hands it out at 1, get_page()/put_page() move it, and it returns to the free list
// when it reaches 0. Pins (FOLL_PIN) hold a reference too, so a pinned frame outlives every mapping of it.

import type { PhysicalMemory } from '../../hw/memory/physical-memory.ts';

/** alloc() found no free frame: the caller turns this into ENOMEM. */
export const NO_FRAME = -1;

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

  constructor(memory: PhysicalMemory, opts: FrameAllocatorOptions = {}) {
    this.memory = memory;
    this.firstPfn = opts.firstPfn ?? 0;
    this.total = opts.count ?? memory.frameCount - this.firstPfn;
    if (!Number.isSafeInteger(this.firstPfn) || !Number.isSafeInteger(this.total) || this.firstPfn < 0 ||
      this.total < 0 || this.firstPfn + this.total > memory.frameCount) {
      throw new RangeError(`frame range ${this.firstPfn}+${this.total} is outside memory (${memory.frameCount} frames)`);
    }
    this.inUse = new Uint32Array(Math.ceil(this.total / 32));
  }

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
    return NO_FRAME;
  }

  private handOut(pfn: number): number {
    const i = pfn - this.firstPfn;
    this.inUse[i >>> 5] = (this.inUse[i >>> 5] ?? 0) | (1 << (i & 31));
    this.used++;
    this.memory.addRef(pfn, 1);
    return pfn;
  }

  /** get_page(): one more reference to an allocated frame. */
  get(pfn: number): void {
    this.check(pfn, 'get');
    this.memory.addRef(pfn, 1);
  }

  /**
   * put_page() (and __free_page(), which is the same drop): one reference less; at 0 the frame's data is
   * discarded, so the next user cannot read it, and the frame goes back to the free list. True when freed.
   */
  put(pfn: number): boolean {
    this.check(pfn, 'put');
    if (this.memory.addRef(pfn, -1) !== 0) return false;
    if (this.memory.pinCount(pfn) !== 0) throw new Error(`frame ${pfn} freed while pinned`);
    this.memory.discardFrame(pfn);
    const i = pfn - this.firstPfn;
    this.inUse[i >>> 5] = (this.inUse[i >>> 5] ?? 0) & ~(1 << (i & 31));
    this.used--;
    if (this.freeTop === this.freeStack.length) {
      const grown = new Uint32Array(this.freeStack.length * 2);
      grown.set(this.freeStack);
      this.freeStack = grown;
    }
    this.freeStack[this.freeTop++] = pfn;
    return true;
  }

  /** FOLL_PIN on a frame (try_grab_folio): a pin plus the reference that keeps the frame allocated. */
  pin(pfn: number): void {
    this.check(pfn, 'pin');
    this.memory.addRef(pfn, 1);
    this.memory.addPin(pfn, 1);
  }

  /** unpin_user_page(): drop the pin and its reference; the frame is freed if that was the last one. */
  unpin(pfn: number): boolean {
    this.check(pfn, 'unpin');
    if (this.memory.pinCount(pfn) === 0) throw new Error(`frame ${pfn} unpinned but not pinned`);
    this.memory.addPin(pfn, -1);
    return this.put(pfn);
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
