// vfio_pin_pages(), vfio_unpin_pages() and vfio_dma_rw() (drivers/vfio/vfio_main.c): the one API an
// emulated (mdev-style) device's driver uses to reach user memory, whichever way its user set it up.
//
//  * pin: npage 0 or the device not open → EINVAL; no dma_unmap callback → EINVAL (a driver that cannot
//    honour the unmap contract may not pin). Then, in this order:
//      - the group is in a legacy container → vfio_device_container_pin_pages(): npage over
//        VFIO_PIN_PAGES_MAX_ENTRIES (512) → E2BIG, no backend with pin_pages (no SET_IOMMU, no-IOMMU)
//        → ENOTTY, else type1's pin (lazy pinning per page, EINVAL/EPERM/EACCES/EBUSY: type1/pin.ts);
//      - the device is bound to an iommufd (device->iommufd_access) → iommufd_access_pin_pages of the
//        page-aligned range (ENOENT not attached or a hole, EPERM a write to a read-only area, ...);
//        the 512-page cap is the container path's only;
//      - neither → EINVAL.
//  * unpin: WARN and nothing on a closed device or no dma_unmap; the container path WARNs on npage
//    outside 1..512; the iommufd path unpins exactly the page-aligned range.
//  * rw: empty or closed → EINVAL; container → the backend's dma_rw (ENOTTY without one); iommufd →
//    iommufd_access_rw; neither → EINVAL.

import { PAGE_SIZE } from '../../hw/memory/physical-memory.ts';
import { fail, type Result } from '../errno.ts';
import { iommufdAccessPinPages, iommufdAccessRw, iommufdAccessUnpinPages } from '../iommufd/access.ts';
import { containerOf } from './container.ts';
import { type1DmaRw, type1PinPages, type1UnpinPages } from './type1/pin.ts';
import { Type1Iommu } from './type1/iommu.ts';
import type { VfioDevice } from './vfio-device.ts';

/** VFIO_PIN_PAGES_MAX_ENTRIES (include/linux/vfio.h). */
export const VFIO_PIN_PAGES_MAX_ENTRIES = 512;
const PAGE = BigInt(PAGE_SIZE);

const alignDown = (iova: bigint): bigint => iova - (iova % PAGE);

/** vfio_device_has_container(): the device's group was set to a legacy container. */
function hasContainer(vdev: VfioDevice): boolean { return vdev.group !== null && vdev.group.container !== null; }

/** The container's backend when it implements pin_pages/dma_rw (type1), or null (ENOTTY). */
function pinningBackend(vdev: VfioDevice): Type1Iommu | null {
  const b = containerOf(vdev.group)?.backend ?? null;
  return b instanceof Type1Iommu ? b : null;
}

function warn(vdev: VfioDevice, what: string): void {
  const b = pinningBackend(vdev);
  if (b !== null) b.log.push(`WARN: ${vdev.name}: ${what}`);
  else vdev.iommufdAccess?.ctx.core.warn(`${vdev.name}: ${what}`);
}

/** vfio_pin_pages(vdev, iova, npage, prot, pages): the PFN of each page, from the page holding `iova`. */
export function vfioPinPages(vdev: VfioDevice, iova: bigint, npage: number, write: boolean): Result<Uint32Array> {
  if (!Number.isInteger(npage) || npage <= 0) return fail('EINVAL', `npage ${npage}: nothing to pin`);
  if (vdev.openCount === 0) return fail('EINVAL', `${vdev.name} is not open`);
  if (vdev.ops.dmaUnmap === undefined) return fail('EINVAL', `${vdev.ops.name} has no dma_unmap callback and may not pin`);
  if (hasContainer(vdev)) {
    if (npage > VFIO_PIN_PAGES_MAX_ENTRIES) return fail('E2BIG', `npage ${npage} is over VFIO_PIN_PAGES_MAX_ENTRIES (${VFIO_PIN_PAGES_MAX_ENTRIES})`);
    const b = pinningBackend(vdev);
    if (b === null) return fail('ENOTTY', `${vdev.name}'s container has no backend that pins pages`);
    const r = type1PinPages(b, iova, npage, write);
    return r.ok ? { ok: true, value: Uint32Array.from(r.value) } : r;
  }
  const access = vdev.iommufdAccess;
  if (access !== null) return iommufdAccessPinPages(access, alignDown(iova), BigInt(npage) * PAGE, { write });
  return fail('EINVAL', `${vdev.name} is neither in a container nor bound to an iommufd`);
}

/** vfio_unpin_pages(vdev, iova, npage): bad arguments are a WARN (logged) and nothing happens. */
export function vfioUnpinPages(vdev: VfioDevice, iova: bigint, npage: number): void {
  if (vdev.openCount === 0 || vdev.ops.dmaUnmap === undefined) {
    warn(vdev, `vfio_unpin_pages(0x${iova.toString(16)}, ${npage}) on a closed device or without dma_unmap`);
    return;
  }
  if (hasContainer(vdev)) {
    if (!Number.isInteger(npage) || npage <= 0 || npage > VFIO_PIN_PAGES_MAX_ENTRIES) {
      warn(vdev, `vfio_unpin_pages(0x${iova.toString(16)}, ${npage}): npage out of range`);
      return;
    }
    const b = pinningBackend(vdev);
    if (b !== null) type1UnpinPages(b, iova, npage);
    return;
  }
  const access = vdev.iommufdAccess;
  if (access !== null) iommufdAccessUnpinPages(access, alignDown(iova), BigInt(npage) * PAGE);
}

/** vfio_dma_rw(vdev, iova, data, len, write): a CPU copy to (write) or from user memory. */
export function vfioDmaRw(vdev: VfioDevice, iova: bigint, data: Uint8Array, write: boolean): Result {
  if (data.length === 0) return fail('EINVAL', 'zero-length vfio_dma_rw');
  if (vdev.openCount === 0) return fail('EINVAL', `${vdev.name} is not open`);
  if (hasContainer(vdev)) {
    const b = pinningBackend(vdev);
    return b === null ? fail('ENOTTY', `${vdev.name}'s container has no backend with dma_rw`) : type1DmaRw(b, iova, data, write);
  }
  const access = vdev.iommufdAccess;
  if (access !== null) return iommufdAccessRw(access, iova, data, { write });
  return fail('EINVAL', `${vdev.name} is neither in a container nor bound to an iommufd`);
}
