// The ioasis IOMMU driver's use of the unit's in-memory queues (intel's qi_submit_sync() and the PRQ/fault
// handlers): commands posted at the command queue's tail, each batch closed by a FENCE whose status write
// proves the unit executed them, and the fault and page-request queues drained on poll.

import { encodeFence, encodePageResponse, type Command } from '../../hw/iommu/commands.ts';
import type { FaultRecord, PageRequestRecord } from '../../hw/iommu/records.ts';
import { FQCSR_FQOF, IPSR_FQ, IPSR_PQ, PQCSR_PQOF, Reg } from '../../hw/iommu/registers.ts';
import {
  newRecordScratch, postCommandAt, postCommandWordsAt, postCommandWordsPairAt, queueLayout, readFaultRecordsInto, readPageRequestsInto,
  setupQueue, type QueueLayout,
} from '../../hw/iommu/setup.ts';
import type { PageResponseCode } from '../../hw/iommu/types.ts';
import type { IommuUnit } from '../../hw/iommu/unit.ts';
import type { PhysicalMemory } from '../../hw/memory/physical-memory.ts';

/** Fault records kept in the log. */
const FAULT_LOG_SIZE = 1024;

export interface DriverQueueStats {
  commands: number;
  fences: number;
  invalidations: number;
  pageResponses: number;
  faultsLogged: number;
  pageRequestsRead: number;
}

export class DriverQueues {
  /** Fault records drained from the fault queue, newest last (bounded). */
  readonly faultLog: FaultRecord[] = [];
  private fenceSeq = 0;
  /** Where a command is encoded before it is written to the queue (reused: every page response posts two). */
  private readonly cmdWords = new Uint32Array(8);
  /** syncIotlbRange()'s command, rewritten for each PASID. */
  private readonly rangeInval: { op: 'iotlb-inval'; scope: 'range'; did: number; pasid: number; address: number; pages: number } = {
    op: 'iotlb-inval', scope: 'range', did: 0, pasid: 0, address: 0, pages: 0,
  };
  /** The FENCE closing a page response (posted together with it) or a range invalidation. */
  private readonly fenceWords = new Uint32Array(8);
  /** Record buffers for reading the fault and page-request queues (polled on every fault). */
  private readonly recordScratch = newRecordScratch();
  /** Where drain() reads fault records before they go to the log (emptied after each drain). */
  private readonly faultScratch: FaultRecord[] = [];
  /** The queues as setupQueues() programmed them (null before). */
  private cq: QueueLayout | null = null;
  private fq: QueueLayout | undefined = undefined;
  private pq: QueueLayout | undefined = undefined;
  /** Whether the last poll or drain found the page-request queue overflowed (PQOF, then cleared). */
  pageRequestOverflow = false;

  /**
   * @param fenceStatus PA of the word FENCEs write their sequence number to.
   * @param kick runs the unit's command queue (and delivers page responses).
   */
  constructor(
    private readonly name: string,
    private readonly unit: IommuUnit,
    private readonly memory: PhysicalMemory,
    private readonly fenceStatus: number,
    private readonly kick: () => void,
    private readonly stats: DriverQueueStats,
  ) {}

  /**
   * Program and enable the queues at the given bases (2^log2Entries entries each), command, fault and
   * page-request in that order; nothing is posted or drained before. Their layouts are kept (as intel keeps
   * its queues' addresses) rather than read back from the base registers, which only this driver writes.
   */
  setupQueues(cq: number, fq: number, pq: number, log2Entries: number): void {
    setupQueue(this.unit, 'command', cq, log2Entries);
    setupQueue(this.unit, 'fault', fq, log2Entries);
    setupQueue(this.unit, 'page-request', pq, log2Entries);
    this.cq = queueLayout(cq, log2Entries);
    this.fq = queueLayout(fq, log2Entries);
    this.pq = queueLayout(pq, log2Entries);
  }

  /** PAGE_RESPONSE and a FENCE. */
  pageResponse(rid: number, pasid: number, prgi: number, code: PageResponseCode, privateData: readonly [number, number] | null): void {
    this.stats.pageResponses++;
    // One per device fault: encoded straight into the command buffer (sync() of one command, without the
    // Command objects).
    const seq = (this.fenceSeq = (this.fenceSeq + 1) >>> 0);
    const response = encodePageResponse(this.cmdWords, rid, pasid, prgi, code, privateData);
    const fence = encodeFence(this.fenceWords, false, this.fenceStatus, seq);
    // Both at once and one tail write, as qi_submit_sync; a queue without room for both takes them one by one.
    if (postCommandWordsPairAt(this.unit, this.memory, this.commandQueue(), response, fence)) this.stats.commands += 2;
    else {
      this.postWords(response);
      this.postWords(fence);
    }
    this.finishSync(seq);
  }

  /**
   * Drain both queues: fault records go to the log, page requests are returned; overflow flags are cleared.
   * As an interrupt handler (intel's prq_event_thread, dmar_fault) it looks at the unit's pending
   * interrupts first: with neither the fault nor the page-request bit set there is nothing to read, so an
   * idle unit costs one register read. The bits are cleared (write 1 to clear) before the queues are read,
   * so a record written meanwhile sets them again.
   */
  poll(): { faults: FaultRecord[]; pageRequests: PageRequestRecord[]; pageRequestOverflow: boolean } {
    const faults: FaultRecord[] = [];
    const pageRequests: PageRequestRecord[] = [];
    this.drainInto(faults, pageRequests);
    return { faults, pageRequests, pageRequestOverflow: this.pageRequestOverflow };
  }

  /**
   * poll() for the IOMMU core, which polls on every fault: page requests are appended to `pageRequests`
   * (the caller's reused array) and the overflow is left in `pageRequestOverflow`, so nothing is allocated
   * but the records. Returns the number of records read (faults and page requests).
   */
  drain(pageRequests: PageRequestRecord[]): number {
    const faults = this.faultScratch;
    const n = this.drainInto(faults, pageRequests);
    while (faults.length > 0) faults.pop();
    return n;
  }

  private drainInto(faults: FaultRecord[], pageRequests: PageRequestRecord[]): number {
    this.pageRequestOverflow = false;
    const pending = this.unit.readReg(Reg.IPSR) & (IPSR_FQ | IPSR_PQ);
    if (pending === 0) return 0;
    this.unit.writeReg(Reg.IPSR, pending);
    const nf = readFaultRecordsInto(this.unit, this.memory, faults, this.recordScratch, this.fq);
    const np = readPageRequestsInto(this.unit, this.memory, pageRequests, this.recordScratch, this.pq);
    if ((this.unit.readReg(Reg.FQCSR) & FQCSR_FQOF) !== 0) this.unit.writeReg(Reg.FQCSR, this.unit.readReg(Reg.FQCSR) | FQCSR_FQOF);
    const pqcsr = this.unit.readReg(Reg.PQCSR);
    const pageRequestOverflow = (pqcsr & PQCSR_PQOF) !== 0;
    if (pageRequestOverflow) this.unit.writeReg(Reg.PQCSR, pqcsr | PQCSR_PQOF);
    this.pageRequestOverflow = pageRequestOverflow;
    if (nf > 0) {
      for (let i = faults.length - nf; i < faults.length; i++) this.faultLog.push(faults[i] as FaultRecord);
      if (this.faultLog.length > FAULT_LOG_SIZE) this.faultLog.splice(0, this.faultLog.length - FAULT_LOG_SIZE);
    }
    this.stats.faultsLogged += nf;
    this.stats.pageRequestsRead += np;
    return nf + np;
  }

  /**
   * sync() of a range IOTLB invalidation of `did` for each PASID (key) of `pasids`: every unmap comes here,
   * so the commands are posted through one reused command object and the FENCE from its words, rather than
   * an array of new Commands.
   */
  syncIotlbRange(did: number, pasids: ReadonlyMap<number, unknown>, address: number, pages: number): void {
    const seq = (this.fenceSeq = (this.fenceSeq + 1) >>> 0);
    const c = this.rangeInval;
    c.did = did;
    c.address = address;
    c.pages = pages;
    for (const pasid of pasids.keys()) {
      c.pasid = pasid;
      this.post(c);
    }
    this.postWords(encodeFence(this.fenceWords, false, this.fenceStatus, seq));
    this.finishSync(seq);
  }

  /** Post `cmds` and a FENCE, run the queue, and check the fence completed (a driver bug otherwise). */
  sync(cmds: readonly Command[]): void {
    const seq = (this.fenceSeq = (this.fenceSeq + 1) >>> 0);
    for (const c of cmds) this.post(c);
    this.post({ op: 'fence', interrupt: false, statusAddress: this.fenceStatus, statusData: seq });
    this.finishSync(seq);
  }

  /** Queue one command, running the queue first if it is full. */
  private post(c: Command): void {
    const q = this.commandQueue();
    if (!postCommandAt(this.unit, this.memory, q, c, this.cmdWords)) {
      this.kick();
      if (!postCommandAt(this.unit, this.memory, q, c, this.cmdWords)) throw new Error(`${this.name}: command queue stuck`);
    }
    this.stats.commands++;
    if (c.op === 'iotlb-inval' || c.op === 'pasid-cache-inval' || c.op === 'context-inval') this.stats.invalidations++;
  }

  /** post() of the command encoded in this.cmdWords (page responses and fences: no invalidation). */
  private postWords(words: Uint32Array): void {
    const q = this.commandQueue();
    if (!postCommandWordsAt(this.unit, this.memory, q, words)) {
      this.kick();
      if (!postCommandWordsAt(this.unit, this.memory, q, words)) throw new Error(`${this.name}: command queue stuck`);
    }
    this.stats.commands++;
  }

  private commandQueue(): QueueLayout {
    if (this.cq === null) throw new Error(`${this.name}: command queue not set up`);
    return this.cq;
  }

  /** Run the queue and check FENCE `seq` completed. */
  private finishSync(seq: number): void {
    this.kick();
    if (this.memory.read32(this.fenceStatus) !== seq) throw new Error(`${this.name}: FENCE ${seq} did not complete (CQCSR 0x${this.unit.readReg(Reg.CQCSR).toString(16)})`);
    this.stats.fences++;
  }
}
