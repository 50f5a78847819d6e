import type { PciDev } from '../../pci/dev.ts';
import type { CheckReport } from '../../pci/groups/check.ts';
import type { Colors } from '../io.ts';
import { stepOf } from './groups-text.ts';

// `groups --check`: one summary line per dump, then what disagrees and the model's reasons.

/** Numbering mismatches listed one by one before "and N more". */
const MAX_NUMBERING = 6;

/** Whether the checker found a DMAR unit order that reproduces the observed numbering exactly. */
export function numberingReproduced(report: CheckReport): boolean {
  return report.numberingReproduced;
}

export interface CheckVerdict {
  /** Partition agrees (possibly under an explaining command line). */
  readonly partition: boolean;
  /** Numbering agrees, or is reproduced once the invisible DMAR unit order is inferred. */
  readonly numbering: boolean;
}

/**
 * `report` is the plain check; `explained` is the check repeated under report.explainingCmdline
 * (when there is one), whose numbering is the one that counts.
 */
export function verdictOf(report: CheckReport, explained?: CheckReport): CheckVerdict {
  const r = explained ?? report;
  const partition = report.partitionAgrees || (explained !== undefined && explained.partitionAgrees);
  return { partition, numbering: r.numberingAgrees || (r.partitionAgrees && numberingReproduced(r)) };
}

const list = (devs: readonly PciDev[]): string => devs.map((d) => d.shortBdf).join(' ');

export function renderCheck(file: string, report: CheckReport, explained: CheckReport | undefined, c: Colors): string[] {
  const v = verdictOf(report, explained);
  const r = explained ?? report;
  const total = report.run.booted.host.topology.size;
  const partition = v.partition
    ? c.green(explained === undefined ? 'partition agrees' : `partition agrees with ${report.explainingCmdline ?? ''}`)
    : c.red(`partition disagrees (${report.mismatches.length} group${report.mismatches.length === 1 ? '' : 's'}${report.coverageMismatches.length > 0 ? `, ${report.coverageMismatches.length} coverage` : ''})`);
  const numbering = !r.partitionAgrees ? c.dim('numbering not compared')
    : r.numberingAgrees ? c.green('numbering agrees')
      : v.numbering ? c.yellow('numbering agrees once DMAR units are inferred')
        : c.red(`numbering disagrees (${r.numberingMismatches.length} function${r.numberingMismatches.length === 1 ? '' : 's'})`);
  const out = [`${file}: ${total} devices, ${partition}, ${numbering}`];

  if (report.explainingCmdline !== undefined && explained !== undefined) {
    out.push(`  observed groups match with ${report.explainingCmdline}, which the dump does not record: this kernel was booted with it`);
  }
  // The disagreements of the plain run, with the model's reasons, when nothing explains them.
  if (!v.partition) {
    for (const m of report.mismatches) {
      out.push(`  observed group ${m.observedId}: ${list(m.observed)}`);
      if (m.computed.length === 0) out.push(c.dim('    the model puts none of these in a group'));
      for (const g of m.computed) {
        out.push(`    model group ${g.id}: ${list(g.devices)}`);
        for (const d of g.devices) {
          const step = stepOf(g, d);
          if (step !== undefined) out.push(c.dim(`      ${step.text}`));
        }
      }
    }
    for (const cm of report.coverageMismatches) {
      const g = report.run.groupOf(cm.device);
      const observed = cm.device.info.observedGroup;
      const what = cm.observed ? `observed in group ${observed ?? '?'}` : `observed without a group, model group ${g?.id ?? '?'}`;
      out.push(`  coverage: ${cm.device.shortBdf} ${what}: ${cm.reason}`);
    }
  }
  if (r.partitionAgrees && !r.numberingAgrees) {
    const shown = r.numberingMismatches.slice(0, MAX_NUMBERING).map(([d, obs, mine]) => `${d.shortBdf} observed ${obs}, model ${mine}`);
    const more = r.numberingMismatches.length > MAX_NUMBERING ? `, and ${r.numberingMismatches.length - MAX_NUMBERING} more` : '';
    out.push(`  numbering: ${shown.join('; ')}${more}`);
  }
  if (r.numberingNote !== undefined) out.push(c.dim(`  ${r.numberingNote}`));
  return out;
}
