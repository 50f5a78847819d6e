// Process steps: open and close files, touch memory, exit.

import { z } from 'zod';
import { O_RDWR } from '../../kernel/vfs/devfs.ts';
import { numberLike } from '../values.ts';
import { commonFields, stepKind } from '../step-kind.ts';
import { StepError } from '../run-state.ts';
import { failed, fromResult } from './outcome.ts';

const processName = z.string().min(1);

export const open = stepKind({
  name: 'open',
  summary: 'open(2) a device node by path, or the VFIO cdev (cdev:) or group node (group:) of a device or mdev; `as` names the fd',
  fields: {
    process: processName, path: z.string().startsWith('/dev/').optional(), cdev: z.string().min(1).optional(),
    group: z.string().min(1).optional(), as: z.string().min(1).optional(), ...commonFields,
  },
  run(s, st) {
    const p = s.process(st.process);
    const given = [st.path, st.cdev, st.group].filter((x) => x !== undefined).length;
    if (given !== 1) throw new StepError('open takes exactly one of path:, cdev: (a device or mdev) and group: (a device or mdev)');
    let path = st.path ?? '';
    if (st.cdev !== undefined) path = `/dev/vfio/devices/vfio${s.vfioDevice(st.cdev).index}`;
    if (st.group !== undefined) {
      const g = s.vfioDevice(st.group).group;
      if (g === null) throw new StepError(`${st.group} has no VFIO group`);
      path = g.devPath;
    }
    const r = s.kernel.devfs.open(p.proc, path, O_RDWR);
    return fromResult(r, `${p.name}: open ${path}`, (fd) => {
      if (st.as !== undefined) p.fds.set(st.as, fd);
      return `${p.name} opens ${path}${st.cdev !== undefined ? ` (${st.cdev})` : st.group !== undefined ? ` (group of ${st.group})` : ''} as fd ${fd}`;
    }, (fd) => ({ value: BigInt(fd) }));
  },
});

export const close = stepKind({
  name: 'close',
  summary: 'close(2) an fd the process opened',
  fields: { process: processName, fd: z.union([z.string(), z.number().int()]), ...commonFields },
  run(s, st) {
    const p = s.process(st.process);
    const fd = s.fd(p, st.fd);
    const r = p.proc.fds.close(fd);
    if (r.ok && typeof st.fd === 'string') p.fds.delete(st.fd);
    return fromResult(r, `${p.name}: close fd ${fd}`, () => `${p.name} closes fd ${fd}${typeof st.fd === 'string' ? ` (${st.fd})` : ''}`);
  },
});

export const exit = stepKind({
  name: 'exit',
  summary: 'the process exits (or crashes): its fds are closed and its memory goes',
  fields: { process: processName, ...commonFields },
  run(s, st) {
    const p = s.process(st.process);
    if (!p.proc.alive) return { ok: false, errno: 'ESRCH', summary: `${p.name} has already exited` };
    p.proc.exit();
    p.fds.clear();
    return { ok: true, summary: `${p.name} (pid ${p.proc.pid}) exits; its files are released` };
  },
});

function bytesOf(data: string | readonly number[]): Uint8Array {
  return typeof data === 'string' ? new TextEncoder().encode(data) : Uint8Array.from(data);
}

export const writeMemory = stepKind({
  name: 'write-memory',
  summary: 'the process writes bytes into its memory',
  fields: { process: processName, at: numberLike, data: z.union([z.string(), z.array(z.number().int().min(0).max(255))]), ...commonFields },
  run(s, st) {
    const p = s.process(st.process);
    const at = s.num(st.at, p);
    const bytes = bytesOf(st.data);
    const r = p.proc.mm.write(at, bytes);
    return fromResult(r, `${p.name}: write ${bytes.length} bytes at 0x${at.toString(16)}`, () => `${p.name} writes ${bytes.length} bytes at 0x${at.toString(16)}`);
  },
});

export const readMemory = stepKind({
  name: 'read-memory',
  summary: 'read bytes from the process\'s memory (check them with expect.data)',
  fields: { process: processName, at: numberLike, length: numberLike, ...commonFields },
  run(s, st) {
    const p = s.process(st.process);
    const at = s.num(st.at, p);
    const len = s.num(st.length, p);
    if (len > 1 << 20) throw new StepError('read-memory reads at most 1 MiB');
    const buf = new Uint8Array(len);
    const r = p.proc.mm.read(at, buf);
    if (!r.ok) return failed(r, `${p.name}: read at 0x${at.toString(16)}`);
    return { ok: true, summary: `${p.name} reads ${len} bytes at 0x${at.toString(16)}: ${preview(buf)}`, data: buf };
  },
});

/** Printable bytes as text, others as hex, cut at 32. */
export function preview(b: Uint8Array): string {
  const cut = b.subarray(0, 32);
  const printable = cut.every((c) => c >= 0x20 && c < 0x7f);
  const body = printable ? JSON.stringify(new TextDecoder().decode(cut)) : [...cut].map((c) => c.toString(16).padStart(2, '0')).join(' ');
  return b.length > 32 ? `${body}…` : body;
}
