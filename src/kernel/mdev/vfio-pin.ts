// vfio_pin_pages(), vfio_unpin_pages() and vfio_dma_rw() on the iommufd path (drivers/vfio/vfio_main.c):
// how an emulated device's driver reaches the user's IOAS through the ACCESS its bind created.
//
//  * pin: no pages, npage 0 or the device not open → EINVAL; npage > VFIO_PIN_PAGES_MAX_ENTRIES (512)
//    → E2BIG; then iommufd_access_pin_pages(ALIGN_DOWN(iova, PAGE_SIZE), npage * PAGE_SIZE), whose
//    errnos pass through (ENOENT not attached or a hole, EPERM a write to a read-only area, ...).
//  * unpin: npage 0 or over 512 is a WARN and nothing happens; else iommufd_access_unpin_pages of the
//    same page-aligned range (which must be exactly a pinned range).
//  * rw: iommufd_access_rw (the KTHREAD flag when the caller has no mm; not modelled separately).
//  * No ACCESS (not bound to an iommufd): the legacy container path is not built here → ENOTTY, as
//    vfio_pin_pages answers when neither an iommufd nor a container backend can pin.

import { PAGE_SIZE } from '../../hw/memory/physical-memory.ts';
import { fail, type Result } from '../errno.ts';
import {
  iommufdAccessPinPages, iommufdAccessRw, iommufdAccessUnpinPages, type IommufdAccess,
} from '../iommufd/access.ts';
import type { VfioDevice } from '../vfio/vfio-device.ts';

/** VFIO_PIN_PAGES_MAX_ENTRIES. */
export const VFIO_PIN_PAGES_MAX_ENTRIES = 512;
const PAGE = BigInt(PAGE_SIZE);

const alignDown = (iova: bigint): bigint => iova - (iova % PAGE);

/** vfio_pin_pages(vdev, iova, npage, prot, pages): the PFN of each page. */
export function vfioPinPages(vdev: VfioDevice, access: IommufdAccess | null, iova: bigint, npage: number, write: boolean): Result<Uint32Array> {
  if (!Number.isInteger(npage) || npage <= 0) return fail('EINVAL', `npage ${npage}: nothing to pin`);
  if (vdev.openCount === 0) return fail('EINVAL', `${vdev.name} is not open`);
  if (npage > VFIO_PIN_PAGES_MAX_ENTRIES) return fail('E2BIG', `npage ${npage} is over VFIO_PIN_PAGES_MAX_ENTRIES (${VFIO_PIN_PAGES_MAX_ENTRIES})`);
  if (access === null) return fail('ENOTTY', `${vdev.name} is not bound to an iommufd and the container path cannot pin here`);
  return iommufdAccessPinPages(access, alignDown(iova), BigInt(npage) * PAGE, { write });
}

/** vfio_unpin_pages(vdev, iova, npage): a WARN (logged by the caller's core) on bad arguments. */
export function vfioUnpinPages(vdev: VfioDevice, access: IommufdAccess | null, iova: bigint, npage: number): void {
  if (access === null || !Number.isInteger(npage) || npage <= 0 || npage > VFIO_PIN_PAGES_MAX_ENTRIES) {
    access?.ctx.core.warn(`${vdev.name}: vfio_unpin_pages(${iova}, ${npage}) with bad arguments`);
    return;
  }
  iommufdAccessUnpinPages(access, alignDown(iova), BigInt(npage) * PAGE);
}

/** vfio_dma_rw(vdev, iova, data, len, write). */
export function vfioDmaRw(vdev: VfioDevice, access: IommufdAccess | null, iova: bigint, data: Uint8Array, write: boolean): Result {
  if (data.length === 0) return fail('EINVAL', 'zero-length vfio_dma_rw');
  if (vdev.openCount === 0) return fail('EINVAL', `${vdev.name} is not open`);
  if (access === null) return fail('ENOTTY', `${vdev.name} is not bound to an iommufd and the container path is not built here`);
  return iommufdAccessRw(access, iova, data, { write });
}
