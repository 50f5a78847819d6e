// The HWPT_PAGING object (drivers/iommu/iommufd/hw_pagetable.c, iommufd_hwpt_paging_alloc): a paging
// domain of the device's IOMMU driver, kept in step with an IOAS (every area mapped into it). It holds a
// reference on its IOAS and, when allocated with IOMMU_HWPT_FAULT_ID_VALID, on a FAULT object whose
// iopf_handler becomes the domain's. Auto domains (attach to an IOAS ID) are freed by the device code when
// their last attach goes; manual ones by IOMMU_DESTROY (EBUSY while attached).

import type { PciDev } from '../../pci/dev.ts';
import { fail, ok, type Result } from '../errno.ts';
import type { IommuDomain, PagingDomain } from '../iommu/domain.ts';
import type { IommuUserData } from '../iommu/user-data.ts';
import type { IommufdCtx } from './context.ts';
import type { IommufdFault } from './fault.ts';
import type { Ioas } from './ioas.ts';
import type { IommufdObject } from './object.ts';

// enum iommufd_hwpt_alloc_flags (kernel copy; the uapi constants are checked against these in tests).
export const IOMMU_HWPT_ALLOC_NEST_PARENT = 1 << 0;
export const IOMMU_HWPT_ALLOC_DIRTY_TRACKING = 1 << 1;
export const IOMMU_HWPT_FAULT_ID_VALID = 1 << 2;
export const IOMMU_HWPT_ALLOC_PASID = 1 << 3;
/** IOMMU_HWPT_PAGING_FLAG_VALID. */
export const HWPT_PAGING_FLAGS = IOMMU_HWPT_ALLOC_NEST_PARENT | IOMMU_HWPT_ALLOC_DIRTY_TRACKING
  | IOMMU_HWPT_FAULT_ID_VALID | IOMMU_HWPT_ALLOC_PASID;

export interface HwptPagingOptions {
  /** Created for an attach to an IOAS ID (freed with its last attach). */
  readonly autoDomain?: boolean;
  /** IOMMU_HWPT_ALLOC_* flags (FAULT_ID_VALID is carried by `fault`). */
  readonly flags?: number;
  /** Driver data for the paging domain (data_type/data of IOMMU_HWPT_ALLOC), passed to the driver. */
  readonly userData?: IommuUserData;
}

export class HwptPaging implements IommufdObject {
  readonly type = 'hwpt_paging' as const;
  id = 0;
  users = 0;
  readonly autoDomain: boolean;
  readonly nestParent: boolean;
  /** Allocated with IOMMU_HWPT_ALLOC_PASID (hwpt->pasid_compat). */
  readonly pasidCompat: boolean;
  /**
   * hwpt_paging->enforce_cache_coherency: the domain forces snooping. Set at allocation for a device whose
   * IOMMU can enforce it, or later when such a device attaches (never cleared).
   */
  enforceCacheCoherency = false;
  /** The FAULT object named by fault_id, or null. */
  fault: IommufdFault | null = null;
  private destroyed = false;

  constructor(readonly ctx: IommufdCtx, readonly ioas: Ioas, readonly domain: PagingDomain, opts: HwptPagingOptions = {}) {
    const flags = opts.flags ?? 0;
    this.autoDomain = opts.autoDomain === true;
    this.nestParent = (flags & IOMMU_HWPT_ALLOC_NEST_PARENT) !== 0;
    this.pasidCompat = (flags & IOMMU_HWPT_ALLOC_PASID) !== 0;
  }

  get dirtyTracking(): boolean { return this.domain.dirtyTracking; }

  /**
   * hwpt->fault = fault; domain->iopf_handler = iommufd_fault_iopf_handler; the fault's users++.
   * Done once, right after allocation.
   */
  setFault(fault: IommufdFault): void { hwptSetFault(this, fault); }

  /** iommufd_hwpt_paging_destroy(): out of the IOAS (unmapping everything), domain freed, references dropped. */
  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    void this.ioas.removeDomain(this.domain);
    this.domain.iopfHandler = null;
    freeDomain(this.domain);
    if (this.fault !== null) this.fault.hwptPut();
    this.fault = null;
    this.ctx.objects.unref(this.ioas);
  }

  abort(): void { this.destroy(); }
}

/**
 * The common part of paging and nested HWPTs (struct iommufd_hw_pagetable's fault): hwpt->fault = fault,
 * domain->iopf_handler = iommufd_fault_iopf_handler, the FAULT's users++. Done once, right after allocation.
 */
export function hwptSetFault(hwpt: { readonly id: number; fault: IommufdFault | null; readonly domain: IommuDomain }, fault: IommufdFault): void {
  if (hwpt.fault !== null) throw new Error(`HWPT ${hwpt.id} already has a fault object`);
  hwpt.fault = fault;
  hwpt.domain.iopfHandler = fault.iopfHandler;
  fault.hwptGet();
}

/** iommu_domain_free(): the ioasis driver's domains free their page table. */
function freeDomain(d: PagingDomain): void {
  const f = (d as PagingDomain & { free?: () => void }).free;
  if (typeof f === 'function') f.call(d);
}

/**
 * iommufd_hwpt_paging_alloc() for `dev`'s IOMMU on `ioas`, flag checks in the kernel's order: unknown
 * flags → EOPNOTSUPP; DIRTY_TRACKING without the capability → EOPNOTSUPP; NEST_PARENT|FAULT_ID_VALID →
 * EOPNOTSUPP; NEST_PARENT without nesting, ALLOC_PASID without PASID support (the driver's refusal) →
 * EOPNOTSUPP. Then the domain is added to the IOAS (its errors propagate, the domain is freed) and the
 * IOAS gets a reference. The object is returned unreserved: the caller puts it in the table.
 */
export function hwptPagingAlloc(ctx: IommufdCtx, ioas: Ioas, dev: PciDev, opts: HwptPagingOptions = {}): Result<HwptPaging> {
  const flags = opts.flags ?? 0;
  if ((flags & ~HWPT_PAGING_FLAGS) !== 0) return fail('EOPNOTSUPP', `unknown HWPT_ALLOC flags 0x${(flags & ~HWPT_PAGING_FLAGS).toString(16)}`);
  const driver = ctx.core.driverOf(dev);
  if (driver === undefined) return fail('ENODEV', `${dev.shortBdf} has no IOMMU group`);
  const dirty = (flags & IOMMU_HWPT_ALLOC_DIRTY_TRACKING) !== 0;
  if (dirty && !ctx.core.deviceCapable(dev, 'dirty-tracking')) return fail('EOPNOTSUPP', `${driver.name} cannot track dirty pages (no IOMMU_CAP_DIRTY_TRACKING)`);
  if ((flags & IOMMU_HWPT_FAULT_ID_VALID) !== 0 && (flags & IOMMU_HWPT_ALLOC_NEST_PARENT) !== 0) {
    return fail('EOPNOTSUPP', 'a nesting parent cannot take IO page faults (NEST_PARENT | FAULT_ID_VALID)');
  }
  if ((flags & IOMMU_HWPT_ALLOC_NEST_PARENT) !== 0 && !ctx.core.deviceCapable(dev, 'nesting')) return fail('EOPNOTSUPP', `${driver.name} has no nested translation`);
  if ((flags & IOMMU_HWPT_ALLOC_PASID) !== 0 && driver.maxPasids === 0) return fail('EOPNOTSUPP', `${driver.name} has no PASID support`);
  const domain = ctx.core.allocPagingDomain(dev, 'unmanaged', {
    dirtyTracking: dirty, pasid: (flags & IOMMU_HWPT_ALLOC_PASID) !== 0, nestParent: (flags & IOMMU_HWPT_ALLOC_NEST_PARENT) !== 0,
    ...(opts.userData === undefined ? {} : { userData: opts.userData }),
  });
  if (!domain.ok) return domain;
  const hwpt = new HwptPaging(ctx, ioas, domain.value, opts);
  // The coherency mode is chosen before any mapping, from the device the HWPT is allocated for.
  if (driver.enforceCacheCoherency && !hwptEnforceCc(hwpt).ok) {
    freeDomain(domain.value);
    return fail('EINVAL', `${driver.name} reports IOMMU_CAP_ENFORCE_CACHE_COHERENCY but its domain refused it`);
  }
  const added = ioas.addDomain(domain.value, hwpt);
  if (!added.ok) {
    freeDomain(domain.value);
    return added;
  }
  ctx.objects.ref(ioas);
  return ok(hwpt);
}

/**
 * iommufd_hwpt_paging_enforce_cc(): make the HWPT's domain force snooping (the domain's
 * enforce_cache_coherency op); EINVAL when its IOMMU cannot.
 */
export function hwptEnforceCc(hwpt: HwptPaging): Result {
  if (hwpt.enforceCacheCoherency) return ok();
  hwpt.enforceCacheCoherency = hwpt.domain.enforceCacheCoherency();
  if (!hwpt.enforceCacheCoherency) return fail('EINVAL', `HWPT ${hwpt.id}: its IOMMU cannot enforce cache coherency (no snoop control)`);
  return ok();
}
