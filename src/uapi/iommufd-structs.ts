// The argument and record structs of include/uapi/linux/iommufd.h (v6.17+ field order), laid out by the
// struct DSL. Every ioctl struct starts with `u32 size`. Where the header has a union
// (iommu_hw_info.in_data_type / out_data_type) the field carries the output name.

import { aligned_u64, bytes, defineStruct, s32, u16, u32, u8 } from './struct.ts';

export const iommu_destroy = defineStruct('iommu_destroy', { size: u32, id: u32 });

export const iommu_ioas_alloc = defineStruct('iommu_ioas_alloc', { size: u32, flags: u32, out_ioas_id: u32 });

export const iommu_iova_range = defineStruct('iommu_iova_range', { start: aligned_u64, last: aligned_u64 });

export const iommu_ioas_iova_ranges = defineStruct('iommu_ioas_iova_ranges', {
  size: u32, ioas_id: u32, num_iovas: u32, __reserved: u32, allowed_iovas: aligned_u64, out_iova_alignment: aligned_u64,
});

export const iommu_ioas_allow_iovas = defineStruct('iommu_ioas_allow_iovas', {
  size: u32, ioas_id: u32, num_iovas: u32, __reserved: u32, allowed_iovas: aligned_u64,
});

export const iommu_ioas_map = defineStruct('iommu_ioas_map', {
  size: u32, flags: u32, ioas_id: u32, __reserved: u32, user_va: aligned_u64, length: aligned_u64, iova: aligned_u64,
});

export const iommu_ioas_map_file = defineStruct('iommu_ioas_map_file', {
  size: u32, flags: u32, ioas_id: u32, fd: s32, start: aligned_u64, length: aligned_u64, iova: aligned_u64,
});

export const iommu_ioas_copy = defineStruct('iommu_ioas_copy', {
  size: u32, flags: u32, dst_ioas_id: u32, src_ioas_id: u32,
  length: aligned_u64, dst_iova: aligned_u64, src_iova: aligned_u64,
});

export const iommu_ioas_unmap = defineStruct('iommu_ioas_unmap', {
  size: u32, ioas_id: u32, iova: aligned_u64, length: aligned_u64,
});

export const iommu_option = defineStruct('iommu_option', {
  size: u32, option_id: u32, op: u16, __reserved: u16, object_id: u32, val64: aligned_u64,
});

export const iommu_vfio_ioas = defineStruct('iommu_vfio_ioas', { size: u32, ioas_id: u32, op: u16, __reserved: u16 });

export const iommu_hwpt_vtd_s1 = defineStruct('iommu_hwpt_vtd_s1', {
  flags: aligned_u64, pgtbl_addr: aligned_u64, addr_width: u32, __reserved: u32,
});

export const iommu_hwpt_alloc = defineStruct('iommu_hwpt_alloc', {
  size: u32, flags: u32, dev_id: u32, pt_id: u32, out_hwpt_id: u32, __reserved: u32,
  data_type: u32, data_len: u32, data_uptr: aligned_u64, fault_id: u32, __reserved2: u32,
});

export const iommu_hw_info_vtd = defineStruct('iommu_hw_info_vtd', {
  flags: u32, __reserved: u32, cap_reg: aligned_u64, ecap_reg: aligned_u64,
});

export const iommu_hw_info = defineStruct('iommu_hw_info', {
  size: u32, flags: u32, dev_id: u32, data_len: u32, data_uptr: aligned_u64,
  /** union { in_data_type; out_data_type; } */
  out_data_type: u32,
  out_max_pasid_log2: u8, __reserved: bytes(3), out_capabilities: aligned_u64,
});

export const iommu_hwpt_set_dirty_tracking = defineStruct('iommu_hwpt_set_dirty_tracking', {
  size: u32, flags: u32, hwpt_id: u32, __reserved: u32,
});

export const iommu_hwpt_get_dirty_bitmap = defineStruct('iommu_hwpt_get_dirty_bitmap', {
  size: u32, hwpt_id: u32, flags: u32, __reserved: u32,
  iova: aligned_u64, length: aligned_u64, page_size: aligned_u64, data: aligned_u64,
});

export const iommu_hwpt_vtd_s1_invalidate = defineStruct('iommu_hwpt_vtd_s1_invalidate', {
  addr: aligned_u64, npages: aligned_u64, flags: u32, __reserved: u32,
});

export const iommu_hwpt_invalidate = defineStruct('iommu_hwpt_invalidate', {
  size: u32, hwpt_id: u32, data_uptr: aligned_u64, data_type: u32, entry_len: u32, entry_num: u32, __reserved: u32,
});

export const iommu_hwpt_pgfault = defineStruct('iommu_hwpt_pgfault', {
  flags: u32, dev_id: u32, pasid: u32, grpid: u32, perm: u32, __reserved: u32,
  addr: aligned_u64, length: u32, cookie: u32,
});

export const iommu_hwpt_page_response = defineStruct('iommu_hwpt_page_response', { cookie: u32, code: u32 });

export const iommu_fault_alloc = defineStruct('iommu_fault_alloc', {
  size: u32, flags: u32, out_fault_id: u32, out_fault_fd: u32,
});

export const iommu_viommu_alloc = defineStruct('iommu_viommu_alloc', {
  size: u32, flags: u32, type: u32, dev_id: u32, hwpt_id: u32, out_viommu_id: u32,
  data_len: u32, __reserved: u32, data_uptr: aligned_u64,
});

export const iommu_vdevice_alloc = defineStruct('iommu_vdevice_alloc', {
  size: u32, viommu_id: u32, dev_id: u32, out_vdevice_id: u32, virt_id: aligned_u64,
});

export const iommu_ioas_change_process = defineStruct('iommu_ioas_change_process', { size: u32, __reserved: u32 });

export const iommufd_vevent_header = defineStruct('iommufd_vevent_header', { flags: u32, sequence: u32 });

export const iommu_veventq_alloc = defineStruct('iommu_veventq_alloc', {
  size: u32, flags: u32, viommu_id: u32, type: u32, veventq_depth: u32,
  out_veventq_id: u32, out_veventq_fd: u32, __reserved: u32,
});

export const iommu_hw_queue_alloc = defineStruct('iommu_hw_queue_alloc', {
  size: u32, flags: u32, viommu_id: u32, type: u32, index: u32, out_hw_queue_id: u32,
  nesting_parent_iova: aligned_u64, length: aligned_u64,
});

/** Every iommufd struct, by C name (for layout printing and tests). */
export const IOMMUFD_STRUCTS = {
  iommu_destroy, iommu_ioas_alloc, iommu_iova_range, iommu_ioas_iova_ranges, iommu_ioas_allow_iovas,
  iommu_ioas_map, iommu_ioas_map_file, iommu_ioas_copy, iommu_ioas_unmap, iommu_option, iommu_vfio_ioas,
  iommu_hwpt_vtd_s1, iommu_hwpt_alloc, iommu_hw_info_vtd, iommu_hw_info, iommu_hwpt_set_dirty_tracking,
  iommu_hwpt_get_dirty_bitmap, iommu_hwpt_vtd_s1_invalidate, iommu_hwpt_invalidate, iommu_hwpt_pgfault,
  iommu_hwpt_page_response, iommu_fault_alloc, iommu_viommu_alloc, iommu_vdevice_alloc,
  iommu_ioas_change_process, iommufd_vevent_header, iommu_veventq_alloc, iommu_hw_queue_alloc,
} as const;
