// The mediated-device vocabulary (include/linux/mdev.h): a parent device, the types it advertises under
// mdev_supported_types/, the parent driver (struct mdev_driver) that turns a created mdev into a VFIO
// device, and the mdev itself. Plain data plus the driver interface; the core is mdev-core.ts.

import type { PciDev } from '../../pci/dev.ts';
import type { Result } from '../errno.ts';
import type { IommufdCtx } from '../iommufd/context.ts';
import type { VfioDevice } from '../vfio/vfio-device.ts';

/**
 * How an mdev reaches memory: `emulated` (CPU "DMA" through an iommufd ACCESS, mtty/mbochs-like),
 * `iommu-backed` (a whole PCI function behind the IOMMU: the 2019 vfio-mdev-pci sample), `pasid-backed`
 * (Scalable IOV: the parent's RID plus a PASID per mdev, seed 003).
 */
export type MdevKind = 'emulated' | 'iommu-backed' | 'pasid-backed';

/** One directory of mdev_supported_types/ as the parent driver declares it (struct mdev_type). */
export interface MdevTypeSpec {
  /** sysfs_name: the directory is "<driver name>-<id>". */
  readonly id: string;
  /** `name` attribute (pretty_name). */
  readonly name: string;
  readonly description: string;
  /** `device_api`, mandatory: "vfio-pci" for every type modelled here. */
  readonly deviceApi: 'vfio-pci';
  /**
   * Without the driver's getAvailable, the core counts instances itself (parent->available_instances)
   * and a create past the limit is EUSERS.
   */
  readonly maxInstances?: number;
}

/** struct mdev_driver with the parent-side callbacks the model needs. */
export interface MdevParentDriver {
  /** The driver's name: the prefix of its type directories ("mtty" → "mtty-1"). */
  readonly name: string;
  readonly kind: MdevKind;
  /** get_available(): instances still creatable, computed by the parent (mdev_type available_instances). */
  getAvailable?(parent: MdevParent, type: MdevType): number;
  /** probe() of the mdev: build and register the VFIO device. A failure undoes the create. */
  probe(mdev: MdevDevice): Result;
  /** remove(): unregister the VFIO device (EBUSY while open: Linux would block). */
  remove(mdev: MdevDevice): Result;
}

/** struct mdev_parent: a device registered with mdev_register_parent(). */
export interface MdevParent {
  readonly dev: PciDev;
  readonly driver: MdevParentDriver;
  readonly types: readonly MdevType[];
}

/** struct mdev_type, bound to its parent. */
export interface MdevType {
  readonly spec: MdevTypeSpec;
  readonly parent: MdevParent;
  /** "<driver>-<id>": the directory under mdev_supported_types/. */
  readonly sysfsName: string;
  /** Core-counted instances left (only without getAvailable). */
  available: number;
}

/** struct mdev_device: /sys/bus/mdev/devices/<uuid>. */
export interface MdevDevice {
  /** Lower-case canonical UUID (dev_name is "%pUl"). */
  readonly uuid: string;
  readonly type: MdevType;
  readonly parent: MdevParent;
  /** The VFIO device the driver registered at probe, or null before probe / after remove. */
  vdev: VfioDevice | null;
  /** The iommufd its user bound it to (set by the driver's bind_iommufd), or null. */
  user: IommufdCtx | null;
  /** PASID-backed: the default PASID allocated on the parent; otherwise null. */
  pasid: number | null;
}
