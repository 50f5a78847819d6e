// IOMMU_TEST_CMD (selftest.c iommufd_test): the op switch and the ops on mock devices (MOCK_DOMAIN[_FLAGS],
// MOCK_DOMAIN_REPLACE, PASID_ATTACH/REPLACE/DETACH/CHECK_HWPT). The uapi layer decodes the op's union
// member into a payload of named fields and writes back the fields an op returns; an unknown op is
// EOPNOTSUPP. Ops 14, 16 and 17 (nested domains, vIOMMUs) are in test-cmd-viommu.ts.

import { NO_PASID } from '../../../hw/iommu/types.ts';
import { fail, ok, type Result } from '../../errno.ts';
import type { OpenFile } from '../../process/file.ts';
import type { Process } from '../../process/process.ts';
import type { IommufdCtx } from '../context.ts';
import { iommufdDeviceAttach, iommufdDeviceBind, iommufdDeviceDetach, iommufdDeviceReplace, iommufdDeviceUnbind } from '../device.ts';
import { HwptPaging } from '../hw-pagetable.ts';
import { newObject } from '../ioas-ioctls.ts';
import { IOMMU_TEST_OP } from './constants.ts';
import { SelftestDevObject } from './selftest-object.ts';
import type { IommufdSelftest } from './selftest.ts';
import { testAccessPages, testAccessReplaceIoas, testAccessRw, testCreateAccess, testDestroyAccessPages } from './test-cmd-access.ts';
import { testCheckDevCache, testCheckIotlb, testTriggerVevent } from './test-cmd-viommu.ts';
import { testAddReserved, testCheckMap, testCheckRefs, testDirty, testSetMemoryLimit, testTriggerIopf } from './test-cmd-checks.ts';
import { testCheckDmabuf, testDmabufGet, testDmabufRevoke } from './test-cmd-dmabuf.ts';

/** The op's union member, decoded by the uapi layer: field name → value (u64 fields as bigint). */
export type TestPayload = Readonly<Record<string, number | bigint>>;

/** What an op hands back: fields to write over the member, and the ioctl's return value (default 0). */
export interface TestCmdOut {
  readonly out?: Record<string, number | bigint>;
  readonly ret?: number;
}

/** Everything an op needs. */
export interface TestCmdEnv {
  readonly st: IommufdSelftest;
  readonly ctx: IommufdCtx;
  readonly proc: Process;
  /** The iommufd's open file in the caller's table (what an access holds), if found. */
  readonly ctxFile: OpenFile | null;
  readonly id: number;
  readonly p: TestPayload;
}

export const u32 = (p: TestPayload, k: string): number => Number(p[k] ?? 0) >>> 0;
export const u64 = (p: TestPayload, k: string): bigint => BigInt(p[k] ?? 0);

/** iommufd_test(): one op. */
export function iommufdTestCmd(env: TestCmdEnv, op: number): Result<TestCmdOut> {
  const O = IOMMU_TEST_OP;
  switch (op) {
    case O.ADD_RESERVED: return testAddReserved(env);
    case O.MOCK_DOMAIN: return mockDomain(env, 0);
    case O.MOCK_DOMAIN_FLAGS: return mockDomain(env, u32(env.p, 'dev_flags'));
    case O.MD_CHECK_MAP: return testCheckMap(env);
    case O.MD_CHECK_REFS: return testCheckRefs(env);
    case O.CREATE_ACCESS: return testCreateAccess(env);
    case O.DESTROY_ACCESS_PAGES: return testDestroyAccessPages(env);
    case O.ACCESS_PAGES: return testAccessPages(env);
    case O.ACCESS_RW: return testAccessRw(env);
    case O.SET_TEMP_MEMORY_LIMIT: return testSetMemoryLimit(env);
    case O.MOCK_DOMAIN_REPLACE: return mockDomainReplace(env);
    case O.ACCESS_REPLACE_IOAS: return testAccessReplaceIoas(env);
    case O.DIRTY: return testDirty(env);
    case O.TRIGGER_IOPF: return testTriggerIopf(env);
    case O.MD_CHECK_IOTLB: return testCheckIotlb(env);
    case O.DEV_CHECK_CACHE: return testCheckDevCache(env);
    case O.TRIGGER_VEVENT: return testTriggerVevent(env);
    case O.PASID_ATTACH: return pasidChange(env, 'attach');
    case O.PASID_REPLACE: return pasidChange(env, 'replace');
    case O.PASID_DETACH: return pasidDetach(env);
    case O.PASID_CHECK_HWPT: return pasidCheckHwpt(env);
    case O.DMABUF_GET: return testDmabufGet(env);
    case O.DMABUF_REVOKE: return testDmabufRevoke(env);
    case O.MD_CHECK_DMABUF: return testCheckDmabuf(env);
    default: return fail('EOPNOTSUPP', `unknown IOMMU_TEST_CMD op ${op}`);
  }
}

/**
 * iommufd_test_mock_domain(): a SELFTEST object, a mock device (flags ⊆ NO_DIRTY|PASID, else EINVAL) in
 * its own group, bound to the context as a DEVICE and attached at its RID to `id` (an IOAS: an auto
 * domain; or a HWPT). Any failure undoes all of it.
 */
function mockDomain(env: TestCmdEnv, flags: number): Result<TestCmdOut> {
  const { st, ctx, id } = env;
  const mock = st.bus.create(flags);
  if (!mock.ok) return mock;
  const sobj = new SelftestDevObject(ctx, st, mock.value);
  const sid = newObject(ctx, sobj);
  if (!sid.ok) { void st.bus.destroy(mock.value); return sid; }
  const idev = iommufdDeviceBind(ctx, mock.value.dev);
  // The object is aborted by the dispatcher on failure, which removes the mock device.
  if (!idev.ok) return idev;
  sobj.idev = idev.value;
  const pt = iommufdDeviceAttach(idev.value, id, NO_PASID);
  if (!pt.ok) {
    sobj.idev = null;
    iommufdDeviceUnbind(idev.value);
    return pt;
  }
  return ok({ out: { out_stdev_id: sid.value, out_hwpt_id: pt.value, out_idev_id: idev.value.id } });
}

/** The SELFTEST object `id` with its DEVICE (ENOENT for anything else). */
function stdevOf(env: TestCmdEnv): Result<SelftestDevObject> {
  const o = env.ctx.objects.get<SelftestDevObject>(env.id, 'selftest');
  if (!o.ok) return o;
  if (o.value.idev === null) return fail('EINVAL', `selftest object ${env.id} has no device`);
  return o;
}

/** iommufd_test_mock_domain_replace(): iommufd_device_replace at the RID; the new pt_id is written back. */
function mockDomainReplace(env: TestCmdEnv): Result<TestCmdOut> {
  const s = stdevOf(env);
  if (!s.ok) return s;
  const r = iommufdDeviceReplace(s.value.idev as NonNullable<SelftestDevObject['idev']>, u32(env.p, 'pt_id'), NO_PASID);
  return r.ok ? ok({ out: { pt_id: r.value } }) : r;
}

/** PASID_ATTACH / PASID_REPLACE: iommufd_device_attach/replace(idev, pasid, &pt_id). */
function pasidChange(env: TestCmdEnv, mode: 'attach' | 'replace'): Result<TestCmdOut> {
  const s = stdevOf(env);
  if (!s.ok) return s;
  const idev = s.value.idev as NonNullable<SelftestDevObject['idev']>;
  const pasid = u32(env.p, 'pasid');
  const pt = u32(env.p, 'pt_id');
  const r = mode === 'attach' ? iommufdDeviceAttach(idev, pt, pasid) : iommufdDeviceReplace(idev, pt, pasid);
  return r.ok ? ok({ out: { pt_id: r.value } }) : r;
}

/** PASID_DETACH: iommufd_device_detach(); nothing attached is not an error. */
function pasidDetach(env: TestCmdEnv): Result<TestCmdOut> {
  const s = stdevOf(env);
  if (!s.ok) return s;
  iommufdDeviceDetach(s.value.idev as NonNullable<SelftestDevObject['idev']>, u32(env.p, 'pasid'));
  return ok({});
}

/**
 * PASID_CHECK_HWPT: the core's attach handle at the PASID (iommu_attach_handle_get). hwpt_id 0: nothing
 * may be attached; otherwise the handle's domain must be that HWPT's (EINVAL either way on mismatch).
 */
function pasidCheckHwpt(env: TestCmdEnv): Result<TestCmdOut> {
  const s = stdevOf(env);
  if (!s.ok) return s;
  const dev = s.value.mock.dev;
  const pasid = u32(env.p, 'pasid');
  const hwptId = u32(env.p, 'hwpt_id');
  const handle = env.ctx.core.pasidHandle(dev, pasid);
  if (hwptId === 0) return handle === undefined ? ok({}) : fail('EINVAL', `PASID ${pasid} is attached, expected nothing`);
  const h = env.ctx.objects.get(hwptId, 'hwpt_paging', 'hwpt_nested');
  if (!h.ok) return h;
  const domain = h.value instanceof HwptPaging ? h.value.domain : (h.value as { domain?: unknown }).domain;
  if (handle?.domain !== domain) return fail('EINVAL', `PASID ${pasid} is not attached to HWPT ${hwptId}'s domain`);
  return ok({});
}
