// The selftest's in-kernel access user (selftest.c struct selftest_access): an ACCESS object driven from
// user space through its own anonymous fd, "[iommufd_test_staccess]". It records each ACCESS_PAGES pin as
// an item; its unmap callback (the access contract) unpins every item that meets the unmapped range, and
// closing the fd destroys the access, which unpins what is left. The access holds the iommufd file open
// until then, as Linux's access holds the context.

import type { Result } from '../../errno.ts';
import { fail, ok } from '../../errno.ts';
import type { KernelFile, OpenFile } from '../../process/file.ts';
import type { Process } from '../../process/process.ts';
import {
  iommufdAccessAttach, iommufdAccessCreate, iommufdAccessDestroy, iommufdAccessUnpinPages, type IommufdAccess,
} from '../access.ts';
import type { IommufdCtx } from '../context.ts';

/** One ACCESS_PAGES pin (struct selftest_access_item). */
export interface StaccessItem {
  readonly id: number;
  readonly iova: bigint;
  readonly length: bigint;
}

export class StaccessFile implements KernelFile {
  readonly kind = 'iommufd_test_staccess';
  /** Set once the access exists (CREATE_ACCESS builds the file first, as Linux does). */
  access: IommufdAccess | null = null;
  readonly items: StaccessItem[] = [];
  private nextId = 0;
  private released = false;

  constructor(readonly needsPinPages: boolean) {}

  /** Record a pin; its ID is what DESTROY_ACCESS_PAGES names. */
  addItem(iova: bigint, length: bigint): StaccessItem {
    const item = { id: this.nextId++, iova, length };
    this.items.push(item);
    return item;
  }

  /** DESTROY_ACCESS_PAGES: unpin one item (ENOENT when an unmap already took it). */
  destroyItem(id: number): Result {
    const i = this.items.findIndex((it) => it.id === id);
    if (i < 0) return fail('ENOENT', `access item ${id} does not exist (an unmap may have unpinned it)`);
    const [item] = this.items.splice(i, 1);
    if (this.access !== null && item !== undefined) iommufdAccessUnpinPages(this.access, item.iova, item.length);
    return ok();
  }

  /** ops->unmap: unpin every item meeting [iova, iova + length) before returning. */
  unmap(iova: bigint, length: bigint): void {
    const last = iova + length - 1n;
    for (let i = this.items.length - 1; i >= 0; i--) {
      const it = this.items[i] as StaccessItem;
      if (iova > it.iova + it.length - 1n || it.iova > last) continue;
      this.items.splice(i, 1);
      if (this.access !== null) iommufdAccessUnpinPages(this.access, it.iova, it.length);
    }
  }

  /** Closing the fd: iommufd_access_destroy(), which unmaps everything through unmap() first. */
  release(): void {
    if (this.released) return;
    this.released = true;
    // The unmap callback still needs the access while iommufd_access_destroy() runs it.
    if (this.access !== null) iommufdAccessDestroy(this.access);
    this.access = null;
  }
}

/**
 * CREATE_ACCESS: a staccess file with an access attached to IOAS `ioasId` (ENOENT for anything else),
 * installed as a new fd of `proc`. Returns the fd.
 */
export function createStaccess(ctx: IommufdCtx, proc: Process, ctxFile: OpenFile | null, ioasId: number, needsPinPages: boolean): Result<number> {
  const file = new StaccessFile(needsPinPages);
  const made = iommufdAccessCreate(ctx, { needsPinPages, unmap: (iova, length) => { file.unmap(iova, length); } },
    ctxFile === null ? {} : { file: ctxFile });
  if (!made.ok) return made;
  file.access = made.value.access;
  const attached = iommufdAccessAttach(made.value.access, ioasId);
  if (!attached.ok) {
    iommufdAccessDestroy(made.value.access);
    file.access = null;
    return attached;
  }
  // install() consumes the file's reference also on failure: release() then destroys the access.
  return proc.fds.install(file);
}

/** iommufd_access_get(fd): EBADF for no such fd, EBADFD for a file that is not a staccess. */
export function staccessOf(proc: Process, fd: number): Result<StaccessFile> {
  const f = proc.fds.get(fd);
  if (!f.ok) return f;
  const file = f.value.file;
  if (!(file instanceof StaccessFile)) return fail('EBADFD', `fd ${fd} is a ${file.kind}, not an [iommufd_test_staccess] fd`);
  if (file.access === null) return fail('EBADFD', `fd ${fd}: the access is gone`);
  return ok(file);
}
