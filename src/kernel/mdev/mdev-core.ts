// The mdev core (drivers/vfio/mdev/mdev_core.c and mdev_sysfs.c): parents register with the types they
// support, user space creates an mdev by writing a UUID to a type's `create` and removes it by writing
// to its `remove`. The core keeps the global UUID list; the parent driver's probe turns each mdev into a
// VFIO device (emulated, IOMMU-backed or PASID-backed, see the *-parent.ts drivers).
//
// Rules modelled:
//  * [mdev_register_parent] a device registers once (EEXIST for a second registration here); every type
//    needs a device_api (EINVAL otherwise).
//  * [create_store] the written string must be a UUID (36 characters, optionally a trailing newline) that
//    parses: anything else is EINVAL.
//  * [mdev_device_create] a UUID already in use anywhere is EEXIST; without the driver's get_available the
//    core counts instances and refuses with EUSERS when none are left (with get_available the driver's
//    probe refuses, mtty answers ENOSPC); a failed probe undoes the create.
//  * [remove_store / mdev_device_remove] removal unregisters the VFIO device, which in Linux blocks until
//    the user closes it; the model cannot wait, so it is EBUSY while open.
//  * [available_instances] get_available() when the driver has one, else the core's count.

import type { PciDev } from '../../pci/dev.ts';
import { fail, ok, type Result } from '../errno.ts';
import type { MdevDevice, MdevParent, MdevParentDriver, MdevType, MdevTypeSpec } from './types.ts';

/** UUID_STRING_LEN. */
export const UUID_STRING_LEN = 36;
const UUID_RE = /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/;

/** What /sys/.../<parent>/mdev_supported_types/<dir>/ shows. */
export interface MdevTypeView {
  readonly dir: string;
  readonly name: string;
  readonly description: string;
  readonly device_api: string;
  readonly available_instances: number;
  /** devices/: the UUIDs of this type's mdevs. */
  readonly devices: readonly string[];
}

/** What /sys/bus/mdev/devices/<uuid>/ shows (links as their targets). */
export interface MdevDeviceView {
  readonly path: string;
  /** mdev_type → the type directory under the parent. */
  readonly mdev_type: string;
  /** The parent device's sysfs path (the device directory the mdev sits under). */
  readonly parent: string;
  /** iommu_group → the VFIO group number (/dev/vfio/N), null before probe. */
  readonly iommu_group: number | null;
  /** subsystem → /sys/bus/mdev: how QEMU recognises an mdev. */
  readonly subsystem: '/sys/bus/mdev';
}

/** guid_parse() on what create_store receives: EINVAL for the wrong length or a malformed UUID. */
export function parseUuid(text: string): Result<string> {
  if (text.length < UUID_STRING_LEN || text.length > UUID_STRING_LEN + 1) {
    return fail('EINVAL', `"${text}" is not ${UUID_STRING_LEN} characters (plus an optional newline)`);
  }
  const s = text.slice(0, UUID_STRING_LEN);
  if (text.length === UUID_STRING_LEN + 1 && text[UUID_STRING_LEN] !== '\n') return fail('EINVAL', `"${text}" has trailing garbage`);
  if (!UUID_RE.test(s)) return fail('EINVAL', `"${s}" is not a UUID`);
  return ok(s.toLowerCase());
}

const pciSysfs = (dev: PciDev): string => `/sys/bus/pci/devices/${dev.bdf}`;

export class MdevCore {
  private readonly parents = new Map<PciDev, MdevParent>();
  /** mdev_list, in creation order. */
  private readonly mdevs = new Map<string, MdevDevice>();

  /** mdev_register_parent(). */
  registerParent(dev: PciDev, driver: MdevParentDriver, types: readonly MdevTypeSpec[]): Result<MdevParent> {
    if (this.parents.has(dev)) return fail('EEXIST', `${dev.bdf} is already an mdev parent`);
    if (types.length === 0) return fail('EINVAL', `${driver.name} registers no mdev types`);
    const list: MdevType[] = [];
    const parent: MdevParent = { dev, driver, types: list };
    for (const spec of types) {
      if (spec.deviceApi !== 'vfio-pci') return fail('EINVAL', `type ${spec.id} has no device_api`);
      if (driver.getAvailable === undefined && spec.maxInstances === undefined) {
        return fail('EINVAL', `type ${spec.id}: without get_available the type needs a fixed instance count`);
      }
      list.push({ spec, parent, sysfsName: `${driver.name}-${spec.id}`, available: spec.maxInstances ?? 0 });
    }
    this.parents.set(dev, parent);
    return ok(parent);
  }

  /** mdev_unregister_parent(): removes every mdev of the parent first (EBUSY if one is open). */
  unregisterParent(dev: PciDev): Result {
    const parent = this.parents.get(dev);
    if (parent === undefined) return fail('ENODEV', `${dev.bdf} is not an mdev parent`);
    for (const m of this.devicesOf(dev)) {
      const r = this.remove(m.uuid);
      if (!r.ok) return r;
    }
    this.parents.delete(dev);
    return ok();
  }

  parent(dev: PciDev): MdevParent | undefined { return this.parents.get(dev); }
  parentList(): MdevParent[] { return [...this.parents.values()]; }
  /** /sys/bus/mdev/devices/. */
  devices(): MdevDevice[] { return [...this.mdevs.values()]; }
  device(uuid: string): MdevDevice | undefined { return this.mdevs.get(uuid.toLowerCase()); }
  devicesOf(dev: PciDev): MdevDevice[] { return this.devices().filter((m) => m.parent.dev === dev); }

  /** available_instances of a type. */
  availableInstances(type: MdevType): number {
    const d = type.parent.driver;
    return d.getAvailable !== undefined ? d.getAvailable(type.parent, type) : type.available;
  }

  /** mdev_supported_types/ of a parent, as sysfs shows it (empty when `dev` is no parent). */
  supportedTypes(dev: PciDev): MdevTypeView[] {
    const p = this.parents.get(dev);
    if (p === undefined) return [];
    return p.types.map((t) => ({
      dir: `${pciSysfs(dev)}/mdev_supported_types/${t.sysfsName}`,
      name: t.spec.name, description: t.spec.description, device_api: t.spec.deviceApi,
      available_instances: this.availableInstances(t),
      devices: this.devices().filter((m) => m.type === t).map((m) => m.uuid),
    }));
  }

  /** echo UUID > mdev_supported_types/<typeDir>/create. */
  create(dev: PciDev, typeDir: string, text: string): Result<MdevDevice> {
    const p = this.parents.get(dev);
    if (p === undefined) return fail('ENOENT', `${dev.bdf} has no mdev_supported_types/`);
    const type = p.types.find((t) => t.sysfsName === typeDir);
    if (type === undefined) return fail('ENOENT', `${dev.bdf} has no mdev type ${typeDir}`);
    const uuid = parseUuid(text);
    if (!uuid.ok) return uuid;
    if (this.mdevs.has(uuid.value)) return fail('EEXIST', `an mdev with UUID ${uuid.value} exists`);
    const counted = p.driver.getAvailable === undefined;
    if (counted) {
      if (type.available === 0) return fail('EUSERS', `no ${typeDir} instances are left on ${dev.bdf}`);
      type.available--;
    }
    const mdev: MdevDevice = { uuid: uuid.value, type, parent: p, vdev: null, user: null, pasid: null };
    this.mdevs.set(mdev.uuid, mdev);
    const r = p.driver.probe(mdev);
    if (!r.ok) {
      this.mdevs.delete(mdev.uuid);
      if (counted) type.available++;
      return r;
    }
    return ok(mdev);
  }

  /** echo 1 > /sys/bus/mdev/devices/<uuid>/remove. */
  remove(uuid: string): Result {
    const mdev = this.mdevs.get(uuid.toLowerCase());
    if (mdev === undefined) return fail('ENODEV', `no mdev ${uuid}`);
    const r = mdev.parent.driver.remove(mdev);
    if (!r.ok) return r;
    this.mdevs.delete(mdev.uuid);
    if (mdev.parent.driver.getAvailable === undefined) mdev.type.available++;
    return ok();
  }

  /** /sys/bus/mdev/devices/<uuid>/ as data. */
  view(uuid: string): MdevDeviceView | undefined {
    const m = this.device(uuid);
    if (m === undefined) return undefined;
    return {
      path: `/sys/bus/mdev/devices/${m.uuid}`,
      mdev_type: `${pciSysfs(m.parent.dev)}/mdev_supported_types/${m.type.sysfsName}`,
      parent: pciSysfs(m.parent.dev),
      iommu_group: m.vdev?.group?.id ?? null,
      subsystem: '/sys/bus/mdev',
    };
  }
}
