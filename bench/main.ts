// npm run bench [-- NAME...] [-- --list]: runs the benchmarks, one JSON line per figure (medians), each
// benchmark in its own process when several run.
import { runBench, type BenchDef } from './harness.ts';
import { spawnSync } from 'node:child_process';
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
  } else if (wanted.length === 1) {
    const b = all.find((x) => x.name === wanted[0]) as BenchDef;
    process.stdout.write(`${JSON.stringify(runBench(b))}\n`);
  } else {
    // Each benchmark in a process of its own: what V8 learned running one (the shapes and call targets
    // seen by shared code such as dispatch and the user copies) would otherwise shape another's code.
    const runTs = join(here, '..', 'bin', 'run-ts.mjs');
    for (const b of all) {
      if (wanted.length > 0 && !wanted.includes(b.name)) continue;
      const r = spawnSync(process.execPath, [...process.execArgv, runTs, fileURLToPath(import.meta.url), b.name], { stdio: 'inherit' });
      if (r.status !== 0) process.exitCode = r.status ?? 1;
    }
  }
}
