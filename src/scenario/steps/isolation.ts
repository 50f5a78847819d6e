// The isolation checker as a step: what would let one owner's device reach another owner's memory.

import { checkIsolation } from '../../kernel/isolation/check.ts';
import { commonFields, stepKind } from '../step-kind.ts';

export const isolationCheck = stepKind({
  name: 'isolation-check',
  summary: 'run the isolation checker: status "clean", or "breach" with one line per breach',
  fields: { ...commonFields },
  run(s) {
    const r = checkIsolation(s.kernel);
    if (r.breaches.length === 0) return { ok: true, status: 'clean', summary: `isolation check: clean (${r.assignments.length} assignment${r.assignments.length === 1 ? '' : 's'} checked)` };
    return {
      ok: false, status: 'breach',
      summary: `isolation check: ${r.breaches.length} breach${r.breaches.length === 1 ? '' : 'es'}`,
      details: r.breaches.map((b) => `${b.kind}: ${b.reason}`),
    };
  },
});
