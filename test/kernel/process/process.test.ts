import { describe, expect, it } from 'vitest';
import { MAP_ANONYMOUS, MAP_PRIVATE, MAP_SHARED, PROT_READ, PROT_WRITE } from '../../../src/kernel/mm/mman.ts';
import { type KernelFile } from '../../../src/kernel/process/file.ts';
import { bytes, checkFrames, errno, machine, P, value } from '../mm/helpers.ts';

const RW = PROT_READ | PROT_WRITE;

class Probe implements KernelFile {
  readonly kind = 'probe';
  releases = 0;
  release(): void { this.releases++; }
}

describe('ProcessTable', () => {
  it('spawns processes with increasing pids, stdio on 0-2, and the requested credentials', () => {
    const { table } = machine();
    const a = table.spawn({ comm: 'qemu', uid: 1000, euid: 0 });
    const b = table.spawn({ stdio: false });
    expect([a.pid, b.pid]).toEqual([1, 2]);
    expect(a.fds.fds()).toEqual([0, 1, 2]);
    expect(b.fds.fds()).toEqual([]);
    expect(a.status()).toMatchObject({ Name: 'qemu', Pid: 1, PPid: 0, Uid: [1000, 0], VmPin: 0, VmLck: 0, VmRSS: 0 });
    expect(a.capable('CAP_SYS_ADMIN')).toBe(true);
    expect(table.list().map((p) => p.pid)).toEqual([1, 2]);
    expect(table.get(2)).toBe(b);
  });

  it('does not reuse a pid at once, wraps at pid_max and gives EAGAIN when every pid is taken', () => {
    const { table } = machine(64, { pidMax: 4 });
    const a = table.spawn();
    const b = table.spawn();
    const c = table.spawn();
    expect([a.pid, b.pid, c.pid]).toEqual([1, 2, 3]);
    expect(errno(a.fork())).toBe('EAGAIN');
    b.exit();
    const d = value(a.fork());
    expect(d.pid).toBe(2);
    expect(table.get(2)).toBe(d);
  });
});

describe('exit', () => {
  it('releases every frame, closes every fd (release on the last reference) and leaves the table', () => {
    const m = machine();
    const { table, frames } = m;
    const p = table.spawn();
    const probe = new Probe();
    const fd = value(p.fds.install(probe));
    value(p.fds.dup(fd));
    const mfd = value(p.memfdCreate('m'));
    value(p.ftruncate(mfd, 2 * P));
    const a = value(p.mmap(0, 4 * P, RW, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
    const s = value(p.mmap(0, 2 * P, RW, MAP_SHARED, mfd, 0));
    const sa = value(p.mmap(0, 2 * P, RW, MAP_SHARED | MAP_ANONYMOUS, -1, 0));
    for (const [va, n] of [[a, 4], [s, 2], [sa, 2]] as const) value(p.mm.write(va, bytes(n * P, 1)));
    expect(frames.allocated).toBe(8);
    checkFrames(m);
    p.exit();
    expect([frames.allocated, probe.releases, p.fds.count, p.alive, table.size]).toEqual([0, 1, 0, false, 0]);
    expect(p.mm.alive).toBe(false);
    expect(() => p.fork()).toThrow(/exited/);
  });

  it('a child keeps shared files and COW pages alive after the parent exits', () => {
    const m = machine();
    const parent = m.table.spawn();
    const probe = new Probe();
    value(parent.fds.install(probe));
    const va = value(parent.mmap(0, P, RW, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
    value(parent.mm.write(va, bytes(4, 7)));
    const child = value(parent.fork());
    parent.exit();
    expect(probe.releases).toBe(0);
    expect(m.frames.allocated).toBe(1);
    const out = new Uint8Array(4);
    value(child.mm.read(va, out));
    expect(out).toEqual(bytes(4, 7));
    // The only user left writes without a copy.
    const pfn = child.mm.lookupPfn(va);
    value(child.mm.write(va, bytes(1, 1)));
    expect(child.mm.lookupPfn(va)).toBe(pfn);
    checkFrames(m);
    child.exit();
    expect([m.frames.allocated, probe.releases]).toEqual([0, 1]);
  });

  it('a holder of mmget() keeps the address space across exit; pinned_vm stays for the pinner to drop', () => {
    const m = machine();
    const p = m.table.spawn();
    const va = value(p.mmap(0, P, RW, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
    value(p.mm.write(va, bytes(1, 1)));
    const pins = value(p.mm.pinUserPages(va, 1, true));
    p.mm.accountPinnedVm(1, 'add');
    p.mm.mmget();
    p.exit();
    expect(p.mm.alive).toBe(true);
    expect(errno(p.mm.pinUserPages(va, 1, true))).toBe('ok');
    p.mm.mmput();
    expect(p.mm.alive).toBe(false);
    expect(p.mm.pinnedVm).toBe(1);
    p.mm.unpinUserPages([...pins, ...pins]);
    p.mm.accountPinnedVm(1, 'sub');
    expect(m.frames.allocated).toBe(0);
  });
});
