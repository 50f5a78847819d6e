import { readdirSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { loadScenarioFile } from '../../src/scenario/load.ts';
import { narrative } from '../../src/scenario/narrate.ts';
import { runScenarioVariants } from '../../src/scenario/runner.ts';

const DIR = new URL('../../scenarios/', import.meta.url).pathname;
const FILES = readdirSync(DIR).filter((f) => /\.(ya?ml|json)$/.test(f) && !f.endsWith('.schema.json')).sort();

describe('built-in scenarios', () => {
  it('there are scenarios to run', () => { expect(FILES.length).toBeGreaterThan(1); });

  for (const file of FILES) {
    it(`${file}: every variant meets every expectation and breaks no invariant`, () => {
      const runs = runScenarioVariants(loadScenarioFile(DIR + file), { baseDir: DIR });
      for (const run of runs) expect(run.ok, narrative(run).join('\n')).toBe(true);
    });
  }
});
