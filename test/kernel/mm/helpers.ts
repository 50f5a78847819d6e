// Shared set-up for the process and mm tests: a small machine, and the leak/refcount invariant checker.

import { expect } from 'vitest';
import { PAGE_SIZE, PhysicalMemory } from '../../../src/hw/memory/physical-memory.ts';
import type { KernelError, Result } from '../../../src/kernel/errno.ts';
import { FrameAllocator } from '../../../src/kernel/mm/frame-allocator.ts';
import { MemFile } from '../../../src/kernel/mm/memfile.ts';
import type { Mm } from '../../../src/kernel/mm/mm.ts';
import { ProcessTable, type ProcessTableOptions } from '../../../src/kernel/process/process-table.ts';

export const P = PAGE_SIZE;

export interface Machine {
  readonly memory: PhysicalMemory;
  readonly frames: FrameAllocator;
  readonly table: ProcessTable;
}

/**
 * 4 MiB of memory (or `memBytes`); the allocator manages `frames` frames from pfn 16 (so pfn 0 is never
 * handed out).
 */
export function machine(frames = 128, opts: Partial<ProcessTableOptions> = {}, memBytes = 2 ** 20 * 4): Machine {
  const memory = new PhysicalMemory({ size: memBytes });
  const alloc = new FrameAllocator(memory, { firstPfn: 16, count: frames });
  return { memory, frames: alloc, table: new ProcessTable({ ...opts, frames: alloc }) };
}

export function value<T>(r: Result<T>): T {
  if (!r.ok) throw new Error(`expected success, got ${r.errno}: ${r.reason}`);
  return r.value;
}

export function errno<T>(r: Result<T>): KernelError['errno'] | 'ok' {
  return r.ok ? 'ok' : r.errno;
}

export const bytes = (n: number, fill: number): Uint8Array => new Uint8Array(n).fill(fill);

export function readBack(mm: Mm, addr: number, n: number): Uint8Array {
  const out = new Uint8Array(n);
  value(mm.read(addr, out));
  return out;
}

/**
 * The frame invariant: every allocated frame's reference count equals its page-table entries (over `mms`)
 * plus page-cache entries (over `files` and every memfd the live processes map or hold) plus pins, and no
 * entry or cache slot names a frame that is not allocated. `more` adds address spaces and files that no
 * live process reaches (an exited process's mm, a memfd the test holds).
 */
export function checkFrames(m: Machine, more: { mms?: Mm[]; files?: MemFile[] } = {}): void {
  const refs = new Map<number, number>();
  const bump = (pfn: number): void => { refs.set(pfn, (refs.get(pfn) ?? 0) + 1); };
  const mms = new Set<Mm>(more.mms ?? []);
  const files = new Set<MemFile>(more.files ?? []);
  for (const p of m.table.list()) {
    mms.add(p.mm);
    for (const fd of p.fds.fds()) {
      const f = p.fds.get(fd);
      if (f.ok && f.value.file instanceof MemFile) files.add(f.value.file);
    }
  }
  // Counts of a large folio live on its head frame: every entry mapping part of it references the head.
  const head = (pfn: number): number => m.frames.folioHead(pfn);
  for (const mm of mms) {
    mm.forEachPage((_vpn, pfn) => bump(head(pfn)));
    for (const vma of mm.vmaList()) if (vma.file !== null) files.add(vma.file.file);
  }
  for (const f of files) if (!f.released) f.forEachPage((_pgoff, pfn) => bump(head(pfn)));
  m.frames.forEachAllocated((pfn) => {
    if (head(pfn) !== pfn) return;
    const expected = (refs.get(pfn) ?? 0) + m.memory.pinCount(pfn);
    expect(m.memory.refCount(pfn), `frame ${pfn}: references`).toBe(expected);
    expect(expected, `frame ${pfn} is allocated but unreferenced (leak)`).toBeGreaterThan(0);
  });
  for (const pfn of refs.keys()) expect(m.frames.isAllocated(pfn), `frame ${pfn} is referenced but free`).toBe(true);
}
