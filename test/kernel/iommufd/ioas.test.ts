// The Ioas object: attached paging domains follow the IOAS's mappings (map, unmap, copy, destroy), DMA
// through an attached domain lands in the mapped user buffer, pins are taken once for any number of
// domains, and addDomain's checks and unwinding (uAPI reference §7.3, §7.4, §8.1).

import { describe, expect, it } from 'vitest';
import type { Result } from '../../../src/kernel/errno.ts';
import type { PagingDomain } from '../../../src/kernel/iommu/domain.ts';
import { IOMMU_CACHE, IOMMU_READ, IOMMU_WRITE } from '../../../src/kernel/iommufd/io-pagetable.ts';
import { TEST_RESERVATION } from '../../../src/kernel/iommufd/iopt-area.ts';
import { Ioas } from '../../../src/kernel/iommufd/ioas.ts';
import { U64_MAX } from '../../../src/kernel/iommufd/iova-intervals.ts';
import { IoptPages } from '../../../src/kernel/iommufd/pages.ts';
import { MAP_ANONYMOUS, MAP_PRIVATE, PROT_READ, PROT_WRITE } from '../../../src/kernel/mm/mman.ts';
import type { Process } from '../../../src/kernel/process/process.ts';
import { errno, PAGE, value, world, type World } from '../../uapi/dispatch-helpers.ts';

const RW = IOMMU_READ | IOMMU_WRITE | IOMMU_CACHE;
const NVME = '39:00.0';

function setup(memlockPages = 1024) {
  const w = world();
  const p = w.table.spawn({ uid: 1000, rlimits: { RLIMIT_MEMLOCK: { soft: memlockPages * PAGE, hard: memlockPages * PAGE } } });
  return { w, p };
}

function anon(p: Process, n: number): number {
  return value(p.mmap(0, n * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
}

function mapUser(ioas: Ioas, p: Process, va: number, len: number, iova?: bigint): Result<bigint> {
  const pages = IoptPages.fromUser(p, va, len, true);
  if (!pages.ok) return pages;
  const r = ioas.map([{ pages: pages.value, startByte: va - pages.value.base, length: BigInt(len) }], RW, iova);
  pages.value.put();
  return r;
}

function domain(w: World): PagingDomain {
  return value(w.core.allocPagingDomain(w.dev(NVME), 'unmanaged'));
}

function attachDevice(w: World, d: PagingDomain): void {
  const dev = w.dev(NVME);
  value(w.core.deviceClaimDmaOwner(dev, 'test-owner'));
  const g = w.core.groupOf(dev);
  if (g === undefined) throw new Error('no group');
  value(w.core.attachGroup(d, g));
}

const pattern = (n: number): Uint8Array => Uint8Array.from({ length: n }, (_, i) => (i * 7 + 3) & 0xff);

describe('Ioas with a real paging domain', () => {
  it('a device attached through the domain DMAs into the mapped user buffer; unmap stops it', () => {
    const { w, p } = setup();
    const ioas = new Ioas();
    const d = domain(w);
    value(ioas.addDomain(d, {}));
    attachDevice(w, d);
    const va = anon(p, 4);
    const iova = value(mapUser(ioas, p, va, 4 * PAGE, 0x40_0000n));
    expect(p.status().VmPin).toBe(16);
    const data = pattern(3 * PAGE);
    const r = w.machine.dma(w.dev(NVME), { op: 'write', address: Number(iova) + 100, length: data.length, data });
    expect(r.status).toBe('ok');
    const got = new Uint8Array(data.length);
    value(p.mm.read(va + 100, got));
    expect(got).toEqual(data);
    expect(value(ioas.unmap(0n, U64_MAX))).toBe(BigInt(4 * PAGE));
    expect(d.iovaToPhys(Number(iova))).toBeNull();
    expect(w.machine.dma(w.dev(NVME), { op: 'write', address: Number(iova), length: 8, data: pattern(8) }).status).toBe('fault');
    expect(p.status().VmPin).toBe(0);
    expect(p.user.lockedVm).toBe(0);
  });

  it('areas mapped before the attach are filled into the domain; a copy into a second IOAS shares the pins', () => {
    const { w, p } = setup();
    const a = new Ioas();
    const va = anon(p, 2);
    const iova = value(mapUser(a, p, va, 2 * PAGE));
    expect(p.status().VmPin).toBe(0); // lazy
    const d1 = domain(w);
    value(a.addDomain(d1, {}));
    expect(p.status().VmPin).toBe(8);
    const b = new Ioas();
    const d2 = domain(w);
    value(b.addDomain(d2, {}));
    const iova2 = value(b.copyFrom(a, iova, BigInt(2 * PAGE), RW));
    expect(p.status().VmPin).toBe(8); // pinned once for both domains
    expect(d2.iovaToPhys(Number(iova2))).toBe(d1.iovaToPhys(Number(iova)));
    value(a.removeDomain(d1));
    expect(d1.iovaToPhys(Number(iova))).toBeNull();
    expect(p.status().VmPin).toBe(8); // d2 still holds them
    a.destroy();
    expect(p.status().VmPin).toBe(8);
    b.destroy();
    expect(p.status().VmPin).toBe(0);
    expect(p.user.lockedVm).toBe(0);
  });

  it('addDomain: EEXIST twice, EADDRINUSE for a misaligned area or one outside the aperture; nothing changes', () => {
    const { w, p } = setup();
    const ioas = new Ioas();
    const d = domain(w);
    value(mapUser(ioas, p, anon(p, 1) + 0x10, 0x100, 0x1010n));
    expect(errno(ioas.addDomain(d, {}))).toBe('EADDRINUSE');
    expect(ioas.iopt.iovaAlignment).toBe(1n);
    value(ioas.unmap(0n, U64_MAX));
    value(mapUser(ioas, p, anon(p, 1), PAGE, 1n << 60n));
    expect(errno(ioas.addDomain(d, {}))).toBe('EADDRINUSE');
    expect(ioas.iopt.reservedRanges()).toHaveLength(0);
    value(ioas.unmap(0n, U64_MAX));
    value(ioas.addDomain(d, {}));
    expect(errno(ioas.addDomain(d, {}))).toBe('EEXIST');
    expect(ioas.iopt.iovaAlignment).toBe(4096n);
    value(ioas.removeDomain(d));
    expect(ioas.iopt.iovaAlignment).toBe(1n);
    expect(ioas.iopt.reservedRanges()).toHaveLength(0);
  });

  it('addDomain unwinds on ENOMEM (RLIMIT_MEMLOCK) and EFAULT (unmapped VA): no pins, no mappings', () => {
    const { w, p } = setup(3);
    const ioas = new Ioas();
    const va = anon(p, 4);
    value(mapUser(ioas, p, va, 2 * PAGE, 0x10_0000n));
    value(mapUser(ioas, p, va + 2 * PAGE, 2 * PAGE, 0x20_0000n));
    const d = domain(w);
    expect(errno(ioas.addDomain(d, {}))).toBe('ENOMEM');
    expect(d.iovaToPhys(0x10_0000)).toBeNull();
    expect(p.status().VmPin).toBe(0);
    expect(p.user.lockedVm).toBe(0);
    value(ioas.unmap(0n, U64_MAX));
    value(mapUser(ioas, p, va, PAGE, 0x10_0000n));
    value(mapUser(ioas, p, 0x7000_0000, PAGE, 0x20_0000n));
    expect(errno(ioas.addDomain(d, {}))).toBe('EFAULT');
    expect(d.iovaToPhys(0x10_0000)).toBeNull();
    expect(p.status().VmPin).toBe(0);
    ioas.destroy();
  });

  it('a failing second domain unwinds the first during map', () => {
    const { w, p } = setup(1);
    const ioas = new Ioas();
    const d1 = domain(w);
    const d2 = domain(w);
    value(ioas.addDomain(d1, {}));
    value(ioas.addDomain(d2, {}));
    expect(errno(mapUser(ioas, p, anon(p, 2), 2 * PAGE))).toBe('ENOMEM');
    expect(ioas.iopt.areaCount).toBe(0);
    expect(p.status().VmPin).toBe(0);
    value(mapUser(ioas, p, anon(p, 1), PAGE, 0x5000n));
    expect(d1.iovaToPhys(0x5000)).toBe(d2.iovaToPhys(0x5000));
    expect(p.status().VmPin).toBe(4);
    ioas.destroy();
    expect(p.status().VmPin).toBe(0);
    expect(d1.iovaToPhys(0x5000)).toBeNull();
  });

  it('addReserved/removeReserved: EADDRINUSE over an area, all or nothing', () => {
    const { p } = setup();
    const ioas = new Ioas();
    value(mapUser(ioas, p, anon(p, 1), PAGE, 0x10_0000n));
    expect(errno(ioas.addReserved(TEST_RESERVATION, [{ start: 0x1000n, last: 0x1fffn }, { start: 0x10_0000n, last: 0x10_0fffn }]))).toBe('EADDRINUSE');
    expect(ioas.iopt.reservedRanges()).toHaveLength(0);
    value(ioas.addReserved(TEST_RESERVATION, [{ start: 0x1000n, last: 0x1fffn }]));
    expect(ioas.removeReserved(TEST_RESERVATION)).toBe(1);
    ioas.destroy();
  });
});

describe('storage domain', () => {
  it('a filled area records its storage domain (split refuses with large pages); removal hands it to the next domain', () => {
    const { w, p } = setup();
    const ioas = new Ioas();
    const d1 = domain(w);
    const d2 = domain(w);
    value(ioas.addDomain(d1, {}));
    value(ioas.addDomain(d2, {}));
    value(mapUser(ioas, p, anon(p, 2), 2 * PAGE, 0x10_0000n));
    const area = ioas.iopt.areaAt(0x10_0000n);
    expect(area?.storageDomain).toBe(d1);
    expect(errno(ioas.iopt.cutIova([0x10_0fffn]))).toBe('EINVAL');
    value(ioas.removeDomain(d1));
    expect(area?.storageDomain).toBe(d2);
    value(ioas.removeDomain(d2));
    expect(area?.storageDomain).toBeNull();
    ioas.destroy();
    expect(p.status().VmPin).toBe(0);
  });
});
