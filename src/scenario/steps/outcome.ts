// Turning kernel Results into step outcomes.

import type { Result } from '../../kernel/errno.ts';
import type { StepOutcome } from '../step-kind.ts';

/** A failed Result as an outcome: the errno and its reason. */
export function failed(r: { readonly errno: StepOutcome['errno']; readonly reason: string }, what: string): StepOutcome {
  return { ok: false, ...(r.errno !== undefined ? { errno: r.errno } : {}), summary: `${what}: ${r.errno} (${r.reason})` };
}

/** ok → `summary`, failure → the errno. */
export function fromResult<T>(r: Result<T>, what: string, summary: (v: T) => string, extra: (v: T) => Partial<StepOutcome> = () => ({})): StepOutcome {
  if (!r.ok) return failed(r, what);
  return { ok: true, summary: summary(r.value), ...extra(r.value) };
}
