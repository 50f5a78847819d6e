// A typed API over the VFIO container ioctls (a legacy /dev/vfio/vfio container, or an iommufd answering
// them), in the style of api.ts: plain functions taking `{ proc, fd, ... }` that build the C struct in the
// process's own memory, call the same byte-level dispatch() a C program reaches, and decode the result.
// Each call maps a scratch buffer and unmaps it afterwards, so no state is kept between calls.

import { fail, ok, type Result } from '../kernel/errno.ts';
import { MAP_ANONYMOUS, MAP_PRIVATE, PROT_READ, PROT_WRITE } from '../kernel/mm/mman.ts';
import type { Process } from '../kernel/process/process.ts';
import type { DevFs } from '../kernel/vfs/devfs.ts';
import { dispatch } from './dispatch.ts';
import {
  VFIO_CHECK_EXTENSION, VFIO_GET_API_VERSION, VFIO_IOMMU_GET_INFO, VFIO_IOMMU_MAP_DMA, VFIO_IOMMU_UNMAP_DMA, VFIO_SET_IOMMU,
} from './ioctl.ts';
import type { FieldMap, StructDef, StructValue } from './struct.ts';
import { parseCapChain } from './vfio-argsz.ts';
import * as K from './vfio-consts.ts';
import * as V from './vfio-structs.ts';

/** The process and its container (or iommufd) fd. */
export interface ContainerArgs { readonly proc: Process; readonly fd: number }

/** open("/dev/vfio/vfio", O_RDWR). */
export function openVfioContainer(devfs: DevFs, proc: Process): Result<number> {
  return devfs.open(proc, '/dev/vfio/vfio');
}

export function vfioGetApiVersion(a: ContainerArgs): Result<number> {
  return dispatch(a.proc, a.fd, VFIO_GET_API_VERSION, 0);
}

/** VFIO_CHECK_EXTENSION: 0 or 1 (or the errno the compat layer gives for DMA_CC_IOMMU without an IOAS). */
export function vfioCheckExtension(a: ContainerArgs & { readonly extension: number }): Result<number> {
  return dispatch(a.proc, a.fd, VFIO_CHECK_EXTENSION, a.extension);
}

export function vfioSetIommu(a: ContainerArgs & { readonly type: number }): Result {
  const r = dispatch(a.proc, a.fd, VFIO_SET_IOMMU, a.type);
  return r.ok ? ok() : r;
}

// One ioctl with a struct (and `extra` bytes after it) in a scratch mapping; the bytes as written back.
function withStruct<F extends FieldMap>(
  a: ContainerArgs, cmd: number, s: StructDef<F>, fields: Partial<StructValue<F>>, extra = 0,
): Result<Uint8Array> {
  const size = Math.ceil((s.sizeof + extra) / 4096) * 4096;
  const at = a.proc.mmap(0, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (!at.ok) return at;
  try {
    const w = a.proc.mm.write(at.value, s.encode(fields));
    if (!w.ok) return w;
    const r = dispatch(a.proc, a.fd, cmd, at.value);
    if (!r.ok) return r;
    const back = new Uint8Array(s.sizeof + extra);
    const rd = a.proc.mm.read(at.value, back);
    return rd.ok ? ok(back) : rd;
  } finally {
    a.proc.mm.munmap(at.value, size);
  }
}

export interface MapDmaArgs extends ContainerArgs {
  readonly vaddr: bigint;
  readonly iova: bigint;
  readonly size: bigint;
  /** Device may read / write (default both). */
  readonly read?: boolean;
  readonly write?: boolean;
  /** VFIO_DMA_MAP_FLAG_VADDR: only supply a new vaddr for an invalidated mapping. */
  readonly updateVaddr?: boolean;
}

export function vfioIommuMapDma(a: MapDmaArgs): Result {
  const flags = a.updateVaddr === true ? K.VFIO_DMA_MAP_FLAG_VADDR
    : (a.read === false ? 0 : K.VFIO_DMA_MAP_FLAG_READ) | (a.write === false ? 0 : K.VFIO_DMA_MAP_FLAG_WRITE);
  const S = V.vfio_iommu_type1_dma_map;
  const r = withStruct(a, VFIO_IOMMU_MAP_DMA, S, { argsz: S.sizeof, flags, vaddr: a.vaddr, iova: a.iova, size: a.size });
  return r.ok ? ok() : r;
}

export interface UnmapDmaArgs extends ContainerArgs {
  readonly iova?: bigint;
  readonly size?: bigint;
  /** VFIO_DMA_UNMAP_FLAG_ALL (iova and size must then be 0). */
  readonly all?: boolean;
  /** VFIO_DMA_UNMAP_FLAG_VADDR: invalidate the vaddrs, keep the mappings. */
  readonly vaddrOnly?: boolean;
}

/** VFIO_IOMMU_UNMAP_DMA: the bytes unmapped. */
export function vfioIommuUnmapDma(a: UnmapDmaArgs): Result<bigint> {
  const flags = (a.all === true ? K.VFIO_DMA_UNMAP_FLAG_ALL : 0) | (a.vaddrOnly === true ? K.VFIO_DMA_UNMAP_FLAG_VADDR : 0);
  const S = V.vfio_iommu_type1_dma_unmap;
  const r = withStruct(a, VFIO_IOMMU_UNMAP_DMA, S, { argsz: S.sizeof, flags, iova: a.iova ?? 0n, size: a.size ?? 0n });
  return r.ok ? ok(S.decode(r.value.subarray(0, S.sizeof)).size) : r;
}

export interface IommuInfo {
  readonly flags: number;
  readonly iovaPgsizes: bigint;
  /** The capability ids in chain order. */
  readonly capIds: readonly number[];
  /** IOVA_RANGE: inclusive [start, end] ranges. */
  readonly iovaRanges?: readonly { readonly start: bigint; readonly end: bigint }[];
  /** DMA_AVAIL. */
  readonly dmaAvail?: number;
  /** MIGRATION: the dirty-tracking page sizes. */
  readonly migrationPgsizes?: bigint;
}

/** VFIO_IOMMU_GET_INFO with QEMU's argsz-grow loop: ask with sizeof, retry with the argsz the kernel wants. */
export function vfioIommuGetInfo(a: ContainerArgs): Result<IommuInfo> {
  const S = V.vfio_iommu_type1_info;
  let argsz = S.sizeof;
  for (let tries = 0; tries < 4; tries++) {
    const r = withStruct(a, VFIO_IOMMU_GET_INFO, S, { argsz }, argsz - S.sizeof);
    if (!r.ok) return r;
    const info = S.decode(r.value.subarray(0, S.sizeof));
    if (info.argsz > argsz) { argsz = info.argsz; continue; }
    return ok(decodeInfo(info, r.value));
  }
  return fail('EINVAL', 'GET_INFO kept asking for a larger argsz');
}

interface InfoHead { readonly flags: number; readonly iova_pgsizes: bigint; readonly cap_offset: number }

function decodeInfo(info: InfoHead, buf: Uint8Array): IommuInfo {
  const parsed = info.cap_offset === 0 ? ok([]) : parseCapChain(buf, info.cap_offset);
  const chain = parsed.ok ? parsed.value : [];
  let out: IommuInfo = { flags: info.flags, iovaPgsizes: info.iova_pgsizes, capIds: chain.map((c) => c.id) };
  for (const c of chain) {
    const at = buf.subarray(c.offset);
    if (c.id === K.VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL) out = { ...out, dmaAvail: V.vfio_iommu_type1_info_dma_avail.decode(at).avail };
    if (c.id === K.VFIO_IOMMU_TYPE1_INFO_CAP_MIGRATION) out = { ...out, migrationPgsizes: V.vfio_iommu_type1_info_cap_migration.decode(at).pgsize_bitmap };
    if (c.id === K.VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE) {
      const head = V.vfio_iommu_type1_info_cap_iova_range;
      const n = head.decode(at).nr_iovas;
      const ranges = [...Array(n).keys()].map((i) => V.vfio_iova_range.decode(at.subarray(head.sizeof + i * V.vfio_iova_range.sizeof)));
      out = { ...out, iovaRanges: ranges.map((r) => ({ start: r.start, end: r.end })) };
    }
  }
  return out;
}
