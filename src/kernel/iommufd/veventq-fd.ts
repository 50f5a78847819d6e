// The vEVENTQ fd ("[iommufd-viommu-event]", iommufd_veventq_fops in drivers/iommu/iommufd/eventq.c) and
// IOMMU_VEVENTQ_ALLOC. uAPI reference §6.19, §11.3:
//
//  * read: ppos ≠ 0 → ESPIPE. Whole records only (header, then the event's data), oldest first; the first
//    record that does not fit what is left stays queued and the read stops there (a buffer too small for
//    the first record returns 0). A copy fault puts the record back: EFAULT when nothing was copied,
//    else the bytes copied before it. Never blocks.
//  * write: no write op (the rw layer answers EINVAL, as the VFS does for a file without one).
//  * poll: EPOLLIN | EPOLLRDNORM while a record is queued; never EPOLLOUT (unlike the fault fd).
//  * release: the fd's references on the object and on the iommufd file go.
//  * ALLOC: flags, __reserved or type DEFAULT → EOPNOTSUPP; depth 0 → EINVAL; viommu_id → ENOENT; a
//    queue of the same type on the vIOMMU → EEXIST; EMFILE past RLIMIT_NOFILE.

import { fail, ok, type Result } from '../errno.ts';
import type { KernelFile, OpenFile } from '../process/file.ts';
import type { Process } from '../process/process.ts';
import type { IommufdCtx } from './context.ts';
import { EPOLLIN, EPOLLRDNORM } from './fault-fd.ts';
import { VEVENT_HEADER_SIZE, Veventq } from './veventq.ts';
import type { Viommu } from './viommu.ts';

/** IOMMU_VEVENTQ_TYPE_DEFAULT. */
export const IOMMU_VEVENTQ_TYPE_DEFAULT = 0;

export class VeventqFile implements KernelFile {
  readonly kind = 'iommufd-viommu-event';
  private released = false;

  /** The file takes a reference on `veventq`, and on the iommufd's open file when there is one. */
  constructor(readonly veventq: Veventq, private readonly ctxFile: OpenFile | null) {
    veventq.fdGet();
    ctxFile?.get();
  }

  read(proc: Process, userBuf: number, count: number, ppos = 0): Result<number> {
    if (!Number.isSafeInteger(count) || count < 0) return fail('EINVAL', `read: count ${count} is not a size`);
    if (ppos !== 0) return fail('ESPIPE', `read: the vEVENTQ fd is not seekable (ppos ${ppos})`);
    const q = this.veventq;
    let done = 0;
    for (let v = q.fetch(); v !== undefined; v = q.fetch()) {
      const len = VEVENT_HEADER_SIZE + (v.data?.length ?? 0);
      if (len > count - done) {
        q.restore(v);
        break;
      }
      const rec = new Uint8Array(len);
      rec.set(Veventq.headerOf(v));
      if (v.data !== null) rec.set(v.data, VEVENT_HEADER_SIZE);
      if (!proc.mm.write(userBuf + done, rec).ok) {
        q.restore(v);
        if (done === 0) return fail('EFAULT', `cannot copy a ${len}-byte vEVENT to 0x${(userBuf + done).toString(16)}`);
        break;
      }
      q.consumed(v);
      done += len;
    }
    return ok(done);
  }

  poll(): number {
    return this.veventq.queued > 0 ? EPOLLIN | EPOLLRDNORM : 0;
  }

  release(): void {
    if (this.released) return;
    this.released = true;
    this.veventq.fdPut();
    this.ctxFile?.put();
  }
}

export interface VeventqAllocCmd {
  size: number; flags: number; viommu_id: number; type: number; veventq_depth: number;
  out_veventq_id: number; out_veventq_fd: number; __reserved: number;
}

/**
 * IOMMU_VEVENTQ_ALLOC. Like IOMMU_FAULT_QUEUE_ALLOC, this finalizes the object and installs the fd itself
 * (the fd must exist before the object is visible); if the write-back then faults, the caller closes the
 * fd and destroys the object.
 */
export function iommufdVeventqAlloc(ctx: IommufdCtx, proc: Process, cmd: VeventqAllocCmd): Result<{ out_veventq_id: number; out_veventq_fd: number }> {
  if (cmd.flags !== 0 || cmd.__reserved !== 0 || cmd.type === IOMMU_VEVENTQ_TYPE_DEFAULT) {
    return fail('EOPNOTSUPP', cmd.type === IOMMU_VEVENTQ_TYPE_DEFAULT ? 'vEVENTQ type DEFAULT is reserved' : 'VEVENTQ_ALLOC flags or __reserved set');
  }
  if (cmd.veventq_depth === 0) return fail('EINVAL', 'veventq_depth 0: the queue must hold at least one event');
  const viommu = ctx.objects.get<Viommu>(cmd.viommu_id, 'viommu');
  if (!viommu.ok) return viommu;
  if (viommu.value.veventqs.has(cmd.type)) {
    return fail('EEXIST', `vIOMMU ${cmd.viommu_id} already has a vEVENTQ of type 0x${(cmd.type >>> 0).toString(16)}`);
  }
  const q = new Veventq(ctx, viommu.value, cmd.type, cmd.veventq_depth);
  const id = ctx.objects.reserve(q);
  if (!id.ok) {
    q.destroy();
    return id;
  }
  // install() consumes the file's reference also on failure: release() then drops what the file holds.
  const fd = proc.fds.install(new VeventqFile(q, ctxFileOf(ctx, proc)));
  if (!fd.ok) {
    ctx.objects.abort(q);
    return fd;
  }
  ctx.objects.finalize(q);
  return ok({ out_veventq_id: id.value, out_veventq_fd: fd.value });
}

/** The open file of `ctx` in the caller's fd table, if it has one. */
function ctxFileOf(ctx: IommufdCtx, proc: Process): OpenFile | null {
  for (const fd of proc.fds.fds()) {
    const f = proc.fds.get(fd);
    if (f.ok && f.value.file === ctx) return f.value;
  }
  return null;
}
