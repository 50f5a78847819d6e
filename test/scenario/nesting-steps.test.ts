// The nesting steps' own rules (guest-pagetable, hwpt-invalidate); scenarios/viommu-nesting.yaml runs
// them end to end in builtin-scenarios.test.ts.

import { describe, expect, it } from 'vitest';
import { loadScenarioText } from '../../src/scenario/load.ts';
import { narrative } from '../../src/scenario/narrate.ts';
import { runScenario } from '../../src/scenario/runner.ts';

const HEAD = `scenario: x
processes:
  vm: { memlock: 64M, caps: [], memory: { ram: { size: 2M } } }
steps:
`;

describe('guest-pagetable and hwpt-invalidate steps', () => {
  it('a table is created with ram: and pool:, stores its root GPA, then maps and unmaps', () => {
    const run = runScenario(loadScenarioText(`${HEAD}
  - { do: guest-pagetable, process: vm, table: t, ram: ram, ramGpa: 0x100000, pool: { gpa: 0x1f0000, pages: 8 }, map: [{ iova: 0x400000, gpa: 0x101000, length: 8K }], as: root, expect: { value: 0x1f0000 } }
  - { do: guest-pagetable, process: vm, table: t, unmap: [{ iova: 0x400000, length: 4K }], map: [{ iova: 0x400000, gpa: 0x102000, length: 4K, write: false }] }
  - { do: guest-pagetable, process: vm, table: t, map: [{ iova: 0x401000, gpa: 0x103000, length: 4K }], expect: EINVAL, note: already mapped }
  - { do: guest-pagetable, process: vm, table: u, map: [{ iova: 0, gpa: 0, length: 4K }] }
`, 'x.yaml'));
    const text = narrative(run).join('\n');
    expect(run.steps.slice(0, 3).every((s) => s.unmet === undefined), text).toBe(true);
    expect(text).toContain('root at GPA 0x1f0000 (4 levels)');
    expect(text).toContain('map IOVA 0x400000 → GPA 0x102000 (4 KiB, RO)');
    expect(run.steps[3]?.outcome.ok).toBe(false);
    expect(run.steps[3]?.outcome.summary).toContain('give ram: and pool: to create it');
  });

  it('hwpt-invalidate reports ENOENT for an ID that names nothing, with no entries handled', () => {
    const run = runScenario(loadScenarioText(`${HEAD}
  - { do: open, process: vm, path: /dev/iommu, as: iommufd }
  - { do: hwpt-invalidate, process: vm, hwpt: 77, entries: [{ npages: all }], expect: { errno: ENOENT, value: 0 } }
  - { do: hwpt-invalidate, process: vm, hwpt: 77, expect: ENOENT, note: "no entries: still looked up" }
`, 'x.yaml'));
    expect(run.ok, narrative(run).join('\n')).toBe(true);
  });
});
