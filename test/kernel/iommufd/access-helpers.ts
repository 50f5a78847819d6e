// Set-up for the ACCESS tests: a process with an iommufd and an IOAS (through the typed API), and a
// fake emulated-device driver that pins through an access and honours (or ignores) the unmap contract.

import { PAGE_SIZE } from '../../../src/hw/memory/physical-memory.ts';
import type { Result } from '../../../src/kernel/errno.ts';
import {
  iommufdAccessCreate, iommufdAccessPinPages, iommufdAccessUnpinPages, type AccessCreateOptions, type IommufdAccess,
} from '../../../src/kernel/iommufd/access.ts';
import type { IommufdCtx } from '../../../src/kernel/iommufd/context.ts';
import type { Ioas } from '../../../src/kernel/iommufd/ioas.ts';
import type { OpenFile } from '../../../src/kernel/process/file.ts';
import * as api from '../../../src/uapi/api.ts';
import { client, value, world, type World } from '../../uapi/dispatch-helpers.ts';

export const P = BigInt(PAGE_SIZE);

/** A driver of one emulated device: its pins, and what its unmap callback saw. */
export class FakeDriver {
  readonly pins: { iova: bigint; length: bigint }[] = [];
  readonly unmapCalls: [bigint, bigint][] = [];
  /** Whether the unmap callback unpins what it is asked to (the contract). */
  unpinOnUnmap = true;
  /** Run inside the unmap callback, before unpinning. */
  onUnmap: ((iova: bigint, length: bigint) => void) | null = null;
  readonly access: IommufdAccess;
  readonly id: number;

  constructor(ctx: IommufdCtx, opts: AccessCreateOptions & { needsPinPages?: boolean } = {}) {
    const created = value(iommufdAccessCreate(ctx, {
      needsPinPages: opts.needsPinPages ?? true,
      unmap: (iova, length) => { this.unmap(iova, length); },
    }, opts));
    this.access = created.access;
    this.id = created.id;
  }

  pin(iova: bigint, length: bigint, write = false): Result<Uint32Array> {
    const r = iommufdAccessPinPages(this.access, iova, length, { write });
    if (r.ok) this.pins.push({ iova, length });
    return r;
  }

  unpin(iova: bigint, length: bigint): void {
    const i = this.pins.findIndex((p) => p.iova === iova && p.length === length);
    if (i >= 0) this.pins.splice(i, 1);
    iommufdAccessUnpinPages(this.access, iova, length);
  }

  private unmap(iova: bigint, length: bigint): void {
    this.unmapCalls.push([iova, length]);
    this.onUnmap?.(iova, length);
    if (!this.unpinOnUnmap) return;
    const last = iova + length - 1n;
    for (const p of [...this.pins]) {
      if (p.iova <= last && p.iova + p.length - 1n >= iova) this.unpin(p.iova, p.length);
    }
  }
}

export function setup(w: World = world(), opts: { memlockPages?: number; uid?: number } = {}) {
  const c = client(w, opts);
  const { proc, fd } = c;
  const file: OpenFile = value(proc.fds.get(fd));
  const ctx = file.file as IommufdCtx;
  const ioasOf = (id: number): Ioas => value(ctx.objects.get<Ioas>(id, 'ioas'));
  const ioasId = value(api.ioasAlloc({ proc, fd }));
  /** Map `npages` fresh anonymous pages at `iova`; returns the user VA. */
  const map = (iova: bigint, npages: number, o: { readable?: boolean; writeable?: boolean; id?: number } = {}): number => {
    const va = c.anon(npages);
    value(api.ioasMap({
      proc, fd, ioasId: o.id ?? ioasId, userVa: va, length: npages * PAGE_SIZE, iova,
      readable: o.readable ?? true, writeable: o.writeable ?? true,
    }));
    return va;
  };
  const unmap = (iova: bigint, length: bigint, id = ioasId): Result<bigint> => api.ioasUnmap({ proc, fd, ioasId: id, iova, length });
  const pinnedVm = (): number => proc.mm.pinnedVm;
  const lockedVm = (): number => proc.user.lockedVm;
  return { w, c, proc, fd, file, ctx, ioasId, ioas: ioasOf(ioasId), ioasOf, map, unmap, pinnedVm, lockedVm };
}
export type Setup = ReturnType<typeof setup>;
