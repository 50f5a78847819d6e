// QEMU 7.2's legacy realize sequence on the default host (hardware-models-and-clients.md §5.3), every
// step through the byte-level dispatch, then teardown back to the host driver; and the §9 container
// rows driven through the group fd (the container tests call the container directly).

import { describe, expect, it } from 'vitest';
import type { Kernel } from '../../../src/kernel/kernel.ts';
import type { Process } from '../../../src/kernel/process/process.ts';
import { dispatch } from '../../../src/uapi/dispatch.ts';
import { VFIO_DEVICE_GET_INFO } from '../../../src/uapi/ioctl.ts';
import { deviceGetInfo, groupGetDeviceFd, groupGetStatus, groupSetContainer, groupUnsetContainer } from '../../../src/uapi/vfio-api.ts';
import * as K from '../../../src/uapi/vfio-consts.ts';
import {
  openVfioContainer, vfioCheckExtension, vfioGetApiVersion, vfioIommuGetInfo, vfioIommuMapDma, vfioSetIommu,
} from '../../../src/uapi/vfio-container-api.ts';
import { anon, boot, dev, errno, PAGE, value } from './vfio-helpers.ts';

const NVME = '0000:39:00.0';
const SYS = `/sys/bus/pci/devices/${NVME}`;
const RAM = 64 * PAGE;

/** The administrator: unbind nvme, driver_override=vfio-pci, drivers_probe, chown the group to the user. */
function admin(k: Kernel, uid = 1000): number {
  value(k.sysfs.write(`${SYS}/driver/unbind`, NVME));
  value(k.sysfs.write(`${SYS}/driver_override`, 'vfio-pci'));
  value(k.sysfs.write('/sys/bus/pci/drivers_probe', NVME));
  const link = value(k.sysfs.readlink(`${SYS}/iommu_group`));
  const gid = Number(link.split('/').pop());
  value(k.devfs.chown(`/dev/vfio/${gid}`, uid, uid));
  return gid;
}

function qemuUser(k: Kernel): Process {
  const lim = { soft: 2 * RAM, hard: 2 * RAM };
  return k.processes.spawn({ uid: 1000, rlimits: { RLIMIT_MEMLOCK: lim } });
}

describe('QEMU 7.2 on the legacy container path', () => {
  it('realize, device DMA into guest RAM, a fault outside it, teardown to the host driver', () => {
    const k = boot();
    const gid = admin(k);
    const p = qemuUser(k);
    // 1. stat(sysfsdev), readlink(iommu_group): the group id.
    expect(k.sysfs.realpath(`${SYS}/iommu_group`)).toEqual({ ok: true, value: `/sys/kernel/iommu_groups/${gid}` });
    // 2. open /dev/vfio/N, GET_STATUS must say VIABLE.
    const group = value(k.devfs.open(p, `/dev/vfio/${gid}`));
    expect(value(groupGetStatus({ proc: p, fd: group }))).toBe(K.VFIO_GROUP_FLAGS_VIABLE);
    // 4. open /dev/vfio/vfio, API version 0, TYPE1v2 supported.
    const container = value(openVfioContainer(k.devfs, p));
    expect(value(vfioGetApiVersion({ proc: p, fd: container }))).toBe(0);
    expect(value(vfioCheckExtension({ proc: p, fd: container, extension: K.VFIO_TYPE1v2_IOMMU }))).toBe(1);
    value(groupSetContainer({ proc: p, fd: group, containerFd: container }));
    expect(value(groupGetStatus({ proc: p, fd: group }))).toBe(K.VFIO_GROUP_FLAGS_VIABLE | K.VFIO_GROUP_FLAGS_CONTAINER_SET);
    value(vfioSetIommu({ proc: p, fd: container, type: K.VFIO_TYPE1v2_IOMMU }));
    // 5. GET_INFO with the argsz-grow loop: IOVA ranges (minus the MSI window), DMA_AVAIL, MIGRATION.
    const info = value(vfioIommuGetInfo({ proc: p, fd: container }));
    expect(info.capIds).toContain(K.VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE);
    expect(info.iovaRanges?.some((r) => r.start <= 0n && r.end >= BigInt(RAM))).toBe(true);
    expect(info.iovaPgsizes & BigInt(PAGE)).toBe(BigInt(PAGE));
    // 7. The memory listener maps guest RAM at IOVA 0.
    const ram = anon(p, RAM / PAGE);
    value(vfioIommuMapDma({ proc: p, fd: container, vaddr: BigInt(ram), iova: 0n, size: BigInt(RAM) }));
    expect(p.status().VmLck).toBe(RAM / 1024);
    // 8. GET_DEVICE_FD by name, then GET_INFO (QEMU 7.2's headers: argsz 20).
    const device = value(groupGetDeviceFd({ proc: p, fd: group, name: NVME }));
    expect(value(deviceGetInfo({ proc: p, fd: device }))).toMatchObject({ numRegions: 9, numIrqs: 5 });
    const at = anon(p, 1);
    value(p.mm.write(at, Uint8Array.of(20, 0, 0, 0)));
    expect(dispatch(p, device, VFIO_DEVICE_GET_INFO, at).ok).toBe(true);
    // 9. Not an mdev.
    expect(k.sysfs.realpath(`${SYS}/subsystem`)).toEqual({ ok: true, value: '/sys/bus/pci' });
    // The device's DMA lands in the process's memory; outside the mapping it faults.
    const nvme = dev(k, '39:00.0');
    const data = Uint8Array.from({ length: 3 * PAGE }, (_, i) => (i * 31) & 0xff);
    expect(k.machine.dma(nvme, { op: 'write', address: 5 * PAGE + 8, length: data.length, data }).status).toBe('ok');
    const back = new Uint8Array(data.length);
    value(p.mm.read(ram + 5 * PAGE + 8, back));
    expect(back).toEqual(data);
    expect(k.machine.dma(nvme, { op: 'write', address: RAM + PAGE, length: 8, data: new Uint8Array(8) }).status).toBe('fault');
    // Teardown: close everything. No pins, the group is back on its default domain, nvme can rebind.
    const ig = k.core.groupOf(nvme);
    value(p.fds.close(device));
    value(p.fds.close(group));
    value(p.fds.close(container));
    expect(p.status().VmLck).toBe(0);
    expect(p.status().VmPin).toBe(0);
    expect(ig?.owner).toBeNull();
    expect(ig?.domain).toBe(ig?.defaultDomain);
    value(k.sysfs.write(`${SYS}/driver/unbind`, NVME));
    value(k.sysfs.write(`${SYS}/driver_override`, '\n'));
    value(k.sysfs.write('/sys/bus/pci/drivers/nvme/bind', NVME));
    expect(k.sysfs.realpath(`${SYS}/driver`)).toEqual({ ok: true, value: '/sys/bus/pci/drivers/nvme' });
  });
});

describe('§9 container rows through the group fd', () => {
  function opened() {
    const k = boot();
    const gid = admin(k);
    const p = qemuUser(k);
    const group = value(k.devfs.open(p, `/dev/vfio/${gid}`));
    const container = value(openVfioContainer(k.devfs, p));
    return { k, p, group, container };
  }

  it('SET_CONTAINER twice is EINVAL; GET_DEVICE_FD before SET_IOMMU is EINVAL; an unknown name is ENODEV', () => {
    const { k, p, group, container } = opened();
    expect(errno(groupGetDeviceFd({ proc: p, fd: group, name: NVME }))).toBe('EINVAL'); // no container
    value(groupSetContainer({ proc: p, fd: group, containerFd: container }));
    expect(errno(groupSetContainer({ proc: p, fd: group, containerFd: container }))).toBe('EINVAL');
    expect(errno(groupSetContainer({ proc: p, fd: group, containerFd: value(openVfioContainer(k.devfs, p)) }))).toBe('EINVAL');
    expect(errno(groupGetDeviceFd({ proc: p, fd: group, name: NVME }))).toBe('EINVAL'); // no SET_IOMMU
    value(vfioSetIommu({ proc: p, fd: container, type: K.VFIO_TYPE1v2_IOMMU }));
    expect(errno(groupGetDeviceFd({ proc: p, fd: group, name: '0000:39:00.1' }))).toBe('ENODEV');
    value(groupGetDeviceFd({ proc: p, fd: group, name: NVME }));
  });

  it('UNSET_CONTAINER with a device fd open is EBUSY; after closing it, UNSET works and ownership is released', () => {
    const { k, p, group, container } = opened();
    value(groupSetContainer({ proc: p, fd: group, containerFd: container }));
    value(vfioSetIommu({ proc: p, fd: container, type: K.VFIO_TYPE1v2_IOMMU }));
    const device = value(groupGetDeviceFd({ proc: p, fd: group, name: NVME }));
    expect(errno(groupUnsetContainer({ proc: p, fd: group }))).toBe('EBUSY');
    value(p.fds.close(device));
    value(groupUnsetContainer({ proc: p, fd: group }));
    expect(errno(groupUnsetContainer({ proc: p, fd: group }))).toBe('EINVAL');
    expect(k.core.groupOf(dev(k, '39:00.0'))?.owner).toBeNull();
    expect(value(groupGetStatus({ proc: p, fd: group }))).toBe(K.VFIO_GROUP_FLAGS_VIABLE);
  });

  it('a group with a function on a host driver: GET_STATUS lacks VIABLE and SET_CONTAINER is EPERM', () => {
    const k = boot();
    // The GPU on vfio-pci, its HDA sibling left on snd_hda_intel.
    const gpu = '0000:16:00.0';
    value(k.sysfs.write(`/sys/bus/pci/devices/${gpu}/driver/unbind`, gpu));
    value(k.sysfs.write(`/sys/bus/pci/devices/${gpu}/driver_override`, 'vfio-pci'));
    value(k.sysfs.write('/sys/bus/pci/drivers_probe', gpu));
    const gid = Number(value(k.sysfs.readlink(`/sys/bus/pci/devices/${gpu}/iommu_group`)).split('/').pop());
    value(k.devfs.chown(`/dev/vfio/${gid}`, 1000, 1000));
    const p = qemuUser(k);
    const group = value(k.devfs.open(p, `/dev/vfio/${gid}`));
    const container = value(openVfioContainer(k.devfs, p));
    expect(value(groupGetStatus({ proc: p, fd: group })) & K.VFIO_GROUP_FLAGS_VIABLE).toBe(0);
    expect(errno(groupSetContainer({ proc: p, fd: group, containerFd: container }))).toBe('EPERM');
    expect(errno(vfioSetIommu({ proc: p, fd: container, type: K.VFIO_TYPE1v2_IOMMU }))).toBe('EINVAL'); // no group joined
  });
});
