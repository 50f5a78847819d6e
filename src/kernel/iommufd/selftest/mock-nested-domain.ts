// The mock driver's NESTED domain (selftest.c struct mock_iommu_domain_nested): no page table of its own,
// just four fake IOTLB entries the user's IOMMU_HWPT_DATA_SELFTEST {iotlb} initialises and its
// IOMMU_HWPT_INVALIDATE_DATA_SELFTEST entries clear, so MD_CHECK_IOTLB can observe an invalidation. A
// domain allocated through a vIOMMU remembers it (attach then needs the device's vDEVICE there).

import { fail, ok, type Result } from '../../errno.ts';
import type { IommuDomain, IopfHandler, PagingDomain } from '../../iommu/domain.ts';
import type { InvalidateOutcome, UserInvalidatable } from '../../iommu/nested-domain.ts';
import { copyStructFromUser, copyStructFromUserArray, u32At, type IommuUserData, type IommuUserDataArray } from '../../iommu/user-data.ts';
import type { ViommuCore } from '../../iommu/viommu-ops.ts';
import {
  HWPT_INVALIDATE_SELFTEST_SIZE, HWPT_SELFTEST_MIN, HWPT_SELFTEST_SIZE, IOMMU_HWPT_DATA_SELFTEST, IOMMU_HWPT_INVALIDATE_DATA_SELFTEST,
  IOMMU_TEST_INVALIDATE_FLAG_ALL, MOCK_NESTED_DOMAIN_IOTLB_ID_MAX, MOCK_NESTED_DOMAIN_IOTLB_NUM,
} from './constants.ts';

export class MockNestedDomain implements IommuDomain, UserInvalidatable {
  readonly type = 'nested' as const;
  readonly aperture = { start: 0, last: -1 };
  readonly pgsizeBitmap = 0;
  readonly forceSnooping = false;
  iopfHandler: IopfHandler | null = null;
  /** mock_nested->iotlb. */
  readonly iotlb = new Uint32Array(MOCK_NESTED_DOMAIN_IOTLB_NUM);

  constructor(
    readonly id: number,
    readonly owner: unknown,
    readonly parent: PagingDomain,
    iotlb: number,
    /** mock_nested->mock_viommu: the vIOMMU it was allocated on, null for one on a paging parent. */
    readonly viommu: ViommuCore | null,
  ) {
    this.iotlb.fill(iotlb);
  }

  isPaging(): this is PagingDomain { return false; }

  get dirtyTracking(): boolean { return this.parent.dirtyTracking; }

  /**
   * mock_domain_cache_invalidate_user(): the array's type must be SELFTEST (EINVAL, even for zero entries);
   * each entry by the array copy rules (wrong type, short or long
   * entry → EINVAL; EFAULT), unknown flags → EOPNOTSUPP, iotlb_id > 3 → EINVAL; FLAG_ALL clears all four.
   * Entries before a failure count.
   */
  cacheInvalidateUser(array: IommuUserDataArray): InvalidateOutcome {
    if (array.type !== IOMMU_HWPT_INVALIDATE_DATA_SELFTEST) {
      return { handled: 0, result: fail('EINVAL', `invalidation data_type 0x${(array.type >>> 0).toString(16)} is not IOMMU_HWPT_INVALIDATE_DATA_SELFTEST`) };
    }
    let handled = 0;
    for (let i = 0; i < array.entryNum; i++) {
      const b = copyStructFromUserArray(array, IOMMU_HWPT_INVALIDATE_DATA_SELFTEST, i, HWPT_INVALIDATE_SELFTEST_SIZE, HWPT_INVALIDATE_SELFTEST_SIZE);
      if (!b.ok) return { handled, result: b };
      const flags = u32At(b.value, 0);
      const iotlbId = u32At(b.value, 4);
      if ((flags & ~IOMMU_TEST_INVALIDATE_FLAG_ALL) !== 0) return { handled, result: fail('EOPNOTSUPP', `entry ${i}: unknown flags 0x${flags.toString(16)}`) };
      if (iotlbId > MOCK_NESTED_DOMAIN_IOTLB_ID_MAX) return { handled, result: fail('EINVAL', `entry ${i}: iotlb_id ${iotlbId} is above ${MOCK_NESTED_DOMAIN_IOTLB_ID_MAX}`) };
      if ((flags & IOMMU_TEST_INVALIDATE_FLAG_ALL) !== 0) this.iotlb.fill(0);
      else this.iotlb[iotlbId] = 0;
      handled++;
    }
    return { handled, result: ok() };
  }
}

/**
 * __mock_domain_alloc_nested(): data of another type than SELFTEST → EOPNOTSUPP; the copy's rules (at
 * least the iotlb field, at most the kernel's struct: EINVAL; EFAULT); iotlb[0..3] = the user's iotlb.
 */
export function mockNestedAlloc(id: number, owner: unknown, parent: PagingDomain, data: IommuUserData, viommu: ViommuCore | null): Result<MockNestedDomain> {
  if (data.type !== IOMMU_HWPT_DATA_SELFTEST) return fail('EOPNOTSUPP', `the mock's nested domains take IOMMU_HWPT_DATA_SELFTEST, not type 0x${(data.type >>> 0).toString(16)}`);
  const b = copyStructFromUser(data, IOMMU_HWPT_DATA_SELFTEST, HWPT_SELFTEST_SIZE, HWPT_SELFTEST_MIN);
  if (!b.ok) return b;
  return ok(new MockNestedDomain(id, owner, parent, u32At(b.value, 0), viommu));
}
