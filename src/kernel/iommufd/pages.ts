// Pin-once PFN storage (Linux's struct iopt_pages, drivers/iommu/iommufd/pages.c): the pages of a user VA
// range of one process's mm, of a memfd range, or of a dma-buf (pages-dmabuf.ts), shared by reference between every area (IOAS_COPY
// included), domain and access that maps them. Each page is pinned exactly once, the first time some user
// needs its PFN, and unpinned when its last user lets go; accounting follows the pins.
//
// Storage is per range, not per page: the pinned PFNs as sorted runs of contiguous frames (pfn-runs.ts)
// and the user counts as a step function over the page indexes (range-users.ts; a user is one holder of a
// pfnsFor() range: a domain fill, an access pin). Both start empty (a one-page storage of user memory
// keeps its one frame and count inline until a general path needs them). Pinning goes through GUP's runs
// in batches, so a range backed by 2 MiB folios costs per folio and per run, never per 4 KiB page.
//
// Accounting (iopt_pages_update_pinned()): mode NONE when the creator had CAP_IPC_LOCK, else USER
// (user->locked_vm of the source process's user, against its RLIMIT_MEMLOCK: ENOMEM), upgraded to MM
// (mm->locked_vm, VmLck) for a context in MM mode. mm->pinned_vm (VmPin) of the source mm is charged in
// every mode. Charges are taken right after each batch is pinned and undone with it on failure.
//
// dma-buf storage is neither pinned nor charged (mode NONE, no pinned_vm): its PFNs are the exporter's,
// valid until the exporter revokes them; users are still counted so that fills and releases balance.

import { PAGE_SIZE } from '../../hw/memory/physical-memory.ts';
import { fail, ok, type KernelError, type Result } from '../errno.ts';
import type { DmaBuf } from '../dma-buf/dma-buf.ts';
import type { FrameAllocator } from '../mm/frame-allocator.ts';
import { PfnRuns } from '../mm/gup.ts';
import type { MemFile } from '../mm/memfile.ts';
import type { OpenFile } from '../process/file.ts';
import type { Process } from '../process/process.ts';
import type { UserStruct } from '../process/user.ts';
import type { AreaPages } from './iopt-area.ts';
import { IoptDmabuf } from './pages-dmabuf.ts';
import { NO_PFN, PinnedRuns, type PagesRun } from './pfn-runs.ts';
import { RangeUsers } from './range-users.ts';

export { NO_PFN, type PagesRun } from './pfn-runs.ts';

/** IOPT_PAGES_ACCOUNT_NONE / _USER / _MM. */
export type PagesAccountMode = 'none' | 'user' | 'mm';

/**
 * Pages pinned per GUP / memfd_pin_folios() call (a batch). Linux's batch is bounded by the runs it can
 * hold rather than pages; ioasis gets runs back, so a batch may be large.
 */
const BATCH_PAGES = 1 << 18;

export interface PagesOptions {
  /** The context's accounting mode: 'mm' upgrades USER pages to MM (the /dev/vfio/vfio default). */
  readonly contextMode?: 'user' | 'mm';
}

const hex = (n: number): string => `0x${n.toString(16)}`;

/** IOPT_ADDRESS_USER / _FILE / _DMABUF. */
export type PagesKind = 'user' | 'file' | 'dmabuf';

export class IoptPages implements AreaPages {
  readonly kind: PagesKind;
  readonly npages: number;
  readonly writable: boolean;
  /** User VA (or file offset) of byte 0 of page 0, page aligned. */
  readonly base: number;
  readonly accountMode: PagesAccountMode;
  private readonly fileRef: OpenFile<MemFile> | null;
  /** The dma-buf attachment and revoke tracker (kind 'dmabuf' only). */
  readonly dmabuf: IoptDmabuf | null;
  private src: Process;
  private srcUser: UserStruct;
  private readonly frames: FrameAllocator;
  // A one-page storage of user memory (each IO page fault maps one) keeps its frame (NO_PFN: not pinned)
  // and its user count in onePfn/oneUsers and has no run or user structure (two objects fewer per map)
  // until a general path needs them: ranges() then builds them from those two fields, exactly as the
  // one-page operations would have left them.
  private runs: PinnedRuns | null = null;
  private users: RangeUsers | null = null;
  private onePfn = NO_PFN;
  private oneUsers = 0;
  private pinned = 0;
  private refs = 1;

  private constructor(
    kind: PagesKind, src: Process, base: number, npages: number, writable: boolean,
    fileRef: OpenFile<MemFile> | null, contextMode: 'user' | 'mm' | undefined, dmabuf: IoptDmabuf | null = null,
  ) {
    this.kind = kind;
    this.src = src;
    this.srcUser = src.user.get();
    this.frames = src.mm.frames;
    this.base = base;
    this.npages = npages;
    this.writable = writable;
    this.fileRef = fileRef;
    this.dmabuf = dmabuf;
    const mode: PagesAccountMode = dmabuf !== null || src.capable('CAP_IPC_LOCK') ? 'none' : 'user';
    this.accountMode = mode === 'user' && contextMode === 'mm' ? 'mm' : mode;
    if (kind !== 'user' || npages !== 1) this.ranges();
  }

  // The run and user structures, made on first need (always, unless one page of user memory).
  private ranges(): void {
    if (this.runs !== null) return;
    this.runs = new PinnedRuns();
    this.users = new RangeUsers(this.npages);
    if (this.onePfn !== NO_PFN) this.runs.insert(0, this.onePfn, 1);
    if (this.oneUsers !== 0) this.users.addOne(0, this.oneUsers);
  }

  private get runList(): PinnedRuns {
    this.ranges();
    return this.runs as PinnedRuns;
  }

  private get userList(): RangeUsers {
    this.ranges();
    return this.users as RangeUsers;
  }

  /**
   * iopt_alloc_user_pages(): the pages of [uptr, uptr + length) of `proc`'s mm; pins nothing yet.
   * EINVAL for length 0 (or beyond what the mm can address), EOVERFLOW when uptr + length wraps.
   */
  static fromUser(proc: Process, uptr: number, length: number, writable: boolean, opts: PagesOptions = {}): Result<IoptPages> {
    const r = IoptPages.user(proc, uptr, length, writable, opts.contextMode);
    return r instanceof IoptPages ? ok(r) : r;
  }

  /** fromUser() returning the storage itself (IOAS_MAP: no Result or options object per call). */
  static user(proc: Process, uptr: number, length: number, writable: boolean, contextMode?: 'user' | 'mm'): IoptPages | KernelError {
    if (!Number.isSafeInteger(length) || length <= 0) return fail('EINVAL', `length ${length}`);
    if (!Number.isSafeInteger(uptr) || uptr < 0 || !Number.isSafeInteger(uptr + length)) {
      return fail('EOVERFLOW', `user address ${uptr} + ${length} wraps`);
    }
    // uptr % PAGE_SIZE without `%`, a C call on a double (user VAs are above 2^31).
    const base = Math.floor(uptr / PAGE_SIZE) * PAGE_SIZE;
    const npages = Math.ceil((length + uptr - base) / PAGE_SIZE);
    return new IoptPages('user', proc, base, npages, writable, null, contextMode);
  }

  /**
   * iopt_alloc_file_pages(): bytes [start, start + length) of a memfd; holds a file reference. EINVAL for
   * length 0 or a range past the file size.
   */
  static fromFile(proc: Process, file: OpenFile<MemFile>, start: number, length: number, writable: boolean, opts: PagesOptions = {}): Result<IoptPages> {
    if (!Number.isSafeInteger(length) || length <= 0) return fail('EINVAL', `length ${length}`);
    if (!Number.isSafeInteger(start) || start < 0 || !Number.isSafeInteger(start + length)) return fail('EOVERFLOW', `${start} + ${length} wraps`);
    if (start + length > file.file.size) return fail('EINVAL', `${start}+${length} is past the end of ${file.file.name} (${file.file.size} bytes)`);
    const base = start - (start % PAGE_SIZE);
    const npages = Math.ceil((length + start - base) / PAGE_SIZE);
    return ok(new IoptPages('file', proc, base, npages, writable, file.get(), opts.contextMode));
  }

  /**
   * iopt_alloc_dmabuf_pages(): bytes [start, start + length) of a dma-buf, attached dynamically. EINVAL
   * for length 0 or a range past the buffer; ENODEV when the exporter has revoked it.
   */
  static fromDmabuf(proc: Process, file: OpenFile<DmaBuf>, start: number, length: number, writable: boolean): Result<IoptPages> {
    if (!Number.isSafeInteger(length) || length <= 0) return fail('EINVAL', `length ${length}`);
    if (!Number.isSafeInteger(start) || start < 0 || !Number.isSafeInteger(start + length)) return fail('EOVERFLOW', `${start} + ${length} wraps`);
    if (start + length - 1 >= file.file.size) return fail('EINVAL', `${start}+${length} is past the end of the dma-buf (${file.file.size} bytes)`);
    const base = start - (start % PAGE_SIZE);
    const npages = Math.ceil((length + start - base) / PAGE_SIZE);
    const d = IoptDmabuf.attach(file, base / PAGE_SIZE);
    if (!d.ok) return d;
    return ok(new IoptPages('dmabuf', proc, base, npages, writable, null, undefined, d.value));
  }

  /** The process charged (source_task / source_mm / source_user). */
  get source(): Process { return this.src; }
  /** pages->npinned. */
  get pinnedPages(): number { return this.pinned; }
  get refCount(): number { return this.refs; }
  /** Bytes of the PFN runs and user-count segments as allocated. */
  get metadataBytes(): number { return this.runs === null ? 0 : this.runs.byteLength + (this.users as RangeUsers).byteLength; }
  /** Runs of pinned PFNs held. */
  get runCount(): number { return this.runs === null ? (this.onePfn === NO_PFN ? 0 : 1) : this.runs.runCount; }

  /** The frame of page `index`, or NO_PFN. */
  pfnAt(index: number): number {
    if (this.runs !== null) return this.runs.pfnAt(index);
    // PinnedRuns.pfnAt() of a single run [0, 1).
    return this.onePfn !== NO_PFN && index >= 0 && index < 1 ? this.onePfn + index : NO_PFN;
  }

  userCount(index: number): number { return this.users === null ? this.oneUsers : this.users.count(index); }

  get(): void {
    if (this.refs === 0) throw new Error('iopt_pages used after release');
    this.refs++;
  }

  /** kref_put: the last reference releases the storage, which must have no users left. */
  put(): void {
    if (this.refs === 0) throw new Error('iopt_pages put after release');
    if (--this.refs !== 0) return;
    if (this.pinned !== 0) throw new Error(`iopt_pages released with ${this.pinned} pages still pinned`);
    this.srcUser.put();
    this.fileRef?.put();
    this.dmabuf?.detach();
  }

  private checkRange(first: number, last: number): void {
    if (!Number.isSafeInteger(first) || !Number.isSafeInteger(last) || first < 0 || last < first || last >= this.npages) {
      throw new RangeError(`page range ${first}..${last} is outside 0..${this.npages - 1}`);
    }
  }

  /**
   * The PFNs of pages [first, last] (inclusive) as runs in index order, for a domain fill or an access.
   * Adds one user to each page; pages without users are pinned now (FOLL_LONGTERM, FOLL_WRITE when
   * writable) and charged. All or nothing. EFAULT: unmapped VA, no access, or the source mm is gone;
   * ENOMEM: RLIMIT_MEMLOCK (USER/MM mode) or no frame; EINVAL: file pages past a truncated end.
   */
  pfnsFor(first: number, last: number): Result<PagesRun[]> {
    this.checkRange(first, last);
    const users = this.userList;
    if (this.dmabuf !== null) {
      users.add(first, last, 1);
      return ok(this.dmabuf.runs(first, last));
    }
    const done: [number, number][] = [];
    for (const [s, e] of users.unused(first, last)) {
      for (let i = s; i < e; i += BATCH_PAGES) {
        const n = Math.min(BATCH_PAGES, e - i);
        const r = this.pinBatch(i, n);
        if (!r.ok) {
          for (const [ds, dn] of done) this.unpinBatch(ds, dn);
          return r;
        }
        done.push([i, n]);
      }
    }
    users.add(first, last, 1);
    return ok(this.runList.slice(first, last));
  }

  /**
   * pfnsFor(index, index) as the frame of that one page rather than a run list (the IO page fault path maps
   * a page at a time): the same pins, charges, users and errors. Not for dma-buf storage.
   */
  pfnFor(index: number): number | KernelError {
    this.checkRange(index, index);
    if (this.dmabuf !== null) throw new Error('pfnFor() on dma-buf storage');
    if (this.users === null) {
      // One page of user memory, inline.
      if (this.oneUsers === 0) {
        const r = this.pinUserOne(index);
        if (!r.ok) return r;
      }
      this.oneUsers += 1;
      return this.onePfn;
    }
    if (this.users.count(index) === 0) {
      const r = this.fileRef === null ? this.pinUserOne(index) : this.pinBatch(index, 1);
      if (!r.ok) return r;
    }
    this.users.addOne(index, 1);
    return this.runList.pfnAt(index);
  }

  /** release(index, index) without range lists (the one-page unmap path): the same checks and effects. */
  releaseOne(index: number): void {
    this.checkRange(index, index);
    const c = this.userCount(index);
    if (c === 0) throw new Error(`pages ${index}..${index} released without a user`);
    if (this.users === null) this.oneUsers = c - 1;
    else this.users.addOne(index, -1);
    if (c === 1 && this.dmabuf === null) this.unpinOne(index);
  }

  /** Drop one user of each page in [first, last]; ranges left without users are unpinned and uncharged. */
  release(first: number, last: number): void {
    this.checkRange(first, last);
    const users = this.userList;
    if (users.minUsers(first, last) === 0) throw new Error(`pages ${first}..${last} released without a user`);
    const unused = users.add(first, last, -1);
    if (this.dmabuf !== null) return;
    for (const [s, e] of unused) this.unpinBatch(s, e - s);
  }

  // pinBatch(index, 1) for user memory, without the run list.
  private pinUserOne(index: number): Result {
    const mm = this.src.mm;
    if (!mm.mmgetNotZero()) return fail('EFAULT', `the address space of pid ${this.src.pid} is gone`);
    const pfn = mm.pinUserPage(this.base + index * PAGE_SIZE, this.writable);
    mm.mmput();
    if (typeof pfn !== 'number') return pfn;
    const charged = this.charge(this.src, 1, 'add');
    if (!charged.ok) {
      this.frames.unpinRange(pfn, 1);
      return charged;
    }
    if (this.runs !== null) this.runs.insert(index, pfn, 1);
    else if (this.onePfn !== NO_PFN) throw new Error(`page ${index} is already pinned`);
    else this.onePfn = pfn;
    this.pinned += 1;
    return charged;
  }

  private pinBatch(index: number, n: number): Result {
    let got: PfnRuns;
    if (this.fileRef !== null) {
      const pfns = this.fileRef.file.pinPages(this.base / PAGE_SIZE + index, n);
      if (!pfns.ok) return pfns;
      got = new PfnRuns();
      for (const pfn of pfns.value) got.push(pfn, 1);
    } else {
      const mm = this.src.mm;
      // pin_user_pages_remote() after mmget_not_zero(): a gone mm is EFAULT.
      if (!mm.mmgetNotZero()) return fail('EFAULT', `the address space of pid ${this.src.pid} is gone`);
      const r = mm.pinUserPageRuns(this.base + index * PAGE_SIZE, n, this.writable);
      mm.mmput();
      if (!r.ok) return r;
      got = r.value;
    }
    const charged = this.charge(this.src, n, 'add');
    if (!charged.ok) {
      for (let k = 0; k < got.length; k++) this.frames.unpinRange(got.pfns[k] as number, got.counts[k] as number);
      return charged;
    }
    let at = index;
    const runs = this.runList;
    for (let k = 0; k < got.length; k++) {
      const c = got.counts[k] as number;
      runs.insert(at, got.pfns[k] as number, c);
      at += c;
    }
    this.pinned += n;
    return ok();
  }

  // unpinBatch(index, 1) without the run list.
  private unpinOne(index: number): void {
    // PinnedRuns.removeOne() of the inline page: index is 0 (checked by the caller).
    const pfn = this.runs !== null ? this.runs.removeOne(index) : this.onePfn;
    this.onePfn = NO_PFN;
    if (pfn === NO_PFN) throw new Error(`pages ${index}+1 unpinned but only 0 were pinned`);
    // unpinRange(pfn, 1) is unpin(pfn, 1): one page never crosses a folio.
    this.frames.unpin(pfn, 1);
    this.pinned -= 1;
    const r = this.charge(this.src, 1, 'sub');
    if (!r.ok) throw new Error(`uncharge failed: ${r.reason}`);
  }

  private unpinBatch(index: number, n: number): void {
    let seen = 0;
    for (const run of this.runList.remove(index, n)) {
      this.frames.unpinRange(run.pfn, run.count);
      seen += run.count;
    }
    if (seen !== n) throw new Error(`pages ${index}+${n} unpinned but only ${seen} were pinned`);
    this.pinned -= n;
    const r = this.charge(this.src, n, 'sub');
    if (!r.ok) throw new Error(`uncharge failed: ${r.reason}`);
  }

  /** iopt_pages_update_pinned() against `p`: locked_vm by mode, then pinned_vm. */
  private charge(p: Process, n: number, op: 'add' | 'sub'): Result {
    return chargeMode(p, this.accountMode, n, op);
  }

  // need_charge_update(): does moving to `to` change where these pages are charged?
  private needsCharge(to: Process): boolean {
    switch (this.accountMode) {
      case 'none': return false;
      case 'mm': return this.src.mm !== to.mm;
      case 'user': return this.src.user !== to.user || this.src.mm !== to.mm;
    }
  }

  /** IOMMU_IOAS_CHANGE_PROCESS for this one storage; see IoptPages.changeProcess(). */
  changeProcess(to: Process): Result { return IoptPages.changeProcess([this], to); }

  /**
   * IOMMU_IOAS_CHANGE_PROCESS over every storage of a context: EINVAL if any is not file backed (nothing
   * changes). The pinned pages are charged to `to` first, per mode (ENOMEM changes nothing), then
   * uncharged from the old process, and `to` becomes the source. NONE-mode storage stays where it is.
   */
  static changeProcess(all: Iterable<IoptPages>, to: Process): Result {
    const set = new Set(all);
    for (const p of set) if (p.kind !== 'file') return fail('EINVAL', 'only file-backed mappings can change process');
    const moving = [...set].filter((p) => p.needsCharge(to));
    const totals = { none: 0, user: 0, mm: 0 };
    for (const p of moving) totals[p.accountMode] += p.pinned;
    const charged: PagesAccountMode[] = [];
    for (const mode of ['none', 'user', 'mm'] as const) {
      if (totals[mode] === 0) continue;
      const r = chargeMode(to, mode, totals[mode], 'add');
      if (!r.ok) {
        for (const m of charged) void chargeMode(to, m, totals[m], 'sub');
        return r;
      }
      charged.push(mode);
    }
    for (const p of moving) {
      const r = p.charge(p.src, p.pinned, 'sub');
      if (!r.ok) throw new Error(`uncharge failed: ${r.reason}`);
      const oldUser = p.srcUser;
      p.src = to;
      p.srcUser = to.user.get();
      oldUser.put();
    }
    return ok();
  }

  /** A one-line description for errors and listings. */
  describe(): string {
    return `${this.kind} pages ${hex(this.base)}+${this.npages} (${this.accountMode}, ${this.pinned} pinned)`;
  }
}

const NO_RLIMIT_BYPASS = Object.freeze({ bypassRlimit: false });

function chargeMode(p: Process, mode: PagesAccountMode, n: number, op: 'add' | 'sub'): Result {
  if (n === 0) return ok();
  if (mode !== 'none') {
    const r = p.account(mode, n, op, NO_RLIMIT_BYPASS);
    if (!r.ok) return r;
  }
  p.mm.accountPinnedVm(n, op);
  return ok();
}
