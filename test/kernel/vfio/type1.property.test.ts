// Random MAP_DMA / UNMAP_DMA sequences on a type1 v2 container (through the byte-level dispatch) against a
// list model: the errno and unmapped size of every call, the mappings, the domain's translations (each
// mapped page goes to the frame type1 pinned for it, every other IOVA to nothing) and mm->locked_vm agree
// after every step; when the group leaves and the fd closes, nothing stays mapped, pinned or charged
// (the process's frames are all freed at exit).

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { Type1Iommu } from '../../../src/kernel/vfio/type1/iommu.ts';
import { VFIO_IOMMU_MAP_DMA, VFIO_IOMMU_UNMAP_DMA, VFIO_SET_IOMMU } from '../../../src/uapi/ioctl.ts';
import * as K from '../../../src/uapi/vfio-consts.ts';
import { vfio_iommu_type1_dma_map, vfio_iommu_type1_dma_unmap } from '../../../src/uapi/vfio-structs.ts';
import { boot, client, NVME, PAGE, value, vfioGroupOf } from './legacy-helpers.ts';

const P = BigInt(PAGE);
const BASE = 0x10_0000n;
const SLOTS = 32;
const RW = K.VFIO_DMA_MAP_FLAG_READ | K.VFIO_DMA_MAP_FLAG_WRITE;

type Op =
  | { readonly op: 'map'; readonly slot: number; readonly n: number }
  | { readonly op: 'unmap'; readonly slot: number; readonly n: number }
  | { readonly op: 'all' };

const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 3, arbitrary: fc.record({ op: fc.constant('map' as const), slot: fc.nat(SLOTS - 1), n: fc.integer({ min: 1, max: 6 }) }) },
  { weight: 3, arbitrary: fc.record({ op: fc.constant('unmap' as const), slot: fc.nat(SLOTS - 1), n: fc.integer({ min: 1, max: 12 }) }) },
  { weight: 1, arbitrary: fc.constant({ op: 'all' as const }) },
);

interface M { readonly slot: number; readonly n: number }

/** The v2 rules on the model: the errno and size of an unmap, and the mappings left. */
function modelUnmap(ms: M[], slot: number, n: number): { e: string; size: number; left: M[] } {
  const last = slot + n - 1;
  if (ms.some((m) => m.slot < slot && slot <= m.slot + m.n - 1)) return { e: 'EINVAL', size: 0, left: ms };
  if (ms.some((m) => m.slot <= last && last < m.slot + m.n - 1)) return { e: 'EINVAL', size: 0, left: ms };
  const gone = ms.filter((m) => m.slot >= slot && m.slot + m.n - 1 <= last);
  return { e: 'ok', size: gone.reduce((a, m) => a + m.n, 0), left: ms.filter((m) => !gone.includes(m)) };
}

describe('type1 v2 against a model', () => {
  const k = boot();
  const g = vfioGroupOf(k, NVME);

  it('mappings, translations, pins and locked_vm agree; closing leaves nothing', () => {
    fc.assert(fc.property(fc.array(opArb, { minLength: 1, maxLength: 25 }), (ops) => {
      const framesBefore = k.frames.allocated;
      const c = client(k);
      value(c.container().attachGroup(g, c.proc));
      value(c.io(VFIO_SET_IOMMU, K.VFIO_TYPE1v2_IOMMU));
      const iommu = c.container().backend as Type1Iommu;
      const domain = iommu.domains[0]!.domain;
      let model: M[] = [];
      for (const o of ops) {
        if (o.op === 'map') {
          const r = c.call(VFIO_IOMMU_MAP_DMA, vfio_iommu_type1_dma_map, { flags: RW, vaddr: BigInt(c.anon(o.n)), iova: BASE + BigInt(o.slot) * P, size: BigInt(o.n) * P });
          const clash = model.some((m) => m.slot < o.slot + o.n && o.slot < m.slot + m.n);
          expect(r.e).toBe(clash ? 'EEXIST' : 'ok');
          if (!clash) model = [...model, { slot: o.slot, n: o.n }];
        } else {
          const all = o.op === 'all';
          const r = c.call(VFIO_IOMMU_UNMAP_DMA, vfio_iommu_type1_dma_unmap, all
            ? { flags: K.VFIO_DMA_UNMAP_FLAG_ALL, iova: 0n, size: 0n }
            : { flags: 0, iova: BASE + BigInt(o.slot) * P, size: BigInt(o.n) * P });
          const want = all ? { e: 'ok', size: model.reduce((a, m) => a + m.n, 0), left: [] } : modelUnmap(model, o.slot, o.n);
          expect(r.e).toBe(want.e);
          if (r.e === 'ok') expect(r.out.size).toBe(BigInt(want.size) * P);
          model = want.left;
        }
        model.sort((a, b) => a.slot - b.slot);
        expect(iommu.dmas.map((d) => [d.iova, d.size])).toEqual(model.map((m) => [BASE + BigInt(m.slot) * P, BigInt(m.n) * P]));
        const pages = model.reduce((a, m) => a + m.n, 0);
        expect(c.proc.mm.lockedVm).toBe(pages);
        const want = new Map<number, number>();
        for (const d of iommu.dmas) {
          expect(d.iommuPfns).toHaveLength(d.npages);
          d.iommuPfns!.forEach((pfn, i) => want.set(Number(d.iova) + i * PAGE, pfn * PAGE));
        }
        for (let s = 0; s < SLOTS + 12; s++) {
          const iova = Number(BASE) + s * PAGE;
          expect(domain.iovaToPhys(iova)).toBe(want.get(iova) ?? null);
        }
      }
      c.container().detachGroup(g);
      value(c.proc.fds.close(c.fd));
      expect(c.proc.status().VmLck).toBe(0);
      expect(iommu.dmas).toHaveLength(0);
      expect(iommu.domains).toHaveLength(0);
      expect(g.iommuGroup!.domain).toBe(g.iommuGroup!.defaultDomain);
      c.proc.exit();
      // Every pinned frame was unpinned: the process's memory is all freed with it.
      expect(k.frames.allocated).toBe(framesBefore);
    }), { numRuns: 60 });
  });
});
