import { describe, expect, it } from 'vitest';
import { loadScenarioText, ScenarioFileError } from '../../src/scenario/load.ts';
import { narrative, traceLine } from '../../src/scenario/narrate.ts';
import { runScenario } from '../../src/scenario/runner.ts';

const BASIC = `
scenario: basic
description: map and unmap guest memory in an IOAS
processes:
  vm:
    memlock: 64M
    caps: []
    memory:
      ram: { size: 2M }
steps:
  - { do: open, process: vm, path: /dev/iommu, as: iommufd }
  - { do: ioas-alloc, process: vm, as: ioas, expect: { value: 1 } }
  - { do: ioas-map, process: vm, ioas: $ioas, va: ram, length: 2M, iova: 0x100000 }
  - { do: ioas-map, process: vm, ioas: $ioas, va: ram, length: 4K, iova: 0x100000, expect: EEXIST, note: overlaps the first map }
  - { do: ioas-unmap, process: vm, ioas: $ioas, iova: 0x100000, length: 4K, expect: ENOENT, note: Linux never splits an area }
  - { do: ioas-unmap, process: vm, ioas: $ioas, iova: 0x100000, length: 2M, expect: { value: 2M } }
  - { do: write-memory, process: vm, at: ram+16, data: hello }
  - { do: read-memory, process: vm, at: ram+16, length: 5, expect: { data: hello } }
  - { do: exit, process: vm }
`;

describe('scenario runner', () => {
  it('runs steps through the typed API and judges their expectations', () => {
    const run = runScenario(loadScenarioText(BASIC, 'basic.yaml'));
    const text = narrative(run).join('\n');
    expect(run.ok, text).toBe(true);
    expect(text).toContain('IOMMU_IOAS_MAP 2 MiB of');
    expect(text).toContain('[expected EEXIST]');
    expect(run.steps.map((s) => s.outcome.ok)).toEqual([true, true, true, false, false, true, true, true, true]);
    expect(JSON.parse(traceLine(run.steps[3] as never)) as unknown).toMatchObject({ step: 4, errno: 'EEXIST', met: true });
  });

  it('reports an unmet expectation and keeps going', () => {
    const text = BASIC.replace('expect: EEXIST', 'expect: EBUSY');
    const run = runScenario(loadScenarioText(text, 'x.yaml'));
    expect(run.ok).toBe(false);
    expect(run.steps[3]?.unmet).toBe('failed with EEXIST, EBUSY was expected');
    expect(run.steps).toHaveLength(9);
  });

  it('a step naming an unknown thing fails that step with the reason', () => {
    const run = runScenario(loadScenarioText(BASIC.replace('va: ram, length: 2M', 'va: rom, length: 2M'), 'x.yaml'));
    expect(run.steps[2]?.outcome.summary).toContain('"rom" is neither a number nor a memory region');
    expect(run.ok).toBe(false);
  });

  it('malformed files are located by line and column, and nothing runs', () => {
    const cases: [string, RegExp][] = [
      ['scenario: x\nsteps:\n  - { do: opne, process: vm }\n', /x\.yaml:3:\d+: steps\.0/],
      ['scenario: x\nsteps:\n  - { do: open, process: vm, path: /dev/iommu, colour: red }\n', /x\.yaml:3:\d+: .*unknown field "colour"/],
      ['scenario: x\nsteps: [ {do: open\n', /x\.yaml:\d+:\d+/],
      ['scenario: x\nprocesses: { vm: {} }\nsteps:\n  - { do: open, process: vn, path: /dev/iommu }\n', /x\.yaml:4:\d+: steps\.0\.process: no process "vn"/],
      ['scenario: x\nsteps:\n  - { do: ioas-map, process: vm, ioas: 1, va: 0, length: [1] }\n', /x\.yaml:3:\d+: steps\.0/],
    ];
    for (const [text, re] of cases) {
      let err: unknown;
      try { loadScenarioText(text, 'x.yaml'); } catch (e) { err = e; }
      expect(err, text).toBeInstanceOf(ScenarioFileError);
      expect((err as Error).message, text).toMatch(re);
    }
  });
  it('pins a type1 container holds are charged to locked_vm and count as balanced', () => {
    const text = `
scenario: type1
processes:
  vm: { memlock: 64M, caps: [], memory: { ram: { size: 2M } } }
steps:
  - { do: bind, device: 38:02.0, driver: vfio-pci }
  - { do: open, process: vm, group: 38:02.0, as: group }
  - { do: open, process: vm, path: /dev/vfio/vfio, as: container }
  - { do: group-set-container, process: vm, fd: group, container: container }
  - { do: set-iommu, process: vm }
  - { do: map-dma, process: vm, vaddr: ram, iova: 0, size: 2M }
  - { do: unmap-dma, process: vm, iova: 0, size: 2M }
  - { do: exit, process: vm }
`;
    const run = runScenario(loadScenarioText(text, 'type1.yaml'));
    expect(run.steps.flatMap((s) => s.breaches)).toEqual([]);
    expect(run.ok, narrative(run).join('\n')).toBe(true);
  });
});

describe('scenario files: what the schema cannot check', () => {
  it('unknown devices and mdevs are located and nothing runs', () => {
    const text = 'scenario: x\nprocesses: { vm: {} }\nsteps:\n  - { do: bind, device: 77:00.0, driver: vfio-pci }\n  - { do: open, process: vm, cdev: 0a7c3f52-4e8b-4b0e-9d2a-5c1f00000009 }\n';
    let err: unknown;
    try { loadScenarioText(text, 'x.yaml'); } catch (e) { err = e; }
    expect(err).toBeInstanceOf(ScenarioFileError);
    expect((err as Error).message).toMatch(/x\.yaml:4:\d+: steps\.0\.device: no PCI function 77:00\.0 on host default/);
    expect((err as Error).message).toMatch(/x\.yaml:5:\d+: steps\.1\.cdev: "0a7c3f52-4e8b-4b0e-9d2a-5c1f00000009" is neither a PCI address/);
  });

  it('an unknown built-in host is located at host:', () => {
    let err: unknown;
    try { loadScenarioText('scenario: x\nhost: nosuch\nsteps:\n  - { do: isolation-check }\n', 'x.yaml'); } catch (e) { err = e; }
    expect((err as Error).message).toMatch(/x\.yaml:2:7: host: unknown built-in host "nosuch"/);
  });
});
