// The fault fd ("[iommufd-pgfault]", the eventq file operations of drivers/iommu/iommufd/eventq.c) and
// IOMMU_FAULT_QUEUE_ALLOC. uAPI reference §6.14 and §12.4:
//
//  * read: ppos ≠ 0 or a count that is not a multiple of 40 → ESPIPE. Whole groups only, oldest first; a
//    group that does not fit in what is left stays queued. Returns the bytes copied, 0 when nothing is
//    queued (never blocks, O_NONBLOCK or not). A copy fault puts the group back first in line: EFAULT when
//    nothing was copied before it, else the bytes of the groups copied before it.
//  * write: ppos ≠ 0 or a count that is not a multiple of 8 → ESPIPE. Responses are consumed in order
//    until one fails (EINVAL for a bad code or an unknown cookie, EFAULT for an unreadable one): the bytes
//    consumed, or that error when none was.
//  * poll: EPOLLOUT always; EPOLLIN | EPOLLRDNORM while a group is queued.
//  * release: the fd's reference on the FAULT object goes, and so does its reference on the iommufd file
//    (iommufd_ctx_put). The object stays until IOMMU_DESTROY or the iommufd's close.
//
// Where this differs from Linux, on purpose:
//  * A copy fault in the middle of a group: Linux counts the records of that group copied before the fault
//    in its return value although the group is requeued and its cookie freed; here the count stops at the
//    last whole group, so user space never sees records whose cookie is gone.
//  * An unreadable response: Linux returns copy_from_user's "bytes not copied" (a positive count) when
//    nothing was consumed; here it is EFAULT.

import { fail, ok, type Result } from '../errno.ts';
import type { KernelFile, OpenFile } from '../process/file.ts';
import type { Process } from '../process/process.ts';
import type { IommufdCtx } from './context.ts';
import type { IopfGroup } from '../iommu/io-pgfault.ts';
import { IommufdFault, PAGE_RESPONSE_SIZE, PGFAULT_RECORD_SIZE, type DevIdOf } from './fault.ts';

export const EPOLLIN = 0x1;
export const EPOLLOUT = 0x4;
export const EPOLLRDNORM = 0x40;

/** The fault fd's file. Reads and writes go through the process whose memory holds the buffer. */
export class FaultFile implements KernelFile {
  readonly kind = 'iommufd-pgfault';
  private released = false;
  /** The last read's records (all composed, then copied out at once; reused when the next read is the same size). */
  private records: Uint8Array = new Uint8Array(PGFAULT_RECORD_SIZE);
  /** The groups a read fetched, in order (emptied before it returns). */
  private readonly fetched: { readonly group: IopfGroup; readonly cookie: number }[] = [];
  /** One page response, as read from the user (write() reads and answers one at a time). */
  private readonly response = new Uint8Array(PAGE_RESPONSE_SIZE);

  /**
   * @param fault the object; the file takes a reference on it here.
   * @param ctxFile the iommufd's open file, when the caller found one: held until release, so the
   *   context (and with it this object) outlives the iommufd fd while this fd is open (iommufd_ctx_get).
   */
  constructor(readonly fault: IommufdFault, private readonly ctxFile: OpenFile | null) {
    fault.fdGet();
    ctxFile?.get();
  }

  read(proc: Process, userBuf: number, count: number, ppos = 0): Result<number> {
    const bad = checkCount(count, ppos, PGFAULT_RECORD_SIZE, 'read');
    if (bad !== null) return bad;
    // Every group that fits is fetched (given its cookie) and composed, and the records go out with one
    // copy. Only when that copy fails are they copied group by group, as Linux does: the first group that
    // cannot be copied and those after it go back first in line, in order, their cookies freed.
    const fault = this.fault;
    const fetched = this.fetched;
    // (Empty unless an earlier read threw half-way.)
    while (fetched.length > 0) fetched.pop();
    let size = 0;
    for (let got = fault.fetch(count); got !== null; got = fault.fetch(count - size)) {
      fetched.push(got);
      size += got.group.faults.length * PGFAULT_RECORD_SIZE;
    }
    if (size === 0) return okCount(0);
    const bytes = this.records.length === size ? this.records : new Uint8Array(size);
    this.records = bytes;
    let at = 0;
    for (let i = 0; i < fetched.length; i++) {
      const got = fetched[i] as { readonly group: IopfGroup; readonly cookie: number };
      fault.composeAt(got.group, got.cookie, bytes, at);
      at += got.group.faults.length * PGFAULT_RECORD_SIZE;
    }
    let done = size;
    let err: Result<number> | null = null;
    if (!proc.mm.write(userBuf, bytes).ok) {
      done = 0;
      for (let i = 0; i < fetched.length; i++) {
        const len = (fetched[i] as { readonly group: IopfGroup }).group.faults.length * PGFAULT_RECORD_SIZE;
        if (proc.mm.write(userBuf + done, bytes.subarray(done, done + len)).ok) {
          done += len;
          continue;
        }
        for (let j = fetched.length - 1; j >= i; j--) fault.restore((fetched[j] as { readonly cookie: number }).cookie);
        err = fail('EFAULT', `cannot copy ${len} bytes of page request records to 0x${(userBuf + done).toString(16)}`);
        break;
      }
    }
    while (fetched.length > 0) fetched.pop();
    return done === 0 && err !== null ? err : okCount(done);
  }

  write(proc: Process, userBuf: number, count: number, ppos = 0): Result<number> {
    const bad = checkCount(count, ppos, PAGE_RESPONSE_SIZE, 'write');
    if (bad !== null) return bad;
    let done = 0;
    let err: Result<number> | null = null;
    const buf = this.response;
    while (done < count) {
      const r = proc.mm.read(userBuf + done, buf);
      if (!r.ok) {
        err = fail('EFAULT', `cannot read a page response at 0x${(userBuf + done).toString(16)}`);
        break;
      }
      const res = this.fault.respond(getU32(buf, 0), getU32(buf, 4));
      if (!res.ok) {
        err = res;
        break;
      }
      done += PAGE_RESPONSE_SIZE;
    }
    return done === 0 && err !== null ? err : okCount(done);
  }

  poll(): number {
    return EPOLLOUT | (this.fault.queued > 0 ? EPOLLIN | EPOLLRDNORM : 0);
  }

  release(): void {
    if (this.released) return;
    this.released = true;
    this.fault.fdPut();
    this.ctxFile?.put();
  }
}

/** Counts up to this many bytes get a shared result (see okCount). */
const SHARED_COUNTS = 4096;
const countResults: Result<number>[] = [];

/** ok(n), shared for the small counts every read and write returns (a Result is immutable). */
function okCount(n: number): Result<number> {
  if (n > SHARED_COUNTS) return ok(n);
  return (countResults[n] ??= ok(n));
}

/** Little-endian u32 at `o`, from the bytes (a DataView would move the small array off the heap). */
function getU32(b: Uint8Array, o: number): number {
  return ((b[o] as number) | ((b[o + 1] as number) << 8) | ((b[o + 2] as number) << 16) | ((b[o + 3] as number) << 24)) >>> 0;
}

function checkCount(count: number, ppos: number, unit: number, op: string): Result<number> | null {
  if (!Number.isSafeInteger(count) || count < 0) return fail('EINVAL', `${op}: count ${count} is not a size`);
  if (ppos !== 0) return fail('ESPIPE', `${op}: the fault fd is not seekable (ppos ${ppos})`);
  if (count % unit !== 0) return fail('ESPIPE', `${op}: count ${count} is not a multiple of ${unit}`);
  return null;
}

export interface FaultAllocCmd {
  size: number;
  flags: number;
  out_fault_id: number;
  out_fault_fd: number;
}

export interface FaultAllocOptions {
  /** dev_id of the records; the device code will provide it (default: 0 until set on the object). */
  readonly devIdOf?: DevIdOf;
}

/**
 * IOMMU_FAULT_QUEUE_ALLOC. flags ≠ 0 → EOPNOTSUPP; a new FAULT object and its fd (EMFILE past
 * RLIMIT_NOFILE), the fd holding a reference on the object and on the iommufd file.
 *
 * Note for the dispatcher: unlike the other handlers, this one does the object-table calls itself
 * (reserve, finalize; abort on failure), because the fd must exist before the object is visible. Linux
 * copies the struct back before finalizing and installs the fd last; here the fd is installed before the
 * handler returns. If copying `out_fault_id`/`out_fault_fd` back to user space then fails, undo with
 * `proc.fds.close(out_fault_fd)` followed by `ctx.objects.destroyUser(out_fault_id)` (the object has no
 * other user at that point), and return EFAULT.
 */
export function iommufdFaultAlloc(
  ctx: IommufdCtx, proc: Process, cmd: FaultAllocCmd, opts: FaultAllocOptions = {},
): Result<{ out_fault_id: number; out_fault_fd: number }> {
  if (cmd.flags !== 0) return fail('EOPNOTSUPP', `IOMMU_FAULT_QUEUE_ALLOC flags 0x${(cmd.flags >>> 0).toString(16)} are not supported`);
  const fault = new IommufdFault(ctx.core, opts.devIdOf ?? (() => 0));
  const id = ctx.objects.reserve(fault);
  if (!id.ok) return id;
  const file = new FaultFile(fault, ctxFileOf(ctx, proc));
  // install() consumes the file's reference also on failure: release() then drops what the file holds.
  const fd = proc.fds.install(file);
  if (!fd.ok) {
    ctx.objects.abort(fault);
    return fd;
  }
  ctx.objects.finalize(fault);
  return ok({ out_fault_id: id.value, out_fault_fd: fd.value });
}

/** The open file of `ctx` in the caller's fd table, if it has one. */
function ctxFileOf(ctx: IommufdCtx, proc: Process): OpenFile | null {
  for (const fd of proc.fds.fds()) {
    const f = proc.fds.get(fd);
    if (f.ok && f.value.file === ctx) return f.value;
  }
  return null;
}
