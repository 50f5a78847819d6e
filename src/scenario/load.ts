// Reading a scenario file: YAML or JSON, validated against the schema, every problem located at its
// line and column; then the checks the schema cannot make (processes and regions that steps name).

import { readFileSync } from 'node:fs';
import { dirname, extname, resolve } from 'node:path';
import { BUILTIN_HOSTS, loadBuiltinHost } from '../pci/builtin-hosts.ts';
import { buildHost, type Host } from '../pci/host.ts';
import { loadHostFile } from '../pci/host-file.ts';
import { LocatedFileError, loadLocated, type LocatedIssue, type Problem } from '../pci/located-yaml.ts';
import { parseLspci } from '../pci/lspci/index.ts';
import type { HostSpec } from '../pci/spec.ts';
import { scenarioSchema, type Scenario } from './schema.ts';

export class ScenarioFileError extends LocatedFileError {
  constructor(filename: string, issues: readonly LocatedIssue[]) {
    super(filename, issues);
    this.name = 'ScenarioFileError';
  }
}

/** Parse and validate scenario text; throws ScenarioFileError with every issue located. */
export function loadScenarioText(text: string, filename: string): Scenario {
  return loadLocated(text, filename, scenarioSchema, {
    rootMessage: 'a scenario must be a mapping with "scenario:" (its name) and a "steps:" list',
    check: (sc) => checkScenario(sc, filename),
    error: (f, issues) => new ScenarioFileError(f, issues),
  });
}

export function loadScenarioFile(path: string): Scenario {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'no such file' : code === 'EISDIR' ? 'is a directory, not a scenario file' : `cannot be read (${err instanceof Error ? err.message : String(err)})`;
    throw new ScenarioFileError(path, [{ line: 0, column: 0, path: '', message: why }]);
  }
  return loadScenarioText(text, path);
}

const BDF = /^([0-9a-fA-F]{4}:)?[0-9a-fA-F]{2}:[0-9a-fA-F]{2}\.[0-7]$/;

/** The host a scenario names, built, or the problem with it. */
function hostOf(s: Scenario, filename: string): Host | string {
  let spec: HostSpec;
  try {
    if (typeof s.host === 'string') {
      if (!BUILTIN_HOSTS.some((h) => h.name === s.host)) return `unknown built-in host "${s.host}"; known: ${BUILTIN_HOSTS.map((h) => h.name).join(', ')}`;
      spec = loadBuiltinHost(s.host);
    } else {
      const path = resolve(filename.startsWith('<') ? '.' : dirname(filename), s.host.file);
      spec = ['.yaml', '.yml', '.json'].includes(extname(path).toLowerCase()) ? loadHostFile(path) : parseLspci(readFileSync(path, 'utf8'), path).spec;
    }
    return buildHost(spec);
  } catch (err) {
    return `the host cannot be loaded: ${err instanceof Error ? err.message.split('\n')[0] ?? '' : String(err)}`;
  }
}

/**
 * What the schema cannot check: processes the steps name must be declared; devices must exist on the
 * host; an mdev (named by UUID) must be created by an earlier step.
 */
function checkScenario(s: Scenario, filename: string): Problem[] {
  const out: Problem[] = [];
  const procs = new Set(Object.keys(s.processes));
  const host = hostOf(s, filename);
  if (typeof host === 'string') out.push({ path: ['host'], message: host });
  const mdevs = new Set<string>();
  s.steps.forEach((step, i) => {
    const fields = step as Record<string, unknown>;
    const p = fields.process;
    if (typeof p === 'string' && !procs.has(p)) {
      out.push({ path: ['steps', i, 'process'], message: `no process "${p}" is declared under processes: (declared: ${[...procs].join(', ') || 'none'})` });
    }
    for (const key of ['device', 'cdev', 'group', 'mdev']) {
      const v = fields[key];
      if (typeof v !== 'string') continue;
      if (BDF.test(v)) {
        if (typeof host !== 'string' && host.topology.get(v) === undefined) out.push({ path: ['steps', i, key], message: `no PCI function ${v} on host ${host.name}` });
      } else if (key !== 'device' && !v.startsWith('$') && !mdevs.has(v.toLowerCase())) {
        // (`device:` of hwpt-alloc and hw-info is an iommufd dev_id, checked when the step runs.)
        out.push({ path: ['steps', i, key], message: `"${v}" is neither a PCI address on the host nor an mdev created by an earlier mdev-create step` });
      }
    }
    if (step.do === 'mdev-create' && typeof fields.uuid === 'string') mdevs.add(fields.uuid.toLowerCase());
  });
  return out;
}
