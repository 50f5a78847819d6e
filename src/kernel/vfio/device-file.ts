// The device fd (struct vfio_device_file) and opening/closing a device (vfio_df_open/vfio_df_close), shared
// by both ways to get one: VFIO_GROUP_GET_DEVICE_FD (an anonymous "[vfio-device]" file that holds the
// group file) and open() of /dev/vfio/devices/vfioN (a char device file that must BIND_IOMMUFD first).
//
//  * open: through a cdev, a device already open (open_count ≠ 0) → EINVAL: one cdev open at a time.
//    Through the group several fds of one device may exist (the group file is single-open).
//  * first open: with an iommufd, the driver's bind (a DEVICE: DMA ownership for the iommufd, EPERM when
//    someone else owns the group); with a container, the container learns of the device; then the
//    driver's open_device. A failure undoes what was done.
//  * last close: the driver's close_device, then unbind (detach PASIDs and RID, release ownership) or the
//    container's unregister.
//  * read/write: EINVAL until access is granted (a cdev before BIND), else the driver's region access.

import { fail, ok, type Result } from '../errno.ts';
import type { IommufdCtx } from '../iommufd/context.ts';
import type { KernelFile, OpenFile } from '../process/file.ts';
import type { Process } from '../process/process.ts';
import type { VfioContainerLike } from './container-api.ts';
import type { VfioDevice } from './vfio-device.ts';

/** What the device file needs of the group file it came from. */
export interface DeviceFileGroup {
  /** The group's container (legacy path), or null. */
  readonly container: VfioContainerLike | null;
  /** The group's iommufd, or null. */
  readonly iommufd: IommufdCtx | null;
  /** A device fd of the group was closed (container_users--). */
  deviceFdClosed(): void;
}

export class VfioDeviceFile implements KernelFile {
  readonly kind = 'vfio-device';
  /** df->access_granted: set by the group path at open, by BIND_IOMMUFD on a cdev. */
  accessGranted = false;
  /** df->iommufd: the context the device is bound through (group's, or the BIND argument). */
  iommufd: IommufdCtx | null = null;
  /** The iommufd's open file this fd holds a reference on (cdev path). */
  iommufdFile: OpenFile | null = null;
  /** The device ID BIND returned (DEVICE object ID). */
  devid = 0;
  private released = false;

  constructor(
    readonly vdev: VfioDevice,
    /** df->group: set for a fd from VFIO_GROUP_GET_DEVICE_FD. */
    readonly group: DeviceFileGroup | null,
    /** The group file's open file, held while this fd exists. */
    private readonly groupFile: OpenFile | null,
    /** For a cdev fd: the char device number fstat() shows. */
    readonly rdev: { readonly major: number; readonly minor: number } | null,
  ) {}

  /** The name /proc/PID/fd shows for the anonymous file of the group path. */
  get anonName(): string | null { return this.group !== null ? '[vfio-device]' : null; }

  /** The driver's ops when access is granted, else EINVAL (cdev before BIND). */
  granted(): Result<VfioDevice> {
    if (!this.accessGranted || this.released) return fail('EINVAL', `${this.vdev.name}: the device fd is not bound (VFIO_DEVICE_BIND_IOMMUFD first)`);
    return ok(this.vdev);
  }

  /** read(2)/pread(2): into the process's buffer at `userBuf`. */
  read(proc: Process, userBuf: number, count: number, offset: number): Result<number> {
    const g = this.granted();
    if (!g.ok) return g;
    const ops = g.value.ops;
    if (ops.regionRead === undefined) return fail('EINVAL', `${ops.name} has no read`);
    const r = ops.regionRead(offset, count);
    if (!r.ok) return r;
    if (!proc.mm.write(userBuf, r.value).ok) return fail('EFAULT', 'cannot copy the region bytes to user memory');
    return ok(r.value.length);
  }

  /** write(2)/pwrite(2): from the process's buffer at `userBuf`. */
  write(proc: Process, userBuf: number, count: number, offset: number): Result<number> {
    const g = this.granted();
    if (!g.ok) return g;
    const ops = g.value.ops;
    if (ops.regionWrite === undefined) return fail('EINVAL', `${ops.name} has no write`);
    const b = new Uint8Array(count);
    if (!proc.mm.read(userBuf, b).ok) return fail('EFAULT', 'cannot copy the bytes to write from user memory');
    return ops.regionWrite(offset, b);
  }

  /** vfio_df_open(). */
  open(): Result {
    const vdev = this.vdev;
    if (this.group === null && vdev.openCount !== 0) return fail('EINVAL', `${vdev.name} is already open through a cdev: a device can be opened once through its cdev`);
    vdev.openCount++;
    if (vdev.openCount > 1) return ok();
    const r = this.firstOpen();
    if (!r.ok) vdev.openCount--;
    return r;
  }

  /** vfio_df_close(). */
  close(): void {
    const vdev = this.vdev;
    if (vdev.openCount === 0) return;
    vdev.openCount--;
    if (vdev.openCount > 0) return;
    vdev.ops.closeDevice?.(vdev);
    if (vdev.iommufd !== null) {
      vdev.ops.unbindIommufd?.(vdev);
      vdev.iommufd = null;
    } else {
      this.group?.container?.unregisterDevice?.(vdev);
    }
  }

  private firstOpen(): Result {
    const vdev = this.vdev;
    const ctx = this.iommufd;
    if (ctx !== null) {
      if (vdev.ops.bindIommufd === undefined) return fail('EINVAL', `${vdev.ops.name} cannot bind to an iommufd`);
      const id = vdev.ops.bindIommufd(vdev, ctx);
      if (!id.ok) return id;
      this.devid = id.value;
      vdev.iommufd = ctx;
    } else {
      this.group?.container?.registerDevice?.(vdev);
    }
    const r = vdev.ops.openDevice?.(vdev) ?? ok();
    if (!r.ok) {
      if (ctx !== null) { vdev.ops.unbindIommufd?.(vdev); vdev.iommufd = null; }
      else this.group?.container?.unregisterDevice?.(vdev);
    }
    return r;
  }

  /** vfio_device_fops_release(). */
  release(): void {
    if (this.released) return;
    this.released = true;
    if (this.group !== null) {
      // vfio_df_group_close(): close, container_users--, drop the group file.
      this.close();
      this.group.deviceFdClosed();
      this.groupFile?.put();
      return;
    }
    // vfio_df_unbind_iommufd(): close (unbind), put the iommufd, unblock the group.
    if (this.accessGranted) {
      this.close();
      this.iommufdFile?.put();
      this.iommufdFile = null;
      const g = this.vdev.group;
      if (g !== null) g.cdevDeviceOpenCnt--;
    }
  }
}
