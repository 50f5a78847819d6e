// The dirty-tracking scenario steps: dirty-read judges the exact set of dirty granules it was told to
// expect (a missing or an extra one fails the step), and its value is how many there are.

import { describe, expect, it } from 'vitest';
import { loadScenarioText } from '../../src/scenario/load.ts';
import { runScenario } from '../../src/scenario/runner.ts';

const scenario = (dirty: string): string => `
scenario: dirty-steps
description: one write, read back with an expected dirty set
processes:
  vm: { memlock: 64M, caps: [], memory: { ram: { size: 1M } } }
steps:
  - { do: bind, device: 39:00.0, driver: vfio-pci }
  - { do: open, process: vm, path: /dev/iommu, as: iommufd }
  - { do: ioas-alloc, process: vm, as: ioas }
  - { do: open, process: vm, cdev: 39:00.0, as: nvme }
  - { do: device-bind, process: vm, fd: nvme, as: dev }
  - { do: hwpt-alloc, process: vm, device: $dev, pt: $ioas, flags: 2, as: hwpt }
  - { do: device-attach, process: vm, fd: nvme, pt: $hwpt }
  - { do: ioas-map, process: vm, ioas: $ioas, va: ram, length: 1M, iova: 0x100000 }
  - { do: dirty-tracking, process: vm, hwpt: $hwpt }
  - { do: dma, device: 39:00.0, write: "x", iova: 0x105000 }
  - { do: dirty-read, process: vm, hwpt: $hwpt, iova: 0x100000, length: 1M, noClear: true, dirty: ${dirty} }
  - { do: dirty-read, process: vm, hwpt: $hwpt, iova: 0x100000, length: 1M, expect: { value: 1 } }
  - { do: exit, process: vm }
`;

describe('dirty-tracking scenario steps', () => {
  it('an exact expected set passes', () => {
    const run = runScenario(loadScenarioText(scenario('[0x105000]'), 'x.yaml'));
    expect(run.steps.map((s) => s.met)).toEqual(run.steps.map(() => true));
    expect(run.ok).toBe(true);
  });

  it.each([['[]', 'not expected 0x105000'], ['[0x105000, 0x106000]', 'missing 0x106000'], ['[0x104000]', 'missing 0x104000']])(
    'dirty: %s fails the step (%s)', (dirty, why) => {
      const run = runScenario(loadScenarioText(scenario(dirty), 'x.yaml'));
      expect(run.ok).toBe(false);
      const step = run.steps[10];
      expect(step?.met).toBe(false);
      expect(step?.outcome.summary).toContain(why);
    });
});
