// Set-up for the mdev and isolation tests: a booted default host (Kernel), processes with an iommufd and
// an IOAS holding some of their memory, and the VFIO device opens the cdev layer would do.

import { Kernel } from '../../../src/kernel/kernel.ts';
import type { Result } from '../../../src/kernel/errno.ts';
import type { IommufdCtx } from '../../../src/kernel/iommufd/context.ts';
import { MAP_ANONYMOUS, MAP_POPULATE, MAP_PRIVATE, PROT_READ, PROT_WRITE } from '../../../src/kernel/mm/mman.ts';
import type { VfioDevice } from '../../../src/kernel/vfio/vfio-device.ts';
import { loadBuiltinHost } from '../../../src/pci/builtin-hosts.ts';
import type { PciDev } from '../../../src/pci/dev.ts';
import * as api from '../../../src/uapi/api.ts';

export const PAGE = 4096;

export function value<T>(r: Result<T>): T {
  if (!r.ok) throw new Error(`${r.errno}: ${r.reason}`);
  return r.value;
}
export const errno = (r: Result<unknown>): string => (r.ok ? 'ok' : r.errno);

export function boot(): Kernel {
  return Kernel.boot(loadBuiltinHost('default'), { memSize: 2 ** 30 });
}

export function dev(k: Kernel, bdf: string): PciDev {
  const d = k.device(bdf);
  if (d === undefined) throw new Error(`no ${bdf}`);
  return d;
}

/** A user process with an open iommufd, one IOAS, and `pages` of its memory mapped at `iova`. */
export function user(k: Kernel, uid: number, o: { iova?: bigint; pages?: number; fill?: number } = {}) {
  const memlock = 4096 * PAGE;
  const proc = k.processes.spawn({ uid, rlimits: { RLIMIT_MEMLOCK: { soft: memlock, hard: memlock } } });
  const fd = value(api.openIommufd({ proc, core: k.core }));
  const ctx = value(proc.fds.get(fd)).file as IommufdCtx;
  const ioasId = value(api.ioasAlloc({ proc, fd }));
  const pages = o.pages ?? 4;
  const va = value(proc.mmap(0, pages * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0));
  value(proc.mm.write(va, new Uint8Array(pages * PAGE).fill(o.fill ?? 0)));
  const iova = o.iova ?? 0x10_0000n;
  value(api.ioasMap({ proc, fd, ioasId, userVa: va, length: pages * PAGE, iova, readable: true, writeable: true }));
  const read = (off: number, n: number): Uint8Array => {
    const b = new Uint8Array(n);
    value(proc.mm.read(va + off, b));
    return b;
  };
  const unmap = (at: bigint, length: bigint): Result<bigint> => api.ioasUnmap({ proc, fd, ioasId, iova: at, length });
  return { proc, fd, ctx, ioasId, va, iova, read, unmap };
}
export type User = ReturnType<typeof user>;

/** What the cdev layer does on open + VFIO_DEVICE_BIND_IOMMUFD: returns out_devid. */
export function openAndBind(vdev: VfioDevice | null, ctx: IommufdCtx): Result<number> {
  if (vdev === null) throw new Error('no VFIO device');
  const bind = vdev.ops.bindIommufd;
  if (bind === undefined) throw new Error('no bind');
  vdev.openCount++;
  const r = bind(vdev, ctx);
  if (!r.ok) vdev.openCount--;
  else vdev.iommufd = ctx;
  return r;
}

/** VFIO_DEVICE_ATTACH_IOMMUFD_PT. */
export function attach(vdev: VfioDevice | null, ptId: number): Result<number> {
  if (vdev === null) throw new Error('no VFIO device');
  const f = vdev.ops.attachIoas;
  if (f === undefined) throw new Error('no attach');
  return f(vdev, ptId);
}

/** Unbind + close. */
export function closeDev(vdev: VfioDevice | null): void {
  if (vdev === null) return;
  vdev.ops.unbindIommufd?.(vdev);
  vdev.iommufd = null;
  vdev.openCount--;
}

export const UUID1 = '83b8f4f2-509f-382f-3c1e-e6bfe0fa1001';
export const UUID2 = '83b8f4f2-509f-382f-3c1e-e6bfe0fa1002';
export const UUID3 = '83b8f4f2-509f-382f-3c1e-e6bfe0fa1003';
