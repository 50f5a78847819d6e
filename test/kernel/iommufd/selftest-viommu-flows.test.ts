// The upstream selftest's iommufd_viommu fixture (mock_viommu variant) and iommufd_ioas.alloc_hwpt_nested,
// replayed through the byte-level dispatch as tools/testing/selftests/iommu/iommufd.c issues them: structs
// built in the process's memory, driver data behind data_uptr, IOMMU_TEST_CMD for the mock's checks, the
// FAULT and vEVENTQ fds read and written with read(2)/write(2). Every flow ends with teardown_iommufd()
// (close, reopen, MD_CHECK_REFS = 0 on the buffer).

import { describe, expect, it } from 'vitest';
import {
  IOMMU_HW_QUEUE_TYPE_SELFTEST, IOMMU_HWPT_DATA_SELFTEST, IOMMU_HWPT_INVALIDATE_DATA_SELFTEST, IOMMU_TEST_DEV_CACHE_DEFAULT,
  IOMMU_TEST_HW_QUEUE_MAX, IOMMU_TEST_INVALIDATE_FLAG_ALL, IOMMU_TEST_IOTLB_DEFAULT, IOMMU_VEVENTQ_TYPE_SELFTEST,
  IOMMU_VIOMMU_INVALIDATE_DATA_SELFTEST, IOMMU_VIOMMU_TYPE_SELFTEST, MOCK_DEV_CACHE_ID_MAX, MOCK_NESTED_DOMAIN_IOTLB_ID_MAX,
} from '../../../src/kernel/iommufd/selftest/constants.ts';
import { MAP_ANONYMOUS, MAP_PRIVATE, MAP_SHARED, PROT_READ, PROT_WRITE } from '../../../src/kernel/mm/mman.ts';
import * as api from '../../../src/uapi/api.ts';
import {
  IOMMU_HW_QUEUE_TYPE_DEFAULT, IOMMU_HWPT_ALLOC_NEST_PARENT, IOMMU_HWPT_DATA_NONE, IOMMU_HWPT_FAULT_ID_VALID, IOMMU_VEVENTQ_FLAG_LOST_EVENTS,
  IOMMUFD_PAGE_RESP_SUCCESS,
} from '../../../src/uapi/iommufd-consts.ts';
import * as T from '../../../src/uapi/iommufd-test-structs.ts';
import { makeCaller } from '../../uapi/dispatch-helpers.ts';
import { setup } from '../../uapi/viommu-helpers.ts';
import { NO_PASID } from '../../../src/hw/iommu/types.ts';
import { iommufdDeviceAttach } from '../../../src/kernel/iommufd/device.ts';
import { errno, PAGE, selftestWorld, value } from './selftest-helpers.ts';

const U32_MAX = 0xffff_ffff;
/** IOMMU_VIOMMU_INVALIDATE_DATA_SELFTEST_INVALID / IOMMU_HWPT_INVALIDATE_DATA_SELFTEST_INVALID. */
const INVALIDATE_DATA_SELFTEST_INVALID = 0xdadbeef;
/** sizeof(struct iommu_hwpt_selftest) and offsetofend(iotlb). */
const HWPT_SELFTEST_LEN = 8;
const HWPT_SELFTEST_MIN = 4;
const HWPT_INV_LEN = 8;
const VIOMMU_INV_LEN = 12;

const le32 = (...words: number[]): Uint8Array => {
  const b = new Uint8Array(words.length * 4);
  words.forEach((w, i) => new DataView(b.buffer).setUint32(i * 4, w >>> 0, true));
  return b;
};

/** The fixture: a selftest world, a C-like caller and a data page for driver structs. */
function fixture() {
  const w = selftestWorld();
  const scratch = value(w.proc.mmap(0, PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  const c = makeCaller(w.proc, w.fd, scratch);
  const dataPage = value(w.proc.mmap(0, 4 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  /** Put `bytes` in the data page: the user pointer. */
  const user = (bytes: Uint8Array, at = 0): bigint => {
    value(w.proc.mm.write(dataPage + at, bytes));
    return BigInt(dataPage + at);
  };
  const read = (uptr: bigint, len: number): Uint8Array => {
    const b = new Uint8Array(len);
    value(w.proc.mm.read(Number(uptr), b));
    return b;
  };
  const num = (r: { out: unknown }, f: string): number => Number((r.out as Record<string, number | bigint>)[f]);
  const hwptAlloc = (devId: number, ptId: number, flags: number, data?: { type: number; bytes: Uint8Array | null; len?: number }, faultId = 0) =>
    c.call('IOMMU_HWPT_ALLOC', {
      dev_id: devId, pt_id: ptId, flags, fault_id: faultId,
      data_type: data?.type ?? IOMMU_HWPT_DATA_NONE, data_len: data?.len ?? data?.bytes?.length ?? 0,
      data_uptr: data?.bytes == null ? 0n : user(data.bytes),
    });
  const selftestNested = (iotlb = IOMMU_TEST_IOTLB_DEFAULT) => ({ type: IOMMU_HWPT_DATA_SELFTEST, bytes: le32(iotlb, 0) });
  const destroy = (id: number): string => c.call('IOMMU_DESTROY', { id }).e;
  /** IOMMU_HWPT_INVALIDATE: errno and entry_num as written back. */
  const invalidate = (id: number, type: number, entries: Uint8Array | null, entryLen: number, entryNum: number) => {
    const r = c.call('IOMMU_HWPT_INVALIDATE', {
      hwpt_id: id, data_type: type, entry_len: entryLen, entry_num: entryNum, data_uptr: entries === null ? 0n : user(entries, 2 * PAGE),
    });
    return { e: r.e, num: num(r, 'entry_num') };
  };
  const checkIotlb = (hwptId: number, id: number, v: number) => errno(w.t.raw(T.IOMMU_TEST_OP_MD_CHECK_IOTLB, hwptId, { id, iotlb: v }));
  const checkIotlbAll = (hwptId: number, v: number) => { for (let i = 0; i <= MOCK_NESTED_DOMAIN_IOTLB_ID_MAX; i++) expect(checkIotlb(hwptId, i, v), `iotlb ${i}`).toBe('ok'); };
  const checkCache = (devId: number, id: number, v: number) => errno(w.t.raw(T.IOMMU_TEST_OP_DEV_CHECK_CACHE, devId, { id, cache: v }));
  const checkCacheAll = (devId: number, v: number) => { for (let i = 0; i <= MOCK_DEV_CACHE_ID_MAX; i++) expect(checkCache(devId, i, v), `cache ${i}`).toBe('ok'); };
  const triggerVevent = (devId: number) => errno(w.t.raw(T.IOMMU_TEST_OP_TRIGGER_VEVENT, 0, { dev_id: devId }));
  /** test_cmd_trigger_iopf(): TRIGGER_IOPF, read one fault record, answer it by cookie. */
  const triggerIopf = (devId: number, faultFd: number) => {
    value(w.t.triggerIopf(devId, { pasid: 1 }));
    const got = value(api.faultRead({ proc: w.proc, faultFd, max: 1 }));
    expect(got).toHaveLength(1);
    expect(got[0]).toMatchObject({ dev_id: devId, pasid: 1, grpid: 2, addr: 0xdeadbeafn });
    expect(value(api.faultRespond({ proc: w.proc, faultFd, responses: [{ cookie: got[0]?.cookie ?? 0, code: IOMMUFD_PAGE_RESP_SUCCESS }] }))).toBe(1);
  };
  return { w, c, user, read, num, hwptAlloc, selftestNested, destroy, invalidate, checkIotlb, checkIotlbAll, checkCache, checkCacheAll, triggerVevent, triggerIopf };
}

/** FIXTURE_SETUP(iommufd_viommu), mock_viommu variant: mock domain, NEST_PARENT HWPT, vIOMMU, nested HWPT on it. */
function viommuFixture() {
  const f = fixture();
  const ioasId = f.w.ioasAlloc();
  const md = value(f.w.t.mockDomain(ioasId));
  const parent = f.hwptAlloc(md.idevId, ioasId, IOMMU_HWPT_ALLOC_NEST_PARENT);
  expect(parent.e).toBe('ok');
  const hwptId = f.num(parent, 'out_hwpt_id');
  const v = f.c.call('IOMMU_VIOMMU_ALLOC', { dev_id: md.idevId, hwpt_id: hwptId, type: IOMMU_VIOMMU_TYPE_SELFTEST });
  expect(v.e).toBe('ok');
  const viommuId = f.num(v, 'out_viommu_id');
  const nested = f.hwptAlloc(md.idevId, viommuId, 0, f.selftestNested());
  expect(nested.e).toBe('ok');
  return { ...f, ioasId, stdevId: md.stdevId, devId: md.idevId, hwptId, viommuId, nestedHwptId: f.num(nested, 'out_hwpt_id') };
}

describe('iommufd_viommu (mock_viommu)', () => {
  it('viommu_auto_destroy: closing the fd with the fixture in place leaves nothing pinned', () => {
    const s = viommuFixture();
    s.w.teardown();
  });

  it('viommu_negative_tests', () => {
    const s = viommuFixture();
    const alloc = (hwptId: number, type: number) => s.c.call('IOMMU_VIOMMU_ALLOC', { dev_id: s.devId, hwpt_id: hwptId, type }).e;
    expect(alloc(0, IOMMU_VIOMMU_TYPE_SELFTEST)).toBe('ENOENT');
    const notParent = s.num(s.hwptAlloc(s.devId, s.ioasId, 0), 'out_hwpt_id');
    expect(alloc(notParent, IOMMU_VIOMMU_TYPE_SELFTEST)).toBe('EINVAL');
    expect(s.destroy(notParent)).toBe('ok');
    expect(alloc(s.hwptId, 0xdead)).toBe('EOPNOTSUPP');
    expect(s.destroy(s.hwptId)).toBe('EBUSY');
    expect(s.destroy(s.viommuId)).toBe('EBUSY');
    s.w.teardown();
  });

  it('viommu_alloc_nested_iopf: fault_id, flags, the vDEVICE before attach, an IOPF answered through the FAULT fd', () => {
    const s = viommuFixture();
    const fault = value(api.faultQueueAlloc(s.w.a));
    expect(s.hwptAlloc(s.devId, s.viommuId, IOMMU_HWPT_FAULT_ID_VALID, s.selftestNested(), U32_MAX).e).toBe('ENOENT');
    expect(s.hwptAlloc(s.devId, s.viommuId, (IOMMU_HWPT_FAULT_ID_VALID | (1 << 31)) >>> 0, s.selftestNested(), fault.faultId).e).toBe('EOPNOTSUPP');
    const iopf = s.hwptAlloc(s.devId, s.viommuId, IOMMU_HWPT_FAULT_ID_VALID, s.selftestNested(), fault.faultId);
    expect(iopf.e).toBe('ok');
    const iopfHwptId = s.num(iopf, 'out_hwpt_id');
    // Must allocate a vDEVICE before attaching to a nested HWPT of the vIOMMU.
    expect(errno(s.w.t.mockDomainReplace(s.stdevId, iopfHwptId))).toBe('ENOENT');
    expect(s.c.call('IOMMU_VDEVICE_ALLOC', { viommu_id: s.viommuId, dev_id: s.devId, virt_id: 0x99n }).e).toBe('ok');
    value(s.w.t.mockDomainReplace(s.stdevId, iopfHwptId));
    expect(s.destroy(iopfHwptId)).toBe('EBUSY');
    s.triggerIopf(s.devId, fault.faultFd);
    value(s.w.t.mockDomainReplace(s.stdevId, s.ioasId));
    expect(s.destroy(iopfHwptId)).toBe('ok');
    value(s.w.proc.fds.close(fault.faultFd));
    expect(s.destroy(fault.faultId)).toBe('ok');
    s.w.teardown();
  });

  it('viommu_alloc_with_data: data in and out, mmap of the driver pages (ENXIO for another offset or length), EBUSY while mapped', () => {
    const s = viommuFixture();
    const dataUptr = s.user(new Uint8Array([0xef, 0xbe, 0, 0, ...new Array<number>(20).fill(0)]));
    const v = s.c.call('IOMMU_VIOMMU_ALLOC', { dev_id: s.devId, hwpt_id: s.hwptId, type: IOMMU_VIOMMU_TYPE_SELFTEST, data_len: 24, data_uptr: dataUptr });
    expect(v.e).toBe('ok');
    const viommuId = s.num(v, 'out_viommu_id');
    const out = new DataView(s.read(dataUptr, 24).buffer);
    expect(out.getUint32(4, true)).toBe(0xbeef); // out_data = in_data
    const offset = Number(out.getBigUint64(8, true));
    const length = Number(out.getBigUint64(16, true));
    expect(length).toBe(2 * PAGE);
    const mmap = (len: number, off: number) => s.w.proc.mmap(0, len, PROT_READ | PROT_WRITE, MAP_SHARED, s.w.fd, off);
    expect(errno(mmap(length, offset + PAGE))).toBe('ENXIO');
    expect(errno(mmap(length, offset + 2 * PAGE))).toBe('ENXIO');
    expect(errno(mmap(length / 2, offset))).toBe('ENXIO');
    expect(errno(mmap(length * 2, offset))).toBe('ENXIO');
    const at = value(mmap(length, offset));
    const word = new Uint8Array(4);
    value(s.w.proc.mm.read(at, word));
    expect(new DataView(word.buffer).getUint32(0, true)).toBe(0xbeef); // the loopback page
    expect(s.destroy(viommuId)).toBe('EBUSY');
    s.w.proc.mm.munmap(at, length);
    expect(s.destroy(viommuId)).toBe('ok');
    s.w.teardown();
  });

  it('vdevice_alloc: the vDEVICE before attach, vEVENTQ depth 2 (EEXIST twice), events with the virt_id, overflow and recovery', () => {
    const s = viommuFixture();
    expect(errno(s.w.t.mockDomainReplace(s.stdevId, s.nestedHwptId))).toBe('ENOENT');
    const q = s.c.call('IOMMU_VEVENTQ_ALLOC', { viommu_id: s.viommuId, type: IOMMU_VEVENTQ_TYPE_SELFTEST, veventq_depth: 2 });
    expect(q.e).toBe('ok');
    expect(s.c.call('IOMMU_VEVENTQ_ALLOC', { viommu_id: s.viommuId, type: IOMMU_VEVENTQ_TYPE_SELFTEST, veventq_depth: 2 }).e).toBe('EEXIST');
    const veventqFd = s.num(q, 'out_veventq_fd');
    const vdev = s.c.call('IOMMU_VDEVICE_ALLOC', { viommu_id: s.viommuId, dev_id: s.devId, virt_id: 0x99n });
    expect(vdev.e).toBe('ok');
    // Not attached through the vIOMMU yet: TRIGGER_VEVENT has no vIOMMU to report on.
    expect(s.triggerVevent(s.devId)).toBe('ENOENT');
    value(s.w.t.mockDomainReplace(s.stdevId, s.nestedHwptId));
    expect(s.triggerVevent(s.devId)).toBe('ok');
    const read = () => value(api.veventqRead({ proc: s.w.proc, veventqFd, dataLen: 4 }));
    const first = read();
    expect(first).toHaveLength(1);
    expect(first[0]?.flags).toBe(0);
    expect(new DataView((first[0]?.data ?? new Uint8Array(4)).buffer).getUint32(0, true)).toBe(0x99);
    let prevSeq = first[0]?.sequence ?? -1;
    expect(s.c.call('IOMMU_VDEVICE_ALLOC', { viommu_id: s.viommuId, dev_id: s.devId, virt_id: 0x99n }).e).toBe('EEXIST');
    value(s.w.t.mockDomainReplace(s.stdevId, s.ioasId));
    expect(s.destroy(s.num(vdev, 'out_vdevice_id'))).toBe('ok');

    const vdev2 = s.c.call('IOMMU_VDEVICE_ALLOC', { viommu_id: s.viommuId, dev_id: s.devId, virt_id: 0x88n });
    expect(vdev2.e).toBe('ok');
    value(s.w.t.mockDomainReplace(s.stdevId, s.nestedHwptId));
    for (let i = 0; i < 3; i++) expect(s.triggerVevent(s.devId)).toBe('ok');
    // test_err_read_vevents(EOVERFLOW): the reader sees LOST_EVENTS or a sequence gap.
    const burst = read();
    const overflow = burst.some((e, i) => (e.flags & IOMMU_VEVENTQ_FLAG_LOST_EVENTS) !== 0 || e.sequence !== ((i === 0 ? prevSeq : burst[i - 1]?.sequence ?? 0) + 1) % 2 ** 31);
    expect(overflow).toBe(true);
    const delivered = burst.filter((e) => (e.flags & IOMMU_VEVENTQ_FLAG_LOST_EVENTS) === 0);
    expect(delivered.length).toBeLessThanOrEqual(2);
    for (const e of delivered) expect(new DataView(e.data.buffer, e.data.byteOffset).getUint32(0, true)).toBe(0x88);
    prevSeq = burst[burst.length - 1]?.sequence ?? prevSeq;
    // The overflow is gone after the read.
    expect(s.triggerVevent(s.devId)).toBe('ok');
    const after = read();
    expect(after).toHaveLength(1);
    expect(after[0]?.flags).toBe(0);
    expect(after[0]?.sequence).toBe((prevSeq + 1) % 2 ** 31);
    value(s.w.proc.fds.close(veventqFd));
    value(s.w.t.mockDomainReplace(s.stdevId, s.ioasId));
    expect(s.destroy(s.num(vdev2, 'out_vdevice_id'))).toBe('ok');
    expect(s.destroy(s.num(q, 'out_veventq_id'))).toBe('ok');
    s.w.teardown();
  });

  it('vdevice_cache: vIOMMU invalidation with TEST data, partial success, DEV_CHECK_CACHE', () => {
    const s = viommuFixture();
    expect(s.c.call('IOMMU_VDEVICE_ALLOC', { viommu_id: s.viommuId, dev_id: s.devId, virt_id: 0x99n }).e).toBe('ok');
    s.checkCacheAll(s.devId, IOMMU_TEST_DEV_CACHE_DEFAULT);
    const inv = (reqs: number[][], num: number, o: { type?: number; len?: number; nullPtr?: boolean } = {}) =>
      s.invalidate(s.viommuId, o.type ?? IOMMU_VIOMMU_INVALIDATE_DATA_SELFTEST, o.nullPtr === true ? null : le32(...reqs.flat(), 0, 0, 0), o.len ?? VIOMMU_INV_LEN, num);
    const zero = [[0, 0, 0], [0, 0, 0]];
    expect(inv(zero, 0)).toEqual({ e: 'ok', num: 0 });
    expect(inv(zero, 1, { type: INVALIDATE_DATA_SELFTEST_INVALID })).toEqual({ e: 'EINVAL', num: 0 });
    // A longer entry with a zero tail copies fine (copy_struct_from_user), then vdev_id 0 is no device.
    expect(inv(zero, 1, { len: VIOMMU_INV_LEN + 1 })).toEqual({ e: 'EINVAL', num: 0 });
    // ... and with a non-zero tail it is E2BIG (iommu_copy_struct_from_full_user_array's per-entry rule).
    expect(inv([[0, 0x99, 0], [0xff, 0, 0]], 1, { len: VIOMMU_INV_LEN + 1 })).toEqual({ e: 'E2BIG', num: 0 });
    expect(inv(zero, 1, { len: 1 })).toEqual({ e: 'EINVAL', num: 0 });
    expect(inv([[U32_MAX, 0x99, 0]], 1)).toEqual({ e: 'EOPNOTSUPP', num: 0 });
    expect(inv([[0, 0x99, 0]], 1, { nullPtr: true })).toEqual({ e: 'EINVAL', num: 0 });
    expect(inv([[0, 0x99, 0]], 1, { len: 0 })).toEqual({ e: 'EINVAL', num: 0 });
    expect(inv([[0, 0x99, MOCK_DEV_CACHE_ID_MAX + 1]], 1)).toEqual({ e: 'EINVAL', num: 0 });
    expect(inv([[0, 0x9, 0]], 1)).toEqual({ e: 'EINVAL', num: 0 });
    // The first entry goes, the second's flags stop the rest.
    expect(inv([[0, 0x99, 0], [U32_MAX, 0x99, 1]], 2)).toEqual({ e: 'EOPNOTSUPP', num: 1 });
    expect(s.checkCache(s.devId, 0, 0)).toBe('ok');
    for (const i of [1, 2, 3]) expect(s.checkCache(s.devId, i, IOMMU_TEST_DEV_CACHE_DEFAULT)).toBe('ok');
    expect(inv([[0, 0x99, 0], [0, 0x99, MOCK_DEV_CACHE_ID_MAX + 1]], 2)).toEqual({ e: 'EINVAL', num: 1 });
    expect(inv([[0, 0x99, 1]], 1)).toEqual({ e: 'ok', num: 1 });
    expect(s.checkCache(s.devId, 1, 0)).toBe('ok');
    expect(s.checkCache(s.devId, 2, 0)).toBe('EINVAL');
    expect(inv([[0, 0x99, 2], [0, 0x99, 3]], 2)).toEqual({ e: 'ok', num: 2 });
    s.checkCacheAll(s.devId, 0);
    expect(s.checkCache(s.devId, MOCK_DEV_CACHE_ID_MAX + 1, 0)).toBe('EINVAL');
    expect(inv([[IOMMU_TEST_INVALIDATE_FLAG_ALL, 0x99, 0]], 1)).toEqual({ e: 'ok', num: 1 });
    s.checkCacheAll(s.devId, 0);
    s.w.teardown();
  });

  it('hw_queue: type, length, overflow, unmapped IOVA, index rules, the pinned IOVA, destroy in descending order', () => {
    const s = viommuFixture();
    const q = (type: number, index: number, iova: bigint, length: bigint) =>
      s.c.call('IOMMU_HW_QUEUE_ALLOC', { viommu_id: s.viommuId, type, index, nesting_parent_iova: iova, length });
    const start = 2n ** 24n; // MOCK_APERTURE_START
    expect(q(IOMMU_HW_QUEUE_TYPE_DEFAULT, 0, start, BigInt(PAGE)).e).toBe('EOPNOTSUPP');
    expect(q(IOMMU_HW_QUEUE_TYPE_SELFTEST, 0, start, 0n).e).toBe('EINVAL');
    expect(q(IOMMU_HW_QUEUE_TYPE_SELFTEST, 0, 2n ** 64n - 1n, BigInt(PAGE)).e).toBe('EOVERFLOW');
    expect(q(IOMMU_HW_QUEUE_TYPE_SELFTEST, 0, start, BigInt(PAGE)).e).toBe('ENOENT');
    const iova = s.w.map(s.ioasId, s.w.buffer, PAGE);
    const iova2 = s.w.map(s.ioasId, s.w.buffer + PAGE, PAGE);
    expect(q(IOMMU_HW_QUEUE_TYPE_SELFTEST, 1, iova, BigInt(PAGE)).e).toBe('EIO');
    expect(q(IOMMU_HW_QUEUE_TYPE_SELFTEST, IOMMU_TEST_HW_QUEUE_MAX, iova, BigInt(PAGE)).e).toBe('EINVAL');
    const q0 = q(IOMMU_HW_QUEUE_TYPE_SELFTEST, 0, iova, BigInt(PAGE));
    expect(q0.e).toBe('ok');
    expect(q(IOMMU_HW_QUEUE_TYPE_SELFTEST, 0, iova, BigInt(PAGE)).e).toBe('EEXIST');
    const unmap = (at: bigint) => s.c.call('IOMMU_IOAS_UNMAP', { ioas_id: s.ioasId, iova: at, length: BigInt(PAGE) }).e;
    expect(unmap(iova)).toBe('EBUSY');
    expect(unmap(iova2)).toBe('ok');
    const q1 = q(IOMMU_HW_QUEUE_TYPE_SELFTEST, 1, iova + BigInt(PAGE / 2), BigInt(PAGE / 2));
    expect(q1.e).toBe('ok');
    expect(s.destroy(s.num(q0, 'out_hw_queue_id'))).toBe('EBUSY');
    expect(s.destroy(s.num(q1, 'out_hw_queue_id'))).toBe('ok');
    expect(s.destroy(s.num(q0, 'out_hw_queue_id'))).toBe('ok');
    expect(unmap(iova)).toBe('ok');
    s.w.teardown();
  });

  it('vdevice_tombstone: destroying the stdev force-destroys the vDEVICE, whose ID is then ENOENT', () => {
    const s = viommuFixture();
    const vdev = s.c.call('IOMMU_VDEVICE_ALLOC', { viommu_id: s.viommuId, dev_id: s.devId, virt_id: 0x99n });
    expect(vdev.e).toBe('ok');
    expect(s.destroy(s.stdevId)).toBe('ok');
    expect(s.destroy(s.num(vdev, 'out_vdevice_id'))).toBe('ENOENT');
    s.w.teardown();
  });

  it('a nested HWPT on a vIOMMU holds the vIOMMU, not the parent: the vIOMMU cannot go before it', () => {
    const s = viommuFixture();
    const md2 = value(s.w.t.mockDomain(s.ioasId));
    const n2 = s.hwptAlloc(md2.idevId, s.viommuId, 0, s.selftestNested(7));
    expect(n2.e).toBe('ok');
    s.checkIotlbAll(s.num(n2, 'out_hwpt_id'), 7);
    expect(s.destroy(s.viommuId)).toBe('EBUSY');
    expect(s.destroy(s.num(n2, 'out_hwpt_id'))).toBe('ok');
    expect(s.destroy(s.nestedHwptId)).toBe('ok');
    expect(s.destroy(s.viommuId)).toBe('ok');
    expect(s.destroy(s.hwptId)).toBe('ok');
    s.w.teardown();
  });
});

describe('IOMMU_HWPT_ALLOC on a vIOMMU of an ioasis driver instance (the mock vIOMMU installed on DRHD1)', () => {
  it('a device behind another IOMMU (the DSA, DRHD0) is EINVAL; the NVMe gets a nested HWPT', () => {
    const s = setup();
    const viommuId = s.viommuAlloc();
    const data = s.userBytes(le32(IOMMU_TEST_IOTLB_DEFAULT, 0));
    const alloc = (devId: number) => s.c.call('IOMMU_HWPT_ALLOC', {
      dev_id: devId, pt_id: viommuId, data_type: IOMMU_HWPT_DATA_SELFTEST, data_len: HWPT_SELFTEST_LEN, data_uptr: data,
    });
    expect(alloc(s.dsa.id).e).toBe('EINVAL');
    const ok = alloc(s.nvme.id);
    expect(ok.e).toBe('ok');
    // The ioasis driver did not build the test vIOMMU's nested domain: it cannot be attached (EINVAL).
    expect(errno(iommufdDeviceAttach(s.nvme, Number((ok.out as Record<string, number>).out_hwpt_id), NO_PASID))).toBe('EINVAL');
    expect(s.c.call('IOMMU_DESTROY', { id: viommuId }).e).toBe('EBUSY');
    expect(s.c.call('IOMMU_DESTROY', { id: Number((ok.out as Record<string, number>).out_hwpt_id) }).e).toBe('ok');
    expect(s.c.call('IOMMU_DESTROY', { id: viommuId }).e).toBe('ok');
  });
});

describe('iommufd_ioas.alloc_hwpt_nested (mock domain)', () => {
  it('negative allocations, two nested HWPTs and an IOPF one on one parent, invalidation with partial success, replace, IOPF through the FAULT fd', () => {
    const s = fixture();
    const ioasId = s.w.ioasAlloc();
    const md = value(s.w.t.mockDomain(ioasId));
    const dev = md.idevId;
    const id = (r: { e: string; out: unknown }): number => { expect(r.e).toBe('ok'); return s.num(r, 'out_hwpt_id'); };
    expect(s.hwptAlloc(ioasId, dev, 0).e).toBe('ENOENT');
    expect(s.hwptAlloc(dev, dev, 0).e).toBe('EINVAL');
    expect(s.hwptAlloc(dev, ioasId, IOMMU_HWPT_ALLOC_NEST_PARENT | IOMMU_HWPT_FAULT_ID_VALID).e).toBe('EOPNOTSUPP');
    const parent = id(s.hwptAlloc(dev, ioasId, IOMMU_HWPT_ALLOC_NEST_PARENT));
    const notParent = id(s.hwptAlloc(dev, ioasId, 0));

    const data = s.selftestNested();
    expect(s.hwptAlloc(dev, parent, 0, { ...data, type: IOMMU_HWPT_DATA_NONE }).e).toBe('EINVAL');
    expect(s.hwptAlloc(dev, parent, 0, { ...data, type: IOMMU_HWPT_DATA_SELFTEST + 1 }).e).toBe('EOPNOTSUPP');
    expect(s.hwptAlloc(dev, parent, 0, { ...data, len: HWPT_SELFTEST_MIN - 1 }).e).toBe('EINVAL');
    expect(s.hwptAlloc(dev, parent, 0, { type: IOMMU_HWPT_DATA_SELFTEST, bytes: null, len: HWPT_SELFTEST_LEN }).e).toBe('EFAULT');
    expect(s.hwptAlloc(dev, parent, IOMMU_HWPT_ALLOC_NEST_PARENT, data).e).toBe('EOPNOTSUPP');
    expect(s.hwptAlloc(dev, notParent, 0, data).e).toBe('EINVAL');

    const fault = value(api.faultQueueAlloc(s.w.a));
    const nested0 = id(s.hwptAlloc(dev, parent, 0, data));
    const nested1 = id(s.hwptAlloc(dev, parent, 0, data));
    expect(s.hwptAlloc(dev, parent, IOMMU_HWPT_FAULT_ID_VALID, data, U32_MAX).e).toBe('ENOENT');
    const iopfHwpt = id(s.hwptAlloc(dev, parent, IOMMU_HWPT_FAULT_ID_VALID, data, fault.faultId));
    s.checkIotlbAll(nested0, IOMMU_TEST_IOTLB_DEFAULT);
    s.checkIotlbAll(nested1, IOMMU_TEST_IOTLB_DEFAULT);
    expect(s.checkIotlb(nested0, MOCK_NESTED_DOMAIN_IOTLB_ID_MAX + 1, 0)).toBe('EINVAL');
    expect(s.checkIotlb(parent, 0, IOMMU_TEST_IOTLB_DEFAULT)).toBe('ENOENT');

    expect(s.hwptAlloc(dev, nested0, 0, data).e).toBe('EINVAL');
    expect(s.destroy(parent)).toBe('EBUSY');

    const inv = (hwpt: number, reqs: number[][], num: number, o: { type?: number; len?: number; nullPtr?: boolean } = {}) =>
      s.invalidate(hwpt, o.type ?? IOMMU_HWPT_INVALIDATE_DATA_SELFTEST, o.nullPtr === true ? null : le32(...reqs.flat(), 0, 0), o.len ?? HWPT_INV_LEN, num);
    const zero = [[0, 0], [0, 0]];
    expect(inv(parent, zero, 1)).toEqual({ e: 'EINVAL', num: 0 });
    expect(inv(nested0, zero, 0)).toEqual({ e: 'ok', num: 0 });
    expect(inv(nested0, zero, 1, { type: INVALIDATE_DATA_SELFTEST_INVALID })).toEqual({ e: 'EINVAL', num: 0 });
    // iommu_copy_struct_from_user_array refuses an entry longer than the kernel's struct, zero tail or not.
    expect(inv(nested0, zero, 1, { len: HWPT_INV_LEN + 1 })).toEqual({ e: 'EINVAL', num: 0 });
    expect(inv(nested0, zero, 1, { len: 1 })).toEqual({ e: 'EINVAL', num: 0 });
    expect(inv(nested0, [[U32_MAX, 0]], 1)).toEqual({ e: 'EOPNOTSUPP', num: 0 });
    expect(inv(nested0, [[0, 0]], 1, { nullPtr: true })).toEqual({ e: 'EINVAL', num: 0 });
    expect(inv(nested0, [[0, 0]], 1, { len: 0 })).toEqual({ e: 'EINVAL', num: 0 });
    expect(inv(nested0, [[0, MOCK_NESTED_DOMAIN_IOTLB_ID_MAX + 1]], 1)).toEqual({ e: 'EINVAL', num: 0 });
    s.checkIotlbAll(nested0, IOMMU_TEST_IOTLB_DEFAULT);

    expect(inv(nested0, [[0, 0], [U32_MAX, 1]], 2)).toEqual({ e: 'EOPNOTSUPP', num: 1 });
    expect(s.checkIotlb(nested0, 0, 0)).toBe('ok');
    for (const i of [1, 2, 3]) expect(s.checkIotlb(nested0, i, IOMMU_TEST_IOTLB_DEFAULT)).toBe('ok');
    expect(inv(nested0, [[0, 0], [0, MOCK_NESTED_DOMAIN_IOTLB_ID_MAX + 1]], 2)).toEqual({ e: 'EINVAL', num: 1 });
    expect(inv(nested0, [[0, 1]], 1)).toEqual({ e: 'ok', num: 1 });
    expect(s.checkIotlb(nested0, 1, 0)).toBe('ok');
    expect(s.checkIotlb(nested0, 2, IOMMU_TEST_IOTLB_DEFAULT)).toBe('ok');
    expect(inv(nested0, [[0, 2], [0, 3]], 2)).toEqual({ e: 'ok', num: 2 });
    s.checkIotlbAll(nested0, 0);
    expect(inv(nested1, [[IOMMU_TEST_INVALIDATE_FLAG_ALL, 0]], 1)).toEqual({ e: 'ok', num: 1 });
    s.checkIotlbAll(nested1, 0);

    value(s.w.t.mockDomainReplace(md.stdevId, nested0));
    expect(s.destroy(nested0)).toBe('EBUSY');
    value(s.w.t.mockDomainReplace(md.stdevId, nested1));
    expect(s.destroy(nested1)).toBe('EBUSY');
    expect(s.destroy(nested0)).toBe('ok');
    value(s.w.t.mockDomainReplace(md.stdevId, iopfHwpt));
    expect(s.destroy(iopfHwpt)).toBe('EBUSY');
    s.triggerIopf(dev, fault.faultFd);
    value(s.w.t.mockDomainReplace(md.stdevId, parent));
    expect(s.destroy(nested1)).toBe('ok');
    expect(s.destroy(iopfHwpt)).toBe('ok');
    value(s.w.t.mockDomainReplace(md.stdevId, ioasId));
    expect(s.destroy(parent)).toBe('ok');
    expect(s.destroy(notParent)).toBe('ok');
    value(s.w.proc.fds.close(fault.faultFd));
    expect(s.destroy(fault.faultId)).toBe('ok');
    s.w.teardown();
  });
});

