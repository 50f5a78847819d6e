// The IOTLB: translations by (DID, PASID, IOVA page, page size), least recently used evicted
// (docs/hw-iommu.md, "Caches"). A lookup does not know the page size in advance, so it probes each size
// that has entries, 4 KiB first. Everything is typed arrays: a hit allocates nothing.

import { LruIndex } from './lru.ts';
import { iotlbTag } from './pasid-cache.ts';

/** Ranges of up to this many 4 KiB pages are invalidated by key lookups rather than a scan of every slot. */
const RANGE_LOOKUP_PAGES = 64;

/** Page sizes by size code (the low 2 bits of an IOTLB key's tag). */
export const SIZE_4K = 4096;
export const SIZE_2M = 2 ** 21;
export const SIZE_1G = 2 ** 30;

/** Rights of an entry: the permission bits (1 R, 2 W, 4 X) plus what a hit may skip the walk for. */
export const TLB_PERMS = 7;
/** A write may use the entry without a walk: D is already set, or no A/D tracking applies. */
export const TLB_DIRTY_OK = 8;
/** A non-privileged request may use the entry: a non-privileged walk filled it, or no stage has U/S. */
export const TLB_USER_OK = 16;

export class Iotlb {
  private readonly index: LruIndex;
  /** PA of the first byte of the page, and the IOVA it maps. */
  readonly paBase: Float64Array;
  readonly iovaBase: Float64Array;
  readonly pageSize: Float64Array;
  readonly rights: Uint8Array;
  readonly did: Uint16Array;
  readonly pasid: Int32Array;
  private n4k = 0;
  private n2m = 0;
  private n1g = 0;
  /** Slots a short range invalidation found, to remove in slot order. */
  private readonly hits = new Int32Array(RANGE_LOOKUP_PAGES + 8);

  constructor(capacity: number) {
    this.index = new LruIndex(capacity);
    this.paBase = new Float64Array(capacity);
    this.iovaBase = new Float64Array(capacity);
    this.pageSize = new Float64Array(capacity);
    this.rights = new Uint8Array(capacity);
    this.did = new Uint16Array(capacity);
    this.pasid = new Int32Array(capacity);
  }

  get size(): number { return this.index.size; }
  get capacity(): number { return this.index.capacity; }

  /**
   * The entry translating `iova` for (DID, PASID) (made most recently used), or -1. `tag` is
   * iotlbTag(did, pasid) and `mix` LruIndex.mixA(tag), both precomputed per PASID entry. Keys are
   * (tag, page number * 4 + size code). The divisors are literals (see LruIndex.mixA).
   */
  lookup(tag: number, mix: number, iova: number): number {
    const index = this.index;
    let slot: number;
    if (this.n4k !== 0) {
      slot = index.findMixed(tag, mix, Math.floor(iova / 4096) * 4);
      if (slot >= 0) { index.touch(slot); return slot; }
    }
    if (this.n2m !== 0) {
      slot = index.findMixed(tag, mix, Math.floor(iova / 2097152) * 4 + 1);
      if (slot >= 0) { index.touch(slot); return slot; }
    }
    if (this.n1g !== 0) {
      slot = index.findMixed(tag, mix, Math.floor(iova / 1073741824) * 4 + 2);
      if (slot >= 0) { index.touch(slot); return slot; }
    }
    return -1;
  }

  /**
   * Cache the translation of the `pageSize` page holding `iova` (to `pa`, the address of `iova`) for the
   * (DID, PASID) of `tag` and `mix` (as for lookup), replacing any entry with the same key.
   */
  insert(tag: number, mix: number, did: number, pasid: number, iova: number, pa: number, pageSize: number, rights: number): number {
    const code = pageSize === SIZE_4K ? 0 : pageSize === SIZE_2M ? 1 : pageSize === SIZE_1G ? 2 : -1;
    if (code < 0) return -1; // the walker only produces these three sizes
    const page = Math.floor(iova / pageSize);
    const key = page * 4 + code;
    const existing = this.index.findMixed(tag, mix, key);
    if (existing >= 0) this.remove(existing);
    // Least recently used evicted.
    if (this.index.full) this.remove(this.index.victim());
    const slot = this.index.insertMixed(tag, mix, key);
    const base = page * pageSize;
    this.iovaBase[slot] = base;
    this.paBase[slot] = pa - (iova - base);
    this.pageSize[slot] = pageSize;
    this.rights[slot] = rights;
    this.did[slot] = did;
    this.pasid[slot] = pasid;
    if (code === 0) this.n4k++; else if (code === 1) this.n2m++; else this.n1g++;
    return slot;
  }

  remove(slot: number): void {
    if (this.index.live[slot] !== 1) return;
    const size = this.pageSize[slot];
    if (size === SIZE_4K) this.n4k--; else if (size === SIZE_2M) this.n2m--; else this.n1g--;
    this.index.remove(slot);
  }

  /** IOTLB_INVAL granularity 0. */
  invalidateAll(): void {
    this.index.clear();
    this.n4k = this.n2m = this.n1g = 0;
  }

  /** Granularity 1 (pasid < 0): every entry of `did`; granularity 2: of `did` and `pasid`. */
  invalidate(did: number, pasid: number): void {
    const live = this.index.live;
    for (let s = 0; s < live.length; s++) {
      if (live[s] === 1 && this.did[s] === did && (pasid < 0 || this.pasid[s] === pasid)) this.remove(s);
    }
  }

  /**
   * Granularity 3: entries of (`did`, `pasid`) overlapping the `pages` 4 KiB pages from page number
   * `firstPage`, whatever their page size (a 2 MiB entry overlapping one 4 KiB page of the range goes).
   */
  invalidateRange(did: number, pasid: number, firstPage: number, pages: number): void {
    const start = firstPage * SIZE_4K;
    const end = (firstPage + pages) * SIZE_4K;
    // (An empty range keeps the scan: it removes a larger entry straddling its start, as it always did.)
    if (pages >= 1 && pages <= RANGE_LOOKUP_PAGES && Number.isSafeInteger(firstPage) && firstPage >= 0 && Number.isInteger(pages)) {
      this.invalidateKeys(did, pasid, start, end);
      return;
    }
    const live = this.index.live;
    for (let s = 0; s < live.length; s++) {
      if (live[s] !== 1 || this.did[s] !== did || this.pasid[s] !== pasid) continue;
      const base = this.iovaBase[s] as number;
      if (base < end && base + (this.pageSize[s] as number) > start) this.remove(s);
    }
  }

  /**
   * invalidateRange for a short range: the entries overlapping [start, end) have the keys of its 4 KiB
   * pages, of the 2 MiB and of the 1 GiB pages it touches; they are removed in ascending slot order,
   * as the scan does (the free slots are then reused in the same order).
   */
  private invalidateKeys(did: number, pasid: number, start: number, end: number): void {
    const tag = iotlbTag(did, pasid);
    const mix = LruIndex.mixA(tag);
    const hits = this.hits;
    let n = 0;
    if (this.n4k !== 0) {
      for (let p = start / SIZE_4K; p < end / SIZE_4K; p++) {
        const s = this.index.findMixed(tag, mix, p * 4);
        if (s >= 0) hits[n++] = s;
      }
    }
    if (this.n2m !== 0) {
      for (let p = Math.floor(start / SIZE_2M); p <= Math.floor((end - 1) / SIZE_2M); p++) {
        const s = this.index.findMixed(tag, mix, p * 4 + 1);
        if (s >= 0) hits[n++] = s;
      }
    }
    if (this.n1g !== 0) {
      for (let p = Math.floor(start / SIZE_1G); p <= Math.floor((end - 1) / SIZE_1G); p++) {
        const s = this.index.findMixed(tag, mix, p * 4 + 2);
        if (s >= 0) hits[n++] = s;
      }
    }
    if (n > 1) hits.subarray(0, n).sort();
    for (let i = 0; i < n; i++) this.remove(hits[i] as number);
  }

  /** Live slots, most recently used first (tests and diagnostics). */
  slots(): number[] { return this.index.order(); }
}
