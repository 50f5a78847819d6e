// A process (Linux's task_struct with its cred, signal->rlim, mm and files): the unit iommufd and VFIO
// charge, pin from and hand fds to. Created by a ProcessTable (spawn) or by fork().

import { fail, ok, type Result } from '../errno.ts';
import type { FrameAllocator } from '../mm/frame-allocator.ts';
import { MemFile } from '../mm/memfile.ts';
import type { Mm, MmStatus } from '../mm/mm.ts';
import { MAP_ANONYMOUS } from '../mm/mman.ts';
import type { CopyBuffer } from '../mm/uaccess.ts';
import { checkNewRlimit, type Capability, type Rlimit, type RlimitResource } from './cred.ts';
import { FdTable } from './fd-table.ts';
import type { OpenFile } from './file.ts';
import type { UserStruct, UserTable } from './user.ts';

/** What a process needs of the table it lives in. */
export interface ProcessHost {
  readonly frames: FrameAllocator;
  readonly users: UserTable;
  /** A free pid, or -1 when none is left. */
  allocPid(): number;
  register(p: Process): void;
  unregister(p: Process): void;
}

export interface ProcessInit {
  readonly pid: number;
  readonly ppid: number;
  readonly comm: string;
  readonly uid: number;
  readonly euid: number;
  readonly caps: Iterable<Capability>;
  readonly rlimits: Readonly<Record<RlimitResource, Rlimit>>;
  readonly user: UserStruct;
  readonly mm: Mm;
  /** Builds the fd table given the process's RLIMIT_NOFILE reader (fork copies the parent's); default empty. */
  readonly fds?: (limit: () => number) => FdTable;
}

/** The accounting targets of Linux's pinners: user->locked_vm (iommufd USER mode) or mm->locked_vm (MM). */
export type AccountMode = 'user' | 'mm';

export interface AccountOptions {
  /**
   * Skip the RLIMIT_MEMLOCK check. Default: whether the process has CAP_IPC_LOCK, as account_locked_vm()
   * decides. iommufd decides once, when it creates the pages (mode NONE with CAP_IPC_LOCK), and then
   * charges with bypass false (__account_locked_vm(..., false), incr_user_locked_vm()).
   */
  readonly bypassRlimit?: boolean;
}

export interface ProcessStatus extends MmStatus {
  readonly Name: string;
  readonly Pid: number;
  readonly PPid: number;
  /** Real and effective uid. */
  readonly Uid: readonly [number, number];
}

export class Process {
  readonly pid: number;
  readonly ppid: number;
  readonly comm: string;
  readonly uid: number;
  readonly euid: number;
  /** Effective capabilities. */
  private readonly caps: Set<Capability>;
  private readonly rlimits: Record<RlimitResource, Rlimit>;
  /** The user_struct of the real uid (cred->user), holding one reference for this process. */
  readonly user: UserStruct;
  /** The address space. After exit it stays readable (iommufd keeps source_mm for its counters). */
  readonly mm: Mm;
  readonly fds: FdTable;
  /**
   * The user buffer the typed API (uapi/api.ts) builds ioctl arguments in: an anonymous mapping of this
   * process's own, as a C library's stack buffer would be. Null until the first typed call.
   */
  apiScratch: { readonly addr: number; readonly size: number } | null = null;
  /**
   * Byte buffers this task's system calls reuse instead of allocating per call: `apiArgBuf` for the typed
   * API's encoding of an argument (before it is copied to apiScratch), `ioctlArgBuf` for the kernel's
   * copy of an ioctl argument (Linux's on-stack ucmd buffer). A call takes one (null meanwhile) and gives
   * it back, so a nested call finds null and allocates its own; contents are not kept between calls.
   */
  apiArgBuf: CopyBuffer | null = null;
  ioctlArgBuf: CopyBuffer | null = null;
  private exited = false;

  constructor(private readonly host: ProcessHost, init: ProcessInit) {
    this.pid = init.pid;
    this.ppid = init.ppid;
    this.comm = init.comm;
    this.uid = init.uid;
    this.euid = init.euid;
    this.caps = new Set(init.caps);
    this.rlimits = { ...init.rlimits };
    this.user = init.user;
    this.mm = init.mm;
    const limit = (): number => this.rlimits.RLIMIT_NOFILE.soft;
    this.fds = init.fds?.(limit) ?? new FdTable({ limit });
  }

  get alive(): boolean { return !this.exited; }

  /** capable(): the capability is in the effective set. */
  capable(cap: Capability): boolean { return this.caps.has(cap); }
  capabilities(): Capability[] { return [...this.caps]; }
  /** cap_set_proc() dropping a capability (the selftest's drop_cap_ipc_lock()). */
  dropCapability(cap: Capability): void { this.caps.delete(cap); }
  /** Raising a capability back, for tests; Linux needs it in the permitted set. */
  grantCapability(cap: Capability): void { this.caps.add(cap); }

  getrlimit(resource: RlimitResource): Rlimit { return this.rlimits[resource]; }

  /** setrlimit(): EINVAL for soft > hard, EPERM for raising the hard limit without CAP_SYS_RESOURCE. */
  setrlimit(resource: RlimitResource, limit: Rlimit): Result {
    const bad = checkNewRlimit(this.rlimits[resource], limit, this.capable('CAP_SYS_RESOURCE'));
    if (bad === 'EINVAL') return fail('EINVAL', `${resource}: soft ${limit.soft} above hard ${limit.hard}, or not a limit`);
    if (bad === 'EPERM') return fail('EPERM', `${resource}: raising the hard limit needs CAP_SYS_RESOURCE`);
    this.rlimits[resource] = { soft: limit.soft, hard: limit.hard };
    return ok();
  }

  /**
   * Charge or uncharge `npages` pinned pages: 'user' to user->locked_vm, 'mm' to mm->locked_vm (VmLck),
   * against this process's RLIMIT_MEMLOCK soft limit. ENOMEM (not EPERM) over the limit; an uncharge never
   * fails. mm->pinned_vm (VmPin) is separate: mm.accountPinnedVm().
   */
  account(mode: AccountMode, npages: number, op: 'add' | 'sub', opts: AccountOptions = {}): Result {
    const bypass = opts.bypassRlimit ?? this.capable('CAP_IPC_LOCK');
    const limit = this.rlimits.RLIMIT_MEMLOCK.soft;
    return mode === 'mm'
      ? this.mm.accountLockedVm(npages, op, limit, bypass)
      : this.user.accountLockedVm(npages, op, limit, bypass);
  }

  /** memfd_create(): a new empty shmem file on the lowest free fd. */
  memfdCreate(name: string): Result<number> {
    this.assertAlive('memfd_create');
    if (name.length > 249) return fail('EINVAL', 'memfd name longer than 249 bytes');
    return this.fds.install(new MemFile(this.host.frames, `memfd:${name}`));
  }

  /** ftruncate() on an fd: EBADF for a closed fd, EINVAL for a file that cannot be truncated. */
  ftruncate(fd: number, size: number): Result {
    const f = this.fds.get(fd);
    if (!f.ok) return f;
    if (!(f.value.file instanceof MemFile)) return fail('EINVAL', `a ${f.value.file.kind} cannot be truncated`);
    return f.value.file.ftruncate(size);
  }

  /** The memfd behind `fd` (for MAP_FILE-like users), or EBADF/EINVAL. */
  memFile(fd: number): Result<OpenFile<MemFile>> {
    const f = this.fds.get(fd);
    if (!f.ok) return f;
    if (!(f.value.file instanceof MemFile)) return fail('EINVAL', `fd ${fd} is a ${f.value.file.kind}, not a memfd`);
    return ok(f.value as OpenFile<MemFile>);
  }

  /** mmap() with an fd, as the system call: EBADF for a bad fd unless MAP_ANONYMOUS; the rest as Mm.mmap(). */
  mmap(addr: number, length: number, prot: number, flags: number, fd: number, offset: number): Result<number> {
    this.assertAlive('mmap');
    let file: OpenFile | null = null;
    if (!(flags & MAP_ANONYMOUS)) {
      const f = this.fds.get(fd);
      if (!f.ok) return f;
      file = f.value;
    }
    return this.mm.mmap(addr, length, prot, flags, file, offset);
  }

  /**
   * fork(): a child with a copy of this process's credentials, limits and fds (sharing the files) and a
   * copy-on-write copy of its address space. EAGAIN when no pid is free, ENOMEM when the address space
   * cannot be copied.
   */
  fork(): Result<Process> {
    this.assertAlive('fork');
    const pid = this.host.allocPid();
    if (pid < 0) return fail('EAGAIN', 'no free pid');
    const mm = this.mm.fork();
    if (!mm.ok) return mm;
    const child = new Process(this.host, {
      pid, ppid: this.pid, comm: this.comm, uid: this.uid, euid: this.euid, caps: this.caps,
      rlimits: this.rlimits, user: this.user.get(), mm: mm.value, fds: (limit) => this.fds.fork({ limit }),
    });
    this.host.register(child);
    return ok(child);
  }

  /**
   * do_exit(): exit_mm() first (the address space goes unless someone holds mmget()), then exit_files()
   * (each file released on its last reference), then the user reference. Pinned frames survive.
   */
  exit(): void {
    this.assertAlive('exit');
    this.exited = true;
    this.mm.mmput();
    this.fds.closeAll();
    this.user.put();
    this.host.unregister(this);
  }

  /** The /proc/PID/status lines ioasis models. */
  status(): ProcessStatus {
    return { Name: this.comm, Pid: this.pid, PPid: this.ppid, Uid: [this.uid, this.euid], ...this.mm.status() };
  }

  private assertAlive(what: string): void {
    if (this.exited) throw new Error(`${what} by exited process ${this.pid}`);
  }
}
