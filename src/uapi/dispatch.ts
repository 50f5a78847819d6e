// ioctl(fd, cmd, arg) on an iommufd, from bytes (main.c iommufd_fops_ioctl): the single entry the shim
// calls. Order: the fd (EBADF; VFIO group and device fds go to vfio-dispatch.ts by fd kind; ENOTTY for
// another file that is not an iommufd); numbers outside the table go to
// the VFIO compat handler (not built yet: ENOTTY); get_user(size) (EFAULT); a number the table does not
// hold (ENOTTY); the size rules (EINVAL/E2BIG/EFAULT); the handler; the write-back of the whole struct
// (EFAULT); and for object-creating ioctls finalize on success, abort on any failure.

import { fail, ok, type Result } from '../kernel/errno.ts';
import { IommufdCtx } from '../kernel/iommufd/context.ts';
import { IOMMUFD_HANDLERS, takeNewObjects, takeWriteBackUndos, type Decoded } from '../kernel/iommufd/handlers.ts';
import type { Process } from '../kernel/process/process.ts';
import { copyStructFromUser, copyStructToUser, readUserSize } from './copy-struct.ts';
import { lookupIoctl } from './ioctl-table.ts';
import { vfioDispatch, vfioFileKind } from './vfio-dispatch.ts';
import type { FieldMap, StructDef, StructValue } from './struct.ts';

const hex = (n: number): string => `0x${(n >>> 0).toString(16)}`;

/** ioctl(2) on `fd` of `proc` with argument pointer `arg`: 0 or the errno. */
export function dispatch(proc: Process, fd: number, cmd: number, arg: number): Result<number> {
  const file = proc.fds.get(fd);
  if (!file.ok) return file;
  const ctx = file.value.file;
  // VFIO numbers collide across fd kinds: a VFIO group or device fd has its own table.
  if (vfioFileKind(ctx) !== null) return vfioDispatch(proc, file.value, cmd, arg);
  if (!(ctx instanceof IommufdCtx)) return fail('ENOTTY', `fd ${fd} is a ${ctx.kind}, not an iommufd`);
  const cls = lookupIoctl(cmd);
  if (cls.kind === 'vfio-compat') return fail('ENOTTY', `${hex(cmd)} is a VFIO container ioctl: the iommufd VFIO compat layer is not built yet`);
  if (cls.kind === 'unknown' && cls.routedTo === 'vfio-compat') return fail('ENOTTY', cls.reason);
  // get_user(size) comes before the table entry is checked.
  const size = readUserSize(proc.mm, arg);
  if (!size.ok) return size;
  if (cls.kind === 'unknown') return fail('ENOTTY', cls.reason);
  return run(ctx, proc, arg, cls.op.struct, cls.op.minSize, cls.op.name);
}

function run<F extends FieldMap>(ctx: IommufdCtx, proc: Process, arg: number, struct: StructDef<F>, minSize: number, name: string): Result<number> {
  const copied = copyStructFromUser(proc.mm, arg, struct, minSize);
  if (!copied.ok) return copied;
  const handler = IOMMUFD_HANDLERS[name];
  if (handler === undefined) return fail('ENOTTY', `${name} is not implemented in ioasis yet`);
  const cmd = copied.value.value as Decoded;
  takeNewObjects(ctx); // nothing may be left from an earlier call
  takeWriteBackUndos(ctx);
  const r = handler(ctx, proc, cmd);
  const created = takeNewObjects(ctx);
  const undos = takeWriteBackUndos(ctx);
  const abort = (): void => { for (const o of created) ctx.objects.abort(o); };
  if (!r.ok) {
    abort();
    if ('writeBack' in r) {
      const wb = copyStructToUser(proc.mm, arg, struct, { ...cmd, ...(r.writeBack as Decoded) } as StructValue<F>, copied.value.userSize);
      if (!wb.ok) return wb;
    }
    return r;
  }
  const out = { ...cmd, ...(r.value ?? {}) } as StructValue<F>;
  const wb = copyStructToUser(proc.mm, arg, struct, out, copied.value.userSize);
  if (!wb.ok) {
    abort();
    for (const u of undos) u();
    return wb;
  }
  for (const o of created) ctx.objects.finalize(o);
  return ok(0);
}
