import type { GroupingRun } from '../../pci/groups/compute.ts';
import type { Algorithm } from '../../pci/groups/types.ts';
import { analyse, effectiveCmdline, runNotes } from '../analyse.ts';
import { EXIT_OK, UsageError } from '../errors.ts';
import { loadInput, type LoadedInput } from '../input.ts';
import { colorsFor, Out, type CliIo } from '../io.ts';
import { headerLines, renderGroups, summaryLine } from '../render/groups-text.ts';
import { groupsJson, jsonText } from '../render/json.ts';
import { renderTree } from '../render/tree.ts';
import { diffJson, renderDiff } from '../render/whatif-text.ts';
import { applyWhatIf } from '../../pci/whatif/apply.ts';
import { diffGroupings } from '../../pci/whatif/diff.ts';
import { parseWhatIf } from '../../pci/whatif/parse.ts';
import { securityNotes } from '../../pci/whatif/security.ts';

export interface GroupsOptions {
  readonly json: boolean;
  readonly explain: boolean;
  readonly cmdline?: string;
  readonly whatIf: readonly string[];
  readonly algorithm: Algorithm;
  readonly host?: string;
  readonly tree: boolean;
  readonly color?: boolean;
}

/** `ioasis groups [FILE|-]`: the groups Linux would form, why, and (with --what-if) what changes. */
export async function groupsCommand(files: readonly string[], opts: GroupsOptions, io: CliIo): Promise<number> {
  if (files.length > 1) throw new UsageError(`groups takes one FILE (got ${files.length}); to check several dumps use --check`);
  const out = new Out(io, colorsFor(io, opts.json ? false : opts.color));
  const input = await loadInput(files[0], opts.host, io);
  const cmdline = effectiveCmdline(input.spec, opts.cmdline);
  const run = analyse(input.spec, input.source, cmdline, opts.algorithm);
  const notes = runNotes(input, run);

  if (opts.whatIf.length > 0) return whatIfReport(input, run, notes, opts, out);

  if (opts.json) {
    io.stdout.write(jsonText(groupsJson(run, notes)));
    return EXIT_OK;
  }
  out.lines(headerLines(run, out.c));
  out.line();
  out.lines(renderGroups(run, out.c, { explain: opts.explain }));
  if (opts.tree) {
    out.line();
    out.lines(renderTree(run, out.c));
  }
  for (const n of notes) out.note(n);
  return EXIT_OK;
}

/**
 * --what-if: apply the changes, group the changed host, and show before -> after. JSON describes the
 * host after the changes, with the changes, the diff and the security notes under "whatIf".
 */
function whatIfReport(input: LoadedInput, before: GroupingRun, beforeNotes: readonly string[], opts: GroupsOptions, out: Out): number {
  const changes = opts.whatIf.map((text) => parseWhatIf(text));
  const result = applyWhatIf({ spec: input.spec, cmdline: before.booted.options.cmdline, algorithm: before.algorithm }, changes);
  const after = analyse(result.spec, input.source, { cmdline: result.cmdline, from: 'flag' }, result.algorithm);
  const diff = diffGroupings(before, after, { renamed: result.renamed });
  const security = securityNotes(before, after, { renamed: result.renamed });
  const notes = [...beforeNotes.filter((n) => !before.notes.includes(n)), ...after.notes];

  if (opts.json) {
    out.io.stdout.write(jsonText({ ...groupsJson(after, notes), whatIf: { applied: [...result.applied], diff: diffJson(diff), security } }));
    return EXIT_OK;
  }
  const c = out.c;
  out.lines(headerLines(before, out.c));
  out.line();
  out.line(c.bold('What if'));
  for (const line of result.applied) out.line(`  + ${line}`);
  out.line();
  out.line(`${c.bold('Groups, before -> after')}${c.dim(` (${summaryLine(before)} -> ${summaryLine(after)})`)}`);
  out.lines(renderDiff(diff, c).map((l) => `  ${l}`));
  if (security.length > 0) {
    out.line();
    out.line(c.bold('Security'));
    for (const s of security) out.line(`  - ${s}`);
  }
  if (opts.explain) {
    out.line();
    out.line(c.bold('After the change'));
    out.lines(renderGroups(after, c, { explain: true }));
  }
  if (opts.tree) {
    out.line();
    out.lines(renderTree(after, c));
  }
  for (const n of notes) out.note(n);
  return EXIT_OK;
}
