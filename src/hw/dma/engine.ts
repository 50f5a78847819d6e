import type { PciDev } from '../../pci/dev.ts';
import type { Route } from '../fabric/fabric.ts';
import {
  FaultReason, newTranslationResult, NO_PASID, PageResponseCode, type PageRequestMessage, type PageResponseMessage,
  type TranslationRequest, type TranslationResult,
} from '../iommu/types.ts';
import { PAGE_SIZE, type PhysicalMemory } from '../memory/physical-memory.ts';
import {
  PCI_PASID_CTRL_ENABLE, PCI_PASID_CTRL_EXEC, PCI_PASID_CTRL_PRIV, PCI_PRI_STATUS_RF, PCI_PRI_STATUS_UPRGI, PriRegisters,
} from './pri.ts';
import { EngineLog } from './engine-log.ts';
import { Group, isAnswered, noteAnswered, PendingJobs, type Job } from './jobs.ts';
import { DmaTransfer } from './transfer.ts';
import {
  faultReasonName, inRange, type AddressRange, type DmaFault, type DmaRequest, type DmaResult, type IommuPort,
} from './types.ts';

// One PCI function's DMA engine: it issues a transfer's upstream requests page by page through the IOMMU
// and copies to or from physical memory at the translated addresses. A function whose PRI capability is
// enabled (PRI Control Enable; for an SR-IOV VF, its PF's) sends ATS translation requests (req.ats) and,
// when a page is not present or lacks a permission, asks for it with the Page Request Interface:
//
//  * On a fault it looks ahead through the rest of the transfer and sends one page request group: every
//    page from the faulting one on that faults the same way (at most `maxPagesPerGroup`, and no more than
//    the free page-request credits), each a Page Request message with the group's index (PRGI, 9 bits,
//    allocated round-robin and never one still outstanding), the last with LPIG set, all with the
//    transfer's private data if it has any. The transfer is parked `pending`.
//  * Credits: the PRI Outstanding Page Request Allocation register (capped by the capacity) is how many
//    page requests may be outstanding; a group holds one credit per page until its response arrives. A
//    transfer that needs a page request when no credit is free stalls: nothing is sent, it stays pending,
//    and it resumes (re-translating, then asking) when a response frees credits. An allocation of 0 (PRI
//    enabled by software that granted nothing) stalls every page request.
//  * The response for (PASID, PRGI): SUCCESS resumes the transfer where it stopped (a retry). A page
//    that faults again after its group was answered SUCCESS is not asked for again: the engine issues the
//    access as a plain (non-ATS) request so the IOMMU records the fault, and the transfer ends 'fault'.
//    That bounds every transfer to one page request per page. INVALID aborts the transfer. FAILURE
//    aborts it, sets Response Failure in PRI Status and stops the interface until reset (a PRI Reset
//    written to PRI Control with Enable clear, or reset()): transfers stalled for credits are aborted,
//    later faults are plain faults the IOMMU records. Reserved response codes count as FAILURE.
//  * A response matching no outstanding (PASID, PRGI) is spurious: ignored, counted in
//    stats.spuriousResponses, logged, and Unexpected PRG Index set in PRI Status.
//  * Faults that are not a missing page or permission (a bad context, a PASID the IOMMU refuses, ...) are
//    not asked for: if the IOMMU did not record the failed ATS translation, the engine repeats it as a
//    plain request, which the IOMMU records; the transfer ends 'fault'.
// Without PRI, a failed translation is simply a fault the IOMMU records.
//
// Requests with a PASID need the PASID capability enabled (Privileged Mode Enable / Execute Permission
// Enable for privileged / execute requests, which can only be expressed with a PASID); a request the
// function cannot form is refused ('aborted') before anything is sent. ATS Enable is not checked, and
// ATS-translated requests (the device caching translations) are not modelled: every access is translated.
//
// Nothing here throws for anything a device or software can cause. Responses that arrive while the engine
// is busy (an IOMMU answering synchronously from inside pageRequest) are queued and handled after.

/** Faults a page request can cure, as a bit per FaultReason (a Set lookup cost more, twice per fault). */
const PRI_REASONS = (1 << FaultReason.PteNotPresent) | (1 << FaultReason.WriteDenied) | (1 << FaultReason.ReadDenied)
  | (1 << FaultReason.ExecDenied) | (1 << FaultReason.PrivDenied);

function priCurable(reason: number): boolean {
  return reason >= 0 && reason < 32 && ((PRI_REASONS >>> reason) & 1) !== 0;
}

const PRGI_COUNT = 512;
/** Largest transfer an engine takes (1 GiB): a read allocates its buffer. */
const MAX_TRANSFER = 2 ** 30;

export interface DmaEngineOptions {
  readonly memory: PhysicalMemory;
  /** The IOMMU unit this function's requests reach; null when none translates for it (addresses are physical). */
  readonly iommu: IommuPort | null;
  /** The requester ID its upstream requests carry at the root complex. */
  readonly rid: number;
  /** Addresses that are not DMA for requests without a PASID (the x86 interrupt window), or null. */
  readonly msiWindow?: AddressRange | null;
  /** Most pages one page request group asks for (default 32). */
  readonly maxPagesPerGroup?: number;
  /** Lines kept in `log` (default 256). */
  readonly logSize?: number;
  /** Transfer IDs; default a counter of this engine. */
  readonly nextId?: () => number;
  /** Called when a transfer settles (ok, fault, aborted, ur), pending ones included when they finish later. */
  readonly onSettled?: (r: DmaResult) => void;
}

export interface DmaEngineStats {
  transfers: number;
  bytes: number;
  pageRequests: number;
  responses: number;
  spuriousResponses: number;
  retries: number;
  stalls: number;
  faults: number;
  aborts: number;
}

const hex = (n: number): string => `0x${n.toString(16)}`;

export class DmaEngine {
  readonly stats: DmaEngineStats = { transfers: 0, bytes: 0, pageRequests: 0, responses: 0, spuriousResponses: 0, retries: 0, stalls: 0, faults: 0, aborts: 0 };
  readonly regs: PriRegisters;
  /** The newest logSize lines (the frequent ones are kept as numbers and formatted when read). */
  private readonly lines: EngineLog;
  private readonly maxGroup: number;
  private readonly tr: TranslationRequest;
  private readonly out: TranslationResult = newTranslationResult();
  private readonly probe: TranslationResult = newTranslationResult();
  /** Groups by PRGI, made when an index is first used (a slot per index: a Map's delete and re-add cost more, once per fault). */
  private readonly groups: Array<Group | undefined> = new Array<Group | undefined>(PRGI_COUNT).fill(undefined);
  private readonly stalledJobs: Job[] = [];
  private readonly pendingJobs = new PendingJobs();
  /**
   * The Page Request message handed to the IOMMU, reused when its port says it keeps no reference
   * (IommuPort.borrowsPageRequests); a fresh object per message otherwise.
   */
  private readonly prm: { -readonly [K in keyof PageRequestMessage]: PageRequestMessage[K] };
  private outstandingPages = 0;
  private nextPrgi = 0;
  private priFailed = false;
  private busy = false;
  private readonly inbox: PageResponseMessage[] = [];
  private counter = 0;

  constructor(readonly dev: PciDev, private readonly opts: DmaEngineOptions) {
    this.regs = new PriRegisters(dev);
    this.lines = new EngineLog(dev.shortBdf, opts.logSize ?? 256);
    this.maxGroup = Math.max(1, opts.maxPagesPerGroup ?? 32);
    this.tr = { rid: opts.rid, pasid: NO_PASID, iova: 0, write: false, exec: false, priv: false, ats: false };
    this.prm = { rid: opts.rid, pasid: NO_PASID, address: 0, read: false, write: false, exec: false, priv: false, lastInGroup: false, prgi: 0, privateData: null };
  }

  get rid(): number { return this.opts.rid; }
  /** What the engine did that a person may want to know (page requests, responses, spurious ones), newest last. */
  get log(): readonly string[] { return this.lines.lines(); }
  /** Page requests sent and not yet answered. */
  get outstanding(): number { return this.outstandingPages; }
  /** Transfers not yet settled. */
  pending(): DmaResult[] {
    return this.pendingJobs.toArray().map((j) => j.result);
  }
  /** PRI is enabled and has not been stopped by a Response Failure. */
  priActive(): boolean { return this.opts.iommu !== null && this.regs.priEnabled() && !this.priFailed; }
  /** PRI stopped by a FAILURE response, until reset. */
  get priStopped(): boolean { return this.priFailed; }

  /** Whether a response for (pasid, prgi) would match an outstanding group of this engine. */
  expects(msg: PageResponseMessage): boolean {
    const g = msg.prgi >= 0 && msg.prgi < PRGI_COUNT ? this.groups[msg.prgi] : undefined;
    return g !== undefined && g.job !== null && g.pasid === msg.pasid;
  }

  /** Start a transfer the fabric routed upstream. Settles at once unless it waits for a page response. */
  start(req: DmaRequest, route: Route & { kind: 'upstream' }): DmaResult {
    const pasid = req.pasid ?? NO_PASID;
    const write = req.op === 'write';
    const result = new DmaTransfer(this.opts.nextId?.() ?? ++this.counter, this.dev.shortBdf, req.op, req.address, req.length, pasid, route);
    this.stats.transfers++;
    this.syncControl();
    const refusal = this.refusal(req, pasid);
    const buf = refusal !== null ? new Uint8Array(0) : write ? (req.data as Uint8Array) : (req.data ?? new Uint8Array(req.length));
    if (!write && refusal === null) result.data = buf;
    const job: Job = {
      result, write, priv: req.priv === true, exec: req.exec === true, buf,
      privateData: req.privateData ?? null, answeredPage: -1, answered: null, stalled: false, prev: null, next: null,
    };
    if (refusal !== null) {
      this.finish(job, 'aborted', refusal, null);
      return result;
    }
    this.pendingJobs.add(job);
    this.exclusive(job, null);
    return result;
  }

  /** A PRG Response routed to this function by requester ID. */
  deliverResponse(msg: PageResponseMessage): void {
    this.syncControl();
    if (this.busy) {
      this.inbox.push(msg);
      return;
    }
    this.exclusive(null, msg);
  }

  /** Function reset: every transfer in flight is aborted, page-request state and a Response Failure cleared. */
  reset(): void {
    this.resetPri('function reset');
  }

  /**
   * Advance `job` or handle `msg` with the engine marked busy, then handle responses that arrived
   * meanwhile. (Arguments rather than a closure: this runs twice per device fault.)
   */
  private exclusive(job: Job | null, msg: PageResponseMessage | null): void {
    const outer = !this.busy;
    this.busy = true;
    try {
      if (job !== null) this.advance(job);
      if (msg !== null) this.handleResponse(msg);
      if (outer) for (let m = this.inbox.shift(); m !== undefined; m = this.inbox.shift()) this.handleResponse(m);
    } finally {
      if (outer) this.busy = false;
    }
  }

  /** Why the function cannot issue this request at all, or null. */
  private refusal(req: DmaRequest, pasid: number): string | null {
    if (req.op !== 'read' && req.op !== 'write') return 'malformed request: op must be read or write';
    if (!Number.isSafeInteger(req.address) || req.address < 0) return `malformed request: address ${String(req.address)}`;
    if (!Number.isSafeInteger(req.length) || req.length < 0 || req.length > MAX_TRANSFER) return `malformed request: length ${String(req.length)}`;
    if (req.op === 'write' && req.data === undefined) return 'malformed request: a write needs data';
    if (req.data !== undefined && req.data.length < req.length) return `malformed request: the data buffer holds ${req.data.length} bytes, the transfer needs ${req.length}`;
    if (pasid === NO_PASID) {
      if (req.priv === true || req.exec === true) return 'a privileged or execute request needs a PASID (the attributes travel in the PASID prefix)';
      return null;
    }
    if (!Number.isInteger(pasid) || pasid < 0) return `malformed request: PASID ${String(pasid)}`;
    if (this.regs.pasid === 0) return `${this.dev.shortBdf} has no PASID capability: it cannot tag a request with PASID ${pasid}`;
    const ctrl = this.regs.pasidControl();
    if ((ctrl & PCI_PASID_CTRL_ENABLE) === 0) return `PASID is not enabled in ${this.regs.owner.shortBdf}'s PASID capability`;
    const width = this.regs.pasidWidth();
    if (pasid >= 2 ** width) return `PASID ${pasid} does not fit the function's ${width}-bit PASID width`;
    if (req.priv === true && (ctrl & PCI_PASID_CTRL_PRIV) === 0) return 'Privileged Mode Enable is clear in the PASID capability';
    if (req.exec === true && (ctrl & PCI_PASID_CTRL_EXEC) === 0) return 'Execute Permission Enable is clear in the PASID capability';
    return null;
  }

  /** Carry the transfer on from bytesDone until it completes, faults or waits. */
  private advance(job: Job): void {
    const r = job.result;
    const mem = this.opts.memory;
    const iommu = this.opts.iommu;
    const msi = r.pasid === NO_PASID ? (this.opts.msiWindow ?? null) : null;
    r.status = 'pending';
    while (r.bytesDone < r.length) {
      const iova = r.address + r.bytesDone;
      let chunk = r.length - r.bytesDone;
      if (msi !== null) {
        if (inRange(msi, iova)) {
          this.finish(job, 'ur', `the transfer runs into the interrupt window at ${hex(iova)}, which is not DMA: Unsupported Request`, null);
          return;
        }
        if (iova < msi.base && iova + chunk > msi.base) chunk = msi.base - iova;
      }
      let pa = iova;
      if (iommu !== null) {
        if (!this.translate(job, iova)) return;
        const out = this.out;
        const size = out.pageSize >= PAGE_SIZE ? out.pageSize : PAGE_SIZE;
        // The offset in the page by a division, not `%` (a library call on doubles); exact for integers below 2^53.
        if (size < 2 ** 53) chunk = Math.min(chunk, size - (iova - Math.floor(iova / size) * size));
        pa = out.pa;
      }
      const lo = r.bytesDone;
      const ok = job.write ? mem.writeFrom(pa, job.buf, lo, chunk) : mem.readInto(pa, job.buf, lo, chunk);
      if (!ok) {
        this.finish(job, 'ur', `${hex(iova)} translates to ${hex(pa)}, outside physical memory: Unsupported Request`, null);
        return;
      }
      r.bytesDone += chunk;
      this.stats.bytes += chunk;
    }
    r.explainDone(iommu !== null);
    this.finish(job, 'ok', null, null);
  }

  /** Translate one address into this.out. False when the transfer stopped (fault, page request, stall). */
  private translate(job: Job, iova: number): boolean {
    const iommu = this.opts.iommu as IommuPort;
    const tr = this.tr;
    const out = this.out;
    const pri = this.priActive();
    tr.pasid = job.result.pasid;
    tr.iova = iova;
    tr.write = job.write;
    tr.exec = job.exec;
    tr.priv = job.priv;
    tr.ats = pri;
    if (iommu.translate(tr, out)) return true;
    const page = Math.floor(iova / 4096) * 4096; // PAGE_SIZE; a literal divisor is a multiplication
    const curable = pri && priCurable(out.reason);
    if (curable && !isAnswered(job, page)) {
      // The fault is kept as numbers: the DmaFault is made only if someone reads the result's fault.
      job.result.noteFault(iova - job.result.address, out.reason, out.stage, out.faultGpa, tr.write, out.recorded);
      this.requestPages(job, page);
      return false;
    }
    const again = curable;
    if (tr.ats && !out.recorded) {
      // The ATS translation failed for good: the access goes out as a plain request, which the IOMMU records.
      tr.ats = false;
      if (iommu.translate(tr, out)) return true;
    }
    const fault = this.faultOf(iova, null);
    this.finish(job, 'fault', again
      ? `${hex(page)} faulted again (${fault.reasonName}) after its page request was answered SUCCESS: unrecoverable${fault.recorded ? ', recorded by the IOMMU' : ''}`
      : `translation of ${hex(iova)} failed: ${fault.reasonName}${fault.recorded ? ' (recorded by the IOMMU)' : ''}`, fault);
    return false;
  }

  private faultOf(iova: number, response: PageResponseCode | null, from: TranslationResult = this.out): DmaFault {
    return {
      iova, reason: from.reason, reasonName: faultReasonName(from.reason), stage: from.stage, faultGpa: from.faultGpa,
      write: this.tr.write, recorded: from.recorded, response,
    };
  }

  /** Send one page request group for `first` and the later pages of the transfer that fault too (r.fault is set). */
  private requestPages(job: Job, first: number): void {
    const r = job.result;
    const iommu = this.opts.iommu as IommuPort;
    const free = this.regs.priAllocation() - this.outstandingPages;
    if (free <= 0) {
      this.stall(job, this.regs.priAllocation() === 0
        ? 'waiting: PRI is enabled but its Outstanding Page Request Allocation is 0, so no page request may be sent'
        : `stalled: all ${this.regs.priAllocation()} page requests the PRI allocation allows are outstanding`);
      return;
    }
    const prgi = this.allocPrgi();
    if (prgi < 0) {
      this.stall(job, 'stalled: every page request group index is outstanding');
      return;
    }
    let g = this.groups[prgi];
    if (g === undefined) this.groups[prgi] = g = new Group(prgi);
    const pages = g.pages;
    pages[0] = first;
    let n = 1;
    const limit = Math.min(this.maxGroup, free);
    const end = r.address + r.length;
    const msi = r.pasid === NO_PASID ? (this.opts.msiWindow ?? null) : null;
    const tr = this.tr;
    for (let p = first + PAGE_SIZE; p < end && n < limit;) {
      if (msi !== null && inRange(msi, p)) break;
      tr.iova = p;
      tr.ats = true;
      if (iommu.translate(tr, this.probe)) {
        const size = this.probe.pageSize >= PAGE_SIZE && this.probe.pageSize < 2 ** 53 ? this.probe.pageSize : PAGE_SIZE;
        p = p - (p % size) + size;
        continue;
      }
      if (!priCurable(this.probe.reason) || isAnswered(job, p)) break;
      pages[n++] = p;
      p += PAGE_SIZE;
    }
    g.job = job;
    g.pasid = r.pasid;
    g.count = n;
    this.outstandingPages += n;
    this.pendingJobs.add(job);
    r.status = 'pending';
    const reason = r.faultReason();
    r.explainWaiting(prgi, n);
    this.lines.request(prgi, r.pasid, n, first, reason, job.write);
    const borrow = iommu.borrowsPageRequests === true;
    for (let i = 0; i < n; i++) {
      const msg = borrow ? this.prm : { ...this.prm };
      msg.pasid = r.pasid;
      msg.address = pages[i] as number;
      msg.read = !job.write;
      msg.write = job.write;
      msg.exec = job.exec;
      msg.priv = job.priv;
      msg.lastInGroup = i === n - 1;
      msg.prgi = prgi;
      msg.privateData = job.privateData;
      this.stats.pageRequests++;
      r.pageRequests++;
      iommu.pageRequest(msg);
    }
  }

  private allocPrgi(): number {
    // Indices wrap with a mask (PRGI_COUNT is 2^9), not `%`: an integer division per try.
    for (let t = 0; t < PRGI_COUNT; t++) {
      const prgi = (this.nextPrgi + t) & (PRGI_COUNT - 1);
      const g = this.groups[prgi];
      if (g === undefined || g.job === null) {
        this.nextPrgi = (prgi + 1) & (PRGI_COUNT - 1);
        return prgi;
      }
    }
    return -1;
  }

  private stall(job: Job, why: string): void {
    job.stalled = true;
    job.result.status = 'pending';
    job.result.why = why;
    this.stalledJobs.push(job);
    this.pendingJobs.add(job);
    this.stats.stalls++;
    this.lines.text(`${this.dev.shortBdf}: transfer ${job.result.id} ${why}`);
  }

  private handleResponse(msg: PageResponseMessage): void {
    this.stats.responses++;
    const g = msg.prgi >= 0 && msg.prgi < PRGI_COUNT ? this.groups[msg.prgi] : undefined;
    const job = g === undefined ? null : g.job;
    if (g === undefined || job === null || g.pasid !== msg.pasid) {
      this.stats.spuriousResponses++;
      this.regs.setStatus(PCI_PRI_STATUS_UPRGI);
      this.lines.text(`${this.dev.shortBdf}: spurious page response (PRGI ${msg.prgi}${msg.pasid === NO_PASID ? '' : `, PASID ${msg.pasid}`}, code ${msg.code}): no such group outstanding; ignored`);
      return;
    }
    // The index is free again; its Group is reused only by a later requestPages, after the pages are noted.
    g.job = null;
    this.outstandingPages -= g.count;
    const r = job.result;
    const code = msg.code === PageResponseCode.Success || msg.code === PageResponseCode.Invalid ? msg.code : PageResponseCode.Failure;
    this.lines.answer(g.prgi, code, msg.privateData);
    if (!r.settled) {
      if (code === PageResponseCode.Success) {
        const pages = g.pages;
        for (let i = 0; i < g.count; i++) noteAnswered(job, pages[i] as number);
        r.retries++;
        this.stats.retries++;
        this.advance(job);
      } else if (code === PageResponseCode.Invalid) {
        this.finish(job, 'aborted', `page request group ${g.prgi} was answered INVALID: the transfer is aborted at ${hex(r.address + r.bytesDone)}`, { ...(r.fault as DmaFault), response: code });
      } else {
        this.priFailed = true;
        this.regs.setStatus(PCI_PRI_STATUS_RF);
        this.finish(job, 'aborted', `page request group ${g.prgi} was answered FAILURE: the transfer is aborted and PRI is stopped until reset`, { ...(r.fault as DmaFault), response: PageResponseCode.Failure });
      }
    }
    this.resumeStalled();
  }

  /** Give stalled transfers the credits a response freed (or abort them if PRI has stopped). */
  private resumeStalled(): void {
    for (let n = this.stalledJobs.length; n > 0; n--) {
      if (this.priFailed) {
        const job = this.stalledJobs.shift() as Job;
        this.finish(job, 'aborted', 'PRI stopped (a FAILURE response) before the transfer could ask for its pages', job.result.fault);
        continue;
      }
      if (this.regs.priEnabled() && this.regs.priAllocation() - this.outstandingPages <= 0) return;
      const job = this.stalledJobs.shift() as Job;
      job.stalled = false;
      this.advance(job);
    }
  }

  /** PRI Control Reset with Enable clear: release every credit, forget outstanding groups, clear a failure. */
  private syncControl(): void {
    if (this.regs.pri !== 0 && this.regs.takeReset()) this.resetPri('PRI reset');
  }

  private resetPri(why: string): void {
    const jobs = this.pendingJobs.toArray();
    for (const g of this.groups) if (g !== undefined) g.job = null;
    this.stalledJobs.length = 0;
    this.outstandingPages = 0;
    this.priFailed = false;
    this.inbox.length = 0;
    this.regs.clearStatus(PCI_PRI_STATUS_RF | PCI_PRI_STATUS_UPRGI);
    for (const job of jobs) this.finish(job, 'aborted', `${why} while the transfer was pending`, job.result.fault);
    this.lines.text(`${this.dev.shortBdf}: ${why}: page request state cleared${jobs.length > 0 ? `, ${jobs.length} transfer(s) aborted` : ''}`);
  }

  /** Settle the transfer; `why` null: the line was given to explain() already. */
  private finish(job: Job, status: 'ok' | 'fault' | 'aborted' | 'ur', why: string | null, fault: DmaFault | null): void {
    const r = job.result;
    r.status = status;
    if (why !== null) r.why = why;
    r.fault = fault;
    r.settled = true;
    this.pendingJobs.delete(job);
    if (status === 'fault') this.stats.faults++;
    if (status === 'aborted') this.stats.aborts++;
    this.opts.onSettled?.(r);
  }
}
