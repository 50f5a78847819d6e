import { describe, expect, it } from 'vitest';
import { PAGE_SIZE, PhysicalMemory } from '../../../src/hw/memory/physical-memory.ts';
import { FrameAllocator, NO_FRAME } from '../../../src/kernel/mm/frame-allocator.ts';

function setup(count = 4, firstPfn = 8) {
  const memory = new PhysicalMemory({ size: 64 * PAGE_SIZE });
  return { memory, frames: new FrameAllocator(memory, { firstPfn, count }) };
}

describe('FrameAllocator', () => {
  it('hands out frames of its range with reference count 1 until ENOMEM', () => {
    const { memory, frames } = setup(3, 8);
    const got = [frames.alloc(), frames.alloc(), frames.alloc()];
    expect(got.sort((a, b) => a - b)).toEqual([8, 9, 10]);
    for (const pfn of got) expect(memory.refCount(pfn)).toBe(1);
    expect(frames.alloc()).toBe(NO_FRAME);
    expect([frames.allocated, frames.free, frames.total]).toEqual([3, 0, 3]);
  });

  it('frees at the last put, discards the data and reuses the frame', () => {
    const { memory, frames } = setup(1);
    const pfn = frames.alloc();
    memory.write(pfn * PAGE_SIZE, new Uint8Array([1, 2, 3]));
    frames.get(pfn);
    expect(frames.put(pfn)).toBe(false);
    expect(frames.isAllocated(pfn)).toBe(true);
    expect(frames.put(pfn)).toBe(true);
    expect(frames.allocated).toBe(0);
    expect(memory.populatedFrames).toBe(0);
    const again = frames.alloc();
    expect(again).toBe(pfn);
    expect(memory.read32(again * PAGE_SIZE)).toBe(0);
  });

  it('skips frames someone outside the allocator holds', () => {
    const { memory, frames } = setup(2, 8);
    memory.addRef(8, 1);
    expect(frames.alloc()).toBe(9);
    expect(frames.alloc()).toBe(NO_FRAME);
  });

  it('a pinned frame stays allocated until the pin is dropped', () => {
    const { memory, frames } = setup(2);
    const pfn = frames.alloc();
    frames.pin(pfn);
    expect([memory.refCount(pfn), memory.pinCount(pfn)]).toEqual([2, 1]);
    expect(frames.put(pfn)).toBe(false);
    expect(frames.isAllocated(pfn)).toBe(true);
    expect(frames.unpin(pfn)).toBe(true);
    expect(frames.allocated).toBe(0);
  });

  it('reference operations on a free frame are bugs', () => {
    const { frames } = setup(2);
    expect(() => frames.put(8)).toThrow(/not allocated/);
    expect(() => frames.get(100)).toThrow(/not allocated/);
    const pfn = frames.alloc();
    expect(() => frames.unpin(pfn)).toThrow(/not pinned/);
  });

  it('lists allocated frames in order and grows its free list', () => {
    const { frames } = setup(60, 0);
    const all = Array.from({ length: 60 }, () => frames.alloc());
    for (const pfn of all) frames.put(pfn);
    expect(frames.allocated).toBe(0);
    const some = Array.from({ length: 50 }, () => frames.alloc());
    expect(new Set(some).size).toBe(50);
    const listed: number[] = [];
    frames.forEachAllocated((pfn) => listed.push(pfn));
    expect(listed).toEqual([...some].sort((a, b) => a - b));
  });

  it('rejects a range outside memory', () => {
    const memory = new PhysicalMemory({ size: 16 * PAGE_SIZE });
    expect(() => new FrameAllocator(memory, { firstPfn: 8, count: 9 })).toThrow(RangeError);
    expect(new FrameAllocator(memory, { firstPfn: 4 }).total).toBe(12);
  });
});
