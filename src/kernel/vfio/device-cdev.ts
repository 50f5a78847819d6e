// The device cdevs /dev/vfio/devices/vfioN and their three ioctls (drivers/vfio/device_cdev.c, modelled).
//
//  * The node is a char device with the "vfio-dev" region's own major and minor N (the device index),
//    mode 0600 root. open: a device no longer registered → ENODEV; the new fd can do nothing but
//    BIND_IOMMUFD (every other ioctl, read and write → EINVAL).
//  * BIND_IOMMUFD (after the uapi's argsz/flags/iommufd < 0 checks): a fd obtained through the group →
//    EINVAL; the group file open → EBUSY (the bind blocks group opens from here on); already bound →
//    EINVAL; a closed iommufd → EBADF, another kind of file → EBADFD; the device open through another
//    cdev fd → EINVAL; the DMA-ownership claim → EPERM. Returns the DEVICE ID (out_devid).
//  * ATTACH_IOMMUFD_PT: the driver's attach_ioas (a replace when attached) or, with a PASID,
//    pasid_attach_ioas (EOPNOTSUPP without it); returns the attached HWPT ID. iommufd errors pass through.
//  * DETACH_IOMMUFD_PT: the RID or PASID goes back to blocking; PASID without driver support → EOPNOTSUPP.
//  * close: detach PASIDs, then the RID, unbind (ownership released), put the iommufd, unblock the group.

import { fail, ok, type Result } from '../errno.ts';
import { IommufdCtx } from '../iommufd/context.ts';
import type { KernelFile } from '../process/file.ts';
import type { Process } from '../process/process.ts';
import type { DevFs } from '../vfs/devfs.ts';
import { VfioDeviceFile } from './device-file.ts';
import type { VfioDevice } from './vfio-device.ts';

/** The "vfio-dev" chrdev region's major (a dynamic major, next below the group's). */
export const VFIO_DEVICE_MAJOR = 242;

/** /dev/vfio/devices/vfioN for a registered device. */
export const cdevPath = (vdev: VfioDevice): string => `/dev/vfio/devices/vfio${vdev.index}`;

/** The cdev nodes: one per registered device. */
export class VfioCdevNodes {
  constructor(private readonly devfs: DevFs) {}

  add(vdev: VfioDevice): void {
    const rdev = { major: VFIO_DEVICE_MAJOR, minor: vdev.index };
    this.devfs.register(cdevPath(vdev), { mode: 0o600, uid: 0, gid: 0, ...rdev }, () => cdevOpen(vdev, rdev));
  }

  remove(vdev: VfioDevice): void { this.devfs.unregister(cdevPath(vdev)); }
}

/** vfio_device_fops_cdev_open(). */
export function cdevOpen(vdev: VfioDevice, rdev: { major: number; minor: number }): Result<KernelFile> {
  if (!vdev.registered) return fail('ENODEV', `${vdev.name} is no longer registered`);
  return ok(new VfioDeviceFile(vdev, null, null, rdev));
}

/** vfio_df_ioctl_bind_iommufd() after the argument checks: the DEVICE ID. */
export function cdevBind(df: VfioDeviceFile, proc: Process, iommufdFd: number): Result<number> {
  if (df.group !== null) return fail('EINVAL', 'VFIO_DEVICE_BIND_IOMMUFD is only for cdev fds: this one came from VFIO_GROUP_GET_DEVICE_FD');
  const vdev = df.vdev;
  const g = vdev.group;
  if (g === null || !vdev.registered) return fail('ENODEV', `${vdev.name} is no longer registered`);
  // vfio_device_block_group()
  if (g.openedFile !== null) return fail('EBUSY', `${g.devPath} is open: a device cannot be bound through its cdev while its group is in use`);
  g.cdevDeviceOpenCnt++;
  const r = bindLocked(df, proc, iommufdFd);
  if (!r.ok) g.cdevDeviceOpenCnt--;
  return r;
}

function bindLocked(df: VfioDeviceFile, proc: Process, iommufdFd: number): Result<number> {
  if (df.accessGranted) return fail('EINVAL', `${df.vdev.name}: this fd is already bound`);
  const f = proc.fds.get(iommufdFd);
  if (!f.ok) return f;
  const ctx = f.value.file;
  if (!(ctx instanceof IommufdCtx)) return fail('EBADFD', `fd ${iommufdFd} is a ${ctx.kind}, not an iommufd`);
  df.iommufd = ctx;
  const r = df.open();
  if (!r.ok) {
    df.iommufd = null;
    return r;
  }
  df.iommufdFile = f.value.get();
  df.accessGranted = true;
  return ok(df.devid);
}

/** vfio_df_ioctl_attach_pt(): `pasid` null for the RID. Returns the attached pt ID. */
export function cdevAttach(df: VfioDeviceFile, ptId: number, pasid: number | null): Result<number> {
  const vdev = df.vdev;
  const ops = vdev.ops;
  if (pasid === null) {
    if (ops.attachIoas === undefined) return fail('EINVAL', `${ops.name} has no attach_ioas`);
    return ops.attachIoas(vdev, ptId);
  }
  if (ops.pasidAttachIoas === undefined) return fail('EOPNOTSUPP', `${ops.name} does not attach PASIDs`);
  return ops.pasidAttachIoas(vdev, pasid, ptId);
}

/** Whether the driver supports PASID attach/detach (checked before the PASID field is read). */
export function cdevPasidSupported(df: VfioDeviceFile, detach: boolean): boolean {
  const ops = df.vdev.ops;
  return detach ? ops.pasidDetachIoas !== undefined : ops.pasidAttachIoas !== undefined;
}

/** vfio_df_ioctl_detach_pt(). */
export function cdevDetach(df: VfioDeviceFile, pasid: number | null): Result {
  const vdev = df.vdev;
  if (pasid === null) vdev.ops.detachIoas?.(vdev);
  else {
    if (vdev.ops.pasidDetachIoas === undefined) return fail('EOPNOTSUPP', `${vdev.ops.name} does not detach PASIDs`);
    vdev.ops.pasidDetachIoas(vdev, pasid);
  }
  return ok();
}
