// The ACCESS object (drivers/iommu/iommufd/device.c, iommufd_access_*): an in-kernel DMA user, such as the
// emulated (mdev) device behind a VFIO cdev, that reaches an IOAS with the CPU instead of through an IOMMU
// domain. It has no uAPI; the kernel driver creates and destroys it (uAPI reference §14, VFIO §12).
//
//  * Create: needs_pin_pages ⇒ iova_alignment PAGE_SIZE, else 1. The object is driver-owned (the driver
//    holds a users reference until destroy, so IOMMU_DESTROY of its ID is EBUSY). Its ID is what VFIO
//    returns as out_devid for an emulated device. With `file` the access holds the iommufd open.
//  * Attach (already attached → EINVAL, WARN), replace (not attached → ENOENT), detach (not attached →
//    WARN): only an IOAS ID (anything else → ENOENT); the new IOAS's alignment may rise (EADDRINUSE).
//    Leaving an IOAS first calls ops.unmap(0, ULONG_MAX) so the driver drops every pin; pins are refused
//    (ENOENT) while that runs, unpins still reach the old IOAS (access->ioas vs access->ioas_unpin).
//  * Pin: length 0 → EINVAL, wrap → EOVERFLOW, not attached → ENOENT; then area by area: prevent_access or
//    a start not at a page boundary (or an inner area boundary not at one) → EINVAL, missing READ/WRITE
//    permission → EPERM; a hole → ENOENT. PFNs come from the area's IoptPages (pfnsFor), so a page is
//    pinned once however many domains and accesses use it. On failure nothing stays pinned.
//  * Unpin must name exactly a range that was pinned (Linux WARNs and ignores anything else).
//  * Unmap contract: an IOAS unmap that meets an area with access pins calls every access's ops.unmap and
//    retries (io-pagetable.ts: EDEADLOCK after 100 retries).
//
// Modelling choices: pins are recorded per access (Linux keeps them per iopt_pages index range; a driver
// only ever unpins its own). A driver that leaves pins behind after unmap(0, ULONG_MAX) is a bug Linux
// WARNs about and leaks; the model warns and releases them so the accounting stays checkable.

import { PAGE_SIZE } from '../../hw/memory/physical-memory.ts';
import { fail, ok, type Result } from '../errno.ts';
import type { OpenFile } from '../process/file.ts';
import type { IommufdCtx } from './context.ts';
import { IOMMU_READ, IOMMU_WRITE } from './io-pagetable.ts';
import type { IoptArea } from './iopt-area.ts';
import type { Ioas, IoasAccess } from './ioas.ts';
import { hex64, ULONG_MAX } from './iova-intervals.ts';
import type { IommufdObject } from './object.ts';
import type { IoptPages } from './pages.ts';
import type { PagesRun } from './pfn-runs.ts';

const PAGE = BigInt(PAGE_SIZE);

/** struct iommufd_access_ops. */
export interface IommufdAccessOps {
  /** The driver pins pages (vfio_pin_pages): the IOAS alignment becomes at least PAGE_SIZE. */
  readonly needsPinPages: boolean;
  /** Unpin everything pinned inside [iova, iova + length) before returning (length ULONG_MAX: all). */
  unmap(iova: bigint, length: bigint): void;
}

export interface AccessCreateOptions {
  /** The iommufd's open file, held until destroy (Linux's iommufd_ctx_get()). */
  readonly file?: OpenFile;
  /** An internal access (HW queue, VFIO compat): PAGE_SIZE alignment, never notified on unmap. */
  readonly internal?: boolean;
}

/** IOMMUFD_ACCESS_RW_* flags. */
export interface AccessRwFlags {
  /** IOMMUFD_ACCESS_RW_WRITE: copy into the IOAS (the area needs IOMMU_WRITE). */
  readonly write?: boolean;
  /** IOMMUFD_ACCESS_RW_KTHREAD: the caller has no mm of its own; changes only how Linux copies. */
  readonly kthread?: boolean;
}

/** One area's share of a pin: pages [first, last] of the area's storage. */
interface PinSegment {
  readonly area: IoptArea<IoptPages>;
  readonly pages: IoptPages;
  readonly first: number;
  readonly last: number;
}

interface PinRecord {
  readonly iova: bigint;
  readonly last: bigint;
  readonly segs: readonly PinSegment[];
}

export class IommufdAccess implements IommufdObject, IoasAccess {
  readonly type = 'access' as const;
  readonly driverOwned = true;
  id = 0;
  users = 0;
  /** access->iova_alignment. */
  readonly iovaAlignment: bigint;
  /** access->ioas: where pins and rw go; null while not attached or while the IOAS is changing. */
  ioas: Ioas | null = null;
  /** access->ioas_unpin: where unpins go (still the old IOAS during the change's unmap callback). */
  ioasUnpin: Ioas | null = null;
  /** @internal Pins not yet unpinned, oldest first. */
  readonly pins: PinRecord[] = [];
  private destroyed = false;

  constructor(
    readonly ctx: IommufdCtx,
    readonly ops: IommufdAccessOps,
    readonly internal: boolean,
    private file: OpenFile | null,
  ) {
    this.iovaAlignment = ops.needsPinPages || internal ? PAGE : 1n;
  }

  get isDestroyed(): boolean { return this.destroyed; }
  /** Outstanding pin_pages calls. */
  get pinCount(): number { return this.pins.length; }
  /** Storage pages held by outstanding pins (a page pinned twice counts twice). */
  get pinnedPageRefs(): number {
    let n = 0;
    for (const p of this.pins) for (const s of p.segs) n += s.last - s.first + 1;
    return n;
  }

  /** ops->unmap, called by the IOAS's unmap notification. */
  notifyUnmap(iova: bigint, length: bigint): void { this.ops.unmap(iova, length); }
  warn(line: string): void { this.ctx.core.warn(line); }

  /** iommufd_access_destroy_object(): leave the IOAS (ops.unmap(0, ULONG_MAX) first), drop the file. */
  destroy(): void {
    if (this.destroyed) return;
    if (this.ioas !== null) {
      const r = changeIoas(this, null);
      if (!r.ok) this.ctx.core.warn(`access ${this.id}: detach at destroy failed: ${r.reason}`);
    }
    this.destroyed = true;
    const file = this.file;
    this.file = null;
    if (file !== null) file.put();
  }
}

// ---- create / destroy -------------------------------------------------------------------------------

/**
 * iommufd_access_create(): a driver-owned ACCESS object, finalized at once. EBADF for a closed context,
 * ENOSPC when no ID is free. Returns the access and its ID.
 */
export function iommufdAccessCreate(
  ctx: IommufdCtx, ops: IommufdAccessOps, opts: AccessCreateOptions = {},
): Result<{ access: IommufdAccess; id: number }> {
  if (ctx.isClosed) return fail('EBADF', 'the iommufd is closed');
  const access = new IommufdAccess(ctx, ops, opts.internal === true, opts.file ?? null);
  const id = ctx.objects.reserve(access);
  if (!id.ok) return id;
  ctx.objects.finalize(access);
  if (opts.file !== undefined) opts.file.get();
  return ok({ access, id: id.value });
}

/** iommufd_access_destroy(): the driver is done; detaches (ops.unmap(0, ULONG_MAX)) and removes the object. */
export function iommufdAccessDestroy(access: IommufdAccess): void {
  if (access.isDestroyed) return;
  const r = access.ctx.objects.removeDriverOwned(access);
  if (!r.ok) {
    // Already gone from the table (the context closed without the file held): just tear down.
    access.destroy();
  }
}

// ---- attach / replace / detach ----------------------------------------------------------------------

/** iommufd_access_attach(): EINVAL (WARN) when already attached; ENOENT unless `ioasId` is an IOAS. */
export function iommufdAccessAttach(access: IommufdAccess, ioasId: number): Result {
  if (access.ioas !== null) {
    access.ctx.core.warn(`access ${access.id}: attach while attached to IOAS ${access.ioas.id}`);
    return fail('EINVAL', `access ${access.id} is already attached to IOAS ${access.ioas.id}`);
  }
  return changeIoasId(access, ioasId);
}

/** iommufd_access_replace(): ENOENT when not attached; the same IOAS is a no-op. */
export function iommufdAccessReplace(access: IommufdAccess, ioasId: number): Result {
  if (access.ioas === null) return fail('ENOENT', `access ${access.id} is not attached`);
  return changeIoasId(access, ioasId);
}

/** iommufd_access_detach(): WARN and nothing when not attached. */
export function iommufdAccessDetach(access: IommufdAccess): void {
  if (access.ioas === null) {
    access.ctx.core.warn(`access ${access.id}: detach while not attached`);
    return;
  }
  const r = changeIoas(access, null);
  if (!r.ok) access.ctx.core.warn(`access ${access.id}: detach failed: ${r.reason}`);
}

function changeIoasId(access: IommufdAccess, ioasId: number): Result {
  const got = access.ctx.objects.get<Ioas>(ioasId, 'ioas');
  if (!got.ok) return got;
  return changeIoas(access, got.value);
}

// iommufd_access_change_ioas(): join the new IOAS (alignment, reference), then make the driver unpin
// everything on the old one before leaving it.
function changeIoas(access: IommufdAccess, next: Ioas | null): Result {
  const cur = access.ioas;
  if (cur !== access.ioasUnpin) return fail('EBUSY', `access ${access.id} is being detached`);
  if (cur === next) return ok();
  access.ioas = null;
  if (next !== null) {
    const aligned = next.iopt.setAlignmentSource(access, access.iovaAlignment, 'access');
    if (!aligned.ok) {
      access.ioas = cur;
      return aligned;
    }
    next.accessList.add(access);
    access.ctx.objects.ref(next);
  }
  if (cur !== null) {
    access.ops.unmap(0n, ULONG_MAX);
    dropLeftoverPins(access);
    cur.accessList.delete(access);
    cur.iopt.removeAlignmentSource(access);
    access.ctx.objects.unref(cur);
  }
  access.ioas = next;
  access.ioasUnpin = next;
  return ok();
}

// A driver bug: pins that survived unmap(0, ULONG_MAX). Linux WARNs later and leaks them.
function dropLeftoverPins(access: IommufdAccess): void {
  if (access.pins.length === 0) return;
  access.ctx.core.warn(`access ${access.id}: ${access.pins.length} pin(s) left after unmap(0, ULONG_MAX); released`);
  for (const rec of access.pins.splice(0)) releaseRecord(rec);
}

function releaseRecord(rec: PinRecord): void {
  for (const s of rec.segs) {
    s.area.numAccesses--;
    s.pages.release(s.first, s.last);
  }
}

// ---- the IOVA walk ----------------------------------------------------------------------------------

/** One area's part of [iova, last]: the bytes [cur, end]. */
interface Piece {
  readonly area: IoptArea<IoptPages>;
  readonly pages: IoptPages;
  readonly cur: bigint;
  readonly end: bigint;
}

/**
 * iopt_for_each_contig_area(): the published areas covering [iova, last] back to back, in order; stops at
 * the first hole (or an area still being mapped). `visit` may stop the walk with an error.
 * Returns whether the walk reached `last` (iopt_area_contig_done()).
 */
function walk(ioas: Ioas, iova: bigint, last: bigint, visit: (p: Piece) => Result): Result<boolean> {
  let cur = iova;
  for (;;) {
    const area = ioas.iopt.areaAt(cur);
    if (area === undefined || area.pages === null) return ok(false);
    const end = area.last < last ? area.last : last;
    const r = visit({ area, pages: area.pages, cur, end });
    if (!r.ok) return r;
    if (end === last) return ok(true);
    cur = end + 1n;
  }
}

// check_area_prot().
function protOk(area: IoptArea<IoptPages>, write: boolean): boolean {
  return (area.prot & (write ? IOMMU_WRITE : IOMMU_READ)) !== 0;
}

function checkRange(iova: bigint, length: bigint): Result<bigint> {
  if (iova < 0n || length < 0n) throw new RangeError(`negative IOVA ${iova} or length ${length}`);
  if (length === 0n) return fail('EINVAL', 'length 0');
  const last = iova + length - 1n;
  if (last > ULONG_MAX) return fail('EOVERFLOW', `${hex64(iova)}+${hex64(length)} wraps`);
  return ok(last);
}

// ---- pin / unpin ------------------------------------------------------------------------------------

/**
 * iommufd_access_pin_pages(): the PFNs of the pages under [iova, iova + length), one per page, each
 * pinned (once per storage page, shared with domains and other accesses) until the matching unpin.
 * EINVAL for an access without needs_pin_pages (WARN), length 0, an area being unmapped or a misaligned
 * start/inner boundary; EOVERFLOW when the range wraps; ENOENT when not attached or for a hole; EPERM
 * when the area lacks the permission asked for; pinning errors (ENOMEM, EFAULT) pass through.
 */
export function iommufdAccessPinPages(
  access: IommufdAccess, iova: bigint, length: bigint, flags: { readonly write?: boolean } = {},
): Result<Uint32Array> {
  if (access.iovaAlignment !== PAGE) {
    access.ctx.core.warn(`access ${access.id}: pin_pages without needs_pin_pages`);
    return fail('EINVAL', `access ${access.id} was created without needs_pin_pages`);
  }
  const checked = checkRange(iova, length);
  if (!checked.ok) return checked;
  const last = checked.value;
  const ioas = access.ioas;
  if (ioas === null) return fail('ENOENT', `access ${access.id} is not attached to an IOAS`);
  const write = flags.write === true;
  const segs: PinSegment[] = [];
  const got: Uint32Array[] = [];
  const undo = (): void => { releaseRecord({ iova, last, segs }); };
  const done = walk(ioas, iova, last, ({ area, pages, cur, end }) => {
    // iopt_area_contig_is_aligned(): the pin starts on a page, and an area the range runs past ends on one.
    const aligned = area.startByteAt(cur) % PAGE_SIZE === 0 && (end === last || area.startByteAt(area.last) % PAGE_SIZE === PAGE_SIZE - 1);
    if (area.preventAccess) return fail('EINVAL', `the area at ${hex64(area.iova)} is being unmapped`);
    if (!aligned) return fail('EINVAL', `${hex64(cur)}..${hex64(end)} does not start and end on page boundaries`);
    if (!protOk(area, write)) return fail('EPERM', `the area at ${hex64(area.iova)} is not ${write ? 'writeable' : 'readable'}`);
    // iopt_area_add_access(): a write pin needs writable storage too.
    if (write && !pages.writable) return fail('EPERM', `the pages at ${hex64(area.iova)} are read-only`);
    // iopt_area_add_access(): dma-buf pages are not for in-kernel accesses.
    if (pages.kind === 'dmabuf') return fail('EINVAL', `the area at ${hex64(area.iova)} maps a dma-buf, which accesses cannot pin`);
    const first = area.indexAt(cur);
    const lastIndex = area.indexAt(end);
    const pfns = pages.pfnsFor(first, lastIndex);
    if (!pfns.ok) return pfns;
    area.numAccesses++;
    segs.push({ area, pages, first, last: lastIndex });
    got.push(runsToPfns(pfns.value, first, lastIndex - first + 1));
    return ok();
  });
  if (!done.ok || !done.value) {
    undo();
    return done.ok ? fail('ENOENT', `${hex64(iova)}..${hex64(last)} is not contiguously mapped`) : done;
  }
  access.pins.push({ iova, last, segs });
  if (got.length === 1) return ok(got[0] as Uint32Array);
  const out = new Uint32Array(got.reduce((n, a) => n + a.length, 0));
  let at = 0;
  for (const a of got) { out.set(a, at); at += a.length; }
  return ok(out);
}

/**
 * iommufd_access_unpin_pages(): undo one pin_pages of exactly this range (the same pages of the same
 * areas). Bad arguments, no IOAS, or a range that was not pinned: WARN and nothing changes.
 */
export function iommufdAccessUnpinPages(access: IommufdAccess, iova: bigint, length: bigint): void {
  const warn = (why: string): void => { access.ctx.core.warn(`access ${access.id}: unpin ${hex64(iova)}+${hex64(length)}: ${why}`); };
  const checked = checkRange(iova, length);
  if (!checked.ok) { warn(checked.reason); return; }
  const last = checked.value;
  const ioas = access.ioasUnpin;
  if (ioas === null) { warn('not attached'); return; }
  const segs: { area: IoptArea<IoptPages>; first: number; last: number }[] = [];
  const done = walk(ioas, iova, last, ({ area, cur, end }) => {
    segs.push({ area, first: area.indexAt(cur), last: area.indexAt(end) });
    return ok();
  });
  if (!done.ok || !done.value) { warn('not contiguously mapped'); return; }
  const i = access.pins.findIndex((p) => p.segs.length === segs.length && p.segs.every((s, k) => {
    const t = segs[k] as PinSegment | undefined;
    return t !== undefined && s.area === t.area && s.first === t.first && s.last === t.last;
  }));
  if (i < 0) { warn('no pin of exactly this range'); return; }
  const [rec] = access.pins.splice(i, 1);
  releaseRecord(rec as PinRecord);
}

// ---- rw ---------------------------------------------------------------------------------------------

/**
 * iommufd_access_rw(): copy `data` to (write) or from the IOAS at `iova`, area by area, through the
 * source process's memory (user pages: its mm, as copy_to/from_user does; memfd pages: their frames,
 * pinned for the copy and released). EINVAL for length 0 or an area being unmapped, EOVERFLOW when the
 * range wraps, ENOENT when not attached or for a hole, EPERM without the area permission or for a write
 * to read-only pages; EFAULT when the mm is gone or the VA is not accessible. Bytes copied before an
 * error stay copied, as in Linux.
 */
export function iommufdAccessRw(access: IommufdAccess, iova: bigint, data: Uint8Array, flags: AccessRwFlags = {}): Result {
  const checked = checkRange(iova, BigInt(data.length));
  if (!checked.ok) return checked;
  const last = checked.value;
  const ioas = access.ioas;
  if (ioas === null) return fail('ENOENT', `access ${access.id} is not attached to an IOAS`);
  const write = flags.write === true;
  let at = 0;
  const done = walk(ioas, iova, last, ({ area, pages, cur, end }) => {
    if (area.preventAccess) return fail('EINVAL', `the area at ${hex64(area.iova)} is being unmapped`);
    if (!protOk(area, write)) return fail('EPERM', `the area at ${hex64(area.iova)} is not ${write ? 'writeable' : 'readable'}`);
    if (write && !pages.writable) return fail('EPERM', `the pages at ${hex64(area.iova)} are read-only`);
    const n = Number(end - cur) + 1;
    const r = copyPages(pages, area.startByteAt(cur), data.subarray(at, at + n), write);
    if (!r.ok) return r;
    at += n;
    return ok();
  });
  if (!done.ok) return done;
  return done.value ? ok() : fail('ENOENT', `${hex64(iova)}..${hex64(last)} is not contiguously mapped`);
}

// iopt_pages_rw_access(): bytes [byte, byte + buf.length) of the storage.
function copyPages(pages: IoptPages, byte: number, buf: Uint8Array, write: boolean): Result {
  if (pages.kind === 'dmabuf') return fail('EINVAL', 'an access cannot read or write dma-buf pages');
  const src = pages.source;
  if (pages.kind === 'user') {
    const mm = src.mm;
    if (!mm.mmgetNotZero()) return fail('EFAULT', `the address space of pid ${src.pid} is gone`);
    const va = pages.base + byte;
    const r = write ? mm.write(va, buf) : mm.read(va, buf);
    mm.mmput();
    return r;
  }
  // File pages: the slow path, through pinned frames.
  const first = Math.floor(byte / PAGE_SIZE);
  const lastIndex = Math.floor((byte + buf.length - 1) / PAGE_SIZE);
  const pfns = pages.pfnsFor(first, lastIndex);
  if (!pfns.ok) return pfns;
  const memory = src.mm.frames.memory;
  let done = 0;
  while (done < buf.length) {
    const off = (byte + done) % PAGE_SIZE;
    const pfn = pfnOf(pfns.value, Math.floor((byte + done) / PAGE_SIZE));
    const n = Math.min(PAGE_SIZE - off, buf.length - done);
    const chunk = buf.subarray(done, done + n);
    const pa = pfn * PAGE_SIZE + off;
    if (write) memory.write(pa, chunk);
    else memory.read(pa, chunk);
    done += n;
  }
  pages.release(first, lastIndex);
  return ok();
}

/** One PFN per page of [first, first + n) from the runs pfnsFor() returns (iommufd_access_pin_pages' out). */
function runsToPfns(runs: readonly PagesRun[], first: number, n: number): Uint32Array {
  const out = new Uint32Array(n);
  for (const r of runs) for (let i = 0; i < r.count; i++) out[r.index - first + i] = r.pfn + i;
  return out;
}

/** The PFN of page `index` in the runs. */
function pfnOf(runs: readonly PagesRun[], index: number): number {
  for (const r of runs) if (index >= r.index && index < r.index + r.count) return r.pfn + (index - r.index);
  throw new Error(`page ${index} is not in the pinned runs`);
}
