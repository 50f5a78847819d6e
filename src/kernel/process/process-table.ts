// The process table: pid allocation, the uid -> user_struct table, and spawning processes over one frame
// allocator. It is plain state; a machine may hold several.

import { Mm } from '../mm/mm.ts';
import type { FrameAllocator } from '../mm/frame-allocator.ts';
import type { MmLayout } from '../mm/mman.ts';
import { defaultThpSettings, type ThpMode, type ThpSettings } from '../mm/thp.ts';
import { CAPABILITIES, DEFAULT_RLIMITS, type Capability, type Rlimit, type RlimitResource } from './cred.ts';
import { FdTable } from './fd-table.ts';
import { OpenFile, StdioFile } from './file.ts';
import { Process, type ProcessHost } from './process.ts';
import { UserTable } from './user.ts';

/** Linux reserves pids below 300 for daemons when pid numbers wrap (RESERVED_PIDS). */
const RESERVED_PIDS = 300;

export interface ProcessTableOptions {
  readonly frames: FrameAllocator;
  /** kernel.pid_max: pids are below it. Default 4194304 (PID_MAX_LIMIT on 64-bit, systemd's setting). */
  readonly pidMax?: number;
  /** Address-space layout of every process. */
  readonly mmLayout?: Partial<MmLayout>;
  /** /sys/kernel/mm/transparent_hugepage/enabled at boot. Default 'always' (see thp.ts). */
  readonly thp?: ThpMode;
}

export interface SpawnOptions {
  readonly comm?: string;
  /** Real uid. Default 0 (root). */
  readonly uid?: number;
  /** Effective uid. Default: the real uid. */
  readonly euid?: number;
  /** Effective capabilities. Default: all for euid 0, none otherwise (as after execve()). */
  readonly caps?: Iterable<Capability>;
  readonly rlimits?: Partial<Record<RlimitResource, Rlimit>>;
  /** Open fds 0, 1 and 2 on a terminal. Default true, so a process's first new fd is 3. */
  readonly stdio?: boolean;
}

export class ProcessTable implements ProcessHost {
  readonly frames: FrameAllocator;
  readonly users = new UserTable();
  readonly pidMax: number;
  private readonly mmLayout: Partial<MmLayout>;
  /** The machine's THP setting, shared by every process's mm (writable, as the sysfs file is). */
  readonly thp: ThpSettings;
  private readonly live = new Map<number, Process>();
  private lastPid = 0;

  constructor(opts: ProcessTableOptions) {
    this.frames = opts.frames;
    this.pidMax = opts.pidMax ?? 4_194_304;
    this.mmLayout = opts.mmLayout ?? {};
    this.thp = defaultThpSettings();
    if (opts.thp !== undefined) this.thp.enabled = opts.thp;
  }

  /** A new process with an empty address space (as after execve() of a static binary with no segments). */
  spawn(opts: SpawnOptions = {}): Process {
    const pid = this.allocPid();
    if (pid < 0) throw new Error('no free pid');
    const uid = opts.uid ?? 0;
    const euid = opts.euid ?? uid;
    const stdio = opts.stdio ?? true;
    const p = new Process(this, {
      pid, ppid: 0, comm: opts.comm ?? `proc${pid}`, uid, euid,
      caps: opts.caps ?? (euid === 0 ? CAPABILITIES : []),
      rlimits: { ...DEFAULT_RLIMITS, ...opts.rlimits },
      user: this.users.get(uid),
      mm: new Mm(this.frames, this.mmLayout, this.thp),
      fds: (limit) => {
        const fds = new FdTable({ limit });
        if (stdio) {
          const tty = new OpenFile(new StdioFile());
          for (let i = 0; i < 3; i++) fds.install(i === 0 ? tty : tty.get());
        }
        return fds;
      },
    });
    this.register(p);
    return p;
  }

  get(pid: number): Process | undefined { return this.live.get(pid); }
  /** Live processes, by pid. */
  list(): Process[] { return [...this.live.values()].sort((a, b) => a.pid - b.pid); }
  get size(): number { return this.live.size; }

  /** alloc_pid(): the next free pid after the last one handed out, wrapping to RESERVED_PIDS. */
  allocPid(): number {
    const low = this.pidMax > RESERVED_PIDS ? RESERVED_PIDS : 1;
    for (let tries = 0; tries < this.pidMax; tries++) {
      let pid = this.lastPid + 1;
      if (pid >= this.pidMax) pid = low;
      this.lastPid = pid;
      if (!this.live.has(pid)) return pid;
    }
    return -1;
  }

  register(p: Process): void {
    if (this.live.has(p.pid)) throw new Error(`pid ${p.pid} is in use`);
    this.live.set(p.pid, p);
  }

  unregister(p: Process): void {
    if (this.live.get(p.pid) === p) this.live.delete(p.pid);
  }
}
