// An IOMMU-backed mdev parent (kind b): "vfio-mdev-pci", the 2019 sample from the vfio-mdev-pci RFC
// (seed 001) that wraps a whole PCI function as one mdev whose DMA goes through the IOMMU at the
// function's own requester ID. It never went upstream: Linux today has no such sample in-tree (the
// IOMMU-backed mdev support it relied on, mdev_set_iommu_device, was removed in v5.16), so the group
// handling is an option here, after the fixes discussed in seed 001:
//
//  * 'separate-virtual-group' (the 2019 behaviour): the mdev gets its own fake VFIO group and nothing
//    claims DMA ownership of the parent's real IOMMU group; the attach programs only the parent's
//    requester IDs (the __iommu_attach_device() Yi Liu suggested, which Alex Williamson rejected because
//    it ignores group semantics). Two processes can therefore each take a function of one non-singleton
//    group: the isolation breach the thread is about.
//  * 'inherit-parent-group' (Alex Williamson's "cleanest solution": the mdev inherits the IOMMU group of
//    its iommu_device, the parent "donating" its group): the mdev is registered in the parent's VFIO
//    group and binds as the parent's DEVICE, so the usual ownership rules apply. Seed 001 names no errno
//    for this fix; it is the existing rule's: a second owner's cdev bind is EPERM (VFIO reference §9;
//    on the legacy path the second open of the shared group file would be EBUSY).
//  * 'attach-time-ebusy' (Yi Liu's draft fix in seed 001: a separate group, but the type1 attach takes
//    the iommu_device group through a new vfio_iommu_device_group_opened_inc(), "return -EBUSY" when
//    already in use, then iommu_attach_group(); Alex expected the same failure from iommu_attach_group()
//    on a group attached to another domain): the bind succeeds, the attach of a second owner is EBUSY.
//    The fix was made for type1, where the group attach precedes any device fd; on the cdev path the
//    bind (device access) comes first, so until the refused user closes it holds a function of another
//    owner's group, and the isolation checker reports that window.
//
// The PCI driver is driver_managed_dma (as a VFIO driver is), so binding it does not take the group's
// default domain; each function gets one type, "vfio-mdev-pci-1", with one core-counted instance.

import type { PciDriver } from '../drivers/pci-driver.ts';
import { fail, ok, type Result } from '../errno.ts';
import type { IommuCore } from '../iommu/core.ts';
import type { IommuGroup } from '../iommu/group.ts';
import type { IommufdCtx } from '../iommufd/context.ts';
import {
  iommufdDeviceAttach, iommufdDeviceBind, iommufdDeviceDetach, iommufdDeviceReplace, iommufdDeviceUnbind,
  type IommufdDevice,
} from '../iommufd/device.ts';
import { HwptPaging } from '../iommufd/hw-pagetable.ts';
import { VfioDevice, type VfioDeviceOps } from '../vfio/vfio-device.ts';
import type { VfioCore } from '../vfio/vfio.ts';
import { mdevBind, mdevGetHwpt, mdevPutHwpt, mdevUnbind, type MdevBinding } from './binding.ts';
import type { MdevCore } from './mdev-core.ts';
import type { MdevDevice, MdevKind, MdevParentDriver, MdevTypeSpec } from './types.ts';

export type MdevGroupPolicy = 'separate-virtual-group' | 'inherit-parent-group' | 'attach-time-ebusy';

export const VFIO_MDEV_PCI_TYPE: MdevTypeSpec = {
  id: '1', name: 'vfio-mdev-pci', description: 'the whole PCI function as one mdev', deviceApi: 'vfio-pci', maxInstances: 1,
};

interface IommuBackedState {
  /** separate / attach-time-ebusy: the bind object; inherit: null. */
  binding: MdevBinding | null;
  /** inherit: the parent's DEVICE in the user's iommufd. */
  idev: IommufdDevice | null;
  hwpt: HwptPaging | null;
}

export interface IommuBackedDeps {
  readonly core: IommuCore;
  readonly vfio: VfioCore;
  readonly mdev: MdevCore;
}

export class IommuBackedParentDriver implements MdevParentDriver {
  readonly name = 'vfio-mdev-pci';
  readonly kind: MdevKind = 'iommu-backed';
  /** The PCI driver to register with the driver core: binding a function makes it an mdev parent. */
  readonly pciDriver: PciDriver;
  private readonly state = new Map<MdevDevice, IommuBackedState>();
  /** attach-time-ebusy: attaches per IOMMU group (the group attach goes with the last). */
  private readonly groupUsers = new Map<IommuGroup, number>();

  constructor(private readonly deps: IommuBackedDeps, readonly policy: MdevGroupPolicy) {
    this.pciDriver = {
      name: this.name,
      driverManagedDma: true,
      // Only through driver_override (the sample had no id table).
      matches: () => false,
      probe: (dev) => { const r = deps.mdev.registerParent(dev, this, [VFIO_MDEV_PCI_TYPE]); return r.ok ? ok() : r; },
      remove: (dev) => deps.mdev.unregisterParent(dev),
    };
  }

  probe(mdev: MdevDevice): Result { return this.probeMdev(mdev); }
  remove(mdev: MdevDevice): Result { return this.removeMdev(mdev); }

  private probeMdev(mdev: MdevDevice): Result {
    const st: IommuBackedState = { binding: null, idev: null, hwpt: null };
    const inherit = this.policy === 'inherit-parent-group';
    const vdev = new VfioDevice(mdev.uuid, inherit ? 'iommu' : 'emulated-iommu', this.ops(mdev, st), mdev.parent.dev);
    // inherit: vfio_register_group_dev() keyed by the parent's IOMMU group; otherwise the 2019 private
    // (fake) group, which the VFIO core labels emulated-iommu here.
    const r = inherit ? this.deps.vfio.registerGroupDev(vdev) : this.deps.vfio.registerEmulatedIommuDev(vdev);
    if (!r.ok) return r;
    mdev.vdev = vdev;
    this.state.set(mdev, st);
    return ok();
  }

  private removeMdev(mdev: MdevDevice): Result {
    if (mdev.vdev !== null) {
      const r = this.deps.vfio.unregister(mdev.vdev);
      if (!r.ok) return r;
    }
    mdev.vdev = null;
    this.state.delete(mdev);
    return ok();
  }

  private ops(mdev: MdevDevice, st: IommuBackedState): VfioDeviceOps {
    const parent = mdev.parent.dev;
    return {
      name: this.name,
      bindIommufd: (vdev: VfioDevice, ctx: IommufdCtx): Result<number> => {
        if (st.binding !== null || st.idev !== null) return fail('EINVAL', `${vdev.name} is already bound`);
        if (this.policy === 'inherit-parent-group') {
          const r = iommufdDeviceBind(ctx, parent);
          if (!r.ok) return r;
          st.idev = r.value;
          mdev.user = ctx;
          return ok(r.value.id);
        }
        const b = mdevBind(ctx, parent, mdev.uuid);
        if (!b.ok) return b;
        st.binding = b.value;
        mdev.user = ctx;
        return ok(b.value.id);
      },
      unbindIommufd: (vdev: VfioDevice): void => {
        this.detach(mdev, st);
        if (st.idev !== null) iommufdDeviceUnbind(st.idev);
        if (st.binding !== null) mdevUnbind(st.binding);
        st.idev = null;
        st.binding = null;
        mdev.user = null;
        void vdev;
      },
      attachIoas: (vdev: VfioDevice, ptId: number): Result<number> => {
        if (st.idev !== null) return st.idev.hwptAt() === null ? iommufdDeviceAttach(st.idev, ptId) : iommufdDeviceReplace(st.idev, ptId);
        if (st.binding === null) return fail('EINVAL', `${vdev.name} is not bound to an iommufd`);
        return this.policy === 'separate-virtual-group' ? this.attachRids(mdev, st, st.binding, ptId) : this.attachGroup(mdev, st, st.binding, ptId);
      },
      detachIoas: (): void => { this.detach(mdev, st); },
    };
  }

  /** 2019: program the parent's requester IDs only (__iommu_attach_device); no ownership, no group check. */
  private attachRids(mdev: MdevDevice, st: IommuBackedState, b: MdevBinding, ptId: number): Result<number> {
    const hwpt = mdevGetHwpt(b, ptId, 0);
    if (!hwpt.ok) return hwpt;
    const parent = mdev.parent.dev;
    const driver = this.deps.core.driverOf(parent);
    if (driver === undefined) { mdevPutHwpt(hwpt.value); return fail('ENODEV', `${parent.shortBdf} has no IOMMU`); }
    for (const rid of this.deps.core.ridsOf(parent)) {
      const r = driver.attachDev(rid, hwpt.value.domain);
      if (!r.ok) { mdevPutHwpt(hwpt.value); return r; }
    }
    if (st.hwpt !== null) mdevPutHwpt(st.hwpt);
    st.hwpt = hwpt.value;
    b.hwpt = hwpt.value;
    return ok(hwpt.value.id);
  }

  /** Seed 001's draft: EBUSY when the parent's group is in use by anyone else, then a group attach. */
  private attachGroup(mdev: MdevDevice, st: IommuBackedState, b: MdevBinding, ptId: number): Result<number> {
    const core = this.deps.core;
    const parent = mdev.parent.dev;
    const g = core.groupOf(parent);
    if (g === undefined) return fail('ENODEV', `${parent.shortBdf} has no IOMMU group`);
    if (st.hwpt !== null) this.detach(mdev, st);
    if (g.ownerCnt !== 0 && g.owner !== b.ctx) {
      return fail('EBUSY', `group ${g.id} of ${parent.shortBdf} is already in use (vfio_iommu_device_group_opened_inc, seed 001)`);
    }
    // A sibling mdev of the same user already attached the group: share its HWPT when the user names it
    // or its IOAS (as iommufd's auto domains are shared), as one container shares one domain per group.
    const cur = g.ridHandle?.cookie;
    const shared = (this.groupUsers.get(g) ?? 0) > 0 && cur instanceof HwptPaging && cur.ctx === b.ctx && (cur.id === ptId || cur.ioas.id === ptId);
    if (shared) b.ctx.objects.ref(cur);
    const hwpt = shared ? ok(cur) : mdevGetHwpt(b, ptId, 0);
    if (!hwpt.ok) return hwpt;
    const claimed = core.deviceClaimDmaOwner(parent, b.ctx);
    if (!claimed.ok) { mdevPutHwpt(hwpt.value); return fail('EBUSY', claimed.reason); }
    const users = this.groupUsers.get(g) ?? 0;
    const r = users === 0 ? core.attachGroup(hwpt.value.domain, g, hwpt.value)
      : g.domain === hwpt.value.domain ? ok() : fail('EBUSY', `group ${g.id} is attached to another domain of this iommufd`);
    if (!r.ok) {
      core.deviceReleaseDmaOwner(parent);
      mdevPutHwpt(hwpt.value);
      return r;
    }
    this.groupUsers.set(g, users + 1);
    st.hwpt = hwpt.value;
    b.hwpt = hwpt.value;
    return ok(hwpt.value.id);
  }

  private detach(mdev: MdevDevice, st: IommuBackedState): void {
    if (st.idev !== null) { iommufdDeviceDetach(st.idev); return; }
    const hwpt = st.hwpt;
    if (hwpt === null) return;
    const core = this.deps.core;
    const parent = mdev.parent.dev;
    const g = core.groupOf(parent);
    if (this.policy === 'separate-virtual-group') {
      const driver = core.driverOf(parent);
      // Back to whatever the group is on (the core never knew about the per-RID attach).
      if (driver !== undefined && g !== undefined) for (const rid of core.ridsOf(parent)) void driver.attachDev(rid, g.domain);
    } else if (g !== undefined) {
      const users = (this.groupUsers.get(g) ?? 1) - 1;
      if (users === 0) { this.groupUsers.delete(g); core.detachGroup(g); } else this.groupUsers.set(g, users);
      core.deviceReleaseDmaOwner(parent);
    }
    st.hwpt = null;
    if (st.binding !== null) st.binding.hwpt = null;
    mdevPutHwpt(hwpt);
  }
}
