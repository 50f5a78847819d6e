// Running a scenario: boot its host, spawn its processes with their memory, run each step, compare the
// outcome with what the step expects, and check the invariants after every step. Nothing is skipped: a
// step whose expectation fails is recorded and the run goes on, so the narrative shows everything.

import { extname, resolve } from 'node:path';
import { readFileSync } from 'node:fs';
import { Kernel } from '../kernel/kernel.ts';
import { MAP_ANONYMOUS, MAP_POPULATE, MAP_PRIVATE, PROT_READ, PROT_WRITE } from '../kernel/mm/mman.ts';
import { CAPABILITIES, type Capability } from '../kernel/process/cred.ts';
import { loadBuiltinHost } from '../pci/builtin-hosts.ts';
import { loadHostFile } from '../pci/host-file.ts';
import { parseLspci } from '../pci/lspci/index.ts';
import type { HostSpec } from '../pci/spec.ts';
import { checkInvariants, type1Pins } from './invariants.ts';
import { RunState, StepError } from './run-state.ts';
import type { Scenario, ScenarioStep } from './schema.ts';
import type { Expect, SingleExpect, StepKind, StepOutcome } from './step-kind.ts';
import { STEP_KINDS } from './steps/index.ts';
import { formatSize } from './values.ts';

export interface StepRecord {
  readonly index: number;
  readonly do: string;
  readonly note?: string;
  readonly outcome: StepOutcome;
  /** What was expected, in words ("ok", "EBUSY", "data \"hi\""). */
  readonly expected: string;
  readonly met: boolean;
  /** Why the expectation was not met. */
  readonly unmet?: string;
  readonly breaches: readonly string[];
  /** Hardware events during the step (counts that changed): DMAs, P2P, MSIs, faults logged, page requests, responses. */
  readonly hw: Readonly<Record<string, number>>;
}

export interface ScenarioRun {
  readonly scenario: Scenario;
  /** The design variant this run played (null: the scenario has none). */
  readonly variant: string | null;
  readonly kernel: Kernel;
  readonly state: RunState;
  readonly setup: readonly string[];
  readonly steps: readonly StepRecord[];
  /** Every expectation met and no invariant broken. */
  readonly ok: boolean;
}

export interface RunOptions {
  /** Directory host-file paths are relative to (the scenario file's). */
  readonly baseDir?: string;
  /** Called after each step (progress, JSONL tracing). */
  readonly onStep?: (r: StepRecord, state: RunState) => void;
  /** The variant to play (default: the first, when the scenario has variants). */
  readonly variant?: string;
}

/** Every variant of the scenario, in order (one run when it has none). */
export function runScenarioVariants(s: Scenario, opts: Omit<RunOptions, 'variant'> = {}): ScenarioRun[] {
  if (s.variants === undefined || s.variants.length === 0) return [runScenario(s, opts)];
  return s.variants.map((v) => runScenario(s, { ...opts, variant: v.name }));
}

const KINDS = new Map(STEP_KINDS.map((k) => [k.name, k]));

export function runScenario(base: Scenario, opts: RunOptions = {}): ScenarioRun {
  const variant = base.variants === undefined || base.variants.length === 0 ? null
    : (base.variants.find((v) => v.name === (opts.variant ?? base.variants?.[0]?.name)) ?? null);
  if (opts.variant !== undefined && variant === null) throw new StepError(`no variant "${opts.variant}" in scenario ${base.scenario}`);
  const s: Scenario = variant === null ? base : {
    ...base,
    options: {
      mdevGroupPolicy: variant.options.mdevGroupPolicy ?? base.options.mdevGroupPolicy,
      isolation: variant.options.isolation ?? base.options.isolation,
      vfioApi: variant.options.vfioApi ?? base.options.vfioApi,
      pasidAllocation: variant.options.pasidAllocation ?? base.options.pasidAllocation,
      vfio: { ...base.options.vfio, ...variant.options.vfio }, iopf: { ...base.options.iopf, ...variant.options.iopf },
    },
  };
  const spec = hostOf(s, opts.baseDir ?? '.');
  const kernel = Kernel.boot(spec, {
    ...(s.cmdline !== undefined ? { cmdline: s.cmdline } : spec.kernel.cmdline !== undefined ? { cmdline: spec.kernel.cmdline } : {}),
    vfio: s.options.vfio, iopf: s.options.iopf, pasidAllocation: s.options.pasidAllocation,
  });
  const state = new RunState(kernel, s.options.mdevGroupPolicy);
  state.isolationEnforced = s.options.isolation === 'enforce';
  state.vfioApi = s.options.vfioApi;
  const setup = [`host ${spec.name}: ${kernel.booted.host.topology.devices().length} functions, ${kernel.core.groups.length} IOMMU groups; cmdline "${kernel.booted.options.cmdline}"`];
  for (const [name, p] of Object.entries(s.processes)) setup.push(spawn(state, name, p));
  const steps: StepRecord[] = [];
  s.steps.forEach((step, index) => {
    const rec = runStep(state, step, index, variant?.name ?? null);
    steps.push(rec);
    opts.onStep?.(rec, state);
  });
  if (variant !== null) setup.unshift(`variant ${variant.name}${variant.description !== undefined ? `: ${variant.description}` : ''}`);
  return { scenario: s, variant: variant?.name ?? null, kernel, state, setup, steps, ok: steps.every((r) => r.met && r.breaches.length === 0) };
}

/** The machine's and the IOMMU drivers' event counters. */
function hwCounters(k: Kernel): Record<string, number> {
  const m = k.machine.stats;
  const c: Record<string, number> = { dma: m.dma, p2p: m.p2p, msi: m.msi, blocked: m.blocked, faults: 0, pageRequests: 0, pageResponses: 0, iommuCommands: 0 };
  for (const d of k.core.drivers) {
    c.faults = (c.faults ?? 0) + d.stats.faultsLogged;
    c.pageRequests = (c.pageRequests ?? 0) + d.stats.pageRequestsRead;
    c.pageResponses = (c.pageResponses ?? 0) + d.stats.pageResponses;
    c.iommuCommands = (c.iommuCommands ?? 0) + d.stats.commands;
  }
  return c;
}

function runStep(state: RunState, step: ScenarioStep, index: number, variant: string | null): StepRecord {
  const kind = KINDS.get(step.do) as StepKind;
  const before = hwCounters(state.kernel);
  let outcome: StepOutcome;
  try {
    outcome = kind.run(state, step);
  } catch (err) {
    if (!(err instanceof StepError)) throw err;
    outcome = { ok: false, summary: `step cannot run: ${err.message}` };
  }
  const raw = (step as { expect?: Expect }).expect;
  const expect: SingleExpect | undefined = raw !== undefined && typeof raw === 'object' && 'by' in raw
    ? (variant === null ? undefined : raw.by[variant]) : raw;
  const verdict = judge(outcome, expect, (v) => {
    try { return state.value(v); } catch (err) { if (err instanceof StepError) return undefined; throw err; }
  });
  const breaches = [...(outcome.breaches ?? []), ...checkInvariants(state.kernel, state.processes.values(), { isolation: state.isolationEnforced, extraPins: () => type1Pins(state.kernel) })];
  const note = (step as { note?: string }).note;
  const after = hwCounters(state.kernel);
  const hw: Record<string, number> = {};
  for (const [key, v] of Object.entries(after)) if (v !== before[key]) hw[key] = v - (before[key] ?? 0);
  return { index, do: step.do, ...(note !== undefined ? { note } : {}), outcome, ...verdict, breaches, hw };
}

function judge(o: StepOutcome, e: SingleExpect | undefined, value: (v: number | string) => bigint | undefined): { expected: string; met: boolean; unmet?: string } {
  if (e === undefined || e === 'ok') {
    return o.ok ? { expected: 'ok', met: true } : { expected: 'ok', met: false, unmet: o.errno !== undefined ? `failed with ${o.errno}` : 'failed' };
  }
  if (typeof e === 'string') {
    if (o.ok) return { expected: e, met: false, unmet: `succeeded, ${e} was expected` };
    return o.errno === e ? { expected: e, met: true } : { expected: e, met: false, unmet: `failed with ${o.errno ?? 'no errno'}, ${e} was expected` };
  }
  const parts: string[] = [];
  const problems: string[] = [];
  if (e.errno !== undefined) {
    parts.push(e.errno);
    if (o.errno !== e.errno) problems.push(o.ok ? `succeeded, ${e.errno} was expected` : `failed with ${o.errno ?? 'no errno'}, ${e.errno} was expected`);
  } else if (e.status === undefined && !o.ok) {
    problems.push(`failed with ${o.errno ?? 'no errno'}`);
  }
  if (e.status !== undefined) {
    parts.push(`status ${e.status}`);
    if (o.status !== e.status) problems.push(`status ${o.status ?? 'none'}, ${e.status} was expected`);
  }
  if (e.data !== undefined) {
    const want = typeof e.data === 'string' ? new TextEncoder().encode(e.data) : Uint8Array.from(e.data);
    parts.push(`data ${typeof e.data === 'string' ? JSON.stringify(e.data) : `[${e.data.join(', ')}]`}`);
    const got = o.data;
    if (got === undefined || got.length < want.length || want.some((b, i) => got[i] !== b)) problems.push('the bytes read differ from the expected data');
  }
  if (e.value !== undefined) {
    parts.push(`value ${e.value}`);
    const want = value(e.value);
    if (want === undefined) problems.push(`expect.value ${e.value} is not a number or a known $name`);
    else if (o.value !== want) problems.push(`value ${o.value ?? 'none'}, ${e.value} was expected`);
  }
  return problems.length === 0 ? { expected: parts.join(', '), met: true } : { expected: parts.join(', '), met: false, unmet: problems.join('; ') };
}

function hostOf(s: Scenario, baseDir: string): HostSpec {
  if (typeof s.host === 'string') return loadBuiltinHost(s.host);
  const path = resolve(baseDir, s.host.file);
  if (['.yaml', '.yml', '.json'].includes(extname(path).toLowerCase())) return loadHostFile(path);
  return parseLspci(readFileSync(path, 'utf8'), path).spec;
}

function spawn(state: RunState, name: string, p: Scenario['processes'][string]): string {
  const caps: readonly Capability[] = p.caps ?? (p.uid === 0 ? CAPABILITIES : []);
  const memlock = p.memlock === undefined ? undefined : state.value(p.memlock);
  const proc = state.kernel.processes.spawn({
    comm: p.comm ?? name, uid: p.uid, caps,
    ...(memlock !== undefined ? { rlimits: { RLIMIT_MEMLOCK: { soft: Number(memlock), hard: Number(memlock) } } } : {}),
  });
  const sp = { name, proc, fds: new Map<string, number>(), regions: new Map<string, { va: bigint; size: bigint }>() };
  state.processes.set(name, sp);
  const regions: string[] = [];
  for (const [rname, r] of Object.entries(p.memory)) {
    const size = state.value(r.size);
    const va = proc.mmap(0, Number(size), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | (r.populate ? MAP_POPULATE : 0), -1, 0);
    if (!va.ok) throw new StepError(`${name}: cannot map region ${rname} (${formatSize(size)}): ${va.reason}`);
    sp.regions.set(rname, { va: BigInt(va.value), size });
    regions.push(`${rname} ${formatSize(size)} at 0x${va.value.toString(16)}`);
  }
  return `process ${name}: pid ${proc.pid}, uid ${p.uid}${caps.length > 0 ? `, ${caps.join(' ')}` : ''}${memlock !== undefined ? `, memlock ${formatSize(memlock)}` : ''}${regions.length > 0 ? `; ${regions.join(', ')}` : ''}`;
}

