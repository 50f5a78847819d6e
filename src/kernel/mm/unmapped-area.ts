// get_unmapped_area(): where mmap() puts a mapping. x86-64's top-down layout: the fixed address, else the
// hint if it is free, else the highest gap below mmap_base, else (as the bottom-up fallback) the lowest
// gap above mmap_min_addr.

import { PAGE_SIZE } from '../../hw/memory/physical-memory.ts';
import { fail, ok, type Result } from '../errno.ts';
import { MAP_FIXED, MAP_FIXED_NOREPLACE, type MmLayout } from './mman.ts';
import { rangeFree, type Vma } from './vma.ts';

const hex = (n: number): string => `0x${n.toString(16)}`;

/**
 * A start address for `len` bytes (page aligned) among the sorted `vmas`. With MAP_FIXED or
 * MAP_FIXED_NOREPLACE: EINVAL if unaligned, ENOMEM if it leaves user space, EPERM below mmap_min_addr,
 * EEXIST (NOREPLACE) over a mapping. Otherwise ENOMEM when no gap fits.
 */
export function getUnmappedArea(vmas: readonly Vma[], layout: MmLayout, addr: number, len: number, flags: number): Result<number> {
  const { mmapMinAddr, mmapBase, taskSize } = layout;
  if (flags & (MAP_FIXED | MAP_FIXED_NOREPLACE)) {
    if (!Number.isSafeInteger(addr) || addr % PAGE_SIZE !== 0) return fail('EINVAL', `fixed address ${hex(addr)} is not page aligned`);
    if (addr < 0 || addr > taskSize - len) return fail('ENOMEM', `${hex(addr)}+${hex(len)} is outside user space`);
    if (addr < mmapMinAddr) return fail('EPERM', `${hex(addr)} is below vm.mmap_min_addr (${hex(mmapMinAddr)})`);
    if (flags & MAP_FIXED_NOREPLACE && !rangeFree(vmas, addr, addr + len)) {
      return fail('EEXIST', `${hex(addr)}+${hex(len)} overlaps a mapping (MAP_FIXED_NOREPLACE)`);
    }
    return ok(addr);
  }
  const hint = Number.isSafeInteger(addr) && addr > 0 ? Math.ceil(addr / PAGE_SIZE) * PAGE_SIZE : 0;
  if (hint >= mmapMinAddr && hint <= taskSize - len && rangeFree(vmas, hint, hint + len)) return ok(hint);
  const top = findGap(vmas, len, mmapMinAddr, Math.min(mmapBase, taskSize), true);
  if (top >= 0) return ok(top);
  const bottom = findGap(vmas, len, mmapMinAddr, taskSize, false);
  if (bottom >= 0) return ok(bottom);
  return fail('ENOMEM', `no free range of ${hex(len)} bytes`);
}

// The first gap of at least `len` bytes inside [low, high), scanning from the top or from the bottom;
// its highest (top-down) or lowest start, or -1.
function findGap(vmas: readonly Vma[], len: number, low: number, high: number, topDown: boolean): number {
  const n = vmas.length;
  for (let k = 0; k <= n; k++) {
    const i = topDown ? n - k : k;
    const gapStart = Math.max(i > 0 ? (vmas[i - 1] as Vma).end : 0, low);
    const gapEnd = Math.min(i < n ? (vmas[i] as Vma).start : Infinity, high);
    if (gapEnd - gapStart >= len) return topDown ? gapEnd - len : gapStart;
  }
  return -1;
}
