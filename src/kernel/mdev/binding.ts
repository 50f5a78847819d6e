// The iommufd side of an mdev that is neither a plain physical device nor emulated: the object its
// VFIO_DEVICE_BIND_IOMMUFD returns (out_devid) and the HWPT it is attached to.
//
// Modelling choice: the object has type 'device' and names the parent function as its `dev`, so
// IOMMU_GET_HW_INFO and IOMMU_HWPT_ALLOC with its ID describe and allocate for the parent's IOMMU. This
// follows the SIOV proposals (seed 003: "for mdev the struct device should be the pointer to the parent
// device", with the default PASID carried alongside); mainline Linux has no such bind: it binds a
// physical device (iommufd_device_bind) or an emulated one (iommufd_access_create) only. It does not
// claim DMA ownership of the parent's group: whether anything does is the parent driver's policy.

import type { PciDev } from '../../pci/dev.ts';
import { fail, ok, type Result } from '../errno.ts';
import type { IommufdCtx } from '../iommufd/context.ts';
import { HwptPaging, hwptPagingAlloc } from '../iommufd/hw-pagetable.ts';
import { Ioas } from '../iommufd/ioas.ts';
import type { IommufdObject } from '../iommufd/object.ts';

export class MdevBinding implements IommufdObject {
  readonly type = 'device' as const;
  readonly driverOwned = true;
  id = 0;
  users = 0;
  /** The HWPT the mdev is attached through, or null. */
  hwpt: HwptPaging | null = null;

  constructor(readonly ctx: IommufdCtx, readonly dev: PciDev, readonly mdevUuid: string) {}

  destroy(): void { /* the driver detached before removing the object */ }
}

/** The driver's bind: a driver-owned object, finalized at once. */
export function mdevBind(ctx: IommufdCtx, dev: PciDev, uuid: string): Result<MdevBinding> {
  if (ctx.isClosed) return fail('EBADF', 'the iommufd is closed');
  const b = new MdevBinding(ctx, dev, uuid);
  const id = ctx.objects.reserve(b);
  if (!id.ok) return id;
  ctx.objects.finalize(b);
  return ok(b);
}

/** The driver's unbind (after detaching). */
export function mdevUnbind(b: MdevBinding): void {
  const r = b.ctx.objects.removeDriverOwned(b);
  if (!r.ok) b.ctx.core.warn(`mdev ${b.mdevUuid}: unbind: ${r.reason}`);
}

/**
 * The HWPT an attach to `ptId` uses, with one reference taken for the attach: a HWPT_PAGING as it is, or
 * for an IOAS a new auto HWPT allocated for the parent with `flags` (freed with its last attach). Other
 * object types → EINVAL, a missing ID → ENOENT (iommufd_device_attach's lookups).
 */
export function mdevGetHwpt(b: MdevBinding, ptId: number, flags: number): Result<HwptPaging> {
  const ctx = b.ctx;
  const obj = ctx.objects.get(ptId);
  if (!obj.ok) return obj;
  const pt = obj.value;
  if (pt instanceof HwptPaging) {
    ctx.objects.ref(pt);
    return ok(pt);
  }
  if (!(pt instanceof Ioas)) return fail('EINVAL', `object ${ptId} is a ${pt.type}, not a HWPT or an IOAS`);
  const made = hwptPagingAlloc(ctx, pt, b.dev, { autoDomain: true, flags });
  if (!made.ok) return made;
  const id = ctx.objects.reserve(made.value);
  if (!id.ok) { made.value.destroy(); return id; }
  ctx.objects.finalize(made.value);
  ctx.objects.ref(made.value);
  return ok(made.value);
}

/** Drop an attach's reference; an auto HWPT goes with its last one. */
export function mdevPutHwpt(hwpt: HwptPaging): void {
  hwpt.ctx.objects.unref(hwpt);
  if (hwpt.autoDomain && hwpt.users === 1) void hwpt.ctx.objects.destroyUser(hwpt.id);
}
