// The IOMMU driver's memory for tables and queues: 4 KiB frames from the kernel's FrameAllocator, given as
// physical addresses (what the hardware's TableAllocator speaks). Root, context and PASID-directory tables
// and the queues need physically contiguous frames; contiguous() finds a run, as alloc_pages(order) would.

import type { TableAllocator } from '../../hw/iommu/pgtable/builder.ts';
import { NO_FRAME, type FrameAllocator } from '../mm/frame-allocator.ts';

const FRAME = 4096;

export class TableFrames implements TableAllocator {
  constructor(readonly frames: FrameAllocator) {}

  alloc(): number {
    const pfn = this.frames.alloc();
    return pfn === NO_FRAME ? -1 : pfn * FRAME;
  }

  free(pa: number): void {
    this.frames.put(pa / FRAME);
  }

  /** PA of `count` physically contiguous zeroed frames, or -1. */
  contiguous(count: number): number {
    if (count <= 1) return this.alloc();
    const spare: number[] = [];
    let run: number[] = [];
    for (;;) {
      const pfn = this.frames.alloc();
      if (pfn === NO_FRAME) {
        for (const p of [...spare, ...run]) this.frames.put(p);
        return -1;
      }
      if (run.length > 0 && pfn !== (run[run.length - 1] as number) + 1) {
        spare.push(...run);
        run = [];
      }
      run.push(pfn);
      if (run.length === count) break;
    }
    for (const p of spare) this.frames.put(p);
    return (run[0] as number) * FRAME;
  }

  /** Free `count` contiguous frames from `pa`. */
  freeContiguous(pa: number, count: number): void {
    for (let i = 0; i < count; i++) this.free(pa + i * FRAME);
  }
}
