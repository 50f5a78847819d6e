import { describe, expect, it } from 'vitest';
import { runCli } from './run-cli.ts';

describe('ioasis sysfs', () => {
  it('prints an attribute as is, with the host file\'s own command line (iommu=pt: identity)', async () => {
    const r = await runCli(['sysfs', '/sys/bus/pci/devices/0000:16:00.0/iommu_group/type']);
    expect(r).toMatchObject({ code: 0, stdout: 'identity\n' });
    const strict = await runCli(['sysfs', '/sys/bus/pci/devices/0000:16:00.0/iommu_group/type', '--cmdline', 'intel_iommu=on']);
    expect(strict.stdout).toBe('DMA-FQ\n');
  });

  it('prints a directory as a tree with links', async () => {
    const r = await runCli(['sysfs', '/sys/bus/pci/devices/0000:16:00.1', '--depth', '1']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('/sys/devices/pci0000:15/0000:15:01.0/0000:16:00.1\n');
    expect(r.stdout).toMatch(/└── vendor\n$/);
    expect(r.stdout).toMatch(/iommu_group -> \.\.\/\.\.\/\.\.\/\.\.\/kernel\/iommu_groups\/\d+/);
  });

  it('a missing path and a bad --depth are clear errors', async () => {
    const r = await runCli(['sysfs', '/sys/nope']);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('/sys/nope does not exist (ENOENT)');
    const d = await runCli(['sysfs', '--depth', '0']);
    expect(d.code).toBe(2);
    expect(d.stderr).toContain('--depth wants a positive whole number');
  });
});
