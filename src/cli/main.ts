import { Command, CommanderError, Option } from 'commander';
import pkg from '../../package.json' with { type: 'json' };
import type { Algorithm } from '../pci/groups/types.ts';
import { WHATIF_SYNTAX } from '../pci/whatif/parse.ts';
import { checkCommand } from './commands/check.ts';
import { groupsCommand } from './commands/groups.ts';
import { planCommand } from './commands/plan.ts';
import { sysfsCommand } from './commands/sysfs.ts';
import { runCommand } from './commands/run.ts';
import { demoCommand } from './commands/demo.ts';
import { EXIT_INTERNAL, EXIT_OK, EXIT_USAGE, reportError, reportLines, UsageError } from './errors.ts';
import { resolveIo, type CliIo } from './io.ts';

export type { CliIo, TextSink, TextSource } from './io.ts';

const ALGORITHMS: readonly Algorithm[] = ['linux', 'proposed-2025'];

const EXAMPLES = `
Examples:
  $ ioasis demo                                     two VMs, device DMA, IO page faults, seed 001, a summary
  $ ioasis groups                                   groups of the built-in default host
  $ sudo lspci -vvnn > host.txt; ioasis groups host.txt
  $ sudo lspci -vvnn | ioasis groups - --explain    why each device is in its group
  $ ioasis groups host.txt --json                   machine-readable, full dddd:bb:dd.f addresses
  $ ioasis groups host.txt --cmdline "pcie_acs_override=downstream,multifunction"
  $ ioasis groups host.txt --what-if "<change>"     before/after diff and security notes
  $ ioasis groups host.txt --algorithm proposed-2025
  $ ioasis groups --check dumps/*.txt               compare with the dumps' own IOMMU group lines
  $ ioasis plan 01:00.0 host.txt                    what passing 01:00.0 through takes
  $ ioasis sysfs /sys/kernel/iommu_groups           the sysfs tree Linux would show for the host
  $ ioasis run scenarios/seed-000-pasid.yaml        play a scenario: each step, its result, the errno reasons

Exit status: 0 fine, 1 bad input or a disagreement, 2 bad usage, 70 internal error.`;

type GroupsFlags = {
  json?: boolean; explain?: boolean; cmdline?: string; whatIf?: string[]; algorithm: Algorithm;
  host?: string; tree?: boolean; color?: boolean; check?: boolean;
};
type PlanFlags = { host?: string; cmdline?: string; json?: boolean; algorithm: Algorithm; color?: boolean };

const collect = (value: string, previous: string[] | undefined): string[] => [...(previous ?? []), value];

function algorithmOption(): Option {
  return new Option('--algorithm <name>', 'grouping algorithm: mainline Linux, or the proposed 2025 rework').choices(ALGORITHMS).default('linux');
}

function colorOptions(cmd: Command): Command {
  return cmd
    .option('--color', 'colour the output even when stdout is not a terminal')
    .option('--no-color', 'never colour the output (also: NO_COLOR=1)');
}

/**
 * The CLI. Returns the exit status; never throws and never calls process.exit. `io` replaces the
 * process streams (tests pass buffers and a string for stdin).
 */
export async function main(argv: readonly string[], ioOverrides: Partial<CliIo> = {}): Promise<number> {
  const io = resolveIo(ioOverrides);
  let status = EXIT_OK;
  const program = buildProgram(io, (code) => { status = code; });
  try {
    await program.parseAsync([...argv], { from: 'user' });
    return status;
  } catch (err) {
    if (err instanceof CommanderError) {
      // Help and version are successes; commander already printed its usage error.
      if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version') return EXIT_OK;
      return EXIT_USAGE;
    }
    const report = reportError(err);
    if (report !== null) {
      for (const line of reportLines(report)) io.stderr.write(`${line}\n`);
      return report.exitCode;
    }
    const text = err instanceof Error ? err.message : String(err);
    io.stderr.write(`ioasis: internal error: ${text}\n`);
    if (io.env.IOASIS_DEBUG !== undefined && err instanceof Error && err.stack !== undefined) io.stderr.write(`${err.stack}\n`);
    return EXIT_INTERNAL;
  }
}

function buildProgram(io: CliIo, setStatus: (code: number) => void): Command {
  const program = new Command('ioasis')
    .description('Linux\'s user-space IOMMU stack, simulated: IOMMU groups from lspci dumps, /dev/iommu and VFIO scenarios, sysfs')
    .version(pkg.version)
    .exitOverride()
    .configureOutput({
      writeOut: (s) => { io.stdout.write(s); },
      writeErr: (s) => { io.stderr.write(s); },
      outputError: (s, write) => { write(`ioasis: ${s.replace(/^error: /, '')}`); },
      getOutHasColors: () => false,
      getErrHasColors: () => false,
    })
    .showSuggestionAfterError()
    .addHelpText('after', EXAMPLES);

  colorOptions(program.command('groups')
    .description('the IOMMU groups Linux would form, with the reason for each, and what changes')
    .argument('[FILE...]', 'lspci -vvnn output, a .yaml/.yml/.json host file, or - for stdin (default: --host)')
    .option('--json', 'print JSON (full dddd:bb:dd.f addresses)')
    .option('--explain', 'under each device, why it is in its group')
    .option('--cmdline <options>', 'kernel command line to model, e.g. "pcie_acs_override=downstream"')
    .option('--what-if <change>', 'apply a change and show before/after (repeatable; see below)', collect)
    .addOption(algorithmOption())
    .option('--host <name>', 'a built-in host (when no FILE is given; default "default")')
    .option('--tree', 'show the topology tree (default)')
    .option('--no-tree', 'leave the topology tree out')
    .option('--check', 'compare the model with each dump\'s own "IOMMU group:" lines (FILE...)')
    .addHelpText('after', `
--what-if CHANGE (repeatable, applied in order):
${WHATIF_SYNTAX.split('\n').map((l) => `  ${l}`).join('\n')}

Examples:
  $ ioasis groups host.txt --explain
  $ ioasis groups host.yaml --json
  $ ioasis groups host.txt --what-if cmdline:pcie_acs_override=downstream --what-if acs:00:1c.0:on
  $ ioasis groups --check a.txt b.txt`))
    .action(async (_files: unknown, _opts: unknown, cmd: Command) => {
      const o = cmd.opts<GroupsFlags>();
      const files = cmd.args;
      if (o.check === true) {
        const clash = [o.json === true ? '--json' : '', o.whatIf !== undefined ? '--what-if' : '', o.host !== undefined ? '--host' : ''].filter((x) => x !== '');
        if (clash.length > 0) throw new UsageError(`--check compares dumps with their own groups; ${clash.join(', ')} do${clash.length === 1 ? 'es' : ''} not apply to it`);
        setStatus(await checkCommand(files, { cmdline: o.cmdline, algorithm: o.algorithm, color: o.color }, io));
        return;
      }
      setStatus(await groupsCommand(files, {
        json: o.json === true, explain: o.explain === true, cmdline: o.cmdline, whatIf: o.whatIf ?? [],
        algorithm: o.algorithm, host: o.host, tree: o.tree !== false, color: o.color,
      }, io));
    });

  colorOptions(program.command('plan')
    .description('what assigning DEVICE to a VM takes: its group, companions, host-critical captures, vfio configuration')
    .argument('<DEVICE>', 'the function to pass through, [dddd:]bb:dd.f')
    .argument('[FILE]', 'lspci -vvnn output, a host file, or - (default: --host)')
    .option('--host <name>', 'a built-in host (when no FILE is given)')
    .option('--cmdline <options>', 'kernel command line to model')
    .addOption(algorithmOption())
    .option('--json', 'print JSON')
    .addHelpText('after', `
Example:
  $ ioasis plan 01:00.0 host.txt`))
    .action(async (device: string, file: string | undefined, _opts: unknown, cmd: Command) => {
      const o = cmd.opts<PlanFlags>();
      setStatus(await planCommand(device, file, {
        host: o.host, cmdline: o.cmdline, json: o.json === true, algorithm: o.algorithm, color: o.color,
      }, io));
    });

  colorOptions(program.command('demo')
    .description('the main job: two VMs on the built-in host through iommufd and VFIO, seed 001, and a summary')
    .addHelpText('after', `
Example:
  $ ioasis demo            (what npm start runs)`))
    .action((_opts: unknown, cmd: Command) => {
      const o = cmd.opts<{ color?: boolean }>();
      setStatus(demoCommand({ color: o.color }, io));
    });

  colorOptions(program.command('run')
    .description('play a scenario file: every step through the kernel model, its outcome and expectations')
    .argument('<FILE>', 'a scenario (.yaml/.yml/.json), or - for stdin')
    .option('--json', 'one JSON line per step, then a summary line (a trace for tools)')
    .addHelpText('after', `
Exit status: 0 when every expectation is met and no invariant breaks, 1 otherwise (or for a bad file).

Example:
  $ ioasis run scenarios/seed-001-mdev-group.yaml`))
    .action(async (file: string, _opts: unknown, cmd: Command) => {
      const o = cmd.opts<{ json?: boolean; color?: boolean }>();
      setStatus(await runCommand(file, { json: o.json === true, color: o.color }, io));
    });

  program.command('sysfs')
    .description('boot the host and print /sys as Linux shows it: IOMMU groups, devices, drivers, VFIO nodes')
    .argument('[PATH]', 'a directory (printed as a tree) or an attribute (printed as is)', '/sys/kernel/iommu_groups')
    .argument('[FILE]', 'lspci -vvnn output, a host file, or - (default: --host)')
    .option('--host <name>', 'a built-in host (when no FILE is given)')
    .option('--cmdline <options>', 'kernel command line to model, e.g. "iommu=pt"')
    .option('--depth <n>', 'levels of a directory to show', (v) => {
      const n = Number(v);
      if (!Number.isInteger(n) || n < 1) throw new UsageError(`--depth wants a positive whole number, got "${v}"`);
      return n;
    })
    .option('--json', 'print JSON')
    .addHelpText('after', `
Examples:
  $ ioasis sysfs                                           every IOMMU group and its devices
  $ ioasis sysfs /sys/bus/pci/devices/0000:16:00.0/iommu_group/type
  $ ioasis sysfs /sys/bus/pci/drivers --depth 2 host.txt`)
    .action(async (path: string, file: string | undefined, _opts: unknown, cmd: Command) => {
      const o = cmd.opts<{ host?: string; cmdline?: string; depth?: number; json?: boolean }>();
      setStatus(await sysfsCommand(path, file, { host: o.host, cmdline: o.cmdline, depth: o.depth, json: o.json === true }, io));
    });

  return program;
}
