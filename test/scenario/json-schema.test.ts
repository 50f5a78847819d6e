import { readFileSync, writeFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { scenarioJsonSchemaText } from '../../src/scenario/json-schema.ts';

const FILE = new URL('../../scenarios/scenario.schema.json', import.meta.url);

describe('published JSON Schema', () => {
  it('scenarios/scenario.schema.json is what the zod schema generates (UPDATE_SCHEMA=1 rewrites it)', () => {
    const want = scenarioJsonSchemaText();
    if (process.env.UPDATE_SCHEMA === '1') writeFileSync(FILE, want);
    expect(readFileSync(FILE, 'utf8')).toBe(want);
  });

  it('lists every step kind under steps', () => {
    const text = scenarioJsonSchemaText();
    for (const k of ['ioas-map', 'dma', 'fault-respond', 'bind']) expect(text).toContain(`"const": "${k}"`);
  });
});
