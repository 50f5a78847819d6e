// iommufd through the byte-level dispatch: IOAS_MAP + IOAS_UNMAP of a multi-page user buffer with one
// real paging domain attached (pin, map into the second-stage table, unmap with IOTLB flush, unpin).
import { Machine } from '../src/hw/machine.ts';
import { PhysicalMemory } from '../src/hw/memory/physical-memory.ts';
import { IommuCore } from '../src/kernel/iommu/core.ts';
import type { IommufdCtx } from '../src/kernel/iommufd/context.ts';
import type { Ioas } from '../src/kernel/iommufd/ioas.ts';
import { FrameAllocator } from '../src/kernel/mm/frame-allocator.ts';
import { MAP_ANONYMOUS, MAP_POPULATE, MAP_PRIVATE, PROT_READ, PROT_WRITE } from '../src/kernel/mm/mman.ts';
import { ProcessTable } from '../src/kernel/process/process-table.ts';
import { loadBuiltinHost } from '../src/pci/builtin-hosts.ts';
import { bootHost } from '../src/pci/boot.ts';
import { computeGroups } from '../src/pci/groups/compute.ts';
import { dispatch } from '../src/uapi/dispatch.ts';
import { IOMMU_IOAS_ALLOC, IOMMU_IOAS_MAP, IOMMU_IOAS_UNMAP } from '../src/uapi/ioctl.ts';
import { iommu_ioas_alloc, iommu_ioas_map, iommu_ioas_unmap } from '../src/uapi/iommufd-structs.ts';
import { openDevIommu } from '../src/uapi/open.ts';
import type { Result } from '../src/kernel/errno.ts';
import type { BenchDef } from './harness.ts';

const PAGE = 4096;
const NPAGES = 1024;
const ROUNDS = 8;

function must<T>(r: Result<T>): T {
  if (!r.ok) throw new Error(`${r.errno}: ${r.reason}`);
  return r.value;
}

export const benches: BenchDef[] = [
  {
    name: 'map-4k',
    unit: 'us/page',
    description: `microseconds per 4 KiB page for IOAS_MAP + IOAS_UNMAP of a ${NPAGES}-page (4 MiB) user buffer through the byte-level dispatch, with one paging domain attached via Ioas.addDomain (pin, second-stage map, unmap with IOTLB flush, unpin, accounting); transparent_hugepage=never so that every page is a 4 KiB page; target <= 1`,
    setup: () => {
      const booted = bootHost(loadBuiltinHost('default'));
      const memory = new PhysicalMemory({ size: 8 * 2 ** 30 });
      const machine = new Machine(booted, { memory });
      const core = new IommuCore(machine, computeGroups(booted));
      const frames = new FrameAllocator(memory, { firstPfn: 16, count: 4 * NPAGES });
      // THP off: every page of the buffer is a 4 KiB page, as the figure is per 4 KiB page.
      const table = new ProcessTable({ frames, thp: 'never' });
      const p = table.spawn();
      const fd = must(openDevIommu(p, core));
      const scratch = must(p.mmap(0, PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
      const buf = must(p.mmap(0, NPAGES * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0));
      must(p.mm.write(scratch, iommu_ioas_alloc.encode({ size: iommu_ioas_alloc.sizeof, flags: 0, out_ioas_id: 0 })));
      must(dispatch(p, fd, IOMMU_IOAS_ALLOC, scratch));
      const back = new Uint8Array(iommu_ioas_alloc.sizeof);
      must(p.mm.read(scratch, back));
      const ioasId = iommu_ioas_alloc.decode(back).out_ioas_id;
      const ctx = must(p.fds.get(fd)).file as IommufdCtx;
      const dev = machine.device('39:00.0');
      if (dev === undefined) throw new Error('no 39:00.0');
      const domain = must(core.allocPagingDomain(dev, 'unmanaged'));
      must(must(ctx.objects.get<Ioas>(ioasId, 'ioas')).addDomain(domain, {}));
      const mapArg = iommu_ioas_map.encode({
        size: iommu_ioas_map.sizeof, flags: 7, ioas_id: ioasId, __reserved: 0, user_va: BigInt(buf), length: BigInt(NPAGES * PAGE), iova: 0x1000_0000n,
      });
      const unmapArg = iommu_ioas_unmap.encode({ size: iommu_ioas_unmap.sizeof, ioas_id: ioasId, iova: 0x1000_0000n, length: BigInt(NPAGES * PAGE) });
      return () => {
        const t0 = process.hrtime.bigint();
        for (let i = 0; i < ROUNDS; i++) {
          must(p.mm.write(scratch, mapArg));
          must(dispatch(p, fd, IOMMU_IOAS_MAP, scratch));
          must(p.mm.write(scratch, unmapArg));
          must(dispatch(p, fd, IOMMU_IOAS_UNMAP, scratch));
        }
        return Number(process.hrtime.bigint() - t0) / 1e3 / (ROUNDS * NPAGES);
      };
    },
  },
];
