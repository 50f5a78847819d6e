// ioctl(fd, cmd, arg) on an iommufd, from bytes (main.c iommufd_fops_ioctl): the single entry the shim
// calls. Order: the fd (EBADF); by fd kind, VFIO container, group and device fds go to their own tables
// (their numbers collide); ENOTTY for another file that is not an iommufd; numbers outside the table go
// to the VFIO compat handler (vfio-compat-dispatch.ts); get_user(size) (EFAULT); a number the table does
// not hold (ENOTTY); the size rules (EINVAL/E2BIG/EFAULT); the handler; the write-back of the whole struct
// (EFAULT); and for object-creating ioctls finalize on success, abort on any failure.

import { fail, ok, type Result } from '../kernel/errno.ts';
import { IommufdCtx } from '../kernel/iommufd/context.ts';
import { IOMMUFD_HANDLERS, takeNewObjects, takeWriteBackUndos, type Decoded } from '../kernel/iommufd/handlers.ts';
import { CopyBuffer } from '../kernel/mm/uaccess.ts';
import type { Process } from '../kernel/process/process.ts';
import { VfioContainer } from '../kernel/vfio/container.ts';
import { copyExactStructTo, copyStructFromUser, readUserSize, writeStructFrom } from './copy-struct.ts';
import { IOMMU_TEST_CMD } from './ioctl.ts';
import { dispatchTestCmd } from './iommufd-test-dispatch.ts';
import { iommufdIoctlOp, lookupIoctl } from './ioctl-table.ts';
import { dispatchVfioCompat } from './vfio-compat-dispatch.ts';
import { dispatchVfioContainer } from './vfio-container-dispatch.ts';
import { vfioDispatch, vfioFileKind } from './vfio-dispatch.ts';
import type { FieldMap, StructDef, StructValue } from './struct.ts';

/** ioctl(2) on `fd` of `proc` with argument pointer `arg`: 0 or the errno. */
export function dispatch(proc: Process, fd: number, cmd: number, arg: number): Result<number> {
  const open = proc.fds.lookup(fd);
  if (open === undefined) return proc.fds.badFd(fd);
  const ctx = open.file;
  // The common call first: a table ioctl on an iommufd whose struct is the kernel's size. The fd kinds
  // are unrelated classes, so testing IommufdCtx first decides as the order below does.
  if (ctx instanceof IommufdCtx) {
    const op = iommufdIoctlOp(cmd);
    if (op !== undefined) {
      const r = runExact(ctx, proc, arg, op.struct, op.name);
      if (r !== null) return r;
    }
  }
  // Each fd kind has its own file_operations: VFIO numbers collide across container, group and device fds.
  if (ctx instanceof VfioContainer) return dispatchVfioContainer(proc, ctx, cmd, arg);
  if (vfioFileKind(ctx) !== null) return vfioDispatch(proc, open, cmd, arg);
  if (!(ctx instanceof IommufdCtx)) return fail('ENOTTY', `fd ${fd} is a ${ctx.kind}, not an iommufd`);
  // CONFIG_IOMMUFD_TEST puts IOMMU_TEST_CMD in the table; without it the number is unknown (ENOTTY below).
  const selftest = ctx.params.selftest;
  if (cmd >>> 0 === IOMMU_TEST_CMD && selftest !== undefined) return dispatchTestCmd(proc, ctx, selftest, open, arg);
  const cls = lookupIoctl(cmd);
  if (cls.kind === 'vfio-compat') return dispatchVfioCompat(proc, ctx, cmd, arg);
  if (cls.kind === 'unknown' && cls.routedTo === 'vfio-compat') return fail('ENOTTY', cls.reason);
  // get_user(size) comes before the table entry is checked.
  const size = readUserSize(proc.mm, arg);
  if (!size.ok) return size;
  if (cls.kind === 'unknown') return fail('ENOTTY', cls.reason);
  const copied = copyStructFromUser(proc.mm, arg, cls.op.struct, cls.op.minSize, size.value);
  if (!copied.ok) return copied;
  const c = copied.value;
  return run(ctx, proc, arg, cls.op.struct, cls.op.name, c.value as Decoded, c.bytes, c.userSize);
}

/** The most a reused kernel argument buffer holds (every iommufd struct is far smaller). */
const ARG_BUF = 256;

/**
 * The common call (copyExactStruct's case: a struct in one page whose size is the kernel's) with the
 * struct copied into the task's reused kernel buffer; null when it is not that case (nothing done: the
 * general path decides). The buffer is taken for the call, so a nested call would allocate its own.
 */
function runExact<F extends FieldMap>(ctx: IommufdCtx, proc: Process, arg: number, struct: StructDef<F>, name: string): Result<number> | null {
  let kbuf = proc.ioctlArgBuf;
  if (kbuf === null || kbuf.bytes.length < struct.sizeof) kbuf = new CopyBuffer(Math.max(ARG_BUF, struct.sizeof));
  proc.ioctlArgBuf = null;
  const cmd = copyExactStructTo(proc.mm, arg, struct, kbuf.bytes, kbuf.words);
  const r = cmd === null ? null : run(ctx, proc, arg, struct, name, cmd as Decoded, kbuf.bytes, struct.sizeof, kbuf.words);
  proc.ioctlArgBuf = kbuf;
  return r;
}

// Results are never mutated: one success value serves every call.
const OK0: Result<number> = ok(0);

/**
 * The handler on the copied command and the write-back. `bytes` holds the kernel-sized bytes `cmd` was
 * decoded from in its first sizeof bytes (it may be longer; `words`, when given, is its 32-bit view);
 * `userSize` is the user's size field.
 */
function run<F extends FieldMap>(
  ctx: IommufdCtx, proc: Process, arg: number, struct: StructDef<F>, name: string, cmd: Decoded, bytes: Uint8Array, userSize: number,
  words?: Uint32Array,
): Result<number> {
  const handler = IOMMUFD_HANDLERS[name];
  if (handler === undefined) return fail('ENOTTY', `${name} is not implemented in ioasis yet`);
  takeNewObjects(ctx); // nothing may be left from an earlier call
  takeWriteBackUndos(ctx);
  const r = handler(ctx, proc, cmd);
  const created = takeNewObjects(ctx);
  const undos = takeWriteBackUndos(ctx);
  // The whole struct goes back: the decoded command with the handler's fields written over it.
  if (!r.ok) {
    for (const o of created) ctx.objects.abort(o);
    if ('writeBack' in r) {
      const back = overlay(struct, cmd, r.writeBack as Decoded, bytes);
      const wb = writeStructFrom(proc.mm, arg, struct, back, userSize, back === bytes ? words : undefined);
      if (!wb.ok) return wb;
    }
    return r;
  }
  const back = overlay(struct, cmd, r.value, bytes);
  const wb = writeStructFrom(proc.mm, arg, struct, back, userSize, back === bytes ? words : undefined);
  if (!wb.ok) {
    for (const o of created) ctx.objects.abort(o);
    for (const u of undos) u();
    return wb;
  }
  for (const o of created) ctx.objects.finalize(o);
  return OK0;
}

/**
 * The encoding of { ...cmd, ...out } in the first sizeof bytes of the result (encode leaves fields `out`
 * does not name as `cmd` set them). `bytes` start with the kernel-sized bytes `cmd` was decoded from;
 * handlers never write to `cmd` (they return what changes), so for a struct without padding holes they
 * are already cmd's encoding and `out` is written over them in place (the buffer is this call's own).
 */
function overlay<F extends FieldMap>(struct: StructDef<F>, cmd: Decoded, out: Decoded | undefined, bytes: Uint8Array): Uint8Array {
  if (out === undefined) return struct.dense ? bytes : struct.encode(cmd as Partial<StructValue<F>>);
  // A field `out` sets to undefined is left out of the spread's encoding (zero): keep the spread for that.
  for (const k in out) if (out[k] === undefined) return struct.encode({ ...cmd, ...out } as Partial<StructValue<F>>);
  return struct.encode(out as Partial<StructValue<F>>, struct.dense ? bytes : struct.encode(cmd as Partial<StructValue<F>>));
}
