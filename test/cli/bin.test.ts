import { spawnSync } from 'node:child_process';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

// The real entry point as a user (and CI) runs it: a child process with stdout piped, not a TTY.
const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const run = (args: string[], env: Record<string, string> = {}) =>
  spawnSync(process.execPath, [resolve(root, 'bin/ioasis.mjs'), ...args], { cwd: root, encoding: 'utf8', env: { ...process.env, ...env } });

describe('bin/ioasis.mjs', () => {
  it('prints the default host\'s groups and exits 0', () => {
    const r = run(['groups']);
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/IOMMU group 0 /);
    expect(r.stdout).toMatch(/Topology/);
  });

  it('npm start runs the demo as a child process: exit 0, a summary, no colour codes under CI', () => {
    const r = run(['demo'], { CI: 'true', FORCE_COLOR: '' });
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/Summary \(read from the model after the runs\)/);
    expect(r.stdout).not.toMatch(/\u001b\[/);
  });

  it('never colours piped output, even under CI=true (picocolors alone would)', () => {
    const r = run(['groups', '--host', 'small'], { CI: 'true', FORCE_COLOR: '' });
    expect(r.status).toBe(0);
    expect(r.stdout).not.toMatch(/\u001b\[/);
  });

  it('reports a missing file in one line, without a stack trace, and exits 1', () => {
    const r = run(['groups', 'no-such-dump.txt']);
    expect(r.status).toBe(1);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/^ioasis: /);
    expect(r.stderr).not.toMatch(/\n\s+at /);
  });
});
