import { describe, expect, it } from 'vitest';
import { runCli } from './run-cli.ts';

describe('ioasis demo (npm start)', () => {
  it('plays the demo and seed 001 and ends with a summary computed from the model', async () => {
    const r = await runCli(['demo']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const out = r.stdout;
    expect(out).toContain('1. Boot: the host, its IOMMU groups and topology');
    expect(out).toContain('└─ 15:01.0 #10');
    expect(out).toMatch(/VFIO_DEVICE_BIND_IOMMUFD: EINVAL/);
    expect(out).toMatch(/scenario steps +(\d+) of \1 met their expectation; 0 broke an invariant/);
    expect(out).toMatch(/seed 001 +separate-virtual-group: B got the device, isolation breach reported; inherit-parent-group: refused with EPERM/);
    expect(out).toMatch(/after teardown +0 pinned pages, 0 groups owned, 37 of 37 groups back on their default domain/);
    expect(out).not.toMatch(/\x1b\[/);
    expect(out).not.toContain('✗');
  });
});
