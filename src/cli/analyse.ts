import { bootHost } from '../pci/boot.ts';
import { computeGroups, type GroupingRun } from '../pci/groups/compute.ts';
import type { Algorithm } from '../pci/groups/types.ts';
import { CmdlineError } from '../pci/kernel-options.ts';
import type { HostSpec } from '../pci/spec.ts';
import { attachSource, InputError } from './errors.ts';
import type { LoadedInput } from './input.ts';

/** The kernel command line to model: --cmdline when given, else the one the host file records. */
export function effectiveCmdline(spec: HostSpec, flag: string | undefined): { cmdline: string; from: 'flag' | 'host' | 'none' } {
  if (flag !== undefined) return { cmdline: flag, from: 'flag' };
  const recorded = spec.kernel.cmdline;
  return recorded === undefined || recorded.trim() === '' ? { cmdline: '', from: 'none' } : { cmdline: recorded, from: 'host' };
}

/** Boot a host under a command line and group it; errors come back located in the input. */
export function analyse(spec: HostSpec, source: string, cmdline: { cmdline: string; from: 'flag' | 'host' | 'none' }, algorithm: Algorithm): GroupingRun {
  try {
    return computeGroups(bootHost(spec, cmdline.cmdline), algorithm);
  } catch (err) {
    if (err instanceof CmdlineError && cmdline.from === 'host') {
      throw new InputError(`kernel.cmdline: ${err.message}`, source);
    }
    throw attachSource(err, source);
  }
}

/** Options passthrough guides add that are read correctly and simply do not affect groups. */
const ROUTINE_OPTIONS = /^(?:(?:intel|amd)_iommu=on(?:,.*)?|iommu=pt|vfio[-_]pci\..*|pci=(?:realloc|assign-busses|nommconf|noaer)(?:=.*)?)$/;

/** Everything a person should be told about a run besides the groups, in order. */
export function runNotes(input: LoadedInput, run: GroupingRun): string[] {
  const notes = [...input.warnings, ...run.booted.host.topology.warnings];
  // Only options that look as if they were meant to change grouping: a misspelt override should not pass silently.
  const ignored = run.booted.options.ignored.filter((w) => /acs|iommu|pci/i.test(w) && !ROUTINE_OPTIONS.test(w));
  if (ignored.length > 0) notes.push(`command-line options that do not change IOMMU groups, ignored: ${ignored.join(' ')}`);
  notes.push(...run.notes);
  return notes;
}
