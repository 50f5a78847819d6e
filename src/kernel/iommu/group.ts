// The kernel's IOMMU group (Linux's struct iommu_group): the devices the group engine put together, the
// domains they share, DMA ownership (owner, owner_cnt) and the PASID array. The group engine's
// IommuGroup (src/pci/groups) says who is in the group; this object is what the IOMMU core keeps for it.

import type { PciDev } from '../../pci/dev.ts';
import type { IommuGroup as GroupPlacement } from '../../pci/groups/types.ts';
import type { IommuDomain } from './domain.ts';
import type { IommuDriverOps } from './driver-ops.ts';

/** What an attach carries besides the domain (Linux's struct iommu_attach_handle). */
export interface AttachHandle {
  readonly domain: IommuDomain;
  /** Whoever attached (iommufd's HWPT, a test): opaque to the core. */
  readonly cookie?: unknown;
}

export class IommuGroup {
  readonly id: number;
  readonly devices: readonly PciDev[];
  readonly placement: GroupPlacement;
  readonly driver: IommuDriverOps;
  /** The kernel's own domain for the group: DMA, or IDENTITY with iommu=pt. */
  readonly defaultDomain: IommuDomain;
  /** group->blocking_domain. */
  readonly blockingDomain: IommuDomain;
  /** group->domain: what the group's RIDs are attached to now. */
  domain: IommuDomain;
  /** The handle of the current RID attach (attach_group_handle / replace_group_handle), or null. */
  ridHandle: AttachHandle | null = null;
  /** group->owner: null for the kernel's DMA API users (host drivers). */
  owner: unknown = null;
  /** group->owner_cnt. */
  ownerCnt = 0;
  /** group->pasid_array. */
  readonly pasidArray = new Map<number, AttachHandle>();

  constructor(placement: GroupPlacement, driver: IommuDriverOps, defaultDomain: IommuDomain) {
    this.placement = placement;
    this.id = placement.id;
    this.devices = [...placement.devices];
    this.driver = driver;
    this.defaultDomain = defaultDomain;
    this.blockingDomain = driver.blockedDomain;
    this.domain = driver.blockedDomain;
  }

  /** iommu_group_dma_owner_claimed(): what makes VFIO call a group not viable. */
  get dmaOwnerClaimed(): boolean { return this.ownerCnt !== 0; }
}
