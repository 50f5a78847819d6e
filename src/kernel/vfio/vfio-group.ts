// A VFIO group (Linux's struct vfio_group): the /dev/vfio/N node for an IOMMU group (or a private fake
// group for an emulated or no-IOMMU device), its registered VFIO devices, and who holds it: the single
// open group file, the container or iommufd it is set to, and how many devices are open through cdevs.

import type { IommuGroup } from '../iommu/group.ts';
import type { IommufdCtx } from '../iommufd/context.ts';
import type { VfioDevice, VfioGroupType } from './vfio-device.ts';

export class VfioGroup {
  readonly devices: VfioDevice[] = [];
  /** group->opened_file: the group node is single-open system-wide (a second open is EBUSY). */
  openedFile: object | null = null;
  /** group->container (legacy API), opaque here; the container code owns its type. */
  container: object | null = null;
  /** group->iommufd: the iommufd given to VFIO_GROUP_SET_CONTAINER. */
  iommufd: IommufdCtx | null = null;
  /** group->cdev_device_open_cnt: devices of this group open through their cdevs (blocks the group open). */
  cdevDeviceOpenCnt = 0;

  constructor(
    /** N in /dev/vfio/N: the IOMMU group's ID (fake groups take the next free group ID). */
    readonly id: number,
    readonly type: VfioGroupType,
    /** The IOMMU group, or null for a fake (emulated or no-IOMMU) group. */
    readonly iommuGroup: IommuGroup | null,
  ) {}

  /** /dev/vfio/N, or /dev/vfio/noiommu-N. */
  get devPath(): string { return this.type === 'no-iommu' ? `/dev/vfio/noiommu-${this.id}` : `/dev/vfio/${this.id}`; }
}
