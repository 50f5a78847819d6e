// drivers/iommu/iommufd/iommufd_test.h, the kernel's copy of the selftest ABI constants (the uapi layer
// has its own and tests check they agree): op numbers, mock flags and the mock driver's fixed values.

export const IOMMU_TEST_OP = {
  ADD_RESERVED: 1, MOCK_DOMAIN: 2, MD_CHECK_MAP: 3, MD_CHECK_REFS: 4, CREATE_ACCESS: 5,
  DESTROY_ACCESS_PAGES: 6, ACCESS_PAGES: 7, ACCESS_RW: 8, SET_TEMP_MEMORY_LIMIT: 9,
  MOCK_DOMAIN_REPLACE: 10, ACCESS_REPLACE_IOAS: 11, MOCK_DOMAIN_FLAGS: 12, DIRTY: 13, MD_CHECK_IOTLB: 14,
  TRIGGER_IOPF: 15, DEV_CHECK_CACHE: 16, TRIGGER_VEVENT: 17, PASID_ATTACH: 18, PASID_REPLACE: 19,
  PASID_DETACH: 20, PASID_CHECK_HWPT: 21, DMABUF_GET: 22, DMABUF_REVOKE: 23, MD_CHECK_DMABUF: 24,
} as const;

export const MOCK_IOMMUPT_DEFAULT = 0;
export const MOCK_IOMMUPT_HUGE = 1;
export const MOCK_IOMMUPT_AMDV1 = 2;

export const MOCK_APERTURE_START = 2 ** 24;
export const MOCK_APERTURE_LAST = 2 ** 31 - 1;
export const MOCK_PAGE_SIZE = 2048;
export const MOCK_HUGE_PAGE_SIZE = 512 * MOCK_PAGE_SIZE;

export const MOCK_FLAGS_ACCESS_WRITE = 1 << 0;
export const MOCK_FLAGS_ACCESS_SYZ = 1 << 16;
export const MOCK_ACCESS_RW_WRITE = 1 << 0;
export const MOCK_ACCESS_RW_SLOW_PATH = 1 << 2;
export const MOCK_FLAGS_ACCESS_CREATE_NEEDS_PIN_PAGES = 1 << 0;
export const MOCK_FLAGS_DEVICE_NO_DIRTY = 1 << 0;
export const MOCK_FLAGS_DEVICE_PASID = 1 << 2;

/** The PASID whose second non-blocking set_dev_pasid fails (ENOMEM), to exercise the core's rollback. */
export const IOMMU_TEST_PASID_RESERVED = 1024;
export const MOCK_PASID_WIDTH = 20;

export const IOMMU_HW_INFO_TYPE_SELFTEST = 0xfeedbeef;
export const IOMMU_HW_INFO_SELFTEST_REGVAL = 0xdeadbeef;
export const IOMMU_HWPT_DATA_SELFTEST = 0xdead;
export const IOMMU_HWPT_DATA_NONE = 0;
/** sizeof(struct iommu_hwpt_selftest) {u32 iotlb; u32 pagetable_type}; the minimum is iotlb's end. */
export const HWPT_SELFTEST_SIZE = 8;

/** iommufd_test_memory_limit's default, in pages (temporary batch allocations in pages.c). */
export const DEFAULT_TEMP_MEMORY_LIMIT = 65536;
/** ACCESS_PAGES / ACCESS_RW refuse lengths above 16 MiB (ENOMEM). */
export const MAX_ACCESS_LENGTH = 16 * 1024 * 1024;
/** offsetofend(struct iommu_hwpt_selftest, iotlb): the struct's first version. */
export const HWPT_SELFTEST_MIN = 4;

// The mock's nested domains and vIOMMU (iommufd_test.h).
export const MOCK_NESTED_DOMAIN_IOTLB_NUM = 4;
export const MOCK_NESTED_DOMAIN_IOTLB_ID_MAX = MOCK_NESTED_DOMAIN_IOTLB_NUM - 1;
export const IOMMU_TEST_IOTLB_DEFAULT = 0xbadbeef;
export const MOCK_DEV_CACHE_NUM = 4;
export const MOCK_DEV_CACHE_ID_MAX = MOCK_DEV_CACHE_NUM - 1;
export const IOMMU_TEST_DEV_CACHE_DEFAULT = 0xbaddad;
export const IOMMU_HWPT_INVALIDATE_DATA_SELFTEST = 0xdeadbeef;
/** IOMMU_TEST_INVALIDATE_FLAG_ALL: invalidate every entry, ignoring the ID. */
export const IOMMU_TEST_INVALIDATE_FLAG_ALL = 1 << 0;
/** sizeof(struct iommu_hwpt_invalidate_selftest) {u32 flags; u32 iotlb_id}; min: iotlb_id's end. */
export const HWPT_INVALIDATE_SELFTEST_SIZE = 8;
export const IOMMU_VIOMMU_TYPE_SELFTEST = 0xdeadbeef;
export const IOMMU_VIOMMU_INVALIDATE_DATA_SELFTEST = 0xdeadbeef;
/** sizeof(struct iommu_viommu_invalidate_selftest) {u32 flags; u32 vdev_id; u32 cache_id}. */
export const VIOMMU_INVALIDATE_SELFTEST_SIZE = 12;
export const IOMMU_VEVENTQ_TYPE_SELFTEST = 0xbeefbeef;
export const IOMMU_HW_QUEUE_TYPE_SELFTEST = 0xdeadbeef;
export const IOMMU_TEST_HW_QUEUE_MAX = 2;
/** sizeof(struct iommu_viommu_selftest) {u32 in_data; u32 out_data; u64 out_mmap_offset; u64 out_mmap_length}. */
export const VIOMMU_SELFTEST_SIZE = 24;
/** offsetofend(struct iommu_viommu_selftest, out_data). */
export const VIOMMU_SELFTEST_MIN = 8;
