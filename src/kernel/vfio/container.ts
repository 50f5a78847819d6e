// The legacy VFIO container (drivers/vfio/container.c): /dev/vfio/vfio, a misc device (minor 196, mode
// 0666: unprivileged by design) whose every open is a new, empty container. Groups join it with
// VFIO_GROUP_SET_CONTAINER (claiming DMA ownership of their IOMMU group); only then may VFIO_SET_IOMMU
// pick an IOMMU backend (type1 v1/v2, or no-IOMMU for no-IOMMU groups), which every group is attached
// to. The container lives while its file or any group holds it; the last group leaving releases the
// backend and its mappings. With CONFIG_IOMMUFD_VFIO_CONTAINER the node opens an iommufd instead.

import { fail, ok, type Result } from '../errno.ts';
import type { IommuCore } from '../iommu/core.ts';
import { IommufdCtx, type IommufdParams } from '../iommufd/context.ts';
import type { KernelFile } from '../process/file.ts';
import type { Process } from '../process/process.ts';
import type { DevFs } from '../vfs/devfs.ts';
import type { VfioContainerLike } from './container-api.ts';
import type { VfioDevice } from './vfio-device.ts';
import type { VfioGroup } from './vfio-group.ts';
import type { VfioCore } from './vfio.ts';
import { Type1Iommu, VFIO_TYPE1_IOMMU, VFIO_TYPE1v2_IOMMU } from './type1/iommu.ts';

/** misc_register(&vfio_dev): MISC_MAJOR and VFIO_MINOR (include/linux/miscdevice.h). */
export const VFIO_CONTAINER_MAJOR = 10;
export const VFIO_CONTAINER_MINOR = 196;
export const VFIO_API_VERSION = 0;
export const VFIO_NOIOMMU_IOMMU = 8;

/** The no-IOMMU backend (vfio_noiommu_ops): nothing to map; it only exists to let devices open. */
export class NoIommuBackend {
  readonly kind = 'noiommu' as const;
}

export type VfioIommuBackend = Type1Iommu | NoIommuBackend;

interface IommuDriver {
  readonly name: string;
  readonly noiommu: boolean;
  checkExtension(backend: VfioIommuBackend | null, ext: number): number;
  open(type: number, proc: Process): Result<VfioIommuBackend>;
}

export interface VfioContainerDeps {
  readonly core: IommuCore;
  readonly vfio: VfioCore;
}

/** The registered IOMMU drivers, newest first as vfio_register_iommu_driver() lists them. */
function iommuDrivers(deps: VfioContainerDeps): IommuDriver[] {
  const noiommuMode = deps.vfio.options.enableUnsafeNoiommuMode;
  return [
    {
      name: 'vfio-iommu-type1', noiommu: false,
      checkExtension: (b, ext) => Type1Iommu.checkExtension(b instanceof Type1Iommu ? b : null, ext),
      open: (type) => (type === VFIO_TYPE1_IOMMU || type === VFIO_TYPE1v2_IOMMU
        ? ok(new Type1Iommu(deps.core, type === VFIO_TYPE1v2_IOMMU, deps.vfio.options.dmaEntryLimit, deps.vfio.options.allowUnsafeInterrupts))
        : fail('EINVAL', `type1 does not implement IOMMU type ${type}`)),
    },
    {
      name: 'vfio-noiommu', noiommu: true,
      checkExtension: (_b, ext) => (noiommuMode && ext === VFIO_NOIOMMU_IOMMU ? 1 : 0),
      open: (type, proc) => {
        if (type !== VFIO_NOIOMMU_IOMMU) return fail('EINVAL', 'the no-IOMMU backend only implements VFIO_NOIOMMU_IOMMU');
        if (!proc.capable('CAP_SYS_RAWIO')) return fail('EPERM', 'the no-IOMMU backend needs CAP_SYS_RAWIO');
        return ok(new NoIommuBackend());
      },
    },
  ];
}

export class VfioContainer implements KernelFile, VfioContainerLike {
  readonly kind = 'vfio-container' as const;
  readonly groups: VfioGroup[] = [];
  /** container->noiommu: the groups are no-IOMMU groups (set by the first group). */
  noiommu = false;
  private driver: IommuDriver | null = null;
  private data: VfioIommuBackend | null = null;
  private fileOpen = true;

  constructor(readonly deps: VfioContainerDeps) {}

  get iommuSet(): boolean { return this.driver !== null; }
  /** The backend set by VFIO_SET_IOMMU, or null. */
  get backend(): VfioIommuBackend | null { return this.data; }
  /** The container file is still open (groups may keep the container alive after it closes). */
  get isOpen(): boolean { return this.fileOpen; }

  // vfio_iommu_driver_allowed(): no-IOMMU containers use only the no-IOMMU driver, others never.
  private allowed(d: IommuDriver): boolean { return this.noiommu === d.noiommu; }

  /** VFIO_CHECK_EXTENSION: the set backend answers; before that, the first driver answering > 0. */
  checkExtension(ext: number): number {
    if (this.driver !== null) return this.driver.checkExtension(this.data, ext);
    for (const d of iommuDrivers(this.deps)) {
      if (this.groups.length > 0 && !this.allowed(d)) continue;
      const r = d.checkExtension(null, ext);
      if (r > 0) return r;
    }
    return 0;
  }

  /**
   * VFIO_SET_IOMMU: EINVAL without a group or with a backend already set; each allowed driver that
   * claims the type is opened and every group attached to it (unwound on failure); ENODEV, or the last
   * driver's error, when none accepts.
   */
  setIommu(proc: Process, type: number): Result {
    if (this.groups.length === 0) return fail('EINVAL', 'VFIO_SET_IOMMU needs a group in the container first');
    if (this.driver !== null) return fail('EINVAL', 'an IOMMU backend is already set');
    let last: Result = fail('ENODEV', `no IOMMU backend implements type ${type}`);
    for (const d of iommuDrivers(this.deps)) {
      if (!this.allowed(d) || d.checkExtension(null, type) <= 0) continue;
      const opened = d.open(type, proc);
      if (!opened.ok) { last = opened; continue; }
      const attached = this.attachAll(opened.value);
      if (!attached.ok) { releaseBackend(opened.value); last = attached; continue; }
      this.driver = d;
      this.data = opened.value;
      return ok();
    }
    return last;
  }

  // __vfio_container_attach_groups().
  private attachAll(b: VfioIommuBackend): Result {
    if (!(b instanceof Type1Iommu)) return ok();
    const done: VfioGroup[] = [];
    for (const g of this.groups) {
      const r = b.attachGroup(g);
      if (!r.ok) {
        for (const x of done.reverse()) b.detachGroup(x);
        return r;
      }
      done.push(g);
    }
    return ok();
  }

  /**
   * vfio_container_attach_group(): EPERM for a no-IOMMU group without CAP_SYS_RAWIO or when no-IOMMU and
   * IOMMU groups would mix; iommu_group_claim_dma_owner() (EPERM when claimed); the backend's attach.
   */
  attachGroup(group: VfioGroup, proc: Process): Result {
    // The group side checks this first (VFIO_GROUP_SET_CONTAINER: EINVAL); kept here as a guard.
    if (group.container !== null) return fail('EINVAL', `group ${group.id} is already in a container`);
    const noiommu = group.type === 'no-iommu';
    if (noiommu && !proc.capable('CAP_SYS_RAWIO')) return fail('EPERM', 'a no-IOMMU group needs CAP_SYS_RAWIO');
    if (this.groups.length > 0 && this.noiommu !== noiommu) return fail('EPERM', 'no-IOMMU and IOMMU groups cannot share a container');
    const ig = group.type === 'iommu' ? group.iommuGroup : null;
    if (ig !== null) {
      const claimed = this.deps.core.groupClaimDmaOwner(ig, group);
      if (!claimed.ok) return claimed;
    }
    if (this.data instanceof Type1Iommu) {
      const r = this.data.attachGroup(group);
      if (!r.ok) {
        if (ig !== null) this.deps.core.groupReleaseDmaOwner(ig);
        return r;
      }
    }
    group.container = this;
    this.noiommu = noiommu;
    this.groups.push(group);
    return ok();
  }

  /** vfio_group_detach_container(): backend detach, ownership released; the last group drops the backend. */
  detachGroup(group: VfioGroup): void {
    const i = this.groups.indexOf(group);
    if (i < 0) return;
    if (this.data instanceof Type1Iommu) this.data.detachGroup(group);
    if (group.type === 'iommu' && group.iommuGroup !== null) this.deps.core.groupReleaseDmaOwner(group.iommuGroup);
    group.container = null;
    this.groups.splice(i, 1);
    if (this.groups.length === 0 && this.data !== null) {
      releaseBackend(this.data);
      this.driver = null;
      this.data = null;
    }
  }

  /** vfio_device_container_register(): an emulated device opened; type1 notifies it on unmap. */
  registerDevice(vdev: VfioDevice): void {
    if (this.data instanceof Type1Iommu && vdev.type === 'emulated-iommu' && vdev.ops.dmaUnmap !== undefined) this.data.devices.add(vdev);
  }

  unregisterDevice(vdev: VfioDevice): void {
    if (this.data instanceof Type1Iommu) this.data.devices.delete(vdev);
  }

  /** vfio_fops_release(): the groups keep the container (and its mappings) until they leave. */
  release(): void { this.fileOpen = false; }
}

function releaseBackend(b: VfioIommuBackend): void {
  if (b instanceof Type1Iommu) b.release();
}

/** The container a VFIO group is set to through the legacy API, or null. */
export function containerOf(group: VfioGroup | null): VfioContainer | null {
  return group !== null && group.container instanceof VfioContainer ? group.container : null;
}

/**
 * misc_register(&vfio_dev): /dev/vfio/vfio, mode 0666. Each open is a new container, or (with
 * CONFIG_IOMMUFD_VFIO_CONTAINER) a new iommufd in MM accounting mode.
 */
export function registerVfioContainerNode(k: { readonly devfs: DevFs; readonly core: IommuCore; readonly vfio: VfioCore; readonly iommufdParams?: IommufdParams }): void {
  k.devfs.register('/dev/vfio/vfio', { mode: 0o666, uid: 0, gid: 0, major: VFIO_CONTAINER_MAJOR, minor: VFIO_CONTAINER_MINOR }, (proc) => {
    if (k.vfio.options.iommufdContainer) return ok(new IommufdCtx(k.core, proc, { vfioCompat: true, ...(k.iommufdParams !== undefined ? { params: k.iommufdParams } : {}) }));
    return ok(new VfioContainer({ core: k.core, vfio: k.vfio }));
  });
}
