// Device DMA through the machine: fabric routing, page-by-page translation by the real IOMMU unit, copies
// into sparse physical memory.
import { Machine } from '../src/hw/machine.ts';
import { PhysicalMemory } from '../src/hw/memory/physical-memory.ts';
import type { TableAllocator } from '../src/hw/iommu/pgtable/builder.ts';
import { IoPageTable } from '../src/hw/iommu/pgtable/builder.ts';
import { allocPasidDirectory, allocRootTable, enableTranslation, writeContext, writePasidEntry } from '../src/hw/iommu/setup.ts';
import { bootHost } from '../src/pci/boot.ts';
import { timeMs, type BenchDef } from './harness.ts';

const MiB = 2 ** 20;
const GiB = 2 ** 30;
const SIZE = 64 * MiB;

/** Zeroed frames from a bump pointer (benchmarks never free). */
function bumpAllocator(mem: PhysicalMemory, base: number): TableAllocator {
  let next = base;
  return {
    alloc: () => { const pa = next; next += 4096; mem.discardFrame(pa / 4096); return pa; },
    free: () => undefined,
  };
}

export const benches: BenchDef[] = [
  {
    name: 'dma-copy',
    unit: 'GB/s',
    description: 'GB/s of device DMA through the IOMMU: a 64 MiB write then a 64 MiB read by one endpoint, IOVA mapped with 2 MiB pages (routing, translation per 2 MiB, memory copies)',
    setup: () => {
      const booted = bootHost({
        name: 'dma-bench',
        functions: [
          { address: '00:01.0', id: '8086:352a', class: '0604', bridge: { secondary: 1, subordinate: 1 }, express: { type: 'root-port' }, acs: { cap: ['SV', 'RR', 'CR', 'UF'], ctl: [] } },
          { address: '01:00.0', id: '144d:a80a', class: '0108', express: { type: 'endpoint' } },
        ],
      });
      const m = new Machine(booted, { memory: new PhysicalMemory({ size: 4 * GiB }) });
      const alloc = bumpAllocator(m.memory, 256 * MiB);
      const unit = m.units[0]!.port;
      const root = allocRootTable(alloc);
      const dir = allocPasidDirectory(alloc, 0);
      const pt = new IoPageTable(m.memory, alloc, { format: 'second', levels: 4, pageSize2M: true, pageSize1G: true });
      pt.map(GiB, 2 * GiB, SIZE, { read: true, write: true });
      writeContext(m.memory, alloc, root, 0x0100, { mode: 'translate', pasidDir: dir });
      writePasidEntry(m.memory, alloc, dir, 0, { pgtt: 'second', did: 1, ssRoot: pt.root });
      enableTranslation(unit, root);
      const dev = m.device('01:00.0')!;
      const src = new Uint8Array(SIZE).map((_, i) => i & 0xff);
      const dst = new Uint8Array(SIZE);
      return () => {
        let ok = true;
        const ms = timeMs(() => {
          ok = m.dma(dev, { op: 'write', address: GiB, length: SIZE, data: src }).status === 'ok'
            && m.dma(dev, { op: 'read', address: GiB, length: SIZE, data: dst }).status === 'ok';
        });
        if (!ok || dst[SIZE - 1] !== ((SIZE - 1) & 0xff)) throw new Error('dma-copy: the transfer did not complete');
        return (2 * SIZE) / (ms / 1000) / 1e9;
      };
    },
  },
];
