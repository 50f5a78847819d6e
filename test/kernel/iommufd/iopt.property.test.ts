// Property: random sequences of map (automatic or fixed), unmap, reserve, allow and pin users on one
// IoPagetable over one IoptPages keep the invariants: areas never overlap each other or reserved ranges,
// automatic IOVAs respect the alignment rule and the allowed ranges, every pinned page is pinned exactly
// once, and releasing everything returns pins and accounting to zero.

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { PAGE_SIZE } from '../../../src/hw/memory/physical-memory.ts';
import { IOMMU_READ, IOMMU_WRITE, IoPagetable } from '../../../src/kernel/iommufd/io-pagetable.ts';
import { TEST_RESERVATION, type IoptArea } from '../../../src/kernel/iommufd/iopt-area.ts';
import { ULONG_MAX, U64_MAX, type IovaRange } from '../../../src/kernel/iommufd/iova-intervals.ts';
import { IoptPages, NO_PFN } from '../../../src/kernel/iommufd/pages.ts';
import { MAP_ANONYMOUS, MAP_PRIVATE, PROT_READ, PROT_WRITE } from '../../../src/kernel/mm/mman.ts';
import { checkFrames, machine, value } from '../mm/helpers.ts';

const P = BigInt(PAGE_SIZE);
const NPAGES = 32;
/** Fixed maps land in the first 64 pages or in the last 8 pages of the u64 space. */
const HIGH = ULONG_MAX - 8n * P + 1n;

type Op =
  | { op: 'auto'; off: number; len: number; sub: number }
  | { op: 'fixed'; at: number; high: boolean; off: number; len: number }
  | { op: 'unmap'; at: number; len: number }
  | { op: 'unmapAll' }
  | { op: 'reserve'; at: number; len: number }
  | { op: 'unreserve' }
  | { op: 'allow'; ranges: [number, number][] }
  | { op: 'pin'; pick: number }
  | { op: 'unpin'; pick: number };

const opArb: fc.Arbitrary<Op> = fc.oneof(
  fc.record({ op: fc.constant('auto' as const), off: fc.nat(NPAGES - 1), len: fc.integer({ min: 1, max: 8 }), sub: fc.constantFrom(0, 0, 0x800) }),
  fc.record({ op: fc.constant('fixed' as const), at: fc.nat(63), high: fc.boolean(), off: fc.nat(NPAGES - 1), len: fc.integer({ min: 1, max: 8 }) }),
  fc.record({ op: fc.constant('unmap' as const), at: fc.nat(63), len: fc.integer({ min: 1, max: 16 }) }),
  fc.constant({ op: 'unmapAll' as const }),
  fc.record({ op: fc.constant('reserve' as const), at: fc.nat(63), len: fc.integer({ min: 1, max: 8 }) }),
  fc.constant({ op: 'unreserve' as const }),
  fc.record({ op: fc.constant('allow' as const), ranges: fc.array(fc.tuple(fc.nat(2000), fc.integer({ min: 1, max: 300 })), { maxLength: 2 }) }),
  fc.record({ op: fc.constant('pin' as const), pick: fc.nat() }),
  fc.record({ op: fc.constant('unpin' as const), pick: fc.nat() }),
);

describe('IoPagetable + IoptPages properties', () => {
  it('random operation sequences keep the invariants and release to zero', () => {
    fc.assert(fc.property(fc.array(opArb, { maxLength: 40 }), (ops) => {
      const m = machine(128);
      const p = m.table.spawn({ uid: 1000, rlimits: { RLIMIT_MEMLOCK: { soft: 20 * PAGE_SIZE, hard: 20 * PAGE_SIZE } } });
      const va = value(p.mmap(0, NPAGES * PAGE_SIZE + PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
      const pages = value(IoptPages.fromUser(p, va, NPAGES * PAGE_SIZE + PAGE_SIZE, true));
      const iopt = new IoPagetable<IoptPages>();
      /** Pin users per area (a domain fill or an access each). */
      const pins = new Map<IoptArea<IoptPages>, number>();
      iopt.hooks = {
        unfillArea: (area, pg) => {
          for (let n = pins.get(area) ?? 0; n > 0; n--) pg.release(area.firstIndex, area.lastIndex);
          pins.delete(area);
        },
      };
      let allowed: IovaRange[] = [];
      const areas = (): IoptArea<IoptPages>[] => [...iopt.areaList()];

      for (const o of ops) {
        switch (o.op) {
          case 'auto': {
            const len = BigInt(o.len) * P - BigInt(o.sub);
            const startByte = Math.min(o.off, NPAGES + 1 - o.len) * PAGE_SIZE + o.sub;
            const r = iopt.map([{ pages, startByte, length: len }], IOMMU_READ | IOMMU_WRITE);
            if (!r.ok) { expect(r.errno).toBe('ENOSPC'); break; }
            const iova = r.value.iova;
            const uptr = BigInt(va + startByte);
            let align = 1n;
            while (align < len) align <<= 1n;
            if ((uptr & -uptr) < align) align = uptr & -uptr;
            if (align > 1n << 21n) align = 1n << 21n;
            expect(iova % align).toBe(0n);
            expect(iova % P).toBe(uptr % P);
            expect(iova >= P && iova + len - 1n <= ULONG_MAX - P).toBe(true);
            if (allowed.length > 0) expect(allowed.some((a) => iova >= a.start && iova + len - 1n <= a.last)).toBe(true);
            break;
          }
          case 'fixed': {
            const iova = o.high ? HIGH + BigInt(o.at % 8) * P : BigInt(o.at) * P;
            const r = iopt.map([{ pages, startByte: Math.min(o.off, NPAGES + 1 - o.len) * PAGE_SIZE, length: BigInt(o.len) * P }], IOMMU_READ | IOMMU_WRITE, { iova });
            if (!r.ok) expect(['EEXIST', 'EINVAL', 'EOVERFLOW']).toContain(r.errno);
            break;
          }
          case 'unmap': {
            const r = iopt.unmap(BigInt(o.at) * P, BigInt(o.len) * P);
            if (!r.ok) expect(r.errno).toBe('ENOENT');
            break;
          }
          case 'unmapAll':
            value(iopt.unmap(0n, U64_MAX));
            break;
          case 'reserve': {
            const r = iopt.reserve(BigInt(o.at) * P, BigInt(o.at + o.len) * P - 1n, TEST_RESERVATION);
            if (!r.ok) expect(r.errno).toBe('EADDRINUSE');
            break;
          }
          case 'unreserve':
            iopt.unreserve(TEST_RESERVATION);
            break;
          case 'allow': {
            const ranges = o.ranges.map(([s, l]) => ({ start: BigInt(s) * P, last: BigInt(s + l) * P - 1n }));
            const r = iopt.setAllowed(ranges);
            if (r.ok) allowed = ranges;
            else expect(['EINVAL', 'EADDRINUSE']).toContain(r.errno);
            expect(iopt.allowedRanges().length).toBe(allowed.length);
            break;
          }
          case 'pin': {
            const list = areas();
            const a = list[o.pick % Math.max(1, list.length)];
            if (a === undefined) break;
            const r = pages.pfnsFor(a.firstIndex, a.lastIndex);
            if (r.ok) pins.set(a, (pins.get(a) ?? 0) + 1);
            else expect(r.errno).toBe('ENOMEM');
            break;
          }
          case 'unpin': {
            const list = areas().filter((a) => (pins.get(a) ?? 0) > 0);
            const a = list[o.pick % Math.max(1, list.length)];
            if (a === undefined) break;
            pages.release(a.firstIndex, a.lastIndex);
            pins.set(a, (pins.get(a) ?? 0) - 1);
            break;
          }
        }
        // Invariants.
        const list = areas();
        for (let i = 1; i < list.length; i++) expect(list[i]!.iova > list[i - 1]!.last).toBe(true);
        for (const a of list) {
          for (const r of iopt.reservedRanges()) expect(a.last < r.start || a.iova > r.last).toBe(true);
        }
        let pinnedPages = 0;
        for (let i = 0; i < pages.npages; i++) {
          const pinned = pages.pfnAt(i) !== NO_PFN;
          expect(pinned).toBe(pages.userCount(i) > 0);
          if (pinned) {
            pinnedPages++;
            expect(m.memory.pinCount(pages.pfnAt(i))).toBe(1);
          }
        }
        expect(pages.pinnedPages).toBe(pinnedPages);
        expect(p.mm.pinnedVm).toBe(pinnedPages);
        expect(p.user.lockedVm).toBe(pinnedPages);
      }
      value(iopt.unmap(0n, U64_MAX));
      expect(iopt.areaCount).toBe(0);
      expect(pages.pinnedPages).toBe(0);
      expect(p.mm.pinnedVm).toBe(0);
      expect(p.user.lockedVm).toBe(0);
      pages.put();
      expect(pages.refCount).toBe(0);
      checkFrames(m);
    }), { numRuns: 150 });
  });
});

/** The allocator by brute force over the free runs: the spec of iopt_alloc_iova() without its indexes. */
function referenceAlloc(used: IovaRange[], allowed: IovaRange[], length: bigint, uptr: bigint): bigint | undefined {
  let align = 1n;
  while (align < length) align <<= 1n;
  if (uptr !== 0n && (uptr & -uptr) < align) align = uptr & -uptr;
  if (align > 1n << 21n) align = 1n << 21n;
  const off = uptr % P;
  const fit = (a: bigint, b: bigint): bigint | undefined => {
    if (a > b || b - a < length - 1n) return undefined;
    const s = ((a + align - 1n) & ~(align - 1n)) | off;
    return s > b || b - s < length - 1n ? undefined : s;
  };
  const spans = allowed.length === 0 ? [{ start: P, last: ULONG_MAX - P }] : allowed;
  const sorted = [...used].sort((x, y) => (x.start < y.start ? -1 : 1));
  for (const span of spans) {
    const lo = fit(span.start, span.last);
    if (lo === undefined) continue;
    let at = lo;
    for (const u of sorted) {
      if (u.last < at) continue;
      if (u.start > span.last) break;
      const r = fit(at, u.start - 1n);
      if (r !== undefined) return r;
      at = u.last + 1n;
    }
    const r = fit(at, span.last);
    if (r !== undefined) return r;
  }
  return undefined;
}

describe('allocator against a brute-force reference', () => {
  it('many areas (block-skipping index) and reservations: the same first fit as the reference', () => {
    fc.assert(fc.property(
      fc.array(fc.tuple(fc.nat(3000), fc.integer({ min: 1, max: 4 })), { minLength: 50, maxLength: 400 }),
      fc.array(fc.tuple(fc.nat(3000), fc.integer({ min: 1, max: 40 })), { maxLength: 4 }),
      fc.array(fc.tuple(fc.integer({ min: 1, max: 40 }), fc.nat(0x3fff)), { minLength: 1, maxLength: 30 }),
      fc.boolean(),
      (fixed, reserved, autos, restrict) => {
        const iopt = new IoPagetable();
        const stub = { npages: 64, writable: true, base: 0, get: () => undefined, put: () => undefined };
        const used: IovaRange[] = [];
        for (const [at, len] of reserved) {
          const r = { start: BigInt(at) * P, last: BigInt(at + len) * P - 1n };
          if (iopt.reserve(r.start, r.last, TEST_RESERVATION).ok) used.push(r);
        }
        for (const [at, len] of fixed) {
          const iova = BigInt(at) * P;
          if (iopt.map([{ pages: stub, startByte: 0, length: BigInt(len) * P }], IOMMU_READ, { iova }).ok) {
            used.push({ start: iova, last: iova + BigInt(len) * P - 1n });
          }
        }
        const allowed = restrict ? [{ start: 5000n * P, last: 5600n * P - 1n }] : [];
        if (restrict) value(iopt.setAllowed(allowed));
        for (const [pagesLen, low] of autos) {
          const length = BigInt(pagesLen) * P;
          const uptr = BigInt(low) * 0x1000n + 0x40000000n;
          const want = referenceAlloc(used, allowed, length, uptr);
          const got = iopt.map([{ pages: { ...stub, base: Number(uptr) }, startByte: 0, length }], IOMMU_READ, {});
          expect(got.ok ? got.value.iova : got.errno).toBe(want ?? 'ENOSPC');
          if (got.ok) used.push({ start: got.value.iova, last: got.value.iova + length - 1n });
        }
      },
    ), { numRuns: 60 });
  });
});
