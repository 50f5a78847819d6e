import { describe, expect, it } from 'vitest';
import { Mm } from '../../../src/kernel/mm/mm.ts';
import {
  MAP_ANONYMOUS, MAP_FIXED, MAP_FIXED_NOREPLACE, MAP_POPULATE, MAP_PRIVATE, MAP_SHARED, MAP_SHARED_VALIDATE,
  PROT_NONE, PROT_READ, PROT_WRITE,
} from '../../../src/kernel/mm/mman.ts';
import { OpenFile, StdioFile } from '../../../src/kernel/process/file.ts';
import { bytes, checkFrames, errno, machine, P, readBack, value } from './helpers.ts';

const RW = PROT_READ | PROT_WRITE;
const ANON = MAP_PRIVATE | MAP_ANONYMOUS;

function setup(frames = 64, layout = {}) {
  const m = machine(frames);
  const mm = new Mm(m.frames, layout);
  return { ...m, mm };
}

describe('mmap', () => {
  it('places mappings top-down below mmap_base, page-rounded, without overlap', () => {
    const { mm } = setup();
    const a = value(mm.mmap(0, 3 * P, RW, ANON, null, 0));
    const b = value(mm.mmap(0, 1, RW, ANON, null, 0));
    expect(a).toBe(mm.layout.mmapBase - 3 * P);
    expect(b).toBe(a - P);
    expect(mm.vmaList().map((v) => [v.start, v.end])).toEqual([[b, b + P], [a, a + 3 * P]]);
    expect(mm.totalVm).toBe(4);
  });

  it('honours a free hint and MAP_FIXED, and refuses MAP_FIXED_NOREPLACE over a mapping', () => {
    const { mm } = setup();
    expect(value(mm.mmap(0x10_0000, P, RW, ANON, null, 0))).toBe(0x10_0000);
    expect(value(mm.mmap(0x10_0000, P, RW, ANON, null, 0))).not.toBe(0x10_0000);
    expect(errno(mm.mmap(0x10_0000, P, RW, ANON | MAP_FIXED_NOREPLACE, null, 0))).toBe('EEXIST');
    value(mm.write(0x10_0000, bytes(4, 7)));
    expect(value(mm.mmap(0x10_0000, P, PROT_READ, ANON | MAP_FIXED, null, 0))).toBe(0x10_0000);
    expect(readBack(mm, 0x10_0000, 4)).toEqual(bytes(4, 0));
  });

  it.each([
    ['length 0', 0, 0, RW, ANON, 0, 'EINVAL'],
    ['unaligned offset', 0, P, RW, ANON, 100, 'EINVAL'],
    ['neither shared nor private', 0, P, RW, MAP_ANONYMOUS, 0, 'EINVAL'],
    ['unknown prot bit', 0, P, 0x100, ANON, 0, 'EINVAL'],
    ['unaligned MAP_FIXED', 0x10_0001, P, RW, ANON | MAP_FIXED, 0, 'EINVAL'],
    ['MAP_FIXED below mmap_min_addr', 0x1000, P, RW, ANON | MAP_FIXED, 0, 'EPERM'],
    ['longer than user space', 0, 2 ** 48, RW, ANON, 0, 'ENOMEM'],
    ['unknown flag with MAP_SHARED_VALIDATE', 0, P, RW, MAP_SHARED_VALIDATE | MAP_ANONYMOUS | 0x40, 0, 'EOPNOTSUPP'],
    ['a file mapping without a file', 0, P, RW, MAP_SHARED, 0, 'EBADF'],
  ] as const)('mmap errors: %s', (_what, addr, len, prot, flags, offset, want) => {
    const { mm } = setup();
    expect(errno(mm.mmap(addr, len, prot, flags, null, offset))).toBe(want);
  });

  it('ENODEV for a file that cannot be mapped', () => {
    const { mm } = setup();
    expect(errno(mm.mmap(0, P, RW, MAP_SHARED, new OpenFile(new StdioFile()), 0))).toBe('ENODEV');
  });

  it('ENOMEM when the address space has no room, and at vm.max_map_count', () => {
    const { mm } = setup(64, { mmapMinAddr: 0x10000, mmapBase: 0x14000, taskSize: 0x14000, maxMapCount: 3 });
    value(mm.mmap(0, 2 * P, RW, ANON, null, 0));
    expect(errno(mm.mmap(0, 3 * P, RW, ANON, null, 0))).toBe('ENOMEM');
    value(mm.mmap(0, P, RW, ANON, null, 0));
    value(mm.mmap(0, P, RW, ANON, null, 0));
    expect(errno(mm.mmap(0, P, RW, ANON, null, 0))).toBe('ENOMEM');
  });
});

describe('populate on touch', () => {
  it('a read of an untouched private anonymous page returns zeros and allocates nothing (zero page)', () => {
    const { mm, frames } = setup();
    const a = value(mm.mmap(0, 4 * P, RW, ANON, null, 0));
    expect(readBack(mm, a, 4 * P)).toEqual(new Uint8Array(4 * P));
    expect([frames.allocated, mm.rssPages]).toEqual([0, 0]);
  });

  it('the first write allocates one zero-filled frame per touched page', () => {
    const { mm, frames } = setup();
    const a = value(mm.mmap(0, 4 * P, RW, ANON, null, 0));
    value(mm.write(a + P + 10, bytes(3, 0xab)));
    expect([frames.allocated, mm.rssAnon]).toEqual([1, 1]);
    const page = readBack(mm, a + P, P);
    expect(page.subarray(10, 13)).toEqual(bytes(3, 0xab));
    expect(page.filter((b) => b !== 0).length).toBe(3);
    value(mm.write(a + 2 * P - 1, bytes(2, 1)));
    expect(frames.allocated).toBe(2);
    expect(mm.status()).toMatchObject({ VmRSS: 8, RssAnon: 8, VmSize: 16 });
  });

  it('MAP_POPULATE faults a writable private mapping in at once', () => {
    const { mm, frames } = setup();
    value(mm.mmap(0, 3 * P, RW, ANON | MAP_POPULATE, null, 0));
    expect(frames.allocated).toBe(3);
    value(mm.mmap(0, 3 * P, PROT_READ, ANON | MAP_POPULATE, null, 0));
    expect(frames.allocated).toBe(3);
  });

  it('ENOMEM from a write when no frame is free, with nothing written', () => {
    const { mm } = setup(1);
    const a = value(mm.mmap(0, 2 * P, RW, ANON, null, 0));
    expect(errno(mm.write(a + P - 1, bytes(2, 5)))).toBe('ENOMEM');
  });
});

describe('EFAULT', () => {
  it('for an address in no VMA, or a range running off a mapping', () => {
    const { mm } = setup();
    const a = value(mm.mmap(0, P, RW, ANON, null, 0));
    expect(errno(mm.read(a - P, new Uint8Array(1)))).toBe('EFAULT');
    expect(errno(mm.write(a + P - 2, bytes(4, 1)))).toBe('EFAULT');
    expect(readBack(mm, a + P - 2, 2)).toEqual(bytes(2, 0));
    expect(errno(mm.read(-1, new Uint8Array(1)))).toBe('EFAULT');
    expect(errno(mm.read(mm.taskSize, new Uint8Array(1)))).toBe('EFAULT');
  });

  it('for a write to a read-only mapping (copy_to_user) and any access to PROT_NONE', () => {
    const { mm, frames } = setup();
    const ro = value(mm.mmap(0, P, PROT_READ, ANON, null, 0));
    const none = value(mm.mmap(0, P, PROT_NONE, ANON, null, 0));
    const w = mm.write(ro, bytes(1, 1));
    expect(w).toMatchObject({ ok: false, errno: 'EFAULT', code: 14 });
    expect(w.ok ? '' : w.reason).toMatch(/r--p: no write access/);
    expect(errno(mm.read(ro, new Uint8Array(8)))).toBe('ok');
    expect(errno(mm.read(none, new Uint8Array(1)))).toBe('EFAULT');
    expect(errno(mm.write(none, bytes(1, 1)))).toBe('EFAULT');
    expect(frames.allocated).toBe(0);
  });

  it('a zero-length access is fine anywhere inside user space', () => {
    const { mm } = setup();
    expect(errno(mm.read(0x1234, new Uint8Array(0)))).toBe('ok');
  });
});

describe('munmap', () => {
  it('splits a VMA, frees the unmapped pages and keeps the rest', () => {
    const m = setup();
    const { mm, frames } = m;
    const a = value(mm.mmap(0, 4 * P, RW, ANON, null, 0));
    for (let i = 0; i < 4; i++) value(mm.write(a + i * P, bytes(1, i + 1)));
    expect(frames.allocated).toBe(4);
    value(mm.munmap(a + P, 2 * P));
    expect(mm.vmaList().map((v) => [v.start - a, v.end - a])).toEqual([[0, P], [3 * P, 4 * P]]);
    expect(frames.allocated).toBe(2);
    expect(readBack(mm, a, 1)).toEqual(bytes(1, 1));
    expect(readBack(mm, a + 3 * P, 1)).toEqual(bytes(1, 4));
    expect(errno(mm.read(a + P, new Uint8Array(1)))).toBe('EFAULT');
    checkFrames(m, { mms: [mm] });
  });

  it('spans several VMAs and holes; unmapping nothing succeeds', () => {
    const { mm, frames } = setup();
    const a = value(mm.mmap(0x20_0000, 2 * P, RW, ANON, null, 0));
    const b = value(mm.mmap(0x20_0000 + 4 * P, 2 * P, RW, ANON, null, 0));
    value(mm.write(a, bytes(2 * P, 1)));
    value(mm.write(b, bytes(2 * P, 2)));
    value(mm.munmap(a + P, 4 * P));
    expect(mm.vmaList().map((v) => [v.start, v.end])).toEqual([[a, a + P], [b + P, b + 2 * P]]);
    expect(frames.allocated).toBe(2);
    expect(errno(mm.munmap(0x40_0000, P))).toBe('ok');
  });

  it.each([
    ['unaligned address', 0x10_0001, P],
    ['length 0', 0x10_0000, 0],
    ['range past user space', 0x7fff_ffff_e000, 4 * P],
  ])('EINVAL for %s', (_what, addr, len) => {
    const { mm } = setup();
    expect(errno(mm.munmap(addr, len))).toBe('EINVAL');
  });

  it('ENOMEM when a split would pass vm.max_map_count', () => {
    const { mm } = setup(64, { maxMapCount: 1 });
    const a = value(mm.mmap(0, 3 * P, RW, ANON, null, 0));
    expect(errno(mm.munmap(a + P, P))).toBe('ENOMEM');
    expect(mm.mapCount).toBe(1);
    value(mm.munmap(a, 3 * P));
  });
});

describe('mprotect', () => {
  it('changes protection of part of a mapping, splitting it', () => {
    const { mm } = setup();
    const a = value(mm.mmap(0, 3 * P, RW, ANON, null, 0));
    value(mm.write(a, bytes(3 * P, 9)));
    value(mm.mprotect(a + P, P, PROT_READ));
    expect(mm.vmaList().map((v) => v.perms)).toEqual(['rw-p', 'r--p', 'rw-p']);
    expect(errno(mm.write(a + P, bytes(1, 1)))).toBe('EFAULT');
    expect(readBack(mm, a + P, 1)).toEqual(bytes(1, 9));
    value(mm.mprotect(a + P, P, RW));
    value(mm.write(a + P, bytes(1, 1)));
  });

  it('ENOMEM over a hole, EINVAL unaligned, and length 0 does nothing', () => {
    const { mm } = setup();
    const a = value(mm.mmap(0x20_0000, P, RW, ANON, null, 0));
    expect(errno(mm.mprotect(a, 2 * P, PROT_READ))).toBe('ENOMEM');
    expect(mm.vmaList()[0]?.perms).toBe('rw-p');
    expect(errno(mm.mprotect(a + 1, P, PROT_READ))).toBe('EINVAL');
    expect(errno(mm.mprotect(0x50_0000, 0, PROT_READ))).toBe('ok');
  });
});

describe('address space teardown', () => {
  it('mmput releases every frame; mmget keeps the mappings alive', () => {
    const m = machine(16);
    const mm = new Mm(m.frames);
    const a = value(mm.mmap(0, 4 * P, RW, ANON, null, 0));
    value(mm.write(a, bytes(4 * P, 3)));
    expect(mm.mmgetNotZero()).toBe(true);
    mm.mmput();
    expect([mm.alive, m.frames.allocated]).toEqual([true, 4]);
    mm.mmput();
    expect([mm.alive, m.frames.allocated, mm.mapCount]).toEqual([false, 0, 0]);
    expect(mm.mmgetNotZero()).toBe(false);
    expect(errno(mm.read(a, new Uint8Array(1)))).toBe('EFAULT');
  });
});
