// The VFIO group node /dev/vfio/N and its file (drivers/vfio/group.c, modelled).
//
//  * The node appears when the group gets its first VFIO device and goes with its last: mode 0600 root,
//    a char device with VFIO's own (dynamic) group major and a minor from an IDA.
//  * open: single-open system-wide (a second open → EBUSY); a device of the group open through its cdev
//    → EBUSY; no devices → ENODEV; a no-IOMMU group without CAP_SYS_RAWIO → EPERM.
//  * GET_STATUS: a container or iommufd set → VIABLE | CONTAINER_SET; otherwise VIABLE iff nothing claims
//    the IOMMU group's DMA ownership (a sibling on a host driver without driver_managed_dma makes it
//    non-viable). No devices left → ENODEV.
//  * SET_CONTAINER(fd): EBADF for a closed fd; a container or iommufd already set → EINVAL; no devices →
//    ENODEV; a VFIO container → its attachGroup (no-IOMMU rules, group DMA ownership: EPERM); an iommufd
//    → its compat IOAS is created if missing (ownership is claimed per device at GET_DEVICE_FD); any
//    other file → EBADFD.
//  * UNSET_CONTAINER: nothing set → EINVAL; a container with device fds open → EBUSY. (Linux checks the
//    device fds only for a container: with an iommufd the devices stay bound through their own DEVICE.)
//  * GET_DEVICE_FD(name): not in the group → ENODEV; no container or iommufd, or a container without an
//    IOMMU backend → EINVAL; iommufd: bind (EPERM when another owner holds the group) and attach to the
//    compat IOAS (ENODEV if it was destroyed). Returns a "[vfio-device]" fd holding the group file.
//  * release: detach the container or put the iommufd.

import { fail, ok, type Result } from '../errno.ts';
import type { IommuCore } from '../iommu/core.ts';
import { IommufdCtx } from '../iommufd/context.ts';
import { Ioas } from '../iommufd/ioas.ts';
import type { KernelFile, OpenFile } from '../process/file.ts';
import type { Process } from '../process/process.ts';
import type { DevFs } from '../vfs/devfs.ts';
import type { VfioContainerLike } from './container-api.ts';
import { VfioDeviceFile, type DeviceFileGroup } from './device-file.ts';
import type { VfioGroup } from './vfio-group.ts';

/** The group chrdev region's major (alloc_chrdev_region hands out dynamic majors from 254 down). */
export const VFIO_GROUP_MAJOR = 243;
export const VFIO_GROUP_FLAGS_VIABLE = 1;
export const VFIO_GROUP_FLAGS_CONTAINER_SET = 2;

const isContainer = (f: KernelFile): f is KernelFile & VfioContainerLike => f.kind === 'vfio-container';

export class VfioGroupFile implements KernelFile, DeviceFileGroup {
  readonly kind = 'vfio-group';
  /** The container's or iommufd's open file this group holds. */
  private containerFile: OpenFile | null = null;
  /** container_users - 1: device fds obtained through this group and still open. */
  deviceFds = 0;

  constructor(readonly group: VfioGroup, private readonly core: IommuCore) {}

  get container(): VfioContainerLike | null { return (this.group.container as VfioContainerLike | null) ?? null; }
  get iommufd(): IommufdCtx | null { return this.group.iommufd; }
  private get hasIommu(): boolean { return this.group.container !== null || this.group.iommufd !== null; }

  /** VFIO_GROUP_GET_STATUS: the flags. */
  status(): Result<number> {
    if (this.group.devices.length === 0) return fail('ENODEV', `group ${this.group.id} has no devices left`);
    if (this.hasIommu) return ok(VFIO_GROUP_FLAGS_VIABLE | VFIO_GROUP_FLAGS_CONTAINER_SET);
    const ig = this.group.iommuGroup;
    return ok(ig !== null && this.core.dmaOwnerClaimed(ig) ? 0 : VFIO_GROUP_FLAGS_VIABLE);
  }

  /** VFIO_GROUP_SET_CONTAINER with the fd user space passed. */
  setContainer(proc: Process, fd: number): Result {
    const f = proc.fds.get(fd);
    if (!f.ok) return f;
    if (this.hasIommu) return fail('EINVAL', `group ${this.group.id} already has a container or iommufd`);
    if (this.group.devices.length === 0) return fail('ENODEV', `group ${this.group.id} has no devices left`);
    const file = f.value.file;
    if (isContainer(file)) {
      const r = file.attachGroup(this.group, proc);
      if (!r.ok) return r;
      this.group.container = file;
    } else if (file instanceof IommufdCtx) {
      if (this.group.type !== 'no-iommu') {
        const r = compatIoasCreate(file);
        if (!r.ok) return r;
      }
      this.group.iommufd = file;
    } else {
      return fail('EBADFD', `fd ${fd} is a ${file.kind}: neither a VFIO container nor an iommufd`);
    }
    this.containerFile = f.value.get();
    return ok();
  }

  /** VFIO_GROUP_UNSET_CONTAINER. */
  unsetContainer(): Result {
    if (!this.hasIommu) return fail('EINVAL', `group ${this.group.id} has no container`);
    const c = this.container;
    if (c !== null) {
      if (this.deviceFds !== 0) return fail('EBUSY', `${this.deviceFds} device fd(s) of group ${this.group.id} are open`);
      c.detachGroup(this.group);
      this.group.container = null;
    }
    this.group.iommufd = null;
    this.containerFile?.put();
    this.containerFile = null;
    return ok();
  }

  /** VFIO_GROUP_GET_DEVICE_FD: `self` is this group's open file (the device fd holds it). */
  getDeviceFd(proc: Process, self: OpenFile, name: string): Result<number> {
    const vdev = this.group.devices.find((d) => matchName(d.name, name));
    if (vdev === undefined) return fail('ENODEV', `no device "${name}" in group ${this.group.id}`);
    if (!this.hasIommu) return fail('EINVAL', `group ${this.group.id} has no container or iommufd (VFIO_GROUP_SET_CONTAINER first)`);
    const c = this.container;
    if (c !== null && !c.iommuSet) return fail('EINVAL', 'the container has no IOMMU backend (VFIO_SET_IOMMU first)');
    if (vdev.type === 'no-iommu' && !proc.capable('CAP_SYS_RAWIO')) return fail('EPERM', 'a no-IOMMU device needs CAP_SYS_RAWIO');
    const df = new VfioDeviceFile(vdev, this, self, null);
    df.iommufd = this.iommufd;
    const first = vdev.openCount === 0;
    const r = df.open();
    if (!r.ok) return r;
    const ctx = this.iommufd;
    if (ctx !== null && first && vdev.type !== 'no-iommu') {
      const at = compatAttach(ctx, vdev);
      if (!at.ok) { df.close(); return at; }
    }
    df.accessGranted = true;
    this.deviceFds++;
    self.get();
    const fd = proc.fds.install(df);
    if (!fd.ok) return fd; // the install's fput ran release(), which undid the open
    return fd;
  }

  deviceFdClosed(): void { this.deviceFds--; }

  /** vfio_group_fops_release(). */
  release(): void {
    if (this.container !== null) {
      this.container.detachGroup(this.group);
      this.group.container = null;
    }
    this.group.iommufd = null;
    this.containerFile?.put();
    this.containerFile = null;
    this.group.openedFile = null;
  }
}

/** vfio_pci_core_match(): the device name, optionally followed by " vf_token=UUID". */
function matchName(devName: string, arg: string): boolean {
  const sp = arg.indexOf(' ');
  if (sp < 0) return arg === devName;
  return arg.slice(0, sp) === devName && /^\s*vf_token=\S+\s*$/.test(arg.slice(sp));
}

/** iommufd_vfio_compat_ioas_create(): the compat IOAS, allocated as IOMMU_IOAS_ALLOC does, if missing. */
export function compatIoasCreate(ctx: IommufdCtx): Result<number> {
  if (ctx.vfioIoasId !== 0 && ctx.objects.get(ctx.vfioIoasId, 'ioas').ok) return ok(ctx.vfioIoasId);
  const ioas = new Ioas();
  const id = ctx.objects.reserve(ioas);
  if (!id.ok) return id;
  ctx.objects.finalize(ioas);
  ctx.vfioIoasId = id.value;
  return id;
}

// vfio_iommufd_compat_attach_ioas(): attach the RID to the compat IOAS (ENODEV when there is none).
function compatAttach(ctx: IommufdCtx, vdev: VfioGroup['devices'][number]): Result {
  if (ctx.vfioIoasId === 0 || !ctx.objects.get(ctx.vfioIoasId, 'ioas').ok) return fail('ENODEV', 'the iommufd has no compat IOAS');
  if (vdev.ops.attachIoas === undefined) return fail('EINVAL', `${vdev.ops.name} cannot attach to an IOAS`);
  const r = vdev.ops.attachIoas(vdev, ctx.vfioIoasId);
  return r.ok ? ok() : r;
}

/** The /dev/vfio/N nodes: registered with a group's first device, removed with its last. */
export class VfioGroupNodes {
  private readonly minors = new Map<VfioGroup, number>();

  constructor(private readonly devfs: DevFs, private readonly core: IommuCore) {}

  minorOf(group: VfioGroup): number | undefined { return this.minors.get(group); }

  /** vfio_group_alloc + cdev_device_add. */
  add(group: VfioGroup): void {
    if (this.minors.has(group)) return;
    const used = new Set(this.minors.values());
    let minor = 0;
    while (used.has(minor)) minor++;
    this.minors.set(group, minor);
    this.devfs.register(group.devPath, { mode: 0o600, uid: 0, gid: 0, major: VFIO_GROUP_MAJOR, minor }, (proc) => this.open(group, proc));
  }

  /** cdev_device_del: the node goes; an open group file stays valid. */
  remove(group: VfioGroup): void {
    if (!this.minors.delete(group)) return;
    this.devfs.unregister(group.devPath);
  }

  // vfio_group_fops_open().
  private open(group: VfioGroup, proc: Process): Result<KernelFile> {
    if (group.devices.length === 0) return fail('ENODEV', `group ${group.id} has no devices`);
    if (group.type === 'no-iommu' && !proc.capable('CAP_SYS_RAWIO')) return fail('EPERM', 'a no-IOMMU group needs CAP_SYS_RAWIO');
    if (group.openedFile !== null) return fail('EBUSY', `${group.devPath} is already open (a group is single-open)`);
    if (group.cdevDeviceOpenCnt > 0) return fail('EBUSY', `a device of group ${group.id} is open through its cdev`);
    const f = new VfioGroupFile(group, this.core);
    group.openedFile = f;
    return ok(f);
  }
}
