import { bootHost } from '../src/pci/boot.ts';
import { syntheticHostSpec } from '../src/pci/synthetic.ts';
import { timeMs, type BenchDef } from './harness.ts';

export const benches: BenchDef[] = [
  {
    name: 'build-10k',
    unit: 'ms',
    description: 'Build and boot a 10,000-function synthetic host (bootHost: validate, lay out config space, enumerate, boot quirks, enable ACS); the spec is drawn once outside the timing',
    samples: 7,
    setup: () => {
      const spec = syntheticHostSpec({ functions: 10_000, seed: 1 });
      return () => timeMs(() => {
        const booted = bootHost(spec);
        if (booted.host.topology.size !== 10_000) throw new Error(`expected 10000 functions, got ${booted.host.topology.size}`);
      });
    },
  },
];
