// What an IOMMU driver provides for vIOMMU objects, and what iommufd offers such a driver in return
// (Linux's iommu_ops->get_viommu_size/viommu_init, struct iommufd_viommu_ops, and the iommufd driver
// helpers of include/linux/iommufd.h). In Linux only some drivers have these (ARM SMMUv3, Tegra241 CMDQV
// and the selftest mock); intel has none, so a device behind the ioasis (VT-d-like) driver answers
// IOMMU_VIOMMU_ALLOC with EOPNOTSUPP until a driver installs `IommuDriverOps.viommu`.
//
// The iommu layer must not know iommufd's classes, so the driver sees the core objects through the small
// interfaces below (ViommuCore, VdeviceCore, HwQueueCore), which src/kernel/iommufd implements.

import type { PciDev } from '../../pci/dev.ts';
import type { Result } from '../errno.ts';
import type { IommuDomain, PagingDomain } from './domain.ts';
import type { IommuUserData, IommuUserDataArray } from './user-data.ts';

export type { IommuUserData, IommuUserDataArray } from './user-data.ts';

/** The core HW queue (struct iommufd_hw_queue) as a driver sees it. */
export interface HwQueueCore {
  /** IOMMU_HW_QUEUE_TYPE_*. */
  readonly queueType: number;
  readonly index: number;
  /** nesting_parent_iova and length as the user gave them. */
  readonly baseIova: bigint;
  readonly length: bigint;
}

/** The core vDEVICE (struct iommufd_vdevice) as a driver sees it. */
export interface VdeviceCore {
  readonly virtId: bigint;
  readonly dev: PciDev;
}

/**
 * The core vIOMMU (struct iommufd_viommu) and the iommufd helpers a driver may call on it
 * (iommufd_viommu_alloc_mmap, iommufd_viommu_report_event, iommufd_viommu_find_dev, ...).
 */
export interface ViommuCore {
  /** IOMMU_VIOMMU_TYPE_*. */
  readonly viommuType: number;
  /** The nesting parent's domain (viommu->hwpt->common.domain). */
  readonly parentDomain: PagingDomain;
  /**
   * iommufd_viommu_alloc_mmap(): register `length` bytes of driver pages from physical address `pa` for
   * mmap() of the iommufd; returns the offset user space passes to mmap(). Both must be page aligned (EINVAL).
   */
  allocMmap(pa: number, length: number): Result<number>;
  /** iommufd_viommu_destroy_mmap(): forget a region registered by this vIOMMU. */
  destroyMmap(offset: number): void;
  /** iommufd_viommu_report_event(): EOPNOTSUPP without a vEVENTQ of `type`; EINVAL for empty data. */
  reportEvent(type: number, data: Uint8Array): Result;
  /** iommufd_viommu_find_dev(): the device whose vDEVICE has this virt_id. */
  findDev(virtId: bigint): PciDev | undefined;
  /** iommufd_viommu_get_vdev_id(): ENOENT when `dev` has no vDEVICE on this vIOMMU. */
  getVdevId(dev: PciDev): Result<bigint>;
  /** iommufd_hw_queue_depend(): `dependent` keeps `depended` alive (its destroy is EBUSY). EINVAL for itself. */
  hwQueueDepend(dependent: HwQueueCore, depended: HwQueueCore): Result;
  /** iommufd_hw_queue_undepend(). */
  hwQueueUndepend(dependent: HwQueueCore, depended: HwQueueCore): void;
}

/** What a driver keeps for a vDEVICE or HW queue: the destroy it wants called (vdev->destroy, hw_queue->destroy). */
export interface DriverObjectHooks {
  destroy?(): void;
}

/** struct iommufd_viommu_ops: what viommu_init hands back for one vIOMMU. */
export interface ViommuOps {
  /** Called first when the vIOMMU is destroyed. */
  destroy?(): void;
  /**
   * alloc_domain_nested: a nested domain on this vIOMMU for IOMMU_HWPT_ALLOC with pt_id = the vIOMMU.
   * iommufd wraps the domain in a HWPT_NESTED holding the vIOMMU (hwpt-nested.ts hwptNestedAllocOnViommu).
   */
  allocDomainNested?(flags: number, userData: IommuUserData): Result<IommuDomain>;
  /**
   * cache_invalidate for IOMMU_HWPT_INVALIDATE with hwpt_id = the vIOMMU: the number of entries handled,
   * and the error that stopped the rest (partial success).
   */
  cacheInvalidate?(array: IommuUserDataArray): { readonly done: number; readonly error: Result };
  /** vdevice_init: set the driver's side of a new vDEVICE up; its errors abort the allocation. */
  vdeviceInit?(vdev: VdeviceCore): Result<DriverObjectHooks>;
  /** get_hw_queue_size: 0 for a queue type the driver does not support (the core answers EOPNOTSUPP). */
  getHwQueueSize?(type: number): number;
  /** hw_queue_init_phys: the queue at `basePa` (physically contiguous, pinned by the core). */
  hwQueueInitPhys?(queue: HwQueueCore, index: number, basePa: number): Result<DriverObjectHooks>;
}

/** The vIOMMU part of an IOMMU driver (iommu_ops->get_viommu_size and ->viommu_init). */
export interface ViommuDriverOps {
  /** get_viommu_size: 0 when `dev`'s IOMMU cannot give a vIOMMU of `type` (EOPNOTSUPP). */
  getViommuSize(dev: PciDev, type: number): number;
  /** viommu_init: set up the vIOMMU on the nesting parent `parent`; `userData` null when data_len is 0. */
  viommuInit(viommu: ViommuCore, parent: PagingDomain, userData: IommuUserData | null): Result<ViommuOps>;
}
