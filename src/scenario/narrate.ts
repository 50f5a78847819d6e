// A scenario run as text (the narrative a person reads) and as JSON lines (a trace tools read).

import type { ScenarioRun, StepRecord } from './runner.ts';

export interface Paint {
  readonly ok: (s: string) => string;
  readonly bad: (s: string) => string;
  readonly dim: (s: string) => string;
  readonly bold: (s: string) => string;
}

export const NO_PAINT: Paint = { ok: (s) => s, bad: (s) => s, dim: (s) => s, bold: (s) => s };

/** The lines of one step: `  3. ✓ summary`, its note, details, and what went wrong. */
export function stepLines(r: StepRecord, c: Paint = NO_PAINT): string[] {
  const good = r.met && r.breaches.length === 0;
  const mark = good ? c.ok('✓') : c.bad('✗');
  const expectTag = r.expected === 'ok' ? '' : c.dim(` [expected ${r.expected}]`);
  const out = [`${String(r.index + 1).padStart(3)}. ${mark} ${r.outcome.summary}${expectTag}`];
  if (r.note !== undefined) out.push(`       ${c.dim(r.note)}`);
  for (const d of r.outcome.details ?? []) out.push(`       ${d}`);
  if (!r.met) out.push(`       ${c.bad(`expectation not met: ${r.unmet ?? ''}`)}`);
  for (const b of r.breaches) out.push(`       ${c.bad(`invariant broken: ${b}`)}`);
  return out;
}

export function narrative(run: ScenarioRun, c: Paint = NO_PAINT): string[] {
  const s = run.scenario;
  const out = [c.bold(`scenario ${s.scenario}${run.variant !== null ? ` — variant ${run.variant}` : ''}`)];
  if (s.description !== undefined) for (const l of s.description.trim().split('\n')) out.push(c.dim(`  ${l}`));
  out.push('');
  for (const l of run.setup) out.push(`  ${l}`);
  out.push('');
  for (const r of run.steps) out.push(...stepLines(r, c));
  out.push('');
  const unmet = run.steps.filter((r) => !r.met).length;
  const broken = run.steps.reduce((n, r) => n + r.breaches.length, 0);
  out.push(run.ok
    ? c.ok(`${run.steps.length} steps, every expectation met, no invariant broken`)
    : c.bad(`${run.steps.length} steps: ${unmet} expectation(s) not met, ${broken} invariant breach(es)`));
  return out;
}

/** One JSON object per step (bigints as decimal strings, bytes as hex). */
export function traceLine(r: StepRecord): string {
  const o = r.outcome;
  return JSON.stringify({
    step: r.index + 1, do: r.do, ok: o.ok, errno: o.errno ?? null, summary: o.summary, details: o.details ?? [],
    status: o.status ?? null, value: o.value === undefined ? null : o.value.toString(),
    data: o.data === undefined ? null : Buffer.from(o.data).toString('hex'),
    expected: r.expected, met: r.met, unmet: r.unmet ?? null, breaches: r.breaches, hw: r.hw,
  });
}
