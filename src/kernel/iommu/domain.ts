// IOMMU domains (Linux's struct iommu_domain): what a device's DMA is translated by. BLOCKED and IDENTITY
// carry no page table; DMA (the kernel's default) and UNMANAGED (paging for user space) are paging domains
// backed by a second-stage IoPageTable in simulated memory. The interface is driver-independent: the
// ioasis hardware driver's paging domain implements it, and so can a mock driver's.

import type { PhysicalMemory } from '../../hw/memory/physical-memory.ts';
import { IoPageTable, type DirtyScan, type TableAllocator } from '../../hw/iommu/pgtable/builder.ts';
import { entryAddress, levelIndex, levelSize, SS_PS, SS_R, SS_W } from '../../hw/iommu/pgtable/format.ts';
import { fail, ok, type Result } from '../errno.ts';
import type { IopfGroup } from './io-pgfault.ts';

export type DomainType = 'blocked' | 'identity' | 'dma' | 'unmanaged' | 'nested';

export const SZ_4K = 0x1000;
export const SZ_2M = 0x20_0000;
export const SZ_1G = 0x4000_0000;

/**
 * v % SZ_4K for a non-negative integer (and zero exactly when v % SZ_4K is, for any v): `%` on a double
 * (IOVAs are above 2^31) is a C call in V8, the floor of a division by a power of two is exact and inline.
 */
const off4K = (v: number): number => v - Math.floor(v / 4096) * 4096;

/** IOMMU_READ / IOMMU_WRITE. */
export interface MapProt {
  readonly read: boolean;
  readonly write: boolean;
  /** IOMMU_OPTION_HUGE_PAGES = 0 on the IOAS: iommufd limits the domain to PAGE_SIZE leaves. */
  readonly smallPagesOnly?: boolean;
}

/** Called with a page request group routed to the domain (Linux: domain->iopf_handler). */
export type IopfHandler = (group: IopfGroup) => void;

/** Invalidates a domain's cached translations on one IOMMU (the driver's iotlb_sync for one unit). */
export interface IotlbFlusher {
  flushRange(domain: IommuDomain, iova: number, size: number): void;
}

/** The driver-independent view of a domain. */
export interface IommuDomain {
  /** Unique among the domains of one driver (for logs and tests); the driver numbers them. */
  readonly id: number;
  readonly type: DomainType;
  /** The driver that owns it: a domain may only be attached to devices of that driver (else EINVAL). */
  readonly owner: unknown;
  /** IOVA range that may be mapped, inclusive (paging domains; [0, -1] otherwise). */
  readonly aperture: { readonly start: number; readonly last: number };
  /** Leaf sizes the domain can map (bit n set: 2^n bytes). 0 for non-paging domains. */
  readonly pgsizeBitmap: number;
  /** Second-stage A/D updates requested (SSADE), for dirty tracking. */
  readonly dirtyTracking: boolean;
  /** IO page faults on this domain go here; null: none (a page request is answered INVALID). */
  iopfHandler: IopfHandler | null;
  /** Snooping forced on every DMA through the domain (intel's dmar_domain->force_snooping). */
  readonly forceSnooping: boolean;
  isPaging(): this is PagingDomain;
}

export interface PagingDomain extends IommuDomain {
  /** Map [iova, iova+size) to [pa, pa+size): EINVAL for misalignment or outside the aperture, EEXIST, ENOMEM. */
  map(iova: number, pa: number, size: number, prot: MapProt): Result;
  /** Unmap and invalidate the IOTLB of every IOMMU the domain is attached to; returns the bytes unmapped. */
  unmap(iova: number, size: number): number;
  /** The PA `iova` translates to, or null. */
  iovaToPhys(iova: number): number | null;
  /** A dirty bit of the leaf mapping `iova`, cleared as read (read-and-clear). */
  readAndClearDirty(iova: number): boolean;
  addFlusher(f: IotlbFlusher): void;
  removeFlusher(f: IotlbFlusher): void;
  /**
   * The enforce_cache_coherency domain op: force snooping from now on. False when the owning unit has no
   * snoop control (the domain is left as it was).
   */
  enforceCacheCoherency(): boolean;
  /** domain->dirty_ops: set on domains allocated for dirty tracking, null otherwise (EOPNOTSUPP upstairs). */
  readonly dirtyOps: DirtyOps | null;
}

/** Linux's struct iommu_dirty_ops, as the iommufd layer calls it. */
export interface DirtyOps {
  /** set_dirty_tracking: start or stop hardware dirty-bit updates for every device attached to `domain`. */
  setDirtyTracking(domain: PagingDomain, enabled: boolean): Result;
  /**
   * read_and_clear_dirty: call `mark(iova, bytes)` for each dirty leaf that intersects [iova, iova+size),
   * clearing its dirty bit unless `noClear` (IOMMU_DIRTY_NO_CLEAR, which also skips the IOTLB flush).
   */
  readAndClearDirty(
    domain: PagingDomain, iova: number, size: number, noClear: boolean, mark: (iova: number, bytes: number) => void, gather?: IotlbGather,
  ): Result;
  /**
   * iotlb_sync: invalidate the span a batch of clearing reads gathered, once (iommufd reads every area of
   * a bitmap request into one gather). Absent: the domain flushes inside readAndClearDirty.
   */
  iotlbSync?(domain: PagingDomain, gather: IotlbGather): void;
}

/** struct iommu_iotlb_gather: [start, end) still to invalidate; empty while end <= start. */
export interface IotlbGather {
  start: number;
  end: number;
}

/** A domain without a page table (BLOCKED, IDENTITY). */
export class StaticDomain implements IommuDomain {
  readonly aperture = { start: 0, last: -1 };
  readonly pgsizeBitmap = 0;
  readonly dirtyTracking = false;
  readonly forceSnooping = false;
  iopfHandler: IopfHandler | null = null;
  constructor(readonly id: number, readonly type: 'blocked' | 'identity', readonly owner: unknown) {}
  isPaging(): this is PagingDomain { return false; }
}

export interface PagingDomainOptions {
  /** The number the owning driver gives the domain. */
  readonly id: number;
  readonly type: 'dma' | 'unmanaged';
  readonly owner: unknown;
  readonly memory: PhysicalMemory;
  readonly tables: TableAllocator;
  /** IOVA bits (the unit's input address width): 48 (4-level tables) or 57 (5-level). */
  readonly addressWidth: 48 | 57;
  readonly pageSize2M: boolean;
  readonly pageSize1G: boolean;
  readonly dirtyTracking?: boolean;
  /** Allocated as a nesting parent (IOMMU_HWPT_ALLOC_NEST_PARENT): nested domains may be built on it. */
  readonly nestParent?: boolean;
  /** The owning unit has snoop control (ECAP.SC): enforceCacheCoherency() can succeed. */
  readonly snoopControl?: boolean;
  /** With `dirtyTracking`: the driver that turns SSADE on and off where the domain is programmed. */
  readonly dirtyHost?: DirtyTrackingHost;
}

/** The driver side of set_dirty_tracking for IoPageTable domains (intel: intel_pasid_setup_dirty_tracking). */
export interface DirtyTrackingHost {
  /** Set SSADE to `enabled` in every PASID entry that points at `domain`, with the invalidations that needs. */
  programDirtyTracking(domain: IoPageTableDomain, enabled: boolean): Result;
}

/** The dirty ops of every IoPageTableDomain allocated for dirty tracking (one table, as a driver's ops are). */
const IO_PAGE_TABLE_DIRTY_OPS: DirtyOps = Object.freeze({
  setDirtyTracking(domain: PagingDomain, enabled: boolean): Result {
    if (!(domain instanceof IoPageTableDomain)) return fail('EINVAL', `domain ${domain.id} is not an IoPageTable domain`);
    return domain.setDirtyTracking(enabled);
  },
  readAndClearDirty(
    domain: PagingDomain, iova: number, size: number, noClear: boolean, mark: (iova: number, bytes: number) => void, gather?: IotlbGather,
  ): Result {
    if (!(domain instanceof IoPageTableDomain)) return fail('EINVAL', `domain ${domain.id} is not an IoPageTable domain`);
    return domain.readAndClearDirtyRange(iova, size, noClear, mark, gather);
  },
  iotlbSync(domain: PagingDomain, gather: IotlbGather): void {
    if (domain instanceof IoPageTableDomain) domain.iotlbSync(gather);
  },
});

/** A paging domain over a second-stage IoPageTable in simulated memory. */
export class IoPageTableDomain implements PagingDomain {
  readonly id: number;
  readonly type: 'dma' | 'unmanaged';
  readonly owner: unknown;
  readonly aperture: { readonly start: number; readonly last: number };
  readonly pgsizeBitmap: number;
  readonly dirtyTracking: boolean;
  readonly table: IoPageTable;
  readonly levels: 4 | 5;
  /** intel's dmar_domain->nested_parent: the stage 2 of nested domains. */
  readonly nestParent: boolean;
  iopfHandler: IopfHandler | null = null;
  /** Only domains allocated for dirty tracking have dirty ops; iommufd answers EOPNOTSUPP for the others. */
  readonly dirtyOps: DirtyOps | null;
  private readonly dirtyHost: DirtyTrackingHost | null;
  /** dmar_domain->dirty_tracking: off at allocation, as in Linux, until set_dirty_tracking turns it on. */
  private tracking = false;
  private readonly scan: DirtyScan = { clearedStart: -1, clearedEnd: -1, dirtyLeaves: 0 };
  private snooping = false;
  private readonly snoopControl: boolean;
  /** Every IOMMU the domain is attached to, in the order they came, each once (an array: no iterator per unmap). */
  private readonly flushers: IotlbFlusher[] = [];
  private readonly limit: number;
  private readonly memory: PhysicalMemory;
  private readonly entry = new Uint32Array(2);

  constructor(o: PagingDomainOptions) {
    this.id = o.id;
    this.type = o.type;
    this.owner = o.owner;
    this.levels = o.addressWidth === 57 ? 5 : 4;
    this.limit = 2 ** o.addressWidth;
    // For 57 bits the last address is not a safe integer: it rounds up; map() checks against 2^width.
    this.aperture = { start: 0, last: this.limit - 1 };
    this.pgsizeBitmap = SZ_4K | (o.pageSize2M ? SZ_2M : 0) | (o.pageSize1G ? SZ_1G : 0);
    this.dirtyTracking = o.dirtyTracking === true;
    this.nestParent = o.nestParent === true;
    this.dirtyHost = this.dirtyTracking ? (o.dirtyHost ?? null) : null;
    this.dirtyOps = this.dirtyHost === null ? null : IO_PAGE_TABLE_DIRTY_OPS;
    this.snoopControl = o.snoopControl !== false;
    this.memory = o.memory;
    this.table = new IoPageTable(o.memory, o.tables, { format: 'second', levels: this.levels, pageSize2M: o.pageSize2M, pageSize1G: o.pageSize1G });
  }

  isPaging(): this is PagingDomain { return true; }

  get forceSnooping(): boolean { return this.snooping; }

  /** intel_iommu_enforce_cache_coherency(): needs the unit's snoop control; sticky once set. */
  enforceCacheCoherency(): boolean {
    if (!this.snoopControl) return false;
    this.snooping = true;
    return true;
  }

  map(iova: number, pa: number, size: number, prot: MapProt): Result {
    if (!Number.isSafeInteger(iova) || !Number.isSafeInteger(pa) || !Number.isSafeInteger(size) || size <= 0 || iova < 0 || pa < 0) {
      return fail('EINVAL', 'iova, pa and size must be non-negative integers, size > 0');
    }
    // iommu_map(): iova, paddr and size must be aligned to the smallest page size.
    if (off4K(iova) !== 0 || off4K(pa) !== 0 || off4K(size) !== 0) return fail('EINVAL', 'unaligned to the minimum page size (4 KiB)');
    if (iova + size > this.limit) return fail('EINVAL', `[${iova}, ${iova + size}) is outside the aperture`);
    if (!prot.read && !prot.write) return fail('EINVAL', 'a mapping needs read or write permission');
    if (size === SZ_4K) {
      // One page (each IO page fault maps one): the EEXIST check and the map in one walk.
      const r = this.table.mapPage(iova, pa, prot);
      if (r > 0) return ok();
      if (r === 0) return fail('EEXIST', `IOVA 0x${iova.toString(16)} is already mapped`);
      this.table.unmap(iova, size);
      return fail('ENOMEM', 'no memory for page tables');
    }
    const mapped = this.firstMapped(this.table.root, this.levels, iova, iova + size);
    if (mapped !== null) return fail('EEXIST', `IOVA 0x${mapped.toString(16)} is already mapped`);
    if (!this.table.map(iova, pa, size, prot)) {
      // iommu_map() undoes a partial mapping on failure.
      this.table.unmap(iova, size);
      return fail('ENOMEM', 'no memory for page tables');
    }
    return ok();
  }

  /**
   * The lowest address in [start, end) that a leaf of the table at `level` maps, or null: one walk over
   * the tables the range touches (rather than a full walk per 4 KiB page).
   */
  private firstMapped(table: number, level: number, start: number, end: number): number | null {
    const span = levelSize(level);
    const e = this.entry;
    for (let at = start; at < end;) {
      const base = Math.floor(at / span) * span;
      const next = Math.min(base + span, end);
      this.memory.read64(table + levelIndex(at, level) * 8, e);
      const lo = e[0] as number;
      if ((lo & (SS_R | SS_W)) !== 0) {
        if (level === 1 || (lo & SS_PS) !== 0) return at;
        const found = this.firstMapped(entryAddress(lo, e[1] as number), level - 1, at, next);
        if (found !== null) return found;
      }
      at = next;
    }
    return null;
  }

  unmap(iova: number, size: number): number {
    if (!Number.isSafeInteger(iova) || !Number.isSafeInteger(size) || size <= 0 || off4K(iova) !== 0 || off4K(size) !== 0) return 0;
    const n = this.table.unmap(iova, size);
    // iommu_unmap() gathers the range and the driver's iotlb_sync invalidates it before returning.
    if (n > 0) for (const f of this.flushers) f.flushRange(this, iova, size);
    return n;
  }

  iovaToPhys(iova: number): number | null {
    return this.table.lookup(iova)?.pa ?? null;
  }

  /** Read the 8 bytes at `iova` through this domain (a guest's table entry at a GPA); false when unmapped. */
  readThrough64(iova: number, out: Uint32Array): boolean {
    const pa = this.iovaToPhys(iova);
    return pa !== null && this.memory.read64(pa, out);
  }

  readAndClearDirty(iova: number): boolean {
    if (!this.table.clearDirty(iova)) return false;
    // The IOTLB remembers that the leaf is dirty; without this a later write would not set D again.
    const page = Math.floor(iova / SZ_4K) * SZ_4K;
    for (const f of this.flushers) f.flushRange(this, page, SZ_4K);
    return true;
  }

  /** Whether the hardware currently updates A/D bits for this domain (SSADE in its PASID entries). */
  get dirtyTrackingEnabled(): boolean { return this.tracking; }

  /**
   * set_dirty_tracking: a no-op when already in that state (intel_iommu_set_dirty_tracking); otherwise
   * the driver reprograms SSADE everywhere the domain is used, and the old state is restored if it fails.
   */
  setDirtyTracking(enabled: boolean): Result {
    if (this.dirtyHost === null) return fail('EOPNOTSUPP', `domain ${this.id} was not allocated for dirty tracking`);
    if (this.tracking === enabled) return ok();
    this.tracking = enabled;
    const r = this.dirtyHost.programDirtyTracking(this, enabled);
    if (!r.ok) {
      this.tracking = !enabled;
      this.dirtyHost.programDirtyTracking(this, !enabled);
    }
    return r;
  }

  /**
   * read_and_clear_dirty over [iova, iova + size): EINVAL while tracking is off (as intel and the mock
   * refuse a read with a bitmap then). One scan of the tables; unless `noClear`, the D bits found are
   * cleared and one IOTLB invalidation covers the span of cleared leaves (Linux gathers the range and
   * syncs once), so the next write walks the table and sets D again.
   */
  readAndClearDirtyRange(iova: number, size: number, noClear: boolean, mark: (iova: number, bytes: number) => void, gather?: IotlbGather): Result {
    if (!this.tracking) return fail('EINVAL', `dirty tracking is not enabled on domain ${this.id}`);
    if (!Number.isSafeInteger(iova) || !Number.isSafeInteger(size) || iova < 0 || size <= 0) {
      return fail('EINVAL', 'iova and size must be non-negative integers, size > 0');
    }
    const scan = this.scan;
    this.table.scanDirty(iova, size, !noClear, mark, scan);
    if (!noClear && scan.clearedStart >= 0) {
      // With a gather the caller syncs once for the whole request (iommu_iotlb_gather_add_range).
      if (gather !== undefined) {
        if (gather.end <= gather.start) { gather.start = scan.clearedStart; gather.end = scan.clearedEnd; }
        else { gather.start = Math.min(gather.start, scan.clearedStart); gather.end = Math.max(gather.end, scan.clearedEnd); }
      } else {
        for (const f of this.flushers) f.flushRange(this, scan.clearedStart, scan.clearedEnd - scan.clearedStart);
      }
    }
    return ok();
  }

  /** iotlb_sync over a gathered span: one invalidation per IOMMU the domain is attached to. */
  iotlbSync(gather: IotlbGather): void {
    if (gather.end <= gather.start) return;
    for (const f of this.flushers) f.flushRange(this, gather.start, gather.end - gather.start);
    gather.start = 0;
    gather.end = 0;
  }

  addFlusher(f: IotlbFlusher): void {
    if (!this.flushers.includes(f)) this.flushers.push(f);
  }

  removeFlusher(f: IotlbFlusher): void {
    const i = this.flushers.indexOf(f);
    if (i >= 0) this.flushers.splice(i, 1);
  }

  /** Free the page table (the domain must no longer be attached anywhere). */
  free(): void {
    this.table.destroy();
  }
}
