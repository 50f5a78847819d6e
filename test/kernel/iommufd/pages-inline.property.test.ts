// Property: a one-page storage of user memory keeps its frame and user count inline (no run or user
// structure) until a general path (pfnsFor / release) needs the structures; either way it behaves as
// page 0 of a larger storage does through the general paths. Two worlds take the same random pins and
// releases: one on one-page storages through a random mix of the one-page and general paths, the other
// on two-page storages through pfnsFor(0, 0) / release(0, 0) only; over read-write, read-only, PROT_NONE
// and unmapped pages (and forks), with a small RLIMIT_MEMLOCK. Results, frames, users, pins and
// accounting must agree after every step.

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { PAGE_SIZE } from '../../../src/hw/memory/physical-memory.ts';
import { IoptPages, NO_PFN } from '../../../src/kernel/iommufd/pages.ts';
import type { Mm } from '../../../src/kernel/mm/mm.ts';
import { MAP_ANONYMOUS, MAP_PRIVATE, PROT_NONE, PROT_READ, PROT_WRITE } from '../../../src/kernel/mm/mman.ts';
import type { Result } from '../../../src/kernel/errno.ts';
import { checkFrames, machine, value } from '../mm/helpers.ts';

const NPAGES = 6;

type Op = { op: 'pin' | 'release'; store: number; general: boolean } | { op: 'touch'; index: number } | { op: 'fork' };

const opArb: fc.Arbitrary<Op> = fc.oneof(
  fc.record({ op: fc.constantFrom('pin' as const, 'pin' as const, 'release' as const), store: fc.nat(2 * NPAGES - 1), general: fc.boolean() }),
  fc.record({ op: fc.constant('touch' as const), index: fc.nat(NPAGES - 1) }),
  fc.constant({ op: 'fork' as const }),
);

// Pages 2 read-only, 3 PROT_NONE, 4 unmapped; a writeable and a read-only storage at each page.
function world(pagesPerStore: number) {
  const m = machine(64);
  const p = m.table.spawn({ uid: 1000, rlimits: { RLIMIT_MEMLOCK: { soft: 5 * PAGE_SIZE, hard: 5 * PAGE_SIZE } } });
  const va = value(p.mmap(0, (NPAGES + 1) * PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  value(p.mm.mprotect(va + 2 * PAGE_SIZE, PAGE_SIZE, PROT_READ));
  value(p.mm.mprotect(va + 3 * PAGE_SIZE, PAGE_SIZE, PROT_NONE));
  value(p.mm.munmap(va + 4 * PAGE_SIZE, PAGE_SIZE));
  const stores: IoptPages[] = [];
  for (let i = 0; i < 2 * NPAGES; i++) {
    stores.push(value(IoptPages.fromUser(p, va + (i >> 1) * PAGE_SIZE, pagesPerStore * PAGE_SIZE, (i & 1) === 0)));
  }
  return { m, p, va, stores, children: [] as Mm[] };
}

type World = ReturnType<typeof world>;

function state(w: World): unknown {
  const pages = w.stores.map((s) => {
    const pfn = s.pfnAt(0);
    return [pfn, s.pfnAt(1), s.userCount(0), s.pinnedPages, s.runCount, pfn === NO_PFN ? 0 : w.m.memory.pinCount(pfn)];
  });
  return { pages, vmPin: w.p.mm.pinnedVm, locked: w.p.user.lockedVm, free: w.m.frames.free, rss: w.p.mm.rssPages };
}

const outcome = (r: Result<number>): unknown => (r.ok ? r.value : { errno: r.errno, reason: r.reason });

describe('one-page storage of user memory', () => {
  it('inline state == page 0 of a larger storage through the general paths', () => {
    fc.assert(fc.property(fc.array(opArb, { maxLength: 40 }), (ops) => {
      const ref = world(2);
      const one = world(1);
      for (const o of ops) {
        if (o.op === 'pin') {
          const g = ref.stores[o.store] as IoptPages;
          const f = one.stores[o.store] as IoptPages;
          const want = g.pfnsFor(0, 0);
          const wantPfn: Result<number> = want.ok ? { ok: true, value: want.value[0]?.pfn ?? NO_PFN } : want;
          let got: Result<number>;
          if (o.general) {
            const r = f.pfnsFor(0, 0);
            got = r.ok ? { ok: true, value: r.value[0]?.pfn ?? NO_PFN } : r;
          } else {
            const r = f.pfnFor(0);
            got = typeof r === 'number' ? { ok: true, value: r } : r;
          }
          expect(outcome(got)).toEqual(outcome(wantPfn));
        } else if (o.op === 'release') {
          const g = ref.stores[o.store] as IoptPages;
          const f = one.stores[o.store] as IoptPages;
          if (g.userCount(0) === 0) {
            expect(() => g.release(0, 0)).toThrow();
            expect(() => (o.general ? f.release(0, 0) : f.releaseOne(0))).toThrow();
            continue;
          }
          g.release(0, 0);
          if (o.general) f.release(0, 0);
          else f.releaseOne(0);
        } else if (o.op === 'touch') {
          const a = ref.p.mm.write(ref.va + o.index * PAGE_SIZE, new Uint8Array([o.index]));
          const b = one.p.mm.write(one.va + o.index * PAGE_SIZE, new Uint8Array([o.index]));
          expect(b.ok).toBe(a.ok);
        } else {
          const a = ref.p.mm.fork();
          const b = one.p.mm.fork();
          expect(b.ok).toBe(a.ok);
          if (a.ok) ref.children.push(a.value);
          if (b.ok) one.children.push(b.value);
        }
        expect(state(one)).toEqual(state(ref));
      }
      for (const w of [ref, one]) {
        for (const s of w.stores) {
          while (s.userCount(0) > 0) s.release(0, 0);
          s.put();
        }
        checkFrames(w.m, { mms: w.children });
        expect(w.p.mm.pinnedVm).toBe(0);
      }
    }), { numRuns: 150 });
  });
});
