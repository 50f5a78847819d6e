// IoPageTable.scanDirty(): the one-walk read-and-clear of D bits that the hardware walker set, for both
// formats: marks clipped to the range, huge leaves, NO_CLEAR, the cleared span, the A-bit skip of
// untouched subtrees, and a split of a dirty large leaf keeping its D bits findable.

import { describe, expect, it } from 'vitest';
import { IoPageTable, type DirtyScan } from '../../src/hw/iommu/pgtable/builder.ts';
import { newWalkOut, PageWalker, type Access } from '../../src/hw/iommu/pgtable/walk.ts';
import { DEFAULT_IOMMU_CAPS } from '../../src/hw/iommu/types.ts';
import { newMemory, tableAllocator } from '../support/hw-bench.ts';

const R: Access = { write: false, exec: false, priv: false };
const W: Access = { write: true, exec: false, priv: false };
const PAGE = 4096;
const MiB = 2 ** 20;

function setup(format: 'first' | 'second') {
  const mem = newMemory();
  const pt = new IoPageTable(mem, tableAllocator(mem), { format, levels: 4, pageSize2M: true, pageSize1G: true });
  const walker = new PageWalker(mem, DEFAULT_IOMMU_CAPS);
  const out = newWalkOut();
  const walk = (iova: number, access: Access): void => {
    const ok = format === 'second' ? walker.walkSecond(pt.root, 4, iova, access, true, out) : walker.walkFirst(pt.root, 4, iova, access, out);
    if (!ok) throw new Error(`walk of 0x${iova.toString(16)} faulted: ${out.reason}`);
  };
  const scan = (iova: number, size: number, clear: boolean): { marks: [number, number][]; out: DirtyScan } => {
    const marks: [number, number][] = [];
    const o: DirtyScan = { clearedStart: -1, clearedEnd: -1, dirtyLeaves: 0 };
    pt.scanDirty(iova, size, clear, (at, bytes) => { marks.push([at, bytes]); }, o);
    return { marks, out: o };
  };
  return { pt, walk, scan };
}

describe.each(['second', 'first'] as const)('%s-stage scanDirty', (format) => {
  it('reports written leaves only, clipped to the range; NO_CLEAR keeps them; a clearing scan empties the next', () => {
    const { pt, walk, scan } = setup(format);
    expect(pt.map(0, 0x100_0000, 64 * PAGE, { read: true, write: true, smallPagesOnly: true })).toBe(true);
    expect(pt.map(4 * MiB, 8 * MiB, 2 * MiB, { read: true, write: true })).toBe(true);
    for (const p of [1, 9, 10, 63]) walk(p * PAGE + 5, W);
    walk(2 * PAGE, R);
    walk(4 * MiB + 3 * PAGE, W);
    const all = scan(0, 6 * MiB, false);
    expect(all.marks).toEqual([[PAGE, PAGE], [9 * PAGE, PAGE], [10 * PAGE, PAGE], [63 * PAGE, PAGE], [4 * MiB, 2 * MiB]]);
    expect(all.out.clearedStart).toBe(-1);
    // A range that cuts the huge leaf: the mark is the part inside; the whole leaf is cleared.
    const part = scan(10 * PAGE, 4 * MiB + PAGE - 10 * PAGE, true);
    expect(part.marks).toEqual([[10 * PAGE, PAGE], [63 * PAGE, PAGE], [4 * MiB, PAGE]]);
    expect([part.out.clearedStart, part.out.clearedEnd, part.out.dirtyLeaves]).toEqual([10 * PAGE, 6 * MiB, 3]);
    expect(pt.lookup(4 * MiB + 7 * PAGE)?.dirty).toBe(false);
    expect(scan(0, 6 * MiB, true).marks).toEqual([[PAGE, PAGE], [9 * PAGE, PAGE]]);
    expect(scan(0, 6 * MiB, true).marks).toEqual([]);
    // Written again after the clears (pointer A bits were cleared too): found again.
    walk(9 * PAGE, W);
    walk(5 * MiB, W);
    expect(scan(0, 6 * MiB, true).marks).toEqual([[9 * PAGE, PAGE], [4 * MiB, 2 * MiB]]);
  });

  it('a dirty 2 MiB leaf split by a partial unmap keeps its D bits findable in the 4 KiB leaves', () => {
    const { pt, walk, scan } = setup(format);
    expect(pt.map(2 * MiB, 4 * MiB, 2 * MiB, { read: true, write: true })).toBe(true);
    walk(2 * MiB + 100, W);
    expect(pt.unmap(2 * MiB, PAGE)).toBe(PAGE);
    const found = scan(0, 4 * MiB, true);
    expect(found.marks.length).toBe(511);
    expect(found.marks[0]).toEqual([2 * MiB + PAGE, PAGE]);
    expect(scan(0, 4 * MiB, true).marks).toEqual([]);
  });
});
