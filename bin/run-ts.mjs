#!/usr/bin/env node
// Runs one TypeScript entry file (benchmarks, tools) through tsx: node bin/run-ts.mjs FILE [ARGS...]
import { register } from 'tsx/esm/api';
import { pathToFileURL } from 'node:url';
import { resolve } from 'node:path';

register();
const [file, ...rest] = process.argv.slice(2);
if (file === undefined) {
  process.stderr.write('usage: run-ts.mjs FILE [ARGS...]\n');
  process.exit(2);
}
process.argv = [process.argv[0] ?? 'node', file, ...rest];
await import(pathToFileURL(resolve(file)).href);
