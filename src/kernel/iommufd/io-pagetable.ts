// The IOVA space of an IOAS (Linux's struct io_pagetable, drivers/iommu/iommufd/io_pagetable.c): areas
// (populated IOVA ranges, each a slice of an iopt_pages), reserved ranges (device regions, domain aperture
// exclusions, test reservations), the allowed ranges for automatic allocation, and iova_alignment.
//
// u64 representation: every IOVA, length and alignment here is a `bigint` holding a u64 (0..2^64-1);
// ranges are inclusive [start, last] as in the kernel, so the whole space [0, ULONG_MAX] needs no 2^64.
// Byte offsets into an iopt_pages (`startByte`) and user VAs are `number`: they address user memory,
// which the simulated mm keeps below 2^53 (its task size). See iova-intervals.ts.
//
// Domains and accesses are not modelled here: the domain layer passes `fill`/`unfill` callbacks to
// map() and unmap hooks, and registers its page-size alignment with setAlignmentSource().

import { PAGE_SIZE } from '../../hw/memory/physical-memory.ts';
import { fail, ok, type ErrnoName, type KernelError, type Result } from '../errno.ts';
import {
  alignUp, assertU64, hex64, holes, IntervalList, IntervalMap, lowestSetBit, roundupPowOfTwo, ULONG_MAX, U64_MAX,
  safeNumberToU64, u64ToNumber, type IovaRange, type OwnedRange,
} from './iova-intervals.ts';
import { IoptArea, type AreaPages, type IoptHooks, type MapHooks, type MapOptions, type PagesSlice, type ReservedOwner } from './iopt-area.ts';

export const IOMMU_READ = 1 << 0;
export const IOMMU_WRITE = 1 << 1;
export const IOMMU_CACHE = 1 << 2;

const PAGE = BigInt(PAGE_SIZE);
const PAGE_MINUS_ONE = PAGE - 1n;
const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);
/** Lengths (and start bytes) up to 2^52: sums of two stay exact as numbers. */
const SMALL_LENGTH = 2n ** 52n;
const SMALL_LENGTH_NUMBER = 2 ** 52;
/** HPAGE_SIZE (PMD size with THP): the largest alignment automatic allocation asks for. */
export const MAX_AUTO_ALIGNMENT = 2n ** 21n;
/** iommufd_access_notify_unmap() rounds tolerated: the one after the 100th gives up with EDEADLOCK. */
const MAX_NOTIFY_ROUNDS = 100;

type AlignmentKind = 'domain' | 'access';

// An unmap stopped part-way (a function rather than a closure per area: the unmap loop is hot).
function stopped(errno: ErrnoName, why: string, unmapped: bigint): KernelError {
  return fail(errno, `${why} (${unmapped} bytes were unmapped first)`);
}

export class IoPagetable<P extends AreaPages = AreaPages> {
  private readonly areas = new IntervalMap<IoptArea<P>>();
  private readonly reserved = new IntervalList<ReservedOwner>();
  private allowed = new IntervalList<null>();
  private alignment = 1n;
  /** alignment - 1n, and its bits below PAGE_SIZE as a number (page offsets are numbers). */
  private alignMask = 0n;
  private alignNum = 1;
  private alignMaskPage = 0;
  private largePagesDisabled = false;
  private readonly alignmentSources = new Map<object, { alignment: bigint; kind: AlignmentKind }>();
  hooks: IoptHooks<P> = {};

  /** iopt->iova_alignment. */
  get iovaAlignment(): bigint { return this.alignment; }
  /** IOMMU_OPTION_HUGE_PAGES (true unless disabled). */
  get largePages(): boolean { return !this.largePagesDisabled; }
  get areaCount(): number { return this.areas.size; }

  /** The areas, ascending. */
  *areaList(): IterableIterator<IoptArea<P>> {
    for (const [, , a] of this.areas.entries()) yield a;
  }

  areaAt(iova: bigint): IoptArea<P> | undefined {
    const i = this.areas.indexOf(iova);
    return i < 0 ? undefined : this.areas.value(i);
  }

  reservedRanges(): readonly OwnedRange<ReservedOwner>[] { return this.reserved.list(); }
  allowedRanges(): IovaRange[] { return this.allowed.list().map(({ start, last }) => ({ start, last })); }

  /** Bytes of the area index columns (metadata accounting; area objects not included). */
  get indexBytes(): number { return this.areas.columnBytes; }

  // ---- allocation and checks -------------------------------------------------------------------

  /**
   * iopt_alloc_iova(): the lowest IOVA where `length` bytes fit in an allowed span (default
   * [PAGE_SIZE, ULONG_MAX - PAGE_SIZE], so never 0) outside reserved ranges and areas, aligned to
   * min(roundup_pow_of_two(length), lowest set bit of `uptr`) capped at 2 MiB, with uptr's sub-page offset.
   * EOVERFLOW for length 0 or >= ULONG_MAX / 2; EINVAL when that alignment is below iova_alignment;
   * ENOSPC when nothing fits.
   */
  allocIova(length: bigint, uptr: bigint): Result<bigint> {
    assertU64(length, 'length');
    assertU64(uptr, 'uptr');
    if (length === 0n || length >= ULONG_MAX / 2n) return fail('EOVERFLOW', `cannot allocate ${length} bytes of IOVA`);
    let align = roundupPowOfTwo(length);
    if (uptr !== 0n) {
      const low = lowestSetBit(uptr);
      if (low < align) align = low;
    }
    if (align > MAX_AUTO_ALIGNMENT) align = MAX_AUTO_ALIGNMENT;
    if (align < this.alignment) {
      return fail('EINVAL', `automatic alignment ${hex64(align)} is below the IOAS alignment ${hex64(this.alignment)}`);
    }
    const pageOffset = uptr % PAGE;
    const fit = (r: IovaRange): bigint | undefined => {
      if (r.last - r.start < length - 1n) return undefined;
      const s = alignUp(r.start, align) | pageOffset;
      return s > r.last || r.last - s < length - 1n ? undefined : s;
    };
    const lo = PAGE;
    const hi = ULONG_MAX - PAGE;
    const spans = this.allowed.size === 0 ? [{ start: lo, last: hi }] : this.allowed.merged(lo, hi);
    for (const span of spans) {
      const s = fit(span);
      if (s === undefined) continue;
      const at = this.firstFit(s, span.last, length, fit);
      if (at !== undefined) return ok(at);
    }
    return fail('ENOSPC', `no free IOVA range of ${length} bytes aligned to ${hex64(align)}`);
  }

  // The lowest fit in the free runs of [lo, hi] (outside areas and reserved ranges), in address order.
  // Gaps between areas smaller than `length` cannot hold a fit and are skipped a block at a time.
  private firstFit(lo: bigint, hi: bigint, length: bigint, fit: (r: IovaRange) => bigint | undefined): bigint | undefined {
    const tryHole = (a: bigint, b: bigint): bigint | undefined => {
      if (a > b || b - a < length - 1n) return undefined;
      for (const h of holes(this.reserved.merged(a, b), a, b)) {
        const at = fit(h);
        if (at !== undefined) return at;
      }
      return undefined;
    };
    const first = this.areas.firstEndingAtOrAfter(lo);
    const end = this.areas.firstStartingAfter(hi);
    if (first >= end) return tryHole(lo, hi);
    const lead = tryHole(lo, this.areas.start(first) - 1n);
    if (lead !== undefined) return lead;
    for (let j = this.areas.nextGapAtLeast(first + 1, length, end); j < end; j = this.areas.nextGapAtLeast(j + 1, length, end)) {
      const at = tryHole(this.areas.last(j - 1) + 1n, this.areas.start(j) - 1n);
      if (at !== undefined) return at;
    }
    const tail = this.areas.last(end - 1);
    return tail >= hi ? undefined : tryHole(tail + 1n, hi);
  }

  /**
   * iopt_check_iova(): a fixed IOVA. EINVAL unaligned to iova_alignment, EOVERFLOW when iova + length - 1
   * wraps, EINVAL when it hits a reserved range, EEXIST when it overlaps an area.
   */
  checkFixedIova(iova: bigint, length: bigint): Result {
    const r = this.checkFixed(iova, length);
    return typeof r === 'bigint' ? ok() : r;
  }

  // checkFixedIova() returning the last byte (iova + length - 1) on success, for the map to reuse.
  private checkFixed(iova: bigint, length: bigint): bigint | KernelError {
    assertU64(iova, 'iova');
    assertU64(length, 'length');
    if (!this.aligned(iova)) return fail('EINVAL', `IOVA ${hex64(iova)} is not aligned to ${hex64(this.alignment)}`);
    // One bigint allocation rather than two for a page (the IO page fault path maps one at a time).
    const last = iova + (length === PAGE ? PAGE_MINUS_ONE : length - 1n);
    if (last > ULONG_MAX || length === 0n) return fail('EOVERFLOW', `${hex64(iova)}+${hex64(length)} wraps`);
    const r = this.reserved.anyIntersecting(iova, last);
    if (r !== undefined) return fail('EINVAL', `${hex64(iova)}..${hex64(last)} hits the reserved range ${hex64(r.start)}..${hex64(r.last)} (${r.owner.kind})`);
    const a = this.areas.firstIntersecting(iova, last);
    if (a >= 0) return fail('EEXIST', `${hex64(iova)}..${hex64(last)} overlaps the area at ${hex64(this.areas.start(a))}`);
    return last;
  }

  // (v & (iova_alignment - 1)) === 0, in numbers when v is a safe integer (exact: the alignment is a
  // power of two), so the common check allocates no bigint.
  private aligned(v: bigint): boolean {
    if (v > MAX_SAFE) return (v & this.alignMask) === 0n;
    // Math.floor() rather than `%` (a C call on doubles); exact for a power-of-two alignment.
    const n = u64ToNumber(v);
    return Math.floor(n / this.alignNum) * this.alignNum === n;
  }

  /**
   * iopt_insert_area(): put an area with no published pages (pages = null) at [iova, iova + length).
   * The caller checked the range. EPERM for a WRITE area on read-only storage, EINVAL when the page
   * offset is not aligned to iova_alignment, EOVERFLOW when it runs past the end of the storage.
   */
  insertArea(pages: P, iova: bigint, startByte: number, length: bigint, prot: number): Result<IoptArea<P>> {
    const a = this.insertOne(pages, iova, startByte, length, undefined, prot);
    return a instanceof IoptArea ? ok(a) : a;
  }

  // insertArea() returning the area itself (no Result object on the map path).
  // `knownLast` is iova + length - 1 when the caller computed it already.
  private insertOne(pages: P, iova: bigint, startByte: number, length: bigint, knownLast: bigint | undefined, prot: number): IoptArea<P> | KernelError {
    if ((prot & IOMMU_WRITE) !== 0 && !pages.writable) return fail('EPERM', 'a writeable mapping of read-only pages');
    if (!Number.isSafeInteger(startByte) || startByte < 0) throw new RangeError(`bad start byte ${startByte}`);
    const pageOffset = startByte - Math.floor(startByte / PAGE_SIZE) * PAGE_SIZE; // startByte % PAGE_SIZE, without the C call
    if ((pageOffset & this.alignMaskPage) !== 0) {
      return fail('EINVAL', `page offset ${pageOffset} is not aligned to ${hex64(this.alignment)}`);
    }
    // A known last byte comes from checkFixed(), which refused length 0 and a wrap already (and each bigint
    // comparison is a builtin call).
    let last: bigint;
    if (knownLast !== undefined) {
      last = knownLast;
    } else {
      last = iova + (length === PAGE ? PAGE_MINUS_ONE : length - 1n);
      if (length === 0n || last > ULONG_MAX) return fail('EOVERFLOW', `${hex64(iova)}+${hex64(length)} wraps`);
    }
    // The last storage page, in numbers while they are exact (both terms below 2^52), else in bigints.
    const small = length <= SMALL_LENGTH && startByte <= SMALL_LENGTH_NUMBER;
    const lengthNumber = small ? u64ToNumber(length) : 0;
    const lastPage = small ? Math.floor((startByte + lengthNumber - 1) / PAGE_SIZE) : (BigInt(startByte) + length - 1n) / PAGE;
    if (lastPage >= pages.npages) throw new Error(`area runs past its ${pages.npages} pages`);
    const area = new IoptArea(iova, last, pages, startByte, prot, small ? lengthNumber : undefined);
    this.areas.insert(iova, last, area);
    return area;
  }

  private removeArea(area: IoptArea<P>): void {
    const i = this.areas.indexOf(area.iova);
    if (i < 0 || this.areas.value(i) !== area) throw new Error(`area ${hex64(area.iova)} is not in the table`);
    this.areas.removeAt(i);
  }

  /**
   * iopt_map_pages(): map the slices contiguously at a fixed or allocated IOVA, fill (domains), then
   * publish each area's pages (each area takes a reference). Errors: EINVAL for length 0 or a length not
   * a multiple of iova_alignment; the errors of allocIova/checkFixedIova/insertArea; whatever `fill`
   * returns. On failure nothing is left behind. Returns the IOVA and the areas.
   */
  map(slices: readonly PagesSlice<P>[], prot: number, opts: MapOptions<P> = {}): Result<{ iova: bigint; areas: IoptArea<P>[] }> {
    const areas: IoptArea<P>[] = [];
    const r = this.mapAt(slices, prot, opts.iova, opts, areas);
    return r.ok ? ok({ iova: r.value, areas }) : r;
  }

  /**
   * map() at `iova` (undefined: allocated) with `hooks`, returning the IOVA; the areas are appended to
   * `out` when given. The IOAS maps through this: no options object or area list per call.
   */
  mapAt(slices: readonly PagesSlice<P>[], prot: number, fixedIova: bigint | undefined, hooks: MapHooks<P>, out: IoptArea<P>[] | null): Result<bigint> {
    const first = slices[0] as PagesSlice<P>;
    let length = first.length;
    for (let i = 1; i < slices.length; i++) length += (slices[i] as PagesSlice<P>).length;
    if (length > ULONG_MAX) return fail('EOVERFLOW', 'total length wraps');
    if (length === 0n || !this.aligned(length)) {
      return fail('EINVAL', `length ${hex64(length)} is 0 or not a multiple of ${hex64(this.alignment)}`);
    }
    let iova: bigint;
    let last: bigint | undefined;
    if (fixedIova === undefined) {
      const got = this.allocIova(length, BigInt(first.pages.base + first.startByte));
      if (!got.ok) return got;
      iova = got.value;
    } else {
      const checked = this.checkFixed(fixedIova, length);
      if (typeof checked !== 'bigint') return checked;
      iova = fixedIova;
      last = checked;
    }
    if (slices.length === 1) {
      // One slice (every IOAS_MAP): the loops below with a single area, and no list of areas.
      const mapped = this.placeOne(first.pages, iova, first.startByte, first.length, last, prot, hooks, out);
      return typeof mapped === 'bigint' ? ok(mapped) : mapped;
    }
    const areas: IoptArea<P>[] = [];
    let at = iova;
    for (const s of slices) {
      const inserted = this.insertOne(s.pages, at, s.startByte, s.length, undefined, prot);
      if (!(inserted instanceof IoptArea)) {
        for (const a of areas) this.removeArea(a);
        return inserted;
      }
      areas.push(inserted);
      at += s.length;
    }
    if (hooks.fill !== undefined) {
      for (let i = 0; i < areas.length; i++) {
        const filled = hooks.fill(areas[i] as IoptArea<P>);
        if (!filled.ok) {
          for (let j = 0; j < i; j++) hooks.unfill?.(areas[j] as IoptArea<P>);
          for (const a of areas) this.removeArea(a);
          return filled;
        }
      }
    }
    for (const a of areas) {
      a.storage.get();
      a.pages = a.storage;
    }
    out?.push(...areas);
    return ok(iova);
  }

  /**
   * mapAt() of one slice, bytes [startByte, startByte + length) of `pages` (each IOAS_MAP, so each IO page
   * fault's map): the same checks in the same order, errors and effects, without a slice list or a Result
   * on success. Returns the IOVA.
   */
  mapOne(pages: P, startByte: number, length: bigint, prot: number, fixedIova: bigint | undefined, hooks: MapHooks<P>): bigint | KernelError {
    if (length > ULONG_MAX) return fail('EOVERFLOW', 'total length wraps');
    if (length === 0n || !this.aligned(length)) {
      return fail('EINVAL', `length ${hex64(length)} is 0 or not a multiple of ${hex64(this.alignment)}`);
    }
    if (fixedIova === undefined) {
      const got = this.allocIova(length, BigInt(pages.base + startByte));
      if (!got.ok) return got;
      return this.placeOne(pages, got.value, startByte, length, undefined, prot, hooks, null);
    }
    const last = this.checkFixed(fixedIova, length);
    if (typeof last !== 'bigint') return last;
    return this.placeOne(pages, fixedIova, startByte, length, last, prot, hooks, null);
  }

  // The one-area tail of mapAt(): insert at the checked `iova`, fill, publish.
  private placeOne(
    pages: P, iova: bigint, startByte: number, length: bigint, last: bigint | undefined, prot: number, hooks: MapHooks<P>, out: IoptArea<P>[] | null,
  ): bigint | KernelError {
    const area = this.insertOne(pages, iova, startByte, length, last, prot);
    if (!(area instanceof IoptArea)) return area;
    if (hooks.fill !== undefined) {
      const filled = hooks.fill(area);
      if (!filled.ok) {
        this.removeArea(area);
        return filled;
      }
    }
    area.storage.get();
    area.pages = area.storage;
    out?.push(area);
    return iova;
  }

  /**
   * iopt_get_pages(): the slices covering [iova, iova + length) for IOAS_COPY. They must be covered
   * contiguously by published areas, else ENOENT. EINVAL for length 0, EOVERFLOW when it wraps.
   */
  getPages(iova: bigint, length: bigint): Result<PagesSlice<P>[]> {
    assertU64(iova, 'iova');
    assertU64(length, 'length');
    if (length === 0n) return fail('EINVAL', 'length 0');
    const last = iova + length - 1n;
    if (last > ULONG_MAX) return fail('EOVERFLOW', `${hex64(iova)}+${hex64(length)} wraps`);
    const out: PagesSlice<P>[] = [];
    let cur = iova;
    let i = this.areas.indexOf(cur);
    while (i >= 0 && i < this.areas.size) {
      const a = this.areas.value(i);
      if (a.iova > cur || a.pages === null) break;
      const end = a.last < last ? a.last : last;
      out.push({ pages: a.pages, startByte: a.startByteAt(cur), length: end - cur + 1n });
      if (end === last) return ok(out);
      cur = end + 1n;
      i++;
    }
    return fail('ENOENT', `${hex64(iova)}..${hex64(last)} is not contiguously mapped`);
  }

  /**
   * iopt_for_each_contig_area() over [iova, last]: `fn(from, to)` for each published area's part of the
   * range, ascending, while the areas follow each other without a gap. Ok(true) when they covered the
   * whole range (iopt_area_contig_done), ok(false) at the first gap or unpublished area; an error of
   * `fn` stops the walk and is returned.
   */
  forEachContigArea(iova: bigint, last: bigint, fn: (from: bigint, to: bigint) => Result): Result<boolean> {
    let cur = iova;
    let i = this.areas.indexOf(cur);
    while (i >= 0 && i < this.areas.size) {
      const a = this.areas.value(i);
      if (a.iova > cur || a.pages === null) break;
      const to = a.last < last ? a.last : last;
      const r = fn(cur, to);
      if (!r.ok) return r;
      if (to === last) return ok(true);
      cur = to + 1n;
      i++;
    }
    return ok(false);
  }

  // ---- unmap ------------------------------------------------------------------------------------

  /**
   * IOMMU_IOAS_UNMAP as the ioctl sees it: iova 0 with length U64_MAX unmaps everything (succeeding on
   * an empty table with 0); otherwise iova or length >= ULONG_MAX is EOVERFLOW and iopt_unmap_iova()
   * applies. Returns the bytes unmapped.
   */
  unmap(iova: bigint, length: bigint): Result<bigint> {
    assertU64(iova, 'iova');
    assertU64(length, 'length');
    if (iova === 0n && length === U64_MAX) return this.unmapAll();
    if (iova >= ULONG_MAX || length >= ULONG_MAX) return fail('EOVERFLOW', `${hex64(iova)}+${hex64(length)} is too large`);
    return this.unmapIova(iova, length);
  }

  /** iopt_unmap_iova(): EINVAL for length 0, EOVERFLOW when the range wraps; see unmapRange(). */
  unmapIova(iova: bigint, length: bigint): Result<bigint> {
    if (length === 0n) return fail('EINVAL', 'unmap of length 0');
    const last = iova + length - 1n;
    if (last > ULONG_MAX) return fail('EOVERFLOW', `${hex64(iova)}+${hex64(length)} wraps`);
    return this.unmapRange(iova, last);
  }

  /** iopt_unmap_all(): never ENOENT. */
  unmapAll(): Result<bigint> {
    const r = this.unmapRange(0n, ULONG_MAX);
    return !r.ok && r.errno === 'ENOENT' ? ok(0n) : r;
  }

  /**
   * iopt_unmap_iova_range(): remove every area inside [start, last], lowest first. Areas are never cut:
   * an area crossing either end is ENOENT; an area still being mapped or locked is EBUSY; accesses are
   * notified and must unpin (EDEADLOCK when 101 rounds leave pins). ENOENT when nothing was unmapped. As in Linux,
   * areas removed before an error stay removed.
   */
  unmapRange(start: bigint, last: bigint): Result<bigint> {
    // Bytes unmapped: summed as a number while that is exact, moved into the bigint before it could not be.
    let unmappedBig = 0n;
    let unmappedNum = 0;
    let rounds = 0;
    for (;;) {
      const i = this.areas.firstIntersecting(start, last);
      if (i < 0) break;
      const area = this.areas.value(i);
      if (area.pages === null) {
        return stopped('EBUSY', `the area at ${hex64(area.iova)} is still being mapped`, unmappedBig + BigInt(unmappedNum));
      }
      if (area.numLocks !== 0) {
        return stopped('EBUSY', `the area at ${hex64(area.iova)} is locked by ${area.numLocks} object(s)`, unmappedBig + BigInt(unmappedNum));
      }
      if (area.iova < start || area.last > last) {
        const why = `the area ${hex64(area.iova)}..${hex64(area.last)} is not inside ${hex64(start)}..${hex64(last)}`;
        return stopped('ENOENT', why, unmappedBig + BigInt(unmappedNum));
      }
      if (area.numAccesses !== 0) {
        // Linux marks the area, notifies, then counts the round: the 101st round without progress is
        // EDEADLOCK, and prevent_access stays set on the area (nothing clears it).
        area.preventAccess = true;
        this.hooks.notifyUnmap?.(area.iova, area.length);
        if (++rounds > MAX_NOTIFY_ROUNDS) {
          return stopped('EDEADLOCK', `accesses still pin the area at ${hex64(area.iova)}`, unmappedBig + BigInt(unmappedNum));
        }
        continue;
      }
      rounds = 0;
      const pages = area.pages;
      area.pages = null;
      this.areas.removeAt(i);
      this.hooks.unfillArea?.(area, pages);
      pages.put();
      if (unmappedNum + area.byteLength > Number.MAX_SAFE_INTEGER) {
        unmappedBig += BigInt(unmappedNum);
        unmappedNum = 0;
      }
      unmappedNum += area.byteLength;
    }
    if (unmappedNum === 0 && unmappedBig === 0n) return fail('ENOENT', `nothing is mapped in ${hex64(start)}..${hex64(last)}`);
    // safeNumberToU64() rather than BigInt(), a runtime call (unmappedNum is a safe integer).
    return ok(unmappedBig === 0n ? safeNumberToU64(unmappedNum) : unmappedBig + safeNumberToU64(unmappedNum));
  }

  // ---- reserved and allowed ranges --------------------------------------------------------------

  /** iopt_reserve_iova(): EADDRINUSE when [start, last] intersects an area or an allowed range. */
  reserve(start: bigint, last: bigint, owner: ReservedOwner): Result {
    assertU64(start, 'start');
    assertU64(last, 'last');
    if (start > last) throw new RangeError(`reserved range ${hex64(start)}..${hex64(last)} is empty`);
    const a = this.areas.firstIntersecting(start, last);
    if (a >= 0) return fail('EADDRINUSE', `${hex64(start)}..${hex64(last)} intersects the area at ${hex64(this.areas.start(a))}`);
    const al = this.allowed.anyIntersecting(start, last);
    if (al !== undefined) return fail('EADDRINUSE', `${hex64(start)}..${hex64(last)} intersects the allowed range ${hex64(al.start)}..${hex64(al.last)}`);
    this.reserved.add(start, last, owner);
    return ok();
  }

  /** iopt_remove_reserved_iova(): drop every range of `owner`; returns how many. */
  unreserve(owner: ReservedOwner): number { return this.reserved.removeOwner(owner); }

  /**
   * IOMMU_IOAS_ALLOW_IOVAS: replace the allowed ranges (empty clears the restriction). EINVAL for a range
   * with start >= last or overlapping another; EADDRINUSE when one intersects a reserved range, and the
   * previous list stays.
   */
  setAllowed(ranges: readonly IovaRange[]): Result {
    const next = new IntervalList<null>();
    for (const r of ranges) {
      assertU64(r.start, 'start');
      assertU64(r.last, 'last');
      if (r.start >= r.last) return fail('EINVAL', `allowed range ${hex64(r.start)}..${hex64(r.last)} is empty or a single point`);
      if (next.anyIntersecting(r.start, r.last) !== undefined) return fail('EINVAL', `allowed range ${hex64(r.start)}..${hex64(r.last)} overlaps another`);
      next.add(r.start, r.last, null);
    }
    for (const r of next.list()) {
      const hit = this.reserved.anyIntersecting(r.start, r.last);
      if (hit !== undefined) {
        return fail('EADDRINUSE', `allowed range ${hex64(r.start)}..${hex64(r.last)} intersects the reserved ${hex64(hit.start)}..${hex64(hit.last)}`);
      }
    }
    this.allowed = next;
    return ok();
  }

  /**
   * IOMMU_IOAS_IOVA_RANGES: the holes of the reserved set over [0, ULONG_MAX] (as ioas.c reports them;
   * the allowed ranges are not part of the answer).
   */
  iovaRanges(): IovaRange[] {
    return holes(this.reserved.merged(0n, ULONG_MAX), 0n, ULONG_MAX);
  }

  // ---- alignment --------------------------------------------------------------------------------

  // iopt_check_iova_alignment(): every area's IOVA, length and page offset must be multiples.
  private checkAlignment(align: bigint): Result {
    const mask = align - 1n;
    for (const a of this.areaList()) {
      if ((a.iova & mask) !== 0n || (a.length & mask) !== 0n || (BigInt(a.pageOffset) & mask) !== 0n) {
        return fail('EADDRINUSE', `the area at ${hex64(a.iova)} is not aligned to ${hex64(align)}`);
      }
    }
    return ok();
  }

  // iopt_calculate_iova_alignment().
  private recompute(): Result {
    let next = this.largePagesDisabled ? PAGE : 1n;
    for (const s of this.alignmentSources.values()) if (s.alignment > next) next = s.alignment;
    if (next > this.alignment) {
      const checked = this.checkAlignment(next);
      if (!checked.ok) return checked;
    }
    this.alignment = next;
    this.alignMask = next - 1n;
    this.alignNum = Number(next);
    this.alignMaskPage = Number(this.alignMask & (PAGE - 1n));
    return ok();
  }

  /**
   * Register (or change) what `owner` needs: a domain's smallest page size (iopt_table_add_domain: EINVAL
   * above PAGE_SIZE) or an access's alignment (iopt_add_access). EADDRINUSE when the raised alignment
   * leaves an existing area misaligned; nothing changes on failure.
   */
  setAlignmentSource(owner: object, alignment: bigint, kind: AlignmentKind): Result {
    if (alignment <= 0n || (alignment & (alignment - 1n)) !== 0n) throw new RangeError(`alignment ${alignment} is not a power of two`);
    if (kind === 'domain' && (alignment > this.alignment ? alignment : this.alignment) > PAGE) {
      return fail('EINVAL', `domain page size ${hex64(alignment)} is larger than PAGE_SIZE`);
    }
    const old = this.alignmentSources.get(owner);
    this.alignmentSources.set(owner, { alignment, kind });
    const r = this.recompute();
    if (!r.ok) {
      if (old === undefined) this.alignmentSources.delete(owner);
      else this.alignmentSources.set(owner, old);
    }
    return r;
  }

  /** iopt_table_remove_domain()/iopt_remove_access(): the alignment can only drop, so this cannot fail. */
  removeAlignmentSource(owner: object): void {
    this.alignmentSources.delete(owner);
    const r = this.recompute();
    if (!r.ok) throw new Error(`alignment recompute failed on removal: ${r.reason}`);
  }

  /**
   * IOMMU_OPTION_HUGE_PAGES = 0 (iopt_disable_large_pages()): EINVAL when domains and areas both exist;
   * EADDRINUSE (rolled back) when areas are not PAGE_SIZE aligned.
   */
  disableLargePages(): Result {
    if (this.largePagesDisabled) return ok();
    const hasDomain = [...this.alignmentSources.values()].some((s) => s.kind === 'domain');
    if (hasDomain && this.areas.size > 0) return fail('EINVAL', 'domains already have pages mapped');
    this.largePagesDisabled = true;
    const r = this.recompute();
    if (!r.ok) this.largePagesDisabled = false;
    return r;
  }

  /** IOMMU_OPTION_HUGE_PAGES = 1. */
  enableLargePages(): void {
    this.largePagesDisabled = false;
    const r = this.recompute();
    if (!r.ok) throw new Error(`alignment recompute failed: ${r.reason}`);
  }

  // ---- VFIO type1 v0 compat ---------------------------------------------------------------------

  /**
   * iopt_cut_iova(): split the area holding each IOVA so that the IOVA ends the left part. IOVAs in no
   * area, or at an area's first or last byte, are skipped. Stops at the first error (earlier cuts stay).
   */
  cutIova(iovas: readonly bigint[]): Result {
    for (const iova of iovas) {
      assertU64(iova, 'iova');
      const area = this.areaAt(iova);
      if (area === undefined) continue;
      const r = this.split(area, iova);
      if (!r.ok) return r;
    }
    return ok();
  }

  /**
   * iopt_area_split(): `iova` becomes the last byte of a left area. EBUSY for an area still being
   * mapped or being unmapped; EINVAL for a cut not aligned to iova_alignment (IOVA or storage byte), an
   * area with access pins, or an area whose storage is a domain while large pages are enabled.
   */
  split(area: IoptArea<P>, iova: bigint): Result {
    if (iova === area.iova || iova === area.last) return ok();
    if (iova < area.iova || iova > area.last) throw new RangeError(`${hex64(iova)} is outside the area`);
    const pages = area.pages;
    if (pages === null || area.preventAccess) return fail('EBUSY', `the area at ${hex64(area.iova)} is being mapped or unmapped`);
    // Linux keeps the dma-buf revoke tracker per area and does not split it.
    if (pages.kind === 'dmabuf') return fail('EOPNOTSUPP', `the area at ${hex64(area.iova)} maps a dma-buf and cannot be split`);
    const newStart = iova + 1n;
    const mask = this.alignment - 1n;
    if ((newStart & mask) !== 0n || (BigInt(area.startByteAt(newStart)) & mask) !== 0n) {
      return fail('EINVAL', `a cut after ${hex64(iova)} is not aligned to ${hex64(this.alignment)}`);
    }
    if (area.numAccesses !== 0) return fail('EINVAL', 'an access has pages pinned in the area');
    if (area.storageDomain !== null && !this.largePagesDisabled) return fail('EINVAL', 'a domain may hold the area with large pages');
    this.removeArea(area);
    const mk = (start: bigint, last: bigint): IoptArea<P> => {
      const a = new IoptArea(start, last, pages, area.startByteAt(start), area.prot);
      a.pages = pages;
      a.storageDomain = area.storageDomain;
      this.areas.insert(start, last, a);
      return a;
    };
    mk(area.iova, iova);
    mk(newStart, area.last);
    pages.get();
    return ok();
  }
}
