// copy_from_user()/copy_to_user() take a shortcut for a copy inside one page of an anonymous mapping.
// Property: on random copies over a layout with every kind of page (anonymous RW, read-only, PROT_NONE,
// a hole, shared and private memfd pages, a page past the file's end, a copy-on-write page after fork,
// an exited process), the shortcut gives what the general page-by-page path gives: the same result and
// reason, the same bytes, and the same page tables and RSS afterwards (two identical worlds, one per path).

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { MAP_ANONYMOUS, MAP_FIXED, MAP_PRIVATE, MAP_SHARED, PROT_NONE, PROT_READ, PROT_WRITE } from '../../../src/kernel/mm/mman.ts';
import { copyFromUser, copyFromUserPages, copyToUser, copyToUserPages } from '../../../src/kernel/mm/uaccess.ts';
import type { Process } from '../../../src/kernel/process/process.ts';
import { machine, P, value } from './helpers.ts';

const BASE = 0x40_0000;
const RW = PROT_READ | PROT_WRITE;
const PAGES = 11;

/** The same layout every time: page i of the window is described by the comment on its line. */
function build(exited: boolean): Process {
  const m = machine(256);
  const parent = m.table.spawn();
  const map = (page: number, n: number, prot: number, flags: number, fd: number): void => {
    value(parent.mmap(BASE + page * P, n * P, prot, flags | MAP_FIXED, fd, 0));
  };
  map(0, 2, RW, MAP_PRIVATE | MAP_ANONYMOUS, -1); // 0-1: anonymous RW, page 0 written
  value(parent.mm.write(BASE + 100, new Uint8Array(64).fill(0x11)));
  map(2, 1, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1); // 2: read-only
  map(3, 1, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1); // 3: PROT_NONE; 4: a hole
  const fd = value(parent.memfdCreate('f'));
  value(parent.ftruncate(fd, P));
  map(5, 2, RW, MAP_SHARED, fd); // 5: shared file page; 6: past the file's end
  map(7, 1, RW, MAP_PRIVATE, fd); // 7: private file page
  map(8, 1, RW, MAP_PRIVATE | MAP_ANONYMOUS, -1); // 8: written before fork: copy-on-write in the child
  value(parent.mm.write(BASE + 8 * P + 8, new Uint8Array(32).fill(0x22)));
  map(9, 2, RW, MAP_PRIVATE | MAP_ANONYMOUS, -1); // 9-10: anonymous RW, untouched
  const child = value(parent.fork());
  if (exited) child.exit();
  return child;
}

/** What the two worlds must agree on after the copy: every entry of every VMA, and RSS. */
function state(p: Process): unknown {
  return { vmas: p.mm.vmaList().map((v) => [v.start, v.end, [...v.pages.entries()]]), rss: [p.mm.rssAnon, p.mm.rssShmem] };
}

const copyArb = fc.record({
  write: fc.boolean(),
  page: fc.integer({ min: -1, max: PAGES }),
  // Near the page's edges most of the time: the shortcut must stop at the boundary.
  off: fc.oneof(fc.integer({ min: 0, max: 80 }), fc.integer({ min: P - 80, max: P - 1 }), fc.integer({ min: 0, max: P - 1 })),
  len: fc.integer({ min: 0, max: 96 }),
  fill: fc.integer({ min: 1, max: 255 }),
  exited: fc.boolean(),
});

describe('uaccess: the one-page shortcut equals the general path', () => {
  it('same result, bytes, page tables and RSS on random copies', () => {
    fc.assert(fc.property(copyArb, ({ write, page, off, len, fill, exited }) => {
      const fast = build(exited);
      const slow = build(exited);
      const addr = BASE + page * P + off;
      if (write) {
        const src = new Uint8Array(len).fill(fill);
        expect(copyToUser(fast.mm, addr, src)).toEqual(copyToUserPages(slow.mm, addr, src));
      } else {
        const a = new Uint8Array(len).fill(fill);
        const b = new Uint8Array(len).fill(fill);
        expect(copyFromUser(fast.mm, addr, a)).toEqual(copyFromUserPages(slow.mm, addr, b));
        expect(a).toEqual(b);
      }
      expect(state(fast)).toEqual(state(slow));
      if (!exited) {
        // What is in memory now around the copy, read the general way in both worlds.
        for (let p = Math.max(page, 0); p <= Math.min(page + 1, PAGES - 1); p++) {
          const x = new Uint8Array(P);
          const y = new Uint8Array(P);
          const rx = copyFromUserPages(fast.mm, BASE + p * P, x);
          expect(rx).toEqual(copyFromUserPages(slow.mm, BASE + p * P, y));
          expect(x).toEqual(y);
        }
      }
    }), { numRuns: 200 });
  });

  it('odd addresses fall back to the general path (same EFAULT)', () => {
    const a = build(false);
    for (const addr of [-1, 0.5, Number.MAX_SAFE_INTEGER, 2 ** 53, NaN, BASE - 1]) {
      expect(copyFromUser(a.mm, addr, new Uint8Array(4))).toEqual(copyFromUserPages(a.mm, addr, new Uint8Array(4)));
      expect(copyToUser(a.mm, addr, new Uint8Array(4))).toEqual(copyToUserPages(a.mm, addr, new Uint8Array(4)));
    }
  });
});
