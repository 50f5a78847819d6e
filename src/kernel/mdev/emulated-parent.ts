// An emulated mdev parent (kind a): "vgpu-lite", a GVT-g/mbochs-like driver whose mdevs have no IOMMU
// path at all. Each mdev is registered with vfio_register_emulated_iommu_dev() (a private fake group);
// binding it to an iommufd creates an ACCESS (out_devid is the ACCESS ID, VFIO reference §11.3), attach
// takes only an IOAS (iommufd_access_attach/replace), and the "device" moves data with the CPU through
// vfio_pin_pages()/vfio_dma_rw(). dma_unmap() is the unmap contract: unpin exactly this driver's pins in
// the range. `honourUnmap: false` is the buggy driver that ignores it (IOAS_UNMAP then fails EDEADLOCK).
//
// Capacity is parent-computed (get_available): a parent has `slices` units, a type takes `slices` of its
// own; a create that does not fit fails in the driver's probe with ENOSPC, as mtty's does.

import { PAGE_SIZE, type PhysicalMemory } from '../../hw/memory/physical-memory.ts';
import { fail, ok, type Result } from '../errno.ts';
import {
  iommufdAccessAttach, iommufdAccessCreate, iommufdAccessDestroy, iommufdAccessDetach, iommufdAccessReplace,
  type IommufdAccess,
} from '../iommufd/access.ts';
import type { IommufdCtx } from '../iommufd/context.ts';
import { vfioDmaRw, vfioPinPages, vfioUnpinPages } from '../vfio/pin.ts';
import { VfioDevice, type VfioDeviceOps } from '../vfio/vfio-device.ts';
import type { VfioCore } from '../vfio/vfio.ts';
import type { MdevDevice, MdevKind, MdevParent, MdevParentDriver, MdevType, MdevTypeSpec } from './types.ts';

const PAGE = BigInt(PAGE_SIZE);

export interface EmulatedParentOptions {
  /** Units of capacity per parent (default 4). */
  readonly slices?: number;
  /** The unmap contract: unpin on dma_unmap (default true; false models the buggy driver). */
  readonly honourUnmap?: boolean;
}

/** The vgpu-lite types: "vgpu-lite-1" takes one slice, "vgpu-lite-2" two. */
export const VGPU_LITE_TYPES: readonly (MdevTypeSpec & { readonly slices: number })[] = [
  { id: '1', name: 'vgpu-lite 1x', description: 'one slice, CPU-copied framebuffer', deviceApi: 'vfio-pci', slices: 1 },
  { id: '2', name: 'vgpu-lite 2x', description: 'two slices, CPU-copied framebuffer', deviceApi: 'vfio-pci', slices: 2 },
];

/** One outstanding vfio_pin_pages of the driver. */
export interface EmulatedPin { readonly iova: bigint; readonly npage: number }

/** Per-mdev driver state. */
export interface EmulatedState {
  readonly slices: number;
  access: IommufdAccess | null;
  accessId: number;
  ioasId: number;
  readonly pins: EmulatedPin[];
  /** Every dma_unmap(iova, length) the core made, oldest first. */
  readonly unmapCalls: (readonly [bigint, bigint])[];
}

export class EmulatedParentDriver implements MdevParentDriver {
  readonly name = 'vgpu-lite';
  readonly kind: MdevKind = 'emulated';
  readonly slices: number;
  honourUnmap: boolean;
  private readonly state = new Map<MdevDevice, EmulatedState>();

  constructor(private readonly deps: { readonly vfio: VfioCore; readonly memory: PhysicalMemory }, opts: EmulatedParentOptions = {}) {
    this.slices = opts.slices ?? 4;
    this.honourUnmap = opts.honourUnmap ?? true;
  }

  /** The types to register a parent with. */
  types(): readonly MdevTypeSpec[] { return VGPU_LITE_TYPES; }

  /** State of an mdev of this driver. */
  stateOf(mdev: MdevDevice): EmulatedState {
    const s = this.state.get(mdev);
    if (s === undefined) throw new Error(`${mdev.uuid} is not a vgpu-lite mdev`);
    return s;
  }

  getAvailable(parent: MdevParent, type: MdevType): number {
    const free = this.slices - this.used(parent);
    return Math.floor(free / slicesOf(type));
  }

  probe(mdev: MdevDevice): Result {
    const need = slicesOf(mdev.type);
    if (this.slices - this.used(mdev.parent) < need) return fail('ENOSPC', `${mdev.parent.dev.shortBdf} has no ${need} free slice(s)`);
    const st: EmulatedState = { slices: need, access: null, accessId: 0, ioasId: 0, pins: [], unmapCalls: [] };
    const vdev = new VfioDevice(mdev.uuid, 'emulated-iommu', this.ops(mdev, st), mdev.parent.dev);
    const r = this.deps.vfio.registerEmulatedIommuDev(vdev);
    if (!r.ok) return r;
    mdev.vdev = vdev;
    this.state.set(mdev, st);
    return ok();
  }

  remove(mdev: MdevDevice): Result {
    const vdev = mdev.vdev;
    if (vdev !== null) {
      const r = this.deps.vfio.unregister(vdev);
      if (!r.ok) return r;
    }
    mdev.vdev = null;
    this.state.delete(mdev);
    return ok();
  }

  // ---- the device's work ------------------------------------------------------------------------

  /** vfio_pin_pages() by the device, remembered until unpin (or dma_unmap). */
  pin(mdev: MdevDevice, iova: bigint, npage: number, write = true): Result<Uint32Array> {
    const st = this.stateOf(mdev);
    const r = vfioPinPages(vdevOf(mdev), iova, npage, write);
    if (r.ok) st.pins.push({ iova: iova - (iova % PAGE), npage });
    return r;
  }

  /** vfio_unpin_pages() of one earlier pin. */
  unpin(mdev: MdevDevice, iova: bigint, npage: number): void {
    const st = this.stateOf(mdev);
    const i = st.pins.findIndex((p) => p.iova === iova && p.npage === npage);
    if (i >= 0) st.pins.splice(i, 1);
    vfioUnpinPages(vdevOf(mdev), iova, npage);
  }

  /** vfio_dma_rw(): a CPU copy to (write) or from guest memory. */
  dmaRw(mdev: MdevDevice, iova: bigint, data: Uint8Array, write: boolean): Result {
    return vfioDmaRw(vdevOf(mdev), iova, data, write);
  }

  /** Pin, write `data` through the pinned frames with the CPU, unpin (a framebuffer blit). */
  blit(mdev: MdevDevice, iova: bigint, data: Uint8Array): Result {
    const off = Number(iova % PAGE);
    const npage = Math.ceil((off + data.length) / PAGE_SIZE);
    const pfns = this.pin(mdev, iova, npage, true);
    if (!pfns.ok) return pfns;
    let at = 0;
    for (let i = 0; i < npage && at < data.length; i++) {
      const start = i === 0 ? off : 0;
      const n = Math.min(PAGE_SIZE - start, data.length - at);
      this.deps.memory.write((pfns.value[i] as number) * PAGE_SIZE + start, data.subarray(at, at + n));
      at += n;
    }
    this.unpin(mdev, iova - (iova % PAGE), npage);
    return ok();
  }

  // ---- struct vfio_device_ops ---------------------------------------------------------------------

  private ops(mdev: MdevDevice, st: EmulatedState): VfioDeviceOps {
    return {
      name: this.name,
      // vfio_iommufd_emulated_bind(): iommufd_access_create(needs_pin_pages, unmap = dma_unmap).
      bindIommufd: (vdev: VfioDevice, ctx: IommufdCtx): Result<number> => {
        if (st.access !== null) return fail('EINVAL', `${vdev.name} is already bound`);
        const r = iommufdAccessCreate(ctx, { needsPinPages: true, unmap: (iova, length) => { this.dmaUnmap(mdev, iova, length); } });
        if (!r.ok) return r;
        st.access = r.value.access;
        st.accessId = r.value.id;
        vdev.iommufdAccess = r.value.access;
        mdev.user = ctx;
        return ok(r.value.id);
      },
      unbindIommufd: (vdev: VfioDevice): void => {
        if (st.access !== null) iommufdAccessDestroy(st.access);
        vdev.iommufdAccess = null;
        st.access = null;
        st.accessId = 0;
        st.ioasId = 0;
        mdev.user = null;
      },
      // vfio_iommufd_emulated_attach_ioas(): attach, or replace when attached; only an IOAS.
      attachIoas: (vdev: VfioDevice, ptId: number): Result<number> => {
        if (st.access === null) return fail('EINVAL', `${vdev.name} is not bound to an iommufd`);
        const r = st.ioasId === 0 ? iommufdAccessAttach(st.access, ptId) : iommufdAccessReplace(st.access, ptId);
        if (!r.ok) return r;
        st.ioasId = ptId;
        return ok(ptId);
      },
      detachIoas: (): void => {
        if (st.access === null || st.ioasId === 0) return;
        iommufdAccessDetach(st.access);
        st.ioasId = 0;
      },
      dmaUnmap: (_vdev: VfioDevice, iova: bigint, length: bigint): void => { this.dmaUnmap(mdev, iova, length); },
    };
  }

  /** ->dma_unmap(): unpin every pin of this mdev that meets [iova, iova + length). */
  private dmaUnmap(mdev: MdevDevice, iova: bigint, length: bigint): void {
    const st = this.stateOf(mdev);
    st.unmapCalls.push([iova, length]);
    if (!this.honourUnmap) return;
    const last = iova + length - 1n;
    for (const p of [...st.pins]) {
      if (p.iova <= last && p.iova + BigInt(p.npage) * PAGE - 1n >= iova) this.unpin(mdev, p.iova, p.npage);
    }
  }

  private used(parent: MdevParent): number {
    let n = 0;
    for (const [m, s] of this.state) if (m.parent === parent) n += s.slices;
    return n;
  }
}

function slicesOf(type: MdevType): number {
  return VGPU_LITE_TYPES.find((t) => t.id === type.spec.id)?.slices ?? 1;
}

function vdevOf(mdev: MdevDevice): VfioDevice {
  if (mdev.vdev === null) throw new Error(`${mdev.uuid} has no VFIO device`);
  return mdev.vdev;
}
