// The mdev and VFIO parts of /sys (drivers/vfio/mdev/mdev_sysfs.c, mdev_core.c, vfio_main.c, group.c):
//   <parent>/mdev_supported_types/<type>/{name,description,device_api,available_instances,create,devices/}
//   <parent>/<uuid>/   the mdev's device directory (its parent device is the parent function):
//        remove, mdev_type -> ../mdev_supported_types/<type>, iommu_group -> its (fake) group,
//        subsystem -> /sys/bus/mdev, driver -> /sys/bus/mdev/drivers/<parent driver>, vfio-dev/vfioN/dev
//   /sys/bus/mdev/devices/<uuid> -> the device directory; /sys/bus/mdev/drivers/<name>/<uuid>
//   /sys/class/mdev_bus/<BDF> -> each parent; /sys/class/vfio-dev/vfioN -> an mdev's vfio-dev/vfioN
//   /sys/kernel/iommu_groups/N for VFIO's fake groups (emulated and no-IOMMU devices): iommu_group_alloc()
//        named "vfio-noiommu" with the one device added, no default domain ("unknown"), no regions.
// `create` and `remove` writes go to the mdev core, whose errnos they return.

import type { PciDev } from '../../pci/dev.ts';
import { fail, ok, type Result } from '../errno.ts';
import type { Kernel } from '../kernel.ts';
import type { MdevDevice } from '../mdev/types.ts';
import type { VfioDevice } from '../vfio/vfio-device.ts';
import type { VfioGroup } from '../vfio/vfio-group.ts';
import { mkdirs, put, relative, sysAttr, sysLink, type SysDir } from './node.ts';
import { devicePath } from './pci-tree.ts';

const text = (s: string) => sysAttr(() => ok(`${s}\n`));
const writeOnly = (name: string, write: (t: string) => Result) => sysAttr(() => fail('EACCES', `${name} is write-only`), write);
const link = (root: SysDir, at: string, to: string): void => { put(root, at, sysLink(relative(at.slice(0, at.lastIndexOf('/')), to))); };

/** The mdev's device directory: a child of its parent function's. */
export function mdevPath(m: MdevDevice): string { return `${devicePath(m.parent.dev)}/${m.uuid}`; }

export function buildVfioMdevTree(k: Kernel, root: SysDir): void {
  mkdirs(root, '/sys/bus/mdev/devices');
  mkdirs(root, '/sys/class/mdev_bus');
  for (const p of k.mdev.parentList()) {
    const base = devicePath(p.dev);
    link(root, `/sys/class/mdev_bus/${p.dev.bdf}`, base);
    mkdirs(root, `/sys/bus/mdev/drivers/${p.driver.name}`);
    for (const t of p.types) {
      const dir = `${base}/mdev_supported_types/${t.sysfsName}`;
      put(root, `${dir}/name`, text(t.spec.name));
      put(root, `${dir}/description`, text(t.spec.description));
      put(root, `${dir}/device_api`, text(t.spec.deviceApi));
      put(root, `${dir}/available_instances`, sysAttr(() => ok(`${k.mdev.availableInstances(t)}\n`)));
      put(root, `${dir}/create`, writeOnly('create', (s) => createMdev(k, p.dev, t.sysfsName, s)));
      mkdirs(root, `${dir}/devices`);
    }
  }
  for (const m of k.mdev.devices()) addMdev(k, root, m);
  for (const g of k.vfio.groupList()) if (g.iommuGroup === null) addFakeGroup(root, g);
}

function createMdev(k: Kernel, dev: PciDev, typeDir: string, s: string): Result {
  const r = k.mdev.create(dev, typeDir, s);
  return r.ok ? ok() : r;
}

function addMdev(k: Kernel, root: SysDir, m: MdevDevice): void {
  const p = mdevPath(m);
  const typeDir = `${devicePath(m.parent.dev)}/mdev_supported_types/${m.type.sysfsName}`;
  link(root, `/sys/bus/mdev/devices/${m.uuid}`, p);
  link(root, `${typeDir}/devices/${m.uuid}`, p);
  link(root, `${p}/mdev_type`, typeDir);
  link(root, `${p}/subsystem`, '/sys/bus/mdev');
  // remove_store(): kstrtoul, then a non-zero value removes the device.
  put(root, `${p}/remove`, writeOnly('remove', (s) => {
    const v = /^\s*(0x[0-9a-fA-F]+|\d+)\s*$/.exec(s);
    if (v === null) return fail('EINVAL', `remove wants a number, got "${s.trim()}"`);
    return Number(v[1]) === 0 ? ok() : k.mdev.remove(m.uuid);
  }));
  const vdev = m.vdev;
  if (vdev === null) return;
  link(root, `${p}/driver`, `/sys/bus/mdev/drivers/${m.parent.driver.name}`);
  link(root, `/sys/bus/mdev/drivers/${m.parent.driver.name}/${m.uuid}`, p);
  if (vdev.group !== null) link(root, `${p}/iommu_group`, `/sys/kernel/iommu_groups/${vdev.group.id}`);
  addVfioDev(k, root, p, vdev);
}

/** <dev>/vfio-dev/vfioN/dev and /sys/class/vfio-dev/vfioN (vfio_device_add's cdev device). */
function addVfioDev(k: Kernel, root: SysDir, p: string, vdev: VfioDevice): void {
  if (vdev.index < 0) return;
  const dir = `${p}/vfio-dev/vfio${vdev.index}`;
  const node = k.devfs.stat(`/dev/vfio/devices/vfio${vdev.index}`);
  if (node !== undefined) put(root, `${dir}/dev`, text(`${node.major}:${node.minor}`));
  else mkdirs(root, dir);
  link(root, `/sys/class/vfio-dev/vfio${vdev.index}`, dir);
}

// vfio_noiommu_group_alloc(): the same for emulated and no-IOMMU devices.
function addFakeGroup(root: SysDir, g: VfioGroup): void {
  const base = `/sys/kernel/iommu_groups/${g.id}`;
  put(root, `${base}/name`, text('vfio-noiommu'));
  put(root, `${base}/type`, text('unknown'));
  put(root, `${base}/reserved_regions`, sysAttr(() => ok('')));
  for (const vdev of g.devices) {
    const p = vfioDevicePath(vdev);
    if (p === null) continue;
    link(root, `${base}/devices/${vdev.name}`, p);
    // A no-IOMMU PCI function: its iommu_group link is to the fake group (mdevs get theirs above).
    if (vdev.pci !== null && vdev.name === vdev.pci.bdf) link(root, `${p}/iommu_group`, base);
  }
}

function vfioDevicePath(vdev: VfioDevice): string | null {
  if (vdev.pci === null) return null;
  return vdev.name === vdev.pci.bdf ? devicePath(vdev.pci) : `${devicePath(vdev.pci)}/${vdev.name}`;
}
