// ioctl command numbers as Linux encodes them on x86-64 (asm-generic/ioctl.h): nr in bits 0-7, type in
// bits 8-15, argument size in bits 16-29, direction in bits 30-31. iommufd and VFIO both use type ';' and
// plain _IO() numbers (no size, no direction): the argument struct carries its own size instead.

export const IOC_NRBITS = 8;
export const IOC_TYPEBITS = 8;
export const IOC_SIZEBITS = 14;
export const IOC_DIRBITS = 2;
export const IOC_NRSHIFT = 0;
export const IOC_TYPESHIFT = IOC_NRSHIFT + IOC_NRBITS;
export const IOC_SIZESHIFT = IOC_TYPESHIFT + IOC_TYPEBITS;
export const IOC_DIRSHIFT = IOC_SIZESHIFT + IOC_SIZEBITS;

export const IOC_NONE = 0;
export const IOC_WRITE = 1;
export const IOC_READ = 2;

const mask = (bits: number): number => (1 << bits) - 1;

/** _IOC(dir, type, nr, size) as an unsigned 32-bit number. Throws on a field that does not fit (a bug). */
export function ioc(dir: number, type: number, nr: number, size: number): number {
  const fits = (v: number, bits: number): boolean => Number.isInteger(v) && v >= 0 && v <= mask(bits);
  if (!fits(dir, IOC_DIRBITS) || !fits(type, IOC_TYPEBITS) || !fits(nr, IOC_NRBITS) || !fits(size, IOC_SIZEBITS)) {
    throw new RangeError(`_IOC(${dir}, ${type}, ${nr}, ${size}): a field is out of range`);
  }
  return ((dir << IOC_DIRSHIFT) | (size << IOC_SIZESHIFT) | (type << IOC_TYPESHIFT) | (nr << IOC_NRSHIFT)) >>> 0;
}

export const _IO = (type: number, nr: number): number => ioc(IOC_NONE, type, nr, 0);
export const _IOR = (type: number, nr: number, size: number): number => ioc(IOC_READ, type, nr, size);
export const _IOW = (type: number, nr: number, size: number): number => ioc(IOC_WRITE, type, nr, size);
export const _IOWR = (type: number, nr: number, size: number): number => ioc(IOC_READ | IOC_WRITE, type, nr, size);

export const _IOC_NR = (cmd: number): number => (cmd >>> IOC_NRSHIFT) & mask(IOC_NRBITS);
export const _IOC_TYPE = (cmd: number): number => (cmd >>> IOC_TYPESHIFT) & mask(IOC_TYPEBITS);
export const _IOC_SIZE = (cmd: number): number => (cmd >>> IOC_SIZESHIFT) & mask(IOC_SIZEBITS);
export const _IOC_DIR = (cmd: number): number => (cmd >>> IOC_DIRSHIFT) & mask(IOC_DIRBITS);

export interface DecodedIoctl {
  readonly dir: number;
  readonly type: number;
  readonly nr: number;
  readonly size: number;
}

export function decodeIoctl(cmd: number): DecodedIoctl {
  return { dir: _IOC_DIR(cmd), type: _IOC_TYPE(cmd), nr: _IOC_NR(cmd), size: _IOC_SIZE(cmd) };
}

// ---- iommufd (include/uapi/linux/iommufd.h) ----

export const IOMMUFD_TYPE = 0x3b; // ';'
export const IOMMUFD_CMD_BASE = 0x80;

export const IOMMU_DESTROY = _IO(IOMMUFD_TYPE, 0x80);
export const IOMMU_IOAS_ALLOC = _IO(IOMMUFD_TYPE, 0x81);
export const IOMMU_IOAS_ALLOW_IOVAS = _IO(IOMMUFD_TYPE, 0x82);
export const IOMMU_IOAS_COPY = _IO(IOMMUFD_TYPE, 0x83);
export const IOMMU_IOAS_IOVA_RANGES = _IO(IOMMUFD_TYPE, 0x84);
export const IOMMU_IOAS_MAP = _IO(IOMMUFD_TYPE, 0x85);
export const IOMMU_IOAS_UNMAP = _IO(IOMMUFD_TYPE, 0x86);
export const IOMMU_OPTION = _IO(IOMMUFD_TYPE, 0x87);
export const IOMMU_VFIO_IOAS = _IO(IOMMUFD_TYPE, 0x88);
export const IOMMU_HWPT_ALLOC = _IO(IOMMUFD_TYPE, 0x89);
export const IOMMU_GET_HW_INFO = _IO(IOMMUFD_TYPE, 0x8a);
export const IOMMU_HWPT_SET_DIRTY_TRACKING = _IO(IOMMUFD_TYPE, 0x8b);
export const IOMMU_HWPT_GET_DIRTY_BITMAP = _IO(IOMMUFD_TYPE, 0x8c);
export const IOMMU_HWPT_INVALIDATE = _IO(IOMMUFD_TYPE, 0x8d);
export const IOMMU_FAULT_QUEUE_ALLOC = _IO(IOMMUFD_TYPE, 0x8e);
export const IOMMU_IOAS_MAP_FILE = _IO(IOMMUFD_TYPE, 0x8f);
export const IOMMU_VIOMMU_ALLOC = _IO(IOMMUFD_TYPE, 0x90);
export const IOMMU_VDEVICE_ALLOC = _IO(IOMMUFD_TYPE, 0x91);
export const IOMMU_IOAS_CHANGE_PROCESS = _IO(IOMMUFD_TYPE, 0x92);
export const IOMMU_VEVENTQ_ALLOC = _IO(IOMMUFD_TYPE, 0x93);
export const IOMMU_HW_QUEUE_ALLOC = _IO(IOMMUFD_TYPE, 0x94);
/** Selftest-only (CONFIG_IOMMUFD_TEST): IOMMUFD_CMD_BASE + 32. */
export const IOMMU_TEST_CMD = _IO(IOMMUFD_TYPE, IOMMUFD_CMD_BASE + 32);

// ---- VFIO (include/uapi/linux/vfio.h) ----

export const VFIO_TYPE = 0x3b; // ';', the same magic as iommufd
export const VFIO_BASE = 100;
export const VFIO_API_VERSION = 0;

const vfio = (n: number): number => _IO(VFIO_TYPE, VFIO_BASE + n);

// Container fd
export const VFIO_GET_API_VERSION = vfio(0);
export const VFIO_CHECK_EXTENSION = vfio(1);
export const VFIO_SET_IOMMU = vfio(2);
// Group fd
export const VFIO_GROUP_GET_STATUS = vfio(3);
export const VFIO_GROUP_SET_CONTAINER = vfio(4);
export const VFIO_GROUP_UNSET_CONTAINER = vfio(5);
export const VFIO_GROUP_GET_DEVICE_FD = vfio(6);
// Device fd
export const VFIO_DEVICE_GET_INFO = vfio(7);
export const VFIO_DEVICE_GET_REGION_INFO = vfio(8);
export const VFIO_DEVICE_GET_IRQ_INFO = vfio(9);
export const VFIO_DEVICE_SET_IRQS = vfio(10);
export const VFIO_DEVICE_RESET = vfio(11);
export const VFIO_DEVICE_GET_PCI_HOT_RESET_INFO = vfio(12);
export const VFIO_DEVICE_PCI_HOT_RESET = vfio(13);
export const VFIO_DEVICE_QUERY_GFX_PLANE = vfio(14);
export const VFIO_DEVICE_GET_GFX_DMABUF = vfio(15);
export const VFIO_DEVICE_IOEVENTFD = vfio(16);
export const VFIO_DEVICE_FEATURE = vfio(17);
export const VFIO_DEVICE_BIND_IOMMUFD = vfio(18);
export const VFIO_DEVICE_ATTACH_IOMMUFD_PT = vfio(19);
export const VFIO_DEVICE_DETACH_IOMMUFD_PT = vfio(20);
// Container fd, type1 (numbers shared with the device-fd ioctls above: dispatch is by fd kind)
export const VFIO_IOMMU_GET_INFO = vfio(12);
export const VFIO_IOMMU_MAP_DMA = vfio(13);
export const VFIO_IOMMU_UNMAP_DMA = vfio(14);
export const VFIO_IOMMU_ENABLE = vfio(15);
export const VFIO_IOMMU_DISABLE = vfio(16);
export const VFIO_IOMMU_DIRTY_PAGES = vfio(17);
// sPAPR TCE
export const VFIO_IOMMU_SPAPR_TCE_GET_INFO = vfio(12);
export const VFIO_EEH_PE_OP = vfio(21);
export const VFIO_IOMMU_SPAPR_REGISTER_MEMORY = vfio(17);
export const VFIO_IOMMU_SPAPR_UNREGISTER_MEMORY = vfio(18);
export const VFIO_IOMMU_SPAPR_TCE_CREATE = vfio(19);
export const VFIO_IOMMU_SPAPR_TCE_REMOVE = vfio(20);

/** Every named ioctl number of both headers, for printing and reverse lookup (collisions keep all names). */
export const IOCTL_NAMES: ReadonlyMap<number, readonly string[]> = (() => {
  const table: Record<string, number> = {
    IOMMU_DESTROY, IOMMU_IOAS_ALLOC, IOMMU_IOAS_ALLOW_IOVAS, IOMMU_IOAS_COPY, IOMMU_IOAS_IOVA_RANGES,
    IOMMU_IOAS_MAP, IOMMU_IOAS_UNMAP, IOMMU_OPTION, IOMMU_VFIO_IOAS, IOMMU_HWPT_ALLOC, IOMMU_GET_HW_INFO,
    IOMMU_HWPT_SET_DIRTY_TRACKING, IOMMU_HWPT_GET_DIRTY_BITMAP, IOMMU_HWPT_INVALIDATE, IOMMU_FAULT_QUEUE_ALLOC,
    IOMMU_IOAS_MAP_FILE, IOMMU_VIOMMU_ALLOC, IOMMU_VDEVICE_ALLOC, IOMMU_IOAS_CHANGE_PROCESS, IOMMU_VEVENTQ_ALLOC,
    IOMMU_HW_QUEUE_ALLOC, IOMMU_TEST_CMD,
    VFIO_GET_API_VERSION, VFIO_CHECK_EXTENSION, VFIO_SET_IOMMU, VFIO_GROUP_GET_STATUS, VFIO_GROUP_SET_CONTAINER,
    VFIO_GROUP_UNSET_CONTAINER, VFIO_GROUP_GET_DEVICE_FD, VFIO_DEVICE_GET_INFO, VFIO_DEVICE_GET_REGION_INFO,
    VFIO_DEVICE_GET_IRQ_INFO, VFIO_DEVICE_SET_IRQS, VFIO_DEVICE_RESET, VFIO_DEVICE_GET_PCI_HOT_RESET_INFO,
    VFIO_DEVICE_PCI_HOT_RESET, VFIO_DEVICE_QUERY_GFX_PLANE, VFIO_DEVICE_GET_GFX_DMABUF, VFIO_DEVICE_IOEVENTFD,
    VFIO_DEVICE_FEATURE, VFIO_DEVICE_BIND_IOMMUFD, VFIO_DEVICE_ATTACH_IOMMUFD_PT, VFIO_DEVICE_DETACH_IOMMUFD_PT,
    VFIO_IOMMU_GET_INFO, VFIO_IOMMU_MAP_DMA, VFIO_IOMMU_UNMAP_DMA, VFIO_IOMMU_ENABLE, VFIO_IOMMU_DISABLE,
    VFIO_IOMMU_DIRTY_PAGES, VFIO_EEH_PE_OP,
  };
  const out = new Map<number, string[]>();
  for (const [name, cmd] of Object.entries(table)) out.set(cmd, [...(out.get(cmd) ?? []), name]);
  return out;
})();
