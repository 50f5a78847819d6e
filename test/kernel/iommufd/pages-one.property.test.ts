// Property: the one-page paths (IoptPages.pfnFor / releaseOne, GUP's pinUserPage behind them) do exactly
// what pfnsFor(i, i) / release(i, i) do. Two identical worlds take the same random pins and releases, one
// through each path, over user memory with read-write, read-only, PROT_NONE and unmapped pages (and a
// forked child sharing pages copy-on-write), and over memfd pages, with a small RLIMIT_MEMLOCK; results,
// frames, users, pins and accounting must agree after every step.

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { PAGE_SIZE } from '../../../src/hw/memory/physical-memory.ts';
import { IoptPages, NO_PFN } from '../../../src/kernel/iommufd/pages.ts';
import { MAP_ANONYMOUS, MAP_PRIVATE, MAP_SHARED, PROT_NONE, PROT_READ, PROT_WRITE } from '../../../src/kernel/mm/mman.ts';
import type { Mm } from '../../../src/kernel/mm/mm.ts';
import { checkFrames, machine, value } from '../mm/helpers.ts';

const NPAGES = 12;

type Op = { op: 'pin' | 'release'; store: number; index: number } | { op: 'touch'; index: number } | { op: 'fork' };

const opArb: fc.Arbitrary<Op> = fc.oneof(
  fc.record({ op: fc.constantFrom('pin' as const, 'pin' as const, 'release' as const), store: fc.nat(2), index: fc.nat(NPAGES - 1) }),
  fc.record({ op: fc.constant('touch' as const), index: fc.nat(NPAGES - 1) }),
  fc.constant({ op: 'fork' as const }),
);

function world() {
  const m = machine(96);
  const p = m.table.spawn({ uid: 1000, rlimits: { RLIMIT_MEMLOCK: { soft: 8 * PAGE_SIZE, hard: 8 * PAGE_SIZE } } });
  const va = value(p.mmap(0, NPAGES * PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  // Pages 3-4 read-only, 6 PROT_NONE, 9 unmapped.
  value(p.mm.mprotect(va + 3 * PAGE_SIZE, 2 * PAGE_SIZE, PROT_READ));
  value(p.mm.mprotect(va + 6 * PAGE_SIZE, PAGE_SIZE, PROT_NONE));
  value(p.mm.munmap(va + 9 * PAGE_SIZE, PAGE_SIZE));
  const fd = value(p.memfdCreate('one'));
  value(p.ftruncate(fd, NPAGES * PAGE_SIZE));
  const file = value(p.memFile(fd));
  value(p.mmap(0, NPAGES * PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0));
  const stores = [
    value(IoptPages.fromUser(p, va, NPAGES * PAGE_SIZE, true)),
    value(IoptPages.fromUser(p, va, NPAGES * PAGE_SIZE, false)),
    value(IoptPages.fromFile(p, file, 0, NPAGES * PAGE_SIZE, true)),
  ];
  return { m, p, va, stores, children: [] as Mm[] };
}

type World = ReturnType<typeof world>;

function state(w: World): unknown {
  const pages = w.stores.map((s) => {
    const per: [number, number, number][] = [];
    for (let i = 0; i < NPAGES; i++) {
      const pfn = s.pfnAt(i);
      per.push([pfn, s.userCount(i), pfn === NO_PFN ? 0 : w.m.memory.pinCount(pfn)]);
    }
    return { pinned: s.pinnedPages, runs: s.runCount, per };
  });
  return { pages, vmPin: w.p.mm.pinnedVm, locked: w.p.user.lockedVm, free: w.m.frames.free, rss: w.p.mm.rssPages };
}

describe('one-page pin and release', () => {
  it('pfnFor/releaseOne == pfnsFor(i, i)/release(i, i)', () => {
    fc.assert(fc.property(fc.array(opArb, { maxLength: 40 }), (ops) => {
      const general = world();
      const fast = world();
      for (const o of ops) {
        if (o.op === 'pin') {
          const g = general.stores[o.store] as IoptPages;
          const f = fast.stores[o.store] as IoptPages;
          const want = g.pfnsFor(o.index, o.index);
          const got = f.pfnFor(o.index);
          if (want.ok) expect(got).toBe(want.value[0]?.pfn);
          else expect(typeof got === 'number' ? got : { errno: got.errno, reason: got.reason }).toEqual({ errno: want.errno, reason: want.reason });
        } else if (o.op === 'release') {
          const g = general.stores[o.store] as IoptPages;
          const f = fast.stores[o.store] as IoptPages;
          if (g.userCount(o.index) === 0) {
            expect(() => g.release(o.index, o.index)).toThrow();
            expect(() => f.releaseOne(o.index)).toThrow();
            continue;
          }
          g.release(o.index, o.index);
          f.releaseOne(o.index);
        } else if (o.op === 'touch') {
          // A CPU write (copy-on-write after a fork, a fault-in otherwise); EFAULT where not writable.
          const a = general.p.mm.write(general.va + o.index * PAGE_SIZE, new Uint8Array([o.index]));
          const b = fast.p.mm.write(fast.va + o.index * PAGE_SIZE, new Uint8Array([o.index]));
          expect(b.ok).toBe(a.ok);
        } else {
          const a = general.p.mm.fork();
          const b = fast.p.mm.fork();
          expect(b.ok).toBe(a.ok);
          if (a.ok) general.children.push(a.value);
          if (b.ok) fast.children.push(b.value);
        }
        expect(state(fast)).toEqual(state(general));
      }
      for (const w of [general, fast]) {
        for (const s of w.stores) for (let i = 0; i < NPAGES; i++) while (s.userCount(i) > 0) s.release(i, i);
        checkFrames(w.m, { mms: w.children });
        expect(w.p.mm.pinnedVm).toBe(0);
      }
    }), { numRuns: 150 });
  });
});
