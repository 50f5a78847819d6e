import { describe, expect, it } from 'vitest';
import { FOLIO_PAGES } from '../../../src/kernel/mm/frame-allocator.ts';
import { MADV_HUGEPAGE, MADV_NOHUGEPAGE, MAP_ANONYMOUS, MAP_PRIVATE, PROT_READ, PROT_WRITE } from '../../../src/kernel/mm/mman.ts';
import type { Process } from '../../../src/kernel/process/process.ts';
import type { ThpMode } from '../../../src/kernel/mm/thp.ts';
import { bytes, checkFrames, errno, machine, P, readBack, value } from './helpers.ts';

const MiB = 2 ** 20;
const HP = 2 * MiB;

/** 16 MiB of memory, 2048 frames from pfn 16, THP mode `thp`. */
const big = (thp: ThpMode = 'always', frames = 2048) => machine(frames, { thp }, 16 * MiB);

/** A private anonymous mapping of `size` bytes starting on a 2 MiB boundary (the slack stays mapped). */
function aligned(p: Process, size: number): number {
  const raw = value(p.mmap(0, size + HP, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  return Math.ceil(raw / HP) * HP;
}

/** Page i of a pattern: byte (i * 7 + 1) & 0xff at its start. */
function fillPattern(p: Process, va: number, pages: number): void {
  for (let i = 0; i < pages; i++) value(p.mm.write(va + i * P, bytes(8, (i * 7 + 1) & 0xff)));
}
function expectPattern(p: Process, va: number, pages: number, skip: readonly number[] = []): void {
  for (let i = 0; i < pages; i++) if (!skip.includes(i)) expect(readBack(p.mm, va + i * P, 8)[0], `page ${i}`).toBe((i * 7 + 1) & 0xff);
}

describe('transparent huge pages', () => {
  it('a write fault in an aligned 2 MiB slot of an anonymous VMA maps one order-9 folio with one PMD entry', () => {
    const m = big();
    const p = m.table.spawn();
    const va = aligned(p, HP);
    value(p.mm.write(va + 5 * P, bytes(4, 9)));
    expect(m.frames.allocated).toBe(FOLIO_PAGES);
    const pfn = p.mm.lookupPfn(va + 5 * P);
    const head = m.frames.folioHead(pfn);
    expect([head % FOLIO_PAGES, pfn - head, m.frames.folioPages(pfn)]).toEqual([0, 5, FOLIO_PAGES]);
    const vma = p.mm.findVma(va)!;
    expect([vma.huge.size, vma.pages.size]).toEqual([1, 0]);
    expect(p.status().RssAnon).toBe(2048);
    expect(m.frames.refCount(pfn)).toBe(1);
    expect(readBack(p.mm, va + 5 * P, 4)).toEqual(bytes(4, 9));
    expect(readBack(p.mm, va + 6 * P, 4)).toEqual(bytes(4, 0));
    checkFrames(m);
    p.exit();
    expect(m.frames.allocated).toBe(0);
  });

  it('never, MADV_NOHUGEPAGE, madvise mode without advice, and slots not inside the VMA use 4 KiB pages', () => {
    for (const [mode, advice, size, want] of [
      ['never', 0, HP, 1], ['always', MADV_NOHUGEPAGE, HP, 1], ['madvise', 0, HP, 1],
      ['madvise', MADV_HUGEPAGE, HP, FOLIO_PAGES], ['always', 0, HP - P, 1],
    ] as const) {
      const m = big(mode);
      const p = m.table.spawn();
      const va = aligned(p, HP);
      if (size < HP) value(p.mm.munmap(va + size, HP - size));
      if (advice !== 0) value(p.mm.madvise(va, size, advice));
      value(p.mm.write(va, bytes(1, 1)));
      expect(m.frames.allocated, `${mode} ${advice} ${size}`).toBe(want);
      checkFrames(m);
    }
  });

  it('falls back to 4 KiB pages when no aligned order-9 block is free', () => {
    const m = big('always', 600); // frames 16..615: no whole aligned block of 512 past 512
    const p = m.table.spawn();
    const va = aligned(p, HP);
    value(p.mm.write(va, bytes(1, 1)));
    expect(m.frames.folioPages(p.mm.lookupPfn(va))).toBe(1);
    expect(m.frames.allocated).toBe(1);
  });

  it('munmap of 4 KiB inside a THP splits the PMD; data, RSS and references stay exact', () => {
    const m = big();
    const p = m.table.spawn();
    const va = aligned(p, HP);
    fillPattern(p, va, FOLIO_PAGES);
    value(p.mm.munmap(va + 100 * P, P));
    expect(errno(p.mm.read(va + 100 * P, new Uint8Array(1)))).toBe('EFAULT');
    expectPattern(p, va, FOLIO_PAGES, [100]);
    expect(p.status().RssAnon).toBe((FOLIO_PAGES - 1) * 4);
    // The folio stays whole while any page of it is mapped (Linux queues it for a deferred split).
    expect(m.frames.allocated).toBe(FOLIO_PAGES);
    expect(m.frames.refCount(p.mm.lookupPfn(va))).toBe(FOLIO_PAGES - 1);
    checkFrames(m);
    value(p.mm.mprotect(va + 200 * P, P, PROT_READ));
    expect(errno(p.mm.write(va + 200 * P, bytes(1, 1)))).toBe('EFAULT');
    expectPattern(p, va, FOLIO_PAGES, [100]);
    checkFrames(m);
    value(p.mm.munmap(va, HP));
    expect([m.frames.allocated, p.status().RssAnon]).toEqual([0, 0]);
  });

  it('fork shares the THP copy-on-write; a write splits and copies one page on the writer side', () => {
    const m = big();
    const parent = m.table.spawn();
    const va = aligned(parent, HP);
    fillPattern(parent, va, FOLIO_PAGES);
    const child = value(parent.fork());
    expect(m.frames.allocated).toBe(FOLIO_PAGES);
    expect(m.frames.refCount(parent.mm.lookupPfn(va))).toBe(2);
    expect(child.mm.lookupPfn(va + 3 * P)).toBe(parent.mm.lookupPfn(va + 3 * P));
    value(child.mm.write(va + 3 * P, bytes(8, 0xee)));
    expect(readBack(child.mm, va + 3 * P, 1)[0]).toBe(0xee);
    expectPattern(parent, va, FOLIO_PAGES);
    expectPattern(child, va, FOLIO_PAGES, [3]);
    expect(child.mm.lookupPfn(va + 3 * P)).not.toBe(parent.mm.lookupPfn(va + 3 * P));
    expect(child.mm.lookupPfn(va + 4 * P)).toBe(parent.mm.lookupPfn(va + 4 * P));
    expect([parent.status().RssAnon, child.status().RssAnon]).toEqual([2048, 2048]);
    checkFrames(m);
    value(parent.mm.write(va + 9 * P, bytes(8, 0xdd)));
    expectPattern(child, va, FOLIO_PAGES, [3]);
    checkFrames(m);
    child.exit();
    parent.exit();
    expect(m.frames.allocated).toBe(0);
  });

  it('pinning a THP range returns one run and counts pins on the folio; partial unpin stays exact', () => {
    const m = big();
    const p = m.table.spawn();
    const va = aligned(p, 2 * HP);
    const runs = value(p.mm.pinUserPageRuns(va + 10 * P, 2 * FOLIO_PAGES - 20, true));
    expect(runs.pages).toBe(2 * FOLIO_PAGES - 20);
    const head = m.frames.folioHead(runs.pfns[0]!);
    expect(runs.pfns[0]! - head).toBe(10);
    expect(runs.length).toBeLessThanOrEqual(2);
    expect(m.frames.pinCount(head)).toBe(FOLIO_PAGES - 10);
    // Long-term pins outlive the mapping.
    value(p.mm.munmap(va, 2 * HP));
    expect(m.frames.allocated).toBe(2 * FOLIO_PAGES);
    m.frames.unpinRange(runs.pfns[0]!, 100);
    expect(m.frames.pinCount(head)).toBe(FOLIO_PAGES - 110);
    checkFrames(m);
    m.frames.unpinRange(runs.pfns[0]! + 100, runs.pages - 100);
    expect(m.frames.allocated).toBe(0);
  });

  it('fork copies the pages of a pinned THP to the child and keeps the parent on the pinned frames', () => {
    const m = big();
    const parent = m.table.spawn();
    const va = aligned(parent, HP);
    fillPattern(parent, va, FOLIO_PAGES);
    const pfns = value(parent.mm.pinUserPages(va, 2, true));
    const child = value(parent.fork());
    expect(parent.mm.lookupPfn(va)).toBe(pfns[0]);
    expect(child.mm.lookupPfn(va)).not.toBe(pfns[0]);
    expectPattern(child, va, FOLIO_PAGES);
    checkFrames(m);
    parent.mm.unpinUserPages(pfns);
    child.exit();
    parent.exit();
    expect(m.frames.allocated).toBe(0);
  });
});
