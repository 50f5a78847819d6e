// The selftest mock's paging domain (selftest.c over generic_pt's "mock" AMDv1 format): 2 KiB pages
// (MOCK_PAGE_SIZE, half the CPU page), the aperture [MOCK_APERTURE_START, MOCK_APERTURE_LAST], and with
// MOCK_IOMMUPT_HUGE 1 MiB leaves too. Nothing is in simulated memory: no device behind it does DMA.
//
// Storage is one extent per map call (sorted by IOVA, split by partial unmaps), not an object per page:
// the dirty-tracking tests map 128 MiB in 2 KiB pages. A huge leaf exists where one extent covers an
// aligned 1 MiB block whose PA is aligned the same way, as the page-table builder would have placed it.
// Dirty bits (domains allocated with DIRTY_TRACKING only) are one bit per mock page of the aperture, kept
// on a leaf's first page; read_and_clear reports whole leaves, as hardware dirty bits do.

import { fail, ok, type Result } from '../../errno.ts';
import type { DirtyOps, IopfHandler, IotlbFlusher, MapProt, PagingDomain } from '../../iommu/domain.ts';
import { MOCK_APERTURE_LAST, MOCK_APERTURE_START, MOCK_HUGE_PAGE_SIZE, MOCK_PAGE_SIZE } from './constants.ts';

export interface MockDomainOptions {
  readonly id: number;
  readonly type: 'dma' | 'unmanaged';
  readonly owner: unknown;
  /** MOCK_IOMMUPT_HUGE: 1 MiB leaves besides 2 KiB ones. */
  readonly huge: boolean;
  /** Allocated with IOMMU_HWPT_ALLOC_DIRTY_TRACKING: the domain has dirty ops. */
  readonly dirty: boolean;
  /** Allocated with IOMMU_HWPT_ALLOC_PASID. */
  readonly pasid?: boolean;
}

const PAGES = (MOCK_APERTURE_LAST + 1 - MOCK_APERTURE_START) / MOCK_PAGE_SIZE;

/** The mock's iommu_dirty_ops: set_dirty_tracking flips MOCK_DIRTY_TRACK, read_and_clear walks the bits. */
const MOCK_DIRTY_OPS: DirtyOps = {
  setDirtyTracking(domain, enabled) {
    if (!(domain instanceof MockPagingDomain)) return fail('EINVAL', 'not a mock domain');
    domain.tracking = enabled;
    return ok();
  },
  readAndClearDirty(domain, iova, size, noClear, mark) {
    if (!(domain instanceof MockPagingDomain)) return fail('EINVAL', 'not a mock domain');
    domain.collectDirty(iova, size, noClear, mark);
    return ok();
  },
};

export class MockPagingDomain implements PagingDomain {
  readonly id: number;
  readonly type: 'dma' | 'unmanaged';
  readonly owner: unknown;
  readonly aperture = { start: MOCK_APERTURE_START, last: MOCK_APERTURE_LAST };
  readonly pgsizeBitmap: number;
  readonly dirtyTracking: boolean;
  readonly dirtyOps: DirtyOps | null;
  readonly forceSnooping = false;
  readonly pasidCapable: boolean;
  iopfHandler: IopfHandler | null = null;
  /** MOCK_DIRTY_TRACK: set_dirty_tracking(true) was called. */
  tracking = false;
  // Extents [start, end) → pa, sorted by start, never overlapping.
  private starts: number[] = [];
  private ends: number[] = [];
  private pas: number[] = [];
  private dirtyBits: Uint32Array | null = null;

  constructor(o: MockDomainOptions) {
    this.id = o.id;
    this.type = o.type;
    this.owner = o.owner;
    this.pgsizeBitmap = MOCK_PAGE_SIZE | (o.huge ? MOCK_HUGE_PAGE_SIZE : 0);
    this.dirtyTracking = o.dirty;
    this.dirtyOps = o.dirty ? MOCK_DIRTY_OPS : null;
    this.pasidCapable = o.pasid === true;
  }

  isPaging(): this is PagingDomain { return true; }

  /** Number of extents (one per map call still mapped), for tests that care about storage size. */
  get extentCount(): number { return this.starts.length; }

  /** The mock cannot force snooping: ENFORCE_CACHE_COHERENCY is not among its capabilities. */
  enforceCacheCoherency(): boolean { return false; }

  addFlusher(_f: IotlbFlusher): void { /* no IOTLB behind the mock */ }
  removeFlusher(_f: IotlbFlusher): void { /* no IOTLB behind the mock */ }

  /** iommu_map(): 2 KiB alignment of iova, pa and size; inside the aperture; EEXIST over a mapping. */
  map(iova: number, pa: number, size: number, prot: MapProt): Result {
    if (!Number.isSafeInteger(iova) || !Number.isSafeInteger(pa) || !Number.isSafeInteger(size) || size <= 0 || pa < 0) {
      return fail('EINVAL', 'iova, pa and size must be non-negative integers, size > 0');
    }
    if (iova % MOCK_PAGE_SIZE !== 0 || pa % MOCK_PAGE_SIZE !== 0 || size % MOCK_PAGE_SIZE !== 0) {
      return fail('EINVAL', 'unaligned to the mock page size (2 KiB)');
    }
    if (iova < MOCK_APERTURE_START || iova + size - 1 > MOCK_APERTURE_LAST) return fail('EINVAL', `[0x${iova.toString(16)}, +0x${size.toString(16)}) is outside the mock aperture`);
    if (!prot.read && !prot.write) return fail('EINVAL', 'a mapping needs read or write permission');
    const i = this.firstEndingAfter(iova);
    if (i < this.starts.length && (this.starts[i] as number) < iova + size) return fail('EEXIST', `IOVA 0x${Math.max(iova, this.starts[i] as number).toString(16)} is already mapped`);
    this.starts.splice(i, 0, iova);
    this.ends.splice(i, 0, iova + size);
    this.pas.splice(i, 0, pa);
    return ok();
  }

  /** iommu_unmap(): everything mapped in [iova, iova+size), extents split at the edges; dirty bits dropped. */
  unmap(iova: number, size: number): number {
    if (!Number.isSafeInteger(iova) || !Number.isSafeInteger(size) || size <= 0) return 0;
    const end = iova + size;
    const i = this.firstEndingAfter(iova);
    let j = i;
    let done = 0;
    const keep: [number, number, number][] = [];
    // One splice for the whole range: partial extents at either edge keep their outer parts.
    while (j < this.starts.length && (this.starts[j] as number) < end) {
      const s = this.starts[j] as number;
      const e = this.ends[j] as number;
      const pa = this.pas[j] as number;
      const lo = Math.max(s, iova);
      const hi = Math.min(e, end);
      done += hi - lo;
      this.clearDirtyRange(lo, hi);
      if (s < lo) keep.push([s, lo, pa]);
      if (hi < e) keep.push([hi, e, pa + (hi - s)]);
      j++;
    }
    if (j > i) {
      this.starts.splice(i, j - i, ...keep.map((k) => k[0]));
      this.ends.splice(i, j - i, ...keep.map((k) => k[1]));
      this.pas.splice(i, j - i, ...keep.map((k) => k[2]));
    }
    return done;
  }

  iovaToPhys(iova: number): number | null {
    const i = this.extentAt(iova);
    return i < 0 ? null : (this.pas[i] as number) + (iova - (this.starts[i] as number));
  }

  /** The legacy per-leaf read-and-clear of PagingDomain. */
  readAndClearDirty(iova: number): boolean {
    let hit = false;
    this.collectDirty(iova, 1, false, () => { hit = true; });
    return hit;
  }

  /** The leaf mapping `iova`: [start, size], or null when unmapped. */
  leafAt(iova: number): { start: number; size: number } | null {
    const i = this.extentAt(iova);
    if (i < 0) return null;
    if ((this.pgsizeBitmap & MOCK_HUGE_PAGE_SIZE) !== 0) {
      const block = iova - (iova % MOCK_HUGE_PAGE_SIZE);
      const s = this.starts[i] as number;
      const pa = this.pas[i] as number;
      if (block >= s && block + MOCK_HUGE_PAGE_SIZE <= (this.ends[i] as number) && (pa + (block - s)) % MOCK_HUGE_PAGE_SIZE === 0) {
        return { start: block, size: MOCK_HUGE_PAGE_SIZE };
      }
    }
    return { start: iova - (iova % MOCK_PAGE_SIZE), size: MOCK_PAGE_SIZE };
  }

  /** pt_iommu_ops->set_dirty (selftest only): mark the leaf holding `iova` written. False when unmapped. */
  setDirty(iova: number): boolean {
    const leaf = this.leafAt(iova);
    if (leaf === null || this.dirtyOps === null) return false;
    const bits = (this.dirtyBits ??= new Uint32Array(Math.ceil(PAGES / 32)));
    const p = (leaf.start - MOCK_APERTURE_START) / MOCK_PAGE_SIZE;
    bits[p >>> 5] = ((bits[p >>> 5] as number) | (1 << (p & 31))) >>> 0;
    return true;
  }

  /** read_and_clear_dirty: each dirty leaf meeting [iova, iova+size) reported whole; cleared unless noClear. */
  collectDirty(iova: number, size: number, noClear: boolean, mark: (iova: number, bytes: number) => void): void {
    const bits = this.dirtyBits;
    if (bits === null || size <= 0) return;
    // A huge leaf keeps its bit on its first page, which may lie before `iova`.
    const from = Math.max(MOCK_APERTURE_START, iova - (iova % MOCK_HUGE_PAGE_SIZE));
    const to = Math.min(MOCK_APERTURE_LAST + 1, iova + size);
    if (from >= to) return;
    const p0 = (from - MOCK_APERTURE_START) / MOCK_PAGE_SIZE;
    const p1 = Math.ceil((to - MOCK_APERTURE_START) / MOCK_PAGE_SIZE);
    for (let w = p0 >>> 5; w <= (p1 - 1) >>> 5; w++) {
      let word = bits[w] as number;
      while (word !== 0) {
        const b = 31 - Math.clz32(word & -word);
        word = (word & ~(1 << b)) >>> 0;
        const p = w * 32 + b;
        if (p < p0 || p >= p1) continue;
        const at = MOCK_APERTURE_START + p * MOCK_PAGE_SIZE;
        const leaf = this.leafAt(at) ?? { start: at, size: MOCK_PAGE_SIZE };
        if (leaf.start + leaf.size <= iova) continue;
        mark(leaf.start, leaf.size);
        if (!noClear) bits[w] = ((bits[w] as number) & ~(1 << b)) >>> 0;
      }
    }
  }

  private clearDirtyRange(lo: number, hi: number): void {
    const bits = this.dirtyBits;
    if (bits === null) return;
    for (let at = lo; at < hi; at += MOCK_PAGE_SIZE) {
      const p = (at - MOCK_APERTURE_START) / MOCK_PAGE_SIZE;
      bits[p >>> 5] = ((bits[p >>> 5] as number) & ~(1 << (p & 31))) >>> 0;
    }
  }

  /** Index of the first extent whose end is above `iova`. */
  private firstEndingAfter(iova: number): number {
    let lo = 0;
    let hi = this.ends.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if ((this.ends[mid] as number) <= iova) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  private extentAt(iova: number): number {
    const i = this.firstEndingAfter(iova);
    return i < this.starts.length && (this.starts[i] as number) <= iova ? i : -1;
  }
}
