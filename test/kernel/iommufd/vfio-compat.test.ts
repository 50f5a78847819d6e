// The VFIO container API on an iommufd (vfio_compat.c) through the byte-level dispatch, as the kernel
// selftest drives it: the `iommufd` fixture's compat tests on a context with no IOAS, and the
// `vfio_compat_mock_domain` fixture (an IOAS with a device attached, IOMMU_VFIO_IOAS SET, VFIO_SET_IOMMU
// TYPE1v2 or TYPE1) for both variants.

import { describe, expect, it } from 'vitest';
import type { IommufdCtx } from '../../../src/kernel/iommufd/context.ts';
import { iommufdDeviceAttach, iommufdDeviceBind } from '../../../src/kernel/iommufd/device.ts';
import { compatIoasCreate, compatSetIommu } from '../../../src/kernel/iommufd/vfio-compat.ts';
import * as C from '../../../src/uapi/iommufd-consts.ts';
import {
  VFIO_CHECK_EXTENSION, VFIO_GET_API_VERSION, VFIO_IOMMU_DIRTY_PAGES, VFIO_IOMMU_GET_INFO, VFIO_IOMMU_MAP_DMA,
  VFIO_IOMMU_UNMAP_DMA, VFIO_SET_IOMMU,
} from '../../../src/uapi/ioctl.ts';
import { parseCapChain } from '../../../src/uapi/vfio-argsz.ts';
import * as K from '../../../src/uapi/vfio-consts.ts';
import {
  vfio_iommu_type1_dma_map, vfio_iommu_type1_dma_unmap, vfio_iommu_type1_info, vfio_iommu_type1_info_cap_iova_range,
  vfio_iommu_type1_info_dma_avail, vfio_iova_range,
} from '../../../src/uapi/vfio-structs.ts';
import { caller } from '../vfio/legacy-helpers.ts';
import { client, errno, value, world } from '../../uapi/dispatch-helpers.ts';

const PAGE = 4096;
const P = BigInt(PAGE);
const RW = K.VFIO_DMA_MAP_FLAG_READ | K.VFIO_DMA_MAP_FLAG_WRITE;
const NVME = '39:00.0';
const MSI = 0xfee0_0000n;

function bare() {
  const w = world();
  const c = client(w);
  const v = caller(c.proc, c.fd);
  const ctx = value(c.proc.fds.get(c.fd)).file as IommufdCtx;
  return { w, c, v, ctx };
}

/** vfio_compat_mock_domain: IOAS + attached device + VFIO_IOAS SET + SET_IOMMU(type). */
function mockDomain(type: number) {
  const b = bare();
  const ioas = b.c.ioasAlloc();
  const file = value(b.c.proc.fds.get(b.c.fd));
  const idev = value(iommufdDeviceBind(b.ctx, b.w.dev(NVME), { file }));
  value(iommufdDeviceAttach(idev, ioas));
  expect(b.c.call('IOMMU_VFIO_IOAS', { ioas_id: ioas, op: C.IOMMU_VFIO_IOAS_SET }).e).toBe('ok');
  expect(b.v.io(VFIO_SET_IOMMU, type)).toEqual({ ok: true, value: 0 });
  const map = (iova: bigint, size: bigint, va?: number) =>
    b.v.call(VFIO_IOMMU_MAP_DMA, vfio_iommu_type1_dma_map, { flags: RW, vaddr: BigInt(va ?? b.c.anon(Number(size / P))), iova, size }).e;
  const unmap = (iova: bigint, size: bigint, flags = 0) => {
    const r = b.v.call(VFIO_IOMMU_UNMAP_DMA, vfio_iommu_type1_dma_unmap, { flags, iova, size });
    return { e: r.e, size: r.out.size };
  };
  return { ...b, ioas, map, unmap };
}

/** A seeded shuffle (the selftest uses rand() after srand(1)). */
function shuffle<T>(xs: T[], seed = 1): T[] {
  let s = seed;
  const out = [...xs];
  for (let i = out.length - 1; i > 0; i--) {
    s = (s * 1103515245 + 12345) % 2 ** 31;
    const j = s % (i + 1);
    [out[i], out[j]] = [out[j] as T, out[i] as T];
  }
  return out;
}

describe('iommufd fixture: the compat layer with no IOAS', () => {
  it('simple_ioctls: API version 0, TYPE1v2 supported', () => {
    const { v } = bare();
    expect(v.io(VFIO_GET_API_VERSION)).toEqual({ ok: true, value: 0 });
    expect(v.io(VFIO_CHECK_EXTENSION, K.VFIO_TYPE1v2_IOMMU)).toEqual({ ok: true, value: 1 });
  });

  it('unmap_cmd / map_cmd / info_cmd: argsz 1 and flags 1<<31 are EINVAL, then ENODEV', () => {
    const { v } = bare();
    const U = vfio_iommu_type1_dma_unmap;
    expect(v.call(VFIO_IOMMU_UNMAP_DMA, U, { argsz: 1 }).e).toBe('EINVAL');
    expect(v.call(VFIO_IOMMU_UNMAP_DMA, U, { flags: 2 ** 31 }).e).toBe('EINVAL');
    expect(v.call(VFIO_IOMMU_UNMAP_DMA, U, {}).e).toBe('ENODEV');
    const M = vfio_iommu_type1_dma_map;
    expect(v.call(VFIO_IOMMU_MAP_DMA, M, { argsz: 1 }).e).toBe('EINVAL');
    expect(v.call(VFIO_IOMMU_MAP_DMA, M, { flags: 2 ** 31 }).e).toBe('EINVAL');
    expect(v.call(VFIO_IOMMU_MAP_DMA, M, {}).e).toBe('ENODEV');
    expect(v.call(VFIO_IOMMU_GET_INFO, vfio_iommu_type1_info, { argsz: 1 }).e).toBe('EINVAL');
    expect(v.call(VFIO_IOMMU_GET_INFO, vfio_iommu_type1_info, {}).e).toBe('ENODEV');
  });

  it('set_iommu_cmd: ENODEV without a compat IOAS; other types EINVAL; DMA_CC_IOMMU asks for the IOAS', () => {
    const { v } = bare();
    expect(errno(v.io(VFIO_SET_IOMMU, K.VFIO_TYPE1v2_IOMMU))).toBe('ENODEV');
    expect(errno(v.io(VFIO_SET_IOMMU, K.VFIO_SPAPR_TCE_IOMMU))).toBe('EINVAL');
    expect(errno(v.io(VFIO_CHECK_EXTENSION, K.VFIO_DMA_CC_IOMMU))).toBe('ENODEV');
    expect(value(v.io(VFIO_CHECK_EXTENSION, K.VFIO_UPDATE_VADDR))).toBe(0);
    expect(value(v.io(VFIO_CHECK_EXTENSION, K.VFIO_NOIOMMU_IOMMU))).toBe(1);
    expect(errno(v.io(VFIO_IOMMU_DIRTY_PAGES))).toBe('ENOTTY');
  });

  it('vfio_ioas: GET without one is ENODEV, SET of a bad ID ENOENT, then set/get/clear', () => {
    const { c } = bare();
    expect(c.call('IOMMU_VFIO_IOAS', { op: C.IOMMU_VFIO_IOAS_GET }).e).toBe('ENODEV');
    expect(c.call('IOMMU_VFIO_IOAS', { ioas_id: 55, op: C.IOMMU_VFIO_IOAS_SET }).e).toBe('ENOENT');
    const ioas = c.ioasAlloc();
    expect(c.call('IOMMU_VFIO_IOAS', { ioas_id: ioas, op: C.IOMMU_VFIO_IOAS_SET }).e).toBe('ok');
    const got = c.call('IOMMU_VFIO_IOAS', { op: C.IOMMU_VFIO_IOAS_GET });
    expect(got.out.ioas_id).toBe(ioas);
    expect(c.call('IOMMU_VFIO_IOAS', { op: C.IOMMU_VFIO_IOAS_CLEAR }).e).toBe('ok');
    expect(c.call('IOMMU_VFIO_IOAS', { op: C.IOMMU_VFIO_IOAS_GET }).e).toBe('ENODEV');
  });

  it('a VFIO group joining creates the compat IOAS once; no-IOMMU mode needs CAP_SYS_RAWIO and then forbids it', () => {
    const { ctx, c, v } = bare();
    const id = value(compatIoasCreate(ctx));
    expect(value(compatIoasCreate(ctx))).toBe(id);
    expect(c.call('IOMMU_VFIO_IOAS', { op: C.IOMMU_VFIO_IOAS_GET }).out.ioas_id).toBe(id);
    expect(value(v.io(VFIO_CHECK_EXTENSION, K.VFIO_DMA_CC_IOMMU))).toBe(1);
    const other = bare();
    other.c.proc.dropCapability('CAP_SYS_RAWIO');
    expect(errno(compatSetIommu(other.ctx, other.c.proc, K.VFIO_NOIOMMU_IOMMU))).toBe('EPERM');
    other.c.proc.grantCapability('CAP_SYS_RAWIO');
    expect(other.v.io(VFIO_SET_IOMMU, K.VFIO_NOIOMMU_IOMMU)).toEqual({ ok: true, value: 0 });
    expect(value(other.v.io(VFIO_CHECK_EXTENSION, K.VFIO_TYPE1v2_IOMMU))).toBe(0);
    expect(errno(compatIoasCreate(other.ctx))).toBe('EINVAL');
  });
});

for (const [variant, type] of [['Ver1v2', K.VFIO_TYPE1v2_IOMMU], ['Ver1v0', K.VFIO_TYPE1_IOMMU]] as const) {
  describe(`vfio_compat_mock_domain ${variant}`, () => {
    it('option_huge_pages: TYPE1 turns HUGE_PAGES off, TYPE1v2 leaves it on', () => {
      const t = mockDomain(type);
      const r = t.c.call('IOMMU_OPTION', { option_id: C.IOMMU_OPTION_HUGE_PAGES, op: C.IOMMU_OPTION_OP_GET, object_id: t.ioas });
      expect(r.e).toBe('ok');
      expect(r.out.val64).toBe(type === K.VFIO_TYPE1_IOMMU ? 0n : 1n);
    });

    it('get_info: pre-capability argsz, the size query, and a byte-by-byte sweep that never writes past argsz', () => {
      const t = mockDomain(type);
      const S = vfio_iommu_type1_info;
      const caps = K.VFIO_IOMMU_INFO_PGSIZES | K.VFIO_IOMMU_INFO_CAPS;
      const pre = t.v.call(VFIO_IOMMU_GET_INFO, S, { argsz: 16 }, true);
      expect(pre.e).toBe('ok');
      expect(pre.out.iova_pgsizes).not.toBe(0n);
      expect(pre.out.flags).toBe(caps);
      expect(pre.raw.subarray(16, 64).every((b) => b === 0xaa)).toBe(true);
      const q = t.v.call(VFIO_IOMMU_GET_INFO, S, {}, true);
      expect(q.out).toMatchObject({ flags: caps, cap_offset: 0 });
      const caplen = q.out.argsz;
      expect(caplen).toBe(24 + 16 + 16 + 2 * 16);
      for (let i = 16; i <= caplen; i++) {
        const r = t.v.call(VFIO_IOMMU_GET_INFO, S, { argsz: i }, true);
        expect(r.e).toBe('ok');
        expect(r.raw.subarray(i, caplen + 64).every((b) => b === 0xaa)).toBe(true);
        expect(r.out.flags).toBe(caps);
        if (i < 24 || r.out.cap_offset === 0) continue;
        const chain = value(parseCapChain(r.raw, r.out.cap_offset));
        expect(chain.map((x) => x.id)).toEqual([K.VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL, K.VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE]);
        expect(vfio_iommu_type1_info_dma_avail.decode(r.raw.subarray(chain[0]!.offset)).avail).toBe(0xffff_ffff);
        const at = chain[1]!.offset;
        expect(vfio_iommu_type1_info_cap_iova_range.decode(r.raw.subarray(at)).nr_iovas).toBe(2);
        const r0 = vfio_iova_range.decode(r.raw.subarray(at + 16));
        const r1 = vfio_iova_range.decode(r.raw.subarray(at + 32));
        expect([r0.start, r0.end, r1.start]).toEqual([0n, MSI - 1n, MSI + 0x10_0000n]);
      }
    });

    it('map: map/unmap, an empty range succeeds with 0, the UNMAP_ALL rules, VADDR is EINVAL', () => {
      const t = mockDomain(type);
      expect(t.map(0x10_0000n, 4n * P)).toBe('ok');
      expect(t.unmap(0x10_0000n, 4n * P)).toEqual({ e: 'ok', size: 4n * P });
      expect(t.unmap(0x10_0000n, 4n * P)).toEqual({ e: 'ok', size: 0n });
      expect(t.map(0x10_0000n, 4n * P)).toBe('ok');
      expect(t.unmap(P, 0n, K.VFIO_DMA_UNMAP_FLAG_ALL).e).toBe('EINVAL');
      expect(t.unmap(0n, P, K.VFIO_DMA_UNMAP_FLAG_ALL).e).toBe('EINVAL');
      expect(t.unmap(0n, 0n, K.VFIO_DMA_UNMAP_FLAG_ALL)).toEqual({ e: 'ok', size: 4n * P });
      expect(t.unmap(0n, P, K.VFIO_DMA_UNMAP_FLAG_VADDR).e).toBe('EINVAL');
      const va = t.c.anon(1);
      expect(t.v.call(VFIO_IOMMU_MAP_DMA, vfio_iommu_type1_dma_map, { flags: K.VFIO_DMA_MAP_FLAG_VADDR, vaddr: BigInt(va), iova: 0n, size: P }).e).toBe('EINVAL');
      expect(t.map(MSI, P)).toBe('EINVAL');
      expect(t.map(0x10_0000n, P)).toBe('ok');
      expect(t.map(0x10_0000n, P)).toBe('EEXIST');
    });

    it('map: 16 single-page maps unmapped in random order', () => {
      const t = mockDomain(type);
      const va = t.c.anon(16);
      for (let i = 0; i < 16; i++) expect(t.map(0x40_0000n + BigInt(i) * P, P, va + i * PAGE)).toBe('ok');
      for (const i of shuffle([...Array(16).keys()])) expect(t.unmap(0x40_0000n + BigInt(i) * P, P)).toEqual({ e: 'ok', size: P });
      expect(t.unmap(0n, 0n, K.VFIO_DMA_UNMAP_FLAG_ALL)).toEqual({ e: 'ok', size: 0n });
    });

    it('huge_map: a 2 x 2 MiB map unmapped in 16 random chunks: TYPE1 splits, TYPE1v2 is ENOENT', () => {
      const t = mockDomain(type);
      const size = 2n * 0x20_0000n;
      expect(t.map(0x20_0000n, size)).toBe('ok');
      const chunk = size / 16n;
      for (const i of shuffle([...Array(16).keys()])) {
        const r = t.unmap(0x20_0000n + BigInt(i) * chunk, chunk);
        if (type === K.VFIO_TYPE1_IOMMU) expect(r).toEqual({ e: 'ok', size: chunk });
        else expect(r.e).toBe('ENOENT');
      }
    });
  });
}

describe('compat MAP_DMA errors', () => {
  it('EFAULT for a bad argument pointer, ENOMEM over RLIMIT_MEMLOCK (USER mode here), EINVAL misaligned', () => {
    const t = mockDomain(K.VFIO_TYPE1v2_IOMMU);
    expect(errno(t.v.io(VFIO_IOMMU_MAP_DMA, 0))).toBe('EFAULT');
    expect(errno(t.v.io(VFIO_IOMMU_UNMAP_DMA, 0))).toBe('EFAULT');
    expect(errno(t.v.io(VFIO_IOMMU_GET_INFO, 0))).toBe('EFAULT');
    expect(t.map(0x800n, P)).toBe('EINVAL');
    expect(t.map(0n, 8192n * P)).toBe('ENOMEM');
    expect(t.map(0n, P)).toBe('ok');
  });
});

describe('SET_IOMMU(TYPE1) after mapping', () => {
  it('is EINVAL once a domain holds areas (large pages cannot be turned off any more)', () => {
    const t = mockDomain(K.VFIO_TYPE1v2_IOMMU);
    expect(t.map(0n, P)).toBe('ok');
    expect(errno(t.v.io(VFIO_SET_IOMMU, K.VFIO_TYPE1_IOMMU))).toBe('EINVAL');
  });
});
