// mmap()'s protection and flag bits with Linux's values (include/uapi/asm-generic/mman-common.h and
// linux/mman.h), so the uapi layer can pass a caller's numbers straight through.

export const PROT_NONE = 0x0;
export const PROT_READ = 0x1;
export const PROT_WRITE = 0x2;
export const PROT_EXEC = 0x4;

export const MAP_SHARED = 0x01;
export const MAP_PRIVATE = 0x02;
export const MAP_SHARED_VALIDATE = 0x03;
export const MAP_TYPE = 0x0f;
export const MAP_FIXED = 0x10;
export const MAP_ANONYMOUS = 0x20;
export const MAP_POPULATE = 0x8000;
export const MAP_FIXED_NOREPLACE = 0x100000;

/** madvise() advice (include/uapi/asm-generic/mman-common.h). */
export const MADV_HUGEPAGE = 14;
export const MADV_NOHUGEPAGE = 15;

/** The flags this model implements; MAP_SHARED_VALIDATE rejects any other with EOPNOTSUPP. */
export const MAP_KNOWN_FLAGS = MAP_TYPE | MAP_FIXED | MAP_ANONYMOUS | MAP_POPULATE | MAP_FIXED_NOREPLACE;

/** Address-space layout of an x86-64 process with 4-level paging. */
export interface MmLayout {
  /** vm.mmap_min_addr: mappings below it are refused (EPERM). Default 64 KiB. */
  readonly mmapMinAddr: number;
  /** Top-down placement starts below this address (mm->mmap_base). */
  readonly mmapBase: number;
  /** TASK_SIZE: the end of user space. */
  readonly taskSize: number;
  /** vm.max_map_count: more VMAs than this is ENOMEM. */
  readonly maxMapCount: number;
}

export const DEFAULT_MM_LAYOUT: MmLayout = {
  mmapMinAddr: 0x10000,
  mmapBase: 0x7f00_0000_0000,
  taskSize: 0x7fff_ffff_f000,
  maxMapCount: 65530,
};
