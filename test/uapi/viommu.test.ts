// The vIOMMU objects through the byte-level dispatch (uAPI reference §2, §3, §6.16, §6.17, §6.19, §6.20,
// §11, §16; selftest oracle §4.7): IOMMU_VIOMMU_ALLOC, IOMMU_VDEVICE_ALLOC, IOMMU_VEVENTQ_ALLOC with its
// fd, IOMMU_HW_QUEUE_ALLOC and mmap() of an iommufd. The ioasis driver, like intel-iommu, has no vIOMMU
// ops; the tests install the selftest-like implementation of test/support/selftest-viommu.ts on one
// driver instance (DRHD1, which has the NVMe) and leave the other (DRHD0, the DSA) without.

import { describe, expect, it } from 'vitest';
import type { IommufdCtx } from '../../src/kernel/iommufd/context.ts';
import { iommufdDeviceBind, iommufdDeviceUnbind, type IommufdDevice } from '../../src/kernel/iommufd/device.ts';
import { EPOLLIN, EPOLLRDNORM } from '../../src/kernel/iommufd/fault-fd.ts';
import type { HwptPaging } from '../../src/kernel/iommufd/hw-pagetable.ts';
import type { Ioas } from '../../src/kernel/iommufd/ioas.ts';
import type { Veventq } from '../../src/kernel/iommufd/veventq.ts';
import * as K from '../../src/kernel/iommufd/veventq.ts';
import type { VeventqFile } from '../../src/kernel/iommufd/veventq-fd.ts';
import { MAP_PRIVATE, MAP_SHARED, PROT_EXEC, PROT_READ } from '../../src/kernel/mm/mman.ts';
import * as api from '../../src/uapi/api.ts';
import * as C from '../../src/uapi/iommufd-consts.ts';
import { sysPread, sysPwrite } from '../../src/uapi/rw.ts';
import {
  IOMMU_HW_QUEUE_TYPE_SELFTEST, IOMMU_VEVENTQ_TYPE_SELFTEST, IOMMU_VIOMMU_TYPE_SELFTEST, SelftestViommuDriver,
} from '../support/selftest-viommu.ts';
import { client, FIXED, PAGE, READ, RW, U64_MAX, value, WRITE, world, type World } from './dispatch-helpers.ts';

const NVME = '39:00.0';
const USB = '00:14.0';
const DSA = '6a:01.0';
/** The test driver's "MMIO" pages: 4 GiB up, far from the frame allocator's range. */
const MMIO_PA = 2 ** 32;

type Out = Record<string, unknown>;
const num = (r: { out: unknown }, f: string): number => Number((r.out as Out)[f]);

function setup(opts: { install?: boolean } = {}) {
  const w: World = world();
  const c = client(w);
  const file = value(c.proc.fds.get(c.fd));
  const ctx = file.file as IommufdCtx;
  const nvme = value(iommufdDeviceBind(ctx, w.dev(NVME), { file }));
  const usb = value(iommufdDeviceBind(ctx, w.dev(USB), { file }));
  const dsa = value(iommufdDeviceBind(ctx, w.dev(DSA), { file }));
  const drv = new SelftestViommuDriver(w.memory, MMIO_PA);
  const nvmeDriver = w.core.driverOf(w.dev(NVME));
  if (nvmeDriver === undefined) throw new Error('no IOMMU for the NVMe');
  if (opts.install !== false) drv.installOn(nvmeDriver);
  const ioasId = c.ioasAlloc();
  const hwptAlloc = (flags: number, dev: IommufdDevice = nvme): number => {
    const r = c.call('IOMMU_HWPT_ALLOC', { dev_id: dev.id, pt_id: ioasId, flags });
    expect(r.e).toBe('ok');
    return num(r, 'out_hwpt_id');
  };
  const parentId = hwptAlloc(C.IOMMU_HWPT_ALLOC_NEST_PARENT);
  const viommuCall = (f: Out = {}) => c.call('IOMMU_VIOMMU_ALLOC', { type: IOMMU_VIOMMU_TYPE_SELFTEST, dev_id: nvme.id, hwpt_id: parentId, ...f });
  const viommuAlloc = (): number => {
    const r = viommuCall();
    expect(r.e).toBe('ok');
    return num(r, 'out_viommu_id');
  };
  /** A page of user memory holding `bytes` (driver data for VIOMMU_ALLOC). */
  const userBytes = (bytes: Uint8Array): bigint => {
    const va = c.anon(1);
    value(c.proc.mm.write(va, bytes));
    return BigInt(va);
  };
  return { w, c, ctx, file, nvme, usb, dsa, drv, ioasId, parentId, hwptAlloc, viommuCall, viommuAlloc, userBytes };
}
type Setup = ReturnType<typeof setup>;

/** struct iommu_viommu_selftest {u32 in_data, u32 out_data, u64 out_mmap_offset, u64 out_mmap_length}. */
function selftestData(inData: number, size = 24): Uint8Array {
  const b = new Uint8Array(size);
  new DataView(b.buffer).setUint32(0, inData, true);
  return b;
}

function viommuWithData(s: Setup, inData: number) {
  const uptr = s.userBytes(selftestData(inData));
  const r = s.viommuCall({ data_uptr: uptr, data_len: 24 });
  expect(r.e).toBe('ok');
  const back = new Uint8Array(24);
  value(s.c.proc.mm.read(Number(uptr), back));
  const v = new DataView(back.buffer);
  return {
    id: num(r, 'out_viommu_id'), outData: v.getUint32(4, true),
    offset: Number(v.getBigUint64(8, true)), length: Number(v.getBigUint64(16, true)),
  };
}

describe('IOMMU_VIOMMU_ALLOC', () => {
  it('is EOPNOTSUPP on a real ioasis device: its driver, like intel-iommu, has no vIOMMU ops', () => {
    const s = setup({ install: false });
    expect(s.viommuCall().e).toBe('EOPNOTSUPP');
    expect(s.viommuCall({ type: C.IOMMU_VIOMMU_TYPE_ARM_SMMUV3 }).e).toBe('EOPNOTSUPP');
  });

  it('errnos in the kernel order; failures use no ID', () => {
    const s = setup();
    const plain = s.hwptAlloc(0);
    const ids = s.ctx.objects.size;
    expect(s.viommuCall({ flags: 1, dev_id: 999 }).e).toBe('EOPNOTSUPP');
    expect(s.viommuCall({ type: C.IOMMU_VIOMMU_TYPE_DEFAULT, dev_id: 999 }).e).toBe('EOPNOTSUPP');
    expect(s.viommuCall({ dev_id: 999 }).e).toBe('ENOENT');
    expect(s.viommuCall({ dev_id: s.ioasId }).e).toBe('ENOENT');
    // The DSA's IOMMU (DRHD0) has no vIOMMU ops; an unsupported type on the NVMe's: size 0.
    expect(s.viommuCall({ dev_id: s.dsa.id, hwpt_id: 999 }).e).toBe('EOPNOTSUPP');
    expect(s.viommuCall({ type: 0xdead, hwpt_id: 999 }).e).toBe('EOPNOTSUPP');
    expect(s.viommuCall({ hwpt_id: 0 }).e).toBe('ENOENT');
    expect(s.viommuCall({ hwpt_id: s.ioasId }).e).toBe('ENOENT');
    expect(s.viommuCall({ hwpt_id: plain }).e).toBe('EINVAL');
    // The driver's copy of its data: too short, or longer with a non-zero tail.
    expect(s.viommuCall({ data_uptr: s.userBytes(selftestData(1, 4)), data_len: 4 }).e).toBe('EINVAL');
    const long = selftestData(1, 32);
    long[30] = 1;
    expect(s.viommuCall({ data_uptr: s.userBytes(long), data_len: 32 }).e).toBe('E2BIG');
    expect(s.viommuCall({ data_uptr: 0n, data_len: 24 }).e).toBe('EFAULT');
    expect(s.ctx.objects.size).toBe(ids);
    const parent = value(s.ctx.objects.get<HwptPaging>(s.parentId, 'hwpt_paging'));
    expect(parent.users).toBe(1);
  });

  it('holds the nest parent: destroying it is EBUSY until the vIOMMU goes', () => {
    const s = setup();
    const id = s.viommuAlloc();
    expect(id).toBe(s.parentId + 1);
    expect(s.c.call('IOMMU_DESTROY', { id: s.parentId }).e).toBe('EBUSY');
    expect(s.c.call('IOMMU_DESTROY', { id }).e).toBe('ok');
    expect(s.c.call('IOMMU_DESTROY', { id }).e).toBe('ENOENT');
    expect(s.c.call('IOMMU_DESTROY', { id: s.parentId }).e).toBe('ok');
  });

  it('passes driver data in and out (loopback) and reports a two-page mmap region from PAGE_SIZE', () => {
    const s = setup();
    const a = viommuWithData(s, 0xcafe1234);
    expect(a.outData).toBe(0xcafe1234);
    expect(a.offset).toBe(PAGE);
    expect(a.length).toBe(2 * PAGE);
    const b = viommuWithData(s, 7);
    expect(b.offset).toBe(3 * PAGE);
    // A freed offset is handed out again (first fit).
    expect(s.c.call('IOMMU_DESTROY', { id: a.id }).e).toBe('ok');
    expect(viommuWithData(s, 8).offset).toBe(PAGE);
  });
});

describe('mmap() of an iommufd', () => {
  it('maps the registered region: the driver page reads back in_data, writes reach it', () => {
    const s = setup();
    const v = viommuWithData(s, 0x5a5aa5a5);
    const addr = value(s.c.proc.mmap(0, v.length, RW, MAP_SHARED, s.c.fd, v.offset));
    const word = new Uint8Array(4);
    value(s.c.proc.mm.read(addr, word));
    expect(new DataView(word.buffer).getUint32(0, true)).toBe(0x5a5aa5a5);
    value(s.c.proc.mm.write(addr + PAGE + 8, new Uint8Array([1, 2, 3])));
    const pa = s.drv.viommus[0]?.pa ?? 0;
    const seen = new Uint8Array(3);
    s.w.memory.read(pa + PAGE + 8, seen);
    expect([...seen]).toEqual([1, 2, 3]);
    // Driver pages cannot be pinned (VM_PFNMAP): IOAS_MAP of them is EFAULT.
    expect(s.c.call('IOMMU_IOAS_MAP', { ioas_id: s.ioasId, flags: READ | WRITE, user_va: BigInt(addr), length: BigInt(PAGE) }).e).toBe('EFAULT');
  });

  it('errnos: private → EINVAL, PROT_EXEC → EPERM, anything but exactly a region → ENXIO', () => {
    const s = setup();
    const v = viommuWithData(s, 1);
    const mmap = (len: number, prot: number, flags: number, off: number) => s.c.proc.mmap(0, len, prot, flags, s.c.fd, off);
    const e = (r: { ok: boolean; errno?: string }) => (r.ok ? 'ok' : r.errno);
    expect(e(mmap(v.length, RW, MAP_PRIVATE, v.offset))).toBe('EINVAL');
    expect(e(mmap(v.length, PROT_READ | PROT_EXEC, MAP_SHARED, v.offset))).toBe('EPERM');
    expect(e(mmap(v.length, RW, MAP_SHARED, 0))).toBe('ENXIO');
    expect(e(mmap(v.length, RW, MAP_SHARED, v.offset + PAGE))).toBe('ENXIO');
    expect(e(mmap(PAGE, RW, MAP_SHARED, v.offset))).toBe('ENXIO');
    expect(e(mmap(3 * PAGE, RW, MAP_SHARED, v.offset))).toBe('ENXIO');
    expect(e(mmap(v.length, RW, MAP_SHARED, 64 * PAGE))).toBe('ENXIO');
    // mmap() rounds the length up to pages before the iommufd sees it (do_mmap), as in Linux.
    expect(e(mmap(v.length - 1, RW, MAP_SHARED, v.offset))).toBe('ok');
    // Nothing was left mapped by the failures: only the one success holds the vIOMMU.
    expect(value(s.ctx.objects.get(v.id, 'viommu')).users).toBe(2);
  });

  it('destroying the owning vIOMMU is EBUSY while any mapping (split or forked copies too) remains', () => {
    const s = setup();
    const v = viommuWithData(s, 1);
    const addr = value(api.iommufdMmap({ proc: s.c.proc, fd: s.c.fd, offset: v.offset, length: v.length }));
    const destroy = () => s.c.call('IOMMU_DESTROY', { id: v.id }).e;
    expect(destroy()).toBe('EBUSY');
    const child = value(s.c.proc.fork());
    // munmap of one page splits the VMA: the other page still holds the vIOMMU.
    value(s.c.proc.mm.munmap(addr, PAGE));
    expect(destroy()).toBe('EBUSY');
    value(s.c.proc.mm.munmap(addr + PAGE, PAGE));
    expect(destroy()).toBe('EBUSY');
    const word = new Uint8Array(4);
    value(child.mm.read(addr, word));
    expect(new DataView(word.buffer).getUint32(0, true)).toBe(1);
    value(child.mm.munmap(addr, 2 * PAGE));
    expect(destroy()).toBe('ok');
  });

  it('a mapping keeps the iommufd open after close(fd); the last munmap releases it', () => {
    const s = setup();
    const v = viommuWithData(s, 1);
    const addr = value(api.iommufdMmap({ proc: s.c.proc, fd: s.c.fd, offset: v.offset, length: v.length }));
    for (const d of [s.nvme, s.usb, s.dsa]) iommufdDeviceUnbind(d);
    value(s.c.proc.fds.close(s.c.fd));
    expect(s.ctx.isClosed).toBe(false);
    value(s.c.proc.mm.munmap(addr, v.length));
    expect(s.ctx.isClosed).toBe(true);
    expect(s.drv.viommus[0]?.destroyed).toBe(true);
  });
});

describe('IOMMU_VDEVICE_ALLOC', () => {
  it('errnos in the kernel order; one vDEVICE per device and per virt_id', () => {
    const s = setup();
    const vi = s.viommuAlloc();
    const call = (f: Out) => s.c.call('IOMMU_VDEVICE_ALLOC', { viommu_id: vi, dev_id: s.nvme.id, virt_id: 0x99n, ...f });
    expect(call({ viommu_id: 999 }).e).toBe('ENOENT');
    expect(call({ viommu_id: s.parentId }).e).toBe('ENOENT');
    expect(call({ dev_id: 999 }).e).toBe('ENOENT');
    expect(call({ dev_id: s.dsa.id }).e).toBe('EINVAL');
    const ok1 = call({});
    expect(ok1.e).toBe('ok');
    const vdevId = num(ok1, 'out_vdevice_id');
    expect(call({ virt_id: 0x100n }).e).toBe('EEXIST');
    expect(call({ dev_id: s.usb.id }).e).toBe('EEXIST');
    const usbVdev = call({ dev_id: s.usb.id, virt_id: U64_MAX });
    expect(usbVdev.e).toBe('ok');
    // The failed attempts left no ID behind: the second vDEVICE took the next one.
    expect(num(usbVdev, 'out_vdevice_id')).toBe(vdevId + 1);
    expect(s.c.call('IOMMU_DESTROY', { id: vi }).e).toBe('EBUSY');
    expect(s.c.call('IOMMU_DESTROY', { id: vdevId }).e).toBe('ok');
    expect(call({ virt_id: 0x100n }).e).toBe('ok');
  });

  it('unbinding the device tombstones its vDEVICE: ENOENT, the ID not reused, the vIOMMU released', () => {
    const s = setup();
    const vi = s.viommuAlloc();
    const vdevId = value(api.vdeviceAlloc({ proc: s.c.proc, fd: s.c.fd, viommuId: vi, devId: s.nvme.id, virtId: 0x99 }));
    iommufdDeviceUnbind(s.nvme);
    expect(s.c.call('IOMMU_DESTROY', { id: vdevId }).e).toBe('ENOENT');
    expect(s.ctx.objects.get(vdevId).ok).toBe(false);
    // The unbound device's ID is free again; the tombstone's is not.
    const next = Array.from({ length: vdevId }, () => s.c.ioasAlloc());
    expect(next).not.toContain(vdevId);
    expect(next[0]).toBe(s.nvme.id);
    expect(s.c.call('IOMMU_DESTROY', { id: vi }).e).toBe('ok');
    // The driver's side went with it: no vDEVICE left to report events for.
    expect(s.drv.triggerVevent(s.w.dev(NVME)).ok).toBe(false);
  });
});

describe('IOMMU_VEVENTQ_ALLOC and the vEVENTQ fd', () => {
  function withQueue(depth = 2) {
    const s = setup();
    const vi = s.viommuAlloc();
    value(api.vdeviceAlloc({ proc: s.c.proc, fd: s.c.fd, viommuId: vi, devId: s.nvme.id, virtId: 0x99 }));
    const q = value(api.veventqAlloc({ proc: s.c.proc, fd: s.c.fd, viommuId: vi, type: IOMMU_VEVENTQ_TYPE_SELFTEST, depth }));
    const read = (bytes?: number) => api.veventqRead({ proc: s.c.proc, veventqFd: q.veventqFd, dataLen: 4, ...(bytes === undefined ? {} : { bytes }) });
    const trigger = () => value(s.drv.triggerVevent(s.w.dev(NVME)));
    const file = value(s.c.proc.fds.get(q.veventqFd)).file as VeventqFile;
    return { ...s, vi, q, read, trigger, file };
  }
  const virtId = (d: Uint8Array): number => new DataView(d.buffer, d.byteOffset).getUint32(0, true);

  it('the kernel constants agree with the uapi ones', () => {
    expect(K.IOMMU_VEVENTQ_FLAG_LOST_EVENTS).toBe(C.IOMMU_VEVENTQ_FLAG_LOST_EVENTS);
    expect(K.VEVENT_HEADER_SIZE).toBe(8);
  });

  it('errnos in the kernel order; one queue per type', () => {
    const s = setup();
    const vi = s.viommuAlloc();
    const call = (f: Out) => s.c.call('IOMMU_VEVENTQ_ALLOC', { viommu_id: vi, type: IOMMU_VEVENTQ_TYPE_SELFTEST, veventq_depth: 2, ...f });
    expect(call({ flags: 1, viommu_id: 999 }).e).toBe('EOPNOTSUPP');
    expect(call({ __reserved: 1, viommu_id: 999 }).e).toBe('EOPNOTSUPP');
    expect(call({ type: C.IOMMU_VEVENTQ_TYPE_DEFAULT, viommu_id: 999 }).e).toBe('EOPNOTSUPP');
    expect(call({ veventq_depth: 0, viommu_id: 999 }).e).toBe('EINVAL');
    expect(call({ viommu_id: 999 }).e).toBe('ENOENT');
    const fdsBefore = s.c.proc.fds.fds().length;
    const r = call({});
    expect(r.e).toBe('ok');
    expect(s.c.proc.fds.fds().length).toBe(fdsBefore + 1);
    expect(value(s.c.proc.fds.get(num(r, 'out_veventq_fd'))).file.kind).toBe('iommufd-viommu-event');
    expect(call({}).e).toBe('EEXIST');
    expect(call({ type: C.IOMMU_VEVENTQ_TYPE_ARM_SMMUV3 }).e).toBe('ok');
    expect(s.c.proc.fds.fds().length).toBe(fdsBefore + 2);
  });

  it('reads header + data records in order with rising sequence; poll readiness; no EPOLLOUT', () => {
    const t = withQueue();
    expect(t.file.poll()).toBe(0);
    expect(value(t.read())).toEqual([]);
    t.trigger();
    expect(t.file.poll()).toBe(EPOLLIN | EPOLLRDNORM);
    t.trigger();
    const got = value(t.read());
    expect(got.map((e) => [e.flags, e.sequence, virtId(e.data)])).toEqual([[0, 0, 0x99], [0, 1, 0x99]]);
    expect(t.file.poll()).toBe(0);
  });

  it('whole records only: a buffer too small for the next record returns what fits (0 for none)', () => {
    const t = withQueue();
    t.trigger();
    t.trigger();
    expect(value(t.read(11))).toEqual([]);
    const one = value(t.read(12 + 11));
    expect(one.map((e) => e.sequence)).toEqual([0]);
    expect(value(t.read(12)).map((e) => e.sequence)).toEqual([1]);
  });

  it('three events at depth 2: two records, then a LOST_EVENTS header; then it recovers', () => {
    const t = withQueue(2);
    t.trigger();
    t.trigger();
    t.trigger();
    const got = value(t.read());
    expect(got.map((e) => [e.flags, e.sequence, e.data.length])).toEqual([[0, 0, 4], [0, 1, 4], [C.IOMMU_VEVENTQ_FLAG_LOST_EVENTS, 2, 0]]);
    t.trigger();
    expect(value(t.read()).map((e) => [e.flags, e.sequence])).toEqual([[0, 3]]);
    // Losses in a row keep one header at the tail, with the latest sequence.
    t.trigger();
    t.trigger();
    t.trigger();
    t.trigger();
    expect(value(t.read()).map((e) => [e.flags, e.sequence])).toEqual([[0, 4], [0, 5], [C.IOMMU_VEVENTQ_FLAG_LOST_EVENTS, 7]]);
  });

  it('the sequence wraps from INT_MAX to 0', () => {
    const t = withQueue(4);
    const q = value(t.ctx.objects.get<Veventq>(t.q.veventqId, 'veventq'));
    // Reaching INT_MAX by 2^31 reports is too slow for a test: start the counter near it.
    (q as unknown as { sequence: number }).sequence = 0x7fff_fffe;
    t.trigger();
    t.trigger();
    t.trigger();
    expect(value(t.read()).map((e) => e.sequence)).toEqual([0x7fff_fffe, 0x7fff_ffff, 0]);
  });

  it('read at an offset is ESPIPE, write is EINVAL, a bad buffer is EFAULT and keeps the record', () => {
    const t = withQueue();
    t.trigger();
    const buf = t.c.anon(1);
    const e = (r: { ok: boolean; errno?: string }) => (r.ok ? 'ok' : r.errno);
    expect(e(sysPread(t.c.proc, t.q.veventqFd, buf, 64, 8))).toBe('ESPIPE');
    expect(e(sysPwrite(t.c.proc, t.q.veventqFd, buf, 8, null))).toBe('EINVAL');
    const ro = t.c.anon(1, PROT_READ);
    expect(e(sysPread(t.c.proc, t.q.veventqFd, ro, 64, null))).toBe('EFAULT');
    expect(value(sysPread(t.c.proc, t.q.veventqFd, buf, 64, 0))).toBe(12);
  });

  it('references: the vIOMMU is EBUSY while the queue lives, the queue while its fd is open', () => {
    const t = withQueue();
    expect(t.c.call('IOMMU_DESTROY', { id: t.q.veventqId }).e).toBe('EBUSY');
    value(t.c.proc.fds.close(t.q.veventqFd));
    expect(t.c.call('IOMMU_DESTROY', { id: t.vi }).e).toBe('EBUSY');
    expect(t.c.call('IOMMU_DESTROY', { id: t.q.veventqId }).e).toBe('ok');
    // Without a queue of its type the driver's report is refused.
    const r = t.drv.triggerVevent(t.w.dev(NVME));
    expect(r.ok ? 'ok' : r.errno).toBe('EOPNOTSUPP');
  });
});

describe('IOMMU_HW_QUEUE_ALLOC', () => {
  function withViommu() {
    const s = setup();
    const vi = s.viommuAlloc();
    const va = s.c.anon(4);
    value(s.c.proc.mm.write(va, new Uint8Array(4 * PAGE).fill(1)));
    const iova = 0x10_0000n;
    expect(s.c.call('IOMMU_IOAS_MAP', { ioas_id: s.ioasId, flags: FIXED | READ | WRITE, user_va: BigInt(va), length: BigInt(4 * PAGE), iova }).e).toBe('ok');
    const call = (f: Out) => s.c.call('IOMMU_HW_QUEUE_ALLOC', {
      viommu_id: vi, type: IOMMU_HW_QUEUE_TYPE_SELFTEST, index: 0, nesting_parent_iova: iova, length: BigInt(PAGE), ...f,
    });
    const q = (f: Out) => {
      const r = call(f);
      expect(r.e).toBe('ok');
      return num(r, 'out_hw_queue_id');
    };
    return { ...s, vi, va, iova, call, q };
  }

  it('errnos in the kernel order', () => {
    const s = withViommu();
    const ids = s.ctx.objects.size;
    expect(s.call({ flags: 1, viommu_id: 999 }).e).toBe('EOPNOTSUPP');
    expect(s.call({ type: C.IOMMU_HW_QUEUE_TYPE_DEFAULT, viommu_id: 999 }).e).toBe('EOPNOTSUPP');
    expect(s.call({ length: 0n, viommu_id: 999 }).e).toBe('EINVAL');
    expect(s.call({ nesting_parent_iova: U64_MAX, length: 2n, viommu_id: 999 }).e).toBe('EOVERFLOW');
    expect(s.call({ viommu_id: 999 }).e).toBe('ENOENT');
    expect(s.call({ type: 0xdead }).e).toBe('EOPNOTSUPP');
    // offset + length does not fit a size_t (no u64 wrap of iova + length - 1 though).
    expect(s.call({ nesting_parent_iova: 0xfffn, length: (1n << 64n) - 0xfffn }).e).toBe('ERANGE');
    expect(s.call({ nesting_parent_iova: 0x4000_0000n }).e).toBe('ENOENT');
    expect(s.call({ length: BigInt(5 * PAGE) }).e).toBe('ENOENT');
    expect(s.call({ index: 1 }).e).toBe('EIO');
    expect(s.call({ index: 2 }).e).toBe('EINVAL');
    expect(s.ctx.objects.size).toBe(ids);
    const area = value(s.ctx.objects.get<Ioas>(s.ioasId, 'ioas')).iopt.areaAt(s.iova);
    expect([area?.numLocks, area?.numAccesses]).toEqual([0, 0]);
  });

  it('refuses scattered pages: EFAULT', () => {
    const s = withViommu();
    const va = s.c.anon(2);
    // Fault the second page in first so the frames run backwards.
    value(s.c.proc.mm.write(va + PAGE, new Uint8Array([1])));
    value(s.c.proc.mm.write(va, new Uint8Array([1])));
    expect(s.c.proc.mm.lookupPfn(va + PAGE)).not.toBe(s.c.proc.mm.lookupPfn(va) + 1);
    const iova = 0x20_0000n;
    expect(s.c.call('IOMMU_IOAS_MAP', { ioas_id: s.ioasId, flags: FIXED | READ | WRITE, user_va: BigInt(va), length: BigInt(2 * PAGE), iova }).e).toBe('ok');
    expect(s.call({ nesting_parent_iova: iova, length: BigInt(2 * PAGE) }).e).toBe('EFAULT');
    expect(s.call({ nesting_parent_iova: iova + 0x80n, length: 0x100n }).e).toBe('ok');
  });

  it('index rules, the pinned area refuses unmap, and queues go in descending order', () => {
    const s = withViommu();
    const q0 = s.q({ index: 0 });
    expect(s.call({ index: 0 }).e).toBe('EEXIST');
    const q1 = value(api.hwQueueAlloc({ proc: s.c.proc, fd: s.c.fd, viommuId: s.vi, type: IOMMU_HW_QUEUE_TYPE_SELFTEST, index: 1, iova: s.iova + 0x1010n, length: 0x100 }));
    const area = value(s.ctx.objects.get<Ioas>(s.ioasId, 'ioas')).iopt.areaAt(s.iova);
    expect([area?.numLocks, area?.numAccesses]).toEqual([2, 2]);
    expect(s.c.call('IOMMU_IOAS_UNMAP', { ioas_id: s.ioasId, iova: s.iova, length: BigInt(4 * PAGE) }).e).toBe('EBUSY');
    expect(s.c.call('IOMMU_DESTROY', { id: s.vi }).e).toBe('EBUSY');
    expect(s.c.call('IOMMU_DESTROY', { id: q0 }).e).toBe('EBUSY');
    expect(s.c.call('IOMMU_DESTROY', { id: q1 }).e).toBe('ok');
    expect(s.c.call('IOMMU_IOAS_UNMAP', { ioas_id: s.ioasId, iova: s.iova, length: BigInt(4 * PAGE) }).e).toBe('EBUSY');
    expect(s.c.call('IOMMU_DESTROY', { id: q0 }).e).toBe('ok');
    expect([area?.numLocks, area?.numAccesses]).toEqual([0, 0]);
    expect(s.c.call('IOMMU_IOAS_UNMAP', { ioas_id: s.ioasId, iova: s.iova, length: BigInt(4 * PAGE) }).e).toBe('ok');
    expect(s.c.call('IOMMU_DESTROY', { id: s.vi }).e).toBe('ok');
  });
});

describe('closing the iommufd', () => {
  it('destroys every vIOMMU object leaf first and releases the queue pins', () => {
    const s = setup();
    const v = viommuWithData(s, 3);
    const va = s.c.anon(1);
    value(s.c.proc.mm.write(va, new Uint8Array([1])));
    expect(s.c.call('IOMMU_IOAS_MAP', { ioas_id: s.ioasId, flags: FIXED | READ | WRITE, user_va: BigInt(va), length: BigInt(PAGE), iova: 0x10_0000n }).e).toBe('ok');
    const a = { proc: s.c.proc, fd: s.c.fd, viommuId: v.id };
    value(api.vdeviceAlloc({ ...a, devId: s.nvme.id, virtId: 1 }));
    const q = value(api.veventqAlloc({ ...a, type: IOMMU_VEVENTQ_TYPE_SELFTEST, depth: 4 }));
    value(api.hwQueueAlloc({ ...a, type: IOMMU_HW_QUEUE_TYPE_SELFTEST, index: 0, iova: 0x10_0000n, length: 64 }));
    value(api.hwQueueAlloc({ ...a, type: IOMMU_HW_QUEUE_TYPE_SELFTEST, index: 1, iova: 0x10_0040n, length: 64 }));
    value(s.drv.triggerVevent(s.w.dev(NVME)));
    expect(s.w.frames.pinCount(s.c.proc.mm.lookupPfn(va))).toBe(1);
    value(s.c.proc.fds.close(q.veventqFd));
    for (const d of [s.nvme, s.usb, s.dsa]) iommufdDeviceUnbind(d);
    value(s.c.proc.fds.close(s.c.fd));
    expect(s.ctx.isClosed).toBe(true);
    expect(s.ctx.objects.size).toBe(0);
    expect(s.w.frames.pinCount(s.c.proc.mm.lookupPfn(va))).toBe(0);
    expect(s.drv.viommus[0]?.destroyed).toBe(true);
  });

  it('a vEVENTQ fd keeps the iommufd open after close(fd)', () => {
    const s = setup();
    const vi = s.viommuAlloc();
    const q = value(api.veventqAlloc({ proc: s.c.proc, fd: s.c.fd, viommuId: vi, type: IOMMU_VEVENTQ_TYPE_SELFTEST, depth: 1 }));
    for (const d of [s.nvme, s.usb, s.dsa]) iommufdDeviceUnbind(d);
    value(s.c.proc.fds.close(s.c.fd));
    expect(s.ctx.isClosed).toBe(false);
    value(s.c.proc.fds.close(q.veventqFd));
    expect(s.ctx.isClosed).toBe(true);
  });
});
