import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import * as N from '../../src/uapi/ioctl.ts';

describe('ioctl number encoding', () => {
  it('encodes _IO/_IOR/_IOW/_IOWR as asm-generic does on x86-64', () => {
    expect(N._IO(0x3b, 0x80)).toBe(0x3b80);
    // Known values: VFIO_DEVICE_FEATURE-style _IO, and classic encoded numbers.
    expect(N._IOR(0x54, 0x13, 4)).toBe(0x80045413); // FIONREAD-like _IOR('T', 0x13, int)
    expect(N._IOW(0x40, 0x01, 8)).toBe(0x40084001);
    expect(N._IOWR(0x3b, 0x85, 40)).toBe(0xc0283b85);
  });

  it('decodes what it encodes', () => {
    fc.assert(fc.property(
      fc.integer({ min: 0, max: 3 }), fc.integer({ min: 0, max: 255 }), fc.integer({ min: 0, max: 255 }),
      fc.integer({ min: 0, max: (1 << 14) - 1 }),
      (dir, type, nr, size) => {
        const cmd = N.ioc(dir, type, nr, size);
        expect(cmd).toBeGreaterThanOrEqual(0);
        expect(N.decodeIoctl(cmd)).toEqual({ dir, type, nr, size });
      },
    ));
  });

  it('rejects fields that do not fit', () => {
    expect(() => N.ioc(0, 0, 256, 0)).toThrow(RangeError);
    expect(() => N._IOR(0, 0, 1 << 14)).toThrow(RangeError);
  });

  it('numbers iommufd commands as _IO(";", 0x80 + n)', () => {
    const order = [
      N.IOMMU_DESTROY, N.IOMMU_IOAS_ALLOC, N.IOMMU_IOAS_ALLOW_IOVAS, N.IOMMU_IOAS_COPY, N.IOMMU_IOAS_IOVA_RANGES,
      N.IOMMU_IOAS_MAP, N.IOMMU_IOAS_UNMAP, N.IOMMU_OPTION, N.IOMMU_VFIO_IOAS, N.IOMMU_HWPT_ALLOC, N.IOMMU_GET_HW_INFO,
      N.IOMMU_HWPT_SET_DIRTY_TRACKING, N.IOMMU_HWPT_GET_DIRTY_BITMAP, N.IOMMU_HWPT_INVALIDATE,
      N.IOMMU_FAULT_QUEUE_ALLOC, N.IOMMU_IOAS_MAP_FILE, N.IOMMU_VIOMMU_ALLOC, N.IOMMU_VDEVICE_ALLOC,
      N.IOMMU_IOAS_CHANGE_PROCESS, N.IOMMU_VEVENTQ_ALLOC, N.IOMMU_HW_QUEUE_ALLOC,
    ];
    order.forEach((cmd, i) => expect(cmd).toBe(0x3b80 + i));
    expect(N.IOMMU_HW_QUEUE_ALLOC).toBe(0x3b94);
    expect(N.IOMMU_TEST_CMD).toBe(0x3ba0);
    // Decimal values asserted by the cloud-hypervisor iommufd-ioctls crate.
    expect([N.IOMMU_DESTROY, N.IOMMU_IOAS_ALLOC, N.IOMMU_IOAS_MAP, N.IOMMU_IOAS_UNMAP]).toEqual([15232, 15233, 15237, 15238]);
  });

  it('numbers VFIO commands as _IO(";", 100 + n), colliding across fd kinds', () => {
    const expected: [number, number][] = [
      [N.VFIO_GET_API_VERSION, 0], [N.VFIO_CHECK_EXTENSION, 1], [N.VFIO_SET_IOMMU, 2], [N.VFIO_GROUP_GET_STATUS, 3],
      [N.VFIO_GROUP_SET_CONTAINER, 4], [N.VFIO_GROUP_UNSET_CONTAINER, 5], [N.VFIO_GROUP_GET_DEVICE_FD, 6],
      [N.VFIO_DEVICE_GET_INFO, 7], [N.VFIO_DEVICE_GET_REGION_INFO, 8], [N.VFIO_DEVICE_GET_IRQ_INFO, 9],
      [N.VFIO_DEVICE_SET_IRQS, 10], [N.VFIO_DEVICE_RESET, 11], [N.VFIO_DEVICE_GET_PCI_HOT_RESET_INFO, 12],
      [N.VFIO_IOMMU_GET_INFO, 12], [N.VFIO_DEVICE_PCI_HOT_RESET, 13], [N.VFIO_IOMMU_MAP_DMA, 13],
      [N.VFIO_DEVICE_QUERY_GFX_PLANE, 14], [N.VFIO_IOMMU_UNMAP_DMA, 14], [N.VFIO_DEVICE_GET_GFX_DMABUF, 15],
      [N.VFIO_IOMMU_ENABLE, 15], [N.VFIO_DEVICE_IOEVENTFD, 16], [N.VFIO_IOMMU_DISABLE, 16],
      [N.VFIO_DEVICE_FEATURE, 17], [N.VFIO_IOMMU_DIRTY_PAGES, 17], [N.VFIO_DEVICE_BIND_IOMMUFD, 18],
      [N.VFIO_DEVICE_ATTACH_IOMMUFD_PT, 19], [N.VFIO_DEVICE_DETACH_IOMMUFD_PT, 20],
    ];
    for (const [cmd, n] of expected) expect(cmd).toBe(0x3b64 + n);
    expect(N.VFIO_DEVICE_DETACH_IOMMUFD_PT).toBe(0x3b78);
    expect(N.IOCTL_NAMES.get(0x3b70)).toEqual(['VFIO_DEVICE_GET_PCI_HOT_RESET_INFO', 'VFIO_IOMMU_GET_INFO']);
  });
});
