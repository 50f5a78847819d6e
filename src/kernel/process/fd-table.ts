// A process's file descriptor table (Linux's files_struct/fdtable). New fds take the lowest free number
// (alloc_fd() searches from next_fd); each fd holds one reference to its OpenFile, so a file is released
// only when its last fd, dup, inherited copy or mapping is gone.

import { fail, ok, type KernelError, type Result } from '../errno.ts';
import { OpenFile, type KernelFile } from './file.ts';

export interface FdTableOptions {
  /** RLIMIT_NOFILE's soft limit, read at each allocation: fds at or above it are EMFILE. */
  readonly limit?: () => number;
}

export class FdTable {
  private readonly slots: Array<OpenFile | undefined> = [];
  /** No fd below this number is free (files_struct->next_fd). */
  private nextFd = 0;
  private open = 0;
  private readonly limit: () => number;

  constructor(opts: FdTableOptions = {}) {
    this.limit = opts.limit ?? (() => 1024);
  }

  /** Number of open fds. */
  get count(): number { return this.open; }

  /** The open fd numbers, ascending. */
  fds(): number[] {
    const out: number[] = [];
    this.slots.forEach((f, fd) => { if (f !== undefined) out.push(fd); });
    return out;
  }

  /**
   * get_unused_fd + fd_install: the lowest free fd at or above `minFd` now refers to `file`. A KernelFile
   * is opened afresh; an OpenFile's reference passes to the table (the caller's reference is consumed,
   * also on failure, as fput() on the error path). EMFILE past RLIMIT_NOFILE.
   */
  install(file: KernelFile | OpenFile, minFd = 0): Result<number> {
    const open = file instanceof OpenFile ? file : new OpenFile(file);
    const fd = this.lowestFree(minFd);
    if (fd >= this.limit()) {
      open.put();
      return fail('EMFILE', `no free fd below RLIMIT_NOFILE (${this.limit()})`);
    }
    this.slots[fd] = open;
    this.open++;
    if (fd === this.nextFd) this.nextFd = fd + 1;
    return ok(fd);
  }

  private lowestFree(minFd: number): number {
    let fd = Math.max(minFd, this.nextFd);
    while (this.slots[fd] !== undefined) fd++;
    return fd;
  }

  /** fdget(): the file behind `fd` (no new reference), or EBADF. */
  get(fd: number): Result<OpenFile> {
    const f = this.lookup(fd);
    return f === undefined ? this.badFd(fd) : ok(f);
  }

  /** get()'s EBADF, for a caller whose lookup() found nothing. */
  badFd(fd: number): KernelError {
    return fail('EBADF', `fd ${fd} is not open`);
  }

  /** get() without the Result: the file, or undefined where get() is EBADF (the per-syscall hot paths). */
  lookup(fd: number): OpenFile | undefined {
    return Number.isInteger(fd) && fd >= 0 ? this.slots[fd] : undefined;
  }

  /** close(): the fd is free again; its file's reference is dropped (release on the last one). */
  close(fd: number): Result {
    const got = this.get(fd);
    if (!got.ok) return got;
    this.slots[fd] = undefined;
    this.open--;
    if (fd < this.nextFd) this.nextFd = fd;
    got.value.put();
    return ok();
  }

  /** dup(): a new fd, the lowest free one, sharing the file. */
  dup(fd: number, minFd = 0): Result<number> {
    const got = this.get(fd);
    if (!got.ok) return got;
    return this.install(got.value.get(), minFd);
  }

  /** dup2(): `newFd` refers to `oldFd`'s file, closing what `newFd` held. Same fd: nothing happens. */
  dup2(oldFd: number, newFd: number): Result<number> {
    const got = this.get(oldFd);
    if (!got.ok) return got;
    if (!Number.isInteger(newFd) || newFd < 0 || newFd >= this.limit()) return fail('EBADF', `fd ${newFd} is out of range`);
    if (oldFd === newFd) return ok(newFd);
    const old = this.slots[newFd];
    this.slots[newFd] = got.value.get();
    if (old === undefined) this.open++;
    else old.put();
    while (this.slots[this.nextFd] !== undefined) this.nextFd++;
    return ok(newFd);
  }

  /** dup_fd() at fork: the child's table refers to the same files, each with one more reference. */
  fork(opts: FdTableOptions = {}): FdTable {
    const child = new FdTable({ limit: opts.limit ?? this.limit });
    this.slots.forEach((f, fd) => { if (f !== undefined) child.slots[fd] = f.get(); });
    child.open = this.open;
    child.nextFd = this.nextFd;
    return child;
  }

  /** exit_files(): close every fd, lowest first. */
  closeAll(): void {
    this.slots.forEach((f, fd) => { if (f !== undefined) this.close(fd); });
  }
}
