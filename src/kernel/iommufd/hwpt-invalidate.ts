// IOMMU_HWPT_INVALIDATE (drivers/iommu/iommufd/hw_pagetable.c, iommufd_hwpt_invalidate; uAPI reference
// §6.13): a user-owned stage-1 table changed, flush what the IOMMU cached of it. Checks in the kernel's
// order: __reserved → EOPNOTSUPP; entry_num ≠ 0 with a NULL data_uptr or entry_len 0 → EINVAL; hwpt_id
// missing → ENOENT; a HWPT_NESTED goes to its domain's cache_invalidate_user, a vIOMMU to the vIOMMU's
// cache_invalidate; any other object (a paging parent included) → EINVAL. entry_num is written back
// whatever happens: the number of entries the driver handled before failing (0 for the early checks).

import { fail, ok } from '../errno.ts';
import type { UserInvalidatable } from '../iommu/nested-domain.ts';
import { HwptNested } from './hwpt-nested.ts';
import { failWithWriteBack, handler } from './ioas-ioctls.ts';
import { userDataArray } from './user-data.ts';
import { Viommu } from './viommu.ts';

export interface HwptInvalidateCmd {
  size: number; hwpt_id: number; data_uptr: bigint; data_type: number; entry_len: number; entry_num: number; __reserved: number;
}

export const iommufdHwptInvalidate = handler<HwptInvalidateCmd>((ctx, proc, cmd) => {
  const done = (n: number) => ({ entry_num: n });
  if (cmd.__reserved !== 0) return failWithWriteBack(fail('EOPNOTSUPP', '__reserved is not zero'), done(0));
  if (cmd.entry_num !== 0 && (cmd.data_uptr === 0n || cmd.entry_len === 0)) {
    return failWithWriteBack(fail('EINVAL', `entry_num ${cmd.entry_num} needs a data_uptr and an entry_len`), done(0));
  }
  const obj = ctx.objects.get(cmd.hwpt_id);
  if (!obj.ok) return failWithWriteBack(obj, done(0));
  const pt = obj.value;
  const array = userDataArray(proc, cmd.data_type, cmd.data_uptr, cmd.entry_len, cmd.entry_num);
  if (pt instanceof HwptNested) {
    const domain = pt.domain as Partial<UserInvalidatable>;
    if (typeof domain.cacheInvalidateUser !== 'function') return failWithWriteBack(fail('EOPNOTSUPP', `HWPT ${pt.id}'s driver has no cache_invalidate_user`), done(0));
    const out = domain.cacheInvalidateUser(array);
    if (!out.result.ok) return failWithWriteBack(out.result, done(out.handled));
    return ok(done(out.handled));
  }
  if (pt instanceof Viommu) {
    const out = pt.cacheInvalidate(array);
    if (!out.error.ok) return failWithWriteBack(out.error, done(out.done));
    return ok(done(out.done));
  }
  return failWithWriteBack(fail('EINVAL', `object ${pt.id} is a ${pt.type}, not a nested HWPT or a vIOMMU`), done(0));
});
