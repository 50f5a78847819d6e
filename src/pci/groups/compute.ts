import type { BootedHost } from '../boot.ts';
import type { PciDev } from '../dev.ts';
import type { AcsContext } from './acs.ts';
import { GroupTable } from './group-table.ts';
import { pciDeviceGroupLinux } from './linux.ts';
import { planProbe, type PciSort, type ProbePlan, type ProbeUnit } from './probe-order.ts';
import { groupProposed2025 } from './proposed-2025.ts';
import type { Algorithm, Grouping, UncoveredDevice } from './types.ts';

export interface GroupingRun extends Grouping {
  readonly plan: ProbePlan;
}

/** The ACS context a booted host gives the predicates: AMD IVRS, the override option, the kernel's quirk table. */
export function acsContextOf(booted: BootedHost): AcsContext {
  return { amdIvrs: booted.host.platform.iommu === 'amd', override: booted.options.acsOverride, kernelVersion: booted.host.spec.kernel.version ?? null };
}

/**
 * Probe every covered device in order and form IOMMU groups with the chosen algorithm. The booted host
 * is read, not changed: the same boot can be grouped by both algorithms.
 */
export function computeGroups(booted: BootedHost, algorithm: Algorithm = 'linux', units?: readonly ProbeUnit[], sort?: PciSort['order']): GroupingRun {
  const plan = planProbe(booted, units, sort);
  const table = new GroupTable();
  const ctx = acsContextOf(booted);
  const notes: string[] = [];
  const uncovered: UncoveredDevice[] = [...plan.uncovered];
  if (algorithm === 'linux') {
    for (const dev of plan.order) pciDeviceGroupLinux(dev, table, ctx);
  } else {
    // The proposed code defers a device until its upstream bridge has a group; some never get one.
    const report = groupProposed2025(plan.order, table, ctx);
    uncovered.push(...report.unresolved);
    for (const d of report.deferred) notes.push(`${d.device.shortBdf}: probe deferred until ${d.waitedFor.shortBdf} had a group`);
  }
  const o = booted.options;
  if (o.acsOverride !== null) {
    const parts = [o.acsOverride.downstream ? 'downstream' : '', o.acsOverride.multifunction ? 'multifunction' : '',
      ...o.acsOverride.ids.map((id) => `id:${id.vendor.toString(16).padStart(4, '0')}:${id.device.toString(16).padStart(4, '0')}`)].filter((p) => p !== '');
    notes.push(`pcie_acs_override=${parts.join(',')} is in effect: Linux believes ports without ACS isolate, the hardware does not`);
  }
  if (o.configAcs.length > 0 || o.disableAcsRedir.length > 0) {
    notes.push(booted.host.spec.acsCtl === 'post-boot'
      ? 'config_acs/disable_acs_redir start from the ACS Control values in the dump; the firmware values Linux starts from are not visible after boot'
      : 'config_acs/disable_acs_redir applied to the firmware ACS Control values');
  }
  const groups = [...table.groups()].sort((a, b) => a.id - b.id);
  return {
    algorithm, booted, groups, uncovered, notes, plan,
    groupOf: (dev: PciDev) => table.groupOf(dev),
  };
}
