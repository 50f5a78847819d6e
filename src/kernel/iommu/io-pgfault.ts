// IO page faults (Linux's drivers/iommu/io-pgfault.c): page requests the IOMMU driver drains from the
// page-request queue become page request groups routed to the domain attached where the fault happened.
//
//  * Per-device fault parameters exist while IOPF is enabled for the device (iopf_queue_add_device).
//  * A request without LAST_PAGE is parked on the device's partial list. The request with LAST_PAGE closes
//    the group: every partial with the same PRGI plus the last one (iommu_report_device_fault).
//  * Routing: with a PASID, the domain attached at (dev, PASID); otherwise the RID's domain. No domain or
//    no iopf_handler: the partials of that PRGI are discarded and the group is answered INVALID, so the
//    device is not left waiting (io-pgfault.c's error path, iopf_error_response; intel-iommu's
//    handle_bad_prq_event does the same for requests it cannot report). A device without IOPF enabled
//    gets the same INVALID answer.
//  * A delivered group waits on the device's pending list until pageResponse() matches it by PRGI and
//    PASID (IOMMU_FAULT_PAGE_RESPONSE_NEEDS_PASID: this IOMMU's PAGE_RESPONSE carries the PASID); a
//    response matching nothing is EINVAL and nothing is sent (iommu_page_response).
//  * Private data is echoed from the request, as the PCIe PRG Response needs. Seed 004 options:
//    `privateDataCookie` hands the handler a sequence number in place of the private data and maps it
//    back on response (a wrong number is EINVAL); `unregisterWithPendingFaults: 'ebusy'` is the 2019
//    iommu_unregister_device_fault_handler that refused with pending faults instead of answering them.
//  * Disabling IOPF (iopf_queue_remove_device) drops the partials and answers every pending group
//    INVALID; detach and replace answer INVALID the groups of the attach they end (iommufd's
//    iommufd_auto_response_faults).

import type { PageRequestRecord } from '../../hw/iommu/records.ts';
import { PageResponseCode } from '../../hw/iommu/types.ts';
import type { PciDev } from '../../pci/dev.ts';
import { fail, ok, type Result } from '../errno.ts';
import type { IommuDomain } from './domain.ts';

export interface IopfOptions {
  /** Seed 004: give handlers a sequence number instead of the device's private data, and map it back. */
  readonly privateDataCookie?: boolean;
  /** Seed 004 (2019): disabling IOPF with pending faults fails with EBUSY instead of answering INVALID. */
  readonly unregisterWithPendingFaults?: 'auto-respond' | 'ebusy';
}

export type PageResponse = 'success' | 'invalid' | 'failure';

const CODES: Record<PageResponse, PageResponseCode> = {
  success: PageResponseCode.Success, invalid: PageResponseCode.Invalid, failure: PageResponseCode.Failure,
};

/** A page request group (Linux's struct iopf_group). */
export interface IopfGroup {
  readonly dev: PciDev;
  /** NO_PASID when the requests carried none. */
  readonly pasid: number;
  readonly prgi: number;
  /** Every request of the group, the LAST_PAGE one last. */
  readonly faults: readonly PageRequestRecord[];
  readonly domain: IommuDomain;
  /** What the handler sees as private data: the request's, or the sequence number (privateDataCookie). */
  readonly privateData: readonly [number, number] | null;
  /** Sequence number of this group over the queue's life. */
  readonly seq: number;
}

interface PendingGroup extends IopfGroup {
  /** The private data the device sent, echoed in the response. */
  readonly realPrivateData: readonly [number, number] | null;
  /** On its device's pending list (isPending() without searching it). */
  pending: boolean;
}

interface DeviceParam {
  readonly partial: PageRequestRecord[];
  readonly pending: PendingGroup[];
}

/** find_fault_handler()'s lookup: the domain a page request of `dev` at `pasid` goes to (the IOMMU core). */
export interface FaultRoutes {
  faultDomain(dev: PciDev, pasid: number): IommuDomain | null;
}

/** Sends one PRG response to the device (the IOMMU driver's page_response). */
export type RespondFn = (dev: PciDev, pasid: number, prgi: number, code: PageResponseCode, privateData: readonly [number, number] | null) => void;

export interface IopfStats {
  delivered: number;
  responses: number;
  autoResponses: number;
  rejectedResponses: number;
  discarded: number;
}

export class IopfQueue {
  readonly stats: IopfStats = { delivered: 0, responses: 0, autoResponses: 0, rejectedResponses: 0, discarded: 0 };
  /** One line per event a kernel would log (bounded). */
  readonly log: string[] = [];
  private readonly params = new Map<PciDev, DeviceParam>();
  /**
   * The device last looked up and its parameters (undefined: IOPF off): a fault's report and its response
   * come from the same device, so most lookups skip the Map. Forgotten whenever `params` changes.
   */
  private lastDev: PciDev | null = null;
  private lastParam: DeviceParam | undefined = undefined;
  private seq = 0;

  constructor(private readonly respond: RespondFn, readonly options: IopfOptions = {}) {}

  enabled(dev: PciDev): boolean { return this.params.has(dev); }

  /** iopf_queue_add_device: EBUSY when already added. */
  addDevice(dev: PciDev): Result {
    if (this.params.has(dev)) return fail('EBUSY', `${dev.shortBdf}: IOPF already enabled`);
    this.params.set(dev, { partial: [], pending: [] });
    this.lastDev = null;
    return ok();
  }

  /**
   * iopf_queue_remove_device: drop partials, answer INVALID to every pending group. With the 2019 option
   * and pending groups, EBUSY and nothing changes unless `force` (device removal cannot fail).
   */
  removeDevice(dev: PciDev, force = false): Result {
    const p = this.param(dev);
    if (p === undefined) return ok();
    if (!force && this.options.unregisterWithPendingFaults === 'ebusy' && p.pending.length > 0) {
      return fail('EBUSY', `${dev.shortBdf}: ${p.pending.length} page request group(s) still pending`);
    }
    for (const g of p.pending.splice(0)) {
      g.pending = false;
      this.answer(g, PageResponseCode.Invalid, true);
    }
    p.partial.length = 0;
    this.params.delete(dev);
    this.lastDev = null;
    return ok();
  }

  private param(dev: PciDev): DeviceParam | undefined {
    if (dev === this.lastDev) return this.lastParam;
    const p = this.params.get(dev);
    this.lastDev = dev;
    this.lastParam = p;
    return p;
  }

  /** Groups delivered and not yet answered. */
  pending(dev: PciDev): readonly IopfGroup[] { return this.param(dev)?.pending ?? []; }

  /** pending(group.dev).includes(group), without the lookup and the search (asked on every response). */
  isPending(group: IopfGroup): boolean { return (group as Partial<PendingGroup>).pending === true; }
  partials(dev: PciDev): readonly PageRequestRecord[] { return this.param(dev)?.partial ?? []; }

  /**
   * iommu_report_device_fault for one page request of `dev`. `routes.faultDomain` finds the domain
   * attached at a PASID (NO_PASID: the RID's); an object rather than a closure made per request.
   */
  report(dev: PciDev, rec: PageRequestRecord, routes: FaultRoutes): void {
    const p = this.param(dev);
    if (p === undefined) {
      this.note(`${dev.shortBdf}: page request without IOPF enabled`);
      if (rec.lastInGroup) this.bad(dev, rec);
      return;
    }
    if (!rec.lastInGroup) {
      p.partial.push(rec);
      return;
    }
    // A one-page group (nothing partial queued) is the common case: no filter and spread for it.
    const faults = p.partial.length === 0 ? [rec] : [...p.partial.filter((r) => r.prgi === rec.prgi && r.pasid === rec.pasid), rec];
    for (let i = p.partial.length - 1; i >= 0; i--) {
      const r = p.partial[i] as PageRequestRecord;
      if (r.prgi === rec.prgi && r.pasid === rec.pasid) p.partial.splice(i, 1);
    }
    const domain = routes.faultDomain(dev, rec.pasid);
    if (domain?.iopfHandler == null) {
      this.note(`${dev.shortBdf}: page request group ${rec.prgi} (PASID ${rec.pasid}) has no domain with a fault handler: discarded, answered INVALID`);
      this.stats.discarded++;
      this.bad(dev, rec);
      return;
    }
    const seq = ++this.seq;
    const group: PendingGroup = {
      dev, pasid: rec.pasid, prgi: rec.prgi, faults, domain, seq, realPrivateData: rec.privateData,
      privateData: this.options.privateDataCookie === true ? [seq >>> 0, Math.floor(seq / 4294967296)] : rec.privateData,
      pending: true,
    };
    p.pending.push(group);
    this.stats.delivered++;
    domain.iopfHandler(group);
  }

  /** iommu_page_response: EINVAL when no pending group matches (nothing is sent). */
  pageResponse(dev: PciDev, pasid: number, prgi: number, code: PageResponse, privateData?: readonly [number, number] | null): Result {
    const p = this.param(dev);
    // The first pending group with that PRGI and PASID (a loop: no closure per response).
    let i = -1;
    if (p !== undefined) {
      const list = p.pending;
      for (let j = 0; j < list.length; j++) {
        const g = list[j] as PendingGroup;
        if (g.prgi === prgi && g.pasid === pasid) { i = j; break; }
      }
    }
    if (p === undefined || i < 0) {
      this.stats.rejectedResponses++;
      return fail('EINVAL', `${dev.shortBdf}: no pending page request group ${prgi} for PASID ${pasid}`);
    }
    const g = p.pending[i] as PendingGroup;
    if (this.options.privateDataCookie === true) {
      const want = g.privateData as readonly [number, number];
      if (privateData?.[0] !== want[0] || privateData[1] !== want[1]) {
        this.stats.rejectedResponses++;
        return fail('EINVAL', `${dev.shortBdf}: group ${prgi} was given sequence number ${g.seq}; the response carries another`);
      }
    }
    removeAt(p.pending, i);
    g.pending = false;
    this.answer(g, CODES[code], false);
    return ok();
  }

  /** Answer INVALID every pending group of `dev` delivered to `domain` at `pasid` (detach, replace). */
  autoRespond(dev: PciDev, pasid: number, domain: IommuDomain): number {
    const p = this.param(dev);
    if (p === undefined) return 0;
    let n = 0;
    for (let i = p.pending.length - 1; i >= 0; i--) {
      const g = p.pending[i] as PendingGroup;
      if (g.pasid !== pasid || g.domain !== domain) continue;
      removeAt(p.pending, i);
      g.pending = false;
      this.answer(g, PageResponseCode.Invalid, true);
      n++;
    }
    return n;
  }

  /** iopf_queue_discard_partial: the hardware queue overflowed, partial groups can never complete. */
  discardPartials(): void {
    for (const p of this.params.values()) p.partial.length = 0;
  }

  private answer(g: PendingGroup, code: PageResponseCode, auto: boolean): void {
    if (auto) this.stats.autoResponses++;
    else this.stats.responses++;
    this.respond(g.dev, g.pasid, g.prgi, code, g.realPrivateData);
  }

  private bad(dev: PciDev, rec: PageRequestRecord): void {
    this.respond(dev, rec.pasid, rec.prgi, PageResponseCode.Invalid, rec.privateData);
  }

  private note(line: string): void {
    this.log.push(line);
    if (this.log.length > 256) this.log.splice(0, this.log.length - 256);
  }
}

/** list.splice(i, 1) without the array of removed elements splice() returns (once per response). */
function removeAt<T>(list: T[], i: number): void {
  for (let j = i + 1; j < list.length; j++) list[j - 1] = list[j] as T;
  list.pop();
}
