// The vIOMMU objects through the byte-level dispatch (uAPI reference §2, §6.16, §6.17, §6.19, §11, §16;
// selftest oracle §4.7): IOMMU_VIOMMU_ALLOC, IOMMU_VDEVICE_ALLOC, IOMMU_VEVENTQ_ALLOC with its fd. The
// ioasis driver, like intel-iommu, has no vIOMMU ops; the tests install the selftest-like implementation
// of the mock driver's vIOMMU (kernel/iommufd/selftest/mock-viommu.ts) on one driver instance (DRHD1, which has the NVMe) and leave the
// other (DRHD0, the DSA) without. mmap() is in iommufd-mmap.test.ts, HW queues in hw-queue.test.ts.

import { describe, expect, it } from 'vitest';
import { iommufdDeviceUnbind } from '../../src/kernel/iommufd/device.ts';
import { EPOLLIN, EPOLLRDNORM } from '../../src/kernel/iommufd/fault-fd.ts';
import type { HwptPaging } from '../../src/kernel/iommufd/hw-pagetable.ts';
import type { Veventq } from '../../src/kernel/iommufd/veventq.ts';
import * as K from '../../src/kernel/iommufd/veventq.ts';
import type { VeventqFile } from '../../src/kernel/iommufd/veventq-fd.ts';
import { PROT_READ } from '../../src/kernel/mm/mman.ts';
import * as api from '../../src/uapi/api.ts';
import * as C from '../../src/uapi/iommufd-consts.ts';
import { sysPread, sysPwrite } from '../../src/uapi/rw.ts';
import { IOMMU_VEVENTQ_TYPE_SELFTEST } from '../../src/kernel/iommufd/selftest/constants.ts';
import { PAGE, U64_MAX, value } from './dispatch-helpers.ts';
import { NVME, num, selftestData, setup, viommuWithData, type Out } from './viommu-helpers.ts';

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
    // The driver's copy of its data (iommu_copy_struct_from_user): too short, or longer than the kernel's
    // struct, which Linux refuses with EINVAL before any tail check, zero tail or not.
    expect(s.viommuCall({ data_uptr: s.userBytes(selftestData(1, 4)), data_len: 4 }).e).toBe('EINVAL');
    const long = selftestData(1, 32);
    expect(s.viommuCall({ data_uptr: s.userBytes(long), data_len: 32 }).e).toBe('EINVAL');
    long[30] = 1;
    expect(s.viommuCall({ data_uptr: s.userBytes(long), data_len: 32 }).e).toBe('EINVAL');
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

