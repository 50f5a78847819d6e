import { spawnSync } from 'node:child_process';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

// The README's examples run as a user would run them, so they cannot rot.
const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

describe('examples', () => {
  it('dma-through-iommu: the DMA lands, and faults after the unmap', () => {
    const r = spawnSync(process.execPath, [resolve(root, 'bin/run-ts.mjs'), 'examples/dma-through-iommu.ts'], { cwd: root, encoding: 'utf8' });
    expect(r.status).toBe(0);
    expect(r.stdout).toContain('DMA write: ok; memory at 0x40000000 now reads "hello from 29:00.0"');
    expect(r.stdout).toMatch(/after unmap: fault: .*PTE_NOT_PRESENT/);
  });

  it('vfio-cdev: a VMM binds a device through its cdev, maps guest RAM, the device DMA lands; exit releases it', () => {
    const r = spawnSync(process.execPath, [resolve(root, 'bin/run-ts.mjs'), 'examples/vfio-cdev.ts'], { cwd: root, encoding: 'utf8' });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(r.stdout).toContain('device DMA: ok; guest RAM at 0x1000 reads "hello guest"');
    expect(r.stdout).toMatch(/second process binding the same device: EINVAL/);
    expect(r.stdout).toContain('after exit: VmPin 0 pages; group of 38:02.0 owned: false');
  });
});
