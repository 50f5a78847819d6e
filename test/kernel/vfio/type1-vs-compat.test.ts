// §6.1: the differences user space can observe between vfio_iommu_type1 and iommufd's VFIO compat layer,
// as one table. Each row runs the same ioctl sequence on a legacy container (type1) and on
// /dev/vfio/vfio served by iommufd (CONFIG_IOMMUFD_VFIO_CONTAINER), both with the NVMe attached.

import { describe, expect, it } from 'vitest';
import type { IommufdCtx } from '../../../src/kernel/iommufd/context.ts';
import { iommufdDeviceAttach, iommufdDeviceBind, iommufdDeviceUnbind } from '../../../src/kernel/iommufd/device.ts';
import { compatIoasCreate } from '../../../src/kernel/iommufd/vfio-compat.ts';
import type { KernelBootOptions } from '../../../src/kernel/kernel.ts';
import { VFIO_CHECK_EXTENSION, VFIO_IOMMU_GET_INFO, VFIO_IOMMU_MAP_DMA, VFIO_IOMMU_UNMAP_DMA, VFIO_SET_IOMMU } from '../../../src/uapi/ioctl.ts';
import { parseCapChain } from '../../../src/uapi/vfio-argsz.ts';
import * as K from '../../../src/uapi/vfio-consts.ts';
import {
  vfio_iommu_type1_dma_map, vfio_iommu_type1_dma_unmap, vfio_iommu_type1_info, vfio_iommu_type1_info_dma_avail,
} from '../../../src/uapi/vfio-structs.ts';
import { boot, client, errno, NVME, PAGE, value, vfioGroupOf, type Caller } from './legacy-helpers.ts';

const P = BigInt(PAGE);
const RW = K.VFIO_DMA_MAP_FLAG_READ | K.VFIO_DMA_MAP_FLAG_WRITE;

interface Path {
  readonly c: Caller;
  /** Close everything: the group leaves (legacy) or the device unbinds (iommufd), then the fd. */
  close(): void;
}

function legacy(v2: boolean, opts: KernelBootOptions): Path {
  const k = boot(opts);
  const c = client(k);
  const g = vfioGroupOf(k, NVME);
  value(c.container().attachGroup(g, c.proc));
  value(c.io(VFIO_SET_IOMMU, v2 ? K.VFIO_TYPE1v2_IOMMU : K.VFIO_TYPE1_IOMMU));
  const container = c.container();
  return { c, close: () => { container.detachGroup(g); value(c.proc.fds.close(c.fd)); } };
}

function compat(v2: boolean, opts: KernelBootOptions): Path {
  const k = boot({ ...opts, vfio: { ...opts.vfio, iommufdContainer: true } });
  const c = client(k);
  const ctx: IommufdCtx = c.iommufd();
  // What VFIO_GROUP_SET_CONTAINER and GET_DEVICE_FD do on an iommufd: the compat IOAS, the device bound and attached.
  const ioas = value(compatIoasCreate(ctx));
  const dev = k.device(NVME)!;
  value(k.drivers.unbind(dev));
  const idev = value(iommufdDeviceBind(ctx, dev, { file: value(c.proc.fds.get(c.fd)) }));
  value(iommufdDeviceAttach(idev, ioas));
  value(c.io(VFIO_SET_IOMMU, v2 ? K.VFIO_TYPE1v2_IOMMU : K.VFIO_TYPE1_IOMMU));
  return { c, close: () => { iommufdDeviceUnbind(idev); value(c.proc.fds.close(c.fd)); } };
}

const map = (c: Caller, iova: bigint, npages: number) =>
  c.call(VFIO_IOMMU_MAP_DMA, vfio_iommu_type1_dma_map, { flags: RW, vaddr: BigInt(c.anon(npages)), iova, size: BigInt(npages) * P }).e;
const unmap = (c: Caller, iova: bigint, size: bigint, flags = 0) => {
  const r = c.call(VFIO_IOMMU_UNMAP_DMA, vfio_iommu_type1_dma_unmap, { flags, iova, size });
  return r.e === 'ok' ? `ok ${r.out.size / P}p` : r.e;
};
function info(c: Caller) {
  const q = c.call(VFIO_IOMMU_GET_INFO, vfio_iommu_type1_info, {});
  const full = c.call(VFIO_IOMMU_GET_INFO, vfio_iommu_type1_info, { argsz: q.out.argsz });
  return value(parseCapChain(full.raw, full.out.cap_offset)).map((x) => ({ ...x, raw: full.raw }));
}

interface Row {
  readonly aspect: string;
  readonly v2?: boolean;
  readonly opts?: KernelBootOptions;
  readonly run: (c: Caller) => unknown;
  readonly type1: unknown;
  readonly compat: unknown;
}

const ROWS: readonly Row[] = [
  { aspect: 'v2 unmap that bisects a mapping', run: (c) => [map(c, 0n, 4), unmap(c, P, P)], type1: ['ok', 'EINVAL'], compat: ['ok', 'ENOENT'] },
  { aspect: 'v1 unmap starting inside a mapping', v2: false, run: (c) => [map(c, 0n, 4), unmap(c, P, P)], type1: ['ok', 'ok 0p'], compat: ['ok', 'ok 1p'] },
  { aspect: 'v1 unmap covering a mapping\'s first IOVA', v2: false, run: (c) => [map(c, 0n, 4), unmap(c, 0n, P)], type1: ['ok', 'ok 4p'], compat: ['ok', 'ok 1p'] },
  { aspect: 'unmap of an empty range', run: (c) => unmap(c, 0x10_0000n, P), type1: 'ok 0p', compat: 'ok 0p' },
  { aspect: 'mapping count limit', opts: { vfio: { dmaEntryLimit: 1 } }, run: (c) => [map(c, 0n, 1), map(c, P, 1)], type1: ['ok', 'ENOSPC'], compat: ['ok', 'ok'] },
  {
    aspect: 'DMA_AVAIL after one mapping', run: (c) => {
      map(c, 0n, 1);
      const cap = info(c).find((x) => x.id === K.VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL)!;
      return vfio_iommu_type1_info_dma_avail.decode(cap.raw.subarray(cap.offset)).avail;
    }, type1: 65534, compat: 0xffff_ffff,
  },
  { aspect: 'UPDATE_VADDR extension', run: (c) => value(c.io(VFIO_CHECK_EXTENSION, K.VFIO_UPDATE_VADDR)), type1: 1, compat: 0 },
  { aspect: 'VADDR unmap flag', run: (c) => [map(c, 0n, 1), unmap(c, 0n, P, K.VFIO_DMA_UNMAP_FLAG_VADDR)], type1: ['ok', 'ok 1p'], compat: ['ok', 'EINVAL'] },
  { aspect: 'GET_DIRTY_BITMAP unmap flag', run: (c) => unmap(c, 0n, P, K.VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP), type1: 'EINVAL', compat: 'EINVAL' },
  { aspect: 'GET_INFO capabilities', run: (c) => info(c).map((x) => x.id), type1: [2, 3, 1], compat: [3, 1] },
  {
    aspect: 'accounting of a 4-page map (VmLck, VmPin in kB)', run: (c) => {
      map(c, 0n, 4);
      const s = c.proc.status();
      return [s.VmLck, s.VmPin];
    }, type1: [16, 0], compat: [16, 16],
  },
];

describe('type1 versus iommufd compat (§6.1)', () => {
  for (const row of ROWS) {
    it(row.aspect, () => {
      for (const [name, make, want] of [['type1', legacy, row.type1], ['compat', compat, row.compat]] as const) {
        const p = make(row.v2 ?? true, row.opts ?? {});
        expect({ path: name, got: row.run(p.c) }).toEqual({ path: name, got: want });
        p.close();
        expect({ path: name, VmLck: p.c.proc.status().VmLck, VmPin: p.c.proc.status().VmPin }).toEqual({ path: name, VmLck: 0, VmPin: 0 });
      }
    });
  }

  it('SET_IOMMU prerequisite: a group in the container (EINVAL) versus a compat IOAS (ENODEV)', () => {
    expect(errno(client(boot()).io(VFIO_SET_IOMMU, K.VFIO_TYPE1v2_IOMMU))).toBe('EINVAL');
    expect(errno(client(boot({ vfio: { iommufdContainer: true } })).io(VFIO_SET_IOMMU, K.VFIO_TYPE1v2_IOMMU))).toBe('ENODEV');
  });
});
