// Run-length PFN storage: PinnedRuns and RangeUsers on their own, IoptPages over THP-backed memory (runs,
// users per range, exact pinned_vm / locked_vm), and a domain filled with 2 MiB leaves when IOVA and PA
// are aligned, 4 KiB ones when not.

import { describe, expect, it } from 'vitest';
import { IoPageTableDomain } from '../../../src/kernel/iommu/domain.ts';
import { IOMMU_CACHE, IOMMU_READ, IOMMU_WRITE } from '../../../src/kernel/iommufd/io-pagetable.ts';
import { Ioas } from '../../../src/kernel/iommufd/ioas.ts';
import { IoptPages } from '../../../src/kernel/iommufd/pages.ts';
import { NO_PFN, PinnedRuns } from '../../../src/kernel/iommufd/pfn-runs.ts';
import { RangeUsers } from '../../../src/kernel/iommufd/range-users.ts';
import { FOLIO_PAGES } from '../../../src/kernel/mm/frame-allocator.ts';
import { MAP_ANONYMOUS, MAP_PRIVATE, PROT_READ, PROT_WRITE } from '../../../src/kernel/mm/mman.ts';
import type { Process } from '../../../src/kernel/process/process.ts';
import { PAGE, value, world } from '../../uapi/dispatch-helpers.ts';

const HP = FOLIO_PAGES * PAGE;
const RW = IOMMU_READ | IOMMU_WRITE | IOMMU_CACHE;

/** A private anonymous mapping of `size` bytes on a 2 MiB boundary. */
function aligned(p: Process, size: number): number {
  const raw = value(p.mmap(0, size + HP, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  return Math.ceil(raw / HP) * HP;
}

describe('PinnedRuns', () => {
  it('merges contiguous inserts, splits on a middle remove, clips slices', () => {
    const r = new PinnedRuns();
    r.insert(0, 100, 4);
    r.insert(4, 104, 4);
    r.insert(10, 500, 2);
    expect(r.runCount).toBe(2);
    expect([r.pfnAt(5), r.pfnAt(8), r.pfnAt(11)]).toEqual([105, NO_PFN, 501]);
    expect(r.slice(2, 10)).toEqual([{ index: 2, pfn: 102, count: 6 }, { index: 10, pfn: 500, count: 1 }]);
    expect(r.remove(3, 2)).toEqual([{ index: 3, pfn: 103, count: 2 }]);
    expect(r.runCount).toBe(3);
    expect([r.pfnAt(2), r.pfnAt(3), r.pfnAt(5)]).toEqual([102, NO_PFN, 105]);
    expect(r.remove(0, 12).map((x) => x.count)).toEqual([3, 3, 2]);
    expect(r.runCount).toBe(0);
    expect(() => { r.insert(0, 1, 2); r.insert(1, 7, 1); }).toThrow(/already pinned/);
  });
});

describe('RangeUsers', () => {
  it('counts users per range and reports what drops to none', () => {
    const u = new RangeUsers(100);
    expect(u.unused(10, 19)).toEqual([[10, 20]]);
    u.add(10, 59, 1);
    u.add(30, 39, 1);
    expect([u.count(9), u.count(10), u.count(35), u.count(59), u.count(60)]).toEqual([0, 1, 2, 1, 0]);
    expect(u.unused(0, 99)).toEqual([[0, 10], [60, 100]]);
    expect(u.minUsers(10, 59)).toBe(1);
    expect(u.add(10, 59, -1)).toEqual([[10, 30], [40, 60]]);
    expect(u.add(30, 39, -1)).toEqual([[30, 40]]);
    expect(u.segmentCount).toBe(1);
    expect(() => u.add(0, 0, -1)).toThrow();
  });
});

describe('IoptPages over THP memory', () => {
  it('pins 2 MiB folios as runs; users per range keep what another user holds; accounting exact per page', () => {
    const w = world();
    const p = w.table.spawn({ uid: 1000, rlimits: { RLIMIT_MEMLOCK: { soft: 4096 * PAGE, hard: 4096 * PAGE } } });
    const va = aligned(p, 2 * HP);
    const pages = value(IoptPages.fromUser(p, va, 2 * HP, true));
    const all = value(pages.pfnsFor(0, 2 * FOLIO_PAGES - 1));
    expect(all.reduce((n, r) => n + r.count, 0)).toBe(2 * FOLIO_PAGES);
    expect(all.length).toBeLessThanOrEqual(2);
    expect(pages.runCount).toBeLessThanOrEqual(2);
    expect(pages.metadataBytes).toBeLessThan(200);
    const head = all[0]!.pfn;
    expect(head % FOLIO_PAGES).toBe(0);
    expect(w.frames.pinCount(head)).toBe(FOLIO_PAGES);
    const part = value(pages.pfnsFor(100, 199));
    expect(part).toEqual([{ index: 100, pfn: head + 100, count: 100 }]);
    expect([pages.userCount(99), pages.userCount(100), pages.userCount(199), pages.userCount(200)]).toEqual([1, 2, 2, 1]);
    expect([p.mm.pinnedVm, p.user.lockedVm]).toEqual([2 * FOLIO_PAGES, 2 * FOLIO_PAGES]);
    pages.release(0, 2 * FOLIO_PAGES - 1);
    expect(pages.pinnedPages).toBe(100);
    expect([p.mm.pinnedVm, p.user.lockedVm, p.status().VmPin]).toEqual([100, 100, 400]);
    expect(w.frames.pinCount(head)).toBe(100);
    expect([pages.pfnAt(99), pages.pfnAt(150), pages.pfnAt(200)]).toEqual([NO_PFN, head + 150, NO_PFN]);
    pages.release(100, 199);
    expect([pages.pinnedPages, p.mm.pinnedVm, p.user.lockedVm, w.frames.pinCount(head)]).toEqual([0, 0, 0, 0]);
    pages.put();
    p.exit();
    expect(w.frames.allocated).toBe(0);
  });
});

describe('domain fill per run', () => {
  it('maps 2 MiB leaves when IOVA and PA are 2 MiB aligned, 4 KiB leaves when the IOVA is not', () => {
    const w = world();
    const p = w.table.spawn();
    const ioas = new Ioas();
    const d = value(w.core.allocPagingDomain(w.dev('39:00.0'), 'unmanaged'));
    if (!(d instanceof IoPageTableDomain)) throw new Error('not an IoPageTableDomain');
    value(ioas.addDomain(d, {}));
    const va = aligned(p, 2 * HP);
    const map = (iova: bigint): void => {
      const pages = value(IoptPages.fromUser(p, va, 2 * HP, true));
      value(ioas.map([{ pages, startByte: 0, length: BigInt(2 * HP) }], RW, iova));
      pages.put();
    };
    map(0x4000_0000n);
    const big = d.table.lookup(0x4000_0000 + HP + 5 * PAGE);
    expect(big?.pageSize).toBe(HP);
    expect(big?.pa).toBe(p.mm.lookupPfn(va + HP + 5 * PAGE) * PAGE);
    map(0x8000_1000n);
    const small = d.table.lookup(0x8000_1000 + HP + 5 * PAGE);
    expect(small?.pageSize).toBe(PAGE);
    expect(small?.pa).toBe(p.mm.lookupPfn(va + HP + 5 * PAGE) * PAGE);
    // Two IOAS_MAPs are two iopt_pages: each pins and charges its pages (as in Linux).
    expect(p.mm.pinnedVm).toBe(4 * FOLIO_PAGES);
    expect(w.frames.pinCount(p.mm.lookupPfn(va))).toBe(2 * FOLIO_PAGES);
    value(ioas.unmap(0n, (1n << 64n) - 1n));
    expect([p.mm.pinnedVm, d.table.lookup(0x4000_0000)]).toEqual([0, null]);
  });

  it('with IOMMU_OPTION_HUGE_PAGES = 0 the domain gets 4 KiB leaves even for aligned folios', () => {
    const w = world();
    const p = w.table.spawn();
    const ioas = new Ioas();
    value(ioas.iopt.disableLargePages());
    const d = value(w.core.allocPagingDomain(w.dev('39:00.0'), 'unmanaged'));
    if (!(d instanceof IoPageTableDomain)) throw new Error('not an IoPageTableDomain');
    value(ioas.addDomain(d, {}));
    const va = aligned(p, 2 * HP);
    const pages = value(IoptPages.fromUser(p, va, 2 * HP, true));
    value(ioas.map([{ pages, startByte: 0, length: BigInt(2 * HP) }], RW, 0x4000_0000n));
    pages.put();
    const leaf = d.table.lookup(0x4000_0000 + HP + 5 * PAGE);
    expect(leaf?.pageSize).toBe(PAGE);
    expect(leaf?.pa).toBe(p.mm.lookupPfn(va + HP + 5 * PAGE) * PAGE);
    value(ioas.unmap(0n, (1n << 64n) - 1n));
  });
});
