import { bootHost } from '../boot.ts';
import { computeGroups, type GroupingRun } from '../groups/compute.ts';
import { isAcsOverrideWord, removeOptions } from './spec-edit.ts';

/**
 * The same host grouped without pcie_acs_override: what the hardware isolates, as opposed to what the
 * override makes Linux believe. Null when the run has no override (it already shows the hardware).
 */
export function groupsWithoutOverride(run: GroupingRun): GroupingRun | null {
  if (run.booted.options.acsOverride === null) return null;
  const { cmdline } = removeOptions(run.booted.options.cmdline, isAcsOverrideWord);
  // The same DMAR units and device sort, so probe order (which mainline grouping depends on) is the same.
  const units = run.plan.units.length > 0 ? run.plan.units : undefined;
  return computeGroups(bootHost(run.booted.host.spec, cmdline), run.algorithm, units, run.plan.sort.order);
}
