import type { Algorithm } from '../../pci/groups/types.ts';
import { planAssignment } from '../../pci/plan/plan.ts';
import type { AssignmentPlan, PlanMember } from '../../pci/plan/types.ts';
import { analyse, effectiveCmdline, runNotes } from '../analyse.ts';
import { EXIT_OK } from '../errors.ts';
import { loadInput } from '../input.ts';
import { colorsFor, Out, type CliIo } from '../io.ts';
import { headerLines } from '../render/groups-text.ts';
import { jsonText } from '../render/json.ts';
import { renderPlan } from '../render/plan-text.ts';

export interface PlanOptions {
  readonly host?: string;
  readonly cmdline?: string;
  readonly json: boolean;
  readonly algorithm: Algorithm;
  readonly color?: boolean;
}

/** `ioasis plan DEVICE [FILE]`: what passing DEVICE through takes. */
export async function planCommand(device: string, file: string | undefined, opts: PlanOptions, io: CliIo): Promise<number> {
  const out = new Out(io, colorsFor(io, opts.json ? false : opts.color));
  const input = await loadInput(file, opts.host, io);
  const cmdline = effectiveCmdline(input.spec, opts.cmdline);
  const run = analyse(input.spec, input.source, cmdline, opts.algorithm);
  const notes = runNotes(input, run);
  const plan = planAssignment(run, device);
  if (opts.json) {
    io.stdout.write(jsonText({ host: run.booted.host.name, algorithm: run.algorithm, cmdline: run.booted.options.cmdline, ...planJson(plan), notes }));
    return EXIT_OK;
  }
  out.lines(headerLines(run, out.c));
  out.line();
  out.lines(renderPlan(plan, out.c));
  for (const n of notes) out.note(n);
  return EXIT_OK;
}

function memberJson(m: PlanMember): Record<string, unknown> {
  return { device: m.device.bdf, ids: m.ids, name: m.name ?? null, driver: m.driver ?? null, action: m.action, why: m.why, reason: m.reason };
}

/** The plan with every address in dddd:bb:dd.f form. */
export function planJson(plan: AssignmentPlan): Record<string, unknown> {
  return {
    target: plan.target.bdf,
    alsoMatched: plan.alsoMatched.map((d) => d.bdf),
    group: plan.group === null ? null : { id: plan.group.id, devices: plan.group.devices.map((d) => d.bdf) },
    mustMove: plan.mustMove.map(memberJson),
    mayStay: plan.mayStay.map(memberJson),
    hostCritical: plan.hostCritical.map((h) => ({ device: h.device.bdf, kind: h.kind, text: h.text })),
    warnings: [...plan.warnings],
    recommended: plan.recommended,
    vfioPciIds: plan.vfioPciIds,
    driverctl: [...plan.driverctl],
    libvirt: [...plan.libvirt],
  };
}
