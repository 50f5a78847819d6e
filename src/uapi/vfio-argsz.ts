// VFIO's argument convention: each struct starts with `u32 argsz`; a handler copies `minsz` bytes (fixed
// per ioctl), fails with EINVAL if argsz < minsz, and writes back at most what it read (or the caps-aware
// size). Info ioctls with capabilities (VFIO_IOMMU_GET_INFO, VFIO_DEVICE_GET_INFO,
// VFIO_DEVICE_GET_REGION_INFO) append a chain of capabilities after the struct: each starts with
// vfio_info_cap_header { u16 id; u16 version; u32 next }, is padded to 8 bytes, and `next` is the offset
// of the following capability from the start of the info struct (0 ends the chain). If the user's argsz
// cannot hold struct + chain, the kernel sets the CAPS flag and argsz to the size needed and writes no caps.

import { fail, ok, type Result } from '../kernel/errno.ts';
import type { UserMemory } from './copy-struct.ts';
import {
  VFIO_DEVICE_ATTACH_IOMMUFD_PT, VFIO_DEVICE_BIND_IOMMUFD, VFIO_DEVICE_DETACH_IOMMUFD_PT, VFIO_DEVICE_FEATURE,
  VFIO_DEVICE_GET_INFO, VFIO_DEVICE_GET_IRQ_INFO, VFIO_DEVICE_GET_REGION_INFO, VFIO_DEVICE_SET_IRQS,
  VFIO_GROUP_GET_STATUS, VFIO_IOMMU_GET_INFO, VFIO_IOMMU_MAP_DMA, VFIO_IOMMU_UNMAP_DMA,
} from './ioctl.ts';
import type { FieldMap, StructDef, StructValue } from './struct.ts';
import * as V from './vfio-structs.ts';

export type VfioFdKind = 'container' | 'group' | 'device';

export interface VfioArgszOp {
  readonly cmd: number;
  readonly name: string;
  readonly fd: VfioFdKind;
  readonly struct: StructDef;
  readonly lastMandatory: string;
  /** offsetofend(struct, lastMandatory): argsz below it is EINVAL. */
  readonly minsz: number;
}

function op<F extends FieldMap>(cmd: number, name: string, fd: VfioFdKind, struct: StructDef<F>, last: keyof F & string): VfioArgszOp {
  return { cmd, name, fd, struct, lastMandatory: last, minsz: struct.offsetofend(last) };
}

/** The argsz-struct ioctls and their minsz (as the VFIO handlers compute it). */
export const VFIO_ARGSZ_IOCTLS: readonly VfioArgszOp[] = [
  op(VFIO_GROUP_GET_STATUS, 'VFIO_GROUP_GET_STATUS', 'group', V.vfio_group_status, 'flags'),
  op(VFIO_IOMMU_GET_INFO, 'VFIO_IOMMU_GET_INFO', 'container', V.vfio_iommu_type1_info, 'iova_pgsizes'),
  op(VFIO_IOMMU_MAP_DMA, 'VFIO_IOMMU_MAP_DMA', 'container', V.vfio_iommu_type1_dma_map, 'size'),
  op(VFIO_IOMMU_UNMAP_DMA, 'VFIO_IOMMU_UNMAP_DMA', 'container', V.vfio_iommu_type1_dma_unmap, 'size'),
  op(VFIO_DEVICE_GET_INFO, 'VFIO_DEVICE_GET_INFO', 'device', V.vfio_device_info, 'num_irqs'),
  op(VFIO_DEVICE_GET_REGION_INFO, 'VFIO_DEVICE_GET_REGION_INFO', 'device', V.vfio_region_info, 'offset'),
  op(VFIO_DEVICE_GET_IRQ_INFO, 'VFIO_DEVICE_GET_IRQ_INFO', 'device', V.vfio_irq_info, 'count'),
  op(VFIO_DEVICE_SET_IRQS, 'VFIO_DEVICE_SET_IRQS', 'device', V.vfio_irq_set, 'count'),
  op(VFIO_DEVICE_FEATURE, 'VFIO_DEVICE_FEATURE', 'device', V.vfio_device_feature, 'flags'),
  op(VFIO_DEVICE_BIND_IOMMUFD, 'VFIO_DEVICE_BIND_IOMMUFD', 'device', V.vfio_device_bind_iommufd, 'out_devid'),
  op(VFIO_DEVICE_ATTACH_IOMMUFD_PT, 'VFIO_DEVICE_ATTACH_IOMMUFD_PT', 'device', V.vfio_device_attach_iommufd_pt, 'pt_id'),
  op(VFIO_DEVICE_DETACH_IOMMUFD_PT, 'VFIO_DEVICE_DETACH_IOMMUFD_PT', 'device', V.vfio_device_detach_iommufd_pt, 'flags'),
];

/** The argsz op for a number on a given fd kind (numbers collide across fd kinds). */
export function vfioArgszOp(fd: VfioFdKind, cmd: number): VfioArgszOp | undefined {
  return VFIO_ARGSZ_IOCTLS.find((o) => o.fd === fd && o.cmd === cmd >>> 0);
}

export interface VfioCopied<F extends FieldMap> {
  readonly value: StructValue<F>;
  readonly argsz: number;
}

/**
 * copy_from_user(&info, arg, minsz) then `argsz < minsz` → EINVAL. Bytes past minsz are zero in the
 * result; `readsz` (default minsz) lets a handler copy more, e.g. offsetofend(cap_offset) when argsz
 * allows it, or a PASID field when a flag asks for it.
 */
export function copyArgszFromUser<F extends FieldMap>(
  mm: UserMemory, userPtr: number, struct: StructDef<F>, minsz: number, readsz = minsz,
): Result<VfioCopied<F>> {
  const kbuf = new Uint8Array(struct.sizeof);
  if (!mm.read(userPtr, kbuf.subarray(0, minsz)).ok) return fail('EFAULT', `cannot read struct ${struct.name}`);
  const argsz = new DataView(kbuf.buffer).getUint32(0, true);
  if (argsz < minsz) return fail('EINVAL', `argsz ${argsz} < minsz ${minsz} for struct ${struct.name}`);
  if (readsz > minsz && !mm.read(userPtr + minsz, kbuf.subarray(minsz, readsz)).ok) {
    return fail('EFAULT', `cannot read struct ${struct.name}`);
  }
  return ok({ value: struct.decode(kbuf), argsz });
}

/** copy_to_user(arg, &info, n): the first n bytes of the encoded struct. */
export function copyArgszToUser<F extends FieldMap>(
  mm: UserMemory, userPtr: number, struct: StructDef<F>, value: StructValue<F>, n: number,
): Result {
  const b = struct.encode(value);
  if (!mm.write(userPtr, b.subarray(0, Math.min(n, b.length))).ok) return fail('EFAULT', `cannot write struct ${struct.name}`);
  return ok();
}

// ---- capability chains ----

export interface VfioCap {
  readonly id: number;
  readonly version: number;
  /** The bytes after the 8-byte header. */
  readonly body: Uint8Array;
}

export const VFIO_CAP_HEADER_SIZE = V.vfio_info_cap_header.sizeof;
const align8 = (n: number): number => Math.ceil(n / 8) * 8;

/**
 * vfio_info_cap_add() + vfio_info_cap_shift(): the chain as it lands at `base` bytes into the info struct
 * (base = sizeof(info)); each cap padded to 8 bytes, `next` relative to the info struct's start.
 */
export function buildCapChain(caps: readonly VfioCap[], base: number): Uint8Array {
  const sizes = caps.map((c) => align8(VFIO_CAP_HEADER_SIZE + c.body.length));
  const out = new Uint8Array(sizes.reduce((a, b) => a + b, 0));
  let off = 0;
  caps.forEach((c, i) => {
    const size = sizes[i] ?? 0;
    const next = i + 1 < caps.length ? base + off + size : 0;
    V.vfio_info_cap_header.encode({ id: c.id, version: c.version, next }, out.subarray(off, off + VFIO_CAP_HEADER_SIZE));
    out.set(c.body, off + VFIO_CAP_HEADER_SIZE);
    off += size;
  });
  return out;
}

/** Walk a chain in a buffer holding the info struct and its caps (next offsets relative to buf[0]). */
export function parseCapChain(buf: Uint8Array, capOffset: number): Result<{ id: number; version: number; offset: number }[]> {
  const out: { id: number; version: number; offset: number }[] = [];
  const seen = new Set<number>();
  for (let off = capOffset; off !== 0;) {
    if (off + VFIO_CAP_HEADER_SIZE > buf.length || seen.has(off)) return fail('EINVAL', `bad capability offset ${off}`);
    seen.add(off);
    const h = V.vfio_info_cap_header.decode(buf.subarray(off, off + VFIO_CAP_HEADER_SIZE));
    out.push({ id: h.id, version: h.version, offset: off });
    off = h.next;
  }
  return ok(out);
}

export interface CapChainResult {
  /** argsz to report: unchanged, or the size needed when the chain did not fit. */
  readonly argsz: number;
  /** The struct's cap_offset: sizeof(info) when the chain is written, 0 otherwise. */
  readonly capOffset: number;
  /** True when there are caps at all: the handler ORs in its *_FLAG_CAPS / *_INFO_CAPS flag. */
  readonly hasCaps: boolean;
  /** The bytes to write at arg + sizeof(info), or null when the chain is left out. */
  readonly chain: Uint8Array | null;
}

/** The fit rule of the info ioctls: write the chain only if argsz >= sizeof(info) + chain size. */
export function placeCapChain(infoSize: number, argsz: number, caps: readonly VfioCap[]): CapChainResult {
  if (caps.length === 0) return { argsz, capOffset: 0, hasCaps: false, chain: null };
  const chain = buildCapChain(caps, infoSize);
  const needed = infoSize + chain.length;
  if (argsz < needed) return { argsz: needed, capOffset: 0, hasCaps: true, chain: null };
  return { argsz, capOffset: infoSize, hasCaps: true, chain };
}

/** Write a placed chain after the info struct at userPtr (EFAULT). No-op when the chain was left out. */
export function writeCapChain(mm: UserMemory, userPtr: number, infoSize: number, placed: CapChainResult): Result {
  if (placed.chain === null) return ok();
  if (!mm.write(userPtr + infoSize, placed.chain).ok) return fail('EFAULT', 'cannot write the capability chain');
  return ok();
}
