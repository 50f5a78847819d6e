import { describe, expect, it } from 'vitest';
import * as N from '../../src/uapi/ioctl.ts';
import { IOMMUFD_IOCTLS, lookupIoctl } from '../../src/uapi/ioctl-table.ts';

// Last mandatory field per ioctl, from the IOCTL_OP table in drivers/iommu/iommufd/main.c.
const MIN_SIZES: Record<string, [string, number]> = {
  IOMMU_DESTROY: ['id', 8],
  IOMMU_IOAS_ALLOC: ['out_ioas_id', 12],
  IOMMU_IOAS_ALLOW_IOVAS: ['allowed_iovas', 24],
  IOMMU_IOAS_COPY: ['src_iova', 40],
  IOMMU_IOAS_IOVA_RANGES: ['out_iova_alignment', 32],
  IOMMU_IOAS_MAP: ['iova', 40],
  IOMMU_IOAS_UNMAP: ['length', 24],
  IOMMU_OPTION: ['val64', 24],
  IOMMU_VFIO_IOAS: ['__reserved', 12],
  IOMMU_HWPT_ALLOC: ['__reserved', 24],
  IOMMU_GET_HW_INFO: ['__reserved', 32],
  IOMMU_HWPT_SET_DIRTY_TRACKING: ['__reserved', 16],
  IOMMU_HWPT_GET_DIRTY_BITMAP: ['data', 48],
  IOMMU_HWPT_INVALIDATE: ['__reserved', 32],
  IOMMU_FAULT_QUEUE_ALLOC: ['out_fault_fd', 16],
  IOMMU_IOAS_MAP_FILE: ['iova', 40],
  IOMMU_VIOMMU_ALLOC: ['out_viommu_id', 24],
  IOMMU_VDEVICE_ALLOC: ['virt_id', 24],
  IOMMU_IOAS_CHANGE_PROCESS: ['__reserved', 8],
  IOMMU_VEVENTQ_ALLOC: ['out_veventq_fd', 28],
  IOMMU_HW_QUEUE_ALLOC: ['length', 40],
};

describe('IOMMUFD_IOCTLS', () => {
  it('has one entry per command, in nr order, with main.c minimum sizes', () => {
    expect(IOMMUFD_IOCTLS.map((o) => o.nr)).toEqual(IOMMUFD_IOCTLS.map((_, i) => 0x80 + i));
    expect(Object.fromEntries(IOMMUFD_IOCTLS.map((o) => [o.name, [o.lastMandatory, o.minSize]]))).toEqual(MIN_SIZES);
    for (const o of IOMMUFD_IOCTLS) expect(o.struct.fields[0]?.name).toBe('size');
  });
});

describe('lookupIoctl', () => {
  it('finds table ops by full number', () => {
    const r = lookupIoctl(N.IOMMU_IOAS_MAP);
    expect(r.kind === 'iommufd' && r.op.name).toBe('IOMMU_IOAS_MAP');
  });

  it('routes VFIO container numbers to vfio_compat', () => {
    for (const cmd of [N.VFIO_GET_API_VERSION, N.VFIO_CHECK_EXTENSION, N.VFIO_SET_IOMMU, N.VFIO_IOMMU_GET_INFO,
      N.VFIO_IOMMU_MAP_DMA, N.VFIO_IOMMU_UNMAP_DMA]) {
      expect(lookupIoctl(cmd)).toEqual({ kind: 'vfio-compat', cmd });
    }
  });

  it('classifies what nobody handles as unknown (ENOTTY for the dispatcher)', () => {
    // The selftest's cmd_fail: nr 0x7f goes to vfio_compat, which does not know it.
    expect(lookupIoctl(N._IO(0x3b, 0x7f))).toMatchObject({ kind: 'unknown', routedTo: 'vfio-compat' });
    expect(lookupIoctl(N.VFIO_IOMMU_DIRTY_PAGES)).toMatchObject({ kind: 'unknown', routedTo: 'vfio-compat' });
    // Right nr, wrong direction/size bits: the table entry's ioctl_num differs.
    expect(lookupIoctl(N._IOWR(0x3b, 0x85, 40))).toMatchObject({ kind: 'unknown', routedTo: 'iommufd' });
    // Another type byte with an in-range nr also mismatches.
    expect(lookupIoctl(N._IO(0x3c, 0x80))).toMatchObject({ kind: 'unknown', routedTo: 'iommufd' });
  });

  it('sizes the table by CONFIG_IOMMUFD_TEST', () => {
    expect(lookupIoctl(N._IO(0x3b, 0x95))).toMatchObject({ kind: 'unknown', routedTo: 'vfio-compat' });
    expect(lookupIoctl(N._IO(0x3b, 0x95), { testCmd: true })).toMatchObject({ kind: 'unknown', routedTo: 'iommufd' });
    expect(lookupIoctl(N.IOMMU_TEST_CMD)).toMatchObject({ routedTo: 'vfio-compat' });
    expect(lookupIoctl(N.IOMMU_TEST_CMD, { testCmd: true })).toMatchObject({ routedTo: 'iommufd' });
  });
});
