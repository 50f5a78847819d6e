// The VIOMMU object (drivers/iommu/iommufd/viommu.c, driver.c) and mmap() of an iommufd (main.c
// iommufd_fops_mmap). uAPI reference §2, §3, §11.1, §16:
//
//  * A vIOMMU is a slice of one physical IOMMU (the driver of the device it was allocated for) on top of a
//    NEST_PARENT HWPT_PAGING, whose `users` it holds (destroying the parent is EBUSY).
//  * Its children hold its `users`: vDEVICEs, vEVENTQs, HW queues, nested HWPTs, and every VMA mapping one
//    of its mmap regions, so IOMMU_DESTROY is EBUSY while any exists.
//  * Destroy: the driver's destroy first, then the parent's reference goes and the vdevs index empties.
//  * mmap regions (iommufd_viommu_alloc_mmap): the driver registers page-aligned physical ranges; each
//    gets an offset, first fit from PAGE_SIZE among the context's regions (Linux's mt_mmap), which user
//    space passes to mmap() on the iommufd. The mapping must be exactly one region (ENXIO otherwise),
//    MAP_SHARED (EINVAL), without PROT_EXEC (EPERM); the VMA maps the driver's frames in place.
//
// Nesting goes through: allocDomainNested() (IOMMU_HWPT_ALLOC with pt_id = a vIOMMU, hwptNestedAllocOnViommu;
// the nested HWPT holds the vIOMMU), cacheInvalidate() (IOMMU_HWPT_INVALIDATE with hwpt_id = a vIOMMU),
// getVdevId() (a driver's attach rule for a nested domain: no vDEVICE → ENOENT, as the mock's) and
// reportEvent() (what IOMMU_TEST_OP_TRIGGER_VEVENT calls).

import { PAGE_SIZE } from '../../hw/memory/physical-memory.ts';
import type { PciDev } from '../../pci/dev.ts';
import { fail, ok, type Result } from '../errno.ts';
import type { IommuDomain, PagingDomain } from '../iommu/domain.ts';
import type { IommuDriverOps } from '../iommu/ioasis-iommu-driver.ts';
import type { HwQueueCore, IommuUserData, IommuUserDataArray, ViommuCore, ViommuOps } from '../iommu/viommu-ops.ts';
import { PROT_EXEC } from '../mm/mman.ts';
import type { FileMmapRequest, PfnMapping } from '../process/file.ts';
import type { IommufdCtx } from './context.ts';
import type { HwptPaging } from './hw-pagetable.ts';
import type { IommufdObject } from './object.ts';

/** The vDEVICE as the vIOMMU indexes it (vdevice.ts). */
export interface VdevEntry {
  readonly virtId: bigint;
  readonly dev: PciDev;
}

/** The vEVENTQ as the vIOMMU finds it by type (veventq.ts). */
export interface VeventqEntry {
  /** iommufd_vevent_handler(): queue one event (or the LOST_EVENTS header). */
  report(data: Uint8Array): void;
}

/** One registered mmap region (struct iommufd_mmap). */
interface MmapRegion {
  /** The byte offset user space passes to mmap(). */
  readonly offset: number;
  readonly length: number;
  /** Physical address of the driver's first page. */
  readonly pa: number;
}

export class Viommu implements IommufdObject, ViommuCore {
  readonly type = 'viommu' as const;
  id = 0;
  users = 0;
  /** The driver's ops, set once viommu_init succeeded (null while allocating). */
  ops: ViommuOps | null = null;
  /** viommu->vdevs: vDEVICEs by virt_id. */
  readonly vdevs = new Map<bigint, VdevEntry>();
  /** viommu->veventqs: one queue per type. */
  readonly veventqs = new Map<number, VeventqEntry>();
  /** Regions this vIOMMU registered for mmap(), by offset. */
  private readonly mmaps = new Map<number, MmapRegion>();
  private destroyed = false;

  constructor(
    readonly ctx: IommufdCtx,
    readonly hwpt: HwptPaging,
    /** viommu->iommu_dev: the physical IOMMU (its driver instance) the vIOMMU is a slice of. */
    readonly iommuDev: IommuDriverOps,
    readonly viommuType: number,
  ) {
    ctx.objects.ref(hwpt);
  }

  get parentDomain(): PagingDomain { return this.hwpt.domain; }

  /** The regions registered, for inspection. */
  mmapRegions(): readonly { readonly offset: number; readonly length: number; readonly pa: number }[] {
    return [...this.mmaps.values()];
  }

  /** iommufd_viommu_destroy(): driver destroy, then the parent's reference. */
  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    this.ops?.destroy?.();
    if (this.mmaps.size > 0) {
      // A driver must remove its regions in its destroy (Linux WARNs and leaks them); forget them here.
      this.ctx.core.warn(`vIOMMU ${this.id}: ${this.mmaps.size} mmap region(s) left after the driver's destroy`);
      this.mmaps.clear();
    }
    this.vdevs.clear();
    this.ctx.objects.unref(this.hwpt);
  }

  // ---- driver helpers (ViommuCore) ----------------------------------------------------------------

  allocMmap(pa: number, length: number): Result<number> {
    if (!Number.isSafeInteger(pa) || pa < 0 || pa % PAGE_SIZE !== 0) return fail('EINVAL', `mmap region at 0x${pa.toString(16)} is not page aligned`);
    if (!Number.isSafeInteger(length) || length <= 0 || length % PAGE_SIZE !== 0) return fail('EINVAL', `mmap region length ${length} is not a page multiple`);
    // mtree_alloc_range(.., min = PAGE_SIZE): the lowest gap fitting `length` among every region of the context.
    const taken = [...viommusOf(this.ctx, this)].flatMap((v) => [...v.mmaps.values()]).sort((a, b) => a.offset - b.offset);
    let offset = PAGE_SIZE;
    for (const r of taken) {
      if (offset + length <= r.offset) break;
      offset = Math.max(offset, r.offset + r.length);
    }
    if (offset + length > Number.MAX_SAFE_INTEGER) return fail('ENOSPC', 'no free mmap offset');
    this.mmaps.set(offset, { offset, length, pa });
    return ok(offset);
  }

  destroyMmap(offset: number): void {
    if (!this.mmaps.delete(offset)) this.ctx.core.warn(`vIOMMU ${this.id}: no mmap region at offset 0x${offset.toString(16)}`);
  }

  /** iommufd_viommu_report_event(). */
  reportEvent(type: number, data: Uint8Array): Result {
    if (data.length === 0) return fail('EINVAL', 'an event needs data');
    const q = this.veventqs.get(type);
    if (q === undefined) return fail('EOPNOTSUPP', `vIOMMU ${this.id} has no vEVENTQ of type 0x${(type >>> 0).toString(16)}`);
    q.report(data);
    return ok();
  }

  findDev(virtId: bigint): PciDev | undefined { return this.vdevs.get(virtId)?.dev; }

  getVdevId(dev: PciDev): Result<bigint> {
    for (const v of this.vdevs.values()) if (v.dev === dev) return ok(v.virtId);
    return fail('ENOENT', `${dev.shortBdf} has no vDEVICE on vIOMMU ${this.id}`);
  }

  /** _iommufd_object_depend(): only between two different HW queues of this context. */
  hwQueueDepend(dependent: HwQueueCore, depended: HwQueueCore): Result {
    if (dependent === depended) return fail('EINVAL', 'a HW queue cannot depend on itself');
    const obj = this.queueObject(depended);
    if (obj === null || this.queueObject(dependent) === null) return fail('EINVAL', 'a dependency is only between two HW queues');
    this.ctx.objects.ref(obj);
    return ok();
  }

  hwQueueUndepend(dependent: HwQueueCore, depended: HwQueueCore): void {
    const obj = this.queueObject(depended);
    if (dependent === depended || obj === null) {
      this.ctx.core.warn(`vIOMMU ${this.id}: bad HW queue undepend`);
      return;
    }
    this.ctx.objects.unref(obj);
  }

  private queueObject(q: HwQueueCore): IommufdObject | null {
    const o = q as Partial<IommufdObject>;
    return o.type === 'hw_queue' && typeof o.id === 'number' ? (q as HwQueueCore & IommufdObject) : null;
  }

  // ---- nesting ---------------------------------------------------------------------------------------

  /** ops->alloc_domain_nested, or EOPNOTSUPP when the driver has none. */
  allocDomainNested(flags: number, data: IommuUserData): Result<IommuDomain> {
    if (this.ops?.allocDomainNested === undefined) return fail('EOPNOTSUPP', 'the vIOMMU driver cannot allocate nested domains');
    return this.ops.allocDomainNested(flags, data);
  }

  /** ops->cache_invalidate, or EOPNOTSUPP when the driver has none. */
  cacheInvalidate(array: IommuUserDataArray): { readonly done: number; readonly error: Result } {
    if (this.ops?.cacheInvalidate === undefined) return { done: 0, error: fail('EOPNOTSUPP', 'the vIOMMU driver has no cache invalidation') };
    return this.ops.cacheInvalidate(array);
  }

  // ---- mmap ------------------------------------------------------------------------------------------

  /** mtree_load(): the region containing byte `at`. */
  regionAt(at: number): MmapRegion | undefined {
    for (const r of this.mmaps.values()) if (at >= r.offset && at < r.offset + r.length) return r;
    return undefined;
  }
}

/** The vIOMMUs of `ctx` (live ones, plus `also`, which may still be being allocated). */
function viommusOf(ctx: IommufdCtx, also?: Viommu): Set<Viommu> {
  const out = new Set<Viommu>();
  for (const o of ctx.objects.live()) if (o instanceof Viommu) out.add(o);
  if (also !== undefined) out.add(also);
  return out;
}

/**
 * iommufd_fops_mmap(): map exactly one registered region; the VMA (and each copy of it a split or fork
 * makes) holds a `users` reference on the owning vIOMMU until it goes.
 */
export function iommufdFopsMmap(ctx: IommufdCtx, req: FileMmapRequest): Result<PfnMapping> {
  if (req.length % PAGE_SIZE !== 0) return fail('EINVAL', `length ${req.length} is not page aligned`);
  if (!req.shared) return fail('EINVAL', 'an iommufd can only be mapped MAP_SHARED');
  if ((req.prot & PROT_EXEC) !== 0) return fail('EPERM', 'an iommufd cannot be mapped executable');
  const at = req.pgoff * PAGE_SIZE;
  let owner: Viommu | null = null;
  let region: MmapRegion | undefined;
  for (const v of viommusOf(ctx)) {
    region = v.regionAt(at);
    if (region !== undefined) { owner = v; break; }
  }
  if (owner === null || region === undefined) return fail('ENXIO', `no mmap region at offset 0x${at.toString(16)}`);
  if (region.offset !== at || region.length !== req.length) {
    return fail('ENXIO', `offset 0x${at.toString(16)} length ${req.length} is not the region 0x${region.offset.toString(16)} length ${region.length}`);
  }
  const v = owner;
  ctx.objects.ref(v);
  return ok({
    pfn: region.pa / PAGE_SIZE,
    open: () => { ctx.objects.ref(v); },
    close: () => { ctx.objects.unref(v); },
  });
}
