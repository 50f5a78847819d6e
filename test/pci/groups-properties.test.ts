import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { bootHost } from '../../src/pci/boot.ts';
import type { PciDev } from '../../src/pci/dev.ts';
import { computeGroups } from '../../src/pci/groups/compute.ts';
import { devsAreDmaAliases, forEachDmaAlias } from '../../src/pci/groups/dma-alias.ts';
import { arbHostSpec } from '../support/arbitraries.ts';

// Invariants of mainline grouping over random topologies (switches, MFDs, PCIe-to-PCI bridges, quirks).

const cmdlines = fc.constantFrom('', 'pcie_acs_override=downstream,multifunction', 'pci=disable_acs_redir=pci:0:0', 'pci=bfsort');

describe('mainline grouping invariants', () => {
  it('groups partition the covered devices; IDs are 0..n-1 in allocation order; every member is explained', () => {
    fc.assert(fc.property(arbHostSpec(), cmdlines, (spec, cmdline) => {
      const run = computeGroups(bootHost(spec, cmdline));
      const seen = new Set<PciDev>();
      run.groups.forEach((g, i) => {
        expect(g.id).toBe(i);
        expect(g.steps.map((s) => s.device)).toEqual(g.devices);
        expect(g.steps[0]?.rule).toBe('new-group');
        for (const d of g.devices) {
          expect(seen.has(d)).toBe(false);
          seen.add(d);
          expect(run.groupOf(d)).toBe(g);
        }
      });
      const uncovered = new Set(run.uncovered.map((u) => u.device));
      for (const d of run.booted.host.topology.devices()) expect(seen.has(d) !== uncovered.has(d)).toBe(true);
    }), { numRuns: 150 });
  });

  it('never groups a device apart from its DMA aliases (bridges that rewrite its requester ID, same-bus aliases)', () => {
    fc.assert(fc.property(arbHostSpec(), (spec) => {
      const run = computeGroups(bootHost(spec));
      for (const dev of run.booted.host.topology.devices()) {
        const g = run.groupOf(dev);
        if (g === undefined) continue;
        forEachDmaAlias(dev, (alias) => {
          const ag = run.groupOf(alias.dev);
          if (ag !== undefined) expect(ag).toBe(g);
          return false;
        });
        for (const peer of dev.bus.devices) {
          if (peer !== dev && devsAreDmaAliases(dev, peer) && run.groupOf(peer) !== undefined) expect(run.groupOf(peer)).toBe(g);
        }
      }
    }), { numRuns: 150 });
  });

  it('everything below a bridge whose path is not ACS-isolated shares the bridge\'s group', () => {
    fc.assert(fc.property(arbHostSpec(), (spec) => {
      const run = computeGroups(bootHost(spec));
      for (const g of run.groups) {
        for (const s of g.steps) {
          if (s.rule !== 'upstream-not-isolated' || s.via === undefined) continue;
          const sub = s.via.subordinate;
          if (sub === null) continue;
          for (const below of sub.devices) {
            if (run.groupOf(below) !== undefined) expect(run.groupOf(below)).toBe(g);
          }
        }
      }
    }), { numRuns: 150 });
  });

  it('is deterministic: the same host and options give the same groups', () => {
    fc.assert(fc.property(arbHostSpec(), (spec) => {
      const a = computeGroups(bootHost(spec)).groups.map((g) => g.devices.map((d) => d.bdf));
      const b = computeGroups(bootHost(spec)).groups.map((g) => g.devices.map((d) => d.bdf));
      expect(a).toEqual(b);
    }), { numRuns: 50 });
  });

  it('an ACS override only ever splits groups, never merges them (it can only make ACS checks pass)', () => {
    fc.assert(fc.property(arbHostSpec(), (spec) => {
      const plain = computeGroups(bootHost(spec));
      const over = computeGroups(bootHost(spec, 'pcie_acs_override=downstream,multifunction'));
      const key = (d: PciDev): string => d.bdf;
      const plainOf = new Map(plain.booted.host.topology.devices().map((d) => [key(d), plain.groupOf(d)]));
      for (const g of over.groups) {
        const first = g.devices[0];
        if (first === undefined) continue;
        for (const d of g.devices) expect(plainOf.get(key(d))).toBe(plainOf.get(key(first)));
      }
    }), { numRuns: 150 });
  });
});
