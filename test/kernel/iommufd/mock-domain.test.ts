// The selftest mock's paging domain on its own: range storage against a per-page reference model
// (fast-check), huge leaves and whole-leaf dirty reporting, and the 2 KiB map rules.

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { MOCK_APERTURE_LAST, MOCK_APERTURE_START, MOCK_HUGE_PAGE_SIZE, MOCK_PAGE_SIZE } from '../../../src/kernel/iommufd/selftest/constants.ts';
import { MockPagingDomain } from '../../../src/kernel/iommufd/selftest/mock-domain.ts';

const RW = { read: true, write: true };
const domain = (o: { huge?: boolean; dirty?: boolean } = {}) => new MockPagingDomain({ id: 1, type: 'unmanaged', owner: null, huge: o.huge ?? false, dirty: o.dirty ?? false });
const A = MOCK_APERTURE_START;
const P = MOCK_PAGE_SIZE;

describe('MockPagingDomain', () => {
  it('map: 2 KiB alignment, the aperture, EEXIST; pgsize_bitmap 2 KiB or 2 KiB | 1 MiB', () => {
    const d = domain();
    expect(d.pgsizeBitmap).toBe(P);
    expect(domain({ huge: true }).pgsizeBitmap).toBe(P | MOCK_HUGE_PAGE_SIZE);
    expect(d.map(A + 1024, 0, P, RW).ok).toBe(false);
    expect(d.map(A - P, 0, P, RW).ok).toBe(false);
    expect(d.map(MOCK_APERTURE_LAST + 1 - P, 0, 2 * P, RW).ok).toBe(false);
    expect(d.map(A + P, 0x10_0000 + P, P, RW).ok).toBe(true);
    const again = d.map(A, 0x20_0000, 2 * P, RW);
    expect(again.ok ? 'ok' : again.errno).toBe('EEXIST');
    expect(d.iovaToPhys(A + P + 7)).toBe(0x10_0000 + P + 7);
    expect(d.iovaToPhys(A)).toBeNull();
  });

  it('range storage agrees with a per-page model under random maps and unmaps', () => {
    const PAGES = 256;
    const op = fc.record({ kind: fc.constantFrom('map', 'unmap'), first: fc.integer({ min: 0, max: PAGES - 1 }), n: fc.integer({ min: 1, max: 32 }), pa: fc.integer({ min: 0, max: 1 << 20 }) });
    fc.assert(fc.property(fc.array(op, { maxLength: 60 }), (ops) => {
      const d = domain();
      const model = new Map<number, number>();
      for (const o of ops) {
        const n = Math.min(o.n, PAGES - o.first);
        const iova = A + o.first * P;
        if (o.kind === 'map') {
          const free = Array.from({ length: n }, (_, i) => !model.has(o.first + i)).every(Boolean);
          const r = d.map(iova, o.pa * P, n * P, RW);
          expect(r.ok).toBe(free);
          if (free) for (let i = 0; i < n; i++) model.set(o.first + i, (o.pa + i) * P);
        } else {
          let expected = 0;
          for (let i = 0; i < n; i++) if (model.delete(o.first + i)) expected += P;
          expect(d.unmap(iova, n * P)).toBe(expected);
        }
      }
      for (let p = 0; p < PAGES; p++) expect(d.iovaToPhys(A + p * P + 5)).toBe(model.has(p) ? (model.get(p) as number) + 5 : null);
    }), { numRuns: 150 });
  });

  it('huge leaves: an aligned 1 MiB block of one map is one leaf, dirty-reported whole; elsewhere 2 KiB leaves', () => {
    const d = domain({ huge: true, dirty: true });
    // 3 MiB at A, PA aligned the same way: three huge leaves. 2 KiB more after it: a small leaf.
    expect(d.map(A, 0x4000_0000, 3 * MOCK_HUGE_PAGE_SIZE, RW).ok).toBe(true);
    expect(d.map(A + 3 * MOCK_HUGE_PAGE_SIZE, 0x5000_0000 + P, P, RW).ok).toBe(true);
    expect(d.leafAt(A + MOCK_HUGE_PAGE_SIZE + 12345)).toEqual({ start: A + MOCK_HUGE_PAGE_SIZE, size: MOCK_HUGE_PAGE_SIZE });
    expect(d.leafAt(A + 3 * MOCK_HUGE_PAGE_SIZE)).toEqual({ start: A + 3 * MOCK_HUGE_PAGE_SIZE, size: P });
    d.tracking = true;
    expect(d.setDirty(A + MOCK_HUGE_PAGE_SIZE + 4 * P)).toBe(true);
    expect(d.setDirty(A + 3 * MOCK_HUGE_PAGE_SIZE)).toBe(true);
    expect(d.setDirty(A + 4 * MOCK_HUGE_PAGE_SIZE)).toBe(false);
    const seen: [number, number][] = [];
    // A query that starts inside the huge leaf still reports it, from its start.
    d.collectDirty(A + MOCK_HUGE_PAGE_SIZE + 8 * P, 3 * MOCK_HUGE_PAGE_SIZE, true, (iova, bytes) => { seen.push([iova - A, bytes]); });
    expect(seen).toEqual([[MOCK_HUGE_PAGE_SIZE, MOCK_HUGE_PAGE_SIZE], [3 * MOCK_HUGE_PAGE_SIZE, P]]);
    // NO_CLEAR kept them; a clearing read takes them away; unmap drops dirty bits too.
    let n = 0;
    d.collectDirty(A, 4 * MOCK_HUGE_PAGE_SIZE, false, () => { n++; });
    expect(n).toBe(2);
    d.collectDirty(A, 4 * MOCK_HUGE_PAGE_SIZE, false, () => { n++; });
    expect(n).toBe(2);
    d.setDirty(A);
    d.unmap(A, MOCK_HUGE_PAGE_SIZE);
    d.collectDirty(A, 4 * MOCK_HUGE_PAGE_SIZE, false, () => { n++; });
    expect(n).toBe(2);
  });

  it('128 MiB mapped 4 KiB at a time is one extent per map, and one unmap removes them all', () => {
    const d = domain({ dirty: true });
    const n = (128 << 20) / 4096;
    for (let i = 0; i < n; i++) expect(d.map(A + i * 4096, (i * 2 + 1) * 4096, 4096, RW).ok).toBe(true);
    expect(d.extentCount).toBe(n);
    expect(d.iovaToPhys(A + 5 * 4096 + P)).toBe(11 * 4096 + P);
    expect(d.unmap(A, 128 << 20)).toBe(128 << 20);
    expect(d.extentCount).toBe(0);
  });
});
