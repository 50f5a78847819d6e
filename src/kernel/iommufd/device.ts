// The DEVICE object (drivers/iommu/iommufd/device.c): a device a kernel driver (VFIO) bound to an iommufd,
// its per-context igroup record, and attach/replace/detach of the device (RID or PASID) to a HWPT (paging
// or nested) or, through an auto domain, to an IOAS. Rules (uAPI reference §9, §13):
//
//  * Bind: no IOMMU group → ENODEV; DMA ownership claimed with the context as owner (another owner, a
//    sibling bound elsewhere or a host driver → EPERM); devices of one group may bind to the same context.
//    The DEVICE is driver-owned: IOMMU_DESTROY is EBUSY; unbind detaches every PASID, then the RID,
//    releases ownership and removes the object. With `file` the device holds the iommufd file open.
//  * Attach per igroup and PASID: the group attached to another HWPT → EINVAL; the same device already
//    attached → EBUSY; PASID compatibility (ALLOC_PASID) both ways → EINVAL; a RID attach reserves the
//    device's reserved regions in the IOAS (EADDRINUSE); the first device does the core attach; each
//    device attach holds a reference on the HWPT and on the DEVICE.
//  * An IOAS ID at the RID is an auto domain: an auto HWPT of the IOAS that accepts the device (EINVAL
//    from the attach: try the next) or a new one; the HWPT ID is returned (Linux writes it to *pt_id).
//    An IOAS ID at a PASID → EINVAL. Other object types → EINVAL, a missing ID → ENOENT.
//  * Replace: nothing attached / device not attached → EINVAL; the same HWPT → no-op. Detach of what is
//    not attached does nothing. An auto HWPT is destroyed when its last attach goes.
//  * A nested HWPT attaches like a paging one; what needs an IOAS (reserved regions, cache coherency)
//    uses its parent's (Linux's find_hwpt_paging). Replace moves freely between paging and nested.
//  * A fault HWPT's attaches are registered with its FAULT object (attachHwpt after the attach,
//    detachHwpt after the detach/replace), and the FAULT's dev_id lookup is this context's.

import { NO_PASID } from '../../hw/iommu/types.ts';
import type { PciDev } from '../../pci/dev.ts';
import { PCI_EXT_CAP_ID_PRI } from '../../pci/regs.ts';
import { fail, ok, type Result } from '../errno.ts';
import type { IommuGroup } from '../iommu/group.ts';
import type { OpenFile } from '../process/file.ts';
import type { IommufdCtx } from './context.ts';
import type { FaultAttachHandle } from './fault.ts';
import { HwptPaging, hwptEnforceCc, hwptPagingAlloc } from './hw-pagetable.ts';
import { HwptNested, type Hwpt } from './hwpt-nested.ts';
import type { ReservedOwner } from './iopt-area.ts';
import { Ioas } from './ioas.ts';
import type { IommufdObject } from './object.ts';
import { iommufdVdeviceTombstone } from './vdevice.ts';

/** One (igroup, PASID) attach: struct iommufd_attach. */
interface Attach {
  hwpt: Hwpt;
  /** device_array, with each device's FAULT attach handle (fault HWPTs only). */
  readonly devices: Map<IommufdDevice, FaultAttachHandle | null>;
}

/** struct iommufd_group: per context and IOMMU group. */
export class Igroup {
  readonly devices = new Set<IommufdDevice>();
  /** pasid_attach: PASID (NO_PASID for the RID) → attach. */
  readonly attach = new Map<number, Attach>();
  constructor(readonly ctx: IommufdCtx, readonly group: IommuGroup) {}
}

export class IommufdDevice implements IommufdObject {
  readonly type = 'device' as const;
  readonly driverOwned = true;
  id = 0;
  users = 0;
  /** The owner of the reserved regions this device puts in an IOAS while its RID is attached. */
  readonly resvOwner: ReservedOwner = { kind: 'device' };
  /** idev->enforce_cache_coherency: device_iommu_capable(IOMMU_CAP_ENFORCE_CACHE_COHERENCY) at bind. */
  readonly enforceCacheCoherency: boolean;
  private bound = true;

  constructor(readonly ctx: IommufdCtx, readonly dev: PciDev, readonly igroup: Igroup, private file: OpenFile | null) {
    this.enforceCacheCoherency = ctx.core.driverOf(dev)?.enforceCacheCoherency ?? false;
  }

  get isBound(): boolean { return this.bound; }

  /** The HWPT attached at `pasid` (NO_PASID: the RID) through this device, or null. */
  hwptAt(pasid: number = NO_PASID): Hwpt | null {
    const a = this.igroup.attach.get(pasid);
    return a !== undefined && a.devices.has(this) ? a.hwpt : null;
  }

  /** The PASIDs (NO_PASID for the RID) this device is attached at. */
  attachedPasids(): number[] {
    return [...this.igroup.attach].filter(([, a]) => a.devices.has(this)).map(([p]) => p);
  }

  /** Removal by unbind (nothing is attached any more): ownership released, the file reference dropped. */
  destroy(): void {
    if (!this.bound) return;
    this.bound = false;
    this.ctx.devicesByDev.delete(this.dev);
    this.igroup.devices.delete(this);
    if (this.igroup.devices.size === 0) this.ctx.igroups.delete(this.igroup.group);
    this.ctx.core.deviceReleaseDmaOwner(this.dev);
    const file = this.file;
    this.file = null;
    if (file !== null) file.put();
  }
}

/** The DEVICE of `dev` in `ctx`, if bound (iommufd_get_device by device). */
export function deviceOf(ctx: IommufdCtx, dev: PciDev): IommufdDevice | undefined {
  return ctx.devicesByDev.get(dev);
}

/** The dev_id a FAULT record carries: the DEVICE object ID of `dev` in `ctx`, 0 when not bound. */
export function deviceIdOf(ctx: IommufdCtx, dev: PciDev): number {
  return deviceOf(ctx, dev)?.id ?? 0;
}

/** iommufd_ctx_has_group(). */
export function ctxHasGroup(ctx: IommufdCtx, group: IommuGroup): boolean {
  return (ctx.igroups.get(group)?.devices.size ?? 0) > 0;
}

// ---- bind / unbind --------------------------------------------------------------------------------

/**
 * iommufd_device_bind(): ENODEV without an IOMMU group; EPERM when the group's MSIs are not isolated
 * (no interrupt remapping) and iommufd.allow_unsafe_interrupts is off (Linux warns and goes on when it
 * is on); EPERM when the group is owned by someone else (another context, a host driver); EBUSY if `dev`
 * is already bound here. The DEVICE records IOMMU_CAP_ENFORCE_CACHE_COHERENCY (idev->enforce_cache_coherency).
 * IOMMU_CAP_CACHE_COHERENCY (EINVAL without it) holds for every modelled IOMMU, as for Intel's. The object is finalized at once
 * (the driver, not an ioctl, creates it). `file`: the iommufd's open file, held until unbind.
 */
export function iommufdDeviceBind(ctx: IommufdCtx, dev: PciDev, opts: { file?: OpenFile } = {}): Result<IommufdDevice> {
  if (ctx.isClosed) return fail('EBADF', 'the iommufd is closed');
  const group = ctx.core.groupOf(dev);
  if (group === undefined) return fail('ENODEV', `${dev.shortBdf} has no IOMMU group`);
  if (ctx.devicesByDev.has(dev)) return fail('EBUSY', `${dev.shortBdf} is already bound to this iommufd`);
  if (!ctx.core.groupHasIsolatedMsi(group)) {
    if (!ctx.params.allowUnsafeInterrupts) {
      return fail('EPERM', `group ${group.id}: MSIs cannot be isolated (no interrupt remapping); iommufd.allow_unsafe_interrupts is off`);
    }
    ctx.core.log.push(`iommufd ${dev.shortBdf}: MSI interrupts are not secure, they cannot be isolated by the platform (allow_unsafe_interrupts)`);
  }
  const claimed = ctx.core.deviceClaimDmaOwner(dev, ctx);
  if (!claimed.ok) return claimed;
  let ig = ctx.igroups.get(group);
  if (ig === undefined) {
    ig = new Igroup(ctx, group);
    ctx.igroups.set(group, ig);
  }
  const idev = new IommufdDevice(ctx, dev, ig, opts.file ?? null);
  const id = ctx.objects.reserve(idev);
  if (!id.ok) {
    if (ig.devices.size === 0) ctx.igroups.delete(group);
    ctx.core.deviceReleaseDmaOwner(dev);
    return id;
  }
  ctx.objects.finalize(idev);
  ig.devices.add(idev);
  ctx.devicesByDev.set(dev, idev);
  if (opts.file !== undefined) opts.file.get();
  return ok(idev);
}

/** iommufd_device_unbind(): detach every PASID, then the RID; release DMA ownership; remove the object. */
export function iommufdDeviceUnbind(idev: IommufdDevice): void {
  if (!idev.isBound) return;
  for (const p of idev.attachedPasids()) if (p !== NO_PASID) iommufdDeviceDetach(idev, p);
  iommufdDeviceDetach(idev, NO_PASID);
  iommufdVdeviceTombstone(idev);
  const r = idev.ctx.objects.removeDriverOwned(idev);
  if (!r.ok) throw new Error(`unbind of ${idev.dev.shortBdf}: ${r.reason}`);
}

// ---- attach / replace / detach ----------------------------------------------------------------------

type Mode = 'attach' | 'replace';

/**
 * iommufd_device_attach(idev, pasid, &pt_id): `ptId` names a HWPT_PAGING or an IOAS (auto domain, RID
 * only). Returns the ID of the HWPT now attached (what Linux writes back through pt_id).
 */
export function iommufdDeviceAttach(idev: IommufdDevice, ptId: number, pasid: number = NO_PASID): Result<number> {
  return changePt(idev, ptId, pasid, 'attach');
}

/** iommufd_device_replace(): move an attached device (and its group) to another HWPT or IOAS. */
export function iommufdDeviceReplace(idev: IommufdDevice, ptId: number, pasid: number = NO_PASID): Result<number> {
  return changePt(idev, ptId, pasid, 'replace');
}

/** iommufd_device_detach(): nothing attached at `pasid` → nothing happens. */
export function iommufdDeviceDetach(idev: IommufdDevice, pasid: number = NO_PASID): void {
  const ig = idev.igroup;
  const a = ig.attach.get(pasid);
  if (a === undefined || !a.devices.has(idev)) return;
  const hwpt = a.hwpt;
  const handle = a.devices.get(idev) ?? null;
  a.devices.delete(idev);
  if (a.devices.size === 0) {
    if (pasid === NO_PASID) idev.ctx.core.detachGroup(ig.group);
    else idev.ctx.core.removeDevicePasid(idev.dev, pasid);
    ig.attach.delete(pasid);
  }
  if (handle !== null) hwpt.fault?.detachHwpt(handle);
  if (pasid === NO_PASID) hwpt.ioas.removeReserved(idev.resvOwner);
  idev.ctx.objects.unref(idev);
  putHwpt(hwpt);
}

function changePt(idev: IommufdDevice, ptId: number, pasid: number, mode: Mode): Result<number> {
  if (!idev.isBound) return fail('ENODEV', `${idev.dev.shortBdf} is not bound`);
  const obj = idev.ctx.objects.get(ptId);
  if (!obj.ok) return obj;
  const pt = obj.value;
  if (pt instanceof HwptPaging || pt instanceof HwptNested) {
    const r = mode === 'attach' ? doAttach(idev, pt, pasid) : doReplace(idev, pt, pasid);
    return r.ok ? ok(pt.id) : r;
  }
  if (pt instanceof Ioas) {
    if (pasid !== NO_PASID) return fail('EINVAL', `an IOAS cannot be attached at PASID ${pasid}: there are no auto domains for PASIDs, allocate a HWPT with IOMMU_HWPT_ALLOC_PASID`);
    return autoDomain(idev, pt, mode);
  }
  return fail('EINVAL', `object ${ptId} is a ${pt.type}, not a HWPT or an IOAS`);
}

/** iommufd_device_auto_get_domain(). */
function autoDomain(idev: IommufdDevice, ioas: Ioas, mode: Mode): Result<number> {
  for (const d of ioas.domains()) {
    const h = ioas.domainOwner(d);
    if (!(h instanceof HwptPaging) || !h.autoDomain || h.ctx !== idev.ctx) continue;
    const r = mode === 'attach' ? doAttach(idev, h, NO_PASID) : doReplace(idev, h, NO_PASID);
    if (r.ok) return ok(h.id);
    if (r.errno !== 'EINVAL') return r;
  }
  const ctx = idev.ctx;
  const made = hwptPagingAlloc(ctx, ioas, idev.dev, { autoDomain: true });
  if (!made.ok) return made;
  const hwpt = made.value;
  const id = ctx.objects.reserve(hwpt);
  if (!id.ok) { hwpt.destroy(); return id; }
  ctx.objects.finalize(hwpt);
  const r = mode === 'attach' ? doAttach(idev, hwpt, NO_PASID) : doReplace(idev, hwpt, NO_PASID);
  if (!r.ok) {
    void ctx.objects.destroyUser(hwpt.id);
    return r;
  }
  return ok(hwpt.id);
}

/** iommufd_hwpt_pasid_compat(). */
function pasidCompat(ig: Igroup, hwpt: Hwpt, pasid: number): Result {
  if (pasid === NO_PASID) {
    if (!hwpt.pasidCompat && [...ig.attach.keys()].some((p) => p !== NO_PASID)) {
      return fail('EINVAL', `PASIDs of group ${ig.group.id} are attached: the RID's HWPT must be allocated with IOMMU_HWPT_ALLOC_PASID`);
    }
    return ok();
  }
  if (!hwpt.pasidCompat) return fail('EINVAL', `HWPT ${hwpt.id} was not allocated with IOMMU_HWPT_ALLOC_PASID`);
  const rid = ig.attach.get(NO_PASID);
  if (rid !== undefined && !rid.hwpt.pasidCompat) {
    return fail('EINVAL', `the RID of group ${ig.group.id} is attached to HWPT ${rid.hwpt.id}, which is not PASID-compatible`);
  }
  return ok();
}

/** iopt_table_enforce_dev_resv_regions(): the device's reserved regions (not DIRECT_RELAXABLE) in `ioas`. */
function enforceResv(idev: IommufdDevice, ioas: Ioas): Result {
  const ranges = idev.ctx.core.resvRegions(idev.dev)
    .filter((r) => r.type !== 'direct-relaxable')
    .map((r) => ({ start: BigInt(r.start), last: BigInt(r.start) + BigInt(r.length) - 1n }));
  return ioas.addReserved(idev.resvOwner, ranges);
}

/** iommufd_hwpt_attach_device()'s device check: a PCI VF with PRI cannot use a fault HWPT. */
function faultCompat(idev: IommufdDevice, hwpt: Hwpt): Result {
  if (hwpt.fault === null) return ok();
  const dev = idev.dev;
  if (dev.physfn !== null && dev.physfn.config.findExtCapability(PCI_EXT_CAP_ID_PRI) !== 0) {
    return fail('EINVAL', `${dev.shortBdf} is a VF with PRI: it cannot attach a fault HWPT`);
  }
  return ok();
}

function faultAttach(idev: IommufdDevice, hwpt: Hwpt, pasid: number): FaultAttachHandle | null {
  const f = hwpt.fault;
  if (f === null) return null;
  const ctx = idev.ctx;
  f.devIdOf = (d) => deviceIdOf(ctx, d);
  return f.attachHwpt(idev.dev, pasid, hwpt.domain);
}

/** iommufd_hw_pagetable_attach(). */
function doAttach(idev: IommufdDevice, hwpt: Hwpt, pasid: number): Result {
  const ig = idev.igroup;
  const cur = ig.attach.get(pasid);
  if (cur !== undefined && cur.hwpt !== hwpt) {
    return fail('EINVAL', `group ${ig.group.id} is attached to HWPT ${cur.hwpt.id} at ${pasidName(pasid)}: a group shares one HWPT per PASID`);
  }
  if (cur?.devices.has(idev) === true) return fail('EBUSY', `${idev.dev.shortBdf} is already attached at ${pasidName(pasid)}: use replace`);
  const compat = pasidCompat(ig, hwpt, pasid);
  if (!compat.ok) return compat;
  const fc = faultCompat(idev, hwpt);
  if (!fc.ok) return fc;
  if (pasid === NO_PASID) {
    // Try to upgrade the HWPT: a device that can enforce coherency makes its domain enforce it.
    if (idev.enforceCacheCoherency) {
      const cc = hwptEnforceCc(pagingOf(hwpt));
      if (!cc.ok) return cc;
    }
    const r = enforceResv(idev, hwpt.ioas);
    if (!r.ok) return r;
  }
  if (cur === undefined) {
    const core = idev.ctx.core;
    const r = pasid === NO_PASID ? core.attachGroup(hwpt.domain, ig.group, hwpt) : core.attachDevicePasid(hwpt.domain, idev.dev, pasid, hwpt);
    if (!r.ok) {
      if (pasid === NO_PASID) hwpt.ioas.removeReserved(idev.resvOwner);
      return r;
    }
  }
  const a = cur ?? { hwpt, devices: new Map<IommufdDevice, FaultAttachHandle | null>() };
  a.devices.set(idev, faultAttach(idev, hwpt, pasid));
  ig.attach.set(pasid, a);
  idev.ctx.objects.ref(hwpt);
  idev.ctx.objects.ref(idev);
  return ok();
}

/** iommufd_device_do_replace(). */
function doReplace(idev: IommufdDevice, hwpt: Hwpt, pasid: number): Result {
  const ig = idev.igroup;
  const a = ig.attach.get(pasid);
  if (a === undefined) return fail('EINVAL', `group ${ig.group.id} has nothing attached at ${pasidName(pasid)}`);
  if (!a.devices.has(idev)) return fail('EINVAL', `${idev.dev.shortBdf} is not attached at ${pasidName(pasid)}`);
  const old = a.hwpt;
  if (old === hwpt) return ok();
  const compat = pasidCompat(ig, hwpt, pasid);
  if (!compat.ok) return compat;
  for (const d of a.devices.keys()) {
    const fc = faultCompat(d, hwpt);
    if (!fc.ok) return fc;
  }
  const moveResv = pasid === NO_PASID && old.ioas !== hwpt.ioas;
  if (moveResv) {
    const done: IommufdDevice[] = [];
    for (const d of a.devices.keys()) {
      const r = enforceResv(d, hwpt.ioas);
      if (!r.ok) {
        for (const u of done) hwpt.ioas.removeReserved(u.resvOwner);
        return r;
      }
      done.push(d);
    }
  }
  const core = idev.ctx.core;
  const r = pasid === NO_PASID ? core.replaceGroupHandle(ig.group, hwpt.domain, hwpt) : core.replaceDevicePasid(hwpt.domain, idev.dev, pasid, hwpt);
  if (!r.ok) {
    if (moveResv) for (const d of a.devices.keys()) hwpt.ioas.removeReserved(d.resvOwner);
    return r;
  }
  if (moveResv) for (const d of a.devices.keys()) old.ioas.removeReserved(d.resvOwner);
  a.hwpt = hwpt;
  for (const [d, handle] of [...a.devices]) {
    if (handle !== null) old.fault?.detachHwpt(handle);
    a.devices.set(d, faultAttach(d, hwpt, pasid));
    idev.ctx.objects.ref(hwpt);
    putHwpt(old);
  }
  return ok();
}

/** Drop an attach's reference; an auto domain goes with its last attach. */
function putHwpt(hwpt: Hwpt): void {
  hwpt.ctx.objects.unref(hwpt);
  if (hwpt.autoDomain && hwpt.users === 1) void hwpt.ctx.objects.destroyUser(hwpt.id);
}

/** find_hwpt_paging(): the paging HWPT behind `hwpt` (a nested HWPT's parent). */
function pagingOf(hwpt: Hwpt): HwptPaging {
  return hwpt instanceof HwptNested ? hwpt.parent : hwpt;
}

const pasidName = (pasid: number): string => (pasid === NO_PASID ? 'the RID' : `PASID ${pasid}`);
