import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ANSI, FIXTURES, HOSTS, runCli } from './run-cli.ts';

const SMALL = `${HOSTS}small.yaml`;

interface JsonOut {
  host: string;
  algorithm: string;
  cmdline: string;
  groups: Array<{ id: number; devices: string[]; steps: Array<{ device: string; rule: string; via: string | null; text: string }> }>;
  uncovered: Array<{ device: string; reason: string }>;
  notes: string[];
}

describe('ioasis groups', () => {
  it('lists the groups of a YAML host, lspci-style, with the topology tree', async () => {
    const r = await runCli(['groups', SMALL]);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('IOMMU group 4\n  01:00.0 [10de:2204] VGA compatible controller: NVIDIA Corporation GA102 [GeForce RTX 3090]\n  01:00.1 [10de:1aef] Audio device');
    // The switch's downstream ports have no ACS: each endpoint shares its port's group.
    expect(r.stdout).toMatch(/IOMMU group 6\n {2}03:00\.0 .*\n {2}04:00\.0 \[8086:1533\] Ethernet controller/);
    expect(r.stdout).toContain('IOMMU group 0  00:00.0 [8086:3e30] Host bridge');
    expect(r.stdout).toContain('Topology');
    expect(r.stdout).toContain('├─ 00:01.0 #1 [ACS: SV RR CR UF] → 01:00.0,1 #4');
    expect(r.stdout).toContain('├─ 03:00.0 #6 [no ACS] → 04:00.0 #6');
    expect(r.stderr).toBe('');
  });

  it('--no-tree leaves the tree out', async () => {
    const r = await runCli(['groups', SMALL, '--no-tree']);
    expect(r.code).toBe(0);
    expect(r.stdout).not.toContain('Topology');
    expect(r.stdout).toContain('IOMMU group 7');
  });

  it('--json prints the documented shape with full dddd:bb:dd.f addresses', async () => {
    const r = await runCli(['groups', SMALL, '--json']);
    expect(r.code).toBe(0);
    const doc = JSON.parse(r.stdout) as JsonOut;
    expect(Object.keys(doc)).toEqual(['host', 'algorithm', 'cmdline', 'groups', 'uncovered', 'notes']);
    expect(doc.host).toBe('small');
    expect(doc.algorithm).toBe('linux');
    expect(doc.cmdline).toBe('');
    expect(doc.groups.map((g) => g.id)).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
    const gpu = doc.groups.find((g) => g.devices.includes('0000:01:00.0'));
    expect(gpu?.devices).toEqual(['0000:01:00.0', '0000:01:00.1']);
    expect(gpu?.steps[1]).toMatchObject({ device: '0000:01:00.1', rule: 'multifunction', via: '0000:01:00.0' });
    expect(gpu?.steps[0]?.via).toBeNull();
    for (const g of doc.groups) {
      for (const d of g.devices) expect(d).toMatch(/^[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]$/);
      for (const s of g.steps) {
        expect(s.device).toMatch(/^[0-9a-f]{4}:/);
        if (s.via !== null) expect(s.via).toMatch(/^[0-9a-f]{4}:/);
        expect(typeof s.text).toBe('string');
      }
    }
    expect(doc.uncovered).toEqual([]);
    expect(ANSI.test(r.stdout)).toBe(false);
  });

  it('--json carries the command line and its notes', async () => {
    const r = await runCli(['groups', SMALL, '--json', '--cmdline', 'pcie_acs_override=downstream,multifunction']);
    expect(r.code).toBe(0);
    const doc = JSON.parse(r.stdout) as JsonOut;
    expect(doc.cmdline).toBe('pcie_acs_override=downstream,multifunction');
    expect(doc.notes.some((n) => n.includes('pcie_acs_override'))).toBe(true);
    // The override splits the GPU's functions and the switch's endpoints.
    expect(doc.groups.some((g) => g.devices.length === 1 && g.devices[0] === '0000:01:00.1')).toBe(true);
  });

  it('--explain adds the reason under each device', async () => {
    const r = await runCli(['groups', SMALL, '--explain', '--no-tree']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/04:00\.0 \[8086:1533\].*\n\s+why: 04:00\.0 joins 03:00\.0: downstream port 03:00\.0 \(no ACS capability\) is not isolated/);
    expect(r.stdout).toMatch(/01:00\.1 .*\n\s+why: 01:00\.1 joins 01:00\.0: .*multifunction/);
    const whyLines = r.stdout.split('\n').filter((l) => l.trimStart().startsWith('why:'));
    expect(whyLines).toHaveLength(13);
  });

  it('reads an lspci dump, from a file or from stdin', async () => {
    const file = await runCli(['groups', `${FIXTURES}agree.txt`, '--json']);
    expect(file.code).toBe(0);
    const fromFile = JSON.parse(file.stdout) as JsonOut;
    expect(fromFile.groups.find((g) => g.id === 2)?.devices).toEqual(['0000:00:02.0', '0000:02:00.0', '0000:02:00.1']);
    const stdin = await runCli(['groups', '-', '--json'], { stdin: readFileSync(`${FIXTURES}agree.txt`, 'utf8') });
    expect(stdin.code).toBe(0);
    expect((JSON.parse(stdin.stdout) as JsonOut).groups).toEqual(fromFile.groups);
  });

  it('reads a JSON host file, and YAML from stdin', async () => {
    const json = await runCli(['groups', `${HOSTS}tiny.json`, '--json']);
    expect(json.code).toBe(0);
    const doc = JSON.parse(json.stdout) as JsonOut;
    expect(doc.host).toBe('tiny');
    expect(doc.groups.map((g) => g.devices)).toEqual([['0000:00:01.1'], ['0000:01:00.0']]);
    // AMD-Vi covers neither the root complex nor its own function.
    expect(doc.uncovered.map((u) => u.device)).toEqual(['0000:00:00.0', '0000:00:00.2']);
    const text = await runCli(['groups', `${HOSTS}tiny.json`]);
    expect(text.stdout).toContain('[0000:00] 00:00.0 #- [not covered], 00:00.2 #- [not covered]');
    const yaml = await runCli(['groups', '-', '--json'], { stdin: readFileSync(SMALL, 'utf8') });
    expect(yaml.code).toBe(0);
    expect((JSON.parse(yaml.stdout) as JsonOut).host).toBe('small');
  });

  it('uses the built-in default host without FILE', async () => {
    const r = await runCli(['groups']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^IOMMU group 0/m);
    // Compact enough to read on one screen.
    expect(r.stdout.split('\n').length).toBeLessThanOrEqual(90);
    const small = await runCli(['groups', '--host', 'small', '--json']);
    expect(small.code).toBe(0);
  });

  it('--algorithm proposed-2025 is accepted and reported', async () => {
    const r = await runCli(['groups', SMALL, '--json', '--algorithm', 'proposed-2025']);
    expect(r.code).toBe(0);
    expect((JSON.parse(r.stdout) as JsonOut).algorithm).toBe('proposed-2025');
    const bad = await runCli(['groups', SMALL, '--algorithm', 'fancy']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/^ioasis: .*fancy/);
  });

  it('lists functions without a group at the end, with the reason', async () => {
    const r = await runCli(['groups', SMALL, '--cmdline', 'intel_iommu=off', '--no-tree']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('Not in any IOMMU group');
    expect(r.stdout).toMatch(/00:00\.0 \[8086:3e30\] .*\(the IOMMU is off/);
    const json = JSON.parse((await runCli(['groups', SMALL, '--json', '--cmdline', 'intel_iommu=off'])).stdout) as JsonOut;
    expect(json.groups).toEqual([]);
    expect(json.uncovered[0]).toEqual({ device: '0000:00:00.0', reason: 'the IOMMU is off (intel_iommu=off)' });
  });
});

describe('colours', () => {
  it('are absent when stdout is not a terminal', async () => {
    const r = await runCli(['groups', SMALL]);
    expect(ANSI.test(r.stdout)).toBe(false);
  });

  it('are present on a terminal, unless NO_COLOR is set or --no-color is given', async () => {
    expect(ANSI.test((await runCli(['groups', SMALL], { isTTY: true })).stdout)).toBe(true);
    expect(ANSI.test((await runCli(['groups', SMALL], { isTTY: true, env: { NO_COLOR: '1' } })).stdout)).toBe(false);
    expect(ANSI.test((await runCli(['groups', SMALL, '--no-color'], { isTTY: true })).stdout)).toBe(false);
  });

  it('--color forces them on a pipe; never in JSON', async () => {
    expect(ANSI.test((await runCli(['groups', SMALL, '--color'])).stdout)).toBe(true);
    expect(ANSI.test((await runCli(['groups', SMALL, '--json'], { isTTY: true })).stdout)).toBe(false);
  });
});
