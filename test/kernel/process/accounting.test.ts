import { describe, expect, it } from 'vitest';
import { MAP_ANONYMOUS, MAP_PRIVATE, PROT_READ, PROT_WRITE } from '../../../src/kernel/mm/mman.ts';
import { DEFAULT_RLIMITS, RLIM_INFINITY } from '../../../src/kernel/process/cred.ts';
import { errno, machine, P, value } from '../mm/helpers.ts';

const MiB = 2 ** 20;

describe('RLIMIT_MEMLOCK accounting', () => {
  it('defaults to 8 MiB; root has CAP_IPC_LOCK, other users do not', () => {
    const { table } = machine();
    const root = table.spawn();
    const user = table.spawn({ uid: 1000 });
    expect(root.getrlimit('RLIMIT_MEMLOCK')).toEqual({ soft: 8 * MiB, hard: 8 * MiB });
    expect(DEFAULT_RLIMITS.RLIMIT_MEMLOCK.soft).toBe(8 * MiB);
    expect(root.capable('CAP_IPC_LOCK')).toBe(true);
    expect(user.capabilities()).toEqual([]);
  });

  it.each(['user', 'mm'] as const)('%s mode: ENOMEM past the limit (in pages), exactly at it is fine', (mode) => {
    const { table } = machine();
    const p = table.spawn({ uid: 1000 });
    value(p.setrlimit('RLIMIT_MEMLOCK', { soft: 4 * P + 100, hard: 8 * MiB }));
    value(p.account(mode, 3, 'add'));
    const over = p.account(mode, 2, 'add');
    expect(over).toMatchObject({ ok: false, errno: 'ENOMEM', code: 12 });
    value(p.account(mode, 1, 'add'));
    const locked = mode === 'user' ? p.user.lockedVm : p.mm.lockedVm;
    expect(locked).toBe(4);
    expect(p.status().VmLck).toBe(mode === 'mm' ? 16 : 0);
    value(p.account(mode, 4, 'sub'));
    expect(mode === 'user' ? p.user.lockedVm : p.mm.lockedVm).toBe(0);
    expect(() => p.account(mode, 1, 'sub')).toThrow(/below zero/);
  });

  it('CAP_IPC_LOCK bypasses the limit unless the caller decided otherwise (iommufd charges with bypass false)', () => {
    const { table } = machine();
    const p = table.spawn({ uid: 0, rlimits: { RLIMIT_MEMLOCK: { soft: 0, hard: 0 } } });
    value(p.account('mm', 10, 'add'));
    value(p.account('user', 10, 'add'));
    expect(errno(p.account('user', 1, 'add', { bypassRlimit: false }))).toBe('ENOMEM');
    p.dropCapability('CAP_IPC_LOCK');
    expect(errno(p.account('mm', 1, 'add'))).toBe('ENOMEM');
    expect(p.mm.lockedVm).toBe(10);
  });

  it('user->locked_vm is one budget for every process of the uid, including forks', () => {
    const { table } = machine();
    const a = table.spawn({ uid: 1000, rlimits: { RLIMIT_MEMLOCK: { soft: 4 * P, hard: 4 * P } } });
    const b = table.spawn({ uid: 1000, rlimits: { RLIMIT_MEMLOCK: { soft: 4 * P, hard: 4 * P } } });
    const c = value(a.fork());
    const other = table.spawn({ uid: 1001, rlimits: { RLIMIT_MEMLOCK: { soft: 4 * P, hard: 4 * P } } });
    expect(a.user).toBe(b.user);
    expect(c.user).toBe(a.user);
    value(a.account('user', 3, 'add'));
    expect(errno(b.account('user', 2, 'add'))).toBe('ENOMEM');
    value(c.account('user', 1, 'add'));
    value(other.account('user', 4, 'add'));
    // mm mode is per address space: the child's mm starts empty.
    value(a.account('mm', 4, 'add'));
    value(c.account('mm', 4, 'add'));
    expect(table.users.find(1000)?.lockedVm).toBe(4);
  });

  it('the user struct lives while a process or another holder references it', () => {
    const { table } = machine();
    const p = table.spawn({ uid: 42 });
    const held = table.users.get(42); // as iommufd's get_uid() for source_user
    value(p.account('user', 2, 'add'));
    p.exit();
    expect(table.users.find(42)).toBe(held);
    value(held.accountLockedVm(2, 'sub', 0));
    held.put();
    expect(table.users.find(42)).toBeUndefined();
  });
});

describe('setrlimit', () => {
  it('EINVAL for soft above hard; EPERM for raising the hard limit without CAP_SYS_RESOURCE', () => {
    const { table } = machine();
    const p = table.spawn({ uid: 1000 });
    expect(errno(p.setrlimit('RLIMIT_MEMLOCK', { soft: 2 * MiB, hard: MiB }))).toBe('EINVAL');
    expect(errno(p.setrlimit('RLIMIT_MEMLOCK', { soft: MiB, hard: 16 * MiB }))).toBe('EPERM');
    value(p.setrlimit('RLIMIT_MEMLOCK', { soft: MiB, hard: 2 * MiB }));
    expect(errno(p.setrlimit('RLIMIT_MEMLOCK', { soft: MiB, hard: 4 * MiB }))).toBe('EPERM');
    const root = table.spawn();
    value(root.setrlimit('RLIMIT_MEMLOCK', { soft: RLIM_INFINITY, hard: RLIM_INFINITY }));
    root.dropCapability('CAP_IPC_LOCK');
    value(root.account('mm', 2 ** 40, 'add'));
  });

  it('a forked child inherits the limits and capabilities but changes them on its own', () => {
    const { table } = machine();
    const parent = table.spawn({ uid: 1000, caps: ['CAP_SYS_RESOURCE'] });
    const child = value(parent.fork());
    expect(child.capable('CAP_SYS_RESOURCE')).toBe(true);
    value(child.setrlimit('RLIMIT_NOFILE', { soft: 3, hard: 3 }));
    expect(parent.getrlimit('RLIMIT_NOFILE').soft).toBe(1024);
    // RLIMIT_NOFILE applies to the child's own table.
    expect(errno(child.memfdCreate('x'))).toBe('EMFILE');
    expect(value(parent.memfdCreate('x'))).toBe(3);
    child.dropCapability('CAP_SYS_RESOURCE');
    expect(parent.capable('CAP_SYS_RESOURCE')).toBe(true);
  });
});

describe('the iommufd charge sequence over these pieces', () => {
  it('pin, charge user->locked_vm, charge pinned_vm; undo on ENOMEM; unwind at unmap', () => {
    const m = machine();
    const p = m.table.spawn({ uid: 1000, rlimits: { RLIMIT_MEMLOCK: { soft: 2 * P, hard: 2 * P } } });
    const va = value(p.mmap(0, 3 * P, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
    const pfns = value(p.mm.pinUserPages(va, 3, true));
    const charged = p.account('user', pfns.length, 'add', { bypassRlimit: false });
    expect(errno(charged)).toBe('ENOMEM');
    p.mm.unpinUserPages(pfns);
    const two = value(p.mm.pinUserPages(va, 2, true));
    value(p.account('user', two.length, 'add', { bypassRlimit: false }));
    p.mm.accountPinnedVm(two.length, 'add');
    expect(p.status().VmPin).toBe(8);
    p.mm.unpinUserPages(two);
    value(p.account('user', two.length, 'sub'));
    p.mm.accountPinnedVm(two.length, 'sub');
    expect([p.user.lockedVm, p.mm.pinnedVm]).toEqual([0, 0]);
  });
});
