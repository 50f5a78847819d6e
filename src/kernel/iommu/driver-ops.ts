// What the IOMMU core and iommufd need of an IOMMU driver (Linux's struct iommu_ops plus the domain ops
// the core calls): the ioasis hardware driver implements it for the simulated units, the selftest mock
// driver (kernel/iommufd/selftest) for devices on the mock bus. Devices are named by requester ID, the
// handle the core gives every driver; a driver that is not PCI (the mock) hands out its own.

import type { FaultRecord, PageRequestRecord } from '../../hw/iommu/records.ts';
import type { PageResponseCode } from '../../hw/iommu/types.ts';
import type { Result } from '../errno.ts';
import type { IommuDomain, PagingDomain } from './domain.ts';
import type { IommuUserData } from './user-data.ts';
import type { ViommuDriverOps } from './viommu-ops.ts';

/**
 * enum iommu_cap, the ones iommufd asks about (device_iommu_capable / the driver's capable()):
 * dirty tracking (IOMMU_CAP_DIRTY_TRACKING), forcing snoop (ENFORCE_CACHE_COHERENCY), nested translation
 * (the nesting-parent precondition), and a device TLB answering ATS (PCI_ATS_SUPPORTED, the IOMMU side).
 */
export type IommuCap = 'dirty-tracking' | 'enforce-cache-coherency' | 'nesting' | 'device-tlb';

export interface PagingAllocOptions {
  readonly dirtyTracking?: boolean;
  /** The device the domain is allocated for (domain_alloc_paging_flags(dev, ...)), by requester ID. */
  readonly rid?: number;
  /** IOMMU_HWPT_ALLOC_PASID / NEST_PARENT, for drivers that care. */
  readonly pasid?: boolean;
  readonly nestParent?: boolean;
  /** Driver-specific data (IOMMU_HWPT_DATA_SELFTEST for the mock); absent for IOMMU_HWPT_DATA_NONE. */
  readonly userData?: IommuUserData;
}

/** ops->hw_info's answer: the data type and the driver's struct bytes. */
export interface HwInfo {
  readonly type: number;
  readonly data: Uint8Array;
}

export interface IommuDriverOps {
  readonly name: string;
  /** The IOMMU's PASID limit (dev->iommu->max_pasids is the min of this and the device's). */
  readonly maxPasids: number;
  readonly blockedDomain: IommuDomain;
  /** The IDENTITY domain, or null for a driver without one (the mock). */
  readonly identityDomain: IommuDomain | null;
  /** IOMMU_CAP_ENFORCE_CACHE_COHERENCY for its devices: the unit has snoop control (intel: ECAP.SC). */
  readonly enforceCacheCoherency: boolean;
  /** ops->capable(dev, cap) for the device at `rid`. */
  capable(rid: number, cap: IommuCap): boolean;
  /**
   * ops->hw_info(dev, &type): the driver's data for `requestedType` (IOMMU_HW_INFO_TYPE_DEFAULT = 0: its
   * own type). EOPNOTSUPP for a type the driver does not report.
   */
  hwInfo(rid: number, requestedType: number): Result<HwInfo>;
  /** domain_alloc_paging(_flags): a DMA or UNMANAGED domain. EOPNOTSUPP for what the IOMMU lacks. */
  allocPagingDomain(type: 'dma' | 'unmanaged', opts?: PagingAllocOptions): Result<PagingDomain>;
  /**
   * domain_alloc_nested: a NESTED domain on `parent` from the user's driver data (flags: the HWPT_ALLOC
   * flags without FAULT_ID_VALID). Absent: the IOMMU cannot nest (iommufd answers EOPNOTSUPP).
   */
  allocNestedDomain?(parent: IommuDomain, flags: number, data: IommuUserData): Result<IommuDomain>;
  /** probe_device: set the requester ID up (blocked) with room for `maxPasids` PASIDs. */
  probeDevice(rid: number, maxPasids: number): void;
  /** release_device: forget the requester ID (hot-unplug). */
  releaseDevice?(rid: number): void;
  /** attach_dev: the RID's domain. */
  attachDev(rid: number, domain: IommuDomain): Result;
  /** set_dev_pasid. */
  setDevPasid(rid: number, pasid: number, domain: IommuDomain): Result;
  /** remove_dev_pasid (blocking the PASID). */
  removeDevPasid(rid: number, pasid: number): void;
  /** The domain set for (rid, pasid), pasid 0 being the RID's own; null when none. */
  domainAt(rid: number, pasid?: number): IommuDomain | null;
  /** Allow page requests from the RID (context PRE). */
  setPageRequests(rid: number, enabled: boolean): void;
  /** page_response. */
  pageResponse(rid: number, pasid: number, prgi: number, code: PageResponseCode, privateData: readonly [number, number] | null): void;
  /** The interrupt handler: drain fault records into the log, return page requests. */
  poll(): { faults: FaultRecord[]; pageRequests: PageRequestRecord[]; pageRequestOverflow: boolean };
  readonly faultLog: readonly FaultRecord[];
  /** ops->user_pasid_table: the guest owns the PASID table, so a PASID fault goes to the RID's NESTED domain. */
  readonly userPasidTable?: boolean;
  /** The vIOMMU ops (iommu_ops->get_viommu_size/viommu_init); absent, as for intel: VIOMMU_ALLOC is EOPNOTSUPP. */
  viommu?: ViommuDriverOps;
}
