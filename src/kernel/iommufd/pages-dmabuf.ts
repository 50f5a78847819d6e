// The dma-buf half of an IoptPages (pages.c IOPT_ADDRESS_DMABUF, struct iopt_pages_dmabuf): a dynamic
// attachment to the buffer, the PFNs the exporter handed out, and the revoke tracker, the list of
// (area, domain) pairs that map those PFNs. The exporter's move_notify is a revoke: every tracked pair
// is unmapped and the PFNs are forgotten for good (Linux has no way to map them again; user space maps
// the buffer anew). Nothing here is pinned or charged: the exporter keeps the memory alive.

import { fail, ok, type Result } from '../errno.ts';
import type { DmaBuf, DmaBufAttachment, DmaBufImporter } from '../dma-buf/dma-buf.ts';
import type { PagingDomain } from '../iommu/domain.ts';
import type { OpenFile } from '../process/file.ts';
import type { AreaPages, IoptArea } from './iopt-area.ts';
import type { PagesRun } from './pfn-runs.ts';

interface Track {
  readonly area: IoptArea<AreaPages>;
  readonly domain: PagingDomain;
}

export class IoptDmabuf implements DmaBufImporter {
  /** The exporter's PFNs for the buffer's pages; null once revoked (pages->dmabuf.phys.len == 0). */
  private pfns: Uint32Array | null = null;
  private readonly tracker: Track[] = [];
  private attachment: DmaBufAttachment | null = null;

  private constructor(private readonly file: OpenFile<DmaBuf>, private readonly firstPage: number) {}

  /**
   * iopt_map_dmabuf(): attach dynamically and ask the exporter for the physical pages of the buffer.
   * ENODEV when it has revoked the buffer. Holds a reference to the file until detach().
   */
  static attach(file: OpenFile<DmaBuf>, firstPage: number): Result<IoptDmabuf> {
    const d = new IoptDmabuf(file, firstPage);
    const att = file.file.attach(d);
    const phys = file.file.exporter.mapPhys(file.file);
    if (!phys.ok) {
      file.file.detach(att);
      return phys;
    }
    d.attachment = att;
    d.pfns = phys.value;
    file.get();
    return ok(d);
  }

  get dmabuf(): DmaBuf { return this.file.file; }
  /** iopt_dmabuf_revoked(). */
  get revoked(): boolean { return this.pfns === null; }
  /** (area, domain) pairs being tracked. */
  get trackedCount(): number { return this.tracker.length; }

  /**
   * pfn_reader_fill_dmabuf(): the PFNs of storage pages [first, last] as runs (none once revoked, so a
   * domain filled then maps nothing, as Linux's iopt_area_fill_domain() skips a revoked buffer).
   */
  runs(first: number, last: number): PagesRun[] {
    const pfns = this.pfns;
    if (pfns === null) return [];
    const out: PagesRun[] = [];
    let start = first;
    for (let i = first + 1; i <= last + 1; i++) {
      const prev = pfns[this.firstPage + i - 1] as number;
      if (i <= last && pfns[this.firstPage + i] === prev + 1) continue;
      out.push({ index: start, pfn: (pfns[this.firstPage + start] as number), count: i - start });
      start = i;
    }
    return out;
  }

  /** iopt_dmabuf_track_domain(): `domain` maps (or would map, if revoked) `area`. */
  track(area: IoptArea<AreaPages>, domain: PagingDomain): Result {
    if (this.tracker.some((t) => t.area === area && t.domain === domain)) return fail('EINVAL', 'the area is already tracked for this domain');
    this.tracker.push({ area, domain });
    return ok();
  }

  /** iopt_dmabuf_untrack_domain(). */
  untrack(area: IoptArea<AreaPages>, domain: PagingDomain): void {
    const i = this.tracker.findIndex((t) => t.area === area && t.domain === domain);
    if (i < 0) throw new Error('untracking an area/domain pair that is not tracked');
    this.tracker.splice(i, 1);
  }

  /**
   * iopt_revoke_notify(): any move_notify is a revoke. Every tracked pair loses its IOMMU mapping (the
   * domain flushes its IOTLB before unmap returns, so DMA faults from here on).
   */
  moveNotify(): void {
    if (this.pfns === null) return;
    for (const { area, domain } of this.tracker) domain.unmap(Number(area.iova), Number(area.last - area.iova) + 1);
    this.pfns = null;
  }

  /** iopt_release_pages(): detach and drop the file reference. Every area must have untracked first. */
  detach(): void {
    if (this.tracker.length !== 0) throw new Error(`dma-buf pages released with ${this.tracker.length} tracked domains`);
    if (this.attachment === null) throw new Error('dma-buf pages detached twice');
    this.file.file.detach(this.attachment);
    this.attachment = null;
    this.pfns = null;
    this.file.put();
  }
}
