// The NESTED domain (Linux's IOMMU_DOMAIN_NESTED as intel-iommu builds it, drivers/iommu/intel/nested.c):
// a user-owned first-stage table (a guest's x86-64 page table, its root and every table and leaf a guest
// physical address) on top of a NEST_PARENT paging domain whose second stage maps GPA to host PA. The
// domain has no map/unmap: the guest edits its table in its own memory and tells the IOMMU through
// IOMMU_HWPT_INVALIDATE (cacheInvalidateUser), exactly as a guest driver would flush a real IOTLB.
//
// The VT-d stage-1 data (struct iommu_hwpt_vtd_s1) is kept as given; like intel, its address width and
// flags are checked against the hardware when the domain is attached (EINVAL), not at allocation.

import { entryAddress, FS_P, FS_PS, levelIndex, levelSize } from '../../hw/iommu/pgtable/format.ts';
import { fail, ok, type Result } from '../errno.ts';
import type { IommuDomain, IopfHandler, IoPageTableDomain, PagingDomain } from './domain.ts';
import { copyStructFromUserArray, u32At, u64At, type IommuUserDataArray } from './user-data.ts';

// Kernel copies of the uapi values (include/uapi/linux/iommufd.h); tests check them against src/uapi.
export const IOMMU_HWPT_DATA_VTD_S1 = 1;
export const IOMMU_HWPT_INVALIDATE_DATA_VTD_S1 = 0;
export const IOMMU_VTD_S1_SRE = 1 << 0;
export const IOMMU_VTD_S1_EAFE = 1 << 1;
export const IOMMU_VTD_S1_WPE = 1 << 2;
export const IOMMU_VTD_INV_FLAGS_LEAF = 1 << 0;
/** sizeof(struct iommu_hwpt_vtd_s1) and offsetofend(__reserved): the struct has had one size. */
export const VTD_S1_SIZE = 24;
/** sizeof(struct iommu_hwpt_vtd_s1_invalidate), likewise. */
export const VTD_S1_INV_SIZE = 24;

const U64_MAX = (1n << 64n) - 1n;
const PAGE = 4096n;

/** struct iommu_hwpt_vtd_s1, decoded. */
export interface VtdS1Config {
  /** IOMMU_VTD_S1_* bits (u64 in the struct; the defined ones fit a number). */
  readonly flags: bigint;
  /** The guest's first-stage root, a GPA. */
  readonly pgtblAddr: bigint;
  /** 48 (4-level) or 57 (5-level); anything else is refused at attach. */
  readonly addrWidth: number;
}

export function decodeVtdS1(b: Uint8Array): VtdS1Config {
  return { flags: u64At(b, 0), pgtblAddr: u64At(b, 8), addrWidth: u32At(b, 16) };
}

/** What the owning driver does for a nested domain's user invalidation: flush its IOTLB tags. */
export interface NestedCacheFlusher {
  /**
   * Invalidate the IOTLB entries of `domain` for `pages` 4 KiB pages from `addr` (a guest IOVA), or all of
   * them when `pages` is null, under the domain's DID at every PASID it is attached at on the unit.
   */
  flushNested(domain: NestedDomain, addr: bigint, pages: bigint | null): void;
}

/** Outcome of cache_invalidate_user: the entries handled before any failure, and the failure (if any). */
export interface InvalidateOutcome {
  readonly handled: number;
  readonly result: Result;
}

/** A domain with domain_ops->cache_invalidate_user (what IOMMU_HWPT_INVALIDATE calls on a nested HWPT). */
export interface UserInvalidatable {
  cacheInvalidateUser(array: IommuUserDataArray): InvalidateOutcome;
}

export class NestedDomain implements IommuDomain, UserInvalidatable {
  readonly type = 'nested' as const;
  readonly aperture = { start: 0, last: -1 };
  readonly pgsizeBitmap = 0;
  iopfHandler: IopfHandler | null = null;

  constructor(
    readonly id: number,
    readonly owner: unknown,
    /** The stage-2 parent (intel's dmar_domain->s2_domain). */
    readonly parent: IoPageTableDomain,
    readonly s1: VtdS1Config,
    private readonly flusher: NestedCacheFlusher,
  ) {}

  isPaging(): this is PagingDomain { return false; }

  /** The PASID entry's SSADE follows the parent's dirty tracking (intel_pasid_setup_nested). */
  get dirtyTracking(): boolean { return this.parent.dirtyTracking; }

  /** Snooping is a property of the second stage: the parent's. */
  get forceSnooping(): boolean { return this.parent.forceSnooping; }

  /** First-stage depth for the address width (valid widths only; attach checks). */
  get fsLevels(): 4 | 5 { return this.s1.addrWidth === 57 ? 5 : 4; }

  /**
   * intel_nested_cache_invalidate_user(): the array's type must be VTD_S1 (EINVAL, even for zero entries);
   * each entry is copied by the array rules (EINVAL/EFAULT), unknown flags or a non-zero __reserved →
   * EOPNOTSUPP, an address not 4 KiB aligned, or npages = U64_MAX ("all") with a non-zero address →
   * EINVAL. Entries before a failure have been flushed and are counted.
   */
  /**
   * What `iova` translates to now, from the tables in memory (not the IOTLB): the guest's first-stage walk,
   * every table and the leaf read at a GPA through the parent, then the parent's translation of the GPA.
   * Null where either stage has no mapping. For checks and tests, as iommu_iova_to_phys.
   */
  iovaToPhys(iova: number): number | null {
    const e = new Uint32Array(2);
    // Attach refuses roots at or above 2^52, so the number is exact; the low 12 bits are ignored, as in the entry.
    let table = Number(this.s1.pgtblAddr & ~0xfffn);
    for (let level: number = this.fsLevels; level >= 1; level--) {
      if (!this.parent.readThrough64(table + levelIndex(iova, level) * 8, e)) return null;
      const lo = e[0] as number;
      if ((lo & FS_P) === 0) return null;
      const next = entryAddress(lo, e[1] as number);
      if (level === 1 || (lo & FS_PS) !== 0) {
        const size = levelSize(level);
        return this.parent.iovaToPhys(next - (next % size) + (iova % size));
      }
      table = next;
    }
    return null;
  }

  cacheInvalidateUser(array: IommuUserDataArray): InvalidateOutcome {
    if (array.type !== IOMMU_HWPT_INVALIDATE_DATA_VTD_S1) {
      return { handled: 0, result: fail('EINVAL', `invalidation data_type ${array.type} is not IOMMU_HWPT_INVALIDATE_DATA_VTD_S1`) };
    }
    let handled = 0;
    for (let i = 0; i < array.entryNum; i++) {
      const b = copyStructFromUserArray(array, IOMMU_HWPT_INVALIDATE_DATA_VTD_S1, i, VTD_S1_INV_SIZE, VTD_S1_INV_SIZE);
      if (!b.ok) return { handled, result: b };
      const addr = u64At(b.value, 0);
      const npages = u64At(b.value, 8);
      const flags = u32At(b.value, 16);
      if ((flags & ~IOMMU_VTD_INV_FLAGS_LEAF) !== 0 || u32At(b.value, 20) !== 0) {
        return { handled, result: fail('EOPNOTSUPP', `entry ${i}: unknown flags 0x${(flags & ~IOMMU_VTD_INV_FLAGS_LEAF).toString(16)} or __reserved set`) };
      }
      if (addr % PAGE !== 0n || (npages === U64_MAX && addr !== 0n)) {
        return { handled, result: fail('EINVAL', `entry ${i}: addr 0x${addr.toString(16)} is not 4 KiB aligned, or npages U64_MAX (all) with a non-zero addr`) };
      }
      // LEAF only says no table entries changed; the IOTLB holds leaf translations only, so both flush alike.
      if (npages !== 0n) this.flusher.flushNested(this, addr, npages === U64_MAX ? null : npages);
      handled++;
    }
    return { handled, result: ok() };
  }
}
