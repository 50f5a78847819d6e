import { describe, expect, it } from 'vitest';
import { HOSTS, runCli } from './run-cli.ts';

const SMALL = `${HOSTS}small.yaml`;

interface WhatIfJson {
  cmdline: string;
  groups: Array<{ id: number; devices: string[] }>;
  whatIf: {
    applied: string[];
    diff: { split: Array<{ from: { id: number; members: string[] }; into: Array<{ id: number; members: string[] }> }>; samePartition: boolean };
    security: string[];
  };
}

describe('ioasis groups --what-if', () => {
  it('prints the changes and the group diff before -> after', async () => {
    const r = await runCli(['groups', SMALL, '--what-if', 'cmdline:pcie_acs_override=downstream,multifunction', '--no-tree']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('What if\n  + kernel command line + pcie_acs_override=downstream,multifunction');
    expect(r.stdout).toContain('Groups, before -> after');
    expect(r.stdout).toContain('split: group 4 {01:00.0 01:00.1}');
    expect(r.stdout).toMatch(/-> group 4 \{01:00\.0\} \+ group 5 \{01:00\.1\}/);
    expect(r.stdout).not.toContain('Topology');
    // The override separates what the hardware does not: the security notes say so.
    expect(r.stdout).toContain('Security\n  - pcie_acs_override makes 01:00.0 and 01:00.1 look isolated while the hardware still allows P2P');
  });

  it('says when nothing changes', async () => {
    const r = await runCli(['groups', SMALL, '--what-if', 'algorithm:linux', '--no-tree']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('no change in the groups');
  });

  it('--json describes the host after the change, with applied, diff and security', async () => {
    const r = await runCli(['groups', SMALL, '--json', '--what-if', 'cmdline:pcie_acs_override=downstream,multifunction']);
    expect(r.code).toBe(0);
    const doc = JSON.parse(r.stdout) as WhatIfJson;
    expect(doc.cmdline).toBe('pcie_acs_override=downstream,multifunction');
    expect(doc.whatIf.applied[0]).toContain('pcie_acs_override');
    expect(doc.whatIf.diff.samePartition).toBe(false);
    const gpu = doc.whatIf.diff.split.find((s) => s.from.members.includes('0000:01:00.0'));
    expect(gpu?.into.map((g) => g.members)).toEqual([['0000:01:00.0'], ['0000:01:00.1']]);
    expect(doc.whatIf.security.some((n) => n.includes('pcie_acs_override makes 01:00.0 and 01:00.1 look isolated'))).toBe(true);
    expect(doc.groups.find((g) => g.devices.includes('0000:01:00.1'))?.devices).toEqual(['0000:01:00.1']);
  });

  it('a malformed change is one error line (plus the syntax), exit 1', async () => {
    const r = await runCli(['groups', SMALL, '--what-if', 'frobnicate']);
    expect(r.code).toBe(1);
    const [first, ...rest] = r.stderr.trimEnd().split('\n');
    expect(first).toBe("ioasis: --what-if: 'frobnicate' is not a what-if; expected one of:");
    expect(rest.every((l) => l.startsWith('  '))).toBe(true);
    expect(r.stderr).toContain('acs:BDF:+RR,-CR');
  });

  it('a change that does not fit the host is an error', async () => {
    const r = await runCli(['groups', SMALL, '--what-if', 'acs:04:00.0:+RR']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^ioasis: --what-if: acs:04:00\.0:\+RR: .*no ACS capability/);
  });
});
