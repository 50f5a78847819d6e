// An IOAS's populated IOVA range and what it needs of its storage (Linux's struct iopt_area in
// io_pagetable.h), with the types io-pagetable.ts and the domain layer exchange about areas: the slices a
// map places, its hooks, and who reserved a range.

import { PAGE_SIZE } from '../../hw/memory/physical-memory.ts';
import type { Result } from '../errno.ts';
import { u64ToNumber } from './iova-intervals.ts';

/** What an area needs of its PFN storage (IoptPages implements it; tests may stub it). */
export interface AreaPages {
  /** Pages in the storage. */
  readonly npages: number;
  /** Created for a writeable map: a WRITE area needs it (else EPERM). */
  readonly writable: boolean;
  /** pages->uptr (user VA) or the file start, aligned down to a page: byte 0 of page index 0. */
  readonly base: number;
  /** pages->type; 'dmabuf' areas cannot be split. */
  readonly kind?: string;
  /** kref_get / kref_put (the last put releases the storage). */
  get(): void;
  put(): void;
}

/** Who reserved a range: iopt_remove_reserved_iova() removes by owner identity. */
export interface ReservedOwner {
  readonly kind: 'device' | 'domain' | 'test';
}
/** The owner of IOMMU_TEST_OP_ADD_RESERVED ranges (NULL in Linux). */
export const TEST_RESERVATION: ReservedOwner = Object.freeze({ kind: 'test' as const });

/** One populated IOVA range: [iova, last] maps bytes [startByte, startByte + length) of `pages`. */
export class IoptArea<P extends AreaPages = AreaPages> {
  /** The storage; null while the map is still in progress (unmap sees EBUSY). */
  pages: P | null = null;
  /** iopt_area->num_locks: objects (HW queue, internal access) that forbid unmap (EBUSY). */
  numLocks = 0;
  /** iopt_area->num_accesses: access pins inside the area (unmap notifies, split refuses). */
  numAccesses = 0;
  /** Set while unmap waits for accesses to unpin: new access pins fail. */
  preventAccess = false;
  /** The domain holding the PFNs (set by the domain layer); blocks split with large pages. */
  storageDomain: unknown = null;
  // Number views computed once (the map and unmap paths read them per area): an area lies inside its
  // storage, so its length in bytes is a safe integer.
  /** The length in bytes. */
  readonly byteLength: number;
  /** area->page_offset. */
  readonly pageOffset: number;
  /** First page index of the storage the area uses. */
  readonly firstIndex: number;
  /** Last page index (inclusive). */
  readonly lastIndex: number;

  constructor(
    readonly iova: bigint,
    readonly last: bigint,
    /** The storage, also while `pages` is still null. */
    readonly storage: P,
    /** Offset of the first byte from storage.base. */
    readonly startByte: number,
    readonly prot: number,
    /** last - iova + 1 when the caller has it as a number already. */
    byteLength?: number,
  ) {
    this.byteLength = byteLength ?? u64ToNumber(last - iova) + 1;
    // From the page index rather than `%`: on a double (start bytes and IOVAs are above 2^31) V8's
    // modulo is a C call, the floor of a division by a power of two is exact and inline.
    this.firstIndex = Math.floor(startByte / PAGE_SIZE);
    this.pageOffset = startByte - this.firstIndex * PAGE_SIZE;
    this.lastIndex = Math.floor((startByte + this.byteLength - 1) / PAGE_SIZE);
  }

  get length(): bigint { return this.last - this.iova + 1n; }
  /** iopt_area_start_byte(): the storage byte at `iova`. */
  startByteAt(iova: bigint): number { return this.startByte + Number(iova - this.iova); }
  /** The storage page index holding `iova`. */
  indexAt(iova: bigint): number { return Math.floor(this.startByteAt(iova) / PAGE_SIZE); }
}

/** One element of a map: bytes [startByte, startByte + length) of `pages`, placed contiguously. */
export interface PagesSlice<P extends AreaPages = AreaPages> {
  readonly pages: P;
  readonly startByte: number;
  readonly length: bigint;
}

export interface MapOptions<P extends AreaPages> extends MapHooks<P> {
  /** IOMMU_IOAS_MAP_FIXED_IOVA: map at this IOVA; otherwise it is allocated. */
  readonly iova?: bigint;
}

export interface MapHooks<P extends AreaPages> {
  /** iopt_area_fill_domains(): runs after the IOVA is reserved, before the pages are published. */
  readonly fill?: (area: IoptArea<P>) => Result;
  /** Undo of `fill` for the areas filled before a later one failed. */
  readonly unfill?: (area: IoptArea<P>) => void;
}

export interface IoptHooks<P extends AreaPages> {
  /** iopt_area_unfill_domains(): the area is leaving (pages already unpublished). */
  unfillArea?(area: IoptArea<P>, pages: P): void;
  /** iommufd_access_notify_unmap(): accesses must unpin inside [iova, iova + length). */
  notifyUnmap?(iova: bigint, length: bigint): void;
}
