// Open files as the process model sees them. A KernelFile is what a later layer implements (Linux's
// file_operations: iommufd, a VFIO group or device, a memfd); an OpenFile is Linux's struct file, the one
// object every fd, dup(), fork() and mmap() of it shares, with the reference count f_count. release() runs
// once, on the last fput(), never on a close() that leaves another reference.

export interface KernelFile {
  /** What the file is ('memfd', 'iommufd', 'vfio-device', ...), for /proc/PID/fd-like listings. */
  readonly kind: string;
  /** f_op->release: the last reference is gone. */
  release(): void;
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
