import { describe, expect, it } from 'vitest';
import { FIXTURES, runCli } from './run-cli.ts';

const f = (name: string): string => `${FIXTURES}${name}.txt`;

describe('ioasis groups --check', () => {
  it('says so when the model agrees with the dump', async () => {
    const r = await runCli(['groups', '--check', f('agree')]);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(`${f('agree')}: 6 devices, partition agrees, numbering agrees\n`);
  });

  it('shows the observed members against the model groups, with the model\'s reasons, and exits 1', async () => {
    const r = await runCli(['groups', '--check', f('disagree')]);
    expect(r.code).toBe(1);
    expect(r.stdout).toContain(`${f('disagree')}: 6 devices, partition disagrees (1 group)`);
    expect(r.stdout).toContain('  observed group 0: 00:00.0 01:00.0');
    expect(r.stdout).toContain('    model group 0: 00:00.0');
    expect(r.stdout).toContain('    model group 3: 01:00.0');
    expect(r.stdout).toContain('      01:00.0 gets its own group: the path above it is ACS-isolated (root port 00:01.0 has ACS SV RR CR UF enabled)');
  });

  it('names a command line the dump does not record when that explains the groups, and counts it as agreement', async () => {
    const r = await runCli(['groups', '--check', f('override')]);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('partition agrees with pcie_acs_override=downstream,multifunction');
    expect(r.stdout).toContain('observed groups match with pcie_acs_override=downstream,multifunction, which the dump does not record: this kernel was booted with it');
  });

  it('accepts numbering that a DMAR unit order reproduces, and prints the note', async () => {
    const r = await runCli(['groups', '--check', f('renumbered')]);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('numbering agrees once DMAR units are inferred');
    expect(r.stdout).toContain('  numbering: 01:00.0 observed 0, model 3;');
    expect(r.stdout).toMatch(/numbering depends on .*; it is reproduced exactly/);
  });

  it('checks files independently: a bad file is reported with file:line and the others still run', async () => {
    const r = await runCli(['groups', '--check', f('agree'), f('garbage'), f('missing'), f('disagree'), f('override')]);
    expect(r.code).toBe(1);
    expect(r.stdout).toContain(`${f('agree')}: 6 devices, partition agrees, numbering agrees`);
    expect(r.stdout).toContain(`${f('disagree')}: 6 devices, partition disagrees`);
    expect(r.stdout).toContain(`${f('override')}: 6 devices, partition agrees with`);
    expect(r.stderr).toContain(`ioasis: ${f('garbage')}:1: "Hello, this is not lspci output." is not lspci -vvnn output`);
    expect(r.stderr).toContain(`ioasis: ${f('missing')}: no such file`);
  });

  it('is non-zero when any one file disagrees', async () => {
    expect((await runCli(['groups', '--check', f('agree'), f('override')])).code).toBe(0);
    expect((await runCli(['groups', '--check', f('agree'), f('disagree')])).code).toBe(1);
  });

  it('reads a dump from stdin', async () => {
    const { readFileSync } = await import('node:fs');
    const r = await runCli(['groups', '--check', '-'], { stdin: readFileSync(f('agree'), 'utf8') });
    expect(r.code).toBe(0);
    expect(r.stdout).toBe('<stdin>: 6 devices, partition agrees, numbering agrees\n');
  });

  it('needs at least one file', async () => {
    const r = await runCli(['groups', '--check']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^ioasis: --check needs at least one lspci dump/);
  });
});
