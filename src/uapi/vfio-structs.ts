// The argument structs of include/uapi/linux/vfio.h, laid out by the struct DSL. Every ioctl struct starts
// with `u32 argsz`. Capability structs embed `struct vfio_info_cap_header` (id, version, next) flattened
// as their first three fields. Flexible array members (`data[]`, `iova_ranges[]`, `areas[]`) follow the
// struct and are not fields.

import { aligned_u64, defineStruct, s32, u16, u32, u64 } from './struct.ts';

const capHeader = { id: u16, version: u16, next: u32 } as const;

export const vfio_info_cap_header = defineStruct('vfio_info_cap_header', capHeader);

export const vfio_group_status = defineStruct('vfio_group_status', { argsz: u32, flags: u32 });

// include/uapi/linux/vfio.h: cap_offset is followed by a __u32 pad (24 bytes, 8-byte multiple).
export const vfio_device_info = defineStruct('vfio_device_info', {
  argsz: u32, flags: u32, num_regions: u32, num_irqs: u32, cap_offset: u32, pad: u32,
});

export const vfio_region_info = defineStruct('vfio_region_info', {
  argsz: u32, flags: u32, index: u32, cap_offset: u32, size: aligned_u64, offset: aligned_u64,
});

export const vfio_region_sparse_mmap_area = defineStruct('vfio_region_sparse_mmap_area', {
  offset: aligned_u64, size: aligned_u64,
});

export const vfio_region_info_cap_sparse_mmap = defineStruct('vfio_region_info_cap_sparse_mmap', {
  ...capHeader, nr_areas: u32, reserved: u32,
});

export const vfio_region_info_cap_type = defineStruct('vfio_region_info_cap_type', {
  ...capHeader, type: u32, subtype: u32,
});

export const vfio_irq_info = defineStruct('vfio_irq_info', { argsz: u32, flags: u32, index: u32, count: u32 });

/** Followed by `u8 data[]` (bools or s32 eventfds, per flags). */
export const vfio_irq_set = defineStruct('vfio_irq_set', {
  argsz: u32, flags: u32, index: u32, start: u32, count: u32,
});

export const vfio_iommu_type1_info = defineStruct('vfio_iommu_type1_info', {
  argsz: u32, flags: u32, iova_pgsizes: aligned_u64, cap_offset: u32, pad: u32,
});

export const vfio_iova_range = defineStruct('vfio_iova_range', { start: u64, end: u64 });

/** Followed by `struct vfio_iova_range iova_ranges[nr_iovas]`. */
export const vfio_iommu_type1_info_cap_iova_range = defineStruct('vfio_iommu_type1_info_cap_iova_range', {
  ...capHeader, nr_iovas: u32, reserved: u32,
});

export const vfio_iommu_type1_info_cap_migration = defineStruct('vfio_iommu_type1_info_cap_migration', {
  ...capHeader, flags: u32, pgsize_bitmap: u64, max_dirty_bitmap_size: u64,
});

export const vfio_iommu_type1_info_dma_avail = defineStruct('vfio_iommu_type1_info_dma_avail', {
  ...capHeader, avail: u32,
});

export const vfio_iommu_type1_dma_map = defineStruct('vfio_iommu_type1_dma_map', {
  argsz: u32, flags: u32, vaddr: u64, iova: u64, size: u64,
});

/** Followed by `u8 data[]` (a struct vfio_bitmap with GET_DIRTY_BITMAP). */
export const vfio_iommu_type1_dma_unmap = defineStruct('vfio_iommu_type1_dma_unmap', {
  argsz: u32, flags: u32, iova: u64, size: u64,
});

/** `token_uuid_ptr` exists only in the newest header (VFIO_DEVICE_BIND_FLAG_TOKEN); minsz stops at out_devid. */
export const vfio_device_bind_iommufd = defineStruct('vfio_device_bind_iommufd', {
  argsz: u32, flags: u32, iommufd: s32, out_devid: u32, token_uuid_ptr: aligned_u64,
});

export const vfio_device_attach_iommufd_pt = defineStruct('vfio_device_attach_iommufd_pt', {
  argsz: u32, flags: u32, pt_id: u32, pasid: u32,
});

export const vfio_device_detach_iommufd_pt = defineStruct('vfio_device_detach_iommufd_pt', {
  argsz: u32, flags: u32, pasid: u32,
});

/** Followed by `u8 data[]` (the feature's payload). */
export const vfio_device_feature = defineStruct('vfio_device_feature', { argsz: u32, flags: u32 });

/** Every VFIO struct, by C name. */
export const VFIO_STRUCTS = {
  vfio_info_cap_header, vfio_group_status, vfio_device_info, vfio_region_info, vfio_region_sparse_mmap_area,
  vfio_region_info_cap_sparse_mmap, vfio_region_info_cap_type, vfio_irq_info, vfio_irq_set,
  vfio_iommu_type1_info, vfio_iova_range, vfio_iommu_type1_info_cap_iova_range,
  vfio_iommu_type1_info_cap_migration, vfio_iommu_type1_info_dma_avail, vfio_iommu_type1_dma_map,
  vfio_iommu_type1_dma_unmap, vfio_device_bind_iommufd, vfio_device_attach_iommufd_pt,
  vfio_device_detach_iommufd_pt, vfio_device_feature,
} as const;
