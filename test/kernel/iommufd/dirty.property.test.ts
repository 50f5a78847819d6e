// Dirty tracking as a property, end to end: random IOAS maps (2 MiB slots mapped with 2 MiB leaves or
// with 4 KiB leaves), tracking on, random device DMA reads and writes through the machine (fabric, IOMMU
// walk, D bits set by the hardware), then IOMMU_HWPT_GET_DIRTY_BITMAP through the byte-level dispatch at a
// random granule. The oracle is a model of the leaves each write dirtied: the bitmap must hold exactly the
// granules those leaves overlap; a NO_CLEAR read repeats; after a clearing read the next one is empty;
// reads never set bits; with tracking off, writes leave every D bit clear in the page table.

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { IoPageTableDomain } from '../../../src/kernel/iommu/domain.ts';
import { PAGE, value } from '../../uapi/dispatch-helpers.ts';
import { dirtySetup, setBits, SZ_2M } from './dirty-setup.ts';

const BASE = 0x4000_0000;
const GRANULES = [PAGE, 2 * PAGE, 16 * PAGE, SZ_2M] as const;

interface Access { slot: number; page: number; off: number; write: boolean }

const scenario = fc.record({
  /** Per 2 MiB slot: mapped with 2 MiB leaves (true) or 4 KiB leaves. */
  huge: fc.array(fc.boolean(), { minLength: 1, maxLength: 4 }),
  accesses: fc.array(fc.record({ slot: fc.nat(3), page: fc.nat(511), off: fc.nat(PAGE - 8), write: fc.boolean() }), { maxLength: 40 }),
  again: fc.array(fc.record({ slot: fc.nat(3), page: fc.nat(511), off: fc.nat(PAGE - 8), write: fc.boolean() }), { maxLength: 20 }),
  /** Where the third read splits the range in two (a fraction of it, rounded down to the granule). */
  split: fc.double({ min: 0, max: 1, noNaN: true }),
  later: fc.array(fc.record({ slot: fc.nat(3), page: fc.nat(511), off: fc.nat(PAGE - 8), write: fc.boolean() }), { maxLength: 10 }),
  granule: fc.constantFrom(...GRANULES),
  noClear: fc.boolean(),
  /** Byte offset of the bitmap in its buffer (any alignment). */
  bitmapOffset: fc.nat(PAGE + 15),
});

describe('dirty tracking (property)', () => {
  it('the bitmap reports exactly the granules DMA writes dirtied, at any granule and leaf size', () => {
    fc.assert(fc.property(scenario, (sc) => {
      const s = dirtySetup();
      const slots = sc.huge.length;
      sc.huge.forEach((huge, i) => { s.map(BASE + i * SZ_2M, SZ_2M, { smallLeaves: !huge }); });
      const d = s.hwpt.domain;
      if (!(d instanceof IoPageTableDomain)) throw new Error('the ioasis driver allocates IoPageTable domains');
      sc.huge.forEach((huge, i) => { expect(d.table.lookup(BASE + i * SZ_2M)?.pageSize).toBe(huge ? SZ_2M : PAGE); });
      expect(s.setTracking(s.hwptId, true).e).toBe('ok');

      const length = slots * SZ_2M;
      const bits = Math.ceil(length / sc.granule);
      const buf = s.c.anon(Math.ceil((bits / 8 + sc.bitmapOffset) / PAGE) + 1);
      const at = buf + sc.bitmapOffset;
      const read = (noClear: boolean, from = 0, to = length): number[] => {
        value(s.c.proc.mm.write(at, new Uint8Array(Math.ceil(bits / 8))));
        if (from === to) return [];
        expect(s.getBitmap({ iova: BASE + from, length: to - from, page_size: sc.granule, data: at, flags: noClear ? 1 : 0 }).e).toBe('ok');
        const got = new Uint8Array(Math.ceil(bits / 8));
        value(s.c.proc.mm.read(at, got));
        return setBits(got);
      };
      const iovaOf = (a: Access): number => BASE + (a.slot % slots) * SZ_2M + a.page * PAGE + a.off;

      // The model: the leaves writes went through (offset from BASE, size), and the granules of their
      // parts inside [from, to).
      const run = (accesses: readonly Access[]): Map<number, number> => {
        const leaves = new Map<number, number>();
        for (const a of accesses) {
          const iova = iovaOf(a);
          expect(s.dma(iova, a.write)).toBe('ok');
          if (!a.write) continue;
          const leaf = sc.huge[a.slot % slots] === true ? SZ_2M : PAGE;
          leaves.set(Math.floor((iova - BASE) / leaf) * leaf, leaf);
        }
        return leaves;
      };
      const granules = (leaves: Map<number, number>, from = 0, to = length): number[] => {
        const out = new Set<number>();
        for (const [start, size] of leaves) {
          const lo = Math.max(start, from);
          const hi = Math.min(start + size, to);
          for (let g = Math.floor(lo / sc.granule); lo < hi && g <= Math.floor((hi - 1) / sc.granule); g++) out.add(g);
        }
        return [...out].sort((x, y) => x - y);
      };
      const want = granules(run(sc.accesses));
      expect(read(sc.noClear)).toEqual(want);
      // NO_CLEAR left the bits for the next read; a clearing read reports them once more.
      if (sc.noClear) expect(read(false)).toEqual(want);
      expect(read(false)).toEqual([]);

      // Writes after a clearing read are found again, also by two reads that split the range anywhere. A
      // read clears the whole PTE of a leaf it overlaps (as Linux does), so the second read does not see
      // again a leaf that straddles the split.
      const again = run(sc.again);
      const split = Math.floor((sc.split * length) / sc.granule) * sc.granule;
      expect(read(false, 0, split)).toEqual(granules(again, 0, split));
      const rest = new Map([...again].filter(([start]) => start >= split));
      expect(read(false, split, length).map((g) => g + split / sc.granule)).toEqual(granules(rest, split, length));
      expect(read(false)).toEqual([]);

      // Reads never set D.
      for (const a of sc.later) expect(s.dma(iovaOf(a), false)).toBe('ok');
      expect(read(true)).toEqual([]);

      // Tracking off: writes go through, no leaf gets D.
      expect(s.setTracking(s.hwptId, false).e).toBe('ok');
      for (const a of sc.later) expect(s.dma(iovaOf(a), true)).toBe('ok');
      for (const a of sc.later) expect(d.table.lookup(iovaOf(a))?.dirty).toBe(false);
      expect(s.getBitmap({ iova: BASE, length, page_size: sc.granule, data: at }).e).toBe('EINVAL');
    }), { numRuns: 30 });
  });
});
