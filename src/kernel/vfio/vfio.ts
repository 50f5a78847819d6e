// The VFIO core (drivers/vfio/vfio_main.c and group.c's registry): which VFIO devices exist, the VFIO
// group of each, and the cdev numbers. Devices register when a VFIO driver probes them (vfio-pci) or when
// an mdev is created (emulated or IOMMU-backed), and unregister on remove.
//
// Rules modelled:
//  * [vfio_group_find_or_alloc] a physical device's VFIO group is keyed by its IOMMU group; a device with
//    no IOMMU group is EINVAL unless no-IOMMU mode is on (then a private no-IOMMU group).
//  * [vfio_noiommu_group_alloc / emulated] emulated and no-IOMMU devices each get a private fake group,
//    numbered with the next free IOMMU group ID (Linux allocates fake iommu_groups from the same IDA).
//  * [vfio_device_set / cdev] device numbers come from an IDA: vfioN is the lowest free N.
//  * [vfio_unregister_group_dev] blocks until every user closed the device; the model cannot wait, so
//    unregistering an open device is EBUSY (the driver's REQ interrupt is how Linux asks the user).

import type { PciDev } from '../../pci/dev.ts';
import type { DriverCore } from '../drivers/driver-core.ts';
import { fail, ok, type Result } from '../errno.ts';
import type { IommuCore } from '../iommu/core.ts';
import type { IommuGroup } from '../iommu/group.ts';
import type { DevFs } from '../vfs/devfs.ts';
import { VfioCdevNodes } from './device-cdev.ts';
import { VfioGroupNodes } from './group-file.ts';
import type { VfioDevice } from './vfio-device.ts';
import { VfioGroup } from './vfio-group.ts';

export interface VfioOptions {
  /** vfio.enable_unsafe_noiommu_mode. */
  readonly enableUnsafeNoiommuMode?: boolean;
  /** vfio_iommu_type1.dma_entry_limit (default 65535). */
  readonly dmaEntryLimit?: number;
  /**
   * vfio_iommu_type1.allow_unsafe_interrupts; also iommufd.allow_unsafe_interrupts unless
   * KernelBootOptions.iommufd sets that one.
   */
  readonly allowUnsafeInterrupts?: boolean;
  /** CONFIG_IOMMUFD_VFIO_CONTAINER: /dev/vfio/vfio is served by iommufd instead of the container code. */
  readonly iommufdContainer?: boolean;
}

export interface VfioDeps {
  readonly core: IommuCore;
  readonly devfs: DevFs;
  readonly drivers: DriverCore;
}

export class VfioCore {
  readonly options: Required<VfioOptions>;
  private readonly byIommuGroup = new Map<IommuGroup, VfioGroup>();
  private readonly groupsById = new Map<number, VfioGroup>();
  private readonly devices = new Map<number, VfioDevice>();
  /** /dev/vfio/N: registered with a group's first device (group-file.ts). */
  readonly groupNodes: VfioGroupNodes;
  /** /dev/vfio/devices/vfioN (device-cdev.ts). */
  readonly cdevNodes: VfioCdevNodes;

  constructor(readonly deps: VfioDeps, opts: VfioOptions = {}) {
    this.options = {
      enableUnsafeNoiommuMode: opts.enableUnsafeNoiommuMode ?? false,
      dmaEntryLimit: opts.dmaEntryLimit ?? 65535,
      allowUnsafeInterrupts: opts.allowUnsafeInterrupts ?? false,
      iommufdContainer: opts.iommufdContainer ?? false,
    };
    this.groupNodes = new VfioGroupNodes(deps.devfs, deps.core, (g) => { if (g.devices.length === 0) this.forget(g); });
    this.cdevNodes = new VfioCdevNodes(deps.devfs);
  }

  /** Registered VFIO devices, by cdev number. */
  deviceList(): VfioDevice[] { return [...this.devices.values()].sort((a, b) => a.index - b.index); }
  device(index: number): VfioDevice | undefined { return this.devices.get(index); }
  deviceByName(name: string): VfioDevice | undefined { return this.deviceList().find((d) => d.name === name); }
  /** The VFIO device registered for a PCI function (not its mdevs). */
  deviceOfPci(dev: PciDev): VfioDevice | undefined { return this.deviceList().find((d) => d.pci === dev && d.name === dev.bdf); }
  groupList(): VfioGroup[] { return [...this.groupsById.values()].sort((a, b) => a.id - b.id); }
  group(id: number): VfioGroup | undefined { return this.groupsById.get(id); }

  /** vfio_register_group_dev(): a physical device in its IOMMU group's VFIO group (or a no-IOMMU group). */
  registerGroupDev(vdev: VfioDevice): Result {
    if (vdev.pci === null) throw new Error(`${vdev.name}: a group device needs a PCI function`);
    const ig = this.deps.core.groupOf(vdev.pci);
    let group: VfioGroup | undefined;
    if (ig !== undefined) {
      group = this.byIommuGroup.get(ig);
      if (group === undefined) {
        group = new VfioGroup(ig.id, 'iommu', ig);
        this.byIommuGroup.set(ig, group);
        this.groupsById.set(group.id, group);
      }
    } else {
      if (!this.options.enableUnsafeNoiommuMode) return fail('EINVAL', `${vdev.name} has no IOMMU group and vfio.enable_unsafe_noiommu_mode is off`);
      group = this.fakeGroup('no-iommu');
    }
    return this.add(vdev, group);
  }

  /** vfio_register_emulated_iommu_dev(): an emulated device in a private fake group. */
  registerEmulatedIommuDev(vdev: VfioDevice): Result {
    return this.add(vdev, this.fakeGroup('emulated-iommu'));
  }

  /** vfio_unregister_group_dev(): EBUSY while the device is open (Linux would block here). */
  unregister(vdev: VfioDevice): Result {
    if (!vdev.registered) return fail('ENODEV', `${vdev.name} is not registered`);
    if (vdev.openCount > 0) return fail('EBUSY', `${vdev.name} is open by user space: Linux blocks the unbind and signals the device's REQ interrupt until it is closed`);
    const group = vdev.group;
    if (group === null) throw new Error(`${vdev.name} has no group`);
    group.devices.splice(group.devices.indexOf(vdev), 1);
    this.devices.delete(vdev.index);
    vdev.registered = false;
    this.cdevNodes.remove(vdev);
    if (group.devices.length === 0) this.groupNodes.remove(group);
    if (group.devices.length === 0 && group.openedFile === null) this.forget(group);
    return ok();
  }

  // The group is gone: its last device left and no group file is open.
  private forget(group: VfioGroup): void {
    if (this.groupsById.get(group.id) === group) this.groupsById.delete(group.id);
    if (group.iommuGroup !== null && this.byIommuGroup.get(group.iommuGroup) === group) this.byIommuGroup.delete(group.iommuGroup);
  }

  private add(vdev: VfioDevice, group: VfioGroup): Result {
    if (vdev.registered) throw new Error(`${vdev.name} registered twice`);
    let n = 0;
    while (this.devices.has(n)) n++;
    vdev.index = n;
    vdev.group = group;
    vdev.registered = true;
    group.devices.push(vdev);
    this.devices.set(n, vdev);
    if (group.devices.length === 1) this.groupNodes.add(group);
    this.cdevNodes.add(vdev);
    return ok();
  }

  // A fake iommu_group takes the lowest group ID no real or fake group uses.
  private fakeGroup(type: 'emulated-iommu' | 'no-iommu'): VfioGroup {
    const used = new Set<number>([...this.groupsById.keys(), ...this.deps.core.groups.map((g) => g.id)]);
    let id = 0;
    while (used.has(id)) id++;
    const g = new VfioGroup(id, type, null);
    this.groupsById.set(id, g);
    return g;
  }
}
