// IoptPages: pin once, lazy pinning, USER/MM/NONE accounting with the /proc counters, EPERM/EFAULT,
// fork_gone, memfd pages and IOAS_CHANGE_PROCESS (uAPI reference §8, §6.15, §6.18).

import { describe, expect, it } from 'vitest';
import { IOMMU_READ, IOMMU_WRITE, IoPagetable } from '../../../src/kernel/iommufd/io-pagetable.ts';
import { U64_MAX } from '../../../src/kernel/iommufd/iova-intervals.ts';
import { IoptPages, NO_PFN } from '../../../src/kernel/iommufd/pages.ts';
import { runPfns } from '../../../src/kernel/iommufd/pfn-runs.ts';
import { MAP_ANONYMOUS, MAP_PRIVATE, MAP_SHARED, PROT_READ, PROT_WRITE } from '../../../src/kernel/mm/mman.ts';
import type { Process } from '../../../src/kernel/process/process.ts';
import { checkFrames, errno, machine, P, value, type Machine } from '../mm/helpers.ts';

const RW = IOMMU_READ | IOMMU_WRITE;

function anon(p: Process, npages: number, prot = PROT_READ | PROT_WRITE): number {
  return value(p.mmap(0, npages * P, prot, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
}

function memlock(pages: number): { RLIMIT_MEMLOCK: { soft: number; hard: number } } {
  return { RLIMIT_MEMLOCK: { soft: pages * P, hard: pages * P } };
}

function spawnUser(m: Machine, limitPages = 1024): Process {
  return m.table.spawn({ uid: 1000, rlimits: memlock(limitPages) });
}

describe('pin once, lazily', () => {
  it('maps pin nothing; two users of one page (two areas, one IOAS_COPY) pin it once', () => {
    const m = machine();
    const p = spawnUser(m);
    const va = anon(p, 4);
    const pages = value(IoptPages.fromUser(p, va, 4 * P, true));
    const iopt = new IoPagetable<IoptPages>();
    const a = value(iopt.map([{ pages, startByte: 0, length: BigInt(4 * P) }], RW)).areas[0]!;
    const copy = new IoPagetable<IoptPages>();
    const b = value(copy.map(value(iopt.getPages(a.iova, a.length)), RW)).areas[0]!;
    pages.put(); // the creator's reference: the areas hold theirs
    // Lazy: nothing pinned, nothing charged, nothing even faulted in.
    expect(pages.pinnedPages).toBe(0);
    expect(p.status()).toMatchObject({ VmPin: 0, VmRSS: 0 });
    const pa = runPfns(value(pages.pfnsFor(a.firstIndex, a.lastIndex)));
    const pb = runPfns(value(pages.pfnsFor(b.firstIndex, b.lastIndex)));
    expect([...pb]).toEqual([...pa]);
    for (const pfn of pa) expect(m.memory.pinCount(pfn)).toBe(1);
    expect(pages.pinnedPages).toBe(4);
    expect(p.status().VmPin).toBe(16);
    expect(p.user.lockedVm).toBe(4);
    pages.release(a.firstIndex, a.lastIndex);
    for (const pfn of pa) expect(m.memory.pinCount(pfn)).toBe(1);
    pages.release(b.firstIndex, b.lastIndex);
    for (const pfn of pa) expect(m.memory.pinCount(pfn)).toBe(0);
    expect(p.status().VmPin).toBe(0);
    expect(p.user.lockedVm).toBe(0);
    value(iopt.unmap(0n, U64_MAX));
    value(copy.unmap(0n, U64_MAX));
    expect(pages.refCount).toBe(0);
    checkFrames(m);
  });

  it('pins only the requested range, with a sub-page start', () => {
    const m = machine();
    const p = spawnUser(m);
    const va = anon(p, 8);
    const pages = value(IoptPages.fromUser(p, va + 100, 4 * P, true));
    expect(pages.npages).toBe(5);
    expect(pages.base).toBe(va);
    runPfns(value(pages.pfnsFor(2, 3)));
    expect([0, 1, 4].map((i) => pages.pfnAt(i))).toEqual([NO_PFN, NO_PFN, NO_PFN]);
    expect(pages.pfnAt(2)).toBe(p.mm.lookupPfn(va + 2 * P));
    expect(pages.pinnedPages).toBe(2);
    pages.release(2, 3);
    pages.put();
    expect(() => pages.release(0, 0)).toThrow();
    checkFrames(m);
  });

  it('user counts past 65535 spill over and still unpin exactly once', () => {
    const m = machine();
    const p = m.table.spawn();
    const pages = value(IoptPages.fromUser(p, anon(p, 1), P, true));
    for (let i = 0; i < 70_000; i++) runPfns(value(pages.pfnsFor(0, 0)));
    expect(pages.userCount(0)).toBe(70_000);
    expect(m.memory.pinCount(pages.pfnAt(0))).toBe(1);
    for (let i = 0; i < 70_000; i++) pages.release(0, 0);
    expect(pages.pinnedPages).toBe(0);
    pages.put();
    checkFrames(m);
  });
});

describe('accounting modes', () => {
  it('USER: user->locked_vm against RLIMIT_MEMLOCK, ENOMEM past it with nothing left pinned; VmPin charged', () => {
    const m = machine();
    const p = spawnUser(m, 4);
    const va = anon(p, 8);
    const pages = value(IoptPages.fromUser(p, va, 8 * P, true));
    expect(pages.accountMode).toBe('user');
    runPfns(value(pages.pfnsFor(0, 2)));
    const over = pages.pfnsFor(2, 4);
    expect(errno(over)).toBe('ENOMEM');
    expect(pages.pfnAt(3)).toBe(NO_PFN);
    expect(pages.userCount(2)).toBe(1);
    expect(p.user.lockedVm).toBe(3);
    expect(p.status()).toMatchObject({ VmPin: 12, VmLck: 0 });
    runPfns(value(pages.pfnsFor(3, 3)));
    expect(p.user.lockedVm).toBe(4);
    pages.release(0, 3);
    expect(p.user.lockedVm).toBe(0);
    expect(p.status()).toMatchObject({ VmPin: 0, VmLck: 0 });
    pages.put();
    checkFrames(m);
  });

  it('MM (context in MM mode): mm->locked_vm (VmLck) and VmPin, ENOMEM past the limit', () => {
    const m = machine();
    const p = spawnUser(m, 2);
    const pages = value(IoptPages.fromUser(p, anon(p, 4), 4 * P, true, { contextMode: 'mm' }));
    expect(pages.accountMode).toBe('mm');
    runPfns(value(pages.pfnsFor(0, 1)));
    expect(p.status()).toMatchObject({ VmPin: 8, VmLck: 8 });
    expect(p.user.lockedVm).toBe(0);
    expect(errno(pages.pfnsFor(2, 2))).toBe('ENOMEM');
    pages.release(0, 1);
    expect(p.status()).toMatchObject({ VmPin: 0, VmLck: 0 });
    pages.put();
    checkFrames(m);
  });

  it('NONE with CAP_IPC_LOCK: no limit and no locked_vm, but VmPin still counts', () => {
    const m = machine();
    const p = m.table.spawn({ rlimits: memlock(0) });
    const pages = value(IoptPages.fromUser(p, anon(p, 4), 4 * P, true, { contextMode: 'mm' }));
    expect(pages.accountMode).toBe('none');
    runPfns(value(pages.pfnsFor(0, 3)));
    expect(p.status()).toMatchObject({ VmPin: 16, VmLck: 0 });
    expect(p.user.lockedVm).toBe(0);
    pages.release(0, 3);
    expect(p.status().VmPin).toBe(0);
    pages.put();
  });

  it('the mode is decided at creation: dropping CAP_IPC_LOCK later does not change it', () => {
    const m = machine();
    const p = m.table.spawn({ rlimits: memlock(0) });
    const pages = value(IoptPages.fromUser(p, anon(p, 1), P, true));
    p.dropCapability('CAP_IPC_LOCK');
    runPfns(value(pages.pfnsFor(0, 0)));
    const later = value(IoptPages.fromUser(p, anon(p, 1), P, true));
    expect(later.accountMode).toBe('user');
    expect(errno(later.pfnsFor(0, 0))).toBe('ENOMEM');
    pages.release(0, 0);
    pages.put();
    later.put();
    checkFrames(m);
  });
});

describe('errors', () => {
  it('EPERM for a writeable area of read-only pages; EFAULT for a writeable pin of PROT_READ memory', () => {
    const m = machine();
    const p = spawnUser(m);
    const va = anon(p, 2, PROT_READ);
    const ro = value(IoptPages.fromUser(p, va, 2 * P, false));
    const iopt = new IoPagetable<IoptPages>();
    expect(errno(iopt.map([{ pages: ro, startByte: 0, length: BigInt(2 * P) }], RW))).toBe('EPERM');
    value(iopt.map([{ pages: ro, startByte: 0, length: BigInt(2 * P) }], IOMMU_READ));
    runPfns(value(ro.pfnsFor(0, 1)));
    ro.release(0, 1);
    const rw = value(IoptPages.fromUser(p, va, 2 * P, true));
    expect(errno(rw.pfnsFor(0, 1))).toBe('EFAULT');
    expect(rw.pinnedPages).toBe(0);
    expect(p.status().VmPin).toBe(0);
    value(iopt.unmap(0n, U64_MAX));
    ro.put();
    rw.put();
    checkFrames(m);
  });

  it('EFAULT for an unmapped VA, and nothing of the mapped part stays pinned', () => {
    const m = machine();
    const p = spawnUser(m);
    const va = anon(p, 4);
    value(p.mm.munmap(va + 2 * P, 2 * P));
    const pages = value(IoptPages.fromUser(p, va, 4 * P, true));
    expect(errno(pages.pfnsFor(0, 3))).toBe('EFAULT');
    expect(pages.pinnedPages).toBe(0);
    expect(p.user.lockedVm).toBe(0);
    pages.put();
    checkFrames(m);
  });

  it('EINVAL for length 0; EOVERFLOW when the VA range wraps', () => {
    const m = machine();
    const p = spawnUser(m);
    expect(errno(IoptPages.fromUser(p, 0x1000, 0, true))).toBe('EINVAL');
    expect(errno(IoptPages.fromUser(p, Number.MAX_SAFE_INTEGER - 10, 100, true))).toBe('EOVERFLOW');
  });

  it('fork_gone: a child maps and exits; without earlier pins the later fill is EFAULT', () => {
    const m = machine();
    const parent = spawnUser(m);
    const child = value(parent.fork());
    const va = anon(child, 2);
    value(child.mm.write(va, new Uint8Array([7])));
    const gone = value(IoptPages.fromUser(child, va, 2 * P, true));
    const kept = value(IoptPages.fromUser(child, va, 2 * P, true));
    // With a domain the pages were pinned before the exit.
    const pfns = runPfns(value(kept.pfnsFor(0, 1)));
    const childMm = child.mm;
    child.exit();
    expect(errno(gone.pfnsFor(0, 1))).toBe('EFAULT');
    // The pinned frame outlives the mm, with its data, and a second user shares it.
    const again = runPfns(value(kept.pfnsFor(0, 1)));
    expect([...again]).toEqual([...pfns]);
    const byte = new Uint8Array(1);
    m.memory.read(pfns[0]! * P, byte);
    expect(byte[0]).toBe(7);
    kept.release(0, 1);
    kept.release(0, 1);
    expect(childMm.pinnedVm).toBe(0);
    gone.put();
    kept.put();
    checkFrames(m, { mms: [childMm] });
  });
});

describe('memfd pages and IOAS_CHANGE_PROCESS', () => {
  function memfd(p: Process, bytes: number) {
    const fd = value(p.memfdCreate('buf'));
    value(p.ftruncate(fd, bytes));
    return { fd, file: value(p.memFile(fd)) };
  }

  it('memfd pages pin the page cache once, shared with a MAP_SHARED mapping; EINVAL past the end', () => {
    const m = machine();
    const p = spawnUser(m);
    const { fd, file } = memfd(p, 4 * P);
    const va = value(p.mmap(0, 4 * P, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0));
    expect(errno(IoptPages.fromFile(p, file, P, 4 * P, true))).toBe('EINVAL');
    const pages = value(IoptPages.fromFile(p, file, P, 2 * P, true));
    expect(pages.kind).toBe('file');
    const pfns = runPfns(value(pages.pfnsFor(0, 1)));
    value(p.mm.write(va + P, new Uint8Array([1])));
    expect(p.mm.lookupPfn(va + P)).toBe(pfns[0]);
    expect(m.memory.pinCount(pfns[0]!)).toBe(1);
    expect(p.status().VmPin).toBe(8);
    value(p.ftruncate(fd, 0));
    expect(errno(IoptPages.fromFile(p, file, 0, P, true))).toBe('EINVAL');
    pages.release(0, 1);
    pages.put();
    checkFrames(m);
  });

  it('a truncated memfd fails a later pin with EINVAL', () => {
    const m = machine();
    const p = spawnUser(m);
    const { fd, file } = memfd(p, 2 * P);
    const pages = value(IoptPages.fromFile(p, file, 0, 2 * P, true));
    value(p.ftruncate(fd, 0));
    expect(errno(pages.pfnsFor(0, 1))).toBe('EINVAL');
    pages.put();
  });

  it.each(['none', 'user', 'mm'] as const)('change_process (%s): VmPin/VmLck move from parent to child', (mode) => {
    const m = machine();
    const parent = mode === 'none' ? m.table.spawn() : spawnUser(m);
    const { file } = memfd(parent, P);
    const pages = value(IoptPages.fromFile(parent, file, 0, P, true, { contextMode: mode === 'mm' ? 'mm' : 'user' }));
    expect(pages.accountMode).toBe(mode);
    const user = value(IoptPages.fromUser(parent, anon(parent, 1), P, true));
    runPfns(value(pages.pfnsFor(0, 0)));
    expect(errno(IoptPages.changeProcess([pages, user], parent))).toBe('EINVAL');
    user.put();
    const child = value(parent.fork());
    expect(parent.status()).toMatchObject({ VmPin: 4, VmLck: mode === 'mm' ? 4 : 0 });
    expect(child.status()).toMatchObject({ VmPin: 0, VmLck: 0 });
    value(pages.changeProcess(child));
    if (mode === 'none') {
      expect(pages.source).toBe(parent);
      expect(parent.status().VmPin).toBe(4);
    } else {
      expect(pages.source).toBe(child);
      expect(parent.status()).toMatchObject({ VmPin: 0, VmLck: 0 });
      expect(child.status()).toMatchObject({ VmPin: 4, VmLck: mode === 'mm' ? 4 : 0 });
      expect(child.user.lockedVm).toBe(mode === 'user' ? 1 : 0);
    }
    pages.release(0, 0);
    expect(child.status().VmPin + parent.status().VmPin).toBe(0);
    expect(parent.user.lockedVm).toBe(0);
    pages.put();
    checkFrames(m);
  });

  it('change_process: ENOMEM over the new process limit changes nothing', () => {
    const m = machine();
    const parent = spawnUser(m);
    const { file } = memfd(parent, 2 * P);
    const pages = value(IoptPages.fromFile(parent, file, 0, 2 * P, true));
    runPfns(value(pages.pfnsFor(0, 1)));
    const other = m.table.spawn({ uid: 2000, rlimits: memlock(1) });
    expect(errno(pages.changeProcess(other))).toBe('ENOMEM');
    expect(pages.source).toBe(parent);
    expect(parent.user.lockedVm).toBe(2);
    expect(other.user.lockedVm).toBe(0);
    expect(other.status().VmPin).toBe(0);
    const roomy = m.table.spawn({ uid: 2000, rlimits: memlock(2) });
    value(pages.changeProcess(roomy));
    expect(parent.user.lockedVm).toBe(0);
    expect(roomy.user.lockedVm).toBe(2);
    expect(roomy.status().VmPin).toBe(8);
    pages.release(0, 1);
    expect(roomy.user.lockedVm).toBe(0);
    pages.put();
    checkFrames(m);
  });
});
