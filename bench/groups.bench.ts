import { bootHost } from '../src/pci/boot.ts';
import { computeGroups } from '../src/pci/groups/compute.ts';
import { syntheticHostSpec } from '../src/pci/synthetic.ts';
import { timeMs, type BenchDef } from './harness.ts';

// The group engine alone: the host is built and booted once; each sample probes all 10,000 functions
// and forms their groups, explanations included.
export const benches: BenchDef[] = [
  {
    name: 'groups-10k',
    unit: 'ms',
    description: 'ms to form the IOMMU groups of a synthetic 10,000-function topology with mainline pci_device_group() (target < 100)',
    setup: () => {
      const booted = bootHost(syntheticHostSpec({ functions: 10_000, seed: 1 }));
      return () => timeMs(() => { computeGroups(booted, 'linux'); });
    },
  },
  {
    name: 'groups-10k-proposed',
    unit: 'ms',
    description: 'the same topology under the proposed 2025 algorithm',
    setup: () => {
      const booted = bootHost(syntheticHostSpec({ functions: 10_000, seed: 1 }));
      return () => timeMs(() => { computeGroups(booted, 'proposed-2025'); });
    },
  },
];
