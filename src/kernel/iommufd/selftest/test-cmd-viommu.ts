// The IOMMU_TEST_CMD ops on nested domains and vIOMMUs (selftest.c): MD_CHECK_IOTLB (a mock nested
// domain's fake IOTLB), DEV_CHECK_CACHE (a mock device's fake cache, which vIOMMU invalidation clears)
// and TRIGGER_VEVENT (an event on the vIOMMU the device is attached through).

import { fail, ok, type Result } from '../../errno.ts';
import type { IommufdDevice } from '../device.ts';
import type { HwptNested } from '../hwpt-nested.ts';
import { MOCK_DEV_CACHE_ID_MAX, MOCK_NESTED_DOMAIN_IOTLB_ID_MAX } from './constants.ts';
import { MockNestedDomain } from './mock-nested-domain.ts';
import { reportSelftestEvent } from './mock-viommu.ts';
import { u32, type TestCmdEnv, type TestCmdOut } from './test-cmd.ts';

/** MD_CHECK_IOTLB: HWPT_NESTED `id` (ENOENT) of the mock (EINVAL); iotlb_id ≤ 3 and iotlb[id] = iotlb (EINVAL). */
export function testCheckIotlb(env: TestCmdEnv): Result<TestCmdOut> {
  const h = env.ctx.objects.get<HwptNested>(env.id, 'hwpt_nested');
  if (!h.ok) return h;
  const d = h.value.domain;
  if (!(d instanceof MockNestedDomain)) return fail('EINVAL', `HWPT ${env.id} is not a mock nested domain`);
  const id = u32(env.p, 'id');
  const want = u32(env.p, 'iotlb');
  if (id > MOCK_NESTED_DOMAIN_IOTLB_ID_MAX) return fail('EINVAL', `iotlb_id ${id} is above ${MOCK_NESTED_DOMAIN_IOTLB_ID_MAX}`);
  const got = d.iotlb[id] ?? 0;
  return got === want ? ok({}) : fail('EINVAL', `iotlb[${id}] is 0x${got.toString(16)}, not 0x${want.toString(16)}`);
}

/** DEV_CHECK_CACHE: DEVICE `id` (ENOENT); cache_id ≤ 3 and cache[id] = cache (EINVAL). */
export function testCheckDevCache(env: TestCmdEnv): Result<TestCmdOut> {
  const idev = env.ctx.objects.get<IommufdDevice>(env.id, 'device');
  if (!idev.ok) return idev;
  const id = u32(env.p, 'id');
  const want = u32(env.p, 'cache');
  if (id > MOCK_DEV_CACHE_ID_MAX) return fail('EINVAL', `cache_id ${id} is above ${MOCK_DEV_CACHE_ID_MAX}`);
  const got = env.st.driver.viommu.devCache(idev.value.dev)[id] ?? 0;
  return got === want ? ok({}) : fail('EINVAL', `cache[${id}] is 0x${got.toString(16)}, not 0x${want.toString(16)}`);
}

/**
 * TRIGGER_VEVENT: DEVICE dev_id (ENOENT); it must be attached to a nested domain of a vIOMMU with its
 * vDEVICE there (ENOENT). The event's own outcome (no vEVENTQ) is not the ioctl's.
 */
export function testTriggerVevent(env: TestCmdEnv): Result<TestCmdOut> {
  const idev = env.ctx.objects.get<IommufdDevice>(u32(env.p, 'dev_id'), 'device');
  if (!idev.ok) return idev;
  const at = env.st.driver.attachedViommu(idev.value.dev.rid);
  if (at === null || env.st.bus.byDev(idev.value.dev) === undefined) {
    return fail('ENOENT', `device ${idev.value.id} is not attached to a nested HWPT of a vIOMMU`);
  }
  void reportSelftestEvent(at.viommu, at.vdevId);
  return ok({});
}
