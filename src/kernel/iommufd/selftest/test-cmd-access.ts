// The IOMMU_TEST_CMD ops on selftest access users (selftest.c): CREATE_ACCESS, DESTROY_ACCESS_PAGES,
// ACCESS_PAGES, ACCESS_RW and ACCESS_REPLACE_IOAS. An access is named by its fd (staccess.ts).

import { PAGE_SIZE } from '../../../hw/memory/physical-memory.ts';
import { fail, ok, type Result } from '../../errno.ts';
import { iommufdAccessPinPages, iommufdAccessReplace, iommufdAccessRw, iommufdAccessUnpinPages } from '../access.ts';
import {
  MAX_ACCESS_LENGTH, MOCK_ACCESS_RW_SLOW_PATH, MOCK_ACCESS_RW_WRITE, MOCK_FLAGS_ACCESS_CREATE_NEEDS_PIN_PAGES, MOCK_FLAGS_ACCESS_SYZ,
  MOCK_FLAGS_ACCESS_WRITE,
} from './constants.ts';
import { onWriteBackFailure } from '../ioas-ioctls.ts';
import { createStaccess, staccessOf } from './staccess.ts';
import { u32, u64, type TestCmdEnv, type TestCmdOut } from './test-cmd.ts';

const PAGE = BigInt(PAGE_SIZE);

/** CREATE_ACCESS: flags beyond NEEDS_PIN_PAGES → EOPNOTSUPP; a new fd on an access attached to IOAS `id`. */
export function testCreateAccess(env: TestCmdEnv): Result<TestCmdOut> {
  const flags = u32(env.p, 'flags');
  if ((flags & ~MOCK_FLAGS_ACCESS_CREATE_NEEDS_PIN_PAGES) !== 0) return fail('EOPNOTSUPP', `unknown CREATE_ACCESS flags 0x${flags.toString(16)}`);
  const fd = createStaccess(env.ctx, env.proc, env.ctxFile, env.id, (flags & MOCK_FLAGS_ACCESS_CREATE_NEEDS_PIN_PAGES) !== 0);
  if (!fd.ok) return fd;
  // Linux installs the fd only once the struct is copied back; here it is undone if that copy faults.
  onWriteBackFailure(env.ctx, () => { void env.proc.fds.close(fd.value); });
  return ok({ out: { out_access_fd: fd.value } });
}

/** DESTROY_ACCESS_PAGES: `id` is the access fd; unpin the item (ENOENT if gone). */
export function testDestroyAccessPages(env: TestCmdEnv): Result<TestCmdOut> {
  const sa = staccessOf(env.proc, env.id);
  if (!sa.ok) return sa;
  const r = sa.value.destroyItem(u32(env.p, 'access_pages_id'));
  return r.ok ? ok({}) : r;
}

/**
 * ACCESS_PAGES: length above 16 MiB → ENOMEM; flags beyond WRITE|SYZ → EOPNOTSUPP; an access created
 * without NEEDS_PIN_PAGES → EOPNOTSUPP; the pin's errors; then each pinned page must be the page the
 * caller's VA maps (uptr, realigned like iova; 0 skips the check), else the pin is undone and EBADE.
 */
export function testAccessPages(env: TestCmdEnv): Result<TestCmdOut> {
  const { p } = env;
  const length = u64(p, 'length');
  const flags = u32(p, 'flags');
  if (length > BigInt(MAX_ACCESS_LENGTH)) return fail('ENOMEM', 'ACCESS_PAGES is limited to 16 MiB');
  if ((flags & ~(MOCK_FLAGS_ACCESS_WRITE | MOCK_FLAGS_ACCESS_SYZ)) !== 0) return fail('EOPNOTSUPP', `unknown ACCESS_PAGES flags 0x${flags.toString(16)}`);
  if ((flags & MOCK_FLAGS_ACCESS_SYZ) !== 0) return fail('EOPNOTSUPP', 'MOCK_FLAGS_ACCESS_SYZ (syzkaller IOVA conversion) is not modelled');
  const sa = staccessOf(env.proc, env.id);
  if (!sa.ok) return sa;
  if (!sa.value.needsPinPages) return fail('EOPNOTSUPP', 'the access was created without MOCK_FLAGS_ACCESS_CREATE_NEEDS_PIN_PAGES');
  const access = sa.value.access;
  if (access === null) return fail('EBADFD', 'the access is gone');
  const iova = u64(p, 'iova');
  const pfns = iommufdAccessPinPages(access, iova, length, { write: (flags & MOCK_FLAGS_ACCESS_WRITE) !== 0 });
  if (!pfns.ok) return pfns;
  const uptr = u64(p, 'uptr');
  if (uptr !== 0n) {
    const va = Number(uptr - (iova % PAGE));
    for (let i = 0; i < pfns.value.length; i++) {
      const got = env.proc.mm.pinUserPages(va + i * PAGE_SIZE, 1, false);
      const same = got.ok && got.value[0] === pfns.value[i];
      if (got.ok) env.proc.mm.unpinUserPages(got.value);
      if (!same) {
        iommufdAccessUnpinPages(access, iova, length);
        return got.ok ? fail('EBADE', `page ${i} of the pin is not the page the user VA maps`) : got;
      }
    }
  }
  const item = sa.value.addItem(iova, length);
  return ok({ out: { out_access_pages_id: item.id } });
}

/**
 * ACCESS_RW: length above 16 MiB → ENOMEM; flags beyond WRITE|SLOW_PATH|SYZ → EOPNOTSUPP; a write
 * copies from uptr first (EFAULT), a read copies to uptr after. SLOW_PATH asks Linux to go through pinned
 * pages instead of the mm; the model's copy reaches the same bytes either way.
 */
export function testAccessRw(env: TestCmdEnv): Result<TestCmdOut> {
  const { p } = env;
  const length = u64(p, 'length');
  const flags = u32(p, 'flags');
  if (length > BigInt(MAX_ACCESS_LENGTH)) return fail('ENOMEM', 'ACCESS_RW is limited to 16 MiB');
  if ((flags & ~(MOCK_ACCESS_RW_WRITE | MOCK_ACCESS_RW_SLOW_PATH | MOCK_FLAGS_ACCESS_SYZ)) !== 0) return fail('EOPNOTSUPP', `unknown ACCESS_RW flags 0x${flags.toString(16)}`);
  if ((flags & MOCK_FLAGS_ACCESS_SYZ) !== 0) return fail('EOPNOTSUPP', 'MOCK_FLAGS_ACCESS_SYZ (syzkaller IOVA conversion) is not modelled');
  const sa = staccessOf(env.proc, env.id);
  if (!sa.ok) return sa;
  const access = sa.value.access;
  if (access === null) return fail('EBADFD', 'the access is gone');
  const buf = new Uint8Array(Number(length));
  const uptr = Number(u64(p, 'uptr'));
  const write = (flags & MOCK_ACCESS_RW_WRITE) !== 0;
  if (write && buf.length > 0) {
    const r = env.proc.mm.read(uptr, buf);
    if (!r.ok) return fail('EFAULT', `cannot read ${buf.length} bytes at 0x${uptr.toString(16)}`);
  }
  const r = iommufdAccessRw(access, u64(p, 'iova'), buf, { write });
  if (!r.ok) return r;
  if (!write) {
    const w = env.proc.mm.write(uptr, buf);
    if (!w.ok) return fail('EFAULT', `cannot write ${buf.length} bytes to 0x${uptr.toString(16)}`);
  }
  return ok({});
}

/** ACCESS_REPLACE_IOAS: iommufd_access_replace (ENOENT when not attached or not an IOAS). */
export function testAccessReplaceIoas(env: TestCmdEnv): Result<TestCmdOut> {
  const sa = staccessOf(env.proc, env.id);
  if (!sa.ok) return sa;
  const access = sa.value.access;
  if (access === null) return fail('EBADFD', 'the access is gone');
  const r = iommufdAccessReplace(access, u32(env.p, 'ioas_id'));
  return r.ok ? ok({}) : r;
}
