import type { PciDev } from '../dev.ts';
import type { IommuGroup } from '../groups/types.ts';

/** A target the planner cannot resolve: no match, or several matches in different groups. */
export class PlanError extends Error {}

/** One member of the target's group, and what has to happen to it for the group to be viable. */
export interface PlanMember {
  readonly device: PciDev;
  /** "01:00.0" (the domain only when it is not 0). */
  readonly bdf: string;
  /** "vvvv:dddd" */
  readonly ids: string;
  readonly name?: string;
  /** The driver bound on the source machine, when the host description says. */
  readonly driver?: string;
  /** 'vfio-pci': must be bound to vfio-pci; 'stay': may keep its host driver (a bridge on pcieport). */
  readonly action: 'vfio-pci' | 'stay';
  /** Why it must move or may stay. */
  readonly why: string;
  /** Why it is in the group: the grouping step that put it there. */
  readonly reason: string;
}

export type HostCriticalKind = 'boot-drive' | 'boot-storage' | 'storage' | 'network' | 'console-gpu' | 'usb';

/** A device the host probably needs that the assignment would take away from it. */
export interface HostCritical {
  readonly device: PciDev;
  readonly kind: HostCriticalKind;
  readonly text: string;
}

export interface AssignmentPlan {
  readonly target: PciDev;
  /** Other functions the target text matched; they are all in the target's group. */
  readonly alsoMatched: readonly PciDev[];
  /** The target's group; null when it has none (IOMMU off, not covered). */
  readonly group: IommuGroup | null;
  /** Every member of the group, in probe order. */
  readonly members: readonly PlanMember[];
  /** Functions that must be bound to vfio-pci: every endpoint of the group. */
  readonly mustMove: readonly PlanMember[];
  /** Bridges that may stay on pcieport (driver_managed_dma) or unbound. */
  readonly mayStay: readonly PlanMember[];
  readonly hostCritical: readonly HostCritical[];
  readonly warnings: readonly string[];
  /** How to bind: by ID on the kernel command line, or by address with driverctl (IDs are ambiguous). */
  readonly recommended: 'vfio-pci.ids' | 'driverctl' | null;
  /** "vfio-pci.ids=10de:1b80,10de:10f0", or '' when nothing must move. */
  readonly vfioPciIds: string;
  /** "driverctl set-override 0000:01:00.0 vfio-pci", one per must-move function. */
  readonly driverctl: readonly string[];
  /** A libvirt <hostdev> element per must-move function. */
  readonly libvirt: readonly string[];
}
