// The type1 IOMMU backend's container state (Linux's struct vfio_iommu, drivers/vfio/vfio_iommu_type1.c):
// the mappings (sorted by IOVA), the IOMMU domains with their groups (one domain per IOMMU driver: a new
// group joins an existing domain of the same driver, else gets its own and every mapping is replayed
// into it), the emulated (mdev-style) groups, the emulated devices to notify on unmap, dma_avail, and
// the valid IOVA list (the domains' apertures minus every group's reserved regions, the MSI window
// included; empty, meaning "anything", while no IOMMU domain exists).

import { PAGE_SIZE } from '../../../hw/memory/physical-memory.ts';
import { fail, ok, type Result } from '../../errno.ts';
import type { IommuCore } from '../../iommu/core.ts';
import type { PagingDomain } from '../../iommu/domain.ts';
import type { IommuGroup } from '../../iommu/group.ts';
import type { VfioDevice } from '../vfio-device.ts';
import type { VfioGroup } from '../vfio-group.ts';
import type { VfioDma } from './dma.ts';

export const VFIO_TYPE1_IOMMU = 1;
export const VFIO_TYPE1v2_IOMMU = 3;
export const VFIO_DMA_CC_IOMMU = 4;
export const VFIO_UNMAP_ALL = 9;
export const VFIO_UPDATE_VADDR = 10;

const U64_MAX = (1n << 64n) - 1n;
/** PAGE_MASK as an unsigned long: every page size from PAGE_SIZE up. */
const PAGE_MASK = U64_MAX & ~BigInt(PAGE_SIZE - 1);

export interface IovaRange { readonly start: bigint; readonly last: bigint }

export interface Type1Domain {
  readonly domain: PagingDomain;
  readonly groups: VfioGroup[];
  /** domain->enforce_cache_coherency: the domain's enforce_cache_coherency op succeeded. */
  readonly enforceCacheCoherency: boolean;
}

function apertureOf(d: PagingDomain): IovaRange {
  const last = Number.isSafeInteger(d.aperture.last) ? BigInt(d.aperture.last) : BigInt(d.aperture.last) - 1n;
  return { start: BigInt(d.aperture.start), last };
}

/** vfio_iommu_resv_exclude(): remove [start, last] from every range of the list. */
function exclude(list: readonly IovaRange[], start: bigint, last: bigint): IovaRange[] {
  const out: IovaRange[] = [];
  for (const r of list) {
    if (last < r.start || start > r.last) { out.push(r); continue; }
    if (r.start < start) out.push({ start: r.start, last: start - 1n });
    if (r.last > last) out.push({ start: last + 1n, last: r.last });
  }
  return out;
}

export class Type1Iommu {
  readonly kind = 'type1' as const;
  /** The mappings, ascending by IOVA, never overlapping (the dma_list rb-tree). */
  readonly dmas: VfioDma[] = [];
  readonly domains: Type1Domain[] = [];
  readonly emulated: VfioGroup[] = [];
  /** Open emulated devices of the container's groups (iommu->device_list): notified on unmap. */
  readonly devices = new Set<VfioDevice>();
  /** iommu->dma_avail: mappings still allowed (dma_entry_limit at open). */
  dmaAvail: number;
  vaddrInvalidCount = 0;
  /** WARN lines. */
  readonly log: string[] = [];
  private iovas: IovaRange[] = [];

  constructor(readonly core: IommuCore, readonly v2: boolean, dmaEntryLimit: number, readonly allowUnsafeInterrupts = false) {
    this.dmaAvail = dmaEntryLimit;
  }

  /** The valid IOVA list (empty while there is no IOMMU domain: every IOVA is valid). */
  iovaList(): readonly IovaRange[] { return this.iovas; }

  /** iommu->pgsize_bitmap: the AND of the domains' page sizes, sub-page sizes folded into PAGE_SIZE. */
  pgsizeBitmap(): bigint {
    let bm = U64_MAX;
    for (const d of this.domains) bm &= BigInt(d.domain.pgsizeBitmap);
    if ((bm & BigInt(PAGE_SIZE - 1)) !== 0n) bm = (bm & PAGE_MASK) | BigInt(PAGE_SIZE);
    return this.domains.length === 0 ? PAGE_MASK : bm;
  }

  /** 1 << __ffs(pgsize_bitmap): MAP/UNMAP alignment. */
  minPageSize(): bigint {
    const bm = this.pgsizeBitmap();
    return bm & -bm;
  }

  /** vfio_iommu_iova_dma_valid(). */
  iovaValid(start: bigint, last: bigint): boolean {
    if (this.iovas.length === 0) return true;
    return this.iovas.some((r) => r.start <= start && last <= r.last);
  }

  hasEmulated(): boolean { return this.emulated.length > 0; }

  // ---- the dma list -------------------------------------------------------------------------------

  /** Index of the first mapping whose last byte is >= iova. */
  lowerBound(iova: bigint): number {
    let lo = 0;
    let hi = this.dmas.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if ((this.dmas[mid] as VfioDma).last < iova) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /** vfio_find_dma(): a mapping intersecting [start, start + size). */
  findDma(start: bigint, size: bigint): VfioDma | undefined {
    const d = this.dmas[this.lowerBound(start)];
    return d !== undefined && d.iova < start + size ? d : undefined;
  }

  linkDma(dma: VfioDma): void { this.dmas.splice(this.lowerBound(dma.iova), 0, dma); this.dmaAvail--; }

  /** vfio_remove_dma(): out of every domain, IOMMU pins dropped, uncharged, unlinked. */
  removeDma(dma: VfioDma): void {
    for (const d of this.domains) this.unmapFromDomain(dma, d.domain);
    dma.unpinForIommu();
    if (dma.external.size > 0) {
      this.log.push(`WARN: mapping 0x${dma.iova.toString(16)} removed with ${dma.external.size} externally pinned page(s)`);
      dma.dropExternal();
    }
    const i = this.dmas.indexOf(dma);
    if (i >= 0) this.dmas.splice(i, 1);
    if (dma.vaddrInvalid) this.vaddrInvalidCount--;
    this.dmaAvail++;
  }

  // ---- domains ------------------------------------------------------------------------------------

  /** iommu_map() of a pinned mapping, coalescing contiguous PFNs; undone on failure. */
  mapIntoDomain(dma: VfioDma, domain: PagingDomain): Result {
    const pfns = dma.iommuPfns;
    if (pfns === null) throw new Error('mapping an unpinned dma');
    if (dma.last > BigInt(Number.MAX_SAFE_INTEGER)) return fail('EINVAL', `0x${dma.iova.toString(16)} is beyond what the domain can address`);
    const iova0 = Number(dma.iova);
    let run = 0;
    for (let k = 1; k <= pfns.length; k++) {
      if (k < pfns.length && (pfns[k] as number) === (pfns[k - 1] as number) + 1) continue;
      const r = domain.map(iova0 + run * PAGE_SIZE, (pfns[run] as number) * PAGE_SIZE, (k - run) * PAGE_SIZE, dma.prot);
      if (!r.ok) {
        if (run > 0) domain.unmap(iova0, run * PAGE_SIZE);
        return r;
      }
      run = k;
    }
    return ok();
  }

  unmapFromDomain(dma: VfioDma, domain: PagingDomain): void {
    if (dma.iommuPfns === null || dma.last > BigInt(Number.MAX_SAFE_INTEGER)) return;
    domain.unmap(Number(dma.iova), dma.npages * PAGE_SIZE);
  }

  /** The IOVA list the domains and groups allow, with an extra aperture and reserved set. */
  private computeIovas(extra?: { aperture: IovaRange; group: IommuGroup }): IovaRange[] {
    const aps = this.domains.map((d) => apertureOf(d.domain));
    if (extra !== undefined) aps.push(extra.aperture);
    if (aps.length === 0) return [];
    let list: IovaRange[] = [{
      start: aps.reduce((m, a) => (a.start > m ? a.start : m), 0n),
      last: aps.reduce((m, a) => (a.last < m ? a.last : m), U64_MAX),
    }];
    const groups = this.domains.flatMap((d) => d.groups.map((g) => g.iommuGroup)).filter((g): g is IommuGroup => g !== null);
    if (extra !== undefined) groups.push(extra.group);
    for (const g of groups) {
      for (const dev of g.devices) {
        for (const r of this.core.resvRegions(dev)) list = exclude(list, BigInt(r.start), BigInt(r.start + r.length - 1));
      }
    }
    return list;
  }

  /** vfio_iommu_aper_conflict() + vfio_iommu_resv_conflict() for a group about to join. */
  private conflicts(aperture: IovaRange, g: IommuGroup): boolean {
    for (const dev of g.devices) {
      for (const r of this.core.resvRegions(dev)) if (this.findDma(BigInt(r.start), BigInt(r.length)) !== undefined) return true;
    }
    if (this.iovas.length === 0) return false;
    const first = this.iovas[0] as IovaRange;
    const last = this.iovas[this.iovas.length - 1] as IovaRange;
    if (aperture.start > last.last || aperture.last < first.start) return true;
    if (aperture.start > first.start && this.findDma(first.start, aperture.start - first.start) !== undefined) return true;
    if (aperture.last < last.last && this.findDma(aperture.last + 1n, last.last - aperture.last) !== undefined) return true;
    return false;
  }

  // ---- groups -------------------------------------------------------------------------------------

  private holds(group: VfioGroup): boolean {
    return this.emulated.includes(group) || this.domains.some((d) => d.groups.includes(group));
  }

  /**
   * vfio_iommu_type1_attach_group(): EBUSY while a VADDR unmap left vaddrs invalid; EINVAL for a group
   * already attached; emulated groups are only recorded. An IOMMU group gets a fresh paging domain
   * attached (its errno), EINVAL when existing mappings fall outside its aperture or on its reserved
   * regions, EPERM when the group's MSIs are not isolated (no interrupt remapping) and
   * allow_unsafe_interrupts is off; the domain is asked to enforce cache coherency (kept per domain for
   * VFIO_DMA_CC_IOMMU); then it moves to an existing domain of the same IOMMU driver and coherency mode, or keeps the new one and every
   * mapping is replayed into it (pinning first if no domain existed: ENOMEM over RLIMIT_MEMLOCK).
   */
  attachGroup(group: VfioGroup): Result {
    if (this.vaddrInvalidCount > 0) return fail('EBUSY', 'mappings have invalid vaddrs (VFIO_DMA_UNMAP_FLAG_VADDR)');
    if (this.holds(group)) return fail('EINVAL', `group ${group.id} is already attached`);
    if (group.type === 'emulated-iommu') { this.emulated.push(group); return ok(); }
    const ig = group.iommuGroup;
    const dev = ig?.devices[0];
    if (ig === null || dev === undefined) return fail('ENODEV', `group ${group.id} has no IOMMU group`);
    const alloc = this.core.allocPagingDomain(dev, 'unmanaged');
    if (!alloc.ok) return alloc;
    const domain = alloc.value;
    const attached = this.core.attachGroup(domain, ig);
    if (!attached.ok) return attached;
    const aperture = apertureOf(domain);
    if (this.conflicts(aperture, ig)) {
      this.core.detachGroup(ig);
      return fail('EINVAL', `existing mappings lie outside group ${group.id}'s aperture or on its reserved regions`);
    }
    if (!this.allowUnsafeInterrupts && !this.core.groupHasIsolatedMsi(ig)) {
      this.core.detachGroup(ig);
      return fail('EPERM', `group ${group.id}: no interrupt remapping support; vfio_iommu_type1.allow_unsafe_interrupts is off`);
    }
    const iovas = this.computeIovas({ aperture, group: ig });
    const cc = domain.enforceCacheCoherency();
    // Join a domain of the same driver with the same coherency mode.
    const same = this.domains.find((d) => d.domain.owner === domain.owner && d.enforceCacheCoherency === cc);
    if (same !== undefined) {
      this.core.detachGroup(ig);
      if (this.core.attachGroup(same.domain, ig).ok) {
        same.groups.push(group);
        this.iovas = iovas;
        return ok();
      }
      const again = this.core.attachGroup(domain, ig);
      if (!again.ok) return again;
    }
    const replayed = this.replay(domain);
    if (!replayed.ok) { this.core.detachGroup(ig); return replayed; }
    this.domains.push({ domain, groups: [group], enforceCacheCoherency: cc });
    this.iovas = iovas;
    return ok();
  }

  /** vfio_iommu_replay(): every mapping into a new domain; the first domain pins (and charges) them. */
  private replay(domain: PagingDomain): Result {
    const pinnedHere: VfioDma[] = [];
    const mapped: VfioDma[] = [];
    const unwind = (): void => {
      for (const d of mapped) this.unmapFromDomain(d, domain);
      for (const d of pinnedHere) d.unpinForIommu();
    };
    for (const dma of this.dmas) {
      if (dma.iommuPfns === null) {
        const p = dma.pinForIommu();
        if (!p.ok) { unwind(); return p; }
        pinnedHere.push(dma);
      }
      const m = this.mapIntoDomain(dma, domain);
      if (!m.ok) { unwind(); return m; }
      mapped.push(dma);
    }
    return ok();
  }

  /**
   * vfio_iommu_type1_detach_group(): the group leaves its domain (back to blocking); an empty domain
   * goes away. When the last IOMMU domain goes, mappings go too unless emulated groups remain (then only
   * the IOMMU pins go and the external pins are re-charged); the last emulated group with no domain
   * also takes every mapping.
   */
  detachGroup(group: VfioGroup): void {
    const e = this.emulated.indexOf(group);
    if (e >= 0) {
      this.emulated.splice(e, 1);
      if (this.emulated.length === 0 && this.domains.length === 0) this.unmapUnpinAll();
      return;
    }
    const di = this.domains.findIndex((d) => d.groups.includes(group));
    if (di < 0) return;
    const d = this.domains[di] as Type1Domain;
    if (group.iommuGroup !== null) this.core.detachGroup(group.iommuGroup);
    d.groups.splice(d.groups.indexOf(group), 1);
    if (d.groups.length === 0) {
      if (this.domains.length === 1) {
        if (this.emulated.length === 0) this.unmapUnpinAll();
        else for (const dma of this.dmas) { this.unmapFromDomain(dma, d.domain); dma.unpinForIommu(); }
      } else {
        for (const dma of this.dmas) this.unmapFromDomain(dma, d.domain);
      }
      this.domains.splice(di, 1);
    }
    this.iovas = this.computeIovas();
  }

  /** vfio_iommu_unmap_unpin_all(). */
  unmapUnpinAll(): void {
    for (const dma of [...this.dmas]) this.removeDma(dma);
  }

  /** vfio_iommu_type1_release(): every mapping and domain goes (groups were detached first). */
  release(): void {
    this.unmapUnpinAll();
    for (const d of this.domains) for (const g of d.groups) if (g.iommuGroup !== null) this.core.detachGroup(g.iommuGroup);
    this.domains.length = 0;
    this.emulated.length = 0;
    this.iovas = [];
  }

  /** vfio_iommu_type1_check_extension() with this container (or none: `iommu` null). */
  static checkExtension(iommu: Type1Iommu | null, ext: number): number {
    switch (ext) {
      case VFIO_TYPE1_IOMMU: case VFIO_TYPE1v2_IOMMU: case VFIO_UNMAP_ALL: return 1;
      case VFIO_UPDATE_VADDR: return iommu !== null && !iommu.hasEmulated() ? 1 : 0;
      // vfio_domains_have_enforce_cache_coherency(): 1 when every domain enforces it (also with none).
      case VFIO_DMA_CC_IOMMU: return iommu !== null && iommu.domains.every((d) => d.enforceCacheCoherency) ? 1 : 0;
      default: return 0;
    }
  }
}
