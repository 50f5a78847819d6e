// The scenario format as JSON Schema (draft 2020-12), for editors: generated from the same zod schema
// the loader validates with, so the two cannot disagree. scenarios/scenario.schema.json is this output;
// a test keeps it current.

import { z } from 'zod';
import { scenarioSchema } from './schema.ts';

export function scenarioJsonSchema(): Record<string, unknown> {
  const schema = z.toJSONSchema(scenarioSchema, { io: 'input', unrepresentable: 'any' }) as Record<string, unknown>;
  return { ...schema, $id: 'https://ioasis.dev/scenario.schema.json', title: 'ioasis scenario' };
}

/** The file's text: two-space JSON with a final newline. */
export function scenarioJsonSchemaText(): string {
  return `${JSON.stringify(scenarioJsonSchema(), null, 2)}\n`;
}
