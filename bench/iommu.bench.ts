// IOMMU unit benchmarks: the IOTLB-hit path, full 4-level walks, and the page-table memory of a large map.
import { PhysicalMemory } from '../src/hw/memory/physical-memory.ts';
import { IoPageTable, type TableAllocator } from '../src/hw/iommu/pgtable/builder.ts';
import { allocPasidDirectory, allocRootTable, enableTranslation, writeContext, writePasidEntry } from '../src/hw/iommu/setup.ts';
import { DEFAULT_IOMMU_CAPS, NO_PASID, newTranslationResult, type TranslationRequest, type TranslationResult } from '../src/hw/iommu/types.ts';
import { IommuUnit } from '../src/hw/iommu/unit.ts';
import type { BenchDef } from './harness.ts';

const GiB = 2 ** 30;
const MiB = 2 ** 20;

/** Zeroed frames from a bump pointer (benchmarks never free). */
function bumpAllocator(mem: PhysicalMemory, base: number): TableAllocator {
  let next = base;
  return {
    alloc: () => { const pa = next; next += 4096; mem.discardFrame(pa / 4096); return pa; },
    free: () => undefined,
  };
}

/** A unit with translation on and one device (00:01.0) whose RID_PASID entry uses a 4-level second-stage table. */
function translatingUnit(iotlbEntries: number, pages: number): { unit: IommuUnit; req: TranslationRequest; pt: IoPageTable } {
  const mem = new PhysicalMemory({ size: 64 * GiB });
  const alloc = bumpAllocator(mem, 256 * MiB);
  const unit = new IommuUnit(mem, DEFAULT_IOMMU_CAPS, { iotlbEntries });
  const root = allocRootTable(alloc);
  const dir = allocPasidDirectory(alloc, 0);
  const pt = new IoPageTable(mem, alloc, { format: 'second', levels: 4 });
  for (let i = 0; i < pages; i++) pt.map(i * 4096 + GiB, 2 * GiB + i * 8192, 4096, { read: true, write: true });
  writeContext(mem, alloc, root, 0x0008, { mode: 'translate', pasidDir: dir });
  writePasidEntry(mem, alloc, dir, 0, { pgtt: 'second', did: 1, ssRoot: pt.root });
  enableTranslation(unit, root);
  const req: TranslationRequest = { rid: 0x0008, pasid: NO_PASID, iova: GiB, write: false, exec: false, priv: false, ats: false };
  return { unit, req, pt };
}

/**
 * Milliseconds of CPU time `fn` takes (user + system, all threads): the figure is per core, so other
 * processes on a shared machine do not count against it the way they would against wall time.
 */
function cpuMs(fn: () => void): number {
  const t0 = process.cpuUsage();
  fn();
  const t = process.cpuUsage(t0);
  return (t.user + t.system) / 1000;
}

// The timed loops are top-level functions using integer arithmetic only, so the loop itself neither
// allocates nor hides the unit's cost (IOVAs stay below 2^31).

/** Reads over 16 resident pages at varying offsets; returns the successful translations. */
function hitLoop(unit: IommuUnit, req: TranslationRequest, out: TranslationResult, n: number): number {
  let ok = 0;
  for (let i = 0; i < n; i++) {
    req.iova = 0x4000_0000 + (i & 15) * 4096 + ((i << 3) & 0xff8);
    if (unit.translate(req, out)) ok++;
  }
  return ok;
}

/** Two alternating pages: with a 1-entry IOTLB each translation is a walk. */
function walkLoop(unit: IommuUnit, req: TranslationRequest, out: TranslationResult, n: number): number {
  let ok = 0;
  for (let i = 0; i < n; i++) {
    req.iova = 0x4000_0000 + (i & 1) * 4096 + 0x10;
    if (unit.translate(req, out)) ok++;
  }
  return ok;
}

export const benches: BenchDef[] = [
  {
    name: 'iotlb-hit',
    unit: 'translations/s',
    description: 'translate() on the IOTLB-hit path: 16 resident 4 KiB pages of one device, second stage, a warmed 1024-entry IOTLB, reads at varying offsets; CPU time (target >= 40 million/s)',
    samples: 7,
    setup: () => {
      const { unit, req } = translatingUnit(1024, 16);
      const out = newTranslationResult();
      const n = 4_000_000;
      return () => {
        let ok = 0;
        const ms = cpuMs(() => { ok = hitLoop(unit, req, out, n); });
        if (ok !== n) throw new Error('iotlb-hit: a translation failed');
        if (unit.stats.walks > 16) throw new Error(`iotlb-hit: ${unit.stats.walks} walks, expected only the warm-up ones`);
        return n / (ms / 1000);
      };
    },
  },
  {
    name: 'walk-4level',
    unit: 'translations/s',
    description: 'translate() when every lookup is a full 4-level second-stage walk: a 1-entry IOTLB and two alternating pages; CPU time (target >= 3 million/s)',
    samples: 7,
    setup: () => {
      const { unit, req } = translatingUnit(1, 2);
      const out = newTranslationResult();
      const n = 500_000;
      return () => {
        const walks = unit.stats.walks;
        let ok = 0;
        const ms = cpuMs(() => { ok = walkLoop(unit, req, out, n); });
        if (ok !== n || unit.stats.walks - walks !== n) throw new Error('walk-4level: expected one successful walk per translation');
        return n / (ms / 1000);
      };
    },
  },
  {
    name: 'pt-64g-2m',
    unit: 'bytes',
    description: 'page-table memory to map 64 GiB with 2 MiB pages (second stage, 4 levels, IoPageTable.tableBytes, checked against PhysicalMemory.residentBytes) (target < 1 MiB)',
    samples: 3,
    setup: () => () => {
      const mem = new PhysicalMemory({ size: 128 * GiB });
      const pt = new IoPageTable(mem, bumpAllocator(mem, 64 * GiB), { format: 'second', levels: 4, pageSize2M: true });
      if (!pt.map(0, 0, 64 * GiB, { read: true, write: true })) throw new Error('pt-64g-2m: map failed');
      if (pt.lookup(64 * GiB - 1)?.pageSize !== 2 * MiB) throw new Error('pt-64g-2m: expected 2 MiB leaves');
      if (mem.residentBytes !== pt.tableBytes) throw new Error(`pt-64g-2m: tableBytes ${pt.tableBytes} but ${mem.residentBytes} resident`);
      return pt.tableBytes;
    },
  },
];
