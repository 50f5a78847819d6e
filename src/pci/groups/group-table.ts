import type { PciDev } from '../dev.ts';
import type { GroupStep, IommuGroup } from './types.ts';

/**
 * The iommu_group registry during probe: an IDA handing out the lowest free ID (group IDs are never
 * freed during boot-time probe, so it is a counter here), and each device's group.
 */
export class GroupTable {
  private readonly byDev = new Map<PciDev, IommuGroup>();
  private readonly list: IommuGroup[] = [];
  private nextId = 0;

  groupOf(dev: PciDev): IommuGroup | undefined { return this.byDev.get(dev); }

  /** iommu_group_alloc(): a new group whose first member is `step.device`. */
  alloc(step: GroupStep): IommuGroup {
    const group: IommuGroup = { id: this.nextId++, devices: [step.device], steps: [step], nonIsolated: false };
    this.list.push(group);
    this.byDev.set(step.device, group);
    return group;
  }

  /** iommu_group_add_device(): `step.device` joins `group`. */
  join(group: IommuGroup, step: GroupStep): void {
    group.devices.push(step.device);
    group.steps.push(step);
    this.byDev.set(step.device, group);
  }

  groups(): readonly IommuGroup[] { return this.list; }
}
