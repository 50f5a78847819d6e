// drivers/iommu/iommufd/iommufd_test.h for user space: struct iommu_test_cmd (the selftest's ioctl
// argument), each op's union member, and the mock driver's data structs, laid out by the struct DSL.
//
// struct iommu_test_cmd { u32 size; u32 op; u32 id; u32 __reserved; union { ... } (48 bytes, 8-aligned:
// the largest member is `dirty`); u32 last; } — sizeof 72, and the minimum size is offsetofend(last) = 68.
// The union is carried as 6 aligned u64 words so the layout and alignment match C; the op's member is
// decoded from and encoded into those 48 bytes (TEST_CMD_UNION_OFFSET).

import { aligned_u64, array, defineStruct, s32, u32, u64, type StructDef } from './struct.ts';

export const iommu_test_cmd = defineStruct('iommu_test_cmd', {
  size: u32, op: u32, id: u32, __reserved: u32, union: array(u64, 6), last: u32,
});
export const TEST_CMD_UNION_OFFSET = 16;
export const TEST_CMD_UNION_SIZE = 48;
/** offsetofend(struct iommu_test_cmd, last): main.c's minimum for IOMMU_TEST_CMD. */
export const TEST_CMD_MIN_SIZE = 68;

export const IOMMU_TEST_OP_ADD_RESERVED = 1;
export const IOMMU_TEST_OP_MOCK_DOMAIN = 2;
export const IOMMU_TEST_OP_MD_CHECK_MAP = 3;
export const IOMMU_TEST_OP_MD_CHECK_REFS = 4;
export const IOMMU_TEST_OP_CREATE_ACCESS = 5;
export const IOMMU_TEST_OP_DESTROY_ACCESS_PAGES = 6;
export const IOMMU_TEST_OP_ACCESS_PAGES = 7;
export const IOMMU_TEST_OP_ACCESS_RW = 8;
export const IOMMU_TEST_OP_SET_TEMP_MEMORY_LIMIT = 9;
export const IOMMU_TEST_OP_MOCK_DOMAIN_REPLACE = 10;
export const IOMMU_TEST_OP_ACCESS_REPLACE_IOAS = 11;
export const IOMMU_TEST_OP_MOCK_DOMAIN_FLAGS = 12;
export const IOMMU_TEST_OP_DIRTY = 13;
export const IOMMU_TEST_OP_MD_CHECK_IOTLB = 14;
export const IOMMU_TEST_OP_TRIGGER_IOPF = 15;
export const IOMMU_TEST_OP_DEV_CHECK_CACHE = 16;
export const IOMMU_TEST_OP_TRIGGER_VEVENT = 17;
export const IOMMU_TEST_OP_PASID_ATTACH = 18;
export const IOMMU_TEST_OP_PASID_REPLACE = 19;
export const IOMMU_TEST_OP_PASID_DETACH = 20;
export const IOMMU_TEST_OP_PASID_CHECK_HWPT = 21;
export const IOMMU_TEST_OP_DMABUF_GET = 22;
export const IOMMU_TEST_OP_DMABUF_REVOKE = 23;
export const IOMMU_TEST_OP_MD_CHECK_DMABUF = 24;

export const MOCK_APERTURE_START = 2 ** 24;
export const MOCK_APERTURE_LAST = 2 ** 31 - 1;
export const MOCK_PAGE_SIZE = 2048;
export const MOCK_HUGE_PAGE_SIZE = 512 * MOCK_PAGE_SIZE;
export const MOCK_IOMMUPT_DEFAULT = 0;
export const MOCK_IOMMUPT_HUGE = 1;
export const MOCK_IOMMUPT_AMDV1 = 2;
export const MOCK_FLAGS_ACCESS_WRITE = 1 << 0;
export const MOCK_FLAGS_ACCESS_SYZ = 1 << 16;
export const MOCK_ACCESS_RW_WRITE = 1 << 0;
export const MOCK_ACCESS_RW_SLOW_PATH = 1 << 2;
export const MOCK_FLAGS_ACCESS_CREATE_NEEDS_PIN_PAGES = 1 << 0;
export const MOCK_FLAGS_DEVICE_NO_DIRTY = 1 << 0;
export const MOCK_FLAGS_DEVICE_PASID = 1 << 2;
export const IOMMU_TEST_PASID_RESERVED = 1024;
export const MOCK_PASID_WIDTH = 20;
export const IOMMU_HW_INFO_TYPE_SELFTEST = 0xfeedbeef;
export const IOMMU_HW_INFO_SELFTEST_REGVAL = 0xdeadbeef;
export const IOMMU_HWPT_DATA_SELFTEST = 0xdead;

// The union members, named as in the header.
export const add_reserved = defineStruct('add_reserved', { start: aligned_u64, length: aligned_u64 });
export const mock_domain = defineStruct('mock_domain', { out_stdev_id: u32, out_hwpt_id: u32, out_idev_id: u32 });
export const mock_domain_flags = defineStruct('mock_domain_flags', { out_stdev_id: u32, out_hwpt_id: u32, out_idev_id: u32, dev_flags: u32 });
export const mock_domain_replace = defineStruct('mock_domain_replace', { pt_id: u32 });
export const check_map = defineStruct('check_map', { iova: aligned_u64, length: aligned_u64, uptr: aligned_u64 });
export const check_refs = defineStruct('check_refs', { length: aligned_u64, uptr: aligned_u64, refs: u32 });
export const create_access = defineStruct('create_access', { out_access_fd: u32, flags: u32 });
export const destroy_access_pages = defineStruct('destroy_access_pages', { access_pages_id: u32 });
export const access_pages = defineStruct('access_pages', { flags: u32, out_access_pages_id: u32, iova: aligned_u64, length: aligned_u64, uptr: aligned_u64 });
export const access_rw = defineStruct('access_rw', { iova: aligned_u64, length: aligned_u64, uptr: aligned_u64, flags: u32 });
export const memory_limit = defineStruct('memory_limit', { limit: u32 });
export const access_replace_ioas = defineStruct('access_replace_ioas', { ioas_id: u32 });
export const dirty = defineStruct('dirty', {
  flags: u32, iova: aligned_u64, length: aligned_u64, page_size: aligned_u64, uptr: aligned_u64, out_nr_dirty: aligned_u64,
});
export const check_iotlb = defineStruct('check_iotlb', { id: u32, iotlb: u32 });
export const trigger_iopf = defineStruct('trigger_iopf', { dev_id: u32, pasid: u32, grpid: u32, perm: u32, addr: u64 });
export const check_dev_cache = defineStruct('check_dev_cache', { id: u32, cache: u32 });
export const trigger_vevent = defineStruct('trigger_vevent', { dev_id: u32 });
export const pasid_attach = defineStruct('pasid_attach', { pasid: u32, pt_id: u32 });
export const pasid_replace = defineStruct('pasid_replace', { pasid: u32, pt_id: u32 });
export const pasid_detach = defineStruct('pasid_detach', { pasid: u32 });
export const pasid_check = defineStruct('pasid_check', { pasid: u32, hwpt_id: u32 });
export const dmabuf_get = defineStruct('dmabuf_get', { length: u32, open_flags: u32 });
export const dmabuf_revoke = defineStruct('dmabuf_revoke', { dmabuf_fd: s32, revoked: u32 });
export const check_dmabuf = defineStruct('check_dmabuf', { dmabuf_fd: s32, iova: aligned_u64, length: aligned_u64, offset: aligned_u64 });

/** Each op's union member. */
export const TEST_OP_MEMBERS: Readonly<Record<number, StructDef>> = {
  [IOMMU_TEST_OP_ADD_RESERVED]: add_reserved,
  [IOMMU_TEST_OP_MOCK_DOMAIN]: mock_domain,
  [IOMMU_TEST_OP_MD_CHECK_MAP]: check_map,
  [IOMMU_TEST_OP_MD_CHECK_REFS]: check_refs,
  [IOMMU_TEST_OP_CREATE_ACCESS]: create_access,
  [IOMMU_TEST_OP_DESTROY_ACCESS_PAGES]: destroy_access_pages,
  [IOMMU_TEST_OP_ACCESS_PAGES]: access_pages,
  [IOMMU_TEST_OP_ACCESS_RW]: access_rw,
  [IOMMU_TEST_OP_SET_TEMP_MEMORY_LIMIT]: memory_limit,
  [IOMMU_TEST_OP_MOCK_DOMAIN_REPLACE]: mock_domain_replace,
  [IOMMU_TEST_OP_ACCESS_REPLACE_IOAS]: access_replace_ioas,
  [IOMMU_TEST_OP_MOCK_DOMAIN_FLAGS]: mock_domain_flags,
  [IOMMU_TEST_OP_DIRTY]: dirty,
  [IOMMU_TEST_OP_MD_CHECK_IOTLB]: check_iotlb,
  [IOMMU_TEST_OP_TRIGGER_IOPF]: trigger_iopf,
  [IOMMU_TEST_OP_DEV_CHECK_CACHE]: check_dev_cache,
  [IOMMU_TEST_OP_TRIGGER_VEVENT]: trigger_vevent,
  [IOMMU_TEST_OP_PASID_ATTACH]: pasid_attach,
  [IOMMU_TEST_OP_PASID_REPLACE]: pasid_replace,
  [IOMMU_TEST_OP_PASID_DETACH]: pasid_detach,
  [IOMMU_TEST_OP_PASID_CHECK_HWPT]: pasid_check,
  [IOMMU_TEST_OP_DMABUF_GET]: dmabuf_get,
  [IOMMU_TEST_OP_DMABUF_REVOKE]: dmabuf_revoke,
  [IOMMU_TEST_OP_MD_CHECK_DMABUF]: check_dmabuf,
};

/** struct iommu_test_hw_info { u32 flags; u32 test_reg; } (IOMMU_HW_INFO_TYPE_SELFTEST). */
export const iommu_test_hw_info = defineStruct('iommu_test_hw_info', { flags: u32, test_reg: u32 });
/** struct iommu_hwpt_selftest { u32 iotlb; u32 pagetable_type; } (IOMMU_HWPT_DATA_SELFTEST). */
export const iommu_hwpt_selftest = defineStruct('iommu_hwpt_selftest', { iotlb: u32, pagetable_type: u32 });
