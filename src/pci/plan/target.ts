import { parseAddress } from '../address.ts';
import type { PciDev } from '../dev.ts';
import type { GroupingRun } from '../groups/compute.ts';
import { PlanError } from './types.ts';

const ID_RE = /^[0-9a-fA-F]{4}:[0-9a-fA-F]{4}$/;

export interface ResolvedTarget {
  readonly target: PciDev;
  /** Other matches, all in the target's group (a multi-port card matched by ID, ...). */
  readonly alsoMatched: readonly PciDev[];
}

/**
 * The device a person means: a BDF ("01:00.0", "0000:01:00.0"), a vendor:device ID, or part of its
 * name. Several matches are fine when they share one group (one plan covers them); otherwise the
 * answer is ambiguous and the error lists the matches to choose from by address.
 */
export function resolveTarget(run: GroupingRun, text: string): ResolvedTarget {
  const t = text.trim();
  const devices = run.booted.host.topology.devices();
  const addr = parseAddress(t);
  if (addr !== undefined) {
    const dev = run.booted.host.topology.get(addr);
    if (dev === undefined) throw new PlanError(`the host has no function ${t}`);
    return { target: dev, alsoMatched: [] };
  }
  if (t === '') throw new PlanError('name a device: a BDF (01:00.0), a vendor:device ID (10de:1b80) or part of its name');
  const byId = ID_RE.test(t);
  const needle = t.toLowerCase();
  const matches = devices.filter((d) => (byId ? d.ids === needle : (d.info.name ?? '').toLowerCase().includes(needle)));
  if (matches.length === 0) {
    throw new PlanError(byId ? `no function has the ID ${needle}` : `no function's name contains '${t}'`);
  }
  const sorted = [...matches].sort((a, b) => a.bdf.localeCompare(b.bdf));
  const groups = new Set(sorted.map((d) => run.groupOf(d) ?? d));
  const [first, ...rest] = sorted;
  if (first === undefined) throw new PlanError(`no function matches '${t}'`);
  if (groups.size > 1) {
    const list = sorted.map((d) => {
      const g = run.groupOf(d);
      return `${d.shortBdf} [${d.ids}]${d.info.name === undefined ? '' : ` ${d.info.name}`} (${g === undefined ? 'no group' : `group ${g.id}`})`;
    });
    throw new PlanError(`'${t}' is ambiguous: it matches ${sorted.length} functions in different groups:\n  ${list.join('\n  ')}\nname one by address`);
  }
  return { target: first, alsoMatched: rest };
}
