import { PhysicalMemory, PAGE_SIZE } from '../../src/hw/memory/physical-memory.ts';
import type { TableAllocator } from '../../src/hw/iommu/pgtable/builder.ts';

/** A bump allocator of zeroed table frames in [base, base + size), with frees recycled: a test bench's kernel. */
export function tableAllocator(mem: PhysicalMemory, base = 0x1000_0000, size = 0x1000_0000): TableAllocator & { used(): number } {
  let next = base;
  const free: number[] = [];
  let used = 0;
  return {
    alloc: () => {
      const pa = free.pop() ?? (next < base + size ? (next += PAGE_SIZE) - PAGE_SIZE : -1);
      if (pa >= 0) { mem.discardFrame(pa / PAGE_SIZE); used++; }
      return pa;
    },
    free: (pa) => { mem.discardFrame(pa / PAGE_SIZE); free.push(pa); used--; },
    used: () => used,
  };
}

export function newMemory(size = 64 * 2 ** 30): PhysicalMemory {
  return new PhysicalMemory({ size });
}
