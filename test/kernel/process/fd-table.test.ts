import { describe, expect, it } from 'vitest';
import { FdTable } from '../../../src/kernel/process/fd-table.ts';
import { OpenFile, type KernelFile } from '../../../src/kernel/process/file.ts';
import { errno, value } from '../mm/helpers.ts';

class Probe implements KernelFile {
  readonly kind = 'probe';
  releases = 0;
  release(): void { this.releases++; }
}

describe('FdTable', () => {
  it('allocates the lowest free fd and reuses closed ones', () => {
    const t = new FdTable();
    expect([0, 1, 2, 3].map(() => value(t.install(new Probe())))).toEqual([0, 1, 2, 3]);
    value(t.close(1));
    value(t.close(2));
    expect(value(t.install(new Probe()))).toBe(1);
    expect(value(t.install(new Probe()))).toBe(2);
    expect(value(t.install(new Probe()))).toBe(4);
    expect(value(t.install(new Probe(), 10))).toBe(10);
    expect(value(t.install(new Probe()))).toBe(5);
    expect(t.count).toBe(7);
  });

  it('EBADF for an fd that is not open', () => {
    const t = new FdTable();
    expect(t.get(0)).toMatchObject({ ok: false, errno: 'EBADF', code: 9 });
    expect(errno(t.close(3))).toBe('EBADF');
    expect(errno(t.dup(-1))).toBe('EBADF');
    expect(errno(t.get(1.5))).toBe('EBADF');
  });

  it('release runs on the last close, not before: dup shares the file', () => {
    const t = new FdTable();
    const probe = new Probe();
    const fd = value(t.install(probe));
    const dup = value(t.dup(fd));
    expect(dup).toBe(fd + 1);
    expect(value(t.get(dup))).toBe(value(t.get(fd)));
    value(t.close(fd));
    expect(probe.releases).toBe(0);
    value(t.close(dup));
    expect(probe.releases).toBe(1);
    expect(errno(t.close(dup))).toBe('EBADF');
  });

  it('dup2 replaces the target (releasing it) and is a no-op on itself', () => {
    const t = new FdTable();
    const a = new Probe();
    const b = new Probe();
    value(t.install(a));
    value(t.install(b));
    expect(value(t.dup2(0, 1))).toBe(1);
    expect(b.releases).toBe(1);
    expect(value(t.dup2(0, 0))).toBe(0);
    expect(value(t.dup2(0, 7))).toBe(7);
    expect(value(t.install(new Probe()))).toBe(2);
    t.closeAll();
    expect([a.releases, t.count]).toEqual([1, 0]);
  });

  it('EMFILE at RLIMIT_NOFILE, and the refused file is released', () => {
    let limit = 2;
    const t = new FdTable({ limit: () => limit });
    value(t.install(new Probe()));
    value(t.install(new Probe()));
    const refused = new Probe();
    expect(errno(t.install(refused))).toBe('EMFILE');
    expect(refused.releases).toBe(1);
    limit = 3;
    expect(value(t.install(new Probe()))).toBe(2);
  });

  it('fork shares each file with one more reference; the file is released after both tables close it', () => {
    const t = new FdTable();
    const probe = new Probe();
    const file = new OpenFile(probe);
    value(t.install(file));
    const child = t.fork();
    expect(file.refCount).toBe(2);
    expect(value(child.install(new Probe()))).toBe(1);
    t.closeAll();
    expect(probe.releases).toBe(0);
    child.closeAll();
    expect(probe.releases).toBe(1);
    expect(() => file.put()).toThrow(/released/);
  });
});
