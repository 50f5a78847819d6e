import type { PciDev } from '../dev.ts';
import type { BootedHost } from '../boot.ts';

/** 'linux': mainline pci_device_group() (v3.x to v6.17). 'proposed-2025': the unmerged 2025 rework. */
export type Algorithm = 'linux' | 'proposed-2025';

/** Why a function landed in its group: the rule that fired, in the algorithm's own order. */
export type RuleId =
  | 'new-group'              // nothing joined it to an existing group: a fresh ID
  | 'dma-alias'              // pci_for_each_dma_alias() reached a device that already had a group
  | 'alias-pivot'            // its requests carry a bridge's requester ID, so it is grouped as that bridge
  | 'upstream-not-isolated'  // a bridge above it fails the ACS path test: it joins that bridge's group
  | 'same-bus-alias'         // a same-bus DMA alias (quirk or firmware) already has a group
  | 'multifunction'          // a sibling function of its slot lacks ACS isolation and has a group
  | 'virtual-function'       // (context) an SR-IOV VF, probed after boot
  | 'bus-not-isolated'       // proposed-2025: its bus is not isolated, the bus's group captures it
  | 'function-group'         // proposed-2025: same-slot functions that may reach each other
  | 'real-dma-dev';          // the device issues DMA as another device (VMD-style)

/** One step of a group's story: `device` joined (or founded) the group by `rule`, through `via`. */
export interface GroupStep {
  readonly rule: RuleId;
  readonly device: PciDev;
  /** The device whose group or property made the rule fire. */
  readonly via?: PciDev;
  /** One line a person understands: "05:00.1 joins 03:08.0: downstream port 03:08.0 has no ACS capability". */
  readonly text: string;
}

export interface IommuGroup {
  /** The number in /sys/kernel/iommu_groups/N: the lowest free ID when the group was allocated. */
  readonly id: number;
  /** Members in probe order. */
  readonly devices: PciDev[];
  /** Why each member is here, in probe order; the first step founds the group. */
  readonly steps: GroupStep[];
  /** proposed-2025: everything downstream of a member shares this group. */
  nonIsolated: boolean;
}

export interface UncoveredDevice {
  readonly device: PciDev;
  /** Why no IOMMU group: IOMMU off, the IOMMU's own function, outside every DMAR unit, ... */
  readonly reason: string;
}

export interface Grouping {
  readonly algorithm: Algorithm;
  readonly booted: BootedHost;
  /** Groups by ascending ID. */
  readonly groups: readonly IommuGroup[];
  readonly uncovered: readonly UncoveredDevice[];
  /** Things the kernel would log or a person should know about this run (overrides in effect, ...). */
  readonly notes: readonly string[];
  groupOf(dev: PciDev): IommuGroup | undefined;
}
