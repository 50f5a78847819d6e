// A VFIO device (Linux's struct vfio_device): one function (or mdev) a VFIO driver registered, with its
// VFIO group, its cdev number, how many times it is open and what it is bound to. The driver-specific
// part is the ops table (struct vfio_device_ops): how to bind to an iommufd (a DEVICE for physical
// devices, an ACCESS for emulated ones), attach to IO page tables, and serve the device fd.

import type { PciDev } from '../../pci/dev.ts';
import type { Result } from '../errno.ts';
import type { IommufdAccess } from '../iommufd/access.ts';
import type { IommufdCtx } from '../iommufd/context.ts';
import type { VfioDeviceFdOps } from './device-fd-ops.ts';
import type { VfioGroup } from './vfio-group.ts';

/**
 * VFIO_IOMMU (a real IOMMU group), VFIO_EMULATED_IOMMU (mdev-style: a private fake group, DMA by CPU
 * through an access object or type1 pinning), VFIO_NO_IOMMU (unsafe no-IOMMU mode).
 */
export type VfioGroupType = 'iommu' | 'emulated-iommu' | 'no-iommu';

/** struct vfio_device_ops, the parts the VFIO core calls (the device fd's ioctls, read and write: VfioDeviceFdOps). */
export interface VfioDeviceOps extends VfioDeviceFdOps {
  /** The driver's name ("vfio-pci", "mtty", ...). */
  readonly name: string;
  /** open_device(): the first open of the device set; after the iommufd/container is in place. */
  openDevice?(vdev: VfioDevice): Result;
  /** close_device(): the last close. */
  closeDevice?(vdev: VfioDevice): void;
  /** bind_iommufd(): a DEVICE (physical) or ACCESS (emulated) in `ctx`; the ID is VFIO's out_devid. */
  bindIommufd?(vdev: VfioDevice, ctx: IommufdCtx): Result<number>;
  unbindIommufd?(vdev: VfioDevice): void;
  /** attach_ioas(): RID attach, or replace when already attached; returns the attached pt ID. */
  attachIoas?(vdev: VfioDevice, ptId: number): Result<number>;
  detachIoas?(vdev: VfioDevice): void;
  /** pasid_attach_ioas / pasid_detach_ioas (vfio-pci since v6.14): absent means EOPNOTSUPP. */
  pasidAttachIoas?(vdev: VfioDevice, pasid: number, ptId: number): Result<number>;
  pasidDetachIoas?(vdev: VfioDevice, pasid: number): void;
  /** dma_unmap(): mandatory for emulated devices that pin; must unpin everything in the range. */
  dmaUnmap?(vdev: VfioDevice, iova: bigint, length: bigint): void;
}

export class VfioDevice {
  /** The N of /dev/vfio/devices/vfioN (an IDA: the lowest free number). -1 until registered. */
  index = -1;
  /** The group this device is in (set at registration). */
  group: VfioGroup | null = null;
  /** device->open_count: opens of the device through either path (the device set's count). */
  openCount = 0;
  /** The iommufd this device is bound to (through a cdev, or a group attached to an iommufd). */
  iommufd: IommufdCtx | null = null;
  /** device->iommufd_access: the ACCESS an emulated device's bind created (vfio_pin_pages uses it). */
  iommufdAccess: IommufdAccess | null = null;
  /** False once unregistered: new opens fail ENODEV. */
  registered = false;

  constructor(
    /** dev_name(): the PCI address ("0000:16:00.0") or the mdev UUID. */
    readonly name: string,
    readonly type: VfioGroupType,
    readonly ops: VfioDeviceOps,
    /** The PCI function behind it (a physical device, or an mdev's parent), or null. */
    readonly pci: PciDev | null,
  ) {}
}
