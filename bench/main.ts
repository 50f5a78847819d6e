// npm run bench [-- NAME...] [-- --list]: runs the benchmarks, one JSON line per figure (medians).
import { runBench, type BenchDef } from './harness.ts';
import { readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const files = readdirSync(here).filter((f) => f.endsWith('.bench.ts')).sort();
const all: BenchDef[] = [];
for (const f of files) {
  const mod = (await import(pathToFileURL(join(here, f)).href)) as { benches?: BenchDef[] };
  all.push(...(mod.benches ?? []));
}
const args = process.argv.slice(2);
if (args.includes('--list')) {
  for (const b of all) process.stdout.write(`${b.name}\t${b.unit}\t${b.description}\n`);
} else {
  const wanted = args.filter((a) => !a.startsWith('-'));
  const unknown = wanted.filter((w) => !all.some((b) => b.name === w));
  if (unknown.length > 0) {
    process.stderr.write(`unknown benchmark(s): ${unknown.join(', ')}; known: ${all.map((b) => b.name).join(', ')}\n`);
    process.exitCode = 2;
  } else {
    for (const b of all) {
      if (wanted.length > 0 && !wanted.includes(b.name)) continue;
      process.stdout.write(`${JSON.stringify(runBench(b))}\n`);
    }
  }
}
