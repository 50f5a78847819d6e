// The VFIO container API on an iommufd (drivers/iommu/iommufd/vfio_compat.c), on decoded arguments: the
// numbers an iommufd does not own (and every container ioctl of /dev/vfio/vfio when iommufd provides it)
// act on the context's compat IOAS (ctx.vfioIoasId), made when a VFIO group joins the iommufd or set with
// IOMMU_VFIO_IOAS. Without it SET_IOMMU, MAP, UNMAP and GET_INFO are ENODEV. TYPE1 (v0) is emulated by
// turning HUGE_PAGES off so that unmaps can cut areas at any page; TYPE1v2 refuses partial unmaps.

import { PAGE_SIZE } from '../../hw/memory/physical-memory.ts';
import { fail, ok, type Result } from '../errno.ts';
import type { Process } from '../process/process.ts';
import type { IommufdCtx } from './context.ts';
import { HwptPaging } from './hw-pagetable.ts';
import { IOMMU_CACHE, IOMMU_READ, IOMMU_WRITE } from './io-pagetable.ts';
import { Ioas } from './ioas.ts';
import { hex64, U64_MAX, ULONG_MAX, type IovaRange } from './iova-intervals.ts';
import { IoptPages } from './pages.ts';

export const VFIO_TYPE1_IOMMU = 1;
export const VFIO_TYPE1v2_IOMMU = 3;
export const VFIO_DMA_CC_IOMMU = 4;
export const VFIO_NOIOMMU_IOMMU = 8;
export const VFIO_UNMAP_ALL = 9;
const MAP_READ = 1 << 0;
const MAP_WRITE = 1 << 1;
const UNMAP_ALL = 1 << 1;
const PAGE = BigInt(PAGE_SIZE);
/** CONFIG_VFIO_NOIOMMU is built in. */
const CONFIG_VFIO_NOIOMMU = true;

/** get_compat_ioas(): ENODEV when no compat IOAS is set. */
export function compatIoas(ctx: IommufdCtx): Result<Ioas> {
  if (ctx.vfioIoasId === 0) return fail('ENODEV', 'the iommufd has no compat IOAS (no VFIO group joined it, no IOMMU_VFIO_IOAS SET)');
  return ctx.objects.get<Ioas>(ctx.vfioIoasId, 'ioas');
}

/**
 * iommufd_vfio_compat_ioas_create() (a VFIO group joins the iommufd): the existing compat IOAS, or a new
 * one; EINVAL after SET_IOMMU(NOIOMMU).
 */
export function compatIoasCreate(ctx: IommufdCtx): Result<number> {
  if (ctx.vfioNoIommu) return fail('EINVAL', 'the iommufd is in no-IOMMU mode');
  // An IOAS the user destroyed no longer counts: a new one is made.
  if (ctx.vfioIoasId !== 0 && ctx.objects.get(ctx.vfioIoasId, 'ioas').ok) return ok(ctx.vfioIoasId);
  const ioas = new Ioas();
  const id = ctx.objects.reserve(ioas);
  if (!id.ok) return id;
  ctx.objects.finalize(ioas);
  ctx.vfioIoasId = id.value;
  return id;
}

/** iommufd_vfio_check_extension(): a number, or ENODEV for DMA_CC_IOMMU without a compat IOAS. */
export function compatCheckExtension(ctx: IommufdCtx, ext: number): Result<number> {
  switch (ext) {
    case VFIO_TYPE1_IOMMU: case VFIO_TYPE1v2_IOMMU: case VFIO_UNMAP_ALL: return ok(ctx.vfioNoIommu ? 0 : 1);
    case VFIO_NOIOMMU_IOMMU: return ok(CONFIG_VFIO_NOIOMMU ? 1 : 0);
    case VFIO_DMA_CC_IOMMU: {
      // iommufd_vfio_cc_iommu(): 1 when every paging HWPT of the compat IOAS enforces cache coherency.
      const ioas = compatIoas(ctx);
      if (!ioas.ok) return ioas;
      const all = ioas.value.domains().every((d) => {
        const h = ioas.value.domainOwner(d);
        return !(h instanceof HwptPaging) || h.enforceCacheCoherency;
      });
      return ok(all ? 1 : 0);
    }
    // Nesting, UPDATE_VADDR, sPAPR and the rest are not offered.
    default: return ok(0);
  }
}

/**
 * iommufd_vfio_set_iommu(): NOIOMMU needs CAP_SYS_RAWIO (EPERM); other types than TYPE1/TYPE1v2 are
 * EINVAL; ENODEV without a compat IOAS; TYPE1 turns HUGE_PAGES off (EINVAL when domains already map areas).
 */
export function compatSetIommu(ctx: IommufdCtx, proc: Process, type: number): Result {
  if (type === VFIO_NOIOMMU_IOMMU && CONFIG_VFIO_NOIOMMU) {
    if (!proc.capable('CAP_SYS_RAWIO')) return fail('EPERM', 'no-IOMMU mode needs CAP_SYS_RAWIO');
    ctx.vfioNoIommu = true;
    return ok();
  }
  if (type !== VFIO_TYPE1_IOMMU && type !== VFIO_TYPE1v2_IOMMU) return fail('EINVAL', `IOMMU type ${type} is not TYPE1 or TYPE1v2`);
  const ioas = compatIoas(ctx);
  if (!ioas.ok) return ioas;
  return type === VFIO_TYPE1_IOMMU ? ioas.value.iopt.disableLargePages() : ok();
}

export interface CompatMapArgs { readonly flags: number; readonly vaddr: bigint; readonly iova: bigint; readonly size: bigint }

/**
 * iommufd_vfio_map_dma(): EINVAL for flags other than READ|WRITE (VADDR included); ENODEV; then a fixed-
 * IOVA map with the IOAS's errors (EINVAL misaligned or reserved, EEXIST, ENOMEM for the memlock limit,
 * EFAULT), charged in the context's accounting mode (MM for /dev/vfio/vfio).
 */
export function compatMap(ctx: IommufdCtx, proc: Process, a: CompatMapArgs): Result {
  if ((a.flags & ~(MAP_READ | MAP_WRITE)) !== 0) return fail('EINVAL', `unsupported map flags 0x${a.flags.toString(16)}`);
  const ioas = compatIoas(ctx);
  if (!ioas.ok) return ioas;
  let prot = IOMMU_CACHE;
  if ((a.flags & MAP_READ) !== 0) prot |= IOMMU_READ;
  if ((a.flags & MAP_WRITE) !== 0) prot |= IOMMU_WRITE;
  if (a.vaddr + a.size > U64_MAX) return fail('EOVERFLOW', `${hex64(a.vaddr)}+${hex64(a.size)} wraps`);
  if (a.size === 0n || a.size > ULONG_MAX - PAGE) return fail('EINVAL', `length ${hex64(a.size)}`);
  if (a.vaddr + a.size > BigInt(Number.MAX_SAFE_INTEGER)) return fail('EFAULT', `${hex64(a.vaddr)} is beyond the user address space`);
  const uva = Number(a.vaddr);
  const pages = IoptPages.fromUser(proc, uva, Number(a.size), (a.flags & MAP_WRITE) !== 0, { contextMode: ctx.accountMode });
  if (!pages.ok) return pages;
  const mapped = ioas.value.map([{ pages: pages.value, startByte: uva - pages.value.base, length: a.size }], prot, a.iova);
  pages.value.put();
  return mapped.ok ? ok() : mapped;
}

export interface CompatUnmapArgs { readonly flags: number; readonly iova: bigint; readonly size: bigint }

/**
 * iommufd_vfio_unmap_dma(): the bytes unmapped. EINVAL for flags other than UNMAP_ALL, or UNMAP_ALL with
 * a range; ENODEV. With HUGE_PAGES off (TYPE1) areas are cut at both ends first, so partial unmaps split;
 * otherwise an area crossing an end is ENOENT. A range with nothing mapped succeeds with 0.
 */
export function compatUnmap(ctx: IommufdCtx, a: CompatUnmapArgs): Result<bigint> {
  if ((a.flags & ~UNMAP_ALL) !== 0) return fail('EINVAL', `unsupported unmap flags 0x${a.flags.toString(16)}`);
  const ioas = compatIoas(ctx);
  if (!ioas.ok) return ioas;
  const iopt = ioas.value.iopt;
  if ((a.flags & UNMAP_ALL) !== 0) {
    if (a.iova !== 0n || a.size !== 0n) return fail('EINVAL', 'UNMAP_ALL needs iova and size 0');
    return iopt.unmapAll();
  }
  if (!iopt.largePages) {
    const cuts = [(a.iova + a.size - 1n) & U64_MAX];
    if (a.iova !== 0n) cuts.push(a.iova - 1n);
    const r = iopt.cutIova(cuts);
    if (!r.ok) return r;
  }
  if (a.size !== 0n && a.iova + a.size - 1n <= ULONG_MAX && !intersects(ioas.value, a.iova, a.iova + a.size - 1n)) return ok(0n);
  return iopt.unmapIova(a.iova, a.size);
}

function intersects(ioas: Ioas, start: bigint, last: bigint): boolean {
  for (const area of ioas.iopt.areaList()) {
    if (area.iova > last) return false;
    if (area.last >= start) return true;
  }
  return false;
}

export interface CompatInfo {
  /** iommufd_get_pagesizes(): the domains' common page sizes, sub-page folded, at least the IOAS alignment. */
  readonly pgsizes: bigint;
  /** The holes of the reserved set (the IOVA_RANGE capability). */
  readonly iovas: readonly IovaRange[];
}

/** What iommufd_vfio_iommu_get_info() reports (the uapi layer writes the capability chain). ENODEV. */
export function compatInfo(ctx: IommufdCtx): Result<CompatInfo> {
  const ioas = compatIoas(ctx);
  if (!ioas.ok) return ioas;
  let bm = U64_MAX;
  for (const d of ioas.value.domains()) bm &= BigInt(d.pgsizeBitmap);
  if ((bm & (PAGE - 1n)) !== 0n) bm = (bm & ~(PAGE - 1n) & U64_MAX) | PAGE;
  const align = ioas.value.iopt.iovaAlignment;
  return ok({ pgsizes: bm > align ? bm : align, iovas: ioas.value.iopt.iovaRanges() });
}
