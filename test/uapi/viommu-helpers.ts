// Shared set-up for the vIOMMU tests (viommu.test.ts, iommufd-mmap.test.ts, hw-queue.test.ts): a booted
// default host, a client with an iommufd, the NVMe, a USB controller (both behind DRHD1) and the DSA
// (behind DRHD0) bound, the selftest-like vIOMMU driver of test/support installed on DRHD1's driver
// instance, an IOAS and a NEST_PARENT HWPT on it.

import { expect } from 'vitest';
import type { IommufdCtx } from '../../src/kernel/iommufd/context.ts';
import { iommufdDeviceBind, type IommufdDevice } from '../../src/kernel/iommufd/device.ts';
import * as C from '../../src/uapi/iommufd-consts.ts';
import { IOMMU_VIOMMU_TYPE_SELFTEST } from '../../src/kernel/iommufd/selftest/constants.ts';
import { MockViommuDriver } from '../../src/kernel/iommufd/selftest/mock-viommu.ts';
import { client, value, world, type World } from './dispatch-helpers.ts';

export const NVME = '39:00.0';
export const USB = '00:14.0';
export const DSA = '6a:01.0';
/** The test driver's "MMIO" pages: 4 GiB up, far from the frame allocator's range. */
export const MMIO_PA = 2 ** 32;

export type Out = Record<string, unknown>;
export const num = (r: { out: unknown }, f: string): number => Number((r.out as Out)[f]);

export function setup(opts: { install?: boolean } = {}) {
  const w: World = world();
  const c = client(w);
  const file = value(c.proc.fds.get(c.fd));
  const ctx = file.file as IommufdCtx;
  const nvme = value(iommufdDeviceBind(ctx, w.dev(NVME), { file }));
  const usb = value(iommufdDeviceBind(ctx, w.dev(USB), { file }));
  const dsa = value(iommufdDeviceBind(ctx, w.dev(DSA), { file }));
  const drv = new MockViommuDriver(w.memory, MMIO_PA);
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
export type Setup = ReturnType<typeof setup>;

/** struct iommu_viommu_selftest {u32 in_data, u32 out_data, u64 out_mmap_offset, u64 out_mmap_length}. */
export function selftestData(inData: number, size = 24): Uint8Array {
  const b = new Uint8Array(size);
  new DataView(b.buffer).setUint32(0, inData, true);
  return b;
}

export function viommuWithData(s: Setup, inData: number) {
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

