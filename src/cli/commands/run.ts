import { dirname } from 'node:path';
import { loadScenarioText } from '../../scenario/load.ts';
import { narrative, traceLine, type Paint } from '../../scenario/narrate.ts';
import { runScenarioVariants } from '../../scenario/runner.ts';
import { EXIT_OK } from '../errors.ts';
import { readInput } from '../input.ts';
import { colorsFor, type CliIo } from '../io.ts';

/** Exit status of a run whose expectations or invariants failed. */
export const EXIT_SCENARIO_FAILED = 1;

export interface RunCommandOptions {
  readonly json: boolean;
  readonly color?: boolean;
}

/**
 * `ioasis run FILE`: play a scenario and print its narrative (or, with --json, one JSON line per step and
 * a final summary line). Exit 1 when an expectation is not met or an invariant breaks.
 */
export async function runCommand(file: string, opts: RunCommandOptions, io: CliIo): Promise<number> {
  const { text, source } = await readInput(file, io);
  const scenario = loadScenarioText(text, source);
  const c = colorsFor(io, opts.json ? false : opts.color);
  const paint: Paint = { ok: c.green, bad: c.red, dim: c.dim, bold: c.bold };
  // Progress on a terminal (the narrative comes at the end of each variant); JSON lines as they happen.
  const total = scenario.steps.length;
  const progress = !opts.json && io.isTTY;
  const runs = runScenarioVariants(scenario, {
    baseDir: file === '-' ? '.' : dirname(file),
    onStep: (r) => {
      if (opts.json) io.stdout.write(`${traceLine(r)}\n`);
      else if (progress) io.stderr.write(`\r${scenario.scenario}: step ${r.index + 1}/${total}\x1b[K`);
    },
  });
  if (progress) io.stderr.write('\r\x1b[K');
  runs.forEach((run, i) => {
    if (opts.json) {
      io.stdout.write(`${JSON.stringify({ scenario: scenario.scenario, variant: run.variant, ok: run.ok, steps: run.steps.length, unmet: run.steps.filter((r) => !r.met).length })}\n`);
    } else {
      if (i > 0) io.stdout.write('\n');
      for (const l of narrative(run, paint)) io.stdout.write(`${l}\n`);
    }
  });
  return runs.every((r) => r.ok) ? EXIT_OK : EXIT_SCENARIO_FAILED;
}
