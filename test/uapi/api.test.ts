// The typed API (src/uapi/api.ts) against the byte-level dispatch: each function does what the hand-built
// struct does, and fails with the same errno as the hand-built struct in an error case.

import { describe, expect, it } from 'vitest';
import type { IommufdCtx } from '../../src/kernel/iommufd/context.ts';
import { iommufdDeviceAttach, iommufdDeviceBind } from '../../src/kernel/iommufd/device.ts';
import { PCI_PASID_CTRL_ENABLE, PCI_PASID_CTRL_PRIV, PCI_PRI_CTRL_ENABLE } from '../../src/hw/dma/pri.ts';
import { PCI_EXT_CAP_ID_PASID, PCI_EXT_CAP_ID_PRI, PCI_PASID_CTRL, PCI_PRI_ALLOC_REQ, PCI_PRI_CTRL } from '../../src/pci/regs.ts';
import type { Ioas } from '../../src/kernel/iommufd/ioas.ts';
import { MAP_SHARED } from '../../src/kernel/mm/mman.ts';
import * as api from '../../src/uapi/api.ts';
import { dispatch } from '../../src/uapi/dispatch.ts';
import { IOMMU_IOAS_ALLOC } from '../../src/uapi/ioctl.ts';
import * as C from '../../src/uapi/iommufd-consts.ts';
import { iommu_ioas_alloc } from '../../src/uapi/iommufd-structs.ts';
import { client, errno, FIXED, PAGE, READ, RW, U64_MAX, value, world, WRITE } from './dispatch-helpers.ts';

const NVME = '39:00.0';

function setup() {
  const w = world();
  const c = client(w);
  const { proc, fd } = c;
  const ctx = value(proc.fds.get(fd)).file as IommufdCtx;
  return { w, c, proc, fd, ctx };
}

const eq = (apiErr: string, handErr: string): void => {
  expect(apiErr).not.toBe('ok');
  expect(apiErr).toBe(handErr);
};

describe('typed API over dispatch', () => {
  it('openIommufd opens an iommufd the byte-level ioctls accept', () => {
    const { w, c } = setup();
    const fd = value(api.openIommufd({ proc: c.proc, core: w.core }));
    expect(fd).toBeGreaterThan(c.fd);
    expect(value(api.ioasAlloc({ proc: c.proc, fd }))).toBe(1);
    // error: no fd below RLIMIT_NOFILE is free
    value(c.proc.setrlimit('RLIMIT_NOFILE', { soft: fd + 1, hard: 4096 }));
    expect(errno(api.openIommufd({ proc: c.proc, core: w.core }))).toBe('EMFILE');
  });

  it('ioasAlloc and destroy; ENOTTY on a non-iommufd fd and ENOENT on a bad id as with hand-built structs', () => {
    const { c, proc, fd, ctx } = setup();
    const id = value(api.ioasAlloc({ proc, fd }));
    expect(value(ctx.objects.get<Ioas>(id, 'ioas'))).toBeDefined();
    expect(api.destroy({ proc, fd, id })).toEqual({ ok: true, value: undefined });
    eq(errno(api.destroy({ proc, fd, id })), c.call('IOMMU_DESTROY', { id }).e);
    const memfd = value(proc.memfdCreate('x'));
    const scratch = c.scratch;
    value(proc.mm.write(scratch, iommu_ioas_alloc.encode({ size: iommu_ioas_alloc.sizeof })));
    eq(errno(api.ioasAlloc({ proc, fd: memfd })), errno(dispatch(proc, memfd, IOMMU_IOAS_ALLOC, scratch)));
  });

  it('ioasMap of a VA and of bytes; EEXIST over a mapped fixed IOVA as by hand', () => {
    const { c, proc, fd, ctx } = setup();
    const ioasId = value(api.ioasAlloc({ proc, fd }));
    const va = c.anon(4);
    const m = value(api.ioasMap({ proc, fd, ioasId, userVa: va, length: 4 * PAGE, iova: 0x10_0000 }));
    expect(m.iova).toBe(0x10_0000n);
    const data = new Uint8Array(3 * PAGE + 5).map((_, i) => i & 0xff);
    const d = value(api.ioasMap({ proc, fd, ioasId, data }));
    expect(d.length).toBe(BigInt(data.length));
    const back = new Uint8Array(data.length);
    value(proc.mm.read(Number(d.userVa), back));
    expect(back).toEqual(data);
    expect(value(ctx.objects.get<Ioas>(ioasId, 'ioas')).iopt.areaCount).toBe(2);
    const hand = c.call('IOMMU_IOAS_MAP', { flags: FIXED | READ | WRITE, ioas_id: ioasId, user_va: BigInt(va), length: BigInt(PAGE), iova: 0x10_0000n });
    eq(errno(api.ioasMap({ proc, fd, ioasId, userVa: va, length: PAGE, iova: 0x10_0000 })), hand.e);
    eq(errno(api.ioasMap({ proc, fd, ioasId, data: new Uint8Array(0) })), 'EINVAL');
  });

  it('ioasMapFile of a memfd; EBADF for a bad file as by hand', () => {
    const { c, proc, fd } = setup();
    const ioasId = value(api.ioasAlloc({ proc, fd }));
    const memfd = value(proc.memfdCreate('buf'));
    value(proc.ftruncate(memfd, 4 * PAGE));
    value(proc.mmap(0, 4 * PAGE, RW, MAP_SHARED, memfd, 0));
    expect(value(api.ioasMapFile({ proc, fd, ioasId, file: memfd, start: 0, length: 2 * PAGE, iova: 0x20_0000 }))).toBe(0x20_0000n);
    const hand = c.call('IOMMU_IOAS_MAP_FILE', { flags: READ | WRITE, ioas_id: ioasId, fd: 99, start: 0n, length: BigInt(PAGE), iova: 0n });
    eq(errno(api.ioasMapFile({ proc, fd, ioasId, file: 99, start: 0, length: PAGE })), hand.e);
  });

  it('ioasUnmap returns the bytes; ENOENT for nothing mapped as by hand', () => {
    const { c, proc, fd } = setup();
    const ioasId = value(api.ioasAlloc({ proc, fd }));
    value(api.ioasMap({ proc, fd, ioasId, userVa: c.anon(2), length: 2 * PAGE, iova: 0x40_0000 }));
    expect(value(api.ioasUnmap({ proc, fd, ioasId, iova: 0, length: U64_MAX }))).toBe(BigInt(2 * PAGE));
    const hand = c.call('IOMMU_IOAS_UNMAP', { ioas_id: ioasId, iova: 0x40_0000n, length: BigInt(PAGE) });
    eq(errno(api.ioasUnmap({ proc, fd, ioasId, iova: 0x40_0000, length: PAGE })), hand.e);
  });

  it('ioasCopy copies an area between IOASes; the same errno as by hand for a missing source', () => {
    const { c, proc, fd, ctx } = setup();
    const a = value(api.ioasAlloc({ proc, fd }));
    const b = value(api.ioasAlloc({ proc, fd }));
    value(api.ioasMap({ proc, fd, ioasId: a, userVa: c.anon(2), length: 2 * PAGE, iova: 0x10_0000 }));
    expect(value(api.ioasCopy({ proc, fd, srcIoasId: a, dstIoasId: b, srcIova: 0x10_0000, length: 2 * PAGE, dstIova: 0x80_0000 }))).toBe(0x80_0000n);
    expect(value(ctx.objects.get<Ioas>(b, 'ioas')).iopt.areaCount).toBe(1);
    const hand = c.call('IOMMU_IOAS_COPY', { flags: READ | WRITE, dst_ioas_id: b, src_ioas_id: a, length: BigInt(PAGE), src_iova: 0x90_0000n, dst_iova: 0n });
    eq(errno(api.ioasCopy({ proc, fd, srcIoasId: a, dstIoasId: b, srcIova: 0x90_0000, length: PAGE })), hand.e);
  });

  it('ioasIovaRanges does the EMSGSIZE dance; ENOENT for a bad IOAS as by hand', () => {
    const { c, proc, fd } = setup();
    const ioasId = value(api.ioasAlloc({ proc, fd }));
    value(api.ioasMap({ proc, fd, ioasId, userVa: c.anon(1), length: PAGE, iova: 0x10_0000 }));
    const first = c.call('IOMMU_IOAS_IOVA_RANGES', { ioas_id: ioasId, num_iovas: 0, allowed_iovas: 0n });
    const r = value(api.ioasIovaRanges({ proc, fd, ioasId }));
    expect(r.ranges.length).toBe(Number(first.out.num_iovas));
    expect(r.ranges.length).toBeGreaterThan(0);
    expect(r.alignment).toBe(BigInt(first.out.out_iova_alignment));
    for (const x of r.ranges) expect(x.start <= x.last).toBe(true);
    const hand = c.call('IOMMU_IOAS_IOVA_RANGES', { ioas_id: 77, num_iovas: 0, allowed_iovas: 0n });
    eq(errno(api.ioasIovaRanges({ proc, fd, ioasId: 77 })), hand.e);
  });

  it('ioasAllowIovas confines allocation; the same errno as by hand for overlapping ranges', () => {
    const { c, proc, fd } = setup();
    const ioasId = value(api.ioasAlloc({ proc, fd }));
    value(api.ioasAllowIovas({ proc, fd, ioasId, ranges: [{ start: 0x100_0000, last: 0x1ff_ffff }] }));
    const m = value(api.ioasMap({ proc, fd, ioasId, userVa: c.anon(1), length: PAGE }));
    expect(m.iova >= 0x100_0000n && m.iova <= 0x1ff_ffffn).toBe(true);
    const bad = [{ start: 0x100_0000, last: 0x1ff_ffff }, { start: 0x180_0000, last: 0x2ff_ffff }];
    const arr = c.scratch + 2 * PAGE;
    const hand = (): string => {
      const enc = new Uint8Array(32);
      const v = new DataView(enc.buffer);
      [0x100_0000n, 0x1ff_ffffn, 0x180_0000n, 0x2ff_ffffn].forEach((x, i) => v.setBigUint64(8 * i, x, true));
      value(c.proc.mm.write(arr, enc));
      return c.call('IOMMU_IOAS_ALLOW_IOVAS', { ioas_id: ioasId, num_iovas: 2, allowed_iovas: BigInt(arr) }).e;
    };
    eq(errno(api.ioasAllowIovas({ proc, fd, ioasId, ranges: bad })), hand());
  });

  it('option GET/SET of HUGE_PAGES; EOPNOTSUPP for an unknown option as by hand', () => {
    const { c, proc, fd } = setup();
    const ioasId = value(api.ioasAlloc({ proc, fd }));
    expect(value(api.option({ proc, fd, optionId: C.IOMMU_OPTION_HUGE_PAGES, objectId: ioasId, op: 'get' }))).toBe(1n);
    value(api.option({ proc, fd, optionId: C.IOMMU_OPTION_HUGE_PAGES, objectId: ioasId, op: 'set', value: 0 }));
    expect(value(api.option({ proc, fd, optionId: C.IOMMU_OPTION_HUGE_PAGES, objectId: ioasId, op: 'get' }))).toBe(0n);
    const hand = c.call('IOMMU_OPTION', { option_id: 9, op: C.IOMMU_OPTION_OP_GET, object_id: 0, val64: 0n });
    eq(errno(api.option({ proc, fd, optionId: 9, op: 'get' })), hand.e);
  });

  it('vfioIoas SET then GET; GET with none set fails as by hand', () => {
    const { c, proc, fd } = setup();
    const hand = c.call('IOMMU_VFIO_IOAS', { op: C.IOMMU_VFIO_IOAS_GET, ioas_id: 0 });
    eq(errno(api.vfioIoas({ proc, fd, op: C.IOMMU_VFIO_IOAS_GET })), hand.e);
    const ioasId = value(api.ioasAlloc({ proc, fd }));
    value(api.vfioIoas({ proc, fd, op: C.IOMMU_VFIO_IOAS_SET, ioasId }));
    expect(value(api.vfioIoas({ proc, fd, op: C.IOMMU_VFIO_IOAS_GET }))).toBe(ioasId);
  });

  it('hwptAlloc, getHwInfo and faultQueueAlloc for a bound device; errors as by hand', () => {
    const { w, c, proc, fd, ctx } = setup();
    const file = value(proc.fds.get(fd));
    const dev = value(iommufdDeviceBind(ctx, w.dev(NVME), { file }));
    const ioasId = value(api.ioasAlloc({ proc, fd }));
    const fault = value(api.faultQueueAlloc({ proc, fd }));
    expect(fault.faultFd).toBeGreaterThan(fd);
    const hwpt = value(api.hwptAlloc({ proc, fd, devId: dev.id, ptId: ioasId }));
    expect(value(ctx.objects.get(hwpt, 'hwpt_paging'))).toBeDefined();
    const withFault = api.hwptAlloc({ proc, fd, devId: dev.id, ptId: ioasId, faultId: fault.faultId });
    const handFault = c.call('IOMMU_HWPT_ALLOC', { flags: C.IOMMU_HWPT_FAULT_ID_VALID, dev_id: dev.id, pt_id: ioasId, fault_id: fault.faultId });
    expect(errno(withFault)).toBe(handFault.e);
    eq(errno(api.hwptAlloc({ proc, fd, devId: 999, ptId: ioasId })), c.call('IOMMU_HWPT_ALLOC', { dev_id: 999, pt_id: ioasId }).e);

    const info = value(api.getHwInfo({ proc, fd, devId: dev.id }));
    expect(info.dataType).toBe(C.IOMMU_HW_INFO_TYPE_INTEL_VTD);
    expect(info.data.length).toBe(info.dataLen);
    const hand = c.call('IOMMU_GET_HW_INFO', { dev_id: dev.id, data_len: Number(info.dataLen), data_uptr: BigInt(c.scratch + PAGE) });
    expect(hand.e).toBe('ok');
    expect(BigInt((hand.out as Record<string, unknown>).out_capabilities as bigint)).toBe(info.capabilities);
    eq(errno(api.getHwInfo({ proc, fd, devId: 999 })), c.call('IOMMU_GET_HW_INFO', { dev_id: 999, data_len: 0, data_uptr: 0n }).e);
    eq(errno(api.faultQueueAlloc({ proc, fd: value(proc.memfdCreate('m')) })), 'ENOTTY');
  });

  it('faultRead is empty with nothing queued; faultRespond rejects an unknown cookie as the fd does', () => {
    const { proc, fd } = setup();
    const fault = value(api.faultQueueAlloc({ proc, fd }));
    expect(value(api.faultRead({ proc, faultFd: fault.faultFd }))).toEqual([]);
    const r = api.faultRespond({ proc, faultFd: fault.faultFd, responses: [{ cookie: 12345, code: C.IOMMUFD_PAGE_RESP_SUCCESS }] });
    expect(errno(r)).toBe('EINVAL');
    expect(errno(api.faultRead({ proc, faultFd: fd }))).toBe('EINVAL');
    expect(errno(api.faultRead({ proc, faultFd: 77 }))).toBe('EBADF');
  });

  it('a page fault round trip: faultRead decodes the record, ioasMap maps the page, faultRespond lets the device retry', () => {
    const { w, proc, fd, ctx } = setup();
    const dsa = w.dev('6a:01.0');
    const pri = dsa.config.findExtCapability(PCI_EXT_CAP_ID_PRI);
    dsa.config.write32(pri + PCI_PRI_ALLOC_REQ, 32);
    dsa.config.write16(pri + PCI_PRI_CTRL, PCI_PRI_CTRL_ENABLE);
    const pasid = dsa.config.findExtCapability(PCI_EXT_CAP_ID_PASID);
    dsa.config.write16(pasid + PCI_PASID_CTRL, PCI_PASID_CTRL_ENABLE | PCI_PASID_CTRL_PRIV);
    const idev = value(iommufdDeviceBind(ctx, dsa, { file: value(proc.fds.get(fd)) }));
    const ioasId = value(api.ioasAlloc({ proc, fd }));
    const { faultId, faultFd } = value(api.faultQueueAlloc({ proc, fd }));
    value(iommufdDeviceAttach(idev, value(api.hwptAlloc({ proc, fd, devId: idev.id, ptId: ioasId, faultId }))));
    const data = new Uint8Array(64).fill(0xa5);
    const r = w.machine.dma(dsa, { op: 'write', address: 0x40_0010, length: data.length, data });
    w.core.poll();
    expect(r.status).toBe('pending');
    const recs = value(api.faultRead({ proc, faultFd }));
    expect(recs).toHaveLength(1);
    expect(recs[0]).toMatchObject({ dev_id: idev.id, addr: 0x40_0000n, perm: C.IOMMU_PGFAULT_PERM_WRITE });
    const m = value(api.ioasMap({ proc, fd, ioasId, data: new Uint8Array(PAGE), iova: 0x40_0000 }));
    expect(value(api.faultRespond({ proc, faultFd, responses: [{ cookie: recs[0]!.cookie, code: C.IOMMUFD_PAGE_RESP_SUCCESS }] }))).toBe(1);
    expect(r.status).toBe('ok');
    const got = new Uint8Array(data.length);
    value(proc.mm.read(Number(m.userVa) + 0x10, got));
    expect(got).toEqual(data);
    expect(value(api.faultRead({ proc, faultFd }))).toEqual([]);
  });
});
