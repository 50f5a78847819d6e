// The context cache: decoded context entries by requester ID, least recently used evicted. Only valid
// entries are cached (a fault re-reads memory next time). Memory writes never refresh it: CONTEXT_INVAL does.

import type { ContextFields } from './device-table.ts';
import { LruIndex } from './lru.ts';

/** Flag bits of a cached context. */
export const CC_PRE = 1;
export const CC_PASIDE = 2;

export class ContextCache {
  private readonly index: LruIndex;
  readonly mode: Uint8Array;
  readonly flags: Uint8Array;
  readonly ridPasid: Int32Array;
  /** 2^PDTS, the PASID directory's entry count. */
  readonly dirEntries: Float64Array;
  readonly pasidDir: Float64Array;

  constructor(capacity: number) {
    this.index = new LruIndex(capacity);
    this.mode = new Uint8Array(capacity);
    this.flags = new Uint8Array(capacity);
    this.ridPasid = new Int32Array(capacity);
    this.dirEntries = new Float64Array(capacity);
    this.pasidDir = new Float64Array(capacity);
  }

  get size(): number { return this.index.size; }
  get capacity(): number { return this.index.capacity; }

  /** The slot caching `rid` (made most recently used), or -1. */
  lookup(rid: number): number {
    const slot = this.index.find(rid, 0);
    if (slot >= 0) this.index.touch(slot);
    return slot;
  }

  insert(rid: number, f: ContextFields): number {
    // Least recently used evicted.
    if (this.index.full) this.index.remove(this.index.victim());
    const slot = this.index.insert(rid, 0);
    this.mode[slot] = f.mode;
    this.flags[slot] = (f.pri ? CC_PRE : 0) | (f.pasidEnable ? CC_PASIDE : 0);
    this.ridPasid[slot] = f.ridPasid;
    this.dirEntries[slot] = 2 ** f.pdts;
    this.pasidDir[slot] = f.pasidDir;
    return slot;
  }

  /** CONTEXT_INVAL granularity 0. */
  invalidateAll(): void { this.index.clear(); }

  /** CONTEXT_INVAL granularity 1: one RID. */
  invalidateRid(rid: number): void {
    const slot = this.index.find(rid, 0);
    if (slot >= 0) this.index.remove(slot);
  }

  /** Cached RIDs, most recently used first. */
  rids(): number[] { return this.index.order().map((s) => this.index.keyAOf(s)); }
}
