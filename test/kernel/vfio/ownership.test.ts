// The ownership and exclusion errno matrix (reference §9) for the cdev path and the group path on an
// iommufd, with the GPU (16:00.0) and its audio function (16:00.1) in one IOMMU group.

import { describe, expect, it } from 'vitest';
import type { Kernel } from '../../../src/kernel/kernel.ts';
import { IommufdCtx } from '../../../src/kernel/iommufd/context.ts';
import { VfioDeviceFile } from '../../../src/kernel/vfio/device-file.ts';
import { VFIO_GROUP_MAJOR } from '../../../src/kernel/vfio/group-file.ts';
import { eventfd } from '../../../src/kernel/vfs/eventfd.ts';
import type { Process } from '../../../src/kernel/process/process.ts';
import { ioasMap } from '../../../src/uapi/api.ts';
import { dispatch } from '../../../src/uapi/dispatch.ts';
import {
  VFIO_DEVICE_BIND_IOMMUFD, VFIO_DEVICE_GET_INFO, VFIO_GROUP_GET_STATUS, VFIO_GROUP_UNSET_CONTAINER,
} from '../../../src/uapi/ioctl.ts';
import { sysPread } from '../../../src/uapi/rw.ts';
import {
  deviceAttachPt, deviceBindIommufd, deviceGetInfo, groupGetDeviceFd, groupGetStatus, groupSetContainer,
  groupUnsetContainer,
} from '../../../src/uapi/vfio-api.ts';
import * as V from '../../../src/uapi/vfio-structs.ts';
import { anon, boot, dev, errno, raw, spawn, toVfio, value } from './vfio-helpers.ts';

const GPU = '0000:16:00.0';
const AUDIO = '0000:16:00.1';
const VIABLE = 1;
const CONTAINER_SET = 2;

function gpuGroup(k: Kernel, both = true) {
  const gpu = toVfio(k, '16:00.0');
  const audio = both ? toVfio(k, '16:00.1') : null;
  const group = gpu.group;
  if (group === null) throw new Error('no group');
  return { gpu, audio, group, path: group.devPath };
}

const cdevOf = (index: number): string => `/dev/vfio/devices/vfio${index}`;
const iommufd = (k: Kernel, p: Process): number => value(k.devfs.open(p, '/dev/iommu'));

describe('group node and group open', () => {
  it('appears with the first VFIO device (0600 root, its own major) and goes with the last', () => {
    const k = boot();
    const { group, path } = gpuGroup(k, false);
    expect(k.devfs.stat(path)).toMatchObject({ mode: 0o600, uid: 0, major: VFIO_GROUP_MAJOR });
    expect(group.devices.length).toBe(1);
    value(k.drivers.unbind(dev(k, '16:00.0')));
    expect(k.devfs.exists(path)).toBe(false);
  });

  it('is single-open system-wide: a second open from another process is EBUSY; release reopens', () => {
    const k = boot();
    const { path } = gpuGroup(k);
    const a = spawn(k);
    const b = spawn(k);
    const fd = value(k.devfs.open(a, path));
    expect(errno(k.devfs.open(b, path))).toBe('EBUSY');
    expect(errno(k.devfs.open(a, path))).toBe('EBUSY');
    value(a.fds.close(fd));
    value(k.devfs.open(b, path));
  });

  it('an open group whose devices all left answers GET_STATUS with ENODEV; an unprivileged user gets EACCES', () => {
    const k = boot();
    const { path } = gpuGroup(k, false);
    expect(errno(k.devfs.open(spawn(k, { uid: 1000 }), path))).toBe('EACCES');
    const p = spawn(k);
    const fd = value(k.devfs.open(p, path));
    value(k.drivers.unbind(dev(k, '16:00.0')));
    expect(raw(p, fd, VFIO_GROUP_GET_STATUS, V.vfio_group_status, {}).e).toBe('ENODEV');
  });
});

describe('VIABLE transitions with the GPU audio sibling', () => {
  it('follows the sibling: snd_hda_intel → not viable; unbound → viable; vfio-pci → viable; host driver back → not viable', () => {
    const k = boot();
    const { path } = gpuGroup(k, false);
    const audio = dev(k, '16:00.1');
    const p = spawn(k);
    const fd = value(k.devfs.open(p, path));
    const status = (): number => value(groupGetStatus({ proc: p, fd }));
    expect(k.drivers.boundDriver(audio)?.name).toBe('snd_hda_intel');
    expect(status()).toBe(0);
    value(k.drivers.unbind(audio));
    expect(status()).toBe(VIABLE);
    value(k.drivers.setDriverOverride(audio, 'vfio-pci'));
    value(k.drivers.bind(audio, 'vfio-pci'));
    expect(status()).toBe(VIABLE);
    value(k.drivers.unbind(audio));
    value(k.drivers.setDriverOverride(audio, null));
    value(k.drivers.bind(audio, 'snd_hda_intel'));
    expect(status()).toBe(0);
    // The SET_CONTAINER(iommufd) path still says VIABLE | CONTAINER_SET, and GET_DEVICE_FD fails EPERM.
    value(groupSetContainer({ proc: p, fd, containerFd: iommufd(k, p) }));
    expect(status()).toBe(VIABLE | CONTAINER_SET);
    expect(errno(groupGetDeviceFd({ proc: p, fd, name: GPU }))).toBe('EPERM');
  });

  it('the cdev BIND of a function whose sibling is on a host driver is EPERM', () => {
    const k = boot();
    const { gpu } = gpuGroup(k, false);
    const p = spawn(k);
    const cdev = value(k.devfs.open(p, cdevOf(gpu.index)));
    expect(errno(deviceBindIommufd({ proc: p, fd: cdev, iommufd: iommufd(k, p) }))).toBe('EPERM');
    expect(gpu.openCount).toBe(0);
    expect(gpu.group?.cdevDeviceOpenCnt).toBe(0);
  });
});

describe('cdev exclusion (reference §9, cdev column)', () => {
  it('binding a sibling of a group bound to another process\'s iommufd is EPERM; the same iommufd may bind both', () => {
    const k = boot();
    const { gpu, audio } = gpuGroup(k);
    if (audio === null) throw new Error('no audio');
    const a = spawn(k);
    const b = spawn(k);
    const ia = iommufd(k, a);
    value(deviceBindIommufd({ proc: a, fd: value(k.devfs.open(a, cdevOf(gpu.index))), iommufd: ia }));
    const bAudio = value(k.devfs.open(b, cdevOf(audio.index)));
    expect(errno(deviceBindIommufd({ proc: b, fd: bAudio, iommufd: iommufd(k, b) }))).toBe('EPERM');
    value(deviceBindIommufd({ proc: a, fd: value(k.devfs.open(a, cdevOf(audio.index))), iommufd: ia }));
    expect(k.core.groupOf(dev(k, '16:00.0'))?.ownerCnt).toBe(2);
    // A host driver cannot probe a sibling of an owned group.
    const gpuDev = dev(k, '16:00.0');
    expect(errno(k.core.deviceUseDefaultDomain(gpuDev))).toBe('EBUSY');
  });

  it('two processes open the same vfioX: both opens succeed, the second BIND is EINVAL', () => {
    const k = boot();
    const { gpu } = gpuGroup(k);
    const a = spawn(k);
    const b = spawn(k);
    const fa = value(k.devfs.open(a, cdevOf(gpu.index)));
    const fb = value(k.devfs.open(b, cdevOf(gpu.index)));
    value(deviceBindIommufd({ proc: a, fd: fa, iommufd: iommufd(k, a) }));
    expect(errno(deviceBindIommufd({ proc: b, fd: fb, iommufd: iommufd(k, b) }))).toBe('EINVAL');
    // BIND twice on one fd.
    expect(errno(deviceBindIommufd({ proc: a, fd: fa, iommufd: iommufd(k, a) }))).toBe('EINVAL');
  });

  it('BIND while the group fd is open is EBUSY; opening the group while a device is bound through its cdev is EBUSY', () => {
    const k = boot();
    const { gpu, audio, path } = gpuGroup(k);
    if (audio === null) throw new Error('no audio');
    const a = spawn(k);
    const b = spawn(k);
    const gfd = value(k.devfs.open(a, path));
    const cdev = value(k.devfs.open(b, cdevOf(gpu.index)));
    expect(errno(deviceBindIommufd({ proc: b, fd: cdev, iommufd: iommufd(k, b) }))).toBe('EBUSY');
    value(a.fds.close(gfd));
    value(deviceBindIommufd({ proc: b, fd: cdev, iommufd: iommufd(k, b) }));
    expect(errno(k.devfs.open(a, path))).toBe('EBUSY');
    value(b.fds.close(cdev));
    value(k.devfs.open(a, path));
  });

  it('BIND argument and fd errors: argsz, flags, iommufd < 0, EBADF, EBADFD; before BIND every ioctl and read is EINVAL', () => {
    const k = boot();
    const { gpu } = gpuGroup(k);
    const p = spawn(k);
    const cdev = value(k.devfs.open(p, cdevOf(gpu.index)));
    const ifd = iommufd(k, p);
    const S = V.vfio_device_bind_iommufd;
    expect(raw(p, cdev, VFIO_DEVICE_BIND_IOMMUFD, S, { argsz: 15, iommufd: ifd }).e).toBe('EINVAL');
    expect(raw(p, cdev, VFIO_DEVICE_BIND_IOMMUFD, S, { flags: 2, iommufd: ifd }).e).toBe('EINVAL');
    expect(raw(p, cdev, VFIO_DEVICE_BIND_IOMMUFD, S, { iommufd: -1 }).e).toBe('EINVAL');
    expect(raw(p, cdev, VFIO_DEVICE_BIND_IOMMUFD, S, { iommufd: 999 }).e).toBe('EBADF');
    const efd = value(eventfd(p));
    expect(raw(p, cdev, VFIO_DEVICE_BIND_IOMMUFD, S, { iommufd: efd }).e).toBe('EBADFD');
    expect(raw(p, cdev, VFIO_DEVICE_GET_INFO, V.vfio_device_info, {}).e).toBe('EINVAL');
    expect(errno(sysPread(p, cdev, anon(p, 1), 4, 7 * 2 ** 40))).toBe('EINVAL');
    const ok = raw(p, cdev, VFIO_DEVICE_BIND_IOMMUFD, S, { iommufd: ifd, argsz: 16 });
    expect(ok.e).toBe('ok');
    const f = p.fds.get(ifd);
    if (!f.ok || !(f.value.file instanceof IommufdCtx)) throw new Error('not an iommufd');
    expect(f.value.file.objects.get(ok.out.out_devid, 'device').ok).toBe(true);
    expect(value(deviceGetInfo({ proc: p, fd: cdev })).numRegions).toBe(9);
  });

  it('closing the iommufd fd first keeps the bound device working until the device fd closes', () => {
    const k = boot();
    const { gpu } = gpuGroup(k);
    const p = spawn(k);
    const ifd = iommufd(k, p);
    const cdev = value(k.devfs.open(p, cdevOf(gpu.index)));
    value(deviceBindIommufd({ proc: p, fd: cdev, iommufd: ifd }));
    value(p.fds.close(ifd));
    expect(gpu.openCount).toBe(1);
    value(p.fds.close(cdev));
    expect(k.core.groupOf(dev(k, '16:00.0'))?.ownerCnt).toBe(0);
  });
});

describe('group path on an iommufd (reference §4.3, §9 group column)', () => {
  it('SET_CONTAINER creates the compat IOAS; GET_DEVICE_FD binds and attaches; DMA through the compat IOAS', () => {
    const k = boot();
    const { gpu, path } = gpuGroup(k);
    const p = spawn(k);
    const ifd = iommufd(k, p);
    const gfd = value(k.devfs.open(p, path));
    expect(errno(groupGetDeviceFd({ proc: p, fd: gfd, name: GPU }))).toBe('EINVAL'); // no container yet
    expect(errno(groupUnsetContainer({ proc: p, fd: gfd }))).toBe('EINVAL');
    expect(errno(groupSetContainer({ proc: p, fd: gfd, containerFd: 999 }))).toBe('EBADF');
    expect(errno(groupSetContainer({ proc: p, fd: gfd, containerFd: value(eventfd(p)) }))).toBe('EBADFD');
    value(groupSetContainer({ proc: p, fd: gfd, containerFd: ifd }));
    expect(errno(groupSetContainer({ proc: p, fd: gfd, containerFd: ifd }))).toBe('EINVAL');
    const f = p.fds.get(ifd);
    if (!f.ok || !(f.value.file instanceof IommufdCtx)) throw new Error('not an iommufd');
    const ctx = f.value.file;
    expect(ctx.vfioIoasId).not.toBe(0);
    expect(errno(groupGetDeviceFd({ proc: p, fd: gfd, name: '0000:99:00.0' }))).toBe('ENODEV');
    const dfd = value(groupGetDeviceFd({ proc: p, fd: gfd, name: GPU }));
    const dfd2 = value(groupGetDeviceFd({ proc: p, fd: gfd, name: `${GPU} vf_token=2ab74924-c335-45f4-9b16-8569e5b08258` }));
    const df = p.fds.get(dfd);
    if (!df.ok || !(df.value.file instanceof VfioDeviceFile)) throw new Error('not a device fd');
    expect(df.value.file.anonName).toBe('[vfio-device]');
    expect(gpu.openCount).toBe(2);
    // BIND on a group-obtained fd is EINVAL; ATTACH is not a group-path ioctl (the driver says ENOTTY).
    expect(errno(deviceBindIommufd({ proc: p, fd: dfd, iommufd: ifd }))).toBe('EINVAL');
    expect(errno(deviceAttachPt({ proc: p, fd: dfd, ptId: ctx.vfioIoasId }))).toBe('ENOTTY');
    const va = anon(p, 1);
    value(ioasMap({ proc: p, fd: ifd, ioasId: ctx.vfioIoasId, userVa: va, length: 4096, iova: 0x20_0000 }));
    const data = new Uint8Array([9, 8, 7, 6]);
    expect(k.machine.dma(dev(k, '16:00.0'), { op: 'write', address: 0x20_0000, length: 4, data }).status).toBe('ok');
    const got = new Uint8Array(4);
    value(p.mm.read(va, got));
    expect([...got]).toEqual([9, 8, 7, 6]);
    // Closing the group fd while device fds are open: they hold the group file.
    value(p.fds.close(gfd));
    expect(errno(k.devfs.open(spawn(k), path))).toBe('EBUSY');
    value(p.fds.close(dfd));
    value(p.fds.close(dfd2));
    expect(gpu.openCount).toBe(0);
    expect(k.core.groupOf(dev(k, '16:00.0'))?.ownerCnt).toBe(0);
    value(k.devfs.open(spawn(k), path));
  });

  it('UNSET_CONTAINER on an iommufd without device fds, then GET_DEVICE_FD is EINVAL again', () => {
    const k = boot();
    const { path } = gpuGroup(k);
    const p = spawn(k);
    const gfd = value(k.devfs.open(p, path));
    value(groupSetContainer({ proc: p, fd: gfd, containerFd: iommufd(k, p) }));
    expect(dispatch(p, gfd, VFIO_GROUP_UNSET_CONTAINER, 0)).toMatchObject({ ok: true });
    expect(errno(groupGetDeviceFd({ proc: p, fd: gfd, name: AUDIO }))).toBe('EINVAL');
    expect(value(groupGetStatus({ proc: p, fd: gfd }))).toBe(VIABLE);
  });

  it('group ioctls check argsz and reject unknown numbers with ENOTTY', () => {
    const k = boot();
    const { path } = gpuGroup(k);
    const p = spawn(k);
    const gfd = value(k.devfs.open(p, path));
    expect(raw(p, gfd, VFIO_GROUP_GET_STATUS, V.vfio_group_status, { argsz: 7 }).e).toBe('EINVAL');
    expect(raw(p, gfd, VFIO_DEVICE_GET_INFO, V.vfio_device_info, {}).e).toBe('ENOTTY');
  });
});
