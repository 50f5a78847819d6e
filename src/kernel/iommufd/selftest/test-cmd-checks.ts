// The IOMMU_TEST_CMD ops that reach into the model's own bookkeeping (selftest.c): ADD_RESERVED,
// MD_CHECK_MAP (the mock domain's translation against the page the user VA maps), MD_CHECK_REFS (pin
// counts), SET_TEMP_MEMORY_LIMIT, DIRTY (dirty bits from a user bitmap) and TRIGGER_IOPF.

import { NO_PASID } from '../../../hw/iommu/types.ts';
import { PAGE_SIZE } from '../../../hw/memory/physical-memory.ts';
import { fail, ok, type Result } from '../../errno.ts';
import type { IommufdDevice } from '../device.ts';
import type { HwptPaging } from '../hw-pagetable.ts';
import type { Ioas } from '../ioas.ts';
import { TEST_RESERVATION } from '../iopt-area.ts';
import { U64_MAX } from '../iova-intervals.ts';
import { MockPagingDomain } from './mock-domain.ts';
import { u32, u64, type TestCmdEnv, type TestCmdOut } from './test-cmd.ts';

/** ADD_RESERVED: iopt_reserve_iova on IOAS `id` (EINVAL for length 0, EOVERFLOW for a wrap, EADDRINUSE). */
export function testAddReserved(env: TestCmdEnv): Result<TestCmdOut> {
  const ioas = env.ctx.objects.get<Ioas>(env.id, 'ioas');
  if (!ioas.ok) return ioas;
  const start = u64(env.p, 'start');
  const length = u64(env.p, 'length');
  if (length === 0n) return fail('EINVAL', 'a reserved range needs a length');
  if (start + length - 1n > U64_MAX) return fail('EOVERFLOW', 'start + length wraps');
  const r = ioas.value.iopt.reserve(start, start + length - 1n, TEST_RESERVATION);
  return r.ok ? ok({}) : r;
}

/** get_md_pagetable(): HWPT_PAGING `id` (ENOENT) whose domain is the mock's (EINVAL). */
export function mockHwpt(env: TestCmdEnv): Result<{ hwpt: HwptPaging; domain: MockPagingDomain }> {
  const h = env.ctx.objects.get<HwptPaging>(env.id, 'hwpt_paging');
  if (!h.ok) return h;
  const domain = h.value.domain;
  if (!(domain instanceof MockPagingDomain)) return fail('EINVAL', `HWPT ${env.id} is not a mock paging domain`);
  return ok({ hwpt: h.value, domain });
}

/** The frame the caller's VA maps, found as get_user_pages_fast would (faulting it in). */
function gupPfn(env: TestCmdEnv, va: number): Result<number> {
  const got = env.proc.mm.pinUserPages(va, 1, false);
  if (!got.ok) return got;
  env.proc.mm.unpinUserPages(got.value);
  return ok(got.value[0] as number);
}

/**
 * MD_CHECK_MAP: iova, length and uptr aligned to the domain's smallest page (EINVAL); for each such page
 * the domain must translate iova to the user page's frame at uptr's offset in it (else EINVAL).
 */
export function testCheckMap(env: TestCmdEnv): Result<TestCmdOut> {
  const m = mockHwpt(env);
  if (!m.ok) return m;
  const d = m.value.domain;
  const pg = d.pgsizeBitmap & -d.pgsizeBitmap;
  const iova = Number(u64(env.p, 'iova'));
  const length = Number(u64(env.p, 'length'));
  const uptr = Number(u64(env.p, 'uptr'));
  if (iova % pg !== 0 || length % pg !== 0 || uptr % pg !== 0 || !Number.isSafeInteger(uptr + length)) {
    return fail('EINVAL', `iova, length and uptr must be multiples of the mock page size (${pg})`);
  }
  for (let off = 0; off < length; off += pg) {
    const pa = d.iovaToPhys(iova + off);
    const pfn = gupPfn(env, uptr + off);
    if (!pfn.ok) return pfn;
    if (pa !== pfn.value * PAGE_SIZE + ((uptr + off) % PAGE_SIZE)) {
      return fail('EINVAL', `IOVA 0x${(iova + off).toString(16)} does not translate to the page at 0x${(uptr + off).toString(16)}`);
    }
  }
  return ok({});
}

/**
 * MD_CHECK_REFS: length and uptr page aligned (EINVAL); every page that is not part of a large folio
 * must have exactly `refs` long-term pins (Linux: page_ref_count / GUP_PIN_COUNTING_BIAS), else EIO.
 */
export function testCheckRefs(env: TestCmdEnv): Result<TestCmdOut> {
  const length = Number(u64(env.p, 'length'));
  const uptr = Number(u64(env.p, 'uptr'));
  const refs = u32(env.p, 'refs');
  if (length % PAGE_SIZE !== 0 || uptr % PAGE_SIZE !== 0) return fail('EINVAL', 'length and uptr must be page aligned');
  const frames = env.proc.mm.frames;
  for (let off = 0; off < length; off += PAGE_SIZE) {
    const pfn = gupPfn(env, uptr + off);
    if (!pfn.ok) return pfn;
    if (frames.folioPages(pfn.value) > 1) continue;
    const pins = frames.pinCount(pfn.value);
    if (pins !== refs) return fail('EIO', `the page at 0x${(uptr + off).toString(16)} has ${pins} pin(s), expected ${refs}`);
  }
  return ok({});
}

/** SET_TEMP_MEMORY_LIMIT: below sizeof(long) + sizeof(u32) → EINVAL. */
export function testSetMemoryLimit(env: TestCmdEnv): Result<TestCmdOut> {
  const limit = u32(env.p, 'limit');
  if (limit < 12) return fail('EINVAL', 'the temporary memory limit must be at least 12');
  env.st.memoryLimit = limit;
  return ok({});
}

/**
 * DIRTY: page_size, length and uptr non-zero, iova and length multiples of page_size (EINVAL); a mock
 * HWPT with dirty tracking enabled (EINVAL otherwise); each set bit i of the user bitmap marks the leaf at
 * iova + i * page_size dirty. out_nr_dirty is the number of set bits.
 */
export function testDirty(env: TestCmdEnv): Result<TestCmdOut> {
  const { p } = env;
  const pageSize = u64(p, 'page_size');
  const length = u64(p, 'length');
  const iova = u64(p, 'iova');
  const uptr = u64(p, 'uptr');
  if (pageSize === 0n || length === 0n || uptr === 0n || iova % pageSize !== 0n || length % pageSize !== 0n) {
    return fail('EINVAL', 'DIRTY needs page_size, length and uptr, with iova and length multiples of page_size');
  }
  const m = mockHwpt(env);
  if (!m.ok) return m;
  const d = m.value.domain;
  if (!d.tracking || d.dirtyOps === null) return fail('EINVAL', `HWPT ${env.id} does not have dirty tracking enabled`);
  const max = Number(length / pageSize);
  const bitmap = new Uint8Array(Math.ceil(max / 8));
  if (!env.proc.mm.read(Number(uptr), bitmap).ok) return fail('EFAULT', 'cannot read the dirty bitmap');
  let count = 0;
  for (let i = 0; i < max; i++) {
    if (((bitmap[i >>> 3] as number) & (1 << (i & 7))) === 0) continue;
    d.setDirty(Number(iova + BigInt(i) * pageSize));
    count++;
  }
  return ok({ out: { out_nr_dirty: BigInt(count) } });
}

/**
 * TRIGGER_IOPF: one page request (LAST_PAGE; PASID_VALID when pasid ≠ 0) reported for DEVICE dev_id
 * through the core's io-pgfault path. Linux ignores what iommu_report_device_fault returns: so does this.
 */
export function testTriggerIopf(env: TestCmdEnv): Result<TestCmdOut> {
  const { p } = env;
  const idev = env.ctx.objects.get<IommufdDevice>(u32(p, 'dev_id'), 'device');
  if (!idev.ok) return idev;
  const pasid = u32(p, 'pasid');
  const perm = u32(p, 'perm');
  void env.ctx.core.reportDeviceFault(idev.value.dev, {
    pasid: pasid === 0 ? NO_PASID : pasid, prgi: u32(p, 'grpid'), address: Number(u64(p, 'addr')),
    read: (perm & 1) !== 0, write: (perm & 2) !== 0, exec: (perm & 4) !== 0, priv: (perm & 8) !== 0,
    lastInGroup: true, privateData: null,
  });
  return ok({});
}
