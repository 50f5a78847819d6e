import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { main } from '../../src/cli/main.ts';
import { FIXTURES, HOSTS, runCli } from './run-cli.ts';

/** One line on stderr, "ioasis: ...", and no stack trace. */
function expectOneLine(stderr: string): void {
  const lines = stderr.trimEnd().split('\n');
  expect(lines).toHaveLength(1);
  expect(lines[0]).toMatch(/^ioasis: /);
  expect(stderr).not.toMatch(/\n\s+at /);
}

describe('errors', () => {
  it('a missing file', async () => {
    const r = await runCli(['groups', 'no/such/host.txt']);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe('ioasis: no/such/host.txt: no such file\n');
    expect(r.stdout).toBe('');
  });

  it('garbage input names the file and line', async () => {
    const r = await runCli(['groups', `${FIXTURES}garbage.txt`]);
    expect(r.code).toBe(1);
    expectOneLine(r.stderr);
    expect(r.stderr).toContain(`${FIXTURES}garbage.txt:1: "Hello, this is not lspci output." is not lspci -vvnn output`);
  });

  it('an empty stdin', async () => {
    const r = await runCli(['groups', '-'], { stdin: '' });
    expect(r.code).toBe(1);
    expectOneLine(r.stderr);
    expect(r.stderr).toContain('<stdin>: the dump is empty');
  });

  it('a non-root dump says what cannot be known and how to fix it', async () => {
    const r = await runCli(['groups', `${FIXTURES}nonroot.txt`]);
    expect(r.code).toBe(1);
    expectOneLine(r.stderr);
    expect(r.stderr).toMatch(/nonroot\.txt:\d+: .*<access denied>.*lspci ran without root/);
    expect(r.stderr).toContain('sudo lspci -vvnn');
  });

  it('a bad --cmdline', async () => {
    const r = await runCli(['groups', `${HOSTS}small.yaml`, '--cmdline', 'pcie_acs_override=sideways']);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe("ioasis: --cmdline: pcie_acs_override: 'sideways' is not downstream, multifunction or id:VVVV:DDDD\n");
  });

  it('a host file with a schema error points at file:line:column', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ioasis-cli-'));
    const file = join(dir, 'bad.yaml');
    writeFileSync(file, 'name: bad\nfunctions:\n  - address: "00:00.0"\n    id: "8086:zzzz"\n    class: "0600"\n');
    const r = await runCli(['groups', file]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(new RegExp(`^ioasis: ${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:4:\\d+: `));
    expect(r.stderr).not.toMatch(/\n\s+at /);
  });

  it('an unknown built-in host lists the known ones (usage error)', async () => {
    const r = await runCli(['groups', '--host', 'nope']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^ioasis: --host: unknown built-in host "nope"; known: default/);
  });

  it('usage errors exit 2 with one ioasis: line', async () => {
    const unknown = await runCli(['groups', '--frobnicate']);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toMatch(/^ioasis: unknown option '--frobnicate'/);
    const cmd = await runCli(['grups']);
    expect(cmd.code).toBe(2);
    expect(cmd.stderr).toMatch(/^ioasis: unknown command 'grups'/);
    const both = await runCli(['groups', `${HOSTS}small.yaml`, '--host', 'small']);
    expect(both.code).toBe(2);
    const two = await runCli(['groups', `${HOSTS}small.yaml`, `${HOSTS}small.yaml`]);
    expect(two.code).toBe(2);
    expect(two.stderr).toContain('--check');
  });

  it('an unexpected failure is an internal error, exit 70, without a stack trace', async () => {
    let stderr = '';
    const code = await main(['groups', `${HOSTS}small.yaml`], {
      stdout: { write: () => { throw new Error('disk on fire'); } },
      stderr: { write: (s: string) => { stderr += s; return true; } },
      isTTY: false,
      env: {},
    });
    expect(code).toBe(70);
    expect(stderr).toBe('ioasis: internal error: disk on fire\n');
  });

  it('a misspelt grouping option on --cmdline is pointed out, not silently ignored', async () => {
    const r = await runCli(['groups', `${HOSTS}small.yaml`, '--cmdline', 'quiet intel_iommu=on iommu=pt pcie_acs_overide=downstream']);
    expect(r.code).toBe(0);
    expect(r.stderr).toBe('note: command-line options that do not change IOMMU groups, ignored: pcie_acs_overide=downstream\n');
  });

  it('--help lists every command with an example and exits 0', async () => {
    const r = await runCli(['--help']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('groups');
    expect(r.stdout).toContain('plan');
    expect(r.stdout).toContain('$ ioasis groups --check');
    expect(r.stdout).toContain('$ ioasis plan 01:00.0 host.txt');
  });
});
