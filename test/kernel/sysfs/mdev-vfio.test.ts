import { describe, expect, it } from 'vitest';
import { Kernel } from '../../../src/kernel/kernel.ts';
import { EmulatedParentDriver } from '../../../src/kernel/mdev/emulated-parent.ts';
import { loadBuiltinHost } from '../../../src/pci/builtin-hosts.ts';

// mdev_sysfs.c's tree and VFIO's fake groups through kernel.sysfs: what mdevctl, libvirt and QEMU read.

const GPU = '0000:16:00.0';
const UUID = '83b8f4f2-509f-382f-3c1e-e6bfe0fa1001';
const TYPES = `/sys/bus/pci/devices/${GPU}/mdev_supported_types`;

function setup() {
  const k = Kernel.boot(loadBuiltinHost('default'));
  const drv = new EmulatedParentDriver({ vfio: k.vfio, memory: k.memory });
  const gpu = k.device('16:00.0');
  if (gpu === undefined) throw new Error('no GPU');
  const r = k.mdev.registerParent(gpu, drv, drv.types());
  if (!r.ok) throw new Error(r.reason);
  return { k, drv, s: k.sysfs };
}

describe('mdev and VFIO in sysfs', () => {
  it('mdev_supported_types: one directory per type with its attributes', () => {
    const { s } = setup();
    expect(s.list(TYPES)).toEqual({ ok: true, value: ['vgpu-lite-1', 'vgpu-lite-2'] });
    expect(s.list(`${TYPES}/vgpu-lite-1`)).toEqual({ ok: true, value: ['available_instances', 'create', 'description', 'device_api', 'devices', 'name'] });
    expect(s.read(`${TYPES}/vgpu-lite-1/name`)).toEqual({ ok: true, value: 'vgpu-lite 1x\n' });
    expect(s.read(`${TYPES}/vgpu-lite-1/device_api`)).toEqual({ ok: true, value: 'vfio-pci\n' });
    expect(s.read(`${TYPES}/vgpu-lite-1/available_instances`)).toEqual({ ok: true, value: '4\n' });
    expect(s.read(`${TYPES}/vgpu-lite-2/available_instances`)).toEqual({ ok: true, value: '2\n' });
    expect(s.list(`${TYPES}/vgpu-lite-1/devices`)).toEqual({ ok: true, value: [] });
    expect(s.realpath(`/sys/class/mdev_bus/${GPU}`)).toMatchObject({ ok: true, value: expect.stringMatching(/^\/sys\/devices\/pci0000:.*\/0000:16:00\.0$/) as unknown });
  });

  it('create by UUID with the core\'s errnos; the device appears under the parent, the type and /sys/bus/mdev', () => {
    const { k, s } = setup();
    expect(s.write(`${TYPES}/vgpu-lite-1/create`, 'not-a-uuid')).toMatchObject({ ok: false, errno: 'EINVAL' });
    expect(s.write(`${TYPES}/vgpu-lite-1/create`, `${UUID}\n`).ok).toBe(true);
    expect(s.write(`${TYPES}/vgpu-lite-2/create`, UUID)).toMatchObject({ ok: false, errno: 'EEXIST' });
    expect(s.read(`${TYPES}/vgpu-lite-1/create`)).toMatchObject({ ok: false, errno: 'EACCES' });
    expect(s.read(`${TYPES}/vgpu-lite-1/available_instances`)).toEqual({ ok: true, value: '3\n' });
    expect(s.read(`${TYPES}/vgpu-lite-2/available_instances`)).toEqual({ ok: true, value: '1\n' });
    expect(s.list(`${TYPES}/vgpu-lite-1/devices`)).toEqual({ ok: true, value: [UUID] });
    expect(s.list('/sys/bus/mdev/devices')).toEqual({ ok: true, value: [UUID] });
    const dev = `/sys/bus/mdev/devices/${UUID}`;
    const real = s.realpath(dev);
    expect(real).toMatchObject({ ok: true, value: expect.stringMatching(/\/0000:16:00\.0\/83b8f4f2-509f-382f-3c1e-e6bfe0fa1001$/) as unknown });
    expect(s.realpath(`${TYPES}/vgpu-lite-1/devices/${UUID}`)).toEqual(real);
    // QEMU: realpath(<sysfsdev>/subsystem) == /sys/bus/mdev.
    expect(s.realpath(`${dev}/subsystem`)).toEqual({ ok: true, value: '/sys/bus/mdev' });
    expect(s.realpath(`/sys/bus/pci/devices/${GPU}/subsystem`)).toEqual({ ok: true, value: '/sys/bus/pci' });
    expect(s.readlink(`${dev}/mdev_type`)).toEqual({ ok: true, value: '../mdev_supported_types/vgpu-lite-1' });
    expect(s.read(`${dev}/mdev_type/name`)).toEqual({ ok: true, value: 'vgpu-lite 1x\n' });
    expect(s.realpath(`${dev}/driver`)).toEqual({ ok: true, value: '/sys/bus/mdev/drivers/vgpu-lite' });
    // iommu_group: the private fake group, which is /dev/vfio/N.
    const m = k.mdev.device(UUID);
    const gid = m?.vdev?.group?.id ?? -1;
    expect(s.realpath(`${dev}/iommu_group`)).toEqual({ ok: true, value: `/sys/kernel/iommu_groups/${gid}` });
    expect(k.devfs.stat(`/dev/vfio/${gid}`)).toBeDefined();
    expect(s.list(`/sys/kernel/iommu_groups/${gid}/devices`)).toEqual({ ok: true, value: [UUID] });
    expect(s.realpath(`/sys/kernel/iommu_groups/${gid}/devices/${UUID}`)).toEqual(real);
    expect(s.read(`/sys/kernel/iommu_groups/${gid}/name`)).toEqual({ ok: true, value: 'vfio-noiommu\n' });
    expect(s.read(`/sys/kernel/iommu_groups/${gid}/type`)).toEqual({ ok: true, value: 'unknown\n' });
    // The cdev: vfio-dev/vfioN/dev and /sys/class/vfio-dev/vfioN.
    const n = m?.vdev?.index ?? -1;
    const node = k.devfs.stat(`/dev/vfio/devices/vfio${n}`);
    expect(s.read(`${dev}/vfio-dev/vfio${n}/dev`)).toEqual({ ok: true, value: `${node?.major}:${node?.minor}\n` });
    expect(s.realpath(`/sys/class/vfio-dev/vfio${n}`)).toEqual({ ok: true, value: `${real.ok ? real.value : ''}/vfio-dev/vfio${n}` });
  });

  it('remove: a number, non-zero removes; EBUSY while open; everything goes away', () => {
    const { k, s } = setup();
    expect(s.write(`${TYPES}/vgpu-lite-1/create`, UUID).ok).toBe(true);
    const dev = `/sys/bus/mdev/devices/${UUID}`;
    const vdev = k.mdev.device(UUID)?.vdev;
    const gid = vdev?.group?.id ?? -1;
    expect(s.write(`${dev}/remove`, 'yes')).toMatchObject({ ok: false, errno: 'EINVAL' });
    expect(s.write(`${dev}/remove`, '0').ok).toBe(true);
    expect(k.mdev.device(UUID)).toBeDefined();
    if (vdev !== undefined && vdev !== null) vdev.openCount = 1;
    expect(s.write(`${dev}/remove`, '1')).toMatchObject({ ok: false, errno: 'EBUSY' });
    if (vdev !== undefined && vdev !== null) vdev.openCount = 0;
    expect(s.write(`${dev}/remove`, '1\n').ok).toBe(true);
    expect(s.list('/sys/bus/mdev/devices')).toEqual({ ok: true, value: [] });
    expect(s.list(`${TYPES}/vgpu-lite-1/devices`)).toEqual({ ok: true, value: [] });
    expect(s.read(`/sys/kernel/iommu_groups/${gid}/name`)).toMatchObject({ ok: false, errno: 'ENOENT' });
    expect(s.read(`${TYPES}/vgpu-lite-1/available_instances`)).toEqual({ ok: true, value: '4\n' });
  });

  it('a no-IOMMU VFIO device (intel_iommu=off): its fake group lists it and its iommu_group link points there', () => {
    const k = Kernel.boot(loadBuiltinHost('default'), { cmdline: 'intel_iommu=off', vfio: { enableUnsafeNoiommuMode: true } });
    const nic = k.device('38:00.0');
    if (nic === undefined) throw new Error('no device');
    const p = `/sys/bus/pci/devices/${nic.bdf}`;
    expect(k.sysfs.readlink(`${p}/iommu_group`)).toMatchObject({ ok: false, errno: 'ENOENT' });
    expect(k.drivers.unbind(nic).ok).toBe(true);
    expect(k.drivers.setDriverOverride(nic, 'vfio-pci').ok).toBe(true);
    expect(k.drivers.bind(nic, 'vfio-pci').ok).toBe(true);
    const gid = k.vfio.deviceOfPci(nic)?.group?.id ?? -1;
    expect(k.sysfs.realpath(`${p}/iommu_group`)).toEqual({ ok: true, value: `/sys/kernel/iommu_groups/${gid}` });
    expect(k.sysfs.list(`/sys/kernel/iommu_groups/${gid}/devices`)).toEqual({ ok: true, value: [nic.bdf] });
    expect(k.sysfs.read(`/sys/kernel/iommu_groups/${gid}/name`)).toEqual({ ok: true, value: 'vfio-noiommu\n' });
    expect(k.sysfs.realpath(`/sys/kernel/iommu_groups/${gid}/devices/${nic.bdf}/subsystem`)).toEqual({ ok: true, value: '/sys/bus/pci' });
  });
});
