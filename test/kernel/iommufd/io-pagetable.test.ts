// IoPagetable: the IOVA allocator, fixed-IOVA checks, whole-area unmap, reserved/allowed ranges,
// alignment and VFIO type1 v0 splitting, with the selftest iommufd_ioas examples (uAPI reference §7.6).

import { describe, expect, it } from 'vitest';
import { PAGE_SIZE } from '../../../src/hw/memory/physical-memory.ts';
import type { Result } from '../../../src/kernel/errno.ts';
import { IOMMU_READ, IOMMU_WRITE, IoPagetable } from '../../../src/kernel/iommufd/io-pagetable.ts';
import { TEST_RESERVATION, type AreaPages, type IoptArea, type ReservedOwner } from '../../../src/kernel/iommufd/iopt-area.ts';
import { U64_MAX, ULONG_MAX } from '../../../src/kernel/iommufd/iova-intervals.ts';

const P = BigInt(PAGE_SIZE);
const RW = IOMMU_READ | IOMMU_WRITE;
/** MOCK_APERTURE_START: the selftest's base_iova. */
const BASE = 1n << 24n;
/** A huge-page aligned user buffer, as the selftest's mmap'ed buffer. */
const BUFFER = 2 ** 31;

class StubPages implements AreaPages {
  refs = 1;
  constructor(readonly npages: number, readonly writable = true, readonly base = BUFFER) {}
  get(): void { this.refs++; }
  put(): void { this.refs--; }
}

function errno<T>(r: Result<T>): string { return r.ok ? 'ok' : r.errno; }
function value<T>(r: Result<T>): T {
  if (!r.ok) throw new Error(`${r.errno}: ${r.reason}`);
  return r.value;
}

/** test_ioctl_ioas_map[_fixed](buffer + offset, length, iova). */
function mapBuf(iopt: IoPagetable, length: bigint, iova?: bigint, offset = 0, base = BUFFER): Result<bigint> {
  const pages = new StubPages(Math.ceil((offset + Number(length)) / PAGE_SIZE) + 1, true, base);
  const r = iopt.map([{ pages, startByte: offset, length }], RW, iova === undefined ? {} : { iova });
  return r.ok ? { ok: true, value: r.value.iova } : r;
}

describe('selftest iommufd_ioas examples', () => {
  it('area: ENOENT for nothing mapped and for a split, EEXIST for over-maps, unmap-all even when empty', () => {
    const iopt = new IoPagetable();
    for (let i = 0n; i < 10n; i++) expect(errno(iopt.unmap(i * P, P))).toBe('ENOENT');
    for (let i = 0n; i < 10n; i++) value(mapBuf(iopt, P, BASE + i * P));
    for (let i = 0n; i < 10n; i++) expect(value(iopt.unmap(BASE + i * P, P))).toBe(P);
    value(mapBuf(iopt, 2n * P, BASE + 16n * P));
    expect(errno(iopt.unmap(BASE + 16n * P, P))).toBe('ENOENT');
    expect(errno(iopt.unmap(BASE + 17n * P, P))).toBe('ENOENT');
    expect(errno(mapBuf(iopt, 2n * P, BASE + 16n * P))).toBe('EEXIST');
    expect(errno(mapBuf(iopt, P, BASE + 16n * P))).toBe('EEXIST');
    expect(errno(mapBuf(iopt, P, BASE + 17n * P))).toBe('EEXIST');
    expect(errno(mapBuf(iopt, 2n * P, BASE + 15n * P))).toBe('EEXIST');
    expect(errno(mapBuf(iopt, 3n * P, BASE + 15n * P))).toBe('EEXIST');
    expect(value(iopt.unmap(0n, U64_MAX))).toBe(2n * P);
    expect(value(iopt.unmap(0n, U64_MAX))).toBe(0n);
    expect(iopt.areaCount).toBe(0);
  });

  it('unmap_fully_contained_areas: partial cover is ENOENT, a superset returns 32 pages', () => {
    const iopt = new IoPagetable();
    const base = BASE + 4n * P;
    for (let i = 0n; i < 4n; i++) value(mapBuf(iopt, 8n * P, base + i * 16n * P));
    expect(errno(iopt.unmap(base - 4n * P, 8n * P))).toBe('ENOENT');
    expect(errno(iopt.unmap(base + 3n * 16n * P + 8n * P - 4n * P, 8n * P))).toBe('ENOENT');
    expect(iopt.areaCount).toBe(4);
    expect(value(iopt.unmap(base - 4n * P, 3n * 16n * P + 8n * P + 4n * P))).toBe(32n * P);
    expect(iopt.areaCount).toBe(0);
  });

  it('area_auto_iova: alignment of the length, reserved avoided, allowed respected', () => {
    const iopt = new IoPagetable();
    const iovas: bigint[] = [];
    for (let i = 0; i < 10; i++) iovas.push(value(mapBuf(iopt, P)));
    expect(new Set(iovas).size).toBe(10);
    expect(iovas[0]).toBe(P); // never IOVA 0
    for (const iova of iovas) value(iopt.unmap(iova, P));

    const lowbit = (n: bigint): bigint => n & -n;
    for (let i = 1n; i <= 10n; i++) iovas[Number(i) - 1] = value(mapBuf(iopt, P * i));
    for (let i = 1n; i <= 10n; i++) expect(iovas[Number(i) - 1]! % lowbit(P * i)).toBe(0n);
    for (let i = 1n; i <= 10n; i++) value(iopt.unmap(iovas[Number(i) - 1]!, P * i));

    const rs = 4n * P;
    const rl = 100n * P;
    value(iopt.reserve(rs, rs + rl - 1n, TEST_RESERVATION));
    for (let i = 1n; i <= 10n; i++) {
      const iova = value(mapBuf(iopt, P * i));
      expect(iova % lowbit(P * i)).toBe(0n);
      expect(iova > rs && iova < rs + rl).toBe(false);
      expect(iova + P * i <= rs || iova >= rs + rl).toBe(true);
      iovas[Number(i) - 1] = iova;
    }
    for (let i = 1n; i <= 10n; i++) value(iopt.unmap(iovas[Number(i) - 1]!, P * i));

    expect(errno(iopt.setAllowed([{ start: P, last: 600n * P }]))).toBe('EADDRINUSE');
    const allowed = { start: 200n * P, last: 600n * P - 1n };
    value(iopt.setAllowed([allowed]));
    for (let i = 1n; i <= 10n; i++) {
      const iova = value(mapBuf(iopt, P * i));
      expect(iova % lowbit(P * i)).toBe(0n);
      expect(iova >= allowed.start && iova + P * i <= allowed.last + 1n).toBe(true);
    }
  });

  it('reserved_overflow: a huge reservation leaves no room, ENOSPC', () => {
    const iopt = new IoPagetable();
    value(iopt.reserve(6n, 6n + 0xffff_ffff_ffff_8001n - 1n, TEST_RESERVATION));
    expect(errno(mapBuf(iopt, 0x5000n))).toBe('ENOSPC');
  });

  it('area_allowed: EADDRINUSE in both orders', () => {
    const iopt = new IoPagetable();
    const ranges = [{ start: BASE, last: BASE + 600n * P }];
    value(iopt.setAllowed(ranges));
    expect(errno(iopt.reserve(BASE + P, BASE + 2n * P - 1n, TEST_RESERVATION))).toBe('EADDRINUSE');
    value(iopt.setAllowed([]));
    value(iopt.reserve(BASE + P, BASE + 2n * P - 1n, TEST_RESERVATION));
    expect(errno(iopt.setAllowed(ranges))).toBe('EADDRINUSE');
    expect(iopt.allowedRanges()).toEqual([]); // the previous (empty) list stays
  });

  it('ioas_align_change: misaligned map EINVAL, raising the alignment over a misaligned area EADDRINUSE', () => {
    const iopt = new IoPagetable();
    value(iopt.disableLargePages());
    expect(iopt.iovaAlignment).toBe(P);
    expect(errno(mapBuf(iopt, P, BASE, 2048))).toBe('EINVAL');
    value(mapBuf(iopt, P, BASE));
    iopt.enableLargePages();
    expect(iopt.iovaAlignment).toBe(1n);
    value(mapBuf(iopt, P, BASE + P, 2048));
    expect(errno(iopt.disableLargePages())).toBe('EADDRINUSE');
    expect(iopt.largePages).toBe(true);
    expect(iopt.iovaAlignment).toBe(1n);
  });

  it('ioas_iova_alloc: lengths 1..2*PAGE_SIZE all map and unmap', () => {
    const iopt = new IoPagetable();
    for (let len = 1n; len <= 2n * P; len += 97n) {
      const iova = value(mapBuf(iopt, len));
      expect(value(iopt.unmap(iova, len))).toBe(len);
    }
  });

  it('copy_sweep: copies from every 511-byte step; ENOENT outside the mapped range', () => {
    const src = new IoPagetable();
    const dst = new IoPagetable();
    const size = 16n * P;
    const lastIova = BASE + size - 2n;
    value(mapBuf(src, lastIova - BASE + 1n, BASE));
    const len = 2048n; // MOCK_PAGE_SIZE
    let copies = 0;
    for (let iova = BASE - P; iova <= lastIova; iova += 511n) {
      const got = src.getPages(iova, len);
      if (iova < BASE || iova + len - 1n > lastIova) {
        expect(errno(got)).toBe('ENOENT');
        continue;
      }
      value(dst.map(value(got), RW, { iova: BASE }));
      expect(value(dst.unmap(BASE, len))).toBe(len);
      copies++;
    }
    expect(copies).toBeGreaterThan(100);
  });

  it('iova_ranges: [0, ULONG_MAX] without reservations; a reservation splits it', () => {
    const iopt = new IoPagetable();
    expect(iopt.iovaRanges()).toEqual([{ start: 0n, last: ULONG_MAX }]);
    const dom: ReservedOwner = { kind: 'domain' };
    value(iopt.reserve(0n, BASE - 1n, dom));
    value(iopt.reserve((1n << 31n), ULONG_MAX, dom));
    expect(iopt.iovaRanges()).toEqual([{ start: BASE, last: (1n << 31n) - 1n }]);
    value(iopt.reserve(BASE + 16n * P, BASE + 32n * P - 1n, TEST_RESERVATION));
    expect(iopt.iovaRanges()).toEqual([
      { start: BASE, last: BASE + 16n * P - 1n }, { start: BASE + 32n * P, last: (1n << 31n) - 1n },
    ]);
    expect(iopt.unreserve(dom)).toBe(2);
    expect(iopt.iovaRanges()).toHaveLength(2);
  });
});

describe('allocator and fixed IOVA rules', () => {
  it('alignment: min(roundup(length), lowest bit of the VA), capped at 2 MiB, sub-page offset kept', () => {
    const iopt = new IoPagetable();
    // VA aligned to 8 KiB only: a 64 KiB map gets 8 KiB alignment.
    const a = value(mapBuf(iopt, 16n * P, undefined, 0, 0x2000));
    expect(a % 0x2000n).toBe(0n);
    // A 16 MiB map of a 1 GiB aligned VA is aligned to 2 MiB only.
    const b = value(mapBuf(iopt, 1n << 24n));
    expect(b % (1n << 21n)).toBe(0n);
    expect(b % (1n << 22n)).not.toBe(0n);
    // Sub-page offset preserved.
    const c = value(mapBuf(iopt, 100n, undefined, 0x123));
    expect(c % P).toBe(0x123n);
    const iopt0 = new IoPagetable();
    expect(value(iopt0.allocIova(P, 0n))).toBe(P);
  });

  it('EOVERFLOW for length 0 or >= ULONG_MAX/2; EINVAL below the IOAS alignment; ENOSPC', () => {
    const iopt = new IoPagetable();
    expect(errno(iopt.allocIova(0n, 0n))).toBe('EOVERFLOW');
    expect(errno(iopt.allocIova(ULONG_MAX / 2n, 0n))).toBe('EOVERFLOW');
    expect(value(iopt.allocIova(ULONG_MAX / 2n - 1n, 0n))).toBe(1n << 21n);
    value(iopt.disableLargePages());
    expect(errno(iopt.allocIova(100n, 0n))).toBe('EINVAL');
    value(iopt.setAllowed([{ start: 16n * P, last: 18n * P - 1n }]));
    expect(errno(iopt.allocIova(4n * P, 0n))).toBe('ENOSPC');
    expect(value(iopt.allocIova(2n * P, 0n))).toBe(16n * P);
  });

  it('fixed IOVA: unaligned EINVAL, reserved EINVAL, overlap EEXIST, wrap EOVERFLOW; u64 edges', () => {
    const iopt = new IoPagetable();
    value(iopt.reserve(0x10000n, 0x1ffffn, TEST_RESERVATION));
    expect(errno(iopt.checkFixedIova(0x1f000n, 2n * P))).toBe('EINVAL');
    expect(errno(iopt.checkFixedIova(ULONG_MAX - P + 2n, P))).toBe('EOVERFLOW');
    // IOVA 0 and the last page of the u64 space can be mapped explicitly.
    value(mapBuf(iopt, P, 0n));
    value(mapBuf(iopt, P, ULONG_MAX - P + 1n));
    expect(iopt.areaAt(ULONG_MAX)?.last).toBe(ULONG_MAX);
    // Around 2^53, where doubles lose integers.
    const big = 1n << 53n;
    value(mapBuf(iopt, P, big + 1n));
    expect(errno(mapBuf(iopt, P, big + P))).toBe('EEXIST');
    expect(value(iopt.unmap(big + 1n, P))).toBe(P);
    value(iopt.disableLargePages());
    expect(errno(iopt.checkFixedIova(big + 1n, P))).toBe('EINVAL');
    // The top page ends exactly at ULONG_MAX: no wrap, it unmaps.
    expect(value(iopt.unmap(ULONG_MAX - P + 1n, P))).toBe(P);
  });

  it('unmap ioctl edges: length 0 EINVAL, iova/length >= ULONG_MAX EOVERFLOW, a wrapping range EOVERFLOW', () => {
    const iopt = new IoPagetable();
    expect(errno(iopt.unmap(P, 0n))).toBe('EINVAL');
    expect(errno(iopt.unmap(ULONG_MAX, 1n))).toBe('EOVERFLOW');
    expect(errno(iopt.unmap(P, ULONG_MAX))).toBe('EOVERFLOW');
    expect(errno(iopt.unmap(ULONG_MAX - 1n, 3n))).toBe('EOVERFLOW');
    expect(() => iopt.unmap(-1n, 1n)).toThrow(RangeError);
    expect(() => iopt.unmap(0n, 1n << 64n)).toThrow(RangeError);
  });

  it('EPERM for a writeable area over read-only pages; the area takes and drops a page reference', () => {
    const iopt = new IoPagetable<StubPages>();
    const ro = new StubPages(4, false);
    expect(errno(iopt.map([{ pages: ro, startByte: 0, length: P }], RW))).toBe('EPERM');
    const { iova } = value(iopt.map([{ pages: ro, startByte: 0, length: P }], IOMMU_READ));
    expect(ro.refs).toBe(2);
    value(iopt.unmap(iova, P));
    expect(ro.refs).toBe(1);
  });

  it('areas being mapped or locked are EBUSY; accesses are notified, EDEADLOCK when they never unpin', () => {
    const iopt = new IoPagetable<StubPages>();
    const pages = new StubPages(4);
    let seen: IoptArea<StubPages> | undefined;
    const r = iopt.map([{ pages, startByte: 0, length: P }], RW, {
      iova: BASE,
      fill: (area) => {
        seen = area;
        expect(errno(iopt.unmap(BASE, P))).toBe('EBUSY');
        return { ok: false, errno: 'ENOMEM', code: 12, reason: 'fill failed' };
      },
    });
    expect(errno(r)).toBe('ENOMEM');
    expect(seen?.pages).toBe(null);
    expect(iopt.areaCount).toBe(0);
    expect(pages.refs).toBe(1);

    const { areas } = value(iopt.map([{ pages, startByte: 0, length: P }], RW, { iova: BASE }));
    const area = areas[0]!;
    area.numLocks = 1;
    expect(errno(iopt.unmap(BASE, P))).toBe('EBUSY');
    area.numLocks = 0;
    let calls = 0;
    area.numAccesses = 1;
    iopt.hooks = { notifyUnmap: () => { calls++; } };
    expect(errno(iopt.unmap(BASE, P))).toBe('EDEADLOCK');
    // tries++ after each notification, EDEADLOCK once tries > 100: 101 notifications, prevent_access left set.
    expect(calls).toBe(101);
    expect(area.preventAccess).toBe(true);
    iopt.hooks = { notifyUnmap: (iova, length) => { expect([iova, length]).toEqual([BASE, P]); area.numAccesses = 0; } };
    expect(value(iopt.unmap(BASE, P))).toBe(P);
  });

  it('IOAS_COPY: getPages needs contiguous areas (ENOENT otherwise) and shares the pages', () => {
    const iopt = new IoPagetable<StubPages>();
    const pages = new StubPages(8);
    value(iopt.map([{ pages, startByte: 0, length: 4n * P }], RW, { iova: BASE }));
    value(iopt.map([{ pages, startByte: 4 * PAGE_SIZE, length: 4n * P }], RW, { iova: BASE + 4n * P }));
    expect(errno(iopt.getPages(BASE - P, 2n * P))).toBe('ENOENT');
    expect(errno(iopt.getPages(BASE + 7n * P, 2n * P))).toBe('ENOENT');
    const slices = value(iopt.getPages(BASE + P + 511n, 4n * P));
    expect(slices.map((s) => [s.startByte, s.length])).toEqual([[PAGE_SIZE + 511, 3n * P - 511n], [4 * PAGE_SIZE, P + 511n]]);
    const dst = new IoPagetable<StubPages>();
    const { areas } = value(dst.map(slices, RW));
    expect(areas).toHaveLength(2);
    expect(pages.refs).toBe(5);
    value(dst.unmap(0n, U64_MAX));
    value(iopt.unmap(0n, U64_MAX));
    expect(pages.refs).toBe(1);
  });
});

describe('alignment sources and type1 v0 split', () => {
  it('a domain page size above PAGE_SIZE is EINVAL; raising over misaligned areas EADDRINUSE and rolls back', () => {
    const iopt = new IoPagetable();
    const dom = {};
    expect(errno(iopt.setAlignmentSource(dom, 2n * P, 'domain'))).toBe('EINVAL');
    value(mapBuf(iopt, 2048n, BASE + 2048n));
    expect(errno(iopt.setAlignmentSource(dom, 2048n * 2n, 'domain'))).toBe('EADDRINUSE');
    expect(iopt.iovaAlignment).toBe(1n);
    value(iopt.setAlignmentSource(dom, 2048n, 'domain'));
    expect(iopt.iovaAlignment).toBe(2048n);
    expect(errno(iopt.disableLargePages())).toBe('EINVAL'); // domains and areas
    value(iopt.unmap(0n, U64_MAX));
    iopt.removeAlignmentSource(dom);
    expect(iopt.iovaAlignment).toBe(1n);
  });

  it('split: at the edges a no-op; EINVAL misaligned, with accesses, or domain storage with large pages; EBUSY', () => {
    const iopt = new IoPagetable<StubPages>();
    const pages = new StubPages(16);
    const { areas } = value(iopt.map([{ pages, startByte: 0, length: 16n * P }], RW, { iova: BASE }));
    const area = areas[0]!;
    value(iopt.cutIova([BASE, BASE + 16n * P - 1n, 0n]));
    expect(iopt.areaCount).toBe(1);
    value(iopt.disableLargePages());
    expect(errno(iopt.cutIova([BASE + 100n]))).toBe('EINVAL');
    area.numAccesses = 1;
    expect(errno(iopt.cutIova([BASE + 4n * P - 1n]))).toBe('EINVAL');
    area.numAccesses = 0;
    area.preventAccess = true;
    expect(errno(iopt.cutIova([BASE + 4n * P - 1n]))).toBe('EBUSY');
    area.preventAccess = false;
    area.storageDomain = 'domain';
    value(iopt.cutIova([BASE + 4n * P - 1n, BASE + 8n * P - 1n]));
    expect([...iopt.areaList()].map((a) => [a.iova - BASE, a.length, a.startByte, a.storageDomain])).toEqual([
      [0n, 4n * P, 0, 'domain'], [4n * P, 4n * P, 4 * PAGE_SIZE, 'domain'], [8n * P, 8n * P, 8 * PAGE_SIZE, 'domain'],
    ]);
    expect(pages.refs).toBe(4);
    iopt.enableLargePages();
    const last = iopt.areaAt(BASE + 8n * P)!;
    expect(errno(iopt.split(last, BASE + 12n * P - 1n))).toBe('EINVAL');
    // Type1 v0 then unmaps a piece.
    expect(value(iopt.unmap(BASE + 4n * P, 4n * P))).toBe(4n * P);
    value(iopt.unmap(0n, U64_MAX));
    expect(pages.refs).toBe(1);
  });
});
