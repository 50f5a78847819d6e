import { describe, expect, it } from 'vitest';
import { MAP_ANONYMOUS, MAP_FIXED, MAP_PRIVATE, PROT_READ, PROT_WRITE } from '../../src/kernel/mm/mman.ts';
import * as N from '../../src/uapi/ioctl.ts';
import {
  buildCapChain, copyArgszFromUser, copyArgszToUser, parseCapChain, placeCapChain, VFIO_ARGSZ_IOCTLS, vfioArgszOp,
  writeCapChain, type VfioCap,
} from '../../src/uapi/vfio-argsz.ts';
import { VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE, VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL } from '../../src/uapi/vfio-consts.ts';
import {
  vfio_info_cap_header, vfio_iommu_type1_info, vfio_iommu_type1_info_cap_iova_range,
  vfio_iommu_type1_info_dma_avail, vfio_iova_range,
} from '../../src/uapi/vfio-structs.ts';
import { errno, machine, P, readBack, value } from '../kernel/mm/helpers.ts';

function setup() {
  const p = machine(32).table.spawn();
  const va = value(p.mm.mmap(0x40_0000, 2 * P, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, null, 0));
  return { mm: p.mm, va };
}

/** The two caps vfio_iommu_type1 reports: one IOVA range, and DMA_AVAIL. */
function type1Caps(): VfioCap[] {
  const hdr = vfio_iommu_type1_info_cap_iova_range.sizeof - vfio_info_cap_header.sizeof;
  const ranges = new Uint8Array(hdr + vfio_iova_range.sizeof);
  ranges.set(vfio_iommu_type1_info_cap_iova_range.encode({ nr_iovas: 1 }).subarray(vfio_info_cap_header.sizeof));
  ranges.set(vfio_iova_range.encode({ start: 0n, end: 0xfedf_ffffn }), hdr);
  const avail = vfio_iommu_type1_info_dma_avail.encode({ avail: 65535 }).subarray(vfio_info_cap_header.sizeof, 12);
  return [
    { id: VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE, version: 1, body: ranges },
    { id: VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL, version: 1, body: avail },
  ];
}

describe('VFIO minsz table', () => {
  it('uses offsetofend of the last mandatory field', () => {
    const got = Object.fromEntries(VFIO_ARGSZ_IOCTLS.map((o) => [o.name, o.minsz]));
    expect(got).toEqual({
      VFIO_GROUP_GET_STATUS: 8, VFIO_IOMMU_GET_INFO: 16, VFIO_IOMMU_MAP_DMA: 32, VFIO_IOMMU_UNMAP_DMA: 24,
      VFIO_DEVICE_GET_INFO: 16, VFIO_DEVICE_GET_REGION_INFO: 32, VFIO_DEVICE_GET_IRQ_INFO: 16,
      VFIO_DEVICE_SET_IRQS: 20, VFIO_DEVICE_FEATURE: 8, VFIO_DEVICE_BIND_IOMMUFD: 16,
      VFIO_DEVICE_ATTACH_IOMMUFD_PT: 12, VFIO_DEVICE_DETACH_IOMMUFD_PT: 8,
    });
  });

  it('dispatches colliding numbers by fd kind', () => {
    expect(vfioArgszOp('container', 0x3b70)?.name).toBe('VFIO_IOMMU_GET_INFO');
    expect(vfioArgszOp('device', 0x3b70)).toBeUndefined(); // GET_PCI_HOT_RESET_INFO: not modelled here
    expect(vfioArgszOp('device', N.VFIO_DEVICE_FEATURE)?.name).toBe('VFIO_DEVICE_FEATURE');
    expect(vfioArgszOp('container', N.VFIO_IOMMU_DIRTY_PAGES)).toBeUndefined();
  });
});

describe('copyArgszFromUser', () => {
  it('EINVAL when argsz < minsz, EFAULT when unreadable, zero past what it reads', () => {
    const { mm, va } = setup();
    value(mm.write(va, vfio_iommu_type1_info.encode({ argsz: 15, flags: 9, cap_offset: 77 })));
    expect(errno(copyArgszFromUser(mm, va, vfio_iommu_type1_info, 16))).toBe('EINVAL');
    value(mm.write(va, vfio_iommu_type1_info.encode({ argsz: 24, flags: 9, cap_offset: 77 })));
    const r = value(copyArgszFromUser(mm, va, vfio_iommu_type1_info, 16));
    expect(r.argsz).toBe(24);
    expect(r.value.cap_offset).toBe(0);
    expect(value(copyArgszFromUser(mm, va, vfio_iommu_type1_info, 16, 20)).value.cap_offset).toBe(77);
    expect(errno(copyArgszFromUser(mm, 0x1000_0000, vfio_iommu_type1_info, 16))).toBe('EFAULT');
    expect(errno(copyArgszFromUser(mm, va + 2 * P - 8, vfio_iommu_type1_info, 16))).toBe('EFAULT');
  });

  it('writes back only n bytes', () => {
    const { mm, va } = setup();
    value(mm.write(va, new Uint8Array(24).fill(0xaa)));
    value(copyArgszToUser(mm, va, vfio_iommu_type1_info, { ...vfio_iommu_type1_info.zero(), argsz: 16 }, 16));
    expect([...readBack(mm, va, 24).subarray(16)]).toEqual(new Array(8).fill(0xaa));
  });
});

describe('capability chains', () => {
  it('pads caps to 8 bytes and links next relative to the info struct', () => {
    const chain = buildCapChain(type1Caps(), 24);
    // IOVA range cap: 16 + 16 bytes; DMA_AVAIL: 12 → 16.
    expect(chain.length).toBe(32 + 16);
    const buf = new Uint8Array(24 + chain.length);
    buf.set(chain, 24);
    expect(value(parseCapChain(buf, 24))).toEqual([
      { id: VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE, version: 1, offset: 24 },
      { id: VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL, version: 1, offset: 56 },
    ]);
    expect(vfio_iova_range.decode(buf.subarray(24 + 16, 24 + 32)).end).toBe(0xfedf_ffffn);
    expect(errno(parseCapChain(buf, 70))).toBe('EINVAL');
  });

  it('leaves caps out and reports the needed argsz when the user buffer is too small', () => {
    const small = placeCapChain(24, 24, type1Caps());
    expect(small).toEqual({ argsz: 72, capOffset: 0, hasCaps: true, chain: null });
    const exact = placeCapChain(24, 72, type1Caps());
    expect(exact.argsz).toBe(72);
    expect(exact.capOffset).toBe(24);
    expect(exact.chain?.length).toBe(48);
    expect(placeCapChain(24, 100, [])).toEqual({ argsz: 100, capOffset: 0, hasCaps: false, chain: null });
  });

  it('writes the chain after the struct in user memory (the two-call protocol)', () => {
    const { mm, va } = setup();
    // First call: argsz = sizeof → told the size. Second call: argsz = needed → struct + chain.
    const first = placeCapChain(24, 24, type1Caps());
    value(writeCapChain(mm, va, 24, first));
    const second = placeCapChain(24, first.argsz, type1Caps());
    value(writeCapChain(mm, va, 24, second));
    value(copyArgszToUser(mm, va, vfio_iommu_type1_info,
      { argsz: second.argsz, flags: 3, iova_pgsizes: 0x1000n, cap_offset: second.capOffset, pad: 0 }, 24));
    const all = readBack(mm, va, second.argsz);
    const info = vfio_iommu_type1_info.decode(all);
    expect(value(parseCapChain(all, info.cap_offset)).map((c) => c.id)).toEqual([1, 3]);
    expect(errno(writeCapChain(mm, 0x1000_0000, 24, second))).toBe('EFAULT');
  });
});
