import { describe, expect, it } from 'vitest';
import { ANSI, FIXTURES, HOSTS, runCli } from './run-cli.ts';

const SMALL = `${HOSTS}small.yaml`;

interface PlanJson {
  host: string;
  target: string;
  group: { id: number; devices: string[] } | null;
  mustMove: Array<{ device: string; action: string }>;
  mayStay: Array<{ device: string; action: string }>;
  hostCritical: Array<{ device: string; kind: string }>;
  vfioPciIds: string;
  driverctl: string[];
  libvirt: string[];
}

describe('ioasis plan', () => {
  it('lists the group, what must move, and the vfio-pci.ids line', async () => {
    const r = await runCli(['plan', '01:00.0', SMALL]);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('Assign 01:00.0 [10de:2204] VGA compatible controller: NVIDIA Corporation GA102 [GeForce RTX 3090]');
    expect(r.stdout).toContain('IOMMU group 4 (2 functions)');
    expect(r.stdout).toContain('Must be bound to vfio-pci (2)');
    expect(r.stdout).toMatch(/01:00\.1 \[10de:1aef\].*\n\s+its HDMI\/DP audio function/);
    expect(r.stdout).toContain('    vfio-pci.ids=10de:1aef,10de:2204\n');
    expect(r.stdout).toContain('driverctl set-override 0000:01:00.0 vfio-pci');
    expect(r.stdout).toContain("<hostdev mode='subsystem' type='pci' managed='yes'><source><address domain='0x0000' bus='0x01' slot='0x00' function='0x1'/></source></hostdev>");
    expect(ANSI.test(r.stdout)).toBe(false);
  });

  it('lets bridges stay and flags host-critical captures', async () => {
    const r = await runCli(['plan', '05:00.0', SMALL]);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('May stay on the host (1)\n  03:01.0');
    expect(r.stdout).toMatch(/Host devices this would take away \(1\)\n {2}! .*NVMe/);
    expect(r.stdout).toContain('vfio-pci.ids=144d:a808');
  });

  it('--json gives the plan with full addresses', async () => {
    const r = await runCli(['plan', '01:00.1', SMALL, '--json']);
    expect(r.code).toBe(0);
    const doc = JSON.parse(r.stdout) as PlanJson;
    expect(doc.host).toBe('small');
    expect(doc.target).toBe('0000:01:00.1');
    expect(doc.group).toEqual({ id: 4, devices: ['0000:01:00.0', '0000:01:00.1'] });
    expect(doc.mustMove.map((m) => m.device)).toEqual(['0000:01:00.0', '0000:01:00.1']);
    expect(doc.vfioPciIds).toBe('vfio-pci.ids=10de:1aef,10de:2204');
    expect(doc.driverctl).toHaveLength(2);
  });

  it('works on an lspci dump and on the built-in host', async () => {
    const dump = await runCli(['plan', '02:00.0', `${FIXTURES}agree.txt`]);
    expect(dump.code).toBe(0);
    expect(dump.stdout).toContain('vfio-pci.ids=10de:1aef,10de:2204');
    expect(dump.stdout).toContain('May stay on the host (1)\n  00:02.0');
    const builtin = await runCli(['plan', '16:00.0']);
    expect(builtin.code).toBe(0);
    expect(builtin.stdout).toContain('vfio-pci.ids=');
  });

  it('an unknown device is one error line, exit 1', async () => {
    const r = await runCli(['plan', '77:00.0', SMALL]);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe('ioasis: the host has no function 77:00.0\n');
    expect(r.stdout).toBe('');
  });

  it('an ambiguous device lists the candidates', async () => {
    const r = await runCli(['plan', '10b5:8724', SMALL]);
    expect(r.code).toBe(1);
    const lines = r.stderr.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^ioasis: '10b5:8724' is ambiguous/);
    expect(lines.slice(1).every((l) => l.startsWith('  '))).toBe(true);
  });

  it('needs a DEVICE', async () => {
    const r = await runCli(['plan']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^ioasis: missing required argument 'DEVICE'/);
  });
});
