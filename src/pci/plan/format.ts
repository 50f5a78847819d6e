import type { AssignmentPlan, PlanMember } from './types.ts';

/** The plan as lines a person reads at a terminal. */
export function formatPlan(plan: AssignmentPlan): string[] {
  const t = plan.target;
  const lines = [`${t.shortBdf} [${t.ids}]${t.info.name === undefined ? '' : ` ${t.info.name}`}: ${plan.group === null ? 'no IOMMU group' : `IOMMU group ${plan.group.id}`}`];
  const member = (m: PlanMember): string[] => [
    `  ${m.bdf} [${m.ids}]${m.name === undefined ? '' : ` ${m.name}`}: ${m.why}`,
    ...(m.reason === '' ? [] : [`      in the group because ${m.reason}`]),
  ];
  if (plan.mustMove.length > 0) lines.push('Must be bound to vfio-pci:', ...plan.mustMove.flatMap(member));
  if (plan.mayStay.length > 0) lines.push('May stay with the host:', ...plan.mayStay.flatMap(member));
  if (plan.hostCritical.length > 0) lines.push('Host devices this would take away:', ...plan.hostCritical.map((h) => `  ! ${h.text}`));
  if (plan.warnings.length > 0) lines.push('Warnings:', ...plan.warnings.map((w) => `  - ${w}`));
  if (plan.recommended !== null) {
    lines.push(`Configuration (recommended: ${plan.recommended}):`);
    lines.push(`  kernel command line: ${plan.vfioPciIds}${plan.recommended === 'driverctl' ? '   (not safe here: see the warnings)' : ''}`);
    lines.push(...plan.driverctl.map((l) => `  ${l}`));
    lines.push('  libvirt domain XML, inside <devices>:', ...plan.libvirt.map((x) => `    ${x}`));
  }
  return lines;
}
