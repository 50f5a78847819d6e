import { describe, expect, it } from 'vitest';
import { encodeContextEntry, encodePasidEntry } from '../../src/hw/iommu/device-table.ts';
import {
  allocFrames, allocPasidDirectory, clearContext, clearPasidEntry, contextEntryAddress, pasidEntryAddress, writeContext, writePasidEntry,
} from '../../src/hw/iommu/setup.ts';
import { newMemory, tableAllocator } from '../support/hw-bench.ts';

describe('software helpers (setup.ts)', () => {
  it('allocFrames gives contiguous frames or nothing', () => {
    const mem = newMemory(2 ** 30);
    const alloc = tableAllocator(mem, 0x100_0000, 0x10_0000);
    expect(allocFrames(alloc, 2)).toBe(0x100_0000);
    // A free list that hands out scattered frames: no contiguous pair, and what it took is given back.
    const scattered = [0x9000, 0x5000, 0x3000];
    const freed: number[] = [];
    const bad = { alloc: () => scattered.pop() ?? -1, free: (pa: number) => { freed.push(pa); } };
    expect(allocFrames(bad, 2)).toBe(-1);
    expect(freed.sort()).toEqual([0x3000, 0x5000]);
    expect(allocFrames(alloc, 1 << 20)).toBe(-1); // more than the allocator has
  });

  it('writes, finds and clears context and PASID entries', () => {
    const mem = newMemory(2 ** 30);
    const alloc = tableAllocator(mem, 0x100_0000);
    const root = allocFrames(alloc, 1);
    expect(contextEntryAddress(mem, root, 0x0310)).toBe(-1);
    const dir = allocPasidDirectory(alloc, 4);
    const at = writeContext(mem, alloc, root, 0x0310, { mode: 'translate', pasidEnable: true, pdts: 4, pasidDir: dir });
    expect(contextEntryAddress(mem, root, 0x0310)).toBe(at);
    expect(at % 32).toBe(0);
    const e = new Uint32Array(2);
    mem.read64(at, e);
    expect(e[0]).toBe(encodeContextEntry({ mode: 'translate', pasidEnable: true, pdts: 4, pasidDir: dir })[0]);
    expect(writeContext(mem, alloc, root, 0x0311, { mode: 'blocked' })).toBe(at + 32); // same bus, same table
    const pe = writePasidEntry(mem, alloc, dir, 700, { pgtt: 'second', did: 9, ssRoot: 0x5000 });
    expect(pasidEntryAddress(mem, dir, 700)).toBe(pe);
    mem.read64(pe + 8, e);
    expect(e[0]).toBe(encodePasidEntry({ pgtt: 'second', did: 9, ssRoot: 0x5000 })[2]);
    expect(clearPasidEntry(mem, dir, 700)).toBe(true);
    mem.read64(pe, e);
    expect(e[0]).toBe(0);
    expect(clearPasidEntry(mem, dir, 5)).toBe(false); // no PASID table for PASIDs 0-63
    expect(clearContext(mem, root, 0x0310)).toBe(true);
    expect(clearContext(mem, root, 0x0900)).toBe(false);
  });

  it('encoders refuse fields that do not fit', () => {
    expect(() => encodeContextEntry({ mode: 'translate', ridPasid: 1 << 20 })).toThrow(RangeError);
    expect(() => encodeContextEntry({ mode: 'translate', pasidDir: 0x1001 })).toThrow(RangeError);
    expect(() => encodePasidEntry({ pgtt: 'first', did: 0x10000 })).toThrow(RangeError);
    expect(() => encodePasidEntry({ pgtt: 'first', did: 1, fsRoot: 2 ** 52 })).toThrow(RangeError);
  });
});
