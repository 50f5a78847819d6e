// A PASID-backed mdev parent (kind c): Scalable IOV, as in seed 003. The parent (e.g. a DSA/idxd
// accelerator, 6a:01.0 on the default host) stays bound to its host driver and keeps its RID for the
// kernel; each mdev gets a default PASID allocated from the parent's PASID space, and the mdev's
// security context is the PASID entry (parent RID, that PASID), not the parent's RID: binding claims no
// DMA ownership of the parent's group, it only requires the PASID entry to be unused ("the associated
// PASID entry is disabled at the binding time", Kevin Tian). Attach puts the user's IO page table there
// with iommu_attach_device_pasid() (an IOAS gets an auto HWPT allocated with IOMMU_HWPT_ALLOC_PASID; a
// HWPT must be PASID-compatible), replace uses iommu_replace_device_pasid(); the mdev's DMA is the
// parent's DMA tagged with that PASID (dma()).
//
// This follows the SIOV proposals (the 2021 /dev/iommu RFC of seed 003 and the later vfio SIOV RFCs);
// mainline Linux has no PASID-backed mdev bind path. Capacity is the parent's work queues
// (get_available); the default PASID is freed at remove.

import type { DmaRequest, DmaResult } from '../../hw/dma/types.ts';
import type { Machine } from '../../hw/machine.ts';
import type { IommuUnit } from '../../hw/iommu/unit.ts';
import { PCI_EXT_CAP_ID_PASID, PCI_PASID_CTRL } from '../../pci/regs.ts';
import type { PciDev } from '../../pci/dev.ts';
import { PCI_PASID_CTRL_ENABLE } from '../../hw/dma/pri.ts';
import { fail, ok, type Result } from '../errno.ts';
import type { IommuCore } from '../iommu/core.ts';
import type { IommufdCtx } from '../iommufd/context.ts';
import { IOMMU_HWPT_ALLOC_PASID, type HwptPaging } from '../iommufd/hw-pagetable.ts';
import { VfioDevice, type VfioDeviceOps } from '../vfio/vfio-device.ts';
import type { VfioCore } from '../vfio/vfio.ts';
import { mdevBind, mdevGetHwpt, mdevPutHwpt, mdevUnbind, type MdevBinding } from './binding.ts';
import type { MdevCore } from './mdev-core.ts';
import type { MdevDevice, MdevKind, MdevParent, MdevParentDriver, MdevTypeSpec } from './types.ts';

export const DSA_WQ_TYPE: MdevTypeSpec = { id: 'wq', name: 'dsa-wq', description: 'one dedicated work queue, DMA tagged with a default PASID', deviceApi: 'vfio-pci' };

export interface PasidBackedDeps {
  readonly core: IommuCore;
  readonly vfio: VfioCore;
  readonly mdev: MdevCore;
  readonly machine: Machine<IommuUnit>;
}

interface PasidState { binding: MdevBinding | null; hwpt: HwptPaging | null }

export class PasidBackedParentDriver implements MdevParentDriver {
  readonly name = 'idxd-siov';
  readonly kind: MdevKind = 'pasid-backed';
  private readonly state = new Map<MdevDevice, PasidState>();
  /** Per parent: the PASIDs this driver allocated (the parent's PASID space, ioasid_alloc-like). */
  private readonly pasids = new Map<PciDev, Set<number>>();

  constructor(private readonly deps: PasidBackedDeps, readonly workQueues = 8) {}

  /**
   * The host driver registers its device as an mdev parent (the parent stays bound to it). Its probe
   * enabled PASID in config space (pci_enable_pasid), as idxd does. ENODEV without PASID support.
   */
  registerParent(dev: PciDev): Result<MdevParent> {
    if (this.deps.core.maxPasids(dev) <= 1) return fail('ENODEV', `${dev.shortBdf} has no PASID support behind its IOMMU`);
    const cap = dev.config.findExtCapability(PCI_EXT_CAP_ID_PASID);
    dev.config.write16(cap + PCI_PASID_CTRL, dev.config.read16(cap + PCI_PASID_CTRL) | PCI_PASID_CTRL_ENABLE);
    return this.deps.mdev.registerParent(dev, this, [DSA_WQ_TYPE]);
  }

  getAvailable(parent: MdevParent): number {
    return this.workQueues - (this.pasids.get(parent.dev)?.size ?? 0);
  }

  probe(mdev: MdevDevice): Result {
    const dev = mdev.parent.dev;
    if (this.getAvailable(mdev.parent) === 0) return fail('ENOSPC', `${dev.shortBdf} has no free work queue`);
    const pasid = this.allocPasid(dev);
    if (!pasid.ok) return pasid;
    const st: PasidState = { binding: null, hwpt: null };
    const vdev = new VfioDevice(mdev.uuid, 'emulated-iommu', this.ops(mdev, st), dev);
    // A private singleton group, as an emulated device has: the mdev shares nothing with the parent's group.
    const r = this.deps.vfio.registerEmulatedIommuDev(vdev);
    if (!r.ok) { this.pasids.get(dev)?.delete(pasid.value); return r; }
    mdev.pasid = pasid.value;
    mdev.vdev = vdev;
    this.state.set(mdev, st);
    return ok();
  }

  remove(mdev: MdevDevice): Result {
    if (mdev.vdev !== null) {
      const r = this.deps.vfio.unregister(mdev.vdev);
      if (!r.ok) return r;
    }
    if (mdev.pasid !== null) {
      this.pasids.get(mdev.parent.dev)?.delete(mdev.pasid);
      this.deps.core.globalPasids.free(mdev.pasid, this);
    }
    mdev.vdev = null;
    mdev.pasid = null;
    this.state.delete(mdev);
    return ok();
  }

  /** The mdev's DMA: the parent's engine, tagged with the mdev's default PASID. */
  dma(mdev: MdevDevice, req: Omit<DmaRequest, 'pasid'>): DmaResult {
    if (mdev.pasid === null) throw new Error(`${mdev.uuid} has no PASID`);
    return this.deps.machine.dma(mdev.parent.dev, { ...req, pasid: mdev.pasid });
  }

  private allocPasid(dev: PciDev): Result<number> {
    let used = this.pasids.get(dev);
    if (used === undefined) this.pasids.set(dev, (used = new Set()));
    const max = this.deps.core.maxPasids(dev);
    // The default PASID comes from the system-wide space the kernel's own PASID users share
    // (iommu_alloc_global_pasid), so under the 2021 global option user allocations avoid it too.
    const global = this.deps.core.globalPasids;
    for (let p = 1; p < max; p++) {
      if (used.has(p) || this.deps.core.pasidHandle(dev, p) !== undefined || global.ownerOf(p) !== undefined) continue;
      used.add(p);
      void global.reserve(p, this);
      return ok(p);
    }
    return fail('ENOSPC', `${dev.shortBdf}'s PASID space is exhausted`);
  }

  private ops(mdev: MdevDevice, st: PasidState): VfioDeviceOps {
    const dev = mdev.parent.dev;
    const pasidOf = (): number => { if (mdev.pasid === null) throw new Error('no PASID'); return mdev.pasid; };
    const detach = (): void => {
      if (st.hwpt === null) return;
      this.deps.core.removeDevicePasid(dev, pasidOf());
      mdevPutHwpt(st.hwpt);
      st.hwpt = null;
      if (st.binding !== null) st.binding.hwpt = null;
    };
    return {
      name: this.name,
      bindIommufd: (vdev: VfioDevice, ctx: IommufdCtx): Result<number> => {
        if (st.binding !== null) return fail('EINVAL', `${vdev.name} is already bound`);
        if (this.deps.core.pasidHandle(dev, pasidOf()) !== undefined) {
          return fail('EBUSY', `PASID ${pasidOf()} of ${dev.shortBdf} is in use: the mdev's security context is not clean`);
        }
        const b = mdevBind(ctx, dev, mdev.uuid);
        if (!b.ok) return b;
        st.binding = b.value;
        mdev.user = ctx;
        return ok(b.value.id);
      },
      unbindIommufd: (): void => {
        detach();
        if (st.binding !== null) mdevUnbind(st.binding);
        st.binding = null;
        mdev.user = null;
      },
      attachIoas: (vdev: VfioDevice, ptId: number): Result<number> => {
        const b = st.binding;
        if (b === null) return fail('EINVAL', `${vdev.name} is not bound to an iommufd`);
        const hwpt = mdevGetHwpt(b, ptId, IOMMU_HWPT_ALLOC_PASID);
        if (!hwpt.ok) return hwpt;
        if (!hwpt.value.pasidCompat) {
          mdevPutHwpt(hwpt.value);
          return fail('EINVAL', `HWPT ${ptId} was not allocated with IOMMU_HWPT_ALLOC_PASID`);
        }
        const core = this.deps.core;
        const r = st.hwpt === null ? core.attachDevicePasid(hwpt.value.domain, dev, pasidOf(), hwpt.value)
          : core.replaceDevicePasid(hwpt.value.domain, dev, pasidOf(), hwpt.value);
        if (!r.ok) { mdevPutHwpt(hwpt.value); return r; }
        if (st.hwpt !== null) mdevPutHwpt(st.hwpt);
        st.hwpt = hwpt.value;
        b.hwpt = hwpt.value;
        return ok(hwpt.value.id);
      },
      detachIoas: detach,
    };
  }
}
