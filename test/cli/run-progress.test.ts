import { describe, expect, it } from 'vitest';
import { runCli } from './run-cli.ts';

const SCENARIOS = new URL('../../scenarios/', import.meta.url).pathname;

describe('ioasis run', () => {
  it('shows progress on a terminal (stderr) and clears it; none when piped', async () => {
    const tty = await runCli(['run', `${SCENARIOS}seed-001-mdev-group.yaml`], { isTTY: true, env: { NO_COLOR: '1' } });
    expect(tty.code).toBe(0);
    expect(tty.stderr).toMatch(/seed-001-mdev-group: step 19\/19/);
    expect(tty.stderr.endsWith('\r\x1b[K')).toBe(true);
    const piped = await runCli(['run', `${SCENARIOS}seed-001-mdev-group.yaml`]);
    expect(piped.stderr).toBe('');
  });

  it('--json prints one line per step and a summary line per variant', async () => {
    const r = await runCli(['run', `${SCENARIOS}seed-001-mdev-group.yaml`, '--json']);
    const lines = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines.filter((l) => 'variant' in l).map((l) => l.variant)).toEqual(['separate-virtual-group', 'inherit-parent-group', 'attach-time-ebusy']);
    expect(lines.filter((l) => 'step' in l)).toHaveLength(3 * 19);
  });

  it('a malformed scenario is reported at file:line:column and exits 1', async () => {
    const r = await runCli(['run', '-'], { stdin: 'scenario: x\nsteps:\n  - { do: dma, device: 16:00.0, iova: 0, bogus: 1 }\n' });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/<stdin>:3:\d+: steps\.0: unknown field "bogus"/);
    expect(r.stdout).toBe('');
  });
});
