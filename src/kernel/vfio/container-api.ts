// What a VFIO group needs from the container it is set to (the legacy /dev/vfio/vfio container with its
// IOMMU backend). The group side (group.c) and the container side (container.c, vfio_iommu_type1.c) meet
// here, as they do in Linux through vfio_container_attach_group() and the backend ops.

import type { Result } from '../errno.ts';
import type { Process } from '../process/process.ts';
import type { VfioDevice } from './vfio-device.ts';
import type { VfioGroup } from './vfio-group.ts';

export interface VfioContainerLike {
  readonly kind: 'vfio-container';
  /**
   * vfio_container_attach_group(): no-IOMMU rules (EPERM), iommu_group_claim_dma_owner() (EPERM when
   * anything else claims the group), the backend's attach_group (replaying existing mappings) when one
   * is set. `proc` is the caller (for CAP_SYS_RAWIO checks).
   */
  attachGroup(group: VfioGroup, proc: Process): Result;
  /** vfio_container_detach_group(): backend detach, ownership released; the last group resets the container. */
  detachGroup(group: VfioGroup): void;
  /** A backend is set (VFIO_SET_IOMMU done): VFIO_GROUP_GET_DEVICE_FD needs it (EINVAL otherwise). */
  readonly iommuSet: boolean;
  /** vfio_device_container_register(): an emulated device of a group in this container opened (type1 pins). */
  registerDevice?(vdev: VfioDevice): void;
  unregisterDevice?(vdev: VfioDevice): void;
}
