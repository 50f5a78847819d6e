// Every uAPI struct's sizeof and field offsets, pinned to the values of include/uapi/linux/iommufd.h and
// include/uapi/linux/vfio.h (x86-64). A failure here means the ABI a C program sees would differ.

import { describe, expect, it } from 'vitest';
import { IOMMUFD_STRUCTS } from '../../src/uapi/iommufd-structs.ts';
import type { StructDef } from '../../src/uapi/struct.ts';
import { VFIO_STRUCTS } from '../../src/uapi/vfio-structs.ts';

type Layout = readonly [sizeof: number, offsets: Readonly<Record<string, number>>];

const IOMMUFD: Record<keyof typeof IOMMUFD_STRUCTS, Layout> = {
  iommu_destroy: [8, { size: 0, id: 4 }],
  iommu_ioas_alloc: [12, { size: 0, flags: 4, out_ioas_id: 8 }],
  iommu_iova_range: [16, { start: 0, last: 8 }],
  iommu_ioas_iova_ranges: [32, { size: 0, ioas_id: 4, num_iovas: 8, __reserved: 12, allowed_iovas: 16, out_iova_alignment: 24 }],
  iommu_ioas_allow_iovas: [24, { size: 0, ioas_id: 4, num_iovas: 8, __reserved: 12, allowed_iovas: 16 }],
  iommu_ioas_map: [40, { size: 0, flags: 4, ioas_id: 8, __reserved: 12, user_va: 16, length: 24, iova: 32 }],
  iommu_ioas_map_file: [40, { size: 0, flags: 4, ioas_id: 8, fd: 12, start: 16, length: 24, iova: 32 }],
  iommu_ioas_copy: [40, { size: 0, flags: 4, dst_ioas_id: 8, src_ioas_id: 12, length: 16, dst_iova: 24, src_iova: 32 }],
  iommu_ioas_unmap: [24, { size: 0, ioas_id: 4, iova: 8, length: 16 }],
  iommu_option: [24, { size: 0, option_id: 4, op: 8, __reserved: 10, object_id: 12, val64: 16 }],
  iommu_vfio_ioas: [12, { size: 0, ioas_id: 4, op: 8, __reserved: 10 }],
  iommu_hwpt_vtd_s1: [24, { flags: 0, pgtbl_addr: 8, addr_width: 16, __reserved: 20 }],
  iommu_hwpt_alloc: [48, {
    size: 0, flags: 4, dev_id: 8, pt_id: 12, out_hwpt_id: 16, __reserved: 20, data_type: 24, data_len: 28,
    data_uptr: 32, fault_id: 40, __reserved2: 44,
  }],
  iommu_hw_info_vtd: [24, { flags: 0, __reserved: 4, cap_reg: 8, ecap_reg: 16 }],
  iommu_hw_info: [40, {
    size: 0, flags: 4, dev_id: 8, data_len: 12, data_uptr: 16, out_data_type: 24, out_max_pasid_log2: 28,
    __reserved: 29, out_capabilities: 32,
  }],
  iommu_hwpt_set_dirty_tracking: [16, { size: 0, flags: 4, hwpt_id: 8, __reserved: 12 }],
  iommu_hwpt_get_dirty_bitmap: [48, {
    size: 0, hwpt_id: 4, flags: 8, __reserved: 12, iova: 16, length: 24, page_size: 32, data: 40,
  }],
  iommu_hwpt_vtd_s1_invalidate: [24, { addr: 0, npages: 8, flags: 16, __reserved: 20 }],
  iommu_hwpt_invalidate: [32, { size: 0, hwpt_id: 4, data_uptr: 8, data_type: 16, entry_len: 20, entry_num: 24, __reserved: 28 }],
  iommu_hwpt_pgfault: [40, { flags: 0, dev_id: 4, pasid: 8, grpid: 12, perm: 16, __reserved: 20, addr: 24, length: 32, cookie: 36 }],
  iommu_hwpt_page_response: [8, { cookie: 0, code: 4 }],
  iommu_fault_alloc: [16, { size: 0, flags: 4, out_fault_id: 8, out_fault_fd: 12 }],
  iommu_viommu_alloc: [40, {
    size: 0, flags: 4, type: 8, dev_id: 12, hwpt_id: 16, out_viommu_id: 20, data_len: 24, __reserved: 28, data_uptr: 32,
  }],
  iommu_vdevice_alloc: [24, { size: 0, viommu_id: 4, dev_id: 8, out_vdevice_id: 12, virt_id: 16 }],
  iommu_ioas_change_process: [8, { size: 0, __reserved: 4 }],
  iommufd_vevent_header: [8, { flags: 0, sequence: 4 }],
  iommu_veventq_alloc: [32, {
    size: 0, flags: 4, viommu_id: 8, type: 12, veventq_depth: 16, out_veventq_id: 20, out_veventq_fd: 24, __reserved: 28,
  }],
  iommu_hw_queue_alloc: [40, {
    size: 0, flags: 4, viommu_id: 8, type: 12, index: 16, out_hw_queue_id: 20, nesting_parent_iova: 24, length: 32,
  }],
};

const VFIO: Record<keyof typeof VFIO_STRUCTS, Layout> = {
  vfio_info_cap_header: [8, { id: 0, version: 2, next: 4 }],
  vfio_group_status: [8, { argsz: 0, flags: 4 }],
  vfio_device_info: [24, { argsz: 0, flags: 4, num_regions: 8, num_irqs: 12, cap_offset: 16, pad: 20 }],
  vfio_region_info: [32, { argsz: 0, flags: 4, index: 8, cap_offset: 12, size: 16, offset: 24 }],
  vfio_region_sparse_mmap_area: [16, { offset: 0, size: 8 }],
  vfio_region_info_cap_sparse_mmap: [16, { id: 0, version: 2, next: 4, nr_areas: 8, reserved: 12 }],
  vfio_region_info_cap_type: [16, { id: 0, version: 2, next: 4, type: 8, subtype: 12 }],
  vfio_irq_info: [16, { argsz: 0, flags: 4, index: 8, count: 12 }],
  vfio_irq_set: [20, { argsz: 0, flags: 4, index: 8, start: 12, count: 16 }],
  vfio_iommu_type1_info: [24, { argsz: 0, flags: 4, iova_pgsizes: 8, cap_offset: 16, pad: 20 }],
  vfio_iova_range: [16, { start: 0, end: 8 }],
  vfio_iommu_type1_info_cap_iova_range: [16, { id: 0, version: 2, next: 4, nr_iovas: 8, reserved: 12 }],
  vfio_iommu_type1_info_cap_migration: [32, { id: 0, version: 2, next: 4, flags: 8, pgsize_bitmap: 16, max_dirty_bitmap_size: 24 }],
  vfio_iommu_type1_info_dma_avail: [12, { id: 0, version: 2, next: 4, avail: 8 }],
  vfio_iommu_type1_dma_map: [32, { argsz: 0, flags: 4, vaddr: 8, iova: 16, size: 24 }],
  vfio_iommu_type1_dma_unmap: [24, { argsz: 0, flags: 4, iova: 8, size: 16 }],
  vfio_device_bind_iommufd: [24, { argsz: 0, flags: 4, iommufd: 8, out_devid: 12, token_uuid_ptr: 16 }],
  vfio_device_attach_iommufd_pt: [16, { argsz: 0, flags: 4, pt_id: 8, pasid: 12 }],
  vfio_device_detach_iommufd_pt: [12, { argsz: 0, flags: 4, pasid: 8 }],
  vfio_device_feature: [8, { argsz: 0, flags: 4 }],
};

function check(struct: StructDef, [size, offsets]: Layout): void {
  expect(struct.sizeof, `sizeof(struct ${struct.name})`).toBe(size);
  expect(Object.fromEntries(struct.fields.map((f) => [f.name, f.offset])), struct.describe()).toEqual(offsets);
}

describe('iommufd struct layouts (include/uapi/linux/iommufd.h)', () => {
  for (const [name, layout] of Object.entries(IOMMUFD)) {
    it(name, () => check(IOMMUFD_STRUCTS[name as keyof typeof IOMMUFD_STRUCTS], layout));
  }
  it('covers every struct', () => expect(Object.keys(IOMMUFD).sort()).toEqual(Object.keys(IOMMUFD_STRUCTS).sort()));
});

describe('VFIO struct layouts (include/uapi/linux/vfio.h)', () => {
  for (const [name, layout] of Object.entries(VFIO)) {
    it(name, () => check(VFIO_STRUCTS[name as keyof typeof VFIO_STRUCTS], layout));
  }
  it('covers every struct', () => expect(Object.keys(VFIO).sort()).toEqual(Object.keys(VFIO_STRUCTS).sort()));
});
