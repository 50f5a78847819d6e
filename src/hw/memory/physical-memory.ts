// Simulated physical memory: sparse 4 KiB frames, allocated on first write, with per-frame reference
// and pin counts. A never-written frame reads as zeros and costs nothing. Everything in the hardware
// model reaches memory through this object (the RISC-V reference model's injected read/write_memory).

export const PAGE_SHIFT = 12;
export const PAGE_SIZE = 1 << PAGE_SHIFT;
const PAGE_MASK = PAGE_SIZE - 1;

// Frames are found through a two-level directory of plain arrays: fast for any address, sparse in memory.
const DIR_SHIFT = 16; // 64 Ki frames (256 MiB) per directory chunk
const DIR_SIZE = 1 << DIR_SHIFT;
// A frame's first write takes its storage from a slab of this many frames: allocating 4 KiB buffers one
// at a time costs ~1 µs each. A discarded frame's storage is not reused (a slab is freed with its last frame).
const SLAB_FRAMES = 16;

/** A physical address outside memory: hardware answers with an error, never with an exception. */
export const BAD_ADDRESS = -1;

export interface PhysicalMemoryOptions {
  /** Bytes of physical memory; addresses at or above it fail. Default 64 GiB. */
  readonly size?: number;
}

export class PhysicalMemory {
  readonly size: number;
  readonly frameCount: number;
  private readonly frames: Array<Array<Uint8Array | undefined> | undefined> = [];
  private readonly words: Array<Array<Uint32Array | undefined> | undefined> = [];
  private readonly refs: Array<Uint32Array | undefined> = [];
  private readonly pins: Array<Uint32Array | undefined> = [];
  /** Frames holding data (written at least once). */
  private populated = 0;
  private static readonly ZERO = new Uint8Array(PAGE_SIZE);
  /** The slab new frames are carved from, and how many of its frames are handed out. */
  private slab = new ArrayBuffer(0);
  private slabUsed = SLAB_FRAMES;

  constructor(opts: PhysicalMemoryOptions = {}) {
    this.size = opts.size ?? 64 * 2 ** 30;
    if (!Number.isSafeInteger(this.size) || this.size <= 0 || this.size % PAGE_SIZE !== 0) {
      throw new RangeError(`memory size must be a positive multiple of ${PAGE_SIZE}`);
    }
    this.frameCount = this.size / PAGE_SIZE;
  }

  /** Frames that hold data; reading never allocates. */
  get populatedFrames(): number { return this.populated; }
  /** Bytes of simulated memory actually held. */
  get residentBytes(): number { return this.populated * PAGE_SIZE; }

  contains(pa: number, length = 1): boolean {
    return pa >= 0 && length >= 0 && pa + length <= this.size && Number.isSafeInteger(pa);
  }

  /** The frame's bytes for reading, or a shared zero page if it was never written. */
  private frameForRead(pfn: number): Uint8Array {
    return this.frames[pfn >>> DIR_SHIFT]?.[pfn & (DIR_SIZE - 1)] ?? PhysicalMemory.ZERO;
  }

  /**
   * The frame's words for writing (allocating the frame on first write). The words directory is looked at
   * first: a frame that exists costs one lookup, not frameForWrite's and then another.
   */
  private wordsForWrite(pfn: number): Uint32Array {
    const w = this.words[pfn >>> DIR_SHIFT]?.[pfn & (DIR_SIZE - 1)];
    if (w !== undefined) return w;
    this.frameForWrite(pfn);
    return (this.words[pfn >>> DIR_SHIFT] as Array<Uint32Array | undefined>)[pfn & (DIR_SIZE - 1)] as Uint32Array;
  }

  private frameForWrite(pfn: number): Uint8Array {
    const hi = pfn >>> DIR_SHIFT;
    const lo = pfn & (DIR_SIZE - 1);
    let dir = this.frames[hi];
    if (dir === undefined) {
      dir = this.frames[hi] = new Array<Uint8Array | undefined>(DIR_SIZE);
      this.words[hi] = new Array<Uint32Array | undefined>(DIR_SIZE);
    }
    let frame = dir[lo];
    if (frame === undefined) {
      // Frames are carved from slabs of SLAB_FRAMES (one zeroed allocation instead of one per frame).
      if (this.slabUsed === SLAB_FRAMES) {
        this.slab = new ArrayBuffer(SLAB_FRAMES * PAGE_SIZE);
        this.slabUsed = 0;
      }
      const offset = this.slabUsed++ * PAGE_SIZE;
      frame = dir[lo] = new Uint8Array(this.slab, offset, PAGE_SIZE);
      (this.words[hi] as Array<Uint32Array | undefined>)[lo] = new Uint32Array(this.slab, offset, PAGE_SIZE / 4);
      this.populated++;
    }
    return frame;
  }

  /**
   * Read the 64-bit little-endian word at `pa` (8-byte aligned) as two 32-bit halves into `out`
   * (out[0] = low, out[1] = high). Returns false, touching nothing, when `pa` is outside memory.
   * Page-table walks use this: no allocation, no BigInt.
   */
  read64(pa: number, out: Uint32Array): boolean {
    if (pa < 0 || pa + 8 > this.size) return false;
    const pfn = Math.floor(pa / 4096); // a literal: V8 turns it into a multiply, not a divide by a module constant
    const w = this.words[pfn >>> DIR_SHIFT]?.[pfn & (DIR_SIZE - 1)];
    if (w === undefined) { out[0] = 0; out[1] = 0; return true; }
    const i = (pa & PAGE_MASK) >>> 2;
    out[0] = w[i] ?? 0;
    out[1] = w[i + 1] ?? 0;
    return true;
  }

  /**
   * The frame's storage as 1024 little-endian 32-bit words, or undefined when it was never written (it
   * reads as zeros). A live view, not a copy: bulk scanners (the page-table dirty scan) read and update
   * words in place without a call per word. Writing through it never allocates a frame.
   */
  frameWords(pfn: number): Uint32Array | undefined {
    return this.words[pfn >>> DIR_SHIFT]?.[pfn & (DIR_SIZE - 1)];
  }

  /** Write a 64-bit word given as halves; false when outside memory. */
  write64(pa: number, lo: number, hi: number): boolean {
    if (pa < 0 || pa + 8 > this.size) return false;
    const pfn = Math.floor(pa / 4096); // a literal: V8 turns it into a multiply, not a divide by a module constant
    const w = this.wordsForWrite(pfn);
    const i = (pa & PAGE_MASK) >>> 2;
    w[i] = lo >>> 0;
    w[i + 1] = hi >>> 0;
    return true;
  }

  /**
   * Write `count` 32-bit words of `src` from index `from` at `pa` (4-byte aligned, inside one frame: a
   * queue record or table entry); false, memory untouched, when outside memory or crossing a frame.
   * One frame lookup for the block rather than one per word.
   */
  writeWords(pa: number, src: Uint32Array, from: number, count: number): boolean {
    if (pa < 0 || pa + count * 4 > this.size || (pa & 3) !== 0 || (pa & PAGE_MASK) + count * 4 > PAGE_SIZE) return false;
    if (count === 0) return true;
    const pfn = Math.floor(pa / 4096); // a literal: V8 turns it into a multiply, not a divide by a module constant
    const w = this.wordsForWrite(pfn);
    const i = (pa & PAGE_MASK) >>> 2;
    for (let k = 0; k < count; k++) w[i + k] = src[from + k] as number;
    return true;
  }

  /** Read `count` words at `pa` into `dest` from index `from`: the reading side of writeWords (same rules). */
  readWords(pa: number, dest: Uint32Array, from: number, count: number): boolean {
    if (pa < 0 || pa + count * 4 > this.size || (pa & 3) !== 0 || (pa & PAGE_MASK) + count * 4 > PAGE_SIZE) return false;
    const pfn = Math.floor(pa / 4096); // a literal: V8 turns it into a multiply, not a divide by a module constant
    const w = this.words[pfn >>> DIR_SHIFT]?.[pfn & (DIR_SIZE - 1)];
    if (w === undefined) {
      for (let k = 0; k < count; k++) dest[from + k] = 0;
      return true;
    }
    const i = (pa & PAGE_MASK) >>> 2;
    for (let k = 0; k < count; k++) dest[from + k] = w[i + k] as number;
    return true;
  }

  read32(pa: number): number {
    if (pa < 0 || pa + 4 > this.size) return BAD_ADDRESS;
    const pfn = Math.floor(pa / 4096); // a literal: V8 turns it into a multiply, not a divide by a module constant
    const w = this.words[pfn >>> DIR_SHIFT]?.[pfn & (DIR_SIZE - 1)];
    return w === undefined ? 0 : (w[(pa & PAGE_MASK) >>> 2] ?? 0);
  }

  write32(pa: number, value: number): boolean {
    if (pa < 0 || pa + 4 > this.size) return false;
    const pfn = Math.floor(pa / 4096); // a literal: V8 turns it into a multiply, not a divide by a module constant
    this.wordsForWrite(pfn)[(pa & PAGE_MASK) >>> 2] = value >>> 0;
    return true;
  }

  /** Copy `dest.length` bytes from `pa` into `dest`; false (dest untouched) when outside memory. */
  read(pa: number, dest: Uint8Array): boolean {
    if (!this.contains(pa, dest.length)) return false;
    const off0 = pa & PAGE_MASK;
    if (off0 + dest.length <= PAGE_SIZE) {
      // Inside one frame: no view of the frame for a small copy.
      const frame = this.frameForRead(Math.floor(pa / PAGE_SIZE));
      const n = dest.length;
      if (n <= 64) for (let i = 0; i < n; i++) dest[i] = frame[off0 + i] as number;
      else dest.set(frame.subarray(off0, off0 + n));
      return true;
    }
    let done = 0;
    while (done < dest.length) {
      const at = pa + done;
      const off = at & PAGE_MASK;
      const n = Math.min(PAGE_SIZE - off, dest.length - done);
      const frame = this.frameForRead(Math.floor(at / PAGE_SIZE));
      dest.set(frame.subarray(off, off + n), done);
      done += n;
    }
    return true;
  }

  /** Copy `src` to `pa`; false (memory untouched) when outside memory. */
  write(pa: number, src: Uint8Array): boolean {
    if (!this.contains(pa, src.length)) return false;
    if (src.length === 0) return true;
    if ((pa & PAGE_MASK) + src.length <= PAGE_SIZE) {
      const frame = this.frameForWrite(Math.floor(pa / PAGE_SIZE));
      const off = pa & PAGE_MASK;
      // A small copy is a loop: TypedArray.prototype.set costs more than a few bytes.
      const n = src.length;
      if (n <= 64) for (let i = 0; i < n; i++) frame[off + i] = src[i] as number;
      else frame.set(src, off);
      return true;
    }
    let done = 0;
    while (done < src.length) {
      const at = pa + done;
      const off = at & PAGE_MASK;
      const n = Math.min(PAGE_SIZE - off, src.length - done);
      this.frameForWrite(Math.floor(at / PAGE_SIZE)).set(src.subarray(done, done + n), off);
      done += n;
    }
    return true;
  }

  /** write(pa, src.subarray(from, from + n)) without making the view (a DMA chunk of a transfer's buffer). */
  writeFrom(pa: number, src: Uint8Array, from: number, n: number): boolean {
    if (from === 0 && n === src.length) return this.write(pa, src);
    if (!this.contains(pa, n) || from < 0 || from + n > src.length) return false;
    const off = pa & PAGE_MASK;
    if (n <= 64 && off + n <= PAGE_SIZE) {
      const frame = this.frameForWrite(Math.floor(pa / PAGE_SIZE));
      for (let i = 0; i < n; i++) frame[off + i] = src[from + i] as number;
      return true;
    }
    return this.write(pa, src.subarray(from, from + n));
  }

  /** read(pa, dest.subarray(from, from + n)) without making the view. */
  readInto(pa: number, dest: Uint8Array, from: number, n: number): boolean {
    if (from === 0 && n === dest.length) return this.read(pa, dest);
    if (!this.contains(pa, n) || from < 0 || from + n > dest.length) return false;
    const off = pa & PAGE_MASK;
    if (n <= 64 && off + n <= PAGE_SIZE) {
      const frame = this.frameForRead(Math.floor(pa / PAGE_SIZE));
      for (let i = 0; i < n; i++) dest[from + i] = frame[off + i] as number;
      return true;
    }
    return this.read(pa, dest.subarray(from, from + n));
  }

  /** Copy within memory (DMA between frames); false when either range is outside memory. */
  copy(dst: number, src: number, length: number): boolean {
    if (!this.contains(dst, length) || !this.contains(src, length)) return false;
    const buf = new Uint8Array(Math.min(length, 1 << 20));
    for (let done = 0; done < length; done += buf.length) {
      const chunk = buf.subarray(0, Math.min(buf.length, length - done));
      this.read(src + done, chunk);
      this.write(dst + done, chunk);
    }
    return true;
  }

  /** Zero a whole frame and release its storage (reads as zeros again). */
  discardFrame(pfn: number): void {
    const hi = pfn >>> DIR_SHIFT;
    const lo = pfn & (DIR_SIZE - 1);
    const dir = this.frames[hi];
    if (dir?.[lo] === undefined) return;
    dir[lo] = undefined;
    const w = this.words[hi];
    if (w !== undefined) w[lo] = undefined;
    this.populated--;
  }

  private counter(table: Array<Uint32Array | undefined>, pfn: number, create: boolean): Uint32Array | undefined {
    const hi = pfn >>> DIR_SHIFT;
    let chunk = table[hi];
    if (chunk === undefined && create) chunk = table[hi] = new Uint32Array(DIR_SIZE);
    return chunk;
  }

  refCount(pfn: number): number { return this.counter(this.refs, pfn, false)?.[pfn & (DIR_SIZE - 1)] ?? 0; }
  pinCount(pfn: number): number { return this.counter(this.pins, pfn, false)?.[pfn & (DIR_SIZE - 1)] ?? 0; }

  /** Whether frames [pfn, pfn + count) all have reference count 0 (a scan of the counter chunks). */
  refsZero(pfn: number, count: number): boolean {
    for (let at = pfn; at < pfn + count;) {
      const chunk = this.refs[at >>> DIR_SHIFT];
      const end = Math.min(pfn + count, ((at >>> DIR_SHIFT) + 1) * DIR_SIZE);
      if (chunk !== undefined) {
        for (let i = at; i < end; i++) if (chunk[i & (DIR_SIZE - 1)] !== 0) return false;
      }
      at = end;
    }
    return true;
  }

  /** addRef(pfn, refDelta) and addPin(pfn, pinDelta) in one step. */
  addCounts(pfn: number, refDelta: number, pinDelta: number): void {
    this.adjust(this.refs, pfn, refDelta, 'reference');
    this.adjust(this.pins, pfn, pinDelta, 'pin');
  }

  /** Adjust a frame's reference count by `delta`; returns the new count. Going below zero is a bug: RangeError. */
  addRef(pfn: number, delta: number): number { return this.adjust(this.refs, pfn, delta, 'reference'); }
  /** Adjust a frame's pin count by `delta`; returns the new count. */
  addPin(pfn: number, delta: number): number { return this.adjust(this.pins, pfn, delta, 'pin'); }

  private adjust(table: Array<Uint32Array | undefined>, pfn: number, delta: number, what: string): number {
    if (pfn < 0 || pfn >= this.frameCount) throw new RangeError(`frame ${pfn} is outside memory`);
    const chunk = this.counter(table, pfn, true) as Uint32Array;
    const i = pfn & (DIR_SIZE - 1);
    const next = (chunk[i] ?? 0) + delta;
    if (next < 0) throw new RangeError(`frame ${pfn}: ${what} count would go below zero`);
    chunk[i] = next;
    return next;
  }
}
