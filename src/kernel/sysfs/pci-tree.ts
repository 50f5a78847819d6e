// The PCI and IOMMU parts of /sys, built from kernel state:
//   /sys/devices/pciDDDD:BB/.../DDDD:BB:DD.F/   vendor, device, class, subsystem_*, driver_override,
//        iommu_group -> group, driver -> driver dir, subsystem -> /sys/bus/pci,
//        vfio-dev/vfioN/dev (a VFIO cdev's major:minor)
//   /sys/bus/pci/devices/BDF -> the device dir; /sys/bus/pci/drivers/NAME/{bind,unbind,new_id,BDF}
//   /sys/bus/pci/drivers_probe
//   /sys/kernel/iommu_groups/N/{devices/BDF, type, reserved_regions}
//   /sys/class/vfio-dev/vfioN -> the device's vfio-dev/vfioN
// Writes go to the driver core (bind, unbind, driver_override, new_id, drivers_probe), as they do in Linux.

import type { PciDev } from '../../pci/dev.ts';
import { fail, ok, type Result } from '../errno.ts';
import type { IommuGroup } from '../iommu/group.ts';
import type { Kernel } from '../kernel.ts';
import { put, relative, sysAttr, sysDir, sysLink, type SysDir } from './node.ts';

const hex = (n: number, w: number): string => `0x${n.toString(16).padStart(w, '0')}`;
const text = (s: string) => sysAttr(() => ok(`${s}\n`));

/** /sys/devices/pciDDDD:BB/0000:00:1c.0/0000:02:00.0: the chain of bridges from the root bus. */
export function devicePath(dev: PciDev): string {
  const chain: PciDev[] = [dev];
  let bus = dev.bus;
  while (bus.self !== null) {
    chain.unshift(bus.self);
    bus = bus.self.bus;
  }
  const root = `pci${dev.domain.toString(16).padStart(4, '0')}:${bus.number.toString(16).padStart(2, '0')}`;
  return `/sys/devices/${root}/${chain.map((d) => d.bdf).join('/')}`;
}

/** A written value without its newline. */
function lineOf(s: string): string { return s.replace(/\n$/, '').trim(); }

export function buildPciTree(k: Kernel, root: SysDir): void {
  const devices = k.booted.host.topology.devices();
  const byBdf = (s: string): PciDev | undefined => devices.find((d) => d.bdf === s);
  for (const dev of devices) addDevice(k, root, dev);
  // Drivers.
  for (const name of k.drivers.driverNames()) {
    const base = `/sys/bus/pci/drivers/${name}`;
    put(root, `${base}/bind`, sysAttr(() => fail('EACCES', 'bind is write-only'), (t) => {
      const d = byBdf(lineOf(t));
      return d === undefined ? fail('ENODEV', `no device ${lineOf(t)}`) : k.drivers.bind(d, name);
    }));
    put(root, `${base}/unbind`, sysAttr(() => fail('EACCES', 'unbind is write-only'), (t) => {
      const d = byBdf(lineOf(t));
      return d === undefined ? fail('ENODEV', `no device ${lineOf(t)}`) : k.drivers.unbind(d, name);
    }));
    put(root, `${base}/new_id`, sysAttr(() => fail('EACCES', 'new_id is write-only'), (t) => newId(k, name, t)));
    for (const dev of k.drivers.devicesOf(name)) put(root, `${base}/${dev.bdf}`, sysLink(relative(base, devicePath(dev))));
  }
  put(root, '/sys/bus/pci/drivers_probe', sysAttr(() => fail('EACCES', 'drivers_probe is write-only'), (t) => {
    const d = byBdf(lineOf(t));
    return d === undefined ? fail('ENODEV', `no device ${lineOf(t)}`) : k.drivers.driversProbe(d);
  }));
  for (const g of k.core.groups) addGroup(k, root, g);
}

function addDevice(k: Kernel, root: SysDir, dev: PciDev): void {
  const p = devicePath(dev);
  const cfg = dev.config;
  put(root, `${p}/vendor`, text(hex(dev.vendor, 4)));
  put(root, `${p}/device`, text(hex(dev.device, 4)));
  put(root, `${p}/class`, text(hex(dev.classCode, 6)));
  put(root, `${p}/subsystem_vendor`, text(hex(cfg.read16(0x2c), 4)));
  put(root, `${p}/subsystem_device`, text(hex(cfg.read16(0x2e), 4)));
  put(root, `${p}/driver_override`, sysAttr(
    () => ok(`${k.drivers.driverOverride(dev) ?? '(null)'}\n`),
    (t) => k.drivers.setDriverOverride(dev, t),
  ));
  put(root, `/sys/bus/pci/devices/${dev.bdf}`, sysLink(relative('/sys/bus/pci/devices', p)));
  put(root, `${p}/subsystem`, sysLink(relative(p, '/sys/bus/pci')));
  const g = k.core.groupOf(dev);
  if (g !== undefined) put(root, `${p}/iommu_group`, sysLink(relative(p, `/sys/kernel/iommu_groups/${g.id}`)));
  const drv = k.drivers.boundDriver(dev);
  if (drv !== null) put(root, `${p}/driver`, sysLink(relative(p, `/sys/bus/pci/drivers/${drv.name}`)));
  const vdev = k.vfio.deviceOfPci(dev);
  if (vdev !== undefined && vdev.index >= 0) {
    const node = k.devfs.stat(`/dev/vfio/devices/vfio${vdev.index}`);
    const dir = `${p}/vfio-dev/vfio${vdev.index}`;
    if (node !== undefined) put(root, `${dir}/dev`, text(`${node.major}:${node.minor}`));
    else put(root, `${dir}`, sysDir());
    put(root, `/sys/class/vfio-dev/vfio${vdev.index}`, sysLink(relative('/sys/class/vfio-dev', dir)));
  }
}

function addGroup(k: Kernel, root: SysDir, g: IommuGroup): void {
  const base = `/sys/kernel/iommu_groups/${g.id}`;
  for (const dev of g.devices) {
    if (k.core.isHotplugged(dev)) { addMockDevice(root, base, dev); continue; }
    put(root, `${base}/devices/${dev.bdf}`, sysLink(relative(`${base}/devices`, devicePath(dev))));
  }
  put(root, `${base}/type`, sysAttr(() => ok(`${groupType(k, g)}\n`)));
  put(root, `${base}/reserved_regions`, sysAttr(() => {
    const first = g.devices[0];
    const regions = first === undefined ? [] : k.core.resvRegions(first);
    return ok(regions.map((r) => `${hex(r.start, 16)} ${hex(r.start + r.length - 1, 16)} ${r.type}\n`).join(''));
  }));
}

// A device the IOMMU core got by hot-plug (the selftest's iommufd_mock bus): a platform-style device
// /sys/devices/<name>, on /sys/bus/iommufd_mock, with its iommu_group link; it is not a PCI function.
function addMockDevice(root: SysDir, base: string, dev: PciDev): void {
  const name = dev.info.name ?? dev.bdf;
  const p = `/sys/devices/${name}`;
  put(root, `${base}/devices/${name}`, sysLink(relative(`${base}/devices`, p)));
  put(root, `${p}/iommu_group`, sysLink(relative(p, base)));
  put(root, `/sys/bus/iommufd_mock/devices/${name}`, sysLink(relative('/sys/bus/iommufd_mock/devices', p)));
}

// iommu_group_show_type(): the default domain's type. x86 defaults to lazy invalidation (DMA-FQ) unless
// iommu.strict=1; iommu=pt makes it identity.
function groupType(k: Kernel, g: IommuGroup): string {
  if (g.defaultDomain.type === 'identity') return 'identity';
  if (g.defaultDomain.type === 'blocked') return 'blocked';
  return /(^|\s)iommu\.strict=1(\s|$)/.test(k.booted.options.cmdline) ? 'DMA' : 'DMA-FQ';
}

// new_id: "vendor device [subvendor subdevice class class_mask]" in hex; adds a dynamic id and probes.
function newId(k: Kernel, name: string, t: string): Result {
  const f = lineOf(t).split(/\s+/);
  const [v, d] = [f[0], f[1]];
  if (v === undefined || d === undefined || !/^[0-9a-fA-F]{1,4}$/.test(v) || !/^[0-9a-fA-F]{1,4}$/.test(d)) {
    return fail('EINVAL', `new_id wants "vendor device" in hex, got "${lineOf(t)}"`);
  }
  const ids = k.drivers.driver(name)?.dynamicIds;
  if (ids === undefined) return fail('EINVAL', `${name} takes no dynamic ids`);
  const key = `${v.toLowerCase().padStart(4, '0')}:${d.toLowerCase().padStart(4, '0')}`;
  if (ids.has(key)) return fail('EEXIST', `${key} is already a dynamic id of ${name}`);
  ids.add(key);
  // pci_add_dynid() then driver_attach(): this driver probes every unbound device it now matches.
  for (const dev of k.booted.host.topology.devices()) {
    if (dev.ids === key && k.drivers.boundDriver(dev) === null) void k.drivers.bind(dev, name);
  }
  return ok();
}
