// The HWPT_NESTED object (drivers/iommu/iommufd/hw_pagetable.c, iommufd_hwpt_nested_alloc): a NESTED
// domain of the device's IOMMU driver, built from the user's driver data on a NEST_PARENT HWPT_PAGING
// (or on a vIOMMU, whose parent that is: hwptNestedAllocOnViommu). It holds a reference on its parent (or vIOMMU), so
// destroying the parent is EBUSY while it exists, and, with IOMMU_HWPT_FAULT_ID_VALID, on a FAULT object
// whose iopf_handler becomes the domain's. It has no IOAS of its own: attach uses the parent's (reserved
// regions go there), and the parent's mappings are its second stage.

import type { PciDev } from '../../pci/dev.ts';
import { fail, ok, type Result } from '../errno.ts';
import type { IommuDomain } from '../iommu/domain.ts';
import type { IommuUserData } from '../iommu/user-data.ts';
import type { IommufdCtx } from './context.ts';
import type { IommufdFault } from './fault.ts';
import { hwptSetFault, IOMMU_HWPT_ALLOC_PASID, IOMMU_HWPT_FAULT_ID_VALID, type HwptPaging } from './hw-pagetable.ts';
import type { Ioas } from './ioas.ts';
import type { IommufdObject } from './object.ts';
import type { Viommu } from './viommu.ts';

/** What a nested allocation accepts (Linux: flags other than FAULT_ID_VALID | ALLOC_PASID → EOPNOTSUPP). */
export const HWPT_NESTED_FLAGS = IOMMU_HWPT_FAULT_ID_VALID | IOMMU_HWPT_ALLOC_PASID;

export class HwptNested implements IommufdObject {
  readonly type = 'hwpt_nested' as const;
  id = 0;
  users = 0;
  /** Nested HWPTs are manual only. */
  readonly autoDomain = false;
  readonly pasidCompat: boolean;
  fault: IommufdFault | null = null;
  private destroyed = false;

  constructor(
    readonly ctx: IommufdCtx,
    /** The stage-2 HWPT (for a vIOMMU-based one, the vIOMMU's parent). */
    readonly parent: HwptPaging,
    readonly domain: IommuDomain,
    flags: number,
    /** The vIOMMU it was allocated on, holding the reference instead of the parent; null: on the parent. */
    readonly viommu: IommufdObject | null = null,
  ) {
    this.pasidCompat = (flags & IOMMU_HWPT_ALLOC_PASID) !== 0;
  }

  /** The parent's IOAS: a nested attach reserves the device's regions there. */
  get ioas(): Ioas { return this.parent.ioas; }

  /** hwpt->fault = fault and the domain's iopf_handler, as for a paging HWPT. */
  setFault(fault: IommufdFault): void { hwptSetFault(this, fault); }

  /** iommufd_hwpt_nested_destroy(): the domain goes (it holds no memory), references dropped. */
  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    this.domain.iopfHandler = null;
    if (this.fault !== null) this.fault.hwptPut();
    this.fault = null;
    this.ctx.objects.unref(this.viommu ?? this.parent);
  }

  abort(): void { this.destroy(); }
}

/** A HWPT a device can be attached to. */
export type Hwpt = HwptPaging | HwptNested;

/**
 * iommufd_hwpt_nested_alloc() (and the vIOMMU path's common part): flags other than FAULT_ID_VALID |
 * ALLOC_PASID, no data, or a driver without domain_alloc_nested → EOPNOTSUPP; an auto-domain parent, one
 * not allocated with NEST_PARENT, or one of another IOMMU driver instance than `dev`'s → EINVAL; then the
 * driver's own checks. The reference on the parent (or `viommu`) is taken here; the object is returned
 * unreserved: the caller puts it in the table and handles FAULT_ID_VALID.
 */
export function hwptNestedAlloc(
  ctx: IommufdCtx, dev: PciDev, parent: HwptPaging, flags: number, data: IommuUserData, viommu: IommufdObject | null = null,
): Result<HwptNested> {
  const driver = ctx.core.driverOf(dev);
  if (driver === undefined) return fail('ENODEV', `${dev.shortBdf} has no IOMMU group`);
  if ((flags & ~HWPT_NESTED_FLAGS) !== 0) return fail('EOPNOTSUPP', `flags 0x${flags.toString(16)}: a nested HWPT takes only FAULT_ID_VALID and ALLOC_PASID`);
  if (data.len === 0) return fail('EOPNOTSUPP', 'a nested HWPT needs driver data (data_len 0)');
  const alloc = (driver as { allocNestedDomain?: typeof driver.allocNestedDomain }).allocNestedDomain;
  if (alloc === undefined) return fail('EOPNOTSUPP', `${driver.name} cannot allocate nested domains`);
  if (parent.autoDomain) return fail('EINVAL', `HWPT ${parent.id} is an auto domain: it cannot be a nesting parent`);
  if (!parent.nestParent) return fail('EINVAL', `HWPT ${parent.id} was not allocated with IOMMU_HWPT_ALLOC_NEST_PARENT`);
  if (parent.domain.owner !== driver) return fail('EINVAL', `HWPT ${parent.id} belongs to another IOMMU instance than ${dev.shortBdf}'s (${driver.name})`);
  const domain = alloc.call(driver, parent.domain, flags & ~IOMMU_HWPT_FAULT_ID_VALID, data);
  if (!domain.ok) return domain;
  if (domain.value.type !== 'nested') return fail('EINVAL', `${driver.name} returned a ${domain.value.type} domain for a nested allocation`);
  ctx.objects.ref(viommu ?? parent);
  return ok(new HwptNested(ctx, parent, domain.value, flags, viommu));
}


/**
 * iommufd_viommu_alloc_hwpt_nested(): flags other than FAULT_ID_VALID | ALLOC_PASID, no data, or a vIOMMU
 * without alloc_domain_nested → EOPNOTSUPP; then the vIOMMU driver's own checks. The HWPT holds the
 * vIOMMU (not the parent directly: the vIOMMU holds that); its parent is the vIOMMU's.
 */
export function hwptNestedAllocOnViommu(ctx: IommufdCtx, viommu: Viommu, flags: number, data: IommuUserData): Result<HwptNested> {
  if ((flags & ~HWPT_NESTED_FLAGS) !== 0) return fail('EOPNOTSUPP', `flags 0x${(flags >>> 0).toString(16)}: a nested HWPT takes only FAULT_ID_VALID and ALLOC_PASID`);
  if (data.len === 0) return fail('EOPNOTSUPP', 'a nested HWPT needs driver data (data_len 0)');
  const domain = viommu.allocDomainNested(flags & ~IOMMU_HWPT_FAULT_ID_VALID, data);
  if (!domain.ok) return domain;
  if (domain.value.type !== 'nested') return fail('EINVAL', `the vIOMMU driver returned a ${domain.value.type} domain for a nested allocation`);
  ctx.objects.ref(viommu);
  return ok(new HwptNested(ctx, viommu.hwpt, domain.value, flags, viommu));
}
