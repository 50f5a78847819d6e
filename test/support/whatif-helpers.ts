import { bootHost } from '../../src/pci/boot.ts';
import { computeGroups, type GroupingRun } from '../../src/pci/groups/compute.ts';
import type { Algorithm } from '../../src/pci/groups/types.ts';
import { hostSpecSchema, type HostSpec, type HostSpecInput } from '../../src/pci/spec.ts';
import { applyWhatIf } from '../../src/pci/whatif/apply.ts';
import { diffGroupings, type GroupDiff } from '../../src/pci/whatif/diff.ts';
import { parseWhatIf } from '../../src/pci/whatif/parse.ts';
import { securityNotes } from '../../src/pci/whatif/security.ts';
import type { WhatIfResult } from '../../src/pci/whatif/types.ts';

// Run what-ifs end to end on synthetic hosts: parse, apply, group before and after, diff, explain.

export const specOf = (input: HostSpecInput): HostSpec => hostSpecSchema.parse(input);

export function runOf(spec: HostSpec | HostSpecInput, cmdline = '', algorithm: Algorithm = 'linux'): GroupingRun {
  return computeGroups(bootHost(spec, cmdline), algorithm);
}

export interface WhatIfOutcome {
  readonly before: GroupingRun;
  readonly after: GroupingRun;
  readonly result: WhatIfResult;
  readonly diff: GroupDiff;
  readonly notes: string[];
}

export function whatIf(input: HostSpecInput, changes: string[], cmdline = '', algorithm: Algorithm = 'linux'): WhatIfOutcome {
  const spec = specOf(input);
  const before = runOf(spec, cmdline, algorithm);
  const result = applyWhatIf({ spec, cmdline, algorithm }, changes.map(parseWhatIf));
  const after = runOf(result.spec, result.cmdline, result.algorithm);
  return {
    before, after, result,
    diff: diffGroupings(before, after, { renamed: result.renamed }),
    notes: securityNotes(before, after, { renamed: result.renamed }),
  };
}

/** Group members as short BDF lists, by group ID. */
export const membersOf = (run: GroupingRun): string[][] => run.groups.map((g) => g.devices.map((d) => d.shortBdf));

/** Whether the proposed 2025 algorithm is available yet (another engineer is writing it). */
export function proposedAvailable(): boolean {
  try {
    runOf({ name: 'probe', functions: [{ address: '00:00.0', id: '8086:0000', class: '0600' }] }, '', 'proposed-2025');
    return true;
  } catch {
    return false;
  }
}
