import { readFileSync } from 'node:fs';
import type { FunctionSpec } from '../../src/pci/spec.ts';
import type { LspciImport } from '../../src/pci/lspci/index.ts';

/** A hand-written dump from test/fixtures/lspci. */
export function fixture(name: string): string {
  return readFileSync(new URL(`../fixtures/lspci/${name}`, import.meta.url), 'utf8');
}

/** The imported function at `address`; fails the test when absent. */
export function fnAt(result: LspciImport, address: string): FunctionSpec {
  const fn = result.spec.functions.find((f) => f.address === address);
  if (fn === undefined) throw new Error(`no function ${address} in the import`);
  return fn;
}

/** Join dump lines; a leading run of '>' in a line stands for that many tabs. */
export function dump(...lines: string[]): string {
  return lines.map((l) => l.replace(/^>+/, (m) => '\t'.repeat(m.length))).join('\n');
}
