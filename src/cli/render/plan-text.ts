import type { AssignmentPlan, PlanMember } from '../../pci/plan/types.ts';
import type { Colors } from '../io.ts';
import { groupPaint } from './palette.ts';

// `ioasis plan`: the group, what must move, what may stay, what the host would lose, and the
// configuration to paste.

function memberLines(m: PlanMember, c: Colors, isTarget: boolean): string[] {
  const name = m.name === undefined ? '' : ` ${m.name}`;
  const head = `  ${isTarget ? c.bold(m.bdf) : m.bdf} [${m.ids}]${name}`;
  const out = [head, `      ${m.why}`];
  if (m.reason !== '') out.push(c.dim(`      in the group because ${m.reason}`));
  return out;
}

export function renderPlan(plan: AssignmentPlan, c: Colors): string[] {
  const t = plan.target;
  const out: string[] = [];
  const name = t.info.name === undefined ? '' : ` ${t.info.name}`;
  const group = plan.group === null ? c.red('no IOMMU group') : groupPaint(c, plan.group.id)(`IOMMU group ${plan.group.id}`);
  const size = plan.group === null ? '' : c.dim(` (${plan.group.devices.length} function${plan.group.devices.length === 1 ? '' : 's'})`);
  out.push(`${c.bold('Assign')} ${t.shortBdf} [${t.ids}]${name}`);
  out.push(`  ${group}${size}`);

  if (plan.mustMove.length > 0) {
    out.push('', c.bold(`Must be bound to vfio-pci (${plan.mustMove.length})`));
    for (const m of plan.mustMove) out.push(...memberLines(m, c, m.device === t));
  }
  if (plan.mayStay.length > 0) {
    out.push('', c.bold(`May stay on the host (${plan.mayStay.length})`));
    for (const m of plan.mayStay) out.push(...memberLines(m, c, m.device === t));
  }
  if (plan.hostCritical.length > 0) {
    out.push('', c.red(c.bold(`Host devices this would take away (${plan.hostCritical.length})`)));
    for (const h of plan.hostCritical) out.push(`  ${c.red(c.bold('!'))} ${c.red(h.text)}`);
  }
  if (plan.warnings.length > 0) {
    out.push('', c.yellow(c.bold('Warnings')));
    for (const w of plan.warnings) out.push(`  ${c.yellow('-')} ${w}`);
  }
  if (plan.recommended !== null) {
    out.push('', `${c.bold('Configuration')} ${c.dim(`(recommended: ${plan.recommended})`)}`);
    const unsafe = plan.recommended === 'driverctl' ? c.yellow('   # not safe here: the IDs are shared, see the warnings') : '';
    out.push(c.dim('  kernel command line (bind by ID at boot):'));
    out.push(`    ${plan.vfioPciIds}${unsafe}`);
    out.push(c.dim('  driverctl (bind by address, persistent):'));
    out.push(...plan.driverctl.map((l) => `    ${l}`));
    out.push(c.dim('  libvirt domain XML, inside <devices>:'));
    out.push(...plan.libvirt.map((x) => `    ${x}`));
  }
  return out;
}
