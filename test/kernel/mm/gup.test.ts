import { describe, expect, it } from 'vitest';
import {
  MAP_ANONYMOUS, MAP_PRIVATE, MAP_SHARED, PROT_NONE, PROT_READ, PROT_WRITE,
} from '../../../src/kernel/mm/mman.ts';
import { bytes, checkFrames, errno, machine, P, readBack, value } from './helpers.ts';

const RW = PROT_READ | PROT_WRITE;
const ANON = MAP_PRIVATE | MAP_ANONYMOUS;

function proc(frames = 64) {
  const m = machine(frames);
  return { ...m, p: m.table.spawn() };
}

describe('pinUserPages', () => {
  it('pins fault pages in and raise PhysicalMemory pin and reference counts; unpin drops them', () => {
    const m = proc();
    const { p, memory } = m;
    const va = value(p.mmap(0, 4 * P, RW, ANON, -1, 0));
    const pfns = value(p.mm.pinUserPages(va + 10, 3, true));
    expect(pfns).toHaveLength(3);
    expect(new Set(pfns).size).toBe(3);
    for (const [i, pfn] of pfns.entries()) {
      expect([memory.pinCount(pfn), memory.refCount(pfn)]).toEqual([1, 2]);
      expect(p.mm.lookupPfn(va + i * P)).toBe(pfn);
    }
    // A second pin of the same page: same frame, two pins.
    const again = value(p.mm.pinUserPages(va, 1, false));
    expect(again).toEqual([pfns[0]]);
    expect(memory.pinCount(pfns[0]!)).toBe(2);
    checkFrames(m);
    p.mm.unpinUserPages(pfns);
    p.mm.unpinUserPages(again);
    for (const pfn of pfns) expect([memory.pinCount(pfn), memory.refCount(pfn)]).toEqual([0, 1]);
    checkFrames(m);
  });

  it('GUP does not charge VmPin; the pinner does (iommufd charges pinned_vm in every accounting mode)', () => {
    const { p } = proc();
    const va = value(p.mmap(0, 2 * P, RW, ANON, -1, 0));
    const pfns = value(p.mm.pinUserPages(va, 2, true));
    expect(p.status().VmPin).toBe(0);
    p.mm.accountPinnedVm(pfns.length, 'add');
    expect(p.status()).toMatchObject({ VmPin: 8, VmLck: 0 });
    p.mm.unpinUserPages(pfns);
    p.mm.accountPinnedVm(pfns.length, 'sub');
    expect(p.status().VmPin).toBe(0);
    expect(() => p.mm.accountPinnedVm(1, 'sub')).toThrow(/below zero/);
  });

  it('pinned pages outlive munmap until unpinned', () => {
    const m = proc();
    const { p, frames, memory } = m;
    const va = value(p.mmap(0, 2 * P, RW, ANON, -1, 0));
    value(p.mm.write(va, bytes(2 * P, 0x11)));
    const pfns = value(p.mm.pinUserPages(va, 2, true));
    value(p.mm.munmap(va, 2 * P));
    expect(frames.allocated).toBe(2);
    for (const pfn of pfns) expect([memory.refCount(pfn), memory.pinCount(pfn)]).toEqual([1, 1]);
    // The device still sees the data.
    expect(memory.read32(pfns[1]! * P)).toBe(0x11111111);
    checkFrames(m);
    p.mm.unpinUserPages(pfns);
    expect(frames.allocated).toBe(0);
    expect(memory.populatedFrames).toBe(0);
  });

  it('pins survive the exit of the process and can be dropped afterwards', () => {
    const m = proc();
    const { p, frames } = m;
    const va = value(p.mmap(0, 2 * P, RW, MAP_SHARED | MAP_ANONYMOUS, -1, 0));
    const pfns = value(p.mm.pinUserPages(va, 2, true));
    p.exit();
    expect(frames.allocated).toBe(2);
    // fork_gone: pinning from an exited mm fails (mmget_not_zero()).
    expect(errno(p.mm.pinUserPages(va, 1, false))).toBe('EFAULT');
    p.mm.unpinUserPages(pfns);
    expect(frames.allocated).toBe(0);
  });

  it('EFAULT for unmapped pages, write pins of read-only mappings, read pins of PROT_NONE; nothing stays pinned', () => {
    const m = proc();
    const { p, memory } = m;
    const rw = value(p.mmap(0x20_0000, 2 * P, RW, ANON, -1, 0));
    const ro = value(p.mmap(0x20_0000 + 2 * P, P, PROT_READ, ANON, -1, 0));
    const none = value(p.mmap(0x20_0000 + 3 * P, P, PROT_NONE, ANON, -1, 0));
    expect(errno(p.mm.pinUserPages(rw, 3, true))).toBe('EFAULT');
    expect(errno(p.mm.pinUserPages(none, 1, false))).toBe('EFAULT');
    expect(errno(p.mm.pinUserPages(rw + 4 * P, 1, false))).toBe('EFAULT');
    expect(errno(p.mm.pinUserPages(rw, 3, false))).toBe('ok');
    expect(errno(p.mm.pinUserPages(ro, 1, true))).toBe('EFAULT');
    expect(errno(p.mm.pinUserPages(rw, -1, true))).toBe('EINVAL');
    expect(value(p.mm.pinUserPages(rw, 0, true))).toEqual([]);
    let pinned = 0;
    m.frames.forEachAllocated((pfn) => { pinned += memory.pinCount(pfn); });
    expect(pinned).toBe(3);
  });

  it('ENOMEM while faulting in leaves nothing pinned', () => {
    const m = proc(2);
    const { p, memory } = m;
    const va = value(p.mmap(0, 3 * P, RW, ANON, -1, 0));
    expect(errno(p.mm.pinUserPages(va, 3, true))).toBe('ENOMEM');
    m.frames.forEachAllocated((pfn) => expect(memory.pinCount(pfn)).toBe(0));
    checkFrames(m);
  });

  it('a read-only pin of a private mapping unshares, so a later write keeps the pinned frame (ro_unshare)', () => {
    const m = proc();
    const { p } = m;
    const fd = value(p.memfdCreate('exe'));
    value(p.ftruncate(fd, P));
    const priv = value(p.mmap(0, P, RW, MAP_PRIVATE, fd, 0));
    expect(readBack(p.mm, priv, 1)).toEqual(bytes(1, 0));
    const cachePfn = value(p.memFile(fd)).file.findPage(0);
    expect(p.mm.lookupPfn(priv)).toBe(cachePfn);
    const [pfn] = value(p.mm.pinUserPages(priv, 1, false));
    expect(pfn).not.toBe(cachePfn);
    value(p.mm.write(priv, bytes(P, 1)));
    expect(p.mm.lookupPfn(priv)).toBe(pfn);
    // A never-touched anonymous page: a read pin gets a real frame, not the zero page.
    const anon = value(p.mmap(0, P, PROT_READ, ANON, -1, 0));
    const [z] = value(p.mm.pinUserPages(anon, 1, false));
    expect(p.mm.lookupPfn(anon)).toBe(z);
    checkFrames(m);
  });

  it('a read pin of a shared mapping pins the page-cache frame', () => {
    const { p } = proc();
    const va = value(p.mmap(0, P, PROT_READ, MAP_SHARED | MAP_ANONYMOUS, -1, 0));
    const [pfn] = value(p.mm.pinUserPages(va, 1, false));
    expect(value(p.mm.vmaList()[0]!.file!.file.getPage(0))).toBe(pfn);
  });

  it('a write pin breaks copy-on-write after fork, and fork copies pinned pages for the child', () => {
    const m = proc();
    const { p: parent, memory } = m;
    const va = value(parent.mmap(0, 2 * P, RW, ANON, -1, 0));
    value(parent.mm.write(va, bytes(2 * P, 1)));
    const child = value(parent.fork());
    const shared = parent.mm.lookupPfn(va);
    const [pinned] = value(parent.mm.pinUserPages(va, 1, true));
    expect(pinned).not.toBe(shared);
    expect(child.mm.lookupPfn(va)).toBe(shared);

    // Fork with the page pinned: the parent keeps the pinned frame, the child gets a copy at once.
    const child2 = value(parent.fork());
    expect(parent.mm.lookupPfn(va)).toBe(pinned);
    expect(child2.mm.lookupPfn(va)).not.toBe(pinned);
    expect(readBack(child2.mm, va, 1)).toEqual(bytes(1, 1));
    // The parent writes (as a device would DMA): the child's copy does not change, the pinned frame does.
    value(parent.mm.write(va, bytes(1, 2)));
    expect(parent.mm.lookupPfn(va)).toBe(pinned);
    expect(memory.read32(pinned! * P) & 0xff).toBe(2);
    expect(readBack(child2.mm, va, 1)).toEqual(bytes(1, 1));
    checkFrames(m);
  });
});
