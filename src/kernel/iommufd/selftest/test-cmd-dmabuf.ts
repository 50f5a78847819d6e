// The IOMMU_TEST_CMD dma-buf ops (selftest.c): DMABUF_GET exports a test dma-buf and returns its fd as
// the ioctl's value, DMABUF_REVOKE revokes or restores it (the importers' mappings are invalidated
// either way), MD_CHECK_DMABUF checks a mock domain translates an IOVA range to the buffer's pages.

import { PAGE_SIZE } from '../../../hw/memory/physical-memory.ts';
import { fail, ok, type Result } from '../../errno.ts';
import { dmaBufGet } from '../../dma-buf/dma-buf.ts';
import { onWriteBackFailure } from '../ioas-ioctls.ts';
import { MockDmaBufExporter } from './mock-dmabuf.ts';
import { u32, u64, type TestCmdEnv, type TestCmdOut } from './test-cmd.ts';
import { mockHwpt } from './test-cmd-checks.ts';

/**
 * DMABUF_GET {length, open_flags}: the buffer's checks (mock-dmabuf.ts), then dma_buf_fd(open_flags):
 * the new fd is the ioctl's return value. open_flags become the file's flags (ioasis fds have no
 * close-on-exec bit to set).
 */
export function testDmabufGet(env: TestCmdEnv): Result<TestCmdOut> {
  const buf = MockDmaBufExporter.export(env.proc.mm.frames, u32(env.p, 'length'), u32(env.p, 'open_flags'));
  if (!buf.ok) return buf;
  // install() consumes the new file's reference, also on failure (EMFILE), which frees the pages.
  const fd = env.proc.fds.install(buf.value);
  if (!fd.ok) return fd;
  // Linux returns the fd without copying the struct back; ioasis copies it, and undoes the fd if that faults.
  onWriteBackFailure(env.ctx, () => { void env.proc.fds.close(fd.value); });
  return ok({ ret: fd.value });
}

/**
 * DMABUF_REVOKE {dmabuf_fd, revoked}: dma_buf_get() (EBADF, EINVAL for a file that is not a dma-buf),
 * a buffer of another exporter → EOPNOTSUPP; then set the flag and invalidate every importer's mapping.
 */
export function testDmabufRevoke(env: TestCmdEnv): Result<TestCmdOut> {
  const f = dmaBufGet(env.proc, u32(env.p, 'dmabuf_fd') | 0);
  if (!f.ok) return f;
  const exp = f.value.file.exporter;
  if (!(exp instanceof MockDmaBufExporter)) return fail('EOPNOTSUPP', 'the dma-buf was not exported by the selftest');
  exp.revoked = u32(env.p, 'revoked') !== 0;
  f.value.file.invalidateMappings();
  return ok({});
}

/**
 * MD_CHECK_DMABUF {dmabuf_fd, iova, length, offset} on mock HWPT `id`: iova, length and offset aligned
 * to the domain's smallest page and offset + length inside the buffer (EINVAL); a foreign dma-buf is
 * EINVAL; then each such page of IOVA must translate to the buffer's page at that offset (else EINVAL).
 */
export function testCheckDmabuf(env: TestCmdEnv): Result<TestCmdOut> {
  const m = mockHwpt(env);
  if (!m.ok) return m;
  const f = dmaBufGet(env.proc, u32(env.p, 'dmabuf_fd') | 0);
  if (!f.ok) return f;
  const exp = f.value.file.exporter;
  if (!(exp instanceof MockDmaBufExporter)) return fail('EINVAL', 'the dma-buf was not exported by the selftest');
  const d = m.value.domain;
  const pg = BigInt(d.pgsizeBitmap & -d.pgsizeBitmap);
  const iova = u64(env.p, 'iova');
  const length = u64(env.p, 'length');
  const offset = u64(env.p, 'offset');
  if (iova % pg !== 0n || length % pg !== 0n || offset % pg !== 0n || offset + length > BigInt(f.value.file.size)) {
    return fail('EINVAL', `iova, length and offset must be multiples of ${pg} with offset + length inside the buffer`);
  }
  for (let i = 0n; i < length; i += pg) {
    const at = Number(offset + i);
    const want = exp.pageToPhys(Math.floor(at / PAGE_SIZE)) + (at % PAGE_SIZE);
    const got = d.iovaToPhys(Number(iova + i));
    if (got !== want) return fail('EINVAL', `IOVA 0x${(iova + i).toString(16)} does not translate to byte ${at} of the dma-buf`);
  }
  return ok({});
}
