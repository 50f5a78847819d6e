// IOMMU_HWPT_ALLOC (drivers/iommu/iommufd/hw_pagetable.c, iommufd_hwpt_alloc), checks in
// the kernel's order (uAPI reference §6.10): __reserved → EOPNOTSUPP; data_type/data_len mismatch →
// EINVAL; dev_id → ENOENT; pt_id missing or of another type → EINVAL (not ENOENT); the paging allocation's
// own checks (unknown flags first); then fault_id (ENOENT). pt_id a HWPT_PAGING: a nested HWPT
// (hwpt-nested.ts: flags, data, parent rules, then the driver's; a NULL data_uptr is EFAULT); a HWPT_NESTED
// (nested on nested) is "another type": EINVAL. pt_id a vIOMMU: a device behind another physical IOMMU
// than the vIOMMU's → EINVAL, then the vIOMMU's alloc_domain_nested (hwptNestedAllocOnViommu). Paging
// HWPTs pass driver data (data_len ≠ 0) to the driver's domain_alloc_paging_flags, which decides.

import { fail, ok } from '../errno.ts';
import type { IommufdDevice } from './device.ts';
import type { IommufdFault } from './fault.ts';
import { HwptPaging, hwptPagingAlloc, IOMMU_HWPT_FAULT_ID_VALID } from './hw-pagetable.ts';
import { hwptNestedAlloc, hwptNestedAllocOnViommu, type Hwpt } from './hwpt-nested.ts';
import { handler, newObject } from './ioas-ioctls.ts';
import { Ioas } from './ioas.ts';
import { userData } from './user-data.ts';
import { Viommu } from './viommu.ts';

/** IOMMU_HWPT_DATA_NONE. */
export const IOMMU_HWPT_DATA_NONE = 0;

export interface HwptAllocCmd {
  size: number; flags: number; dev_id: number; pt_id: number; out_hwpt_id: number; __reserved: number;
  data_type: number; data_len: number; data_uptr: bigint; fault_id: number; __reserved2: number;
}

export const iommufdHwptAlloc = handler<HwptAllocCmd>((ctx, proc, cmd) => {
  // Unknown flags are refused by the paging (or nested) allocation, after the dev_id/pt_id lookups.
  if (cmd.__reserved !== 0) return fail('EOPNOTSUPP', '__reserved is not zero');
  if ((cmd.data_type === IOMMU_HWPT_DATA_NONE) !== (cmd.data_len === 0)) {
    return fail('EINVAL', `data_type ${cmd.data_type} with data_len ${cmd.data_len}: NONE takes no data, other types need some`);
  }
  const idev = ctx.objects.get<IommufdDevice>(cmd.dev_id, 'device');
  if (!idev.ok) return idev;
  const pt = ctx.objects.get(cmd.pt_id);
  if (!pt.ok) return fail('EINVAL', `pt_id ${cmd.pt_id}: ${pt.reason}`);
  let hwpt: Hwpt;
  if (pt.value instanceof Ioas) {
    const data = cmd.data_len === 0 ? undefined : userData(proc, cmd.data_type, cmd.data_uptr, cmd.data_len);
    const r = hwptPagingAlloc(ctx, pt.value, idev.value.dev, { flags: cmd.flags, ...(data === undefined ? {} : { userData: data }) });
    if (!r.ok) return r;
    hwpt = r.value;
  } else if (pt.value instanceof HwptPaging) {
    const r = hwptNestedAlloc(ctx, idev.value.dev, pt.value, cmd.flags, userData(proc, cmd.data_type, cmd.data_uptr, cmd.data_len));
    if (!r.ok) return r;
    hwpt = r.value;
  } else if (pt.value instanceof Viommu) {
    if (ctx.core.driverOf(idev.value.dev) !== pt.value.iommuDev) {
      return fail('EINVAL', `${idev.value.dev.shortBdf} is behind another IOMMU than vIOMMU ${cmd.pt_id}'s`);
    }
    const r = hwptNestedAllocOnViommu(ctx, pt.value, cmd.flags, userData(proc, cmd.data_type, cmd.data_uptr, cmd.data_len));
    if (!r.ok) return r;
    hwpt = r.value;
  } else {
    return fail('EINVAL', `pt_id ${cmd.pt_id} is a ${pt.value.type}, not an IOAS, a HWPT_PAGING or a vIOMMU`);
  }
  const id = newObject(ctx, hwpt);
  if (!id.ok) { hwpt.destroy(); return id; }
  if ((cmd.flags & IOMMU_HWPT_FAULT_ID_VALID) !== 0) {
    // The dispatcher aborts the new HWPT on this failure.
    const fault = ctx.objects.get<IommufdFault>(cmd.fault_id, 'fault');
    if (!fault.ok) return fault;
    hwpt.setFault(fault.value);
  }
  return ok({ out_hwpt_id: id.value });
});
