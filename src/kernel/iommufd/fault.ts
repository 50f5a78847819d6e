// The iommufd FAULT object (IOMMUFD_OBJ_FAULT, drivers/iommu/iommufd/eventq.c): where the page request
// groups of fault-capable HWPTs wait for user space. Rules (uAPI reference §12):
//
//  * The IOMMU core's io-pgfault layer hands a group to `iopfHandler` (what a fault HWPT's domain gets as
//    its iopf_handler); the group is appended to the deliver list.
//  * A read of the fault fd (fault-fd.ts) takes groups off the deliver list, whole groups only, and gives
//    each a cookie from the response table: 32-bit, lowest free from 1 (an xarray with XA_FLAGS_ALLOC1 and
//    xa_limit_32b), shared by every record of the group. A group whose copy faults goes back to the head of
//    the deliver list and its cookie is freed.
//  * A write answers a group by cookie (SUCCESS or INVALID) through the IOMMU core and frees the cookie; an
//    unknown cookie or another code is EINVAL. FAILURE (2) is kernel-internal and cannot be chosen.
//  * `users`: the object table's reference, one per HWPT that names the fault (hwptGet/hwptPut), one per
//    live attach of such a HWPT (attachHwpt/detachHwpt) and one for the open fd. IOMMU_DESTROY is EBUSY
//    until only the table's is left.
//  * Auto-response (iommufd_auto_response_faults): detaching an attach handle answers INVALID every group
//    of that attach, queued or read-and-unanswered; destroying the object answers INVALID all of them.
//
// This layer may not import src/uapi, so the record layout (struct iommu_hwpt_pgfault, 40 bytes) and the
// flag values are written out here; test/kernel/iommufd/fault*.test.ts checks them against the uapi codecs.

import { NO_PASID } from '../../hw/iommu/types.ts';
import type { PciDev } from '../../pci/dev.ts';
import { fail, ok, type Result } from '../errno.ts';
import type { IommuCore } from '../iommu/core.ts';
import type { IommuDomain } from '../iommu/domain.ts';
import type { IopfGroup, PageResponse } from '../iommu/io-pgfault.ts';
import type { IommufdObject } from './object.ts';

/** sizeof(struct iommu_hwpt_pgfault). */
export const PGFAULT_RECORD_SIZE = 40;
const TWO_32 = 2 ** 32;

/** Little-endian u32 `v` at `o`. */
function putU32(b: Uint8Array, o: number, v: number): void {
  b[o] = v & 0xff;
  b[o + 1] = (v >>> 8) & 0xff;
  b[o + 2] = (v >>> 16) & 0xff;
  b[o + 3] = (v >>> 24) & 0xff;
}

/** sizeof(struct iommu_hwpt_page_response). */
export const PAGE_RESPONSE_SIZE = 8;

export const IOMMU_PGFAULT_FLAGS_PASID_VALID = 1 << 0;
export const IOMMU_PGFAULT_FLAGS_LAST_PAGE = 1 << 1;
export const IOMMU_PGFAULT_PERM_READ = 1 << 0;
export const IOMMU_PGFAULT_PERM_WRITE = 1 << 1;
export const IOMMU_PGFAULT_PERM_EXEC = 1 << 2;
export const IOMMU_PGFAULT_PERM_PRIV = 1 << 3;
export const IOMMUFD_PAGE_RESP_SUCCESS = 0;
export const IOMMUFD_PAGE_RESP_INVALID = 1;

/** Cookies are u32 and never 0 (xa_limit_32b with XA_FLAGS_ALLOC1). */
const COOKIE_MAX = 0xffff_ffff;

/** The iommufd DEVICE object ID of a device (idev->obj.id), provided by the device code. */
export type DevIdOf = (dev: PciDev) => number;

/**
 * One attach of a fault-capable HWPT's domain to a device (RID: NO_PASID) or a device PASID: Linux's
 * iommufd_attach_handle. Groups reported at that (dev, pasid) while `domain` is attached belong to it.
 */
export interface FaultAttachHandle {
  readonly fault: IommufdFault;
  readonly dev: PciDev;
  readonly pasid: number;
  readonly domain: IommuDomain;
  /** False once detachHwpt() ran. */
  readonly live: boolean;
}

interface AttachState extends FaultAttachHandle {
  live: boolean;
}

/** A group the fault object holds: on the deliver list (cookie 0) or in the response table. */
interface HeldGroup {
  readonly group: IopfGroup;
  /** The attach it was delivered through (null: no attach was registered for its dev/PASID/domain). */
  readonly handle: AttachState | null;
  cookie: number;
}

export interface FaultStats {
  delivered: number;
  read: number;
  responses: number;
  autoResponses: number;
}

export class IommufdFault implements IommufdObject {
  readonly type = 'fault' as const;
  id = 0;
  users = 0;
  readonly stats: FaultStats = { delivered: 0, read: 0, responses: 0, autoResponses: 0 };
  /** Groups handed over by the IOMMU core, not yet read (oldest first). */
  private readonly deliver: HeldGroup[] = [];
  /**
   * Groups read and not yet answered, indexed by cookie (the xarray): cookies are allocated lowest free,
   * so the array stays dense, and walking it visits cookies in ascending order as xa_for_each does.
   */
  private readonly response: Array<HeldGroup | undefined> = [];
  private responseCount = 0;
  /** No cookie below this is free. */
  private cookieHint = 1;
  /** Live attaches (few: a handful of devices and PASIDs per fault object). */
  private readonly attaches: AttachState[] = [];
  private destroyed = false;

  /**
   * The domain's iopf_handler (iommufd_fault_iopf_handler): the HWPT code assigns it to the domain of a
   * HWPT allocated with IOMMU_HWPT_FAULT_ID_VALID. Bound, so it can be stored as is.
   */
  readonly iopfHandler = (group: IopfGroup): void => {
    if (this.destroyed) {
      // Nothing can read it any more: answer now rather than leave the device waiting.
      this.answer(group, 'invalid');
      this.stats.autoResponses++;
      return;
    }
    this.deliver.push({ group, handle: this.handleOf(group), cookie: 0 });
    this.stats.delivered++;
  };

  /**
   * @param core the IOMMU core that delivers the groups and sends the responses.
   * @param devIdOf the DEVICE object ID for a record's dev_id (the device code provides it; until then a
   *   caller-supplied function).
   */
  constructor(readonly core: IommuCore, public devIdOf: DevIdOf) {}

  // ---- References from HWPTs and their attaches ----

  /** A HWPT allocated with this fault_id holds the object (IOMMU_HWPT_ALLOC with FAULT_ID_VALID). */
  hwptGet(): void { this.users++; }

  /** The HWPT is destroyed: its reference goes. */
  hwptPut(): void { this.unref('hwptPut'); }

  /**
   * A fault HWPT's domain was attached at `dev`/`pasid` (NO_PASID for the RID): a reference is taken and
   * the returned handle identifies the attach's groups. Call it right after the core attach succeeds.
   */
  attachHwpt(dev: PciDev, pasid: number, domain: IommuDomain): FaultAttachHandle {
    const h: AttachState = { fault: this, dev, pasid, domain, live: true };
    this.attaches.push(h);
    this.users++;
    return h;
  }

  /**
   * The attach ended (detach, or replace by another domain): every group of it, queued or read and
   * unanswered, is answered INVALID and forgotten (a later write of its cookie is EINVAL); the attach's
   * reference is dropped. Returns the number of groups answered. Call it after the core detach/replace.
   */
  detachHwpt(handle: FaultAttachHandle): number {
    const h = handle as AttachState;
    const at = h.fault === this ? this.attaches.indexOf(h) : -1;
    if (at < 0) throw new Error('detachHwpt: not a live attach handle of this fault object');
    this.attaches.splice(at, 1);
    h.live = false;
    let n = 0;
    for (let i = this.deliver.length - 1; i >= 0; i--) {
      const held = this.deliver[i] as HeldGroup;
      if (held.handle !== h) continue;
      this.deliver.splice(i, 1);
      this.autoAnswer(held.group);
      n++;
    }
    for (let cookie = 1; cookie < this.response.length; cookie++) {
      const held = this.response[cookie];
      if (held === undefined || held.handle !== h) continue;
      this.freeCookie(cookie);
      this.autoAnswer(held.group);
      n++;
    }
    this.unref('detachHwpt');
    return n;
  }

  // ---- The fd's view ----

  /** The fd holds the object while open (iommufd_eventq_init's refcount_inc). */
  fdGet(): void { this.users++; }

  /** The fd's last close (the eventq release op). */
  fdPut(): void { this.unref('fd release'); }

  /** Groups waiting to be read. */
  get queued(): number { return this.deliver.length; }

  /** Groups read and not yet answered. */
  get awaitingResponse(): number { return this.responseCount; }

  /** The cookies handed out and not yet answered, ascending. */
  cookies(): number[] {
    const out: number[] = [];
    for (let c = 1; c < this.response.length; c++) if (this.response[c] !== undefined) out.push(c);
    return out;
  }

  /**
   * Take the next queued group if its records fit in `room` bytes: it gets a cookie and moves to the
   * response table. null when nothing is queued, the group does not fit (it stays first), or no cookie
   * is free. The answer is the held entry itself, not a copy: its cookie reads 0 once restore() ran.
   */
  fetch(room: number): { readonly group: IopfGroup; readonly cookie: number } | null {
    const held = this.deliver[0];
    if (held === undefined) return null;
    if (held.group.faults.length * PGFAULT_RECORD_SIZE > room) return null;
    const cookie = this.allocCookie();
    if (cookie === 0) return null;
    this.deliver.shift();
    held.cookie = cookie;
    this.response[cookie] = held;
    this.responseCount++;
    this.stats.read++;
    // The held entry itself (group and cookie): nothing allocated per read.
    return held;
  }

  /** Put a fetched group back at the head of the deliver list (its copy to user space faulted). */
  restore(cookie: number): void {
    const held = this.lookup(cookie);
    if (held === undefined) return;
    this.freeCookie(cookie);
    held.cookie = 0;
    this.deliver.unshift(held);
    this.stats.read--;
  }

  /**
   * The 40-byte struct iommu_hwpt_pgfault records of a fetched group, back to back, in `into` when it
   * is exactly their size (the fault fd reuses one buffer per read; every byte is written), else in a
   * new buffer.
   */
  compose(group: IopfGroup, cookie: number, into?: Uint8Array): Uint8Array {
    const size = group.faults.length * PGFAULT_RECORD_SIZE;
    const out = into !== undefined && into.length === size && into.byteOffset === 0 ? into : new Uint8Array(size);
    this.composeAt(group, cookie, out, 0);
    return out;
  }

  /** compose() into `out` from byte `offset` (which must leave room for the group's records). */
  composeAt(group: IopfGroup, cookie: number, out: Uint8Array, offset: number): void {
    // Written byte by byte: a DataView would move the small, fresh array off the heap.
    const faults = group.faults;
    const devId = this.devIdOf(group.dev) >>> 0;
    for (let i = 0; i < faults.length; i++) {
      const f = faults[i] as IopfGroup['faults'][number];
      const at = offset + i * PGFAULT_RECORD_SIZE;
      const hasPasid = f.pasid !== NO_PASID;
      const flags = (hasPasid ? IOMMU_PGFAULT_FLAGS_PASID_VALID : 0) | (f.lastInGroup ? IOMMU_PGFAULT_FLAGS_LAST_PAGE : 0);
      const perm = (f.read ? IOMMU_PGFAULT_PERM_READ : 0) | (f.write ? IOMMU_PGFAULT_PERM_WRITE : 0)
        | (f.exec ? IOMMU_PGFAULT_PERM_EXEC : 0) | (f.priv ? IOMMU_PGFAULT_PERM_PRIV : 0);
      putU32(out, at + 0, flags);
      putU32(out, at + 4, devId);
      putU32(out, at + 8, hasPasid ? f.pasid >>> 0 : 0);
      putU32(out, at + 12, f.prgi >>> 0);
      putU32(out, at + 16, perm);
      // __reserved (20) and length (32) are always zero.
      putU32(out, at + 20, 0);
      putU32(out, at + 32, 0);
      const a = f.address;
      if (Number.isSafeInteger(a) && a >= 0) {
        // The halves by a multiply and subtract: `%` of a double is a floating-point remainder call.
        const hi = Math.floor(a / TWO_32);
        putU32(out, at + 24, a - hi * TWO_32);
        putU32(out, at + 28, hi);
      } else {
        new DataView(out.buffer, out.byteOffset).setBigUint64(at + 24, BigInt(a), true);
      }
      putU32(out, at + 36, cookie >>> 0);
    }
  }

  /**
   * One struct iommu_hwpt_page_response: EINVAL for a code other than SUCCESS/INVALID or a cookie that
   * names no read-and-unanswered group; otherwise the group is answered through the IOMMU core and its
   * cookie freed.
   */
  respond(cookie: number, code: number): Result {
    if (code !== IOMMUFD_PAGE_RESP_SUCCESS && code !== IOMMUFD_PAGE_RESP_INVALID) {
      return fail('EINVAL', `page response code ${code} is neither SUCCESS (0) nor INVALID (1)`);
    }
    const held = this.lookup(cookie);
    if (held === undefined) return fail('EINVAL', `no page request group awaits a response with cookie ${cookie}`);
    this.freeCookie(cookie);
    this.answer(held.group, code === IOMMUFD_PAGE_RESP_SUCCESS ? 'success' : 'invalid');
    this.stats.responses++;
    return ok();
  }

  // ---- Object lifetime ----

  /** IOMMU_DESTROY or the context's close: answer INVALID every group still held. */
  destroy(): void {
    this.destroyed = true;
    for (const held of this.deliver.splice(0)) this.autoAnswer(held.group);
    for (let cookie = 1; cookie < this.response.length; cookie++) {
      const held = this.response[cookie];
      if (held === undefined) continue;
      this.freeCookie(cookie);
      this.autoAnswer(held.group);
    }
  }

  /** The creating ioctl failed: nothing was delivered yet, but tear down the same way. */
  abort(): void { this.destroy(); }

  // ---- Internals ----

  private handleOf(group: IopfGroup): AttachState | null {
    for (let i = 0; i < this.attaches.length; i++) {
      const h = this.attaches[i] as AttachState;
      if (h.dev === group.dev && h.pasid === group.pasid && h.domain === group.domain) return h;
    }
    return null;
  }

  private autoAnswer(group: IopfGroup): void {
    this.answer(group, 'invalid');
    this.stats.autoResponses++;
  }

  /**
   * iopf_group_response. The core may have answered the group already (its detach/replace and IOPF
   * disable answer pending groups themselves): then nothing is sent, so the device never sees a second
   * response for one group.
   */
  private answer(group: IopfGroup, code: PageResponse): void {
    if (!this.core.iopf.isPending(group)) return;
    this.core.respondGroup(group, code);
  }

  private lookup(cookie: number): HeldGroup | undefined {
    return Number.isInteger(cookie) && cookie > 0 && cookie < this.response.length ? this.response[cookie] : undefined;
  }

  private allocCookie(): number {
    let c = this.cookieHint;
    while (this.response[c] !== undefined) c++;
    if (c > COOKIE_MAX) return 0;
    this.cookieHint = c + 1;
    return c;
  }

  private freeCookie(cookie: number): void {
    if (this.response[cookie] === undefined) return;
    this.response[cookie] = undefined;
    this.responseCount--;
    // Trailing free slots go, so the array is as long as the highest cookie in use.
    while (this.response.length > 0 && this.response[this.response.length - 1] === undefined) this.response.pop();
    if (cookie < this.cookieHint) this.cookieHint = cookie;
  }

  private unref(what: string): void {
    if (this.users <= 1) throw new RangeError(`fault object ${this.id}: ${what} with no reference to drop`);
    this.users--;
  }
}
