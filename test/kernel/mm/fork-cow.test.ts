import { describe, expect, it } from 'vitest';
import { MAP_ANONYMOUS, MAP_PRIVATE, MAP_SHARED, PROT_READ, PROT_WRITE } from '../../../src/kernel/mm/mman.ts';
import { bytes, checkFrames, errno, machine, P, readBack, value } from './helpers.ts';

const RW = PROT_READ | PROT_WRITE;

describe('fork', () => {
  it('private anonymous pages are shared copy-on-write: a child write does not change the parent', () => {
    const m = machine();
    const parent = m.table.spawn();
    const va = value(parent.mmap(0, 2 * P, RW, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
    value(parent.mm.write(va, bytes(2 * P, 1)));
    const child = value(parent.fork());
    const pfn = parent.mm.lookupPfn(va);
    expect(child.mm.lookupPfn(va)).toBe(pfn);
    expect(m.memory.refCount(pfn)).toBe(2);
    expect(m.frames.allocated).toBe(2);
    checkFrames(m);

    value(child.mm.write(va, bytes(4, 2)));
    expect(readBack(parent.mm, va, 4)).toEqual(bytes(4, 1));
    expect(readBack(child.mm, va, 4)).toEqual(bytes(4, 2));
    expect(child.mm.lookupPfn(va)).not.toBe(pfn);
    expect(m.memory.refCount(pfn)).toBe(1);
    // The parent is now the only user of the old frame: its write reuses it (no copy).
    value(parent.mm.write(va, bytes(1, 3)));
    expect(parent.mm.lookupPfn(va)).toBe(pfn);
    expect(m.frames.allocated).toBe(3);
    checkFrames(m);
  });

  it('a parent write copies too, and untouched pages stay zero in both', () => {
    const m = machine();
    const parent = m.table.spawn();
    const va = value(parent.mmap(0, 2 * P, RW, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
    value(parent.mm.write(va, bytes(8, 5)));
    const child = value(parent.fork());
    value(parent.mm.write(va, bytes(8, 6)));
    value(parent.mm.write(va + P, bytes(8, 6)));
    expect(readBack(child.mm, va, 8)).toEqual(bytes(8, 5));
    expect(readBack(child.mm, va + P, 8)).toEqual(bytes(8, 0));
    expect(child.mm.rssAnon).toBe(1);
  });

  it('shared mappings stay shared: writes are visible to both', () => {
    const m = machine();
    const parent = m.table.spawn();
    const anon = value(parent.mmap(0, P, RW, MAP_SHARED | MAP_ANONYMOUS, -1, 0));
    const fd = value(parent.memfdCreate('buf'));
    value(parent.ftruncate(fd, P));
    const file = value(parent.mmap(0, P, RW, MAP_SHARED, fd, 0));
    value(parent.mm.write(anon, bytes(4, 1)));
    const child = value(parent.fork());
    // Linux does not copy page tables of shared mappings (vma_needs_copy()): the child faults them in.
    expect(child.mm.rssPages).toBe(0);
    value(child.mm.write(anon + 4, bytes(4, 2)));
    value(child.mm.write(file, bytes(4, 3)));
    expect(readBack(parent.mm, anon, 8)).toEqual(new Uint8Array([1, 1, 1, 1, 2, 2, 2, 2]));
    expect(readBack(parent.mm, file, 4)).toEqual(bytes(4, 3));
    expect(child.mm.lookupPfn(anon)).toBe(parent.mm.lookupPfn(anon));
    checkFrames(m);
  });

  it('private file mappings: unwritten pages follow the file, written pages are private copies', () => {
    const m = machine();
    const parent = m.table.spawn();
    const fd = value(parent.memfdCreate('f'));
    value(parent.ftruncate(fd, 2 * P));
    const shared = value(parent.mmap(0, 2 * P, RW, MAP_SHARED, fd, 0));
    const priv = value(parent.mmap(0, 2 * P, RW, MAP_PRIVATE, fd, 0));
    value(parent.mm.write(shared, bytes(2, 1)));
    value(parent.mm.write(shared + P, bytes(2, 1)));
    expect(readBack(parent.mm, priv, 2)).toEqual(bytes(2, 1));
    value(parent.mm.write(priv + P, bytes(2, 9)));
    const child = value(parent.fork());
    value(parent.mm.write(shared, bytes(2, 4)));
    value(parent.mm.write(shared + P, bytes(2, 4)));
    for (const p of [parent, child]) {
      expect(readBack(p.mm, priv, 2)).toEqual(bytes(2, 4));
      expect(readBack(p.mm, priv + P, 2)).toEqual(bytes(2, 9));
    }
    value(child.mm.write(priv, bytes(1, 7)));
    expect(readBack(parent.mm, priv, 1)).toEqual(bytes(1, 4));
    expect(readBack(parent.mm, shared, 1)).toEqual(bytes(1, 4));
    checkFrames(m);
  });

  it('children share the parent\'s open files; the child\'s counters start at 0', () => {
    const m = machine();
    const parent = m.table.spawn();
    const fd = value(parent.memfdCreate('f'));
    parent.mm.accountPinnedVm(3, 'add');
    const child = value(parent.fork());
    expect(child.fds.fds()).toEqual([0, 1, 2, fd]);
    expect(value(child.fds.get(fd))).toBe(value(parent.fds.get(fd)));
    expect(value(parent.fds.get(fd)).refCount).toBe(2);
    expect([child.mm.pinnedVm, child.ppid, child.pid > parent.pid]).toEqual([0, parent.pid, true]);
    parent.mm.accountPinnedVm(3, 'sub');
  });

  it('ENOMEM when a pinned page cannot be copied; nothing leaks', () => {
    const m = machine(3);
    const parent = m.table.spawn();
    const va = value(parent.mmap(0, 2 * P, RW, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
    value(parent.mm.write(va, bytes(2 * P, 1)));
    const pins = value(parent.mm.pinUserPages(va, 2, true));
    expect(m.frames.free).toBe(1);
    expect(errno(parent.fork())).toBe('ENOMEM');
    expect(m.table.size).toBe(1);
    expect(m.frames.allocated).toBe(2);
    checkFrames(m);
    parent.mm.unpinUserPages(pins);
    parent.exit();
    expect(m.frames.allocated).toBe(0);
  });
});
