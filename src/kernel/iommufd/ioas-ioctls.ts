// The IOAS ioctls (drivers/iommu/iommufd/ioas.c, and IOMMU_DESTROY from main.c). Each handler receives
// the decoded argument struct (u32 fields as numbers, u64 fields as bigint) after the dispatcher applied
// the size rules, and returns the fields to write back with the whole struct. The checks run in the
// kernel's order so the first failing one decides the errno.

import { PAGE_SIZE } from '../../hw/memory/physical-memory.ts';
import { DmaBuf } from '../dma-buf/dma-buf.ts';
import { fail, ok, type KernelError, type Result } from '../errno.ts';
import type { OpenFile } from '../process/file.ts';
import type { Process } from '../process/process.ts';
import type { IommufdCtx } from './context.ts';
import { IOMMU_CACHE, IOMMU_READ, IOMMU_WRITE } from './io-pagetable.ts';
import { Ioas } from './ioas.ts';
import { hex64, isU64Max, u64ToSafeNumber, ULONG_MAX, U64_MAX, type IovaRange } from './iova-intervals.ts';
import type { IommufdObject } from './object.ts';
import { IoptPages } from './pages.ts';

/** A decoded argument struct: field name → number (u8..u32, s32), bigint (u64) or bytes. */
export type Decoded = Record<string, unknown>;

/** A failure that still writes fields back (IOAS_IOVA_RANGES' num_iovas with EMSGSIZE). */
export interface KernelErrorWithWriteBack extends KernelError {
  readonly writeBack: Decoded;
}

/**
 * An ioctl handler: the fields to write back on success (the dispatcher writes the whole struct). The
 * command is read-only: for structs without padding the dispatcher writes back the user's own bytes with
 * the returned fields over them, so a change made to `cmd` would be lost.
 */
export type IoctlHandler = (ctx: IommufdCtx, proc: Process, cmd: Readonly<Decoded>) => Result<Decoded | undefined>;

/** Wrap a handler typed for its own struct into the table's type. */
export function handler<C>(fn: (ctx: IommufdCtx, proc: Process, cmd: Readonly<C>) => Result<Partial<C> | undefined>): IoctlHandler {
  return fn as unknown as IoctlHandler;
}

export function failWithWriteBack(err: KernelError, writeBack: Decoded): KernelErrorWithWriteBack {
  return { ...err, writeBack };
}

// ---- new objects (ucmd->new_obj) --------------------------------------------------------------------

/**
 * Reserve an ID for an object this ioctl creates. The dispatcher finalizes it when the ioctl (write-back
 * included) succeeds and aborts it otherwise, as main.c does with ucmd.new_obj.
 */
export function newObject(ctx: IommufdCtx, obj: IommufdObject): Result<number> {
  const r = ctx.objects.reserve(obj);
  if (!r.ok) return r;
  ctx.pendingObjects.push(obj);
  return r;
}

/**
 * Undo work a successful handler did outside the object table (an fd it installed) if writing the struct
 * back then fails: the dispatcher runs these, newest first, before returning EFAULT.
 */
export function onWriteBackFailure(ctx: IommufdCtx, undo: () => void): void {
  ctx.writeBackUndos.push(undo);
}

// Most ioctls register nothing: the shared empty array spares the dispatcher two allocations per call.
const NONE: readonly never[] = [];

/** The undo actions registered since the last call, newest first (the dispatcher's side of onWriteBackFailure()). */
export function takeWriteBackUndos(ctx: IommufdCtx): readonly (() => void)[] {
  return ctx.writeBackUndos.length === 0 ? NONE : ctx.writeBackUndos.splice(0).reverse();
}

/** The objects reserved since the last call (the dispatcher's side of newObject()). */
export function takeNewObjects(ctx: IommufdCtx): readonly IommufdObject[] {
  return ctx.pendingObjects.length === 0 ? NONE : ctx.pendingObjects.splice(0);
}

// ---- helpers ----------------------------------------------------------------------------------------

export const IOMMU_IOAS_MAP_FIXED_IOVA = 1 << 0;
export const IOMMU_IOAS_MAP_WRITEABLE = 1 << 1;
export const IOMMU_IOAS_MAP_READABLE = 1 << 2;
const MAP_FLAGS = IOMMU_IOAS_MAP_FIXED_IOVA | IOMMU_IOAS_MAP_WRITEABLE | IOMMU_IOAS_MAP_READABLE;
const RANGE_BYTES = 16;
// Bounds the MAP checks compare with (bigint arithmetic made once, not per ioctl).
const MAX_MAP_LENGTH = ULONG_MAX - BigInt(PAGE_SIZE);
const HALF_ULONG = ULONG_MAX / 2n;

export function getIoas(ctx: IommufdCtx, id: number): Result<Ioas> {
  return ctx.objects.get<Ioas>(id, 'ioas');
}

/** conv_iommu_prot(): IOMMU_CACHE always, READ/WRITE from the map flags. */
function convProt(flags: number): number {
  let prot = IOMMU_CACHE;
  if ((flags & IOMMU_IOAS_MAP_WRITEABLE) !== 0) prot |= IOMMU_WRITE;
  if ((flags & IOMMU_IOAS_MAP_READABLE) !== 0) prot |= IOMMU_READ;
  return prot;
}

/**
 * The flag, overflow and protection checks MAP, MAP_FILE and COPY share, in the kernel's order: the u64
 * fields a, b (and c) each below ULONG_MAX, in that order. Separate arguments rather than an array, and
 * one shared success result: every IOAS_MAP of the IO page fault path comes through here. The fields are
 * decoded u64s, so `>= ULONG_MAX` is isU64Max() (no bigint comparison).
 */
function checkMapArgs(flags: number, reserved: number, a: bigint, b: bigint, c?: bigint): Result {
  if ((flags & ~MAP_FLAGS) !== 0 || reserved !== 0) return fail('EOPNOTSUPP', `unknown map flags 0x${(flags & ~MAP_FLAGS).toString(16)} or __reserved set`);
  if (isU64Max(a)) return fail('EOVERFLOW', `${hex64(a)} is not below ULONG_MAX`);
  if (isU64Max(b)) return fail('EOVERFLOW', `${hex64(b)} is not below ULONG_MAX`);
  if (c !== undefined && isU64Max(c)) return fail('EOVERFLOW', `${hex64(c)} is not below ULONG_MAX`);
  if ((flags & (IOMMU_IOAS_MAP_WRITEABLE | IOMMU_IOAS_MAP_READABLE)) === 0) return fail('EINVAL', 'a mapping needs READABLE or WRITEABLE');
  return ok();
}


const fixedIova = (flags: number, iova: bigint): bigint | undefined =>
  ((flags & IOMMU_IOAS_MAP_FIXED_IOVA) !== 0 ? iova : undefined);

// ---- IOMMU_DESTROY ----------------------------------------------------------------------------------

export interface DestroyCmd { size: number; id: number }

export const iommufdDestroy = handler<DestroyCmd>((ctx, _proc, cmd) => {
  const r = ctx.objects.destroyUser(cmd.id);
  if (!r.ok) return r;
  // iommufd_object_remove(): the VFIO compat IOAS pointer does not keep the IOAS alive.
  if (ctx.vfioIoasId === cmd.id) ctx.vfioIoasId = 0;
  return ok(undefined);
});

// ---- IOMMU_IOAS_ALLOC -------------------------------------------------------------------------------

export interface IoasAllocCmd { size: number; flags: number; out_ioas_id: number }

export const iommufdIoasAlloc = handler<IoasAllocCmd>((ctx, _proc, cmd) => {
  if (cmd.flags !== 0) return fail('EOPNOTSUPP', `IOAS_ALLOC flags 0x${cmd.flags.toString(16)}`);
  const ioas = new Ioas();
  const id = newObject(ctx, ioas);
  if (!id.ok) return id;
  return ok({ out_ioas_id: id.value });
});

// ---- IOMMU_IOAS_ALLOW_IOVAS -------------------------------------------------------------------------

export interface IovaRangesCmd {
  size: number; ioas_id: number; num_iovas: number; __reserved: number; allowed_iovas: bigint; out_iova_alignment: bigint;
}
export type AllowIovasCmd = Omit<IovaRangesCmd, 'out_iova_alignment'>;

function readRange(proc: Process, addr: bigint, index: number): Result<IovaRange> {
  const at = addr + BigInt(index * RANGE_BYTES);
  if (at > BigInt(Number.MAX_SAFE_INTEGER)) return fail('EFAULT', `${hex64(at)} is not a user address`);
  const b = new Uint8Array(RANGE_BYTES);
  const r = proc.mm.read(Number(at), b);
  if (!r.ok) return fail('EFAULT', `cannot read iommu_iova_range[${index}] at ${hex64(at)}`);
  const v = new DataView(b.buffer);
  return ok({ start: v.getBigUint64(0, true), last: v.getBigUint64(8, true) });
}

export const iommufdIoasAllowIovas = handler<AllowIovasCmd>((ctx, proc, cmd) => {
  if (cmd.__reserved !== 0) return fail('EOPNOTSUPP', '__reserved is not zero');
  const ioas = getIoas(ctx, cmd.ioas_id);
  if (!ioas.ok) return ioas;
  const ranges: IovaRange[] = [];
  for (let i = 0; i < cmd.num_iovas; i++) {
    const r = readRange(proc, cmd.allowed_iovas, i);
    if (!r.ok) return r;
    if (r.value.start >= r.value.last) return fail('EINVAL', `allowed range ${i} ${hex64(r.value.start)}..${hex64(r.value.last)} has start >= last`);
    if (ranges.some((o) => o.start <= r.value.last && r.value.start <= o.last)) return fail('EINVAL', `allowed range ${i} overlaps another`);
    ranges.push(r.value);
  }
  const set = ioas.value.iopt.setAllowed(ranges);
  return set.ok ? ok(undefined) : set;
});

// ---- IOMMU_IOAS_IOVA_RANGES -------------------------------------------------------------------------

export const iommufdIoasIovaRanges = handler<IovaRangesCmd>((ctx, proc, cmd) => {
  if (cmd.__reserved !== 0) return fail('EOPNOTSUPP', '__reserved is not zero');
  const ioas = getIoas(ctx, cmd.ioas_id);
  if (!ioas.ok) return ioas;
  const max = cmd.num_iovas;
  const holes = ioas.value.iopt.iovaRanges();
  const b = new Uint8Array(RANGE_BYTES);
  const v = new DataView(b.buffer);
  for (let i = 0; i < holes.length && i < max; i++) {
    const h = holes[i] as IovaRange;
    const at = cmd.allowed_iovas + BigInt(i * RANGE_BYTES);
    v.setBigUint64(0, h.start, true);
    v.setBigUint64(8, h.last, true);
    if (at > BigInt(Number.MAX_SAFE_INTEGER) || !proc.mm.write(Number(at), b).ok) {
      return fail('EFAULT', `cannot write iommu_iova_range[${i}] to ${hex64(at)}`);
    }
  }
  const out = { num_iovas: holes.length, out_iova_alignment: ioas.value.iopt.iovaAlignment };
  if (holes.length > max) {
    return failWithWriteBack(fail('EMSGSIZE', `${holes.length} ranges do not fit in an array of ${max}`), out);
  }
  return ok(out);
});

// ---- IOMMU_IOAS_MAP ---------------------------------------------------------------------------------

export interface IoasMapCmd {
  size: number; flags: number; ioas_id: number; __reserved: number; user_va: bigint; length: bigint; iova: bigint;
}

export const iommufdIoasMap = handler<IoasMapCmd>((ctx, proc, cmd) => {
  const checked = checkMapArgs(cmd.flags, cmd.__reserved, cmd.iova, cmd.length);
  if (!checked.ok) return checked;
  const ioas = getIoas(ctx, cmd.ioas_id);
  if (!ioas.ok) return ioas;
  // A user VA and length both below 2^53 (every map that can succeed: otherwise their sum is beyond the
  // user address space): the checks in numbers, in the same order, without bigint sums. Only the
  // length-0 and EFAULT checks can fail then, and the number sum rounds only above MAX_SAFE_INTEGER,
  // where it stays above.
  const uva = u64ToSafeNumber(cmd.user_va);
  const length = u64ToSafeNumber(cmd.length);
  if (uva < 0 || length < 0) return badUserRange(cmd);
  if (length === 0) return fail('EINVAL', `length ${hex64(cmd.length)}`);
  if (uva + length > Number.MAX_SAFE_INTEGER) return beyondUserSpace(cmd);
  const pages = IoptPages.user(proc, uva, length, (cmd.flags & IOMMU_IOAS_MAP_WRITEABLE) !== 0, ctx.accountMode);
  if (!(pages instanceof IoptPages)) return pages;
  return mapNewPages(ioas.value, pages, uva, cmd);
});

// The user-range checks of IOAS_MAP when user_va or length is not below 2^53, in the kernel's order;
// such a range is always refused (at the latest as beyond the user address space).
function badUserRange(cmd: Readonly<IoasMapCmd>): KernelError {
  // iopt_alloc_user_pages(): check_add_overflow(uptr, length) first, then the length.
  if (cmd.user_va + cmd.length > U64_MAX) return fail('EOVERFLOW', `user VA ${hex64(cmd.user_va)} + ${hex64(cmd.length)} wraps`);
  if (cmd.length === 0n || cmd.length > MAX_MAP_LENGTH) return fail('EINVAL', `length ${hex64(cmd.length)}`);
  // iopt_alloc_iova() refuses such lengths before any page is looked at.
  if ((cmd.flags & IOMMU_IOAS_MAP_FIXED_IOVA) === 0 && cmd.length >= HALF_ULONG) return fail('EOVERFLOW', `cannot allocate ${hex64(cmd.length)} bytes of IOVA`);
  return beyondUserSpace(cmd);
}

const beyondUserSpace = (cmd: Readonly<IoasMapCmd>): KernelError =>
  fail('EFAULT', `${hex64(cmd.user_va)}+${hex64(cmd.length)} is beyond the user address space`);

// ---- IOMMU_IOAS_MAP_FILE ----------------------------------------------------------------------------

export interface IoasMapFileCmd {
  size: number; flags: number; ioas_id: number; fd: number; start: bigint; length: bigint; iova: bigint;
}

export const iommufdIoasMapFile = handler<IoasMapFileCmd>((ctx, proc, cmd) => {
  const checked = checkMapArgs(cmd.flags, 0, cmd.iova, cmd.length);
  if (!checked.ok) return checked;
  const ioas = getIoas(ctx, cmd.ioas_id);
  if (!ioas.ok) return ioas;
  const f = proc.fds.get(cmd.fd);
  if (!f.ok) return fail('EBADF', `fd ${cmd.fd} is not open`);
  // iopt_map_file_pages(): a dma-buf fd maps the exporter's memory (newest kernels).
  if (f.value.file instanceof DmaBuf) {
    if (cmd.length === 0n || cmd.start + cmd.length > BigInt(f.value.file.size)) {
      return fail('EINVAL', `${hex64(cmd.start)}+${hex64(cmd.length)} is not inside the dma-buf (${f.value.file.size} bytes)`);
    }
    const start = Number(cmd.start);
    const pages = IoptPages.fromDmabuf(proc, f.value as OpenFile<DmaBuf>, start, Number(cmd.length), (cmd.flags & IOMMU_IOAS_MAP_WRITEABLE) !== 0);
    return pages.ok ? mapNewPages(ioas.value, pages.value, start, cmd) : pages;
  }
  const file = proc.memFile(cmd.fd);
  if (!file.ok) return fail('EINVAL', file.reason);
  if (cmd.start + cmd.length > BigInt(file.value.file.size)) {
    return fail('EINVAL', `${hex64(cmd.start)}+${hex64(cmd.length)} is past the end of ${file.value.file.name} (${file.value.file.size} bytes)`);
  }
  const start = Number(cmd.start);
  const pages = IoptPages.fromFile(proc, file.value, start, Number(cmd.length), (cmd.flags & IOMMU_IOAS_MAP_WRITEABLE) !== 0, { contextMode: ctx.accountMode });
  return pages.ok ? mapNewPages(ioas.value, pages.value, start, cmd) : pages;
});

/**
 * MAP and MAP_FILE: insert freshly made pages as one area; the area keeps its own reference. A fixed IOVA
 * goes back as the user passed it, so nothing is returned to overlay (the dispatcher still writes the
 * whole struct back, the same bytes): no write-back object per IO page fault's map.
 */
function mapNewPages(ioas: Ioas, pages: IoptPages, start: number, cmd: { flags: number; length: bigint; iova: bigint }): Result<{ iova: bigint } | undefined> {
  const fixed = (cmd.flags & IOMMU_IOAS_MAP_FIXED_IOVA) !== 0;
  const mapped = ioas.mapOne(pages, start - pages.base, cmd.length, convProt(cmd.flags), fixed ? cmd.iova : undefined);
  pages.put();
  if (typeof mapped !== 'bigint') return mapped;
  return fixed ? ok(undefined) : ok({ iova: mapped });
}

// ---- IOMMU_IOAS_COPY --------------------------------------------------------------------------------

export interface IoasCopyCmd {
  size: number; flags: number; dst_ioas_id: number; src_ioas_id: number; length: bigint; dst_iova: bigint; src_iova: bigint;
}

export const iommufdIoasCopy = handler<IoasCopyCmd>((ctx, _proc, cmd) => {
  const checked = checkMapArgs(cmd.flags, 0, cmd.length, cmd.src_iova, cmd.dst_iova);
  if (!checked.ok) return checked;
  const src = getIoas(ctx, cmd.src_ioas_id);
  if (!src.ok) return src;
  const slices = src.value.iopt.getPages(cmd.src_iova, cmd.length);
  if (!slices.ok) return slices;
  const dst = getIoas(ctx, cmd.dst_ioas_id);
  if (!dst.ok) return dst;
  const mapped = dst.value.map(slices.value, convProt(cmd.flags), fixedIova(cmd.flags, cmd.dst_iova));
  return mapped.ok ? ok({ dst_iova: mapped.value }) : mapped;
});

// ---- IOMMU_IOAS_UNMAP -------------------------------------------------------------------------------

export interface IoasUnmapCmd { size: number; ioas_id: number; iova: bigint; length: bigint }

export const iommufdIoasUnmap = handler<IoasUnmapCmd>((ctx, _proc, cmd) => {
  const ioas = getIoas(ctx, cmd.ioas_id);
  if (!ioas.ok) return ioas;
  const r = ioas.value.unmap(cmd.iova, cmd.length);
  if (!r.ok) return r;
  // The whole range unmapped (every exact unmap): the length goes back as the user passed it, so there is
  // nothing to overlay (the dispatcher still writes the whole struct back, the same bytes).
  return r.value === cmd.length ? ok(undefined) : ok({ length: r.value });
});

// ---- IOMMU_VFIO_IOAS --------------------------------------------------------------------------------

export const IOMMU_VFIO_IOAS_GET = 0;
export const IOMMU_VFIO_IOAS_SET = 1;
export const IOMMU_VFIO_IOAS_CLEAR = 2;

export interface VfioIoasCmd { size: number; ioas_id: number; op: number; __reserved: number }

export const iommufdVfioIoas = handler<VfioIoasCmd>((ctx, _proc, cmd) => {
  if (cmd.__reserved !== 0) return fail('EOPNOTSUPP', '__reserved is not zero');
  switch (cmd.op) {
    case IOMMU_VFIO_IOAS_GET: {
      const ioas = ctx.vfioIoasId === 0 ? undefined : getIoas(ctx, ctx.vfioIoasId);
      if (ioas === undefined || !ioas.ok) return fail('ENODEV', 'no IOAS is set for the VFIO compat layer');
      return ok({ ioas_id: ioas.value.id });
    }
    case IOMMU_VFIO_IOAS_SET: {
      const ioas = getIoas(ctx, cmd.ioas_id);
      if (!ioas.ok) return ioas;
      ctx.vfioIoasId = ioas.value.id;
      return ok(undefined);
    }
    case IOMMU_VFIO_IOAS_CLEAR:
      ctx.vfioIoasId = 0;
      return ok(undefined);
    default:
      return fail('EOPNOTSUPP', `unknown VFIO_IOAS op ${cmd.op}`);
  }
});

// ---- IOMMU_IOAS_CHANGE_PROCESS ----------------------------------------------------------------------

export interface ChangeProcessCmd { size: number; __reserved: number }

export const iommufdIoasChangeProcess = handler<ChangeProcessCmd>((ctx, proc, cmd) => {
  if (cmd.__reserved !== 0) return fail('EOPNOTSUPP', '__reserved is not zero');
  const all = ctx.objects.live().filter((o): o is Ioas => o instanceof Ioas).sort((a, b) => a.id - b.id);
  const r = IoptPages.changeProcess(all.flatMap((i) => i.pagesList()), proc);
  return r.ok ? ok(undefined) : r;
});
