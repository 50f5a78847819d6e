import { fileURLToPath } from 'node:url';
import type { Kernel } from '../../kernel/kernel.ts';
import { loadScenarioFile } from '../../scenario/load.ts';
import { stepLines, type Paint } from '../../scenario/narrate.ts';
import { runScenario, runScenarioVariants, type ScenarioRun } from '../../scenario/runner.ts';
import { EXIT_OK } from '../errors.ts';
import { colorsFor, type CliIo } from '../io.ts';
import { headerLines } from '../render/groups-text.ts';
import { renderTree } from '../render/tree.ts';
import { EXIT_SCENARIO_FAILED } from './run.ts';

const SCENARIOS = fileURLToPath(new URL('../../../scenarios/', import.meta.url));

export interface DemoOptions {
  readonly color?: boolean;
}

/**
 * `ioasis demo` (what `npm start` runs): the built-in demo scenario on the default host, then seed 001
 * under each mdev group policy, then a summary whose every line is read from the model after the runs.
 */
export function demoCommand(opts: DemoOptions, io: CliIo): number {
  const c = colorsFor(io, opts.color);
  const paint: Paint = { ok: c.green, bad: c.red, dim: c.dim, bold: c.bold };
  const out = (l = ''): void => { io.stdout.write(`${l}\n`); };
  const demo = loadScenarioFile(`${SCENARIOS}demo.yaml`);
  let pinsBeforeExit = 0;
  let attachedBeforeExit = 0;
  const run = runScenario(demo, {
    baseDir: SCENARIOS,
    onStep: (r, state) => {
      // Just before the VMs exit, note what they hold, to show that teardown releases it.
      if (r.do === 'isolation-check' && pinsBeforeExit === 0) {
        pinsBeforeExit = pinnedPages(state.kernel);
        attachedBeforeExit = ownedGroups(state.kernel);
      }
    },
  });
  const k = run.kernel;

  out(c.bold('ioasis demo: the Linux IOMMU stack, simulated'));
  out();
  out(c.bold('1. Boot: the host, its IOMMU groups and topology'));
  for (const l of headerLines(k.core.run, c)) out(l);
  out();
  for (const l of renderTree(k.core.run, c)) out(l);
  out();
  out(c.bold('2. Two VMs (scenarios/demo.yaml)'));
  for (const l of demo.description?.trim().split('\n') ?? []) out(c.dim(`  ${l}`));
  for (const l of run.setup) out(`  ${l}`);
  for (const r of run.steps) for (const l of stepLines(r, paint)) out(l);
  out();

  out(c.bold('3. Seed 001: can an IOMMU-backed mdev split an IOMMU group? (scenarios/seed-001-mdev-group.yaml)'));
  const seed = runScenarioVariants(loadScenarioFile(`${SCENARIOS}seed-001-mdev-group.yaml`), { baseDir: SCENARIOS });
  for (const v of seed) {
    out(`  ${c.bold(v.variant ?? '')}${v.ok ? '' : c.red(' (expectations not met)')}`);
    for (const r of v.steps.filter((s) => s.do === 'device-bind' || s.do === 'device-attach' || s.do === 'isolation-check').slice(-4, -1)) {
      for (const l of stepLines(r, paint)) out(`  ${l}`);
    }
  }
  out();

  const all = [run, ...seed];
  const ok = all.every((r) => r.ok);
  out(c.bold('Summary (read from the model after the runs)'));
  const rows: [string, string][] = [
    ['host', `${k.booted.host.name}: ${k.booted.host.topology.devices().length} functions, ${k.core.groups.length} IOMMU groups, ${k.machine.units.length} IOMMU units`],
    ['scenario steps', `${count(all, (r) => r.met)} of ${count(all, () => true)} met their expectation; ${count(all, (r) => r.breaches.length > 0)} broke an invariant`],
    ['refused as Linux refuses', refusals(run)],
    ['device DMA', dmaLine(run)],
    ['IO page faults', `${count([run], (r) => r.do === 'fault-respond' && r.outcome.ok)} answered through the fault fd, ${count([run], (r) => r.do === 'dma' && r.outcome.status === 'pending')} device transfer(s) waited for them and completed`],
    ['seed 001', seed.map((v) => `${v.variant ?? ''}: ${seedVerdict(v)}`).join('; ')],
    ['before exit', `${pinsBeforeExit} pinned pages, ${attachedBeforeExit} IOMMU groups owned by user space`],
    ['after teardown', `${pinnedPages(k)} pinned pages, ${ownedGroups(k)} groups owned, ${k.core.groups.filter((g) => g.domain === g.defaultDomain).length} of ${k.core.groups.length} groups back on their default domain`],
  ];
  const w = Math.max(...rows.map(([a]) => a.length));
  for (const [a, b] of rows) out(`  ${a.padEnd(w)}  ${b}`);
  out();
  out(ok ? c.green('Every step above was executed by the model; every expectation was met.') : c.red('Some expectations were not met (see ✗ above).'));
  return ok ? EXIT_OK : EXIT_SCENARIO_FAILED;
}

function count(runs: readonly ScenarioRun[], pred: (r: ScenarioRun['steps'][number]) => boolean): number {
  return runs.reduce((n, run) => n + run.steps.filter(pred).length, 0);
}

function pinnedPages(k: Kernel): number {
  let n = 0;
  k.frames.forEachAllocated((pfn) => { n += k.memory.pinCount(pfn); });
  return n;
}

function ownedGroups(k: Kernel): number {
  return k.core.groups.filter((g) => g.owner !== null).length;
}

function refusals(run: ScenarioRun): string {
  const r = run.steps.filter((s) => !s.outcome.ok && s.met && s.outcome.errno !== undefined);
  return r.map((s) => `${s.outcome.errno} (${s.do} step ${s.index + 1})`).join(', ') || 'none';
}

function dmaLine(run: ScenarioRun): string {
  const dma = run.steps.filter((s) => s.do === 'dma' || s.do === 'mdev-dma');
  const by = (st: string): number => dma.filter((s) => s.outcome.status === st || (st === 'ok' && s.outcome.ok && s.outcome.status === undefined)).length;
  return `${by('ok')} transfers landed in guest memory, ${by('fault')} faulted in the IOMMU (unmapped IOVA), ${by('pending')} waited on a page request`;
}

function seedVerdict(v: ScenarioRun): string {
  const refused = v.steps.find((s) => (s.do === 'device-bind' || s.do === 'device-attach') && !s.outcome.ok && s.outcome.errno !== 'EINVAL');
  const breach = v.steps.find((s) => s.do === 'isolation-check' && s.outcome.status === 'breach');
  return `${refused !== undefined ? `refused with ${refused.outcome.errno}` : 'B got the device'}${breach !== undefined ? ', isolation breach reported' : ''}`;
}
