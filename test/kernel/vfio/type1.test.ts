// The type1 backend through the byte-level dispatch (§5): MAP_DMA and UNMAP_DMA rules for v1 and v2,
// VADDR, GET_INFO with its capability chain and argsz growth, replay into new domains, accounting.

import { describe, expect, it } from 'vitest';
import { VFIO_IOMMU_GET_INFO, VFIO_IOMMU_MAP_DMA, VFIO_IOMMU_UNMAP_DMA } from '../../../src/uapi/ioctl.ts';
import { parseCapChain } from '../../../src/uapi/vfio-argsz.ts';
import * as K from '../../../src/uapi/vfio-consts.ts';
import {
  vfio_iommu_type1_dma_map, vfio_iommu_type1_dma_unmap, vfio_iommu_type1_info, vfio_iommu_type1_info_cap_iova_range,
  vfio_iommu_type1_info_cap_migration, vfio_iommu_type1_info_dma_avail, vfio_iova_range,
} from '../../../src/uapi/vfio-structs.ts';
import { DSA, errno, PAGE, type1, value, vfioGroupOf } from './legacy-helpers.ts';

const R = K.VFIO_DMA_MAP_FLAG_READ;
const RW = R | K.VFIO_DMA_MAP_FLAG_WRITE;
const P = BigInt(PAGE);
const MSI = 0xfee0_0000n;

describe('MAP_DMA (§5.1)', () => {
  it('maps and pins at once: the domain translates, VmLck is charged to the mapping task', () => {
    const t = type1();
    const m = t.map(0x10_0000n, 4);
    expect(m.e).toBe('ok');
    expect(t.c.proc.status().VmLck).toBe(16);
    const pfns = t.iommu.dmas[0]!.iommuPfns!;
    for (let i = 0; i < 4; i++) expect(t.domain().iovaToPhys(0x10_0000 + i * PAGE)).toBe(pfns[i]! * PAGE);
    expect(t.domain().iovaToPhys(0x10_0000 + 4 * PAGE)).toBeNull();
  });

  it('argument errors: EFAULT, argsz, flags, protection, size, alignment, wrap', () => {
    const t = type1();
    const S = vfio_iommu_type1_dma_map;
    expect(errno(t.c.io(VFIO_IOMMU_MAP_DMA, 0))).toBe('EFAULT');
    expect(t.c.call(VFIO_IOMMU_MAP_DMA, S, { argsz: S.sizeof - 1, flags: RW, vaddr: BigInt(t.c.anon(1)), size: P }).e).toBe('EINVAL');
    expect(t.map(0n, 1, RW | (1 << 3)).e).toBe('EINVAL');
    expect(t.map(0n, 1, 0).e).toBe('EINVAL');
    expect(t.map(0n, 1, R | K.VFIO_DMA_MAP_FLAG_VADDR).e).toBe('EINVAL');
    expect(t.c.call(VFIO_IOMMU_MAP_DMA, S, { flags: RW, vaddr: BigInt(t.c.anon(1)), iova: 0n, size: 0n }).e).toBe('EINVAL');
    expect(t.map(0x800n, 1).e).toBe('EINVAL');
    expect(t.c.call(VFIO_IOMMU_MAP_DMA, S, { flags: RW, vaddr: BigInt(t.c.anon(1) + 0x10), iova: 0n, size: P }).e).toBe('EINVAL');
    expect(t.c.call(VFIO_IOMMU_MAP_DMA, S, { flags: RW, vaddr: BigInt(t.c.anon(1)), iova: (1n << 64n) - P, size: 2n * P }).e).toBe('EINVAL');
    expect(t.c.call(VFIO_IOMMU_MAP_DMA, S, { flags: RW, vaddr: (1n << 64n) - P, iova: 0n, size: 2n * P }).e).toBe('EINVAL');
    expect(t.iommu.dmas).toHaveLength(0);
  });

  it('EEXIST over a mapping; EINVAL on the MSI window or past the aperture; EFAULT for unmapped memory', () => {
    const t = type1();
    expect(t.map(0x10_0000n, 4).e).toBe('ok');
    expect(t.map(0x10_0000n + 3n * P, 2).e).toBe('EEXIST');
    expect(t.map(0x10_0000n - P, 2).e).toBe('EEXIST');
    expect(t.map(MSI, 1).e).toBe('EINVAL');
    expect(t.map(MSI - P, 2).e).toBe('EINVAL');
    expect(t.map(1n << 57n, 1).e).toBe('EINVAL');
    expect(t.c.call(VFIO_IOMMU_MAP_DMA, vfio_iommu_type1_dma_map, { flags: RW, vaddr: 0x7000_0000n, iova: 0n, size: P }).e).toBe('EFAULT');
    expect(t.iommu.dmas).toHaveLength(1);
    expect(t.iommu.dmaAvail).toBe(65534);
  });

  it('ENOSPC past dma_entry_limit', () => {
    const t = type1(true, { vfio: { dmaEntryLimit: 2 } });
    expect(t.map(0n, 1).e).toBe('ok');
    expect(t.map(P, 1).e).toBe('ok');
    expect(t.map(2n * P, 1).e).toBe('ENOSPC');
    expect(t.unmap(0n, P).e).toBe('ok');
    expect(t.map(2n * P, 1).e).toBe('ok');
  });

  it('ENOMEM over RLIMIT_MEMLOCK unless CAP_IPC_LOCK, which still charges VmLck', () => {
    const t = type1(true, {}, { memlockPages: 4 });
    expect(t.map(0n, 4).e).toBe('ok');
    expect(t.map(0x10_0000n, 1).e).toBe('ENOMEM');
    expect(t.iommu.dmas).toHaveLength(1);
    expect(t.c.proc.status().VmLck).toBe(16);
    t.c.proc.grantCapability('CAP_IPC_LOCK');
    expect(t.map(0x10_0000n, 8).e).toBe('ok');
    expect(t.c.proc.status().VmLck).toBe(48);
  });
});

describe('UNMAP_DMA (§5.2)', () => {
  it('v2: whole mappings only (EINVAL on a bisect), several in one range, empty ranges are size 0', () => {
    const t = type1();
    for (let i = 0; i < 4; i++) expect(t.map(BigInt(i) * 4n * P, 4).e).toBe('ok');
    expect(t.unmap(P, 3n * P).e).toBe('EINVAL');
    expect(t.unmap(0n, 3n * P).e).toBe('EINVAL');
    expect(t.unmap(0n, 5n * P).e).toBe('EINVAL');
    expect(t.unmap(0x100_0000n, P)).toEqual({ e: 'ok', size: 0n });
    expect(t.unmap(0n, 8n * P)).toEqual({ e: 'ok', size: 8n * P });
    expect(t.iommu.dmas).toHaveLength(2);
    expect(t.c.proc.status().VmLck).toBe(32);
    expect(t.domain().iovaToPhys(0)).toBeNull();
  });

  it('argument errors: flags, misalignment, size 0, wrap, UNMAP_ALL with a range, GET_DIRTY_BITMAP', () => {
    const t = type1();
    expect(t.unmap(0n, P, 1 << 5).e).toBe('EINVAL');
    expect(t.unmap(0x800n, P).e).toBe('EINVAL');
    expect(t.unmap(0n, 0x800n).e).toBe('EINVAL');
    expect(t.unmap(0n, 0n).e).toBe('EINVAL');
    expect(t.unmap(2n * P, (1n << 64n) - P).e).toBe('EINVAL');
    expect(t.unmap(P, 0n, K.VFIO_DMA_UNMAP_FLAG_ALL).e).toBe('EINVAL');
    expect(t.unmap(0n, P, K.VFIO_DMA_UNMAP_FLAG_ALL).e).toBe('EINVAL');
    expect(t.unmap(0n, P, K.VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP).e).toBe('EINVAL');
    expect(t.c.call(VFIO_IOMMU_UNMAP_DMA, vfio_iommu_type1_dma_unmap, { argsz: 8, iova: 0n, size: P }).e).toBe('EINVAL');
  });

  it('UNMAP_ALL removes everything and returns the total; accounting returns to zero', () => {
    const t = type1();
    expect(t.map(0n, 2).e).toBe('ok');
    expect(t.map(0x10_0000n, 3).e).toBe('ok');
    expect(t.unmap(0n, 0n, K.VFIO_DMA_UNMAP_FLAG_ALL)).toEqual({ e: 'ok', size: 5n * P });
    expect(t.c.proc.status().VmLck).toBe(0);
    expect(t.iommu.dmaAvail).toBe(65535);
  });

  it('v1: a range starting inside a mapping unmaps nothing; one covering its first IOVA takes it whole', () => {
    const t = type1(false);
    expect(t.map(0n, 4).e).toBe('ok');
    expect(t.map(4n * P, 4).e).toBe('ok');
    expect(t.unmap(P, P)).toEqual({ e: 'ok', size: 0n });
    expect(t.unmap(2n * P, 4n * P)).toEqual({ e: 'ok', size: 0n });
    expect(t.unmap(0n, P)).toEqual({ e: 'ok', size: 4n * P });
    expect(t.unmap(4n * P, 5n * P)).toEqual({ e: 'ok', size: 4n * P });
    expect(t.c.proc.status().VmLck).toBe(0);
  });

  it('VADDR: invalidate then re-supply the vaddr; pins and IOMMU mappings stay', () => {
    const t = type1();
    const m = t.map(0n, 2);
    expect(t.unmap(0n, 2n * P, K.VFIO_DMA_UNMAP_FLAG_VADDR)).toEqual({ e: 'ok', size: 2n * P });
    expect(t.iommu.dmas[0]!.vaddrInvalid).toBe(true);
    expect(t.domain().iovaToPhys(0)).not.toBeNull();
    expect(t.unmap(0n, 2n * P, K.VFIO_DMA_UNMAP_FLAG_VADDR).e).toBe('EINVAL');
    // A group cannot join while vaddrs are invalid.
    expect(errno(t.c.container().attachGroup(vfioGroupOf(t.k, DSA), t.c.proc))).toBe('EBUSY');
    const V = K.VFIO_DMA_MAP_FLAG_VADDR;
    expect(t.map(0x10_0000n, 2, V).e).toBe('ENOENT');
    expect(t.map(0n, 1, V).e).toBe('EINVAL');
    expect(t.map(0n, 2, V, m.va).e).toBe('ok');
    expect(t.map(0n, 2, V, m.va).e).toBe('EINVAL');
    expect(t.c.proc.status().VmLck).toBe(8);
  });
});

describe('GET_INFO (§5.3)', () => {
  const caps = (raw: Uint8Array, off: number) => value(parseCapChain(raw, off));

  it('argsz growth: too small → CAPS flag, argsz raised, no chain; then MIGRATION, DMA_AVAIL, IOVA_RANGE', () => {
    const t = type1();
    expect(t.map(0n, 1).e).toBe('ok');
    const S = vfio_iommu_type1_info;
    expect(t.c.call(VFIO_IOMMU_GET_INFO, S, { argsz: 15 }).e).toBe('EINVAL');
    const first = t.c.call(VFIO_IOMMU_GET_INFO, S, {});
    expect(first.out).toMatchObject({ flags: K.VFIO_IOMMU_INFO_PGSIZES | K.VFIO_IOMMU_INFO_CAPS, cap_offset: 0, iova_pgsizes: t.iommu.pgsizeBitmap() });
    expect(first.out.argsz).toBe(24 + 32 + 16 + 16 + 2 * 16);
    const full = t.c.call(VFIO_IOMMU_GET_INFO, S, { argsz: first.out.argsz });
    expect(full.out.cap_offset).toBe(24);
    const chain = caps(full.raw, 24);
    expect(chain.map((x) => x.id)).toEqual([K.VFIO_IOMMU_TYPE1_INFO_CAP_MIGRATION, K.VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL, K.VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE]);
    const mig = vfio_iommu_type1_info_cap_migration.decode(full.raw.subarray(chain[0]!.offset));
    expect(mig).toMatchObject({ pgsize_bitmap: P, max_dirty_bitmap_size: 256n << 20n });
    expect(vfio_iommu_type1_info_dma_avail.decode(full.raw.subarray(chain[1]!.offset)).avail).toBe(65534);
    const iova = vfio_iommu_type1_info_cap_iova_range.decode(full.raw.subarray(chain[2]!.offset));
    expect(iova.nr_iovas).toBe(2);
    const r0 = vfio_iova_range.decode(full.raw.subarray(chain[2]!.offset + 16));
    const r1 = vfio_iova_range.decode(full.raw.subarray(chain[2]!.offset + 32));
    expect([r0.start, r0.end, r1.start]).toEqual([0n, MSI - 1n, MSI + 0x10_0000n]);
  });

  it('never writes past argsz (0xAA sweep from minsz to the full size)', () => {
    const t = type1();
    const S = vfio_iommu_type1_info;
    const need = t.c.call(VFIO_IOMMU_GET_INFO, S, {}).out.argsz;
    for (let argsz = 16; argsz <= need + 8; argsz++) {
      const r = t.c.call(VFIO_IOMMU_GET_INFO, S, { argsz }, true);
      expect(r.e).toBe('ok');
      expect(r.raw.subarray(argsz, need + 64).every((b) => b === 0xaa)).toBe(true);
      if (argsz >= 24) expect(r.out.cap_offset).toBe(argsz >= need ? 24 : 0);
    }
  });
});

describe('domains and replay', () => {
  it('a group on another IOMMU gets a new domain with every mapping replayed; leaving unmaps it there', () => {
    const t = type1();
    expect(t.map(0x20_0000n, 8).e).toBe('ok');
    const dsa = vfioGroupOf(t.k, DSA);
    value(t.c.container().attachGroup(dsa, t.c.proc));
    const d2 = t.iommu.domains[1]!.domain;
    expect(d2.iovaToPhys(0x20_0000)).toBe(t.domain().iovaToPhys(0x20_0000));
    expect(t.c.proc.status().VmLck).toBe(32);
    expect(t.map(0x40_0000n, 1).e).toBe('ok');
    expect(d2.iovaToPhys(0x40_0000)).not.toBeNull();
    t.c.container().detachGroup(dsa);
    expect(d2.iovaToPhys(0x20_0000)).toBeNull();
    expect(t.iommu.domains).toHaveLength(1);
    expect(t.c.proc.status().VmLck).toBe(36);
    t.c.container().detachGroup(t.g);
    expect(t.c.proc.status().VmLck).toBe(0);
    expect(t.c.container().iommuSet).toBe(false);
  });
});
