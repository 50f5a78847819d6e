import { checkObservedGroups, type CheckReport } from '../../pci/groups/check.ts';
import type { Algorithm } from '../../pci/groups/types.ts';
import { attachSource, EXIT_INPUT, EXIT_INTERNAL, EXIT_OK, reportError, reportLines, UsageError } from '../errors.ts';
import { importText, readInput } from '../input.ts';
import { colorsFor, Out, type CliIo } from '../io.ts';
import { renderCheck, verdictOf } from '../render/check-text.ts';

export interface CheckOptions {
  readonly cmdline?: string;
  readonly algorithm: Algorithm;
  readonly color?: boolean;
}

/**
 * `ioasis groups --check FILE...`: compare the model with the `IOMMU group:` lines of each dump. Files
 * are independent: one that cannot be read is reported and the rest are still checked.
 */
export async function checkCommand(files: readonly string[], opts: CheckOptions, io: CliIo): Promise<number> {
  if (files.length === 0) throw new UsageError('--check needs at least one lspci dump (FILE... or - for stdin)');
  const out = new Out(io, colorsFor(io, opts.color));
  let status = EXIT_OK;
  for (const file of files) {
    try {
      if (!(await checkOne(file, opts, io, out))) status = Math.max(status, EXIT_INPUT);
    } catch (err) {
      const report = reportError(err);
      if (report === null) {
        out.error(`${file}: internal error: ${err instanceof Error ? err.message : String(err)}`);
        status = EXIT_INTERNAL;
      } else {
        for (const line of reportLines(report)) io.stderr.write(`${line}\n`);
        status = Math.max(status, EXIT_INPUT);
      }
    }
  }
  return status;
}

async function checkOne(file: string, opts: CheckOptions, io: CliIo, out: Out): Promise<boolean> {
  const { text, source } = await readInput(file, io);
  const input = importText(text, source);
  for (const w of input.warnings) out.note(`${source}: ${w}`);
  if (!input.observedGroups) {
    out.line(`${source}: ${input.spec.functions.length} devices, ${out.c.red('no IOMMU group lines to check against')} (the IOMMU was off, or lspci is older than 3.7)`);
    return false;
  }
  let report: CheckReport;
  let explained: CheckReport | undefined;
  try {
    report = checkObservedGroups(input.spec, opts.cmdline ?? input.spec.kernel.cmdline ?? '', opts.algorithm);
    explained = report.explained;
  } catch (err) {
    throw attachSource(err, source);
  }
  out.lines(renderCheck(source, report, explained, out.c));
  const v = verdictOf(report, explained);
  return v.partition && v.numbering;
}
