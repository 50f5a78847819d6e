// Reading a scenario file: YAML or JSON, validated against the schema, every problem located at its
// line and column; then the checks the schema cannot make (processes and regions that steps name).

import { readFileSync } from 'node:fs';
import { LocatedFileError, loadLocated, type LocatedIssue, type Problem } from '../pci/located-yaml.ts';
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
    check: checkScenario,
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

/** Names the steps use that the file does not declare. */
function checkScenario(s: Scenario): Problem[] {
  const out: Problem[] = [];
  const procs = new Set(Object.keys(s.processes));
  s.steps.forEach((step, i) => {
    const p = (step as { process?: unknown }).process;
    if (typeof p === 'string' && !procs.has(p)) {
      out.push({ path: ['steps', i, 'process'], message: `no process "${p}" is declared under processes: (declared: ${[...procs].join(', ') || 'none'})` });
    }
  });
  return out;
}
