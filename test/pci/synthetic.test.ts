import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { bootHost } from '../../src/pci/boot.ts';
import type { PciDev } from '../../src/pci/dev.ts';
import { buildHost } from '../../src/pci/host.ts';
import { PcieType } from '../../src/pci/regs.ts';
import { syntheticHostSpec } from '../../src/pci/synthetic.ts';
import { arbHostSpec } from '../support/arbitraries.ts';
import { layoutProblems } from '../support/bar-layout.ts';

const isType = (d: PciDev, t: PcieType): boolean => d.isPcie() && d.pcieType() === t;

describe('syntheticHostSpec', () => {
  it('builds and boots a 10,000-function host spread over several PCI domains', () => {
    const booted = bootHost(syntheticHostSpec({ functions: 10_000, seed: 1 }));
    const topo = booted.host.topology;
    expect(topo.size).toBe(10_000);
    expect(topo.warnings).toEqual([]);
    const domains = new Set(topo.devices().map((d) => d.domain));
    expect(domains.size).toBeGreaterThan(1);
    expect(Math.min(...domains)).toBe(0);
    expect(layoutProblems(topo)).toEqual([]);

    // It holds every kind of structure the group engine cares about.
    const all = topo.devices();
    const rootPorts = all.filter((d) => isType(d, PcieType.RootPort));
    expect(rootPorts.some((d) => d.acsCap !== 0) && rootPorts.some((d) => d.acsCap === 0)).toBe(true);
    const mixedSwitch = all.filter((d) => isType(d, PcieType.UpstreamPort)).some((usp) => {
      const dsps = usp.subordinate?.devices ?? [];
      return dsps.some((d) => d.acsCap !== 0) && dsps.some((d) => d.acsCap === 0);
    });
    expect(mixedSwitch).toBe(true);
    expect(all.some((d) => !d.isBridge() && d.isPcie() && d.multifunction)).toBe(true);
    expect(all.some((d) => isType(d, PcieType.PcieToPciBridge) && (d.subordinate?.devices ?? []).some((c) => !c.isPcie()))).toBe(true);
    expect(all.filter((d) => d.isVirtfn()).length).toBeGreaterThan(100);
  });

  it('is deterministic: the same seed gives the same spec, another seed another', () => {
    const a = syntheticHostSpec({ functions: 2_000, seed: 99 });
    expect(syntheticHostSpec({ functions: 2_000, seed: 99 })).toEqual(a);
    expect(syntheticHostSpec({ functions: 2_000, seed: 100 })).not.toEqual(a);
  });

  it('has exactly the number of functions asked for, VFs included', () => {
    fc.assert(fc.property(fc.integer({ min: 1, max: 400 }), fc.integer(), (functions, seed) => {
      const host = buildHost(syntheticHostSpec({ functions, seed }));
      expect(host.topology.size).toBe(functions);
      expect(layoutProblems(host.topology)).toEqual([]);
    }), { numRuns: 60 });
  });

  it('refuses a count that is not a positive integer', () => {
    expect(() => syntheticHostSpec({ functions: 0, seed: 1 })).toThrow(RangeError);
    expect(() => syntheticHostSpec({ functions: 2.5, seed: 1 })).toThrow(RangeError);
  });
});

describe('arbHostSpec', () => {
  it('draws hosts that build and boot, within the function budget', () => {
    fc.assert(fc.property(arbHostSpec(), (spec) => {
      const booted = bootHost(spec);
      expect(booted.host.topology.size).toBeGreaterThan(0);
      expect(booted.host.topology.size).toBeLessThanOrEqual(40);
      expect(booted.host.topology.warnings).toEqual([]);
    }), { numRuns: 200 });
  });

  it('honours its options', () => {
    fc.assert(fc.property(arbHostSpec({ maxFunctions: 8, iommu: 'amd', maxSwitchDepth: 2 }), (spec) => {
      expect(spec.platform.iommu).toBe('amd');
      expect(buildHost(spec).topology.size).toBeLessThanOrEqual(8);
    }), { numRuns: 100 });
  });

  it('covers the structures grouping depends on', () => {
    const hosts = fc.sample(arbHostSpec(), { numRuns: 300, seed: 7 }).map((s) => buildHost(s).topology.devices());
    const some = (pred: (d: PciDev) => boolean): boolean => hosts.some((devs) => devs.some(pred));
    expect(some((d) => isType(d, PcieType.RootPort) && d.acsCap !== 0)).toBe(true);
    expect(some((d) => isType(d, PcieType.RootPort) && d.acsCap === 0)).toBe(true);
    expect(some((d) => isType(d, PcieType.DownstreamPort) && d.bus.self !== null && isType(d.bus.self, PcieType.UpstreamPort))).toBe(true);
    expect(some((d) => isType(d, PcieType.PcieToPciBridge) && (d.subordinate?.devices.length ?? 0) > 0)).toBe(true);
    expect(some((d) => d.isBridge() && !d.isPcie())).toBe(true);
    expect(some((d) => d.multifunction && !d.isBridge())).toBe(true);
    expect(some((d) => d.isVirtfn())).toBe(true);
    expect(some((d) => d.ids === '8086:1521' && d.multifunction)).toBe(true);
    expect(some((d) => d.ids === '1b4b:9123')).toBe(true);
    expect(hosts.some((devs) => devs.some((d) => isType(d, PcieType.UpstreamPort) && (d.bus.self?.bus.self ?? null) !== null
      && isType(d.bus.self!.bus.self!, PcieType.UpstreamPort)))).toBe(false); // depth 1 by default: no nested switch
  });
});
