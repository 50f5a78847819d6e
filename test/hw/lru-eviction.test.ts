// The LRU index's victim choice when the cache is larger than its eviction candidate buffer (256): the
// buffer is refilled by a scan (a quickselect of the k-th oldest stamp, then a heap of the entries up to
// it), and every victim must still be the least recently used entry of the whole cache, whatever the
// pattern of inserts, touches and removals.

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { LruIndex } from '../../src/hw/iommu/lru.ts';

type Op = { kind: 'insert' | 'touch' | 'remove'; key: number };

describe('LRU index larger than its candidate buffer', () => {
  it('evicts exactly the least recently used entry (model: a last-use counter per key)', () => {
    const arbOp = fc.record({ kind: fc.constantFrom('insert' as const, 'insert' as const, 'touch' as const, 'remove' as const), key: fc.integer({ min: 0, max: 1200 }) });
    fc.assert(fc.property(fc.integer({ min: 65, max: 700 }), fc.array(arbOp, { minLength: 200, maxLength: 2500 }), (cap, ops: Op[]) => {
      const idx = new LruIndex(cap);
      const lastUse = new Map<number, number>(); // key → time of last insert or touch
      let now = 0;
      for (const op of ops) {
        const slot = idx.find(0, op.key);
        expect(slot >= 0).toBe(lastUse.has(op.key));
        if (op.kind === 'insert' && slot < 0) {
          if (idx.full) {
            let oldest = -1;
            let oldestT = Infinity;
            for (const [k, t] of lastUse) if (t < oldestT) { oldest = k; oldestT = t; }
            const v = idx.victim();
            expect(idx.keyBOf(v)).toBe(oldest);
            idx.remove(v);
            lastUse.delete(oldest);
          }
          idx.insert(0, op.key);
          lastUse.set(op.key, ++now);
        } else if (op.kind === 'touch' && slot >= 0) {
          idx.touch(slot);
          lastUse.set(op.key, ++now);
        } else if (op.kind === 'remove' && slot >= 0) {
          idx.remove(slot);
          lastUse.delete(op.key);
        }
        expect(idx.size).toBe(lastUse.size);
      }
    }), { numRuns: 60 });
  });

  it('cycles a full cache in insertion order (slots reused in eviction order, the IOTLB under page faults)', () => {
    const cap = 1024;
    const idx = new LruIndex(cap);
    for (let k = 0; k < cap; k++) idx.insert(1, k);
    for (let k = cap; k < 5 * cap; k++) {
      const v = idx.victim();
      expect(idx.keyBOf(v)).toBe(k - cap);
      idx.remove(v);
      idx.insert(1, k);
    }
  });
});
