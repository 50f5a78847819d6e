// IOMMU_TEST_CMD on an iommufd of a kernel booted with iommufdTest (CONFIG_IOMMUFD_TEST), from bytes. The
// same rules as every iommufd ioctl (main.c): get_user(size) (EFAULT), size < offsetofend(last) = 68
// (EINVAL), non-zero bytes past sizeof (E2BIG); then the op's union member is decoded and the kernel's
// selftest code runs it (an unknown op is EOPNOTSUPP). On success the whole struct goes back with the
// op's output fields; objects the op created are finalized, or aborted on any failure. The ioctl's
// return value is the op's (DMABUF_GET returns an fd), else 0.

import { fail, ok, type Result } from '../kernel/errno.ts';
import type { IommufdCtx } from '../kernel/iommufd/context.ts';
import { takeNewObjects, takeWriteBackUndos } from '../kernel/iommufd/handlers.ts';
import { iommufdTestCmd, type TestPayload } from '../kernel/iommufd/selftest/test-cmd.ts';
import type { IommufdSelftest } from '../kernel/iommufd/selftest/selftest.ts';
import type { OpenFile } from '../kernel/process/file.ts';
import type { Process } from '../kernel/process/process.ts';
import { copyStructFromUser, readUserSize, writeStructBytes } from './copy-struct.ts';
import { iommu_test_cmd, TEST_CMD_MIN_SIZE, TEST_CMD_UNION_OFFSET, TEST_CMD_UNION_SIZE, TEST_OP_MEMBERS } from './iommufd-test-structs.ts';

export function dispatchTestCmd(proc: Process, ctx: IommufdCtx, st: IommufdSelftest, ctxFile: OpenFile, arg: number): Result<number> {
  const size = readUserSize(proc.mm, arg);
  if (!size.ok) return size;
  const copied = copyStructFromUser(proc.mm, arg, iommu_test_cmd, TEST_CMD_MIN_SIZE, size.value);
  if (!copied.ok) return copied;
  const bytes = copied.value.bytes;
  const cmd = copied.value.value;
  const member = TEST_OP_MEMBERS[cmd.op];
  const unionBytes = bytes.slice(TEST_CMD_UNION_OFFSET, TEST_CMD_UNION_OFFSET + TEST_CMD_UNION_SIZE);
  const payload: TestPayload = member === undefined ? {} : (member.decode(unionBytes) as TestPayload);
  takeNewObjects(ctx); // nothing may be left from an earlier call
  takeWriteBackUndos(ctx);
  const r = iommufdTestCmd({ st, ctx, proc, ctxFile, id: cmd.id, p: payload }, cmd.op);
  const created = takeNewObjects(ctx);
  const undos = takeWriteBackUndos(ctx);
  if (!r.ok) {
    for (const o of created) ctx.objects.abort(o);
    return r;
  }
  const out = new Uint8Array(bytes.slice(0, iommu_test_cmd.sizeof));
  if (member !== undefined && r.value.out !== undefined) {
    out.set(member.encode(r.value.out, unionBytes), TEST_CMD_UNION_OFFSET);
  }
  const wb = writeStructBytes(proc.mm, arg, iommu_test_cmd, out, copied.value.userSize);
  if (!wb.ok) {
    for (const o of created) ctx.objects.abort(o);
    for (const u of undos) u();
    return fail('EFAULT', wb.reason);
  }
  for (const o of created) ctx.objects.finalize(o);
  return ok(r.value.ret ?? 0);
}
