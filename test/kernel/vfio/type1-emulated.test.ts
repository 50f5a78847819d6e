// type1 with emulated (mdev-style) groups (§11.4, §12): lazy pinning, vfio_pin_pages / vfio_unpin_pages /
// vfio_dma_rw, the unmap notification with type1's retry rule, and the accounting when IOMMU-backed
// groups come and go.

import { describe, expect, it } from 'vitest';
import { vfioDmaRw, vfioPinPages, vfioUnpinPages } from '../../../src/kernel/vfio/pin.ts';
import type { Type1Iommu } from '../../../src/kernel/vfio/type1/iommu.ts';
import { KernelBug } from '../../../src/kernel/vfio/type1/map-unmap.ts';
import type { VfioDevice } from '../../../src/kernel/vfio/vfio-device.ts';
import {
  VFIO_CHECK_EXTENSION, VFIO_IOMMU_GET_INFO, VFIO_IOMMU_MAP_DMA, VFIO_IOMMU_UNMAP_DMA, VFIO_SET_IOMMU,
} from '../../../src/uapi/ioctl.ts';
import { parseCapChain } from '../../../src/uapi/vfio-argsz.ts';
import * as K from '../../../src/uapi/vfio-consts.ts';
import { vfio_iommu_type1_dma_map, vfio_iommu_type1_dma_unmap, vfio_iommu_type1_info } from '../../../src/uapi/vfio-structs.ts';
import { boot, client, emulatedDevice, errno, NVME, PAGE, value, vfioGroupOf } from './legacy-helpers.ts';

const P = BigInt(PAGE);
const R = K.VFIO_DMA_MAP_FLAG_READ;
const RW = R | K.VFIO_DMA_MAP_FLAG_WRITE;
const MSI = 0xfee0_0000n;

/** A container holding only an emulated device's group; the device is open and registered. */
function mdevOnly(opts: { v2?: boolean; unpins?: boolean } = {}) {
  const k = boot();
  const c = client(k);
  const unmapCalls: [bigint, bigint][] = [];
  const vdev: VfioDevice = emulatedDevice(k, 'mdev0', {
    dmaUnmap: (d, iova, length) => {
      unmapCalls.push([iova, length]);
      if (opts.unpins !== false) for (const [at, n] of pins.splice(0)) vfioUnpinPages(d, at, n);
    },
  });
  const pins: [bigint, number][] = [];
  value(c.container().attachGroup(vdev.group!, c.proc));
  value(c.io(VFIO_SET_IOMMU, opts.v2 === false ? K.VFIO_TYPE1_IOMMU : K.VFIO_TYPE1v2_IOMMU));
  const iommu = c.container().backend as Type1Iommu;
  vdev.openCount = 1;
  c.container().registerDevice(vdev);
  const map = (iova: bigint, npages: number, flags = RW) =>
    c.call(VFIO_IOMMU_MAP_DMA, vfio_iommu_type1_dma_map, { flags, vaddr: BigInt(c.anon(npages)), iova, size: BigInt(npages) * P }).e;
  const unmap = (iova: bigint, size: bigint, flags = 0) => {
    const r = c.call(VFIO_IOMMU_UNMAP_DMA, vfio_iommu_type1_dma_unmap, { flags, iova, size });
    return { e: r.e, size: r.out.size };
  };
  const pin = (iova: bigint, n: number, write = true) => {
    const r = vfioPinPages(vdev, iova, n, write);
    if (r.ok) pins.push([iova, n]);
    return r;
  };
  return { k, c, vdev, iommu, map, unmap, pin, pins, unmapCalls, vmlck: () => c.proc.status().VmLck };
}

describe('an emulated-only container', () => {
  it('records mappings without pinning; every IOVA is valid; GET_INFO has no IOVA_RANGE', () => {
    const t = mdevOnly();
    expect(t.map(MSI, 4)).toBe('ok');
    expect(t.iommu.dmas[0]!.iommuPfns).toBeNull();
    expect(t.vmlck()).toBe(0);
    const q = t.c.call(VFIO_IOMMU_GET_INFO, vfio_iommu_type1_info, {});
    const full = t.c.call(VFIO_IOMMU_GET_INFO, vfio_iommu_type1_info, { argsz: q.out.argsz });
    expect(value(parseCapChain(full.raw, full.out.cap_offset)).map((x) => x.id)).toEqual([K.VFIO_IOMMU_TYPE1_INFO_CAP_MIGRATION, K.VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL]);
    expect(value(t.c.io(VFIO_CHECK_EXTENSION, K.VFIO_UPDATE_VADDR))).toBe(0);
    expect(t.unmap(MSI, 4n * P, K.VFIO_DMA_UNMAP_FLAG_VADDR).e).toBe('EBUSY');
  });

  it('vfio_pin_pages pins and charges per page, refcounted; unpin releases', () => {
    const t = mdevOnly();
    expect(t.map(0x10_0000n, 4)).toBe('ok');
    const pfns = value(t.pin(0x10_0000n, 2));
    expect(pfns).toHaveLength(2);
    expect(t.vmlck()).toBe(8);
    expect(value(t.pin(0x10_0000n + P, 2))[0]).toBe(pfns[1]);
    expect(t.vmlck()).toBe(12);
    vfioUnpinPages(t.vdev, 0x10_0000n + P, 2);
    expect(t.vmlck()).toBe(8);
    vfioUnpinPages(t.vdev, 0x10_0000n, 2);
    expect(t.vmlck()).toBe(0);
    expect(t.iommu.dmas[0]!.external.size).toBe(0);
  });

  it('pin errors: EINVAL closed/unregistered/unmapped, E2BIG, EPERM for a read-only mapping, EACCES on v1', () => {
    const t = mdevOnly();
    expect(t.map(0n, 1, R)).toBe('ok');
    expect(errno(t.pin(0x10_0000n, 1))).toBe('EINVAL');
    expect(errno(t.pin(0n, 513))).toBe('E2BIG');
    expect(errno(t.pin(0n, 0))).toBe('EINVAL');
    expect(errno(t.pin(0n, 1, true))).toBe('EPERM');
    expect(t.pin(0n, 1, false).ok).toBe(true);
    t.c.container().unregisterDevice(t.vdev);
    expect(errno(t.pin(0n, 1, false))).toBe('EINVAL');
    t.vdev.openCount = 0;
    expect(errno(t.pin(0n, 1, false))).toBe('EINVAL');
    const v1 = mdevOnly({ v2: false });
    expect(v1.map(0n, 1)).toBe('ok');
    expect(errno(v1.pin(0n, 1))).toBe('EACCES');
  });

  it('vfio_dma_rw copies through the mapping task\'s memory', () => {
    const t = mdevOnly();
    const va = t.c.anon(2);
    expect(t.c.call(VFIO_IOMMU_MAP_DMA, vfio_iommu_type1_dma_map, { flags: RW, vaddr: BigInt(va), iova: 0x8000n, size: 2n * P }).e).toBe('ok');
    value(vfioDmaRw(t.vdev, 0x8000n + P - 2n, new Uint8Array([1, 2, 3, 4]), true));
    const back = new Uint8Array(4);
    value(t.c.proc.mm.read(va + PAGE - 2, back));
    expect([...back]).toEqual([1, 2, 3, 4]);
    const got = new Uint8Array(4);
    value(vfioDmaRw(t.vdev, 0x8000n + P - 2n, got, false));
    expect([...got]).toEqual([1, 2, 3, 4]);
    expect(errno(vfioDmaRw(t.vdev, 0x10_0000n, got, false))).toBe('EINVAL');
  });

  it('an unmap over pinned pages notifies the device, which unpins; then the unmap completes', () => {
    const t = mdevOnly();
    expect(t.map(0n, 4)).toBe('ok');
    value(t.pin(P, 2));
    expect(t.unmap(0n, 4n * P)).toEqual({ e: 'ok', size: 4n * P });
    expect(t.unmapCalls).toEqual([[0n, 4n * P]]);
    expect(t.vmlck()).toBe(0);
  });

  it('a device that never unpins: BUG after 10 retries (thrown as KernelBug)', () => {
    const t = mdevOnly({ unpins: false });
    expect(t.map(0n, 1)).toBe('ok');
    value(t.pin(0n, 1));
    expect(() => t.unmap(0n, P)).toThrow(KernelBug);
    expect(t.unmapCalls).toHaveLength(11);
  });
});

describe('emulated and IOMMU-backed groups together', () => {
  it('an IOMMU group joining pins every mapping, charging only pages not already pinned; leaving re-charges the external pins', () => {
    const t = mdevOnly();
    expect(t.map(0x10_0000n, 4)).toBe('ok');
    value(t.pin(0x10_0000n, 2));
    expect(t.vmlck()).toBe(8);
    const g = vfioGroupOf(t.k, NVME);
    value(t.c.container().attachGroup(g, t.c.proc));
    expect(t.vmlck()).toBe(16);
    expect(t.iommu.domains[0]!.domain.iovaToPhys(0x10_0000 + 3 * PAGE)).not.toBeNull();
    // Pins while a domain exists are not charged again.
    value(t.pin(0x10_0000n + 2n * P, 1));
    expect(t.vmlck()).toBe(16);
    t.c.container().detachGroup(g);
    expect(t.iommu.domains).toHaveLength(0);
    expect(t.vmlck()).toBe(12);
    for (const [at, n] of t.pins.splice(0)) vfioUnpinPages(t.vdev, at, n);
    expect(t.vmlck()).toBe(0);
  });

  it('EINVAL for a group whose reserved regions hold a mapping; the group is left blocked, not attached', () => {
    const t = mdevOnly();
    expect(t.map(MSI, 1)).toBe('ok');
    const g = vfioGroupOf(t.k, NVME);
    expect(errno(t.c.container().attachGroup(g, t.c.proc))).toBe('EINVAL');
    expect(g.container).toBeNull();
    expect(g.iommuGroup!.owner).toBeNull();
  });

  it('the last group leaving takes the mappings and pins: VmLck returns to zero', () => {
    const t = mdevOnly();
    expect(t.map(0n, 8)).toBe('ok');
    value(t.pin(0n, 3));
    t.c.container().unregisterDevice(t.vdev);
    t.c.container().detachGroup(t.vdev.group!);
    expect(t.vmlck()).toBe(0);
    expect(t.c.container().iommuSet).toBe(false);
    expect(t.iommu.log.some((l) => l.startsWith('WARN'))).toBe(true);
  });
});
