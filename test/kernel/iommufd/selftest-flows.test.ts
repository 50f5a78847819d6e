// The upstream iommufd selftest's flows (tools/testing/selftests/iommu/iommufd.c, oracle §4) against
// ioasis with the mock IOMMU driver: each test is named after the fixture and case it mirrors, runs the
// fixture's setup, and ends with the fixture's teardown leak check.

import { describe, expect, it } from 'vitest';
import { checkIsolation } from '../../../src/kernel/isolation/check.ts';
import { checkInvariants } from '../../../src/scenario/invariants.ts';
import { MAP_ANONYMOUS, MAP_SHARED, PROT_READ, PROT_WRITE } from '../../../src/kernel/mm/mman.ts';
import { IommufdCtx } from '../../../src/kernel/iommufd/context.ts';
import { MockPagingDomain } from '../../../src/kernel/iommufd/selftest/mock-domain.ts';
import { hwptPagingAlloc, type HwptPaging } from '../../../src/kernel/iommufd/hw-pagetable.ts';
import type { Ioas } from '../../../src/kernel/iommufd/ioas.ts';
import { userData } from '../../../src/kernel/iommufd/user-data.ts';
import type { IommuUserData } from '../../../src/kernel/iommu/user-data.ts';
import * as api from '../../../src/uapi/api.ts';
import {
  IOMMU_HW_CAP_DIRTY_TRACKING, IOMMU_HW_INFO_FLAG_INPUT_TYPE, IOMMU_HWPT_ALLOC_DIRTY_TRACKING, IOMMU_HWPT_ALLOC_NEST_PARENT,
  IOMMU_HWPT_ALLOC_PASID,
} from '../../../src/uapi/iommufd-consts.ts';
import { IOMMU_GET_HW_INFO } from '../../../src/uapi/ioctl.ts';
import { dispatch } from '../../../src/uapi/dispatch.ts';
import * as S from '../../../src/uapi/iommufd-structs.ts';
import {
  IOMMU_HW_INFO_SELFTEST_REGVAL, IOMMU_HW_INFO_TYPE_SELFTEST, IOMMU_TEST_PASID_RESERVED, MOCK_ACCESS_RW_SLOW_PATH,
  MOCK_ACCESS_RW_WRITE, MOCK_APERTURE_LAST, MOCK_APERTURE_START, MOCK_FLAGS_ACCESS_CREATE_NEEDS_PIN_PAGES, MOCK_FLAGS_DEVICE_NO_DIRTY,
  MOCK_FLAGS_DEVICE_PASID, MOCK_PAGE_SIZE, MOCK_PASID_WIDTH, IOMMU_HWPT_DATA_SELFTEST, MOCK_IOMMUPT_DEFAULT, MOCK_IOMMUPT_HUGE,
  MOCK_IOMMUPT_AMDV1, MOCK_HUGE_PAGE_SIZE,
} from '../../../src/uapi/iommufd-test-structs.ts';
import { BUFFER_SIZE, errno, PAGE, selftestWorld, value, type SelftestWorld } from './selftest-helpers.ts';

const BASE = BigInt(MOCK_APERTURE_START);

/** FIXTURE_SETUP(iommufd_ioas), variant mock_domain: an IOAS, the default memory limit, one PASID-capable mock domain. */
function ioasMockDomain() {
  const w = selftestWorld();
  const ioasId = w.ioasAlloc();
  value(w.t.setTempMemoryLimit(65536));
  const md = value(w.t.mockDomain(ioasId, MOCK_FLAGS_DEVICE_PASID));
  return { ...w, ioasId, ...md };
}

describe('iommufd_ioas (mock_domain)', () => {
  it('area: ENOENT for nothing or part of an area, EEXIST over one, unmap of everything', () => {
    const w = ioasMockDomain();
    for (let i = 0; i < 16; i++) w.map(w.ioasId, w.buffer, PAGE, BASE + BigInt(i * PAGE));
    expect(errno(api.ioasUnmap({ ...w.a, ioasId: w.ioasId, iova: BASE + 16n * BigInt(PAGE), length: PAGE }))).toBe('ENOENT');
    expect(errno(api.ioasUnmap({ ...w.a, ioasId: w.ioasId, iova: BASE, length: 2 * PAGE }))).toBe('ok');
    expect(errno(api.ioasMap({ ...w.a, ioasId: w.ioasId, userVa: w.buffer, length: PAGE, iova: BASE + BigInt(2 * PAGE) }))).toBe('EEXIST');
    expect(value(api.ioasUnmap({ ...w.a, ioasId: w.ioasId, iova: 0n, length: (1n << 64n) - 1n }))).toBe(14n * BigInt(PAGE));
    w.teardown();
  });

  it('iova_ranges: the mock aperture at MOCK_PAGE_SIZE alignment, split in two by a reserved range', () => {
    const w = ioasMockDomain();
    const r = value(api.ioasIovaRanges({ ...w.a, ioasId: w.ioasId }));
    expect(r.alignment).toBe(BigInt(MOCK_PAGE_SIZE));
    expect(r.ranges).toEqual([{ start: BigInt(MOCK_APERTURE_START), last: BigInt(MOCK_APERTURE_LAST) }]);
    value(w.t.addReserved(w.ioasId, BASE + BigInt(PAGE), BigInt(PAGE)));
    const r2 = value(api.ioasIovaRanges({ ...w.a, ioasId: w.ioasId }));
    expect(r2.ranges).toEqual([
      { start: BASE, last: BASE + BigInt(PAGE) - 1n },
      { start: BASE + 2n * BigInt(PAGE), last: BigInt(MOCK_APERTURE_LAST) },
    ]);
    w.teardown();
  });

  it('hwpt_attach: a second mock domain on an allocated HWPT', () => {
    const w = ioasMockDomain();
    const hwpt = value(api.hwptAlloc({ ...w.a, devId: w.idevId, ptId: w.ioasId }));
    const md2 = value(w.t.mockDomain(hwpt));
    expect(md2.hwptId).toBe(hwpt);
    expect(errno(api.destroy({ ...w.a, id: hwpt }))).toBe('EBUSY');
    value(api.destroy({ ...w.a, id: md2.stdevId }));
    value(api.destroy({ ...w.a, id: hwpt }));
    w.teardown();
  });

  it('access_pin: pins of 1..15 pages through an access, with a mock domain added and removed while pinned', () => {
    const w = ioasMockDomain();
    const accessFd = value(w.t.createAccess(w.ioasId, MOCK_FLAGS_ACCESS_CREATE_NEEDS_PIN_PAGES));
    w.map(w.ioasId, w.buffer, BUFFER_SIZE, BASE);
    for (let npages = 1; npages < 16; npages++) {
      const item = value(w.t.accessPages(accessFd, BASE, BigInt(npages * PAGE), w.buffer));
      const item2 = value(w.t.accessPages(accessFd, BASE, BigInt(npages * PAGE), w.buffer));
      value(w.t.destroyAccessPages(accessFd, item));
      const md = value(w.t.mockDomain(w.ioasId));
      value(w.t.checkMap(md.hwptId, BASE, BigInt(npages * PAGE), w.buffer));
      value(api.destroy({ ...w.a, id: md.stdevId }));
      value(w.t.destroyAccessPages(accessFd, item2));
    }
    // One pin per page however many domains and accesses share it.
    value(w.t.checkRefs(w.buffer, BUFFER_SIZE, 1));
    expect(errno(w.proc.fds.close(accessFd))).toBe('ok');
    w.teardown();
  });

  it('access_pin_unmap: an unmap makes the access unpin its item; destroying it afterwards is ENOENT', () => {
    const w = ioasMockDomain();
    const accessFd = value(w.t.createAccess(w.ioasId, MOCK_FLAGS_ACCESS_CREATE_NEEDS_PIN_PAGES));
    w.map(w.ioasId, w.buffer, BUFFER_SIZE, BASE);
    const item = value(w.t.accessPages(accessFd, BASE, BigInt(BUFFER_SIZE), w.buffer));
    value(api.ioasUnmap({ ...w.a, ioasId: w.ioasId, iova: BASE, length: BUFFER_SIZE }));
    expect(errno(w.t.destroyAccessPages(accessFd, item))).toBe('ENOENT');
    value(w.t.checkRefs(w.buffer, BUFFER_SIZE, 0));
    w.proc.fds.close(accessFd);
    w.teardown();
  });

  it('access_rw: 1..63 bytes across a page boundary, both directions, with and without SLOW_PATH', () => {
    const w = ioasMockDomain();
    const accessFd = value(w.t.createAccess(w.ioasId, 0));
    w.map(w.ioasId, w.buffer, BUFFER_SIZE, BASE);
    const tmp = value(w.proc.mmap(0, PAGE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0));
    for (const slow of [0, MOCK_ACCESS_RW_SLOW_PATH]) {
      for (let len = 1; len < 64; len++) {
        const iova = BASE + BigInt(PAGE - Math.floor(len / 2));
        const pattern = Uint8Array.from({ length: len }, (_, i) => (i * 7 + len + slow) & 0xff);
        value(w.proc.mm.write(tmp, pattern));
        value(w.t.accessRw(accessFd, iova, tmp, len, MOCK_ACCESS_RW_WRITE | slow));
        const seen = new Uint8Array(len);
        value(w.proc.mm.read(w.buffer + PAGE - Math.floor(len / 2), seen));
        expect(seen).toEqual(pattern);
        value(w.proc.mm.write(tmp, new Uint8Array(len)));
        value(w.t.accessRw(accessFd, iova, tmp, len, slow));
        value(w.proc.mm.read(tmp, seen));
        expect(seen).toEqual(pattern);
      }
    }
    w.proc.fds.close(accessFd);
    w.teardown();
  });

  it('get_hw_info: SELFTEST data, the data_len rules (0, exact, larger zero-filled, smaller), the PASID width', () => {
    const w = ioasMockDomain();
    const full = value(api.getHwInfo({ ...w.a, devId: w.idevId, dataLen: 8 }));
    expect(full.dataType).toBe(IOMMU_HW_INFO_TYPE_SELFTEST);
    expect(full.dataLen).toBe(8);
    expect(new DataView(full.data.buffer).getUint32(4, true)).toBe(IOMMU_HW_INFO_SELFTEST_REGVAL);
    expect(full.maxPasidLog2).toBe(MOCK_PASID_WIDTH);
    expect(full.capabilities & IOMMU_HW_CAP_DIRTY_TRACKING).toBe(IOMMU_HW_CAP_DIRTY_TRACKING);
    // A C caller's buffer filled with 0xff first: what the kernel writes is visible byte by byte.
    const call = (dataLen: number, flags = 0, inType = 0) => {
      const base = value(w.proc.mmap(0, PAGE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0));
      const data = base + 256;
      value(w.proc.mm.write(data, new Uint8Array(64).fill(0xff)));
      value(w.proc.mm.write(base, S.iommu_hw_info.encode({ size: S.iommu_hw_info.sizeof, flags, dev_id: w.idevId, data_len: dataLen, data_uptr: BigInt(data), out_data_type: inType })));
      const r = dispatch(w.proc, w.fd, IOMMU_GET_HW_INFO, base);
      const back = new Uint8Array(S.iommu_hw_info.sizeof);
      value(w.proc.mm.read(base, back));
      const bytes = new Uint8Array(64);
      value(w.proc.mm.read(data, bytes));
      return { e: errno(r), out: S.iommu_hw_info.decode(back), bytes };
    };
    const zero = call(0);
    expect(zero.out.data_len).toBe(8);
    expect(zero.bytes.every((b) => b === 0xff)).toBe(true);
    const larger = call(16);
    expect(larger.out.data_len).toBe(8);
    expect([...larger.bytes.subarray(8, 16)]).toEqual(new Array(8).fill(0));
    expect(larger.bytes[16]).toBe(0xff);
    const smaller = call(4);
    expect([...smaller.bytes.subarray(0, 4)]).toEqual([0, 0, 0, 0]);
    expect(smaller.bytes[4]).toBe(0xff);
    expect(call(8, IOMMU_HW_INFO_FLAG_INPUT_TYPE, 1).e).toBe('EOPNOTSUPP');
    expect(call(8, IOMMU_HW_INFO_FLAG_INPUT_TYPE, IOMMU_HW_INFO_TYPE_SELFTEST).e).toBe('ok');
    // A mock device without MOCK_FLAGS_DEVICE_PASID reports no PASIDs.
    const plain = value(w.t.mockDomain(w.ioasId));
    expect(value(api.getHwInfo({ ...w.a, devId: plain.idevId })).maxPasidLog2).toBe(0);
    w.teardown();
  });

  it('ioas_iova_alloc: with a mock domain, lengths that are not multiples of MOCK_PAGE_SIZE are EINVAL', () => {
    const w = ioasMockDomain();
    for (let length = 1; length <= 2 * PAGE; length++) {
      const r = api.ioasMap({ ...w.a, ioasId: w.ioasId, userVa: w.buffer, length });
      if (length % MOCK_PAGE_SIZE === 0) {
        const iova = value(r).iova;
        value(api.ioasUnmap({ ...w.a, ioasId: w.ioasId, iova, length }));
      } else expect(errno(r)).toBe('EINVAL');
    }
    w.teardown();
  });
});

/** FIXTURE_SETUP(iommufd_mock_domain), one_domain: an IOAS and one mock domain; the 8-page buffer. */
function mockDomainFixture(): SelftestWorld & { ioasId: number; stdevId: number; hwptId: number; idevId: number } {
  const w = selftestWorld();
  const ioasId = w.ioasAlloc();
  return { ...w, ioasId, ...value(w.t.mockDomain(ioasId)) };
}

describe('iommufd_mock_domain (one_domain)', () => {
  it('basic: a map over a munmapped half is EFAULT', () => {
    const w = mockDomainFixture();
    const size = 8 * PAGE;
    const buf = value(w.proc.mmap(0, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0));
    value(w.proc.mm.munmap(buf + size / 2, size / 2));
    expect(errno(api.ioasMap({ ...w.a, ioasId: w.ioasId, userVa: buf, length: size }))).toBe('EFAULT');
    w.teardown();
  });

  it('all_aligns: every 2 KiB start/end maps, translates (MD_CHECK_MAP) and pins once (MD_CHECK_REFS), then unpins', () => {
    const w = mockDomainFixture();
    const size = 8 * PAGE;
    const buf = value(w.proc.mmap(0, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0));
    value(w.t.checkRefs(buf, size, 0));
    for (let start = 0; start < size; start += MOCK_PAGE_SIZE) {
      for (let end = start + MOCK_PAGE_SIZE; end < size; end += MOCK_PAGE_SIZE) {
        const length = end - start;
        const iova = w.map(w.ioasId, buf + start, length);
        expect(Number(iova % BigInt(PAGE))).toBe((buf + start) % PAGE);
        value(w.t.checkMap(w.hwptId, iova, BigInt(length), buf + start));
        const first = Math.floor(start / PAGE) * PAGE;
        value(w.t.checkRefs(buf + first, Math.floor(end / PAGE) * PAGE - first, 1));
        value(api.ioasUnmap({ ...w.a, ioasId: w.ioasId, iova, length }));
      }
    }
    value(w.t.checkRefs(buf, size, 0));
    w.teardown();
  });

  it('replace: the stdev moves to another IOAS and its old auto HWPT is freed (ENOENT)', () => {
    const w = mockDomainFixture();
    const ioas2 = w.ioasAlloc();
    const hwpt2 = value(w.t.mockDomainReplace(w.stdevId, ioas2));
    expect(hwpt2).not.toBe(w.hwptId);
    expect(errno(api.destroy({ ...w.a, id: w.hwptId }))).toBe('ENOENT');
    const manual = value(api.hwptAlloc({ ...w.a, devId: w.idevId, ptId: w.ioasId }));
    expect(value(w.t.mockDomainReplace(w.stdevId, manual))).toBe(manual);
    expect(value(w.t.mockDomainReplace(w.stdevId, ioas2))).not.toBe(manual);
    value(api.destroy({ ...w.a, id: manual }));
    w.teardown();
  });

  it('alloc_hwpt: unknown flags EOPNOTSUPP; 0 and NEST_PARENT work; EBUSY while attached', () => {
    const w = mockDomainFixture();
    expect(errno(api.hwptAlloc({ ...w.a, devId: w.idevId, ptId: w.ioasId, flags: 1 << 30 }))).toBe('EOPNOTSUPP');
    for (const flags of [0, IOMMU_HWPT_ALLOC_NEST_PARENT]) {
      const hwpt = value(api.hwptAlloc({ ...w.a, devId: w.idevId, ptId: w.ioasId, flags }));
      value(w.t.mockDomainReplace(w.stdevId, hwpt));
      expect(errno(api.destroy({ ...w.a, id: hwpt }))).toBe('EBUSY');
      value(w.t.mockDomainReplace(w.stdevId, w.ioasId));
      value(api.destroy({ ...w.a, id: hwpt }));
    }
    w.teardown();
  });
});

describe('iommufd_device_pasid (has_pasid)', () => {
  it('pasid_attach: attach/replace/detach rules, PASID 1024 fails replace with ENOMEM and keeps the old HWPT', () => {
    const w = selftestWorld();
    const ioasId = w.ioasAlloc();
    const md = value(w.t.mockDomain(ioasId, MOCK_FLAGS_DEVICE_PASID));
    value(w.t.pasidDetach(md.stdevId, 100));
    const s2 = value(api.hwptAlloc({ ...w.a, devId: md.idevId, ptId: ioasId }));
    const s2Pasid = value(api.hwptAlloc({ ...w.a, devId: md.idevId, ptId: ioasId, flags: IOMMU_HWPT_ALLOC_PASID }));
    const s2Pasid2 = value(api.hwptAlloc({ ...w.a, devId: md.idevId, ptId: ioasId, flags: IOMMU_HWPT_ALLOC_PASID }));
    // The RID is on its auto domain (not PASID-compatible): a PASID attach is EINVAL.
    expect(errno(w.t.pasidAttach(md.stdevId, 100, s2Pasid))).toBe('EINVAL');
    value(w.t.mockDomainReplace(md.stdevId, s2Pasid));
    expect(errno(w.t.pasidAttach(md.stdevId, 100, s2))).toBe('EINVAL');
    expect(errno(w.t.pasidAttach(md.stdevId, 100, ioasId))).toBe('EINVAL');
    value(w.t.pasidAttach(md.stdevId, 100, s2Pasid));
    value(w.t.pasidCheckHwpt(md.stdevId, 100, s2Pasid));
    expect(errno(w.t.pasidAttach(md.stdevId, 100, s2Pasid))).toBe('EBUSY');
    // With a PASID attached the RID cannot move to a non-PASID-compatible HWPT.
    expect(errno(w.t.mockDomainReplace(md.stdevId, s2))).toBe('EINVAL');
    expect(errno(w.t.pasidReplace(md.stdevId, 200, s2Pasid))).toBe('EINVAL');
    expect(errno(w.t.pasidReplace(md.stdevId, 100, ioasId))).toBe('EINVAL');
    value(w.t.pasidCheckHwpt(md.stdevId, 100, s2Pasid));
    value(w.t.pasidReplace(md.stdevId, 100, s2Pasid2));
    value(w.t.pasidCheckHwpt(md.stdevId, 100, s2Pasid2));
    value(w.t.pasidDetach(md.stdevId, 100));
    value(w.t.pasidCheckHwpt(md.stdevId, 100, 0));
    // PASID 1024: the first attach arms the mock's fake error, the replace then fails and nothing moves.
    value(w.t.pasidAttach(md.stdevId, IOMMU_TEST_PASID_RESERVED, s2Pasid));
    expect(errno(w.t.pasidReplace(md.stdevId, IOMMU_TEST_PASID_RESERVED, s2Pasid2))).toBe('ENOMEM');
    value(w.t.pasidCheckHwpt(md.stdevId, IOMMU_TEST_PASID_RESERVED, s2Pasid));
    expect(errno(w.t.pasidCheckHwpt(md.stdevId, IOMMU_TEST_PASID_RESERVED, s2Pasid2))).toBe('EINVAL');
    value(w.t.pasidDetach(md.stdevId, IOMMU_TEST_PASID_RESERVED));
    value(w.t.pasidCheckHwpt(md.stdevId, IOMMU_TEST_PASID_RESERVED, 0));
    w.teardown();
  });

  it('pasid_attach (no_pasid): a device without PASID support refuses every PASID attach', () => {
    const w = selftestWorld();
    const ioasId = w.ioasAlloc();
    const md = value(w.t.mockDomain(ioasId));
    const hwpt = value(api.hwptAlloc({ ...w.a, devId: md.idevId, ptId: ioasId, flags: IOMMU_HWPT_ALLOC_PASID }));
    value(w.t.mockDomainReplace(md.stdevId, hwpt));
    expect(errno(w.t.pasidAttach(md.stdevId, 100, hwpt))).toBe('EINVAL');
    w.teardown();
  });

  it('pasid_attach: an IOPF HWPT at PASID 2048 gets TRIGGER_IOPF with that PASID on its fault fd', () => {
    const w = selftestWorld();
    const ioasId = w.ioasAlloc();
    const md = value(w.t.mockDomain(ioasId, MOCK_FLAGS_DEVICE_PASID));
    const fault = value(api.faultQueueAlloc(w.a));
    const ridHwpt = value(api.hwptAlloc({ ...w.a, devId: md.idevId, ptId: ioasId, flags: IOMMU_HWPT_ALLOC_PASID }));
    value(w.t.mockDomainReplace(md.stdevId, ridHwpt));
    const iopf = value(api.hwptAlloc({ ...w.a, devId: md.idevId, ptId: ioasId, flags: IOMMU_HWPT_ALLOC_PASID, faultId: fault.faultId }));
    value(w.t.pasidAttach(md.stdevId, 2048, iopf));
    value(w.t.triggerIopf(md.idevId, { pasid: 2048 }));
    const got = value(api.faultRead({ proc: w.proc, faultFd: fault.faultFd }));
    expect(got).toHaveLength(1);
    expect(got[0]).toMatchObject({ dev_id: md.idevId, pasid: 2048, grpid: 2, flags: 3 });
    expect(value(api.faultRespond({ proc: w.proc, faultFd: fault.faultFd, responses: [{ cookie: got[0]?.cookie ?? 0, code: 0 }] }))).toBe(1);
    value(w.t.pasidReplace(md.stdevId, 2048, ridHwpt));
    value(w.t.pasidDetach(md.stdevId, 2048));
    w.proc.fds.close(fault.faultFd);
    w.teardown();
  });
});

describe('iommufd_dirty_tracking (the mock side)', () => {
  it('enforce_dirty and device_dirty_capability: NO_DIRTY devices refuse dirty HWPTs', () => {
    const w = selftestWorld();
    const ioasId = w.ioasAlloc();
    const md = value(w.t.mockDomain(ioasId));
    const dirtyHwpt = value(api.hwptAlloc({ ...w.a, devId: md.idevId, ptId: ioasId, flags: IOMMU_HWPT_ALLOC_DIRTY_TRACKING }));
    expect(errno(w.t.mockDomain(dirtyHwpt, MOCK_FLAGS_DEVICE_NO_DIRTY))).toBe('EINVAL');
    const nd = value(w.t.mockDomain(ioasId, MOCK_FLAGS_DEVICE_NO_DIRTY));
    expect(errno(api.hwptAlloc({ ...w.a, devId: nd.idevId, ptId: ioasId, flags: IOMMU_HWPT_ALLOC_DIRTY_TRACKING }))).toBe('EOPNOTSUPP');
    expect(value(api.getHwInfo({ ...w.a, devId: nd.idevId })).capabilities & IOMMU_HW_CAP_DIRTY_TRACKING).toBe(0n);
    w.teardown();
  });

  it('IOMMU_TEST_OP_DIRTY needs tracking on; the bits it sets come back through dirtyOps.readAndClearDirty', () => {
    const w = selftestWorld();
    const ioasId = w.ioasAlloc();
    const md = value(w.t.mockDomain(ioasId));
    const hwptId = value(api.hwptAlloc({ ...w.a, devId: md.idevId, ptId: ioasId, flags: IOMMU_HWPT_ALLOC_DIRTY_TRACKING }));
    value(w.t.mockDomainReplace(md.stdevId, hwptId));
    w.map(ioasId, w.buffer, BUFFER_SIZE, BASE);
    const bitmap = value(w.proc.mmap(0, PAGE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0));
    value(w.proc.mm.write(bitmap, Uint8Array.of(0b1010_0101, 0b1)));
    const pages = BigInt(BUFFER_SIZE / MOCK_PAGE_SIZE);
    expect(errno(w.t.dirty(hwptId, BASE, pages * BigInt(MOCK_PAGE_SIZE), BigInt(MOCK_PAGE_SIZE), bitmap))).toBe('EINVAL');
    const domain = value(fileCtx(w).objects.get<HwptPaging>(hwptId, 'hwpt_paging')).domain;
    expect(domain).toBeInstanceOf(MockPagingDomain);
    const ops = domain.dirtyOps;
    if (ops === null) throw new Error('a DIRTY_TRACKING mock domain has dirty ops');
    value(ops.setDirtyTracking(domain, true));
    expect(value(w.t.dirty(hwptId, BASE, pages * BigInt(MOCK_PAGE_SIZE), BigInt(MOCK_PAGE_SIZE), bitmap))).toBe(5);
    const seen: number[] = [];
    value(ops.readAndClearDirty(domain, Number(BASE), BUFFER_SIZE, false, (iova, bytes) => {
      expect(bytes).toBe(MOCK_PAGE_SIZE);
      seen.push((iova - MOCK_APERTURE_START) / MOCK_PAGE_SIZE);
    }));
    expect(seen).toEqual([0, 2, 5, 7, 8]);
    let again = 0;
    value(ops.readAndClearDirty(domain, Number(BASE), BUFFER_SIZE, false, () => { again++; }));
    expect(again).toBe(0);
    w.teardown();
  });
});

describe('iommufd_dirty_tracking: the HWPT the dirty tests allocate (test_cmd_hwpt_alloc_iommupt)', () => {
  it('IOMMU_HWPT_DATA_SELFTEST picks MOCK_IOMMUPT_DEFAULT or HUGE; other types EOPNOTSUPP, short data EINVAL', () => {
    const w = selftestWorld();
    const ioasId = w.ioasAlloc();
    value(w.t.mockDomain(ioasId));
    const ctx = fileCtx(w);
    const ioas = value(ctx.objects.get<Ioas>(ioasId, 'ioas'));
    const mock = w.k.iommufdParams.selftest?.bus.devices[0];
    if (mock === undefined) throw new Error('a mock device');
    // The struct is in the caller's memory, as a C program would pass it (data_uptr/data_len).
    const selftestData = (pagetable: number, len = 8, type = IOMMU_HWPT_DATA_SELFTEST) => {
      const data = new Uint8Array(8);
      new DataView(data.buffer).setUint32(0, 0xbadbeef, true);
      new DataView(data.buffer).setUint32(4, pagetable, true);
      value(w.proc.mm.write(w.buffer, data));
      return userData(w.proc, type, BigInt(w.buffer), len);
    };
    const alloc = (ud: IommuUserData) => hwptPagingAlloc(ctx, ioas, mock.dev, { userData: ud, flags: IOMMU_HWPT_ALLOC_DIRTY_TRACKING });
    const def = value(alloc(selftestData(MOCK_IOMMUPT_DEFAULT)));
    const huge = value(alloc(selftestData(MOCK_IOMMUPT_HUGE)));
    expect(def.domain.pgsizeBitmap).toBe(MOCK_PAGE_SIZE);
    expect(huge.domain.pgsizeBitmap).toBe(MOCK_PAGE_SIZE | MOCK_HUGE_PAGE_SIZE);
    expect(def.domain.dirtyOps).not.toBeNull();
    expect(errno(alloc(selftestData(7)))).toBe('EOPNOTSUPP');
    expect(errno(alloc(selftestData(MOCK_IOMMUPT_AMDV1)))).toBe('EOPNOTSUPP');
    expect(errno(alloc(selftestData(0, 8, 1)))).toBe('EOPNOTSUPP');
    expect(errno(alloc(selftestData(0, 12)))).toBe('EINVAL'); // longer than the kernel's struct: refused, not tail-checked
    expect(errno(alloc(selftestData(0, 2)))).toBe('EINVAL');
    def.destroy();
    huge.destroy();
    w.teardown();
  });
});

/** The IommufdCtx behind the fixture's fd. */
function fileCtx(w: SelftestWorld): IommufdCtx {
  const f = value(w.proc.fds.get(w.fd)).file;
  if (!(f instanceof IommufdCtx)) throw new Error('not an iommufd');
  return f;
}

describe('mock bus devices in the rest of the kernel', () => {
  it('each is a singleton group (blocked default domain) in /sys, invariants and isolation hold, and it goes with its stdev', () => {
    const w = selftestWorld();
    const ioasId = w.ioasAlloc();
    const hostGroups = w.k.core.groups.length;
    const a = value(w.t.mockDomain(ioasId));
    const b = value(w.t.mockDomain(ioasId, MOCK_FLAGS_DEVICE_PASID));
    expect(w.k.core.groups.length).toBe(hostGroups + 2);
    const mockGroups = w.k.core.groups.filter((g) => g.devices.some((d) => w.k.core.isHotplugged(d)));
    expect(mockGroups.map((g) => g.devices.length)).toEqual([1, 1]);
    const [g0, g1] = mockGroups;
    if (g0 === undefined || g1 === undefined) throw new Error('two mock groups');
    expect(value(w.k.sysfs.list(`/sys/kernel/iommu_groups/${g0.id}/devices`))).toEqual(['iommufd_mock0']);
    expect(value(w.k.sysfs.realpath(`/sys/kernel/iommu_groups/${g1.id}/devices/iommufd_mock1`))).toBe('/sys/devices/iommufd_mock1');
    expect(value(w.k.sysfs.read(`/sys/kernel/iommu_groups/${g0.id}/type`))).toBe('blocked\n');
    expect(value(w.k.sysfs.list('/sys/bus/iommufd_mock/devices'))).toEqual(['iommufd_mock0', 'iommufd_mock1']);
    // Mock devices are never PCI functions of the host.
    expect(value(w.k.sysfs.list('/sys/bus/pci/devices')).some((n) => n.startsWith('ffff:'))).toBe(false);
    expect(checkInvariants(w.k, [])).toEqual([]);
    expect(checkIsolation(w.k).breaches).toEqual([]);
    value(api.destroy({ ...w.a, id: a.stdevId }));
    expect(w.k.core.groups.length).toBe(hostGroups + 1);
    expect(errno(w.k.sysfs.list('/sys/bus/iommufd_mock/devices'))).toBe('ok');
    // The lowest free mock number is reused, as mock_dev_ida does.
    const c = value(w.t.mockDomain(ioasId));
    expect(value(w.k.sysfs.list('/sys/bus/iommufd_mock/devices'))).toEqual(['iommufd_mock0', 'iommufd_mock1']);
    // Object IDs are the lowest free too: the new stdev and DEVICE take the destroyed ones.
    expect([c.stdevId, c.idevId]).toEqual([a.stdevId, a.idevId]);
    expect(b.idevId).not.toBe(c.idevId);
    w.teardown();
    // Closing the iommufd destroyed every stdev: the mock groups are gone.
    expect(w.k.core.groups.length).toBe(hostGroups);
  });
});
