import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { loadScenarioText } from '../../src/scenario/load.ts';
import { narrative } from '../../src/scenario/narrate.ts';
import { runScenario } from '../../src/scenario/runner.ts';

const README = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');

describe('README', () => {
  it('the scenario example runs and meets its expectations', () => {
    const block = /```yaml\n([\s\S]*?)```/.exec(README)?.[1];
    expect(block).toBeDefined();
    const text = (block ?? '').replace(/^ {3}/gm, '');
    const run = runScenario(loadScenarioText(text, 'README.md'));
    expect(run.ok, narrative(run).join('\n')).toBe(true);
  });
});
