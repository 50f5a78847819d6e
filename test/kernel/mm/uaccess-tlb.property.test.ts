// uaccess's UaccessTlb (the last one-page translation, valid while the mm's mapGen stays) must be
// observably absent. Properties, on random sequences of copies, mmap, munmap, mprotect, madvise, fork,
// exit, long-term pins and memfd truncation over a small window (two processes, parent and child):
// - whenever the TLB would answer, it answers what the VMA search and the page table answer now;
// - a world whose copies go through copyFromUser/copyToUser (TLB included) and a world whose copies take
//   the general page-by-page path see the same results, bytes, page tables and RSS after every step.

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { presentPfn } from '../../../src/kernel/mm/fault.ts';
import { MADV_HUGEPAGE, MAP_ANONYMOUS, MAP_FIXED, MAP_PRIVATE, MAP_SHARED, PROT_NONE, PROT_READ, PROT_WRITE } from '../../../src/kernel/mm/mman.ts';
import type { Mm } from '../../../src/kernel/mm/mm.ts';
import { copyFromUser, copyFromUserPages, copyToUser, copyToUserPages, CopyBuffer } from '../../../src/kernel/mm/uaccess.ts';
import type { Process } from '../../../src/kernel/process/process.ts';
import { machine, P, value } from './helpers.ts';

const BASE = 0x40_0000;
const PAGES = 6;
const RW = PROT_READ | PROT_WRITE;

type Op =
  | { readonly k: 'copy'; readonly who: number; readonly write: boolean; readonly page: number; readonly off: number; readonly len: number; readonly fill: number }
  | { readonly k: 'mmap'; readonly who: number; readonly page: number; readonly n: number; readonly prot: number; readonly file: boolean; readonly shared: boolean }
  | { readonly k: 'munmap' | 'madvise'; readonly who: number; readonly page: number; readonly n: number }
  | { readonly k: 'mprotect'; readonly who: number; readonly page: number; readonly n: number; readonly prot: number }
  | { readonly k: 'pin'; readonly who: number; readonly page: number; readonly write: boolean }
  | { readonly k: 'fork' | 'exit'; readonly who: number }
  | { readonly k: 'truncate'; readonly size: number };

const page = fc.integer({ min: 0, max: PAGES - 1 });
const who = fc.integer({ min: 0, max: 1 });
const prot = fc.constantFrom(RW, PROT_READ, PROT_NONE, RW);
// Copies dominate, most of them on a few pages, so the TLB is filled and then hit across the changes.
const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 8, arbitrary: fc.record({ k: fc.constant('copy' as const), who, write: fc.boolean(), page, off: fc.constantFrom(0, 8, 100, 3, P - 16, P - 4), len: fc.constantFrom(0, 4, 8, 40, 64, 6), fill: fc.integer({ min: 1, max: 255 }) }) },
  { weight: 2, arbitrary: fc.record({ k: fc.constant('mmap' as const), who, page, n: fc.integer({ min: 1, max: 2 }), prot, file: fc.boolean(), shared: fc.boolean() }) },
  { weight: 1, arbitrary: fc.record({ k: fc.constantFrom('munmap' as const, 'madvise' as const), who, page, n: fc.integer({ min: 1, max: 2 }) }) },
  { weight: 2, arbitrary: fc.record({ k: fc.constant('mprotect' as const), who, page, n: fc.integer({ min: 1, max: 2 }), prot }) },
  { weight: 2, arbitrary: fc.record({ k: fc.constant('pin' as const), who, page, write: fc.boolean() }) },
  { weight: 1, arbitrary: fc.record({ k: fc.constantFrom('fork' as const, 'exit' as const), who }) },
  { weight: 1, arbitrary: fc.record({ k: fc.constant('truncate' as const), size: fc.constantFrom(0, P, 2 * P) }) },
);

interface World { procs: Process[]; fd: number }

function world(): World {
  const m = machine(512);
  const p = m.table.spawn();
  const fd = value(p.memfdCreate('f'));
  value(p.ftruncate(fd, 2 * P));
  value(p.mmap(BASE, PAGES * P, RW, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0));
  return { procs: [p, value(p.fork())], fd };
}

/** Apply `op` in world `w`; `tlb` chooses the copies' path. The outcome, for comparison across worlds. */
function apply(w: World, op: Op, tlb: boolean): unknown {
  if (op.k === 'truncate') return w.procs[0]?.alive === true ? w.procs[0].ftruncate(w.fd, op.size) : 'gone';
  const p = w.procs[op.who] as Process;
  if (!p.alive && op.k !== 'fork') return 'gone';
  const at = BASE + ('page' in op ? op.page : 0) * P;
  switch (op.k) {
    case 'copy': {
      const addr = at + op.off;
      // The TLB world copies through a reused CopyBuffer (word at a time when aligned) every other time.
      const buf = new CopyBuffer(96);
      buf.bytes.fill(0xee);
      if (op.write) {
        const src = new Uint8Array(op.len).fill(op.fill);
        if (!tlb) return copyToUserPages(p.mm, addr, src);
        if (op.fill % 2 === 0) return copyToUser(p.mm, addr, src);
        buf.bytes.set(src);
        return p.mm.writeFrom(addr, buf.bytes, op.len, buf.words);
      }
      const dest = new Uint8Array(op.len);
      if (!tlb) return [copyFromUserPages(p.mm, addr, dest), [...dest]];
      if (op.fill % 2 === 0) return [copyFromUser(p.mm, addr, dest), [...dest]];
      const r = p.mm.readTo(addr, buf.bytes, op.len, buf.words);
      // Only the copy's bytes change (the rest keeps 0xee).
      expect(buf.bytes.subarray(op.len).every((x) => x === 0xee)).toBe(true);
      return [r, [...(r.ok ? buf.bytes.subarray(0, op.len) : dest)]];
    }
    case 'mmap': {
      const flags = (op.shared ? MAP_SHARED : MAP_PRIVATE) | MAP_FIXED | (op.file ? 0 : MAP_ANONYMOUS);
      if (op.file && p !== w.procs[0]) return 'no fd';
      return p.mmap(at, op.n * P, op.prot, flags, op.file ? w.fd : -1, 0);
    }
    case 'munmap': return p.mm.munmap(at, op.n * P);
    case 'madvise': return p.mm.madvise(at, op.n * P, MADV_HUGEPAGE);
    case 'mprotect': return p.mm.mprotect(at, op.n * P, op.prot);
    case 'pin': {
      const r = p.mm.pinUserPages(at, 1, op.write);
      return r.ok ? 'pinned' : r;
    }
    case 'fork': {
      if (!p.alive) return 'gone';
      const c = p.fork();
      if (c.ok) w.procs[1 - op.who] = c.value;
      return c.ok ? 'forked' : c;
    }
    case 'exit': p.exit(); return 'exited';
  }
}

/** Every entry of every VMA and RSS, per process. */
function state(w: World): unknown {
  return w.procs.map((p) => ({ vmas: p.mm.vmaList().map((v) => [v.start, v.end, v.prot, [...v.pages.entries()]]), rss: [p.mm.rssAnon, p.mm.rssShmem] }));
}

/** What the VMA search and the page table answer for a fault-free copy of page `vpn`, as the TLB caches it. */
function uncached(mm: Mm, vpn: number, write: boolean): number {
  if (!mm.alive) return -1;
  const vma = mm.findVma(vpn * P);
  if (vma === undefined || vma.file !== null || (write ? !vma.writable : !vma.readable)) return -1;
  return presentPfn(vma, vpn, write ? 'write' : 'read');
}

function checkTlb(w: World): void {
  for (const p of w.procs) {
    const { tlb } = p.mm;
    if (tlb.gen !== p.mm.mapGen) continue;
    if (tlb.readPfn >= 0) expect(tlb.readPfn).toBe(uncached(p.mm, tlb.vpn, false));
    if (tlb.writePfn >= 0) expect(tlb.writePfn).toBe(uncached(p.mm, tlb.vpn, true));
  }
}

describe('uaccess TLB: observably the same as the page-table walk', () => {
  it('on random sequences of copies and address-space changes', () => {
    fc.assert(fc.property(fc.array(opArb, { minLength: 1, maxLength: 30 }), (ops) => {
      const a = world();
      const b = world();
      for (const op of ops) {
        expect(apply(a, op, true)).toEqual(apply(b, op, false));
        checkTlb(a);
        expect(state(a)).toEqual(state(b));
      }
      // Everything readable reads the same in both worlds at the end.
      for (let i = 0; i < 2; i++) {
        const pa = a.procs[i] as Process;
        const pb = b.procs[i] as Process;
        if (!pa.alive) continue;
        for (let pg = 0; pg < PAGES; pg++) {
          const x = new Uint8Array(P);
          const y = new Uint8Array(P);
          expect(copyFromUserPages(pa.mm, BASE + pg * P, x)).toEqual(copyFromUserPages(pb.mm, BASE + pg * P, y));
          expect(x).toEqual(y);
        }
      }
    }), { numRuns: 120 });
  });

  it('the TLB is hit: a second copy of the same page takes it', () => {
    const w = world();
    const p = w.procs[0] as Process;
    value(copyToUser(p.mm, BASE + 8, new Uint8Array(8).fill(7)));
    expect(p.mm.tlb.vpn).toBe(BASE / P);
    expect(p.mm.tlb.gen).toBe(p.mm.mapGen);
    expect(p.mm.tlb.writePfn).toBeGreaterThanOrEqual(0);
    const d = new Uint8Array(8);
    value(copyFromUser(p.mm, BASE + 8, d));
    expect([...d]).toEqual(new Array(8).fill(7));
    // A change to the page tables moves mapGen: the entry no longer answers.
    value(p.mm.mprotect(BASE, P, PROT_READ));
    expect(p.mm.tlb.gen).not.toBe(p.mm.mapGen);
    expect(copyToUser(p.mm, BASE + 8, d).ok).toBe(false);
  });
});
