// The DEVICE object and attach (uAPI reference §9, §13): bind through the kernel API as VFIO calls it
// (ownership matrix, igroups), attach/replace/detach to HWPTs and IOASes (auto domains), reserved regions,
// PASID rules, device DMA through the IOAS, and IOPF end to end with the FAULT object.

import { describe, expect, it } from 'vitest';
import {
  deviceIdOf, deviceOf, iommufdDeviceAttach, iommufdDeviceBind, iommufdDeviceDetach, iommufdDeviceReplace,
  iommufdDeviceUnbind, type IommufdDevice,
} from '../../../src/kernel/iommufd/device.ts';
import type { FaultFile } from '../../../src/kernel/iommufd/fault-fd.ts';
import type { HwptPaging } from '../../../src/kernel/iommufd/hw-pagetable.ts';
import type { Ioas } from '../../../src/kernel/iommufd/ioas.ts';
import type { IommufdCtx } from '../../../src/kernel/iommufd/context.ts';
import type { OpenFile } from '../../../src/kernel/process/file.ts';
import * as C from '../../../src/uapi/iommufd-consts.ts';
import { iommu_hwpt_page_response, iommu_hwpt_pgfault } from '../../../src/uapi/iommufd-structs.ts';
import { enablePriPasid, pattern } from '../iommu/helpers.ts';
import { client, errno, FIXED, PAGE, READ, value, world, WRITE, type World } from '../../uapi/dispatch-helpers.ts';

const NVME = '39:00.0';
const DSA = '6a:01.0';
const SIB0 = '16:00.0';
const SIB1 = '16:00.1';
const MSI = 0xfee0_0000n;

function ctxOf(c: ReturnType<typeof client>): { ctx: IommufdCtx; file: OpenFile } {
  const file = value(c.proc.fds.get(c.fd));
  return { ctx: file.file as IommufdCtx, file };
}

function setup(w: World = world()) {
  const c = client(w);
  const { ctx, file } = ctxOf(c);
  const bind = (bdf: string) => iommufdDeviceBind(ctx, w.dev(bdf), { file });
  const hwptAlloc = (idev: IommufdDevice, ptId: number, flags = 0, extra: Record<string, unknown> = {}): number => {
    const r = c.call('IOMMU_HWPT_ALLOC', { dev_id: idev.id, pt_id: ptId, flags, ...extra });
    if (r.e !== 'ok') throw new Error(`HWPT_ALLOC: ${r.e}`);
    return Number((r.out as Record<string, unknown>).out_hwpt_id);
  };
  const map = (ioasId: number, iova: bigint, npages: number): number => {
    const va = c.anon(npages);
    const r = c.call('IOMMU_IOAS_MAP', { flags: FIXED | READ | WRITE, ioas_id: ioasId, user_va: BigInt(va), length: BigInt(npages * PAGE), iova });
    if (r.e !== 'ok') throw new Error(`IOAS_MAP: ${r.e}`);
    return va;
  };
  const hwpt = (id: number): HwptPaging => value(ctx.objects.get<HwptPaging>(id, 'hwpt_paging'));
  const ioas = (id: number): Ioas => value(ctx.objects.get<Ioas>(id, 'ioas'));
  return { w, c, ctx, file, bind, hwptAlloc, map, hwpt, ioas };
}

describe('bind', () => {
  it('claims DMA ownership for the context; the group goes to blocking; unbind gives it back', () => {
    const s = setup();
    const g = s.w.core.groupOf(s.w.dev(NVME))!;
    expect(g.domain).toBe(g.defaultDomain);
    const idev = value(s.bind(NVME));
    expect(idev.id).toBe(1);
    expect(idev.type).toBe('device');
    expect(g.owner).toBe(s.ctx);
    expect(g.domain).toBe(g.blockingDomain);
    expect(deviceOf(s.ctx, s.w.dev(NVME))).toBe(idev);
    expect(deviceIdOf(s.ctx, s.w.dev(NVME))).toBe(1);
    // IOMMU_DESTROY on a DEVICE is EBUSY: only the driver removes it.
    expect(s.c.call('IOMMU_DESTROY', { id: idev.id }).e).toBe('EBUSY');
    expect(errno(s.bind(NVME))).toBe('EBUSY');
    iommufdDeviceUnbind(idev);
    expect(g.owner).toBeNull();
    expect(g.ownerCnt).toBe(0);
    expect(g.domain).toBe(g.defaultDomain);
    expect(s.ctx.objects.size).toBe(0);
    expect(s.c.call('IOMMU_DESTROY', { id: 1 }).e).toBe('ENOENT');
  });

  it('ownership matrix: a sibling in another context → EPERM; the same context binds both; a host driver → EPERM', () => {
    const w = world();
    const a = setup(w);
    const b = setup(w);
    const d0 = value(a.bind(SIB0));
    expect(errno(b.bind(SIB1))).toBe('EPERM');
    const d1 = value(a.bind(SIB1));
    const g = w.core.groupOf(w.dev(SIB0))!;
    expect(g.ownerCnt).toBe(2);
    expect(d0.igroup).toBe(d1.igroup);
    iommufdDeviceUnbind(d0);
    expect(g.owner).toBe(a.ctx);
    expect(errno(b.bind(SIB0))).toBe('EPERM');
    iommufdDeviceUnbind(d1);
    expect(g.ownerCnt).toBe(0);
    value(b.bind(SIB1));
    // A host driver on the NVMe: user-space binding is refused.
    value(w.core.deviceUseDefaultDomain(w.dev(NVME)));
    expect(errno(a.bind(NVME))).toBe('EPERM');
  });

  it('ENODEV for a device without an IOMMU group', () => {
    const s = setup();
    const other = world();
    expect(errno(iommufdDeviceBind(s.ctx, other.dev(NVME)))).toBe('ENODEV');
  });

  it('a bound device keeps the iommufd file open; the context is released at the last unbind', () => {
    const s = setup();
    const idev = value(s.bind(NVME));
    value(s.c.proc.fds.close(s.c.fd));
    expect(s.ctx.isClosed).toBe(false);
    iommufdDeviceUnbind(idev);
    expect(s.ctx.isClosed).toBe(true);
  });
});


describe('attach, replace, detach', () => {
  it('IOAS attach: an auto domain; device DMA lands through the IOAS mapping; detach frees it and DMA faults', () => {
    const s = setup();
    const idev = value(s.bind(NVME));
    const ioasId = s.c.ioasAlloc();
    const id = value(iommufdDeviceAttach(idev, ioasId));
    expect(id).not.toBe(ioasId);
    const h = s.hwpt(id);
    expect(h.autoDomain).toBe(true);
    expect(h.users).toBe(2);
    expect(idev.users).toBe(2);
    expect(idev.hwptAt()).toBe(h);
    const g = s.w.core.groupOf(s.w.dev(NVME))!;
    expect(g.domain).toBe(h.domain);
    // The MSI window is reserved in the IOAS while the RID is attached.
    expect(s.ioas(ioasId).iopt.reservedRanges().some((r) => r.start === MSI)).toBe(true);
    const va = s.map(ioasId, 0x10_0000n, 2);
    const data = pattern(2 * PAGE);
    expect(s.w.machine.dma(s.w.dev(NVME), { op: 'write', address: 0x10_0000 + 16, length: data.length - 32, data: data.subarray(0, data.length - 32) }).status).toBe('ok');
    const got = new Uint8Array(data.length - 32);
    value(s.c.proc.mm.read(va + 16, got));
    expect(got).toEqual(data.subarray(0, data.length - 32));
    // A second attach of the same RID: EBUSY (seed 000).
    expect(errno(iommufdDeviceAttach(idev, ioasId))).toBe('EBUSY');
    expect(errno(iommufdDeviceAttach(idev, id))).toBe('EBUSY');
    iommufdDeviceDetach(idev);
    expect(s.c.call('IOMMU_DESTROY', { id }).e).toBe('ENOENT');
    expect(g.domain).toBe(g.blockingDomain);
    expect(s.ioas(ioasId).iopt.reservedRanges()).toEqual([]);
    expect(s.ioas(ioasId).domains()).toEqual([]);
    expect(idev.users).toBe(1);
    expect(s.w.machine.dma(s.w.dev(NVME), { op: 'write', address: 0x10_0000, length: 8, data: pattern(8) }).status).toBe('fault');
    // Detach again: nothing happens.
    iommufdDeviceDetach(idev);
  });

  it('lookup: ENOENT for a missing ID, EINVAL for another type', () => {
    const s = setup();
    const idev = value(s.bind(NVME));
    expect(errno(iommufdDeviceAttach(idev, 99))).toBe('ENOENT');
    expect(errno(iommufdDeviceAttach(idev, idev.id))).toBe('EINVAL');
  });

  it('a group shares one HWPT per PASID: the sibling reuses it, another HWPT → EINVAL; the first device does the core attach', () => {
    const s = setup();
    const d0 = value(s.bind(SIB0));
    const d1 = value(s.bind(SIB1));
    const ioasId = s.c.ioasAlloc();
    const a = s.hwptAlloc(d0, ioasId);
    const b = s.hwptAlloc(d0, ioasId);
    value(iommufdDeviceAttach(d0, a));
    expect(errno(iommufdDeviceAttach(d1, b))).toBe('EINVAL');
    expect(value(iommufdDeviceAttach(d1, a))).toBe(a);
    expect(s.hwpt(a).users).toBe(3);
    const g = s.w.core.groupOf(s.w.dev(SIB0))!;
    iommufdDeviceDetach(d0);
    expect(g.domain).toBe(s.hwpt(a).domain);
    iommufdDeviceDetach(d1);
    expect(g.domain).toBe(g.blockingDomain);
    // The auto domain path: both siblings on the IOAS share one auto HWPT.
    const auto0 = value(iommufdDeviceAttach(d0, ioasId));
    expect(value(iommufdDeviceAttach(d1, ioasId))).toBe(auto0);
    iommufdDeviceUnbind(d0);
    expect(s.hwpt(auto0).users).toBe(2);
    iommufdDeviceUnbind(d1);
    expect(s.c.call('IOMMU_DESTROY', { id: auto0 }).e).toBe('ENOENT');
  });

  it('reserved regions: an area over the MSI window → EADDRINUSE and nothing attached', () => {
    const s = setup();
    const idev = value(s.bind(NVME));
    const ioasId = s.c.ioasAlloc();
    s.map(ioasId, MSI, 1);
    const before = s.ctx.objects.size;
    expect(errno(iommufdDeviceAttach(idev, ioasId))).toBe('EADDRINUSE');
    expect(s.ctx.objects.size).toBe(before);
    const h = s.hwptAlloc(idev, ioasId);
    expect(errno(iommufdDeviceAttach(idev, h))).toBe('EADDRINUSE');
    expect(s.hwpt(h).users).toBe(1);
    expect(idev.hwptAt()).toBeNull();
  });

  it('replace: EINVAL when not attached; same HWPT a no-op; an auto domain is freed when replaced', () => {
    const s = setup();
    const idev = value(s.bind(NVME));
    const ioasId = s.c.ioasAlloc();
    const manual = s.hwptAlloc(idev, ioasId);
    expect(errno(iommufdDeviceReplace(idev, manual))).toBe('EINVAL');
    const auto = value(iommufdDeviceAttach(idev, ioasId));
    expect(value(iommufdDeviceReplace(idev, auto))).toBe(auto);
    expect(s.hwpt(auto).users).toBe(2);
    expect(value(iommufdDeviceReplace(idev, manual))).toBe(manual);
    expect(s.c.call('IOMMU_DESTROY', { id: auto }).e).toBe('ENOENT');
    expect(s.hwpt(manual).users).toBe(2);
    expect(s.w.core.groupOf(s.w.dev(NVME))!.domain).toBe(s.hwpt(manual).domain);
    // Replace to another IOAS moves the reserved regions.
    const ioas2 = s.c.ioasAlloc();
    const other = value(iommufdDeviceReplace(idev, ioas2));
    expect(s.hwpt(other).autoDomain).toBe(true);
    expect(s.ioas(ioasId).iopt.reservedRanges().some((r) => r.start === MSI)).toBe(false);
    expect(s.ioas(ioas2).iopt.reservedRanges().some((r) => r.start === MSI)).toBe(true);
    expect(s.hwpt(manual).users).toBe(1);
    iommufdDeviceUnbind(idev);
    expect(s.ioas(ioas2).iopt.reservedRanges()).toEqual([]);
  });
});

describe('PASID rules (§13)', () => {
  const PASID = 5;

  it('PASID attach: EBUSY twice (seed 000), EINVAL for an IOAS, for a HWPT without ALLOC_PASID, and for PASID 0 / beyond max_pasids', () => {
    const s = setup();
    const dsa = value(s.bind(DSA));
    const ioasId = s.c.ioasAlloc();
    const plain = s.hwptAlloc(dsa, ioasId);
    const pasidHwpt = s.hwptAlloc(dsa, ioasId, C.IOMMU_HWPT_ALLOC_PASID);
    expect(errno(iommufdDeviceAttach(dsa, ioasId, PASID))).toBe('EINVAL');
    expect(errno(iommufdDeviceAttach(dsa, plain, PASID))).toBe('EINVAL');
    expect(errno(iommufdDeviceAttach(dsa, pasidHwpt, 0))).toBe('EINVAL');
    expect(errno(iommufdDeviceAttach(dsa, pasidHwpt, s.w.core.maxPasids(s.w.dev(DSA))))).toBe('EINVAL');
    value(iommufdDeviceAttach(dsa, pasidHwpt, PASID));
    expect(s.w.core.domainAtPasid(s.w.dev(DSA), PASID)).toBe(s.hwpt(pasidHwpt).domain);
    expect(errno(iommufdDeviceAttach(dsa, pasidHwpt, PASID))).toBe('EBUSY');
    expect(errno(iommufdDeviceAttach(dsa, plain, PASID))).toBe('EINVAL');
    // The RID cannot take a non-PASID-compatible HWPT while a PASID is attached…
    expect(errno(iommufdDeviceAttach(dsa, plain))).toBe('EINVAL');
    expect(errno(iommufdDeviceAttach(dsa, ioasId))).toBe('EINVAL');
    value(iommufdDeviceAttach(dsa, pasidHwpt));
    expect(errno(iommufdDeviceReplace(dsa, plain))).toBe('EINVAL');
    // Unbind detaches the PASIDs, then the RID.
    iommufdDeviceUnbind(dsa);
    expect(s.w.core.domainAtPasid(s.w.dev(DSA), PASID)).toBeNull();
    expect(s.hwpt(pasidHwpt).users).toBe(1);
  });

  it('…and a PASID attach is EINVAL while the RID has a non-compatible HWPT; a device without PASIDs gets EINVAL', () => {
    const s = setup();
    const dsa = value(s.bind(DSA));
    const nvme = value(s.bind(NVME));
    const ioasId = s.c.ioasAlloc();
    const plain = s.hwptAlloc(dsa, ioasId);
    const pasidHwpt = s.hwptAlloc(dsa, ioasId, C.IOMMU_HWPT_ALLOC_PASID);
    value(iommufdDeviceAttach(dsa, plain));
    expect(errno(iommufdDeviceAttach(dsa, pasidHwpt, PASID))).toBe('EINVAL');
    expect(errno(iommufdDeviceReplace(dsa, pasidHwpt, PASID))).toBe('EINVAL');
    // NVMe has no PASID capability: the core refuses (max_pasids 0).
    const nvmeHwpt = s.hwptAlloc(nvme, ioasId, C.IOMMU_HWPT_ALLOC_PASID);
    expect(errno(iommufdDeviceAttach(nvme, nvmeHwpt, 1))).toBe('EINVAL');
    expect(s.hwpt(nvmeHwpt).users).toBe(1);
    // A PASID-compatible HWPT still works on its RID.
    value(iommufdDeviceAttach(nvme, nvmeHwpt));
  });
});

describe('IOPF end to end (§12)', () => {
  it('FAULT_QUEUE_ALLOC → HWPT_ALLOC(FAULT_ID_VALID) → PASID attach → fault → read → respond → the device completes; detach answers INVALID', () => {
    const s = setup();
    const dev = s.w.dev(DSA);
    enablePriPasid(dev);
    const dsa = value(s.bind(DSA));
    const ioasId = s.c.ioasAlloc();
    const fq = s.c.call('IOMMU_FAULT_QUEUE_ALLOC', {});
    expect(fq.e).toBe('ok');
    const faultId = Number((fq.out as Record<string, unknown>).out_fault_id);
    const faultFd = Number((fq.out as Record<string, unknown>).out_fault_fd);
    const file = value(s.c.proc.fds.get(faultFd)).file as FaultFile;
    const h = s.hwptAlloc(dsa, ioasId, C.IOMMU_HWPT_FAULT_ID_VALID | C.IOMMU_HWPT_ALLOC_PASID, { fault_id: faultId });
    value(iommufdDeviceAttach(dsa, h, 5));
    const dma = () => {
      const r = s.w.machine.dma(dev, { op: 'write', address: 0x40_0000, length: PAGE, data: pattern(PAGE), pasid: 5 });
      s.w.core.poll();
      return r;
    };
    const r = dma();
    expect(r.status).toBe('pending');
    const buf = s.c.anon(2);
    const n = value(file.read(s.c.proc, buf, 4 * 40, 0));
    expect(n).toBe(40);
    const rec = new Uint8Array(40);
    value(s.c.proc.mm.read(buf, rec));
    const decoded = iommu_hwpt_pgfault.decode(rec);
    expect(decoded.dev_id).toBe(dsa.id);
    expect(decoded.pasid).toBe(5);
    expect(decoded.addr).toBe(0x40_0000n);
    // Map the page, answer SUCCESS: the device retries and the data lands in the user buffer.
    const va = s.map(ioasId, 0x40_0000n, 1);
    const resp = new Uint8Array(8);
    iommu_hwpt_page_response.encode({ cookie: decoded.cookie, code: C.IOMMUFD_PAGE_RESP_SUCCESS }, resp);
    value(s.c.proc.mm.write(buf + PAGE, resp));
    expect(value(file.write(s.c.proc, buf + PAGE, 8, 0))).toBe(8);
    expect(r.status).toBe('ok');
    const got = new Uint8Array(PAGE);
    value(s.c.proc.mm.read(va, got));
    expect(got).toEqual(pattern(PAGE));
    // Another fault, read but not answered; detach answers it INVALID and the device aborts.
    value(s.c.call('IOMMU_IOAS_UNMAP', { ioas_id: ioasId, iova: 0x40_0000n, length: BigInt(PAGE) }).r);
    const r2 = dma();
    expect(r2.status).toBe('pending');
    expect(value(file.read(s.c.proc, buf, 40, 0))).toBe(40);
    iommufdDeviceDetach(dsa, 5);
    expect(r2.status).toBe('aborted');
    expect(s.hwpt(h).users).toBe(1);
    iommufdDeviceUnbind(dsa);
  });
});
