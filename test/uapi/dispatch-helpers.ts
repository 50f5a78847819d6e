// Set-up for the byte-level dispatch tests: a booted default host with its IOMMU core, a process table
// over the lower frames of the same memory (so DMA reaches user pages), and a C-like caller that encodes
// an argument struct into the process's memory and issues ioctl(fd, cmd, arg) through dispatch().

import { Machine } from '../../src/hw/machine.ts';
import { PhysicalMemory } from '../../src/hw/memory/physical-memory.ts';
import type { Result } from '../../src/kernel/errno.ts';
import { IommuCore } from '../../src/kernel/iommu/core.ts';
import { FrameAllocator } from '../../src/kernel/mm/frame-allocator.ts';
import { MAP_ANONYMOUS, MAP_PRIVATE, PROT_READ, PROT_WRITE } from '../../src/kernel/mm/mman.ts';
import type { Capability } from '../../src/kernel/process/cred.ts';
import type { Process } from '../../src/kernel/process/process.ts';
import { ProcessTable } from '../../src/kernel/process/process-table.ts';
import { loadBuiltinHost } from '../../src/pci/builtin-hosts.ts';
import { bootHost } from '../../src/pci/boot.ts';
import type { PciDev } from '../../src/pci/dev.ts';
import { computeGroups } from '../../src/pci/groups/compute.ts';
import { dispatch } from '../../src/uapi/dispatch.ts';
import { IOMMUFD_IOCTLS, type IoctlOp } from '../../src/uapi/ioctl-table.ts';
import { openDevIommu } from '../../src/uapi/open.ts';

export const PAGE = 4096;
export const RW = PROT_READ | PROT_WRITE;

export function value<T>(r: Result<T>): T {
  if (!r.ok) throw new Error(`${r.errno}: ${r.reason}`);
  return r.value;
}
export const errno = (r: Result<unknown>): string => (r.ok ? 'ok' : r.errno);

export function op(name: string): IoctlOp {
  const o = IOMMUFD_IOCTLS.find((x) => x.name === name);
  if (o === undefined) throw new Error(`no ${name}`);
  return o;
}

/** One machine (memory, IOMMU core) and processes over its low frames. */
export function world(frames = 16384) {
  const booted = bootHost(loadBuiltinHost('default'));
  const memory = new PhysicalMemory({ size: 8 * 2 ** 30 });
  const machine = new Machine(booted, { memory });
  const core = new IommuCore(machine, computeGroups(booted));
  const alloc = new FrameAllocator(memory, { firstPfn: 16, count: frames });
  const table = new ProcessTable({ frames: alloc });
  const dev = (bdf: string): PciDev => {
    const d = machine.device(bdf);
    if (d === undefined) throw new Error(`no ${bdf}`);
    return d;
  };
  return { booted, memory, machine, core, frames: alloc, table, dev };
}
export type World = ReturnType<typeof world>;

/** The struct fields the tests read back. */
export type OutField = 'iova' | 'length' | 'num_iovas' | 'out_iova_alignment' | 'val64' | 'ioas_id' | 'out_ioas_id' | 'dst_iova' | 'size';

export interface CallOptions {
  /** The user `size` field (default sizeof). */
  readonly size?: number;
  /** Bytes written after sizeof (for the E2BIG rules). */
  readonly tail?: Uint8Array;
}

/** A process with an open iommufd and a scratch page for argument structs. */
export function client(w: World, opts: { memlockPages?: number; uid?: number; caps?: Capability[] } = {}) {
  const memlock = (opts.memlockPages ?? 4096) * PAGE;
  const proc = w.table.spawn({
    uid: opts.uid ?? 1000, rlimits: { RLIMIT_MEMLOCK: { soft: memlock, hard: memlock } },
    ...(opts.caps === undefined ? {} : { caps: opts.caps }),
  });
  const fd = value(openDevIommu(proc, w.core));
  const scratch = value(proc.mmap(0, 4 * PAGE, RW, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  return makeCaller(proc, fd, scratch);
}

export function makeCaller(proc: Process, fd: number, scratch: number) {
  /** ioctl by name with struct fields; returns the result and the struct as read back. */
  const call = (name: string, fields: Record<string, unknown>, o: CallOptions = {}) => {
    const t = op(name);
    const size = o.size ?? t.struct.sizeof;
    const b = t.struct.encode({ ...fields, size });
    value(proc.mm.write(scratch, new Uint8Array(PAGE)));
    value(proc.mm.write(scratch, b));
    if (o.tail !== undefined) value(proc.mm.write(scratch + t.struct.sizeof, o.tail));
    const r = dispatch(proc, fd, t.cmd, scratch);
    const back = new Uint8Array(t.struct.sizeof);
    value(proc.mm.read(scratch, back));
    return { r, e: errno(r), out: t.struct.decode(back) as Record<OutField, number & bigint> };
  };
  const anon = (npages: number, prot = RW): number => value(proc.mmap(0, npages * PAGE, prot, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  const ioasAlloc = (): number => {
    const c = call('IOMMU_IOAS_ALLOC', {});
    if (c.e !== 'ok') throw new Error(`IOAS_ALLOC: ${c.e}`);
    return Number(c.out.out_ioas_id);
  };
  return { proc, fd, scratch, call, anon, ioasAlloc };
}
export type Caller = ReturnType<typeof makeCaller>;

export const FIXED = 1;
export const WRITE = 2;
export const READ = 4;
export const U64_MAX = (1n << 64n) - 1n;
