// The VDEVICE object (drivers/iommu/iommufd/viommu.c iommufd_vdevice_*): a bound DEVICE's virtual ID
// (vSID, vRID, vDeviceID) on a vIOMMU. uAPI reference §11.2, §2.3:
//
//  * One vDEVICE per DEVICE (EEXIST), one per virt_id in a vIOMMU (EEXIST); the device must sit behind
//    the vIOMMU's physical IOMMU (EINVAL).
//  * It holds the vIOMMU's `users`. On the DEVICE it holds only a wait count (not `users`), so unbinding
//    the device is never refused because of it: unbind force-destroys the vDEVICE and leaves its ID a
//    tombstone (ENOENT, never reused while the iommufd is open).
//  * Destroy or abort: the driver's destroy, out of the vIOMMU's index, the vIOMMU's reference dropped.

import type { DriverObjectHooks, VdeviceCore } from '../iommu/viommu-ops.ts';
import type { PciDev } from '../../pci/dev.ts';
import type { IommufdDevice } from './device.ts';
import type { IommufdObject } from './object.ts';
import type { Viommu } from './viommu.ts';

export class Vdevice implements IommufdObject, VdeviceCore {
  readonly type = 'vdevice' as const;
  id = 0;
  users = 0;
  /** What the driver's vdevice_init returned (vdev->destroy). */
  hooks: DriverObjectHooks = {};
  private destroyed = false;

  constructor(readonly viommu: Viommu, readonly idev: IommufdDevice, readonly virtId: bigint) {
    viommu.ctx.objects.ref(viommu);
  }

  get dev(): PciDev { return this.idev.dev; }

  /** iommufd_vdevice_abort()/destroy(). */
  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    this.hooks.destroy?.();
    // Only ours: an allocation that lost the virt_id race never entered the index.
    if (this.viommu.vdevs.get(this.virtId) === this) this.viommu.vdevs.delete(this.virtId);
    this.viommu.ctx.objects.unref(this.viommu);
  }
}

/** idev->vdev: the vDEVICE of a DEVICE in its context, if any. */
export function vdeviceOf(idev: IommufdDevice): Vdevice | undefined {
  for (const o of idev.ctx.objects.live()) if (o instanceof Vdevice && o.idev === idev) return o;
  return undefined;
}

/**
 * iommufd_device_pre_destroy(): the DEVICE is being unbound, so its vDEVICE is destroyed now and its ID
 * becomes a tombstone (iommufd_object_tombstone_user()).
 */
export function iommufdVdeviceTombstone(idev: IommufdDevice): void {
  const vdev = vdeviceOf(idev);
  if (vdev !== undefined) idev.ctx.objects.tombstone(vdev);
}
