import type { PciDev } from '../../pci/dev.ts';
import type { GroupingRun } from '../../pci/groups/compute.ts';
import type { GroupStep, IommuGroup } from '../../pci/groups/types.ts';
import type { Colors } from '../io.ts';
import { deviceLine } from './device.ts';
import { groupPaint } from './palette.ts';

// The group listing, as the shell loop everyone copies prints it, plus "why" lines on request.

export interface GroupsTextOptions {
  /** Under each device, the step that put it in its group. */
  readonly explain: boolean;
}

/** The step that placed `dev` in `group`. */
export function stepOf(group: IommuGroup, dev: PciDev): GroupStep | undefined {
  return group.steps.find((s) => s.device === dev);
}

export function renderGroupBlock(group: IommuGroup, c: Colors, opts: GroupsTextOptions): string[] {
  const paint = groupPaint(c, group.id);
  const extra = group.nonIsolated ? c.dim(' (bus not isolated: everything below it shares this group)') : '';
  const title = paint(c.bold(`IOMMU group ${group.id}`));
  const only = group.devices[0];
  // A group of one reads best on one line, as the familiar shell loop prints it.
  if (!opts.explain && group.devices.length === 1 && only !== undefined) return [`${title}  ${deviceLine(only)}${extra}`];
  const out = [title + extra];
  for (const dev of group.devices) {
    out.push(`  ${deviceLine(dev)}`);
    if (opts.explain) {
      const step = stepOf(group, dev);
      if (step !== undefined) out.push(c.dim(`      why: ${step.text}`));
    }
  }
  return out;
}

/** Every group in ID order, then the functions without a group and why. */
export function renderGroups(run: GroupingRun, c: Colors, opts: GroupsTextOptions): string[] {
  const out: string[] = [];
  for (const group of run.groups) out.push(...renderGroupBlock(group, c, opts));
  if (run.uncovered.length > 0) {
    out.push(c.bold('Not in any IOMMU group'));
    for (const u of run.uncovered) out.push(`  ${deviceLine(u.device)} ${c.dim(`(${u.reason})`)}`);
  }
  return out;
}

/** "12 groups, 31 functions (2 without a group)". */
export function summaryLine(run: GroupingRun): string {
  const covered = run.groups.reduce((n, g) => n + g.devices.length, 0);
  const total = covered + run.uncovered.length;
  const shared = run.groups.filter((g) => g.devices.length > 1).length;
  const parts = [`${run.groups.length} IOMMU group${run.groups.length === 1 ? '' : 's'}`, `${total} function${total === 1 ? '' : 's'}`];
  if (shared > 0) parts.push(`${shared} shared`);
  if (run.uncovered.length > 0) parts.push(`${run.uncovered.length} without a group`);
  return parts.join(', ');
}

/** Two lines: which host, and under which algorithm and command line, with the counts. */
export function headerLines(run: GroupingRun, c: Colors): string[] {
  const host = run.booted.host;
  const desc = host.spec.description === undefined ? '' : c.dim(` (${host.spec.description})`);
  const cmd = run.booted.options.cmdline === '' ? 'no kernel options' : `cmdline "${run.booted.options.cmdline}"`;
  const iommu = host.platform.iommu === 'none' ? 'no IOMMU' : `${host.platform.iommu} IOMMU`;
  return [
    `${c.bold(host.name)}${desc}`,
    c.dim(`${summaryLine(run)}; ${iommu}, ${run.algorithm} algorithm, ${cmd}`),
  ];
}
