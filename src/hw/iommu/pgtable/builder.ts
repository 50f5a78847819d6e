import type { PhysicalMemory } from '../../memory/physical-memory.ts';
import {
  addressBits, addressHalves, entryAddress, ENTRIES_PER_TABLE, FS_A, FS_D, FS_P, FS_PS, FS_RW, FS_US, FS_XD_HI,
  levelIndex, levelSize, PAGE_SHIFT, SS_A, SS_D, SS_PS, SS_R, SS_W, SS_X,
} from './format.ts';

/** Where table pages come from: a zeroed 4 KiB frame's PA, or -1 when out of memory. */
/** What the builder needs of memory: 64-bit entry reads and writes (PhysicalMemory, or a guest's RAM). */
export type TableMemory = Pick<PhysicalMemory, 'read64' | 'write64'> & Partial<Pick<PhysicalMemory, 'frameWords' | 'size'>>;

export interface TableAllocator {
  alloc(): number;
  free(pa: number): void;
}

export type PageTableFormat = 'first' | 'second';

export interface MapPerms {
  read: boolean; write: boolean; exec?: boolean; user?: boolean;
  /** Map with 4 KiB leaves only, whatever the alignment (a domain whose user turned large pages off). */
  smallPagesOnly?: boolean;
}

export interface PageTableOptions {
  readonly format: PageTableFormat;
  readonly levels: 4 | 5;
  /** Leaf sizes beyond 4 KiB the builder may use. */
  readonly pageSize2M?: boolean;
  readonly pageSize1G?: boolean;
}

export interface Mapping { pa: number; pageSize: number; read: boolean; write: boolean; exec: boolean; accessed: boolean; dirty: boolean }

/** What scanDirty() reports: the IOVA span of the leaves it cleared ([-1, -1) when none), dirty leaves seen. */
export interface DirtyScan { clearedStart: number; clearedEnd: number; dirtyLeaves: number }

interface ScanCtx {
  readonly present: number;
  readonly accessed: number;
  readonly dirty: number;
  readonly ps: number;
  readonly clear: boolean;
  readonly mark: (iova: number, bytes: number) => void;
  readonly out: DirtyScan;
}

const SIZE_4K = 1 << PAGE_SHIFT;
const SIZE_2M = 0x20_0000;
const SIZE_1G = 0x4000_0000;
const TWO_32 = 2 ** 32;
// leafTableFor()'s answers other than a table frame.
const LEAF_ABOVE = -1;
const NO_TABLE = -2;
const OUT_OF_TABLES = -3;

/**
 * v % 4 KiB for a non-negative integer (and zero exactly when v % 4 KiB is, for any v): `%` on a double
 * (IOVAs are above 2^31) is a C call in V8, the floor of a division by a power of two is exact and inline.
 */
const hasFrameWords = (m: TableMemory): m is TableMemory & Pick<PhysicalMemory, 'frameWords'> => m.frameWords !== undefined;

const off4K = (v: number): number => v - Math.floor(v / 4096) * 4096;

/** The frame number of the table or page an entry points to (entryAddress() / 4 KiB). */
const entryPfn = (lo: number, hi: number): number => (hi & 0xfffff) * 0x10_0000 + (lo >>> PAGE_SHIFT);

/**
 * Software that edits a page table living in simulated memory: the reference for the format, used by
 * test benches and by the kernel's IOMMU driver (as Linux's io-pgtable is used by drivers). It writes
 * memory only; the hardware learns of changes through the invalidation commands software sends.
 */
export class IoPageTable {
  readonly root: number;
  private tables = 1;
  /**
   * A failed map (out of memory part-way) may leave empty tables outside any later unmap's range; the
   * next unmap then prunes the whole tree, as every unmap used to. Otherwise every table below the
   * root holds an entry, and an unmap only needs to prune the tables its range touches.
   */
  private strayTables = false;
  private readonly e = new Uint32Array(2);
  /** The level of the absent entry that made the last findLeaf() fail (1 outside the table's range). */
  private missLevel = 1;
  /** What the last successful findLeaf() found. */
  private readonly found = { entry: 0, level: 0, base: 0 };
  /**
   * The 2 MiB slot (iova / 2 MiB) whose leaf table the last complete one-page walk (mapPage(),
   * unmapPage()) reached, that table's frame, and in `path` the table's frame at each level above; -1:
   * none. Reset whenever a table is freed (the only way a walk's path can change: table pointers are
   * written by this object alone) and while a walk is under way.
   */
  private walkSlot = -1;
  private walkPfn = 0;
  private readonly path = new Float64Array(6);
  /** 2^addressBits: the first IOVA the table cannot map. */
  private readonly limit: number;
  /** Frames below this are read through frameWords() by the one-page walks (0: always read64()). */
  private readonly directFrames: number;
  /** `mem` when it offers frameWords() and its size (null: read64() and write64() only). */
  private readonly direct: Pick<PhysicalMemory, 'frameWords'> | null;

  constructor(private readonly mem: TableMemory, private readonly alloc: TableAllocator, readonly opts: PageTableOptions) {
    const root = alloc.alloc();
    if (root < 0) throw new RangeError('no memory for a page-table root');
    this.root = root;
    this.limit = 2 ** addressBits(opts.levels);
    this.direct = hasFrameWords(mem) && mem.size !== undefined ? mem : null;
    this.directFrames = this.direct !== null && mem.size !== undefined ? Math.floor(mem.size / SIZE_4K) : 0;
  }

  get levels(): number { return this.opts.levels; }
  /** Bytes of memory the table's pages use. */
  get tableBytes(): number { return this.tables * SIZE_4K; }

  /**
   * Map [iova, iova + size) to [pa, pa + size), using the largest leaves alignment and options allow.
   * Fails (returns false, leaving what it mapped so far) on an existing mapping or when out of memory.
   */
  map(iova: number, pa: number, size: number, perms: MapPerms): boolean {
    if (size <= 0 || iova % SIZE_4K !== 0 || pa % SIZE_4K !== 0 || size % SIZE_4K !== 0) return false;
    if (iova + size > this.limit) return false;
    // Consecutive leaves of one size mostly land in the same table: remember the last one walked to.
    let cachedLevel = 0;
    let cachedBase = -1;
    let cachedTable = 0;
    let done = 0;
    while (done < size) {
      const at = iova + done;
      const level = perms.smallPagesOnly === true ? 1 : this.leafLevelFor(at, pa + done, size - done);
      const span = levelSize(level + 1);
      const base = Math.floor(at / span) * span;
      let table = cachedTable;
      if (level !== cachedLevel || base !== cachedBase) {
        table = this.tableFor(at, level);
        if (table < 0) {
          this.strayTables = true;
          return false;
        }
        cachedLevel = level;
        cachedBase = base;
        cachedTable = table;
      }
      if (!this.writeLeaf(table, at, pa + done, level, perms)) return false;
      done += levelSize(level);
    }
    return true;
  }

  /**
   * The frame of the last-level table for `iova`, walked down from the root with each level's table frame
   * kept in `path`, or taken from the last walk when that went to the same 2 MiB slot (consecutive faults
   * mostly map into one; only this object edits table pointers and it forgets the walk whenever it frees
   * a table; only over physical memory, as a guest's view of its RAM could change under the tables).
   * LEAF_ABOVE when a larger leaf maps `iova`; for a missing table, with `allocate` the rest of the path is
   * allocated (tableFor(); OUT_OF_TABLES when the allocator is empty), else NO_TABLE. The walk goes by frame
   * numbers (small integers) rather than table addresses (doubles, which V8 boxes at every step).
   */
  private leafTableFor(iova: number, allocate: boolean): number {
    const slot = Math.floor(iova / SIZE_2M);
    if (slot === this.walkSlot) return this.walkPfn;
    this.walkSlot = -1;
    let pfn = this.root / SIZE_4K;
    for (let level = this.opts.levels; level > 1; level--) {
      this.path[level] = pfn;
      const i = levelIndex(iova, level);
      this.readEntryOf(pfn, i);
      const lo = this.e[0] as number;
      if (this.present(lo)) {
        if (this.isLeafEntry(lo, level)) return LEAF_ABOVE;
        pfn = entryPfn(lo, this.e[1] as number);
        continue;
      }
      if (!allocate) return NO_TABLE;
      const next = this.alloc.alloc();
      if (next < 0) {
        this.strayTables = true;
        return OUT_OF_TABLES;
      }
      this.tables++;
      const [alo, ahi] = addressHalves(next);
      this.mem.write64(pfn * SIZE_4K + i * 8, (alo | this.tableBits()) >>> 0, ahi);
      pfn = next / SIZE_4K;
    }
    if (this.directFrames > 0) {
      this.walkSlot = slot;
      this.walkPfn = pfn;
    }
    return pfn;
  }

  /**
   * map(iova, pa, 4 KiB, perms) unless something already maps `iova`, in one walk (the IO page fault path
   * maps single pages): 1 when mapped; 0 when a leaf already maps `iova` (found before any table is
   * allocated, so nothing changed); -1 out of memory, leaving the state map() leaves. The caller has
   * checked alignment and range (a RangeError otherwise).
   */
  mapPage(iova: number, pa: number, perms: MapPerms): number {
    if (iova < 0 || off4K(iova) !== 0 || off4K(pa) !== 0 || iova + SIZE_4K > this.limit) throw new RangeError(`bad page map ${iova} -> ${pa}`);
    const pfn = this.leafTableFor(iova, true);
    if (pfn === LEAF_ABOVE) return 0;
    if (pfn < 0) return -1;
    const i = levelIndex(iova, 1);
    // `pa | bits` is `(pa % TWO_32) | bits` for an integer pa (ToInt32 keeps the low 32 bits either way).
    const lo = (pa | this.leafLo(perms, 1)) >>> 0;
    const hi = ((Math.floor(pa / TWO_32) & 0xfffff) | this.leafHi(perms)) >>> 0;
    const d = this.direct;
    const w = d !== null && pfn < this.directFrames ? d.frameWords(pfn) : undefined;
    if (w !== undefined) {
      // The table's frame holds data: write64() would store these two words into it.
      if (this.present(w[2 * i] as number)) return 0;
      w[2 * i] = lo;
      w[2 * i + 1] = hi;
      return 1;
    }
    this.readEntryOf(pfn, i);
    if (this.present(this.e[0] as number)) return 0;
    this.mem.write64(pfn * SIZE_4K + i * 8, lo, hi);
    return 1;
  }

  /**
   * read64() of entry `index` of the table in frame `pfn` into `e`: straight from the frame's words when
   * the memory offers them (a frame number and an index are small integers, where a table's address
   * passed to read64() is a double boxed per call on the one-page walks).
   */
  private readEntryOf(pfn: number, index: number): void {
    const d = this.direct;
    if (d !== null && pfn < this.directFrames) {
      const w = d.frameWords(pfn);
      this.e[0] = w === undefined ? 0 : (w[2 * index] ?? 0);
      this.e[1] = w === undefined ? 0 : (w[2 * index + 1] ?? 0);
      return;
    }
    this.mem.read64(pfn * SIZE_4K + index * 8, this.e);
  }

  private leafLevelFor(iova: number, pa: number, remaining: number): number {
    if (this.opts.pageSize1G === true && remaining >= SIZE_1G && iova % SIZE_1G === 0 && pa % SIZE_1G === 0) return 3;
    if (this.opts.pageSize2M === true && remaining >= SIZE_2M && iova % SIZE_2M === 0 && pa % SIZE_2M === 0) return 2;
    return 1;
  }

  // The table holding the level-`leafLevel` entry for `iova`, allocating the missing ones; -1 when a
  // larger leaf already covers it or out of memory.
  private tableFor(iova: number, leafLevel: number): number {
    let table = this.root;
    for (let level = this.opts.levels; level > leafLevel; level--) {
      const at = table + levelIndex(iova, level) * 8;
      this.mem.read64(at, this.e);
      const lo = this.e[0] as number;
      const hi = this.e[1] as number;
      if (this.present(lo)) {
        if (this.isLeafEntry(lo, level)) return -1; // a larger page already covers it
        table = entryAddress(lo, hi);
        continue;
      }
      const next = this.alloc.alloc();
      if (next < 0) return -1;
      this.tables++;
      const [alo, ahi] = addressHalves(next);
      this.mem.write64(at, (alo | this.tableBits()) >>> 0, ahi);
      table = next;
    }
    return table;
  }

  private writeLeaf(table: number, iova: number, pa: number, leafLevel: number, perms: MapPerms): boolean {
    const at = table + levelIndex(iova, leafLevel) * 8;
    this.mem.read64(at, this.e);
    if (this.present(this.e[0] as number)) return false;
    this.mem.write64(at, ((pa % TWO_32) | this.leafLo(perms, leafLevel)) >>> 0, ((Math.floor(pa / TWO_32) & 0xfffff) | this.leafHi(perms)) >>> 0);
    return true;
  }

  /**
   * Unmap [iova, iova + size). A leaf only partly inside the range is split into smaller leaves first
   * (the kernel's own rules about partial unmaps live above this). Returns the bytes unmapped.
   */
  unmap(iova: number, size: number): number {
    if (size === SIZE_4K && !this.strayTables && this.unmapPage(iova)) return SIZE_4K;
    let unmapped = 0;
    let at = iova;
    const end = iova + size;
    while (at < end) {
      if (!this.findLeaf(at)) {
        // Nothing is mapped up to the end of the absent entry's span (4 KiB outside the table's range).
        const span = levelSize(this.missLevel);
        at = Math.floor(at / span) * span + span;
        continue;
      }
      const { entry, level, base } = this.found;
      const leafSize = levelSize(level);
      if (base < at || base + leafSize > end) {
        this.splitLeaf(entry, level);
        continue;
      }
      this.mem.write64(entry, 0, 0);
      unmapped += leafSize;
      at = base + leafSize;
    }
    if (this.strayTables) {
      this.strayTables = false;
      this.pruneEmpty(this.root, this.opts.levels);
    } else if (size > 0) {
      this.pruneRange(this.root, this.opts.levels, 0, Math.max(iova, 0), Math.min(end, this.limit));
    }
    return unmapped;
  }

  /**
   * unmap(iova, 4 KiB) when a 4 KiB leaf maps `iova` (the IO page fault path unmaps single pages): one walk
   * down, the leaf cleared, then the tables of the path freed bottom-up while they are empty, as
   * pruneRange() frees them. False, with nothing changed, in every other case (unmap() does those).
   */
  private unmapPage(iova: number): boolean {
    if (!(iova >= 0 && iova < this.limit) || off4K(iova) !== 0) return false;
    const path = this.path;
    let pfn = this.leafTableFor(iova, false);
    if (pfn < 0) return false;
    this.readEntryOf(pfn, levelIndex(iova, 1));
    if (!this.present(this.e[0] as number)) return false;
    this.mem.write64(pfn * SIZE_4K + levelIndex(iova, 1) * 8, 0, 0);
    // The root is never freed; a table with an entry left ends the pruning.
    for (let level = 1; level < this.opts.levels; level++) {
      const i = levelIndex(iova, level);
      for (let k = i + 1; k < ENTRIES_PER_TABLE; k++) if (this.entryPresentOf(pfn, k)) return true;
      for (let k = 0; k < i; k++) if (this.entryPresentOf(pfn, k)) return true;
      const parent = path[level + 1] as number;
      this.mem.write64(parent * SIZE_4K + levelIndex(iova, level + 1) * 8, 0, 0);
      this.alloc.free(pfn * SIZE_4K);
      this.tables--;
      this.walkSlot = -1;
      pfn = parent;
    }
    return true;
  }

  /** The leaf mapping `iova`, read from memory (A/D bits as the hardware left them). */
  lookup(iova: number): Mapping | null {
    if (!this.findLeaf(iova)) return null;
    const found = this.found;
    this.mem.read64(found.entry, this.e);
    const lo = this.e[0] as number;
    const hi = this.e[1] as number;
    const size = levelSize(found.level);
    const pa = entryAddress(lo, hi) + (iova - found.base);
    if (this.opts.format === 'second') {
      return { pa, pageSize: size, read: (lo & SS_R) !== 0, write: (lo & SS_W) !== 0, exec: (lo & SS_X) !== 0, accessed: (lo & SS_A) !== 0, dirty: (lo & SS_D) !== 0 };
    }
    return { pa, pageSize: size, read: true, write: (lo & FS_RW) !== 0, exec: (hi & FS_XD_HI) === 0, accessed: (lo & FS_A) !== 0, dirty: (lo & FS_D) !== 0 };
  }

  /** Clear the dirty bit of the leaf mapping `iova`; returns whether it was set. */
  clearDirty(iova: number): boolean {
    if (!this.findLeaf(iova)) return false;
    const found = this.found;
    this.mem.read64(found.entry, this.e);
    const bit = this.opts.format === 'second' ? SS_D : FS_D;
    const lo = this.e[0] as number;
    if ((lo & bit) === 0) return false;
    this.mem.write64(found.entry, (lo & ~bit) >>> 0, this.e[1] as number);
    return true;
  }

  /**
   * The dirty-bit scan behind read-and-clear (Linux's iommu_dirty_ops.read_and_clear_dirty for this
   * format): one walk over the tables [iova, iova + size) touches, reading entries straight from the
   * frames' words and skipping absent subtrees, subtrees no walk went through since their pointer's A
   * bit was cleared, and never-written table frames. For every leaf with D set
   * it calls `mark` with the part of the leaf inside the range and, when `clear`, clears D in place and
   * widens `out`'s span to the whole leaf (what an IOTLB invalidation must cover afterwards).
   */
  scanDirty(iova: number, size: number, clear: boolean, mark: (iova: number, bytes: number) => void, out: DirtyScan): void {
    out.clearedStart = -1;
    out.clearedEnd = -1;
    out.dirtyLeaves = 0;
    if (!(size > 0) || iova < 0 || iova >= this.limit) return;
    const end = Math.min(iova + size, this.limit);
    const second = this.opts.format === 'second';
    this.scanTable(this.root, this.opts.levels, 0, iova, end, {
      present: second ? SS_R | SS_W : FS_P, accessed: second ? SS_A : FS_A, dirty: second ? SS_D : FS_D, ps: second ? SS_PS : FS_PS, clear, mark, out,
    });
  }

  private scanTable(table: number, level: number, base: number, start: number, end: number, c: ScanCtx): void {
    // Tables are whole frames; one never written holds only zeros (nothing present below it).
    // The scan reads frames directly; only tables over physical memory (not a guest's view) offer that.
    if (this.mem.frameWords === undefined) throw new Error('scanDirty needs a table memory with direct frame access');
    const w = this.mem.frameWords(Math.floor(table / SIZE_4K));
    if (w === undefined) return;
    const span = levelSize(level);
    const i0 = start > base ? Math.floor((start - base) / span) : 0;
    const i1 = Math.min(ENTRIES_PER_TABLE - 1, Math.floor((end - 1 - base) / span));
    const { present, dirty } = c;
    if (level === 1) {
      // The hot loop, bound by memory bandwidth (a 64 GiB range of 4 KiB leaves is 128 MiB of tables):
      // the low words of eight entries (one 64-byte line) are OR-ed and tested for D at once, and only a
      // line with a D somewhere is looked at entry by entry.
      let i = i0;
      for (; i <= i1 && (i & 7) !== 0; i++) this.leafWord(w, i, base, start, end, c);
      for (; i + 7 <= i1; i += 8) {
        const k = 2 * i;
        if ((((w[k] as number) | (w[k + 2] as number) | (w[k + 4] as number) | (w[k + 6] as number) | (w[k + 8] as number)
          | (w[k + 10] as number) | (w[k + 12] as number) | (w[k + 14] as number)) & dirty) === 0) continue;
        for (let j = i; j < i + 8; j++) this.leafWord(w, j, base, start, end, c);
      }
      for (; i <= i1; i++) this.leafWord(w, i, base, start, end, c);
      return;
    }
    for (let i = i0; i <= i1; i++) {
      const lo = w[2 * i] as number;
      if ((lo & present) === 0) continue;
      const at = base + i * span;
      if ((lo & c.ps) !== 0) {
        if ((lo & dirty) !== 0) this.dirtyLeaf(w, i, lo, at, span, start, end, c);
        continue;
      }
      // The hardware sets A on every entry of a walk's path before it sets D on the leaf, so a pointer
      // with A clear has no D below it that is newer than the clear: skip the whole subtree.
      if ((lo & c.accessed) === 0) continue;
      this.scanTable(entryAddress(lo, w[2 * i + 1] as number), level - 1, at, start, end, c);
      // A subtree inside the range has no D left after a clearing scan: clear the pointer's A so the next
      // scan skips it until a walk goes through it again (its cached leaves were just invalidated or,
      // never written, carry no write permission for the IOTLB to use without a walk).
      if (c.clear && at >= start && at + span <= end) w[2 * i] = (lo & ~c.accessed) >>> 0;
    }
  }

  /** One 4 KiB leaf entry of the scan. */
  private leafWord(w: Uint32Array, i: number, base: number, start: number, end: number, c: ScanCtx): void {
    const lo = w[2 * i] as number;
    if ((lo & c.dirty) === 0 || (lo & c.present) === 0) return;
    this.dirtyLeaf(w, i, lo, base + i * SIZE_4K, SIZE_4K, start, end, c);
  }

  private dirtyLeaf(w: Uint32Array, i: number, lo: number, at: number, span: number, start: number, end: number, c: ScanCtx): void {
    const from = at < start ? start : at;
    const to = at + span > end ? end : at + span;
    c.out.dirtyLeaves++;
    c.mark(from, to - from);
    if (!c.clear) return;
    w[2 * i] = (lo & ~c.dirty) >>> 0;
    const out = c.out;
    if (out.clearedStart < 0 || at < out.clearedStart) out.clearedStart = at;
    if (at + span > out.clearedEnd) out.clearedEnd = at + span;
  }

  /** Free every table page; the table is unusable afterwards. */
  destroy(): void {
    this.freeTable(this.root, this.opts.levels);
    this.tables = 0;
  }

  /**
   * Find the leaf mapping `iova`: false when none, else true with its entry's PA, level and base IOVA in
   * `found` (fields rather than a new object: every unmap and lookup walks).
   */
  private findLeaf(iova: number): boolean {
    this.missLevel = 1;
    if (iova < 0 || iova >= this.limit) return false;
    let table = this.root;
    for (let level = this.opts.levels; level >= 1; level--) {
      const at = table + levelIndex(iova, level) * 8;
      this.mem.read64(at, this.e);
      const lo = this.e[0] as number;
      if (!this.present(lo)) {
        this.missLevel = level;
        return false;
      }
      if (this.isLeafEntry(lo, level)) {
        const size = levelSize(level);
        const f = this.found;
        f.entry = at;
        f.level = level;
        f.base = Math.floor(iova / size) * size;
        return true;
      }
      table = entryAddress(lo, this.e[1] as number);
    }
    return false;
  }

  /** Replace a large leaf by a table of leaves one level down with the same permissions. */
  private splitLeaf(entry: number, level: number): void {
    this.mem.read64(entry, this.e);
    const lo = this.e[0] as number;
    const hi = this.e[1] as number;
    const pa = entryAddress(lo, hi);
    const next = this.alloc.alloc();
    if (next < 0) {
      // The unmap stops here without pruning what it cleared so far: the next one prunes the whole tree.
      this.strayTables = true;
      throw new RangeError('no memory to split a large page');
    }
    this.tables++;
    const child = level - 1;
    const childSize = levelSize(child);
    const psBit = this.opts.format === 'second' ? SS_PS : FS_PS;
    const flagsLo = (lo & 0xfff & (child === 1 ? ~psBit : 0xfff)) >>> 0;
    const flagsHi = (hi & ~0xfffff) >>> 0;
    for (let i = 0; i < ENTRIES_PER_TABLE; i++) {
      const [alo, ahi] = addressHalves(pa + i * childSize);
      this.mem.write64(next + i * 8, (alo | flagsLo) >>> 0, (ahi | flagsHi) >>> 0);
    }
    const [tlo, thi] = addressHalves(next);
    // The new pointer keeps the leaf's accessed state (A, or D which implies it), so the dirty scan,
    // which skips pointers with A clear, still finds the D bits the split copied into the children.
    const accessed = this.opts.format === 'second' ? ((lo & (SS_A | SS_D)) !== 0 ? SS_A : 0) : ((lo & (FS_A | FS_D)) !== 0 ? FS_A : 0);
    this.mem.write64(entry, (tlo | this.tableBits() | accessed) >>> 0, thi);
  }

  /** Free tables left without entries; returns whether `table` is now empty. */
  private pruneEmpty(table: number, level: number): boolean {
    let empty = true;
    for (let i = 0; i < ENTRIES_PER_TABLE; i++) {
      const at = table + i * 8;
      this.mem.read64(at, this.e);
      const lo = this.e[0] as number;
      if (!this.present(lo)) continue;
      if (level > 1 && !this.isLeafEntry(lo, level)) {
        const child = entryAddress(lo, this.e[1] as number);
        if (this.pruneEmpty(child, level - 1)) {
          this.mem.write64(at, 0, 0);
          this.alloc.free(child);
          this.tables--;
          this.walkSlot = -1;
          continue;
        }
      }
      empty = false;
    }
    return empty;
  }

  /**
   * `pruneEmpty` limited to the entries overlapping [lo, hi) of `table` (which maps from `tableBase`):
   * the same tables freed in the same order, given that no table outside the range is empty. Whether
   * `table` is empty afterwards also needs its entries outside the range: those after it are read
   * first, as a run of one-page unmaps in ascending order finds the next entry present at once.
   */
  private pruneRange(table: number, level: number, tableBase: number, lo: number, hi: number): boolean {
    if (lo >= hi) return false;
    const span = levelSize(level);
    const first = Math.max(0, Math.floor((lo - tableBase) / span));
    const last = Math.min(ENTRIES_PER_TABLE - 1, Math.floor((hi - 1 - tableBase) / span));
    let empty = true;
    for (let i = first; i <= last; i++) {
      const at = table + i * 8;
      this.mem.read64(at, this.e);
      const elo = this.e[0] as number;
      if (!this.present(elo)) continue;
      if (level > 1 && !this.isLeafEntry(elo, level)) {
        const child = entryAddress(elo, this.e[1] as number);
        if (this.pruneRange(child, level - 1, tableBase + i * span, lo, hi)) {
          this.mem.write64(at, 0, 0);
          this.alloc.free(child);
          this.tables--;
          this.walkSlot = -1;
          continue;
        }
      }
      empty = false;
    }
    if (!empty) return false;
    for (let i = last + 1; i < ENTRIES_PER_TABLE; i++) if (this.entryPresent(table, i)) return false;
    for (let i = 0; i < first; i++) if (this.entryPresent(table, i)) return false;
    return true;
  }

  private entryPresentOf(pfn: number, i: number): boolean {
    this.readEntryOf(pfn, i);
    return this.present(this.e[0] as number);
  }

  private entryPresent(table: number, i: number): boolean {
    this.mem.read64(table + i * 8, this.e);
    return this.present(this.e[0] as number);
  }

  /** Bytes of table pages that `pruneEmpty` over the whole tree would free now (tests: none after an unmap). */
  emptyTableBytes(): number {
    return this.countEmpty(this.root, this.opts.levels).freed * SIZE_4K;
  }

  // Read-only twin of pruneEmpty: how many tables it would free, and whether `table` would end up empty.
  private countEmpty(table: number, level: number): { freed: number; empty: boolean } {
    let freed = 0;
    let empty = true;
    for (let i = 0; i < ENTRIES_PER_TABLE; i++) {
      this.mem.read64(table + i * 8, this.e);
      const lo = this.e[0] as number;
      if (!this.present(lo)) continue;
      if (level > 1 && !this.isLeafEntry(lo, level)) {
        const sub = this.countEmpty(entryAddress(lo, this.e[1] as number), level - 1);
        freed += sub.freed;
        if (sub.empty) {
          freed++;
          continue;
        }
      }
      empty = false;
    }
    return { freed, empty };
  }

  private freeTable(table: number, level: number): void {
    for (let i = 0; level > 1 && i < ENTRIES_PER_TABLE; i++) {
      this.mem.read64(table + i * 8, this.e);
      const lo = this.e[0] as number;
      if (this.present(lo) && !this.isLeafEntry(lo, level)) this.freeTable(entryAddress(lo, this.e[1] as number), level - 1);
    }
    this.alloc.free(table);
    this.walkSlot = -1;
  }

  private present(lo: number): boolean {
    return this.opts.format === 'second' ? (lo & (SS_R | SS_W)) !== 0 : (lo & FS_P) !== 0;
  }

  private isLeafEntry(lo: number, level: number): boolean {
    return level === 1 || (lo & (this.opts.format === 'second' ? SS_PS : FS_PS)) !== 0;
  }

  /** Bits of an entry pointing to a table: every permission, so the leaf alone decides. */
  private tableBits(): number {
    return this.opts.format === 'second' ? SS_R | SS_W | SS_X : FS_P | FS_RW | FS_US;
  }

  private leafLo(perms: MapPerms, level: number): number {
    if (this.opts.format === 'second') {
      return (perms.read ? SS_R : 0) | (perms.write ? SS_W : 0) | (perms.exec === true ? SS_X : 0) | (level > 1 ? SS_PS : 0);
    }
    return FS_P | (perms.write ? FS_RW : 0) | (perms.user === false ? 0 : FS_US) | (level > 1 ? FS_PS : 0);
  }

  private leafHi(perms: MapPerms): number {
    return this.opts.format === 'second' || perms.exec !== false ? 0 : FS_XD_HI;
  }
}
