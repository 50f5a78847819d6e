// iommufd IOVA space and pin-once storage: metadata cost of a large pinned mapping.
import { PhysicalMemory } from '../src/hw/memory/physical-memory.ts';
import { IOMMU_READ, IOMMU_WRITE, IoPagetable } from '../src/kernel/iommufd/io-pagetable.ts';
import { IoptPages } from '../src/kernel/iommufd/pages.ts';
import { FrameAllocator } from '../src/kernel/mm/frame-allocator.ts';
import { MAP_ANONYMOUS, MAP_PRIVATE, PROT_READ, PROT_WRITE } from '../src/kernel/mm/mman.ts';
import { ProcessTable } from '../src/kernel/process/process-table.ts';
import type { BenchDef } from './harness.ts';

const MiB = 2 ** 20;
const SIZE = 256 * MiB;
const PAGE = 4096;

export const benches: BenchDef[] = [
  {
    name: 'meta-per-4k',
    unit: 'B/page',
    description: 'bytes of iommufd metadata per pinned 4 KiB page for one 256 MiB mapping pinned in full (THP at its default, always): the IoptPages PFN runs and user-count segments plus the IoPagetable area index columns (excludes the kernel mm, frame allocator and PhysicalMemory pin counts, and the fixed-size area/pages objects); target <= 16',
    samples: 1,
    setup: () => {
      const memory = new PhysicalMemory({ size: SIZE + 64 * MiB });
      const frames = new FrameAllocator(memory, { firstPfn: 16 });
      const table = new ProcessTable({ frames });
      const p = table.spawn();
      const va = p.mmap(0, SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
      if (!va.ok) throw new Error(va.reason);
      const pages = IoptPages.fromUser(p, va.value, SIZE, true);
      if (!pages.ok) throw new Error(pages.reason);
      const iopt = new IoPagetable<IoptPages>();
      const mapped = iopt.map([{ pages: pages.value, startByte: 0, length: BigInt(SIZE) }], IOMMU_READ | IOMMU_WRITE);
      if (!mapped.ok) throw new Error(mapped.reason);
      const area = mapped.value.areas[0];
      if (area === undefined) throw new Error('no area');
      const pinned = pages.value.pfnsFor(area.firstIndex, area.lastIndex);
      if (!pinned.ok) throw new Error(pinned.reason);
      const npages = SIZE / PAGE;
      return () => (pages.value.metadataBytes + iopt.indexBytes) / npages;
    },
  },
];
