// The IOAS object (drivers/iommu/iommufd/ioas.c with the domain half of io_pagetable.c): an IoPagetable
// plus the paging domains attached to it. Every area is mapped into every attached domain, so a device
// attached through any of them sees exactly the IOAS's mappings. PFNs come from the area's IoptPages
// through pfnsFor(): one user per (area, domain) pair, so each page is pinned once however many domains
// hold it, and unpinned when the last lets go.

import { PAGE_SIZE } from '../../hw/memory/physical-memory.ts';
import type { MapProt, PagingDomain } from '../iommu/domain.ts';
import { fail, ok, type KernelError, type Result } from '../errno.ts';
import { IOMMU_READ, IOMMU_WRITE, IoPagetable } from './io-pagetable.ts';
import type { IoptArea, MapHooks, PagesSlice, ReservedOwner } from './iopt-area.ts';
import { hex64, u64ToNumber, ULONG_MAX, type IovaRange } from './iova-intervals.ts';
import type { IommufdObject } from './object.ts';
import type { IoptPages, PagesRun } from './pages.ts';

/** The domain permissions of an area's IOMMU_READ | IOMMU_WRITE bits, indexed by those bits. */
// Indexed by IOMMU_READ | IOMMU_WRITE, plus 4 when the IOAS has large pages turned off.
const MAP_PROTS: readonly MapProt[] = [0, 1, 2, 3, 4, 5, 6, 7].map((p) => Object.freeze({ read: (p & IOMMU_READ) !== 0, write: (p & IOMMU_WRITE) !== 0, smallPagesOnly: (p & 4) !== 0 }));

interface AttachedDomain {
  readonly domain: PagingDomain;
  /** Who attached it (the HWPT object). */
  readonly owner: object;
  /** The aperture exclusions are reserved under this identity. */
  readonly resv: ReservedOwner;
}

/** The u64 last byte of a domain's aperture (a 57-bit aperture's last address is not a safe integer). */
/** An in-kernel access on this IOAS (an entry of iopt->access_list; access.ts implements it). */
export interface IoasAccess {
  /** Internal accesses (HW queue, VFIO compat) are skipped by unmap notification. */
  readonly internal: boolean;
  /** ops->unmap(): the access must unpin everything it pinned in [iova, iova + length) before returning. */
  notifyUnmap(iova: bigint, length: bigint): void;
  /** WARN_ON() through the access's context (the IOAS itself has no way to log). */
  warn(line: string): void;
}

/** The largest area last byte whose page ends are sure to be safe integers. */
const SAFE_AREA_LAST = BigInt(Number.MAX_SAFE_INTEGER - PAGE_SIZE);

function apertureLast(d: PagingDomain): bigint {
  const last = d.aperture.last;
  return Number.isSafeInteger(last) ? BigInt(last) : BigInt(last) - 1n;
}

export class Ioas implements IommufdObject {
  readonly type = 'ioas' as const;
  id = 0;
  users = 0;
  readonly iopt = new IoPagetable<IoptPages>();
  /** iopt->access_list: attached accesses, in attach order. */
  readonly accessList = new Set<IoasAccess>();
  private readonly attached: AttachedDomain[] = [];
  private destroyed = false;

  /** iopt_map_pages()'s domain fill and undo (made once, not per map). */
  private readonly mapHooks: MapHooks<IoptPages>;

  constructor() {
    this.iopt.hooks = {
      unfillArea: (area, pages) => { this.unfillAll(area, pages); },
      // iommufd_access_notify_unmap(): every non-internal access, pins in range or not.
      notifyUnmap: (iova, length) => { for (const a of [...this.accessList]) if (!a.internal) a.notifyUnmap(iova, length); },
    };
    this.mapHooks = { fill: (area) => this.fillAll(area), unfill: (area) => { this.unfillAll(area, area.storage); } };
  }

  /** The attached paging domains, in attach order. */
  domains(): PagingDomain[] { return this.attached.map((a) => a.domain); }
  /** The owner given to addDomain() for `domain`. */
  domainOwner(domain: PagingDomain): object | undefined { return this.attached.find((a) => a.domain === domain)?.owner; }

  /** Every distinct IoptPages the areas use (IOAS_CHANGE_PROCESS, invariant checks). */
  pagesList(): IoptPages[] {
    const set = new Set<IoptPages>();
    for (const a of this.iopt.areaList()) if (a.pages !== null) set.add(a.pages);
    return [...set];
  }

  // ---- domains ----------------------------------------------------------------------------------

  /**
   * iopt_table_add_domain(): EEXIST if already attached; EINVAL when the domain's smallest page is above
   * PAGE_SIZE; EADDRINUSE when the raised alignment leaves an area misaligned or an area lies outside the
   * aperture; then every area is mapped into the domain, pinning on first use (ENOMEM for RLIMIT_MEMLOCK,
   * EFAULT for a gone mm or an unmapped VA). Nothing changes on failure.
   */
  addDomain(domain: PagingDomain, owner: object): Result {
    if (this.attached.some((a) => a.domain === domain)) return fail('EEXIST', `domain ${domain.id} is already attached`);
    const bitmap = domain.pgsizeBitmap;
    if (bitmap <= 0) return fail('EINVAL', `domain ${domain.id} has no page sizes`);
    const smallest = BigInt(bitmap & -bitmap);
    const aligned = this.iopt.setAlignmentSource(domain, smallest, 'domain');
    if (!aligned.ok) return aligned;
    const resv: ReservedOwner = { kind: 'domain' };
    const undoResv = (): void => { this.iopt.unreserve(resv); this.iopt.removeAlignmentSource(domain); };
    const start = BigInt(domain.aperture.start);
    const last = apertureLast(domain);
    if (start > 0n) {
      const r = this.iopt.reserve(0n, start - 1n, resv);
      if (!r.ok) { undoResv(); return r; }
    }
    if (last < ULONG_MAX) {
      const r = this.iopt.reserve(last + 1n, ULONG_MAX, resv);
      if (!r.ok) { undoResv(); return r; }
    }
    const filled: IoptArea<IoptPages>[] = [];
    for (const area of this.iopt.areaList()) {
      if (area.pages === null) continue;
      const r = this.fillOne(area, area.pages, domain);
      if (!r.ok) {
        for (const a of filled) this.unfillOne(a, a.storage, domain);
        undoResv();
        return r;
      }
      filled.push(area);
    }
    this.attached.push({ domain, owner, resv });
    return ok();
  }

  /** iopt_table_remove_domain(): unmap every area from the domain; PFNs other users hold stay pinned. */
  removeDomain(domain: PagingDomain): Result {
    const i = this.attached.findIndex((a) => a.domain === domain);
    if (i < 0) return fail('ENOENT', `domain ${domain.id} is not attached to IOAS ${this.id}`);
    const entry = this.attached[i] as AttachedDomain;
    this.attached.splice(i, 1);
    for (const area of this.iopt.areaList()) if (area.pages !== null) this.unfillOne(area, area.pages, domain);
    this.iopt.unreserve(entry.resv);
    this.iopt.removeAlignmentSource(domain);
    return ok();
  }

  /** iopt_reserve_iova() for each range under `owner` (all or nothing): EADDRINUSE over an area or allowed range. */
  addReserved(owner: ReservedOwner, ranges: readonly IovaRange[]): Result {
    for (const r of ranges) {
      const got = this.iopt.reserve(r.start, r.last, owner);
      if (!got.ok) { this.iopt.unreserve(owner); return got; }
    }
    return ok();
  }

  /** iopt_remove_reserved_iova(): drop every range of `owner`. */
  removeReserved(owner: ReservedOwner): number { return this.iopt.unreserve(owner); }

  // ---- map / unmap / copy -------------------------------------------------------------------------

  /** iopt_map_pages() with every attached domain filled; see IoPagetable.map(). */
  map(slices: readonly PagesSlice<IoptPages>[], prot: number, iova?: bigint): Result<bigint> {
    return this.iopt.mapAt(slices, prot, iova, this.mapHooks, null);
  }

  /**
   * map() of one slice, bytes [startByte, startByte + length) of `pages` (IOMMU_IOAS_MAP): the IOVA, or
   * the error; no slice list or Result object per call.
   */
  mapOne(pages: IoptPages, startByte: number, length: bigint, prot: number, iova?: bigint): bigint | KernelError {
    return this.iopt.mapOne(pages, startByte, length, prot, iova, this.mapHooks);
  }

  /** IOMMU_IOAS_UNMAP semantics (IoPagetable.unmap); domains are unfilled through the hook. */
  unmap(iova: bigint, length: bigint): Result<bigint> {
    const r = this.iopt.unmap(iova, length);
    // iopt_unmap_iova_range() WARNs when accesses never unpin; only an attached access can cause it.
    if (!r.ok && r.errno === 'EDEADLOCK') for (const a of this.accessList) { a.warn(`IOAS ${this.id}: unmap: ${r.reason}`); break; }
    return r;
  }

  /** IOMMU_IOAS_COPY: map the pages behind [srcIova, +length) of `src` into this IOAS. */
  copyFrom(src: Ioas, srcIova: bigint, length: bigint, prot: number, dstIova?: bigint): Result<bigint> {
    const slices = src.iopt.getPages(srcIova, length);
    if (!slices.ok) return slices;
    return this.map(slices.value, prot, dstIova);
  }

  // ---- domain fill --------------------------------------------------------------------------------

  private fillAll(area: IoptArea<IoptPages>): Result {
    for (let i = 0; i < this.attached.length; i++) {
      const r = this.fillOne(area, area.storage, (this.attached[i] as AttachedDomain).domain);
      if (!r.ok) {
        for (let j = 0; j < i; j++) this.unfillOne(area, area.storage, (this.attached[j] as AttachedDomain).domain);
        return r;
      }
    }
    return ok();
  }

  private unfillAll(area: IoptArea<IoptPages>, pages: IoptPages): void {
    for (const a of this.attached) this.unfillOne(area, pages, a.domain);
  }

  // iopt_area_fill_domain(): pin (or reuse) the area's PFNs and map them a run at a time; the domain picks
  // 2 MiB / 1 GiB leaves where IOVA and PA are both aligned and its page sizes allow.
  private fillOne(area: IoptArea<IoptPages>, pages: IoptPages, domain: PagingDomain): Result {
    const first = area.firstIndex;
    const last = area.lastIndex;
    // A one-page area of user or file memory (each IO page fault maps one): its frame as a single run,
    // without the run list.
    let runs: readonly PagesRun[] | null = null;
    let onePfn = 0;
    if (first === last && pages.dmabuf === null) {
      const pfn = pages.pfnFor(first);
      if (typeof pfn !== 'number') return pfn;
      onePfn = pfn;
    } else {
      const r = pages.pfnsFor(first, last);
      if (!r.ok) return r;
      runs = r.value;
    }
    // The area's pages end at most PAGE_SIZE - 1 bytes past its last byte: the bigint sum is only
    // needed near the end of the safe integers. The number sum (iova rounded only at or above 2^53) tells
    // the areas far below that without a bigint comparison.
    const iova0 = u64ToNumber(area.iova);
    if (iova0 + area.byteLength > 2 ** 52 && area.last > SAFE_AREA_LAST && area.iova - BigInt(area.pageOffset) + BigInt((last - first + 1) * PAGE_SIZE) - 1n > Number.MAX_SAFE_INTEGER) {
      pages.release(first, last);
      return fail('EINVAL', `area ${hex64(area.iova)} is beyond what the domain can address`);
    }
    // iopt_disable_large_pages(): with HUGE_PAGES=0 the domains map PAGE_SIZE leaves only, so areas can be cut.
    const prot = MAP_PROTS[(area.prot & (IOMMU_READ | IOMMU_WRITE)) | (this.iopt.largePages ? 0 : 4)] as MapProt;
    // batch_to_domain(): exactly the area's bytes, so a domain whose smallest page is below PAGE_SIZE (the
    // selftest mock's 2 KiB) maps a partial first or last host page; for 4 KiB domains this is whole pages.
    const off = area.pageOffset;
    const len = area.byteLength;
    const nruns = runs === null ? 1 : runs.length;
    for (let k = 0; k < nruns; k++) {
      const run = runs === null ? null : runs[k] as PagesRun;
      const rel = ((run === null ? first : run.index) - first) * PAGE_SIZE;
      const lo = Math.max(rel, off);
      const hi = Math.min(rel + (run === null ? 1 : run.count) * PAGE_SIZE, off + len);
      const r = domain.map(iova0 + lo - off, (run === null ? onePfn : run.pfn) * PAGE_SIZE + lo - rel, hi - lo, prot);
      if (!r.ok) {
        if (lo > off) domain.unmap(iova0, lo - off);
        pages.release(first, last);
        return r;
      }
    }
    // iopt_dmabuf_track_domain(): a revoke must find every domain that maps a dma-buf area.
    const tracked = pages.dmabuf === null ? ok() : pages.dmabuf.track(area, domain);
    if (!tracked.ok) {
      domain.unmap(iova0, len);
      pages.release(first, last);
      return tracked;
    }
    // The storage domain (iopt_area->storage_domain): splitting it is refused while large pages may be used.
    if (area.storageDomain === null) area.storageDomain = domain;
    return ok();
  }

  private unfillOne(area: IoptArea<IoptPages>, pages: IoptPages, domain: PagingDomain): void {
    const first = area.firstIndex;
    const last = area.lastIndex;
    // A revoked dma-buf area was already unmapped by the revoke (iopt_dmabuf_revoked()).
    if (pages.dmabuf?.revoked !== true) domain.unmap(u64ToNumber(area.iova), area.byteLength);
    if (first === last && pages.dmabuf === null) pages.releaseOne(first);
    else pages.release(first, last);
    pages.dmabuf?.untrack(area, domain);
    if (area.storageDomain === domain) {
      // The first other attached domain, if the area is still in the table (no closure per unmap).
      let next: PagingDomain | null = null;
      for (const a of this.attached) {
        if (a.domain !== domain && this.iopt.areaAt(area.iova) === area) { next = a.domain; break; }
      }
      area.storageDomain = next;
    }
  }

  // ---- object lifetime ----------------------------------------------------------------------------

  /** iommufd_ioas_destroy(): unmap everything (releasing pins and accounting), detach what is left. */
  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    const r = this.iopt.unmapAll();
    if (!r.ok) throw new Error(`IOAS ${this.id}: unmap all failed at destroy: ${r.reason}`);
    for (const a of [...this.attached]) void this.removeDomain(a.domain);
  }
}
