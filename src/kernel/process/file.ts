// Open files as the process model sees them. A KernelFile is what a later layer implements (Linux's
// file_operations: iommufd, a VFIO group or device, a memfd); an OpenFile is Linux's struct file, the one
// object every fd, dup(), fork() and mmap() of it shares, with the reference count f_count. release() runs
// once, on the last fput(), never on a close() that leaves another reference.

import type { Result } from '../errno.ts';

export interface KernelFile {
  /** What the file is ('memfd', 'iommufd', 'vfio-device', ...), for /proc/PID/fd-like listings. */
  readonly kind: string;
  /** f_op->release: the last reference is gone. */
  release(): void;
  /**
   * f_op->mmap for a file whose mappings are a driver's own pages (remap_pfn_range(): VM_PFNMAP), such as
   * the vIOMMU MMIO pages of an iommufd. Files without it are mapped through their page cache (memfd).
   */
  mmap?(req: FileMmapRequest): Result<PfnMapping>;
}

/** The VMA mmap() is building, as f_op->mmap sees it. */
export interface FileMmapRequest {
  /** vm_end - vm_start: page aligned (mmap() rounded the length up). */
  readonly length: number;
  /** vm_pgoff: the offset argument in pages. */
  readonly pgoff: number;
  readonly prot: number;
  /** VM_SHARED: MAP_SHARED or MAP_SHARED_VALIDATE. */
  readonly shared: boolean;
}

/**
 * What f_op->mmap set up: `length / PAGE_SIZE` frames from `pfn` mapped in place (never faulted from a page
 * cache, never pinnable by GUP), and vm_ops->open/close, called for every VMA that maps them: open when a
 * split or fork makes another VMA of it, close when one goes (munmap, exit).
 */
export interface PfnMapping {
  readonly pfn: number;
  open(): void;
  close(): void;
}

export class OpenFile<F extends KernelFile = KernelFile> {
  private refs = 1;

  /** A new open of `file`, with one reference that the caller owns. */
  constructor(readonly file: F) {}

  get refCount(): number { return this.refs; }
  get released(): boolean { return this.refs === 0; }

  /** get_file(): another reference (a dup'ed or inherited fd, a mapping). */
  get(): this {
    if (this.refs === 0) throw new Error(`get_file on a released ${this.file.kind}`);
    this.refs++;
    return this;
  }

  /** fput(): drop a reference; the last one runs release(). True when released. */
  put(): boolean {
    if (this.refs === 0) throw new Error(`fput on a released ${this.file.kind}`);
    if (--this.refs !== 0) return false;
    this.file.release();
    return true;
  }
}

/** The terminal a spawned process inherits on fds 0, 1 and 2. */
export class StdioFile implements KernelFile {
  readonly kind = 'stdio';
  release(): void { /* nothing to free */ }
}
