// The upstream selftest's fixture, in ioasis: a kernel booted with iommufdTest (CONFIG_IOMMUFD_TEST), a
// root process with /dev/iommu open, the global 16-page MAP_SHARED buffer (iommufd_utils.h `buffer`),
// the typed selftest API, and teardown_iommufd(): close, reopen, MD_CHECK_REFS(buffer, 0), close.

import { expect } from 'vitest';
import type { Result } from '../../../src/kernel/errno.ts';
import { Kernel } from '../../../src/kernel/kernel.ts';
import { MAP_ANONYMOUS, MAP_SHARED, PROT_READ, PROT_WRITE } from '../../../src/kernel/mm/mman.ts';
import { loadBuiltinHost } from '../../../src/pci/builtin-hosts.ts';
import * as api from '../../../src/uapi/api.ts';
import { SelftestApi } from '../../../src/uapi/selftest-api.ts';

export const PAGE = 4096;
export const BUFFER_SIZE = 16 * PAGE;

export function value<T>(r: Result<T>): T {
  if (!r.ok) throw new Error(`${r.errno}: ${r.reason}`);
  return r.value;
}
export const errno = (r: Result<unknown>): string => (r.ok ? 'ok' : r.errno);

export function selftestWorld(opts: { iommufdTest?: boolean } = {}) {
  const k = Kernel.boot(loadBuiltinHost('default'), { iommufdTest: opts.iommufdTest ?? true, memSize: 2 ** 30, deviceModels: false });
  const proc = k.processes.spawn({ uid: 0 });
  const fd = value(k.devfs.open(proc, '/dev/iommu'));
  const t = new SelftestApi(proc, fd);
  const buffer = value(proc.mmap(0, BUFFER_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0));
  // Touch every page, as the C buffer is used before the tests start.
  value(proc.mm.write(buffer, new Uint8Array(BUFFER_SIZE).fill(0x5a)));
  const a = { proc, fd };
  const ioasAlloc = (): number => value(api.ioasAlloc(a));
  const map = (ioasId: number, userVa: number, length: number, iova?: number | bigint): bigint =>
    value(api.ioasMap({ ...a, ioasId, userVa, length, ...(iova === undefined ? {} : { iova }) })).iova;
  /** teardown_iommufd(): the close must work, and after it no page of `buffer` may stay pinned. */
  const teardown = (): void => {
    expect(errno(proc.fds.close(fd))).toBe('ok');
    const fd2 = value(k.devfs.open(proc, '/dev/iommu'));
    expect(errno(new SelftestApi(proc, fd2).checkRefs(buffer, BUFFER_SIZE, 0))).toBe('ok');
    expect(errno(proc.fds.close(fd2))).toBe('ok');
  };
  return { k, proc, fd, t, buffer, a, ioasAlloc, map, teardown };
}
export type SelftestWorld = ReturnType<typeof selftestWorld>;
