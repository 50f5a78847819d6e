// Shared set-up of the dirty-tracking tests: a process with an iommufd, the default host's NVMe function
// bound to it, an IOAS, and a HWPT allocated with IOMMU_HWPT_ALLOC_DIRTY_TRACKING (and one without) that
// the device is attached to, so device DMA runs through the simulated IOMMU and sets real D bits.

import type { IommufdCtx } from '../../../src/kernel/iommufd/context.ts';
import { iommufdDeviceAttach, iommufdDeviceBind } from '../../../src/kernel/iommufd/device.ts';
import type { HwptPaging } from '../../../src/kernel/iommufd/hw-pagetable.ts';
import { MAP_ANONYMOUS, MAP_PRIVATE } from '../../../src/kernel/mm/mman.ts';
import * as C from '../../../src/uapi/iommufd-consts.ts';
import { client, PAGE, RW, value, world } from '../../uapi/dispatch-helpers.ts';

export const NVME = '39:00.0';
export const SZ_2M = 0x20_0000;

export function dirtySetup(opts: { frames?: number } = {}) {
  const w = world(opts.frames ?? 16384);
  const c = client(w, { memlockPages: 65536 });
  const file = value(c.proc.fds.get(c.fd));
  const ctx = file.file as IommufdCtx;
  const dev = w.dev(NVME);
  const idev = value(iommufdDeviceBind(ctx, dev, { file }));
  const ioasId = c.ioasAlloc();
  const hwptAlloc = (flags: number): number => {
    const r = c.call('IOMMU_HWPT_ALLOC', { dev_id: idev.id, pt_id: ioasId, flags });
    if (r.e !== 'ok') throw new Error(`HWPT_ALLOC: ${r.e}`);
    return Number((r.out as Record<string, unknown>).out_hwpt_id);
  };
  const hwptId = hwptAlloc(C.IOMMU_HWPT_ALLOC_DIRTY_TRACKING);
  const plainHwptId = hwptAlloc(0);
  value(iommufdDeviceAttach(idev, hwptId));
  const hwpt = value(ctx.objects.get<HwptPaging>(hwptId, 'hwpt_paging'));
  /** Anonymous memory `size` bytes long starting on an `align` boundary (THP-backed when 2 MiB aligned). */
  const alignedAnon = (size: number, align = PAGE): number => {
    const raw = value(c.proc.mmap(0, size + align, RW, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
    return Math.ceil(raw / align) * align;
  };
  /**
   * IOAS_MAP of `size` bytes of fresh memory at a fixed IOVA. The user VA is 2 MiB aligned when the IOVA
   * and size are (so THP gives the domain 2 MiB leaves), unless `smallLeaves`: then it is one page off a
   * 2 MiB boundary, so IOVA and PA never line up and the domain maps 4 KiB leaves.
   */
  const map = (iova: number, size: number, o: { smallLeaves?: boolean } = {}): number => {
    const huge = iova % SZ_2M === 0 && size % SZ_2M === 0;
    const va = o.smallLeaves === true ? alignedAnon(size + SZ_2M, SZ_2M) + PAGE : alignedAnon(size, huge ? SZ_2M : PAGE);
    const r = c.call('IOMMU_IOAS_MAP', { ioas_id: ioasId, flags: 1 | 2 | 4, user_va: BigInt(va), length: BigInt(size), iova: BigInt(iova) });
    if (r.e !== 'ok') throw new Error(`IOAS_MAP: ${r.e}`);
    return va;
  };
  /** One device DMA of 8 bytes at `iova`. */
  const dma = (iova: number, write: boolean): string => {
    const r = write
      ? w.machine.dma(dev, { op: 'write', address: iova, length: 8, data: new Uint8Array(8).fill(0xa5) })
      : w.machine.dma(dev, { op: 'read', address: iova, length: 8, data: new Uint8Array(8) });
    return r.status;
  };
  const setTracking = (id: number, enabled: boolean) => c.call('IOMMU_HWPT_SET_DIRTY_TRACKING', { hwpt_id: id, flags: enabled ? 1 : 0 });
  /** GET_DIRTY_BITMAP with the struct as a C caller fills it. */
  const getBitmap = (f: { hwpt_id?: number; flags?: number; __reserved?: number; iova: bigint | number; length: bigint | number; page_size?: bigint | number; data: bigint | number }) =>
    c.call('IOMMU_HWPT_GET_DIRTY_BITMAP', {
      hwpt_id: f.hwpt_id ?? hwptId, flags: f.flags ?? 0, __reserved: f.__reserved ?? 0,
      iova: BigInt(f.iova), length: BigInt(f.length), page_size: BigInt(f.page_size ?? PAGE), data: BigInt(f.data),
    });
  return { w, c, ctx, dev, idev, ioasId, hwptId, plainHwptId, hwpt, alignedAnon, map, dma, setTracking, getBitmap };
}
export type DirtySetup = ReturnType<typeof dirtySetup>;

/** The indexes of the set bits of `bytes` (bit n is bit n & 7 of byte n >> 3). */
export function setBits(bytes: Uint8Array): number[] {
  const out: number[] = [];
  for (let i = 0; i < bytes.length; i++) {
    const b = bytes[i] as number;
    if (b === 0) continue;
    for (let k = 0; k < 8; k++) if ((b & (1 << k)) !== 0) out.push(i * 8 + k);
  }
  return out;
}
