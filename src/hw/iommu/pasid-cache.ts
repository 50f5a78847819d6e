// The PASID cache: decoded PASID-table entries by (RID, PASID), each tagged with its DID so that
// PASID_CACHE_INVAL can drop a domain's entries. Least recently used evicted; only valid entries cached.

import type { PasidFields } from './device-table.ts';
import { LruIndex } from './lru.ts';

/** Flag bits of a cached PASID entry. */
export const PC_SSADE = 1;
export const PC_SRE = 2;

/** IOTLB key part of (DID, PASID): did * 2^20 + pasid. */
export function iotlbTag(did: number, pasid: number): number {
  return did * 1048576 + pasid;
}

export class PasidCache {
  private readonly index: LruIndex;
  readonly pgtt: Uint8Array;
  readonly flags: Uint8Array;
  readonly ssLevels: Uint8Array;
  readonly fsLevels: Uint8Array;
  readonly did: Uint16Array;
  readonly pasid: Int32Array;
  readonly ssRoot: Float64Array;
  readonly fsRoot: Float64Array;
  /** iotlbTag(did, pasid) and its hash part, precomputed for the IOTLB lookup. */
  readonly tag: Float64Array;
  readonly tagMix: Int32Array;

  constructor(capacity: number) {
    this.index = new LruIndex(capacity);
    this.pgtt = new Uint8Array(capacity);
    this.flags = new Uint8Array(capacity);
    this.ssLevels = new Uint8Array(capacity);
    this.fsLevels = new Uint8Array(capacity);
    this.did = new Uint16Array(capacity);
    this.pasid = new Int32Array(capacity);
    this.ssRoot = new Float64Array(capacity);
    this.fsRoot = new Float64Array(capacity);
    this.tag = new Float64Array(capacity);
    this.tagMix = new Int32Array(capacity);
  }

  get size(): number { return this.index.size; }
  get capacity(): number { return this.index.capacity; }

  /** The slot caching (rid, pasid) (made most recently used), or -1. */
  lookup(rid: number, pasid: number): number {
    const slot = this.index.find(rid, pasid);
    if (slot >= 0) this.index.touch(slot);
    return slot;
  }

  insert(rid: number, pasid: number, f: PasidFields): number {
    // Least recently used evicted.
    if (this.index.full) this.index.remove(this.index.victim());
    const slot = this.index.insert(rid, pasid);
    this.pgtt[slot] = f.pgtt;
    this.flags[slot] = (f.ssade ? PC_SSADE : 0) | (f.sre ? PC_SRE : 0);
    this.ssLevels[slot] = f.ssLevels;
    this.fsLevels[slot] = f.fsLevels;
    this.did[slot] = f.did;
    this.pasid[slot] = pasid;
    this.ssRoot[slot] = f.ssRoot;
    this.fsRoot[slot] = f.fsRoot;
    this.tag[slot] = iotlbTag(f.did, pasid);
    this.tagMix[slot] = LruIndex.mixA(iotlbTag(f.did, pasid));
    return slot;
  }

  /** PASID_CACHE_INVAL granularity 0. */
  invalidateAll(): void { this.index.clear(); }

  /** Granularity 1: every entry tagged with `did`; granularity 2 (pasid >= 0): and that PASID. */
  invalidate(did: number, pasid: number): void {
    const live = this.index.live;
    for (let s = 0; s < live.length; s++) {
      if (live[s] === 1 && this.did[s] === did && (pasid < 0 || this.pasid[s] === pasid)) this.index.remove(s);
    }
  }

  /** Cached (RID, PASID) keys, most recently used first. */
  keys(): Array<[number, number]> { return this.index.order().map((s) => [this.index.keyAOf(s), this.index.keyBOf(s)]); }
}
