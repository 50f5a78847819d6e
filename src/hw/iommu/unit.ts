// The IOMMU unit of docs/hw-iommu.md: a pure state machine over injected physical memory. Software drives
// it through registers, the tables it reads from memory and the command queue; it answers through the fault
// and page-request queues and through messages to devices. Nothing a device or software does makes it
// throw: every mistake becomes the fault or error flag a real IOMMU reports.
//
// Each check carries, in the line above it, the rule of docs/hw-iommu.md it implements.

import type { PhysicalMemory } from '../memory/physical-memory.ts';
import { decodeCommand, fenceWellFormed, iotlbInvalWellFormed, Opcode, pageResponseWellFormed, type Command } from './commands.ts';
import { CC_PASIDE, CC_PRE, ContextCache } from './context-cache.ts';
import { ContextMode, fetchContext, fetchPasidEntry, newContextFields, newPasidFields, Pgtt } from './device-table.ts';
import { Iotlb, TLB_DIRTY_OK, TLB_PERMS, TLB_USER_OK } from './iotlb.ts';
import { PasidCache, PC_SRE, PC_SSADE } from './pasid-cache.ts';
import { PERM_R, PERM_W, PERM_X } from './pgtable/format.ts';
import { newWalkOut, PageWalker, type Access, type SecondStage, type WalkOut } from './pgtable/walk.ts';
import { Produce, QCSR_ERR, QCSR_MF, RECORD_HALVES } from './queues.ts';
import { encodeFaultRecord, encodePageRequestRecord } from './records.ts';
import { checkCaps, IPSR_CQ, IPSR_FQ, IPSR_PQ, RegisterFile } from './registers.ts';
import {
  FaultReason, NO_PASID, PageResponseCode, type DeviceMessageSink, type IommuCaps, type PageRequestMessage,
  type TranslationRequest, type TranslationResult,
} from './types.ts';

export interface IommuUnitOptions {
  /** IOTLB entries (default 1024). */
  readonly iotlbEntries?: number;
  /** Context-cache entries (default 64). */
  readonly contextCacheEntries?: number;
  /** PASID-cache entries (default 128). */
  readonly pasidCacheEntries?: number;
  /** Where page responses go (the fabric routes them by RID). */
  readonly sendToDevice?: DeviceMessageSink;
}

/** pageSize of an untranslated result: the whole 64-bit address space. */
export const UNTRANSLATED_PAGE_SIZE = 2 ** 64;

/** Counters of one unit, and its caches' occupancy. */
export class IommuStats {
  /** Translations served by the IOTLB without a walk. */
  iotlbHits = 0;
  /** IOTLB lookups that needed a walk: no entry, or an entry the access may not use as is (D to set, U to check, a permission to re-check). */
  iotlbMisses = 0;
  /** Page-table walks started. */
  walks = 0;
  /** Fault records written to the fault queue. */
  faultsRecorded = 0;
  /** Faults that should have been recorded but were not: queue off, full, overflow or memory fault flagged. */
  faultsDropped = 0;
  /** Page request messages received. */
  pageRequests = 0;
  /** Page requests lost because the page-request queue was off, full, overflowed or faulted. */
  pageRequestsDropped = 0;
  /** Page requests refused before the queue: TE off, no PRI, no valid context, PRE clear, PASID not allowed, bad address. */
  pageRequestsRejected = 0;
  /** Commands executed (the bad command that stops the queue is not counted). */
  commandsProcessed = 0;

  constructor(private readonly caches: { readonly iotlb: Iotlb; readonly ctx: ContextCache; readonly pasid: PasidCache }) {}

  get iotlbEntries(): number { return this.caches.iotlb.size; }
  get contextCacheEntries(): number { return this.caches.ctx.size; }
  get pasidCacheEntries(): number { return this.caches.pasid.size; }
}

/** The second stage of a nested walk, pointed at the current PASID entry's table before each walk. */
class NestedSecondStage implements SecondStage {
  root = 0;
  levels = 4;
  ad = false;
  constructor(private readonly walker: PageWalker) {}
  translate(gpa: number, access: Access, out: WalkOut): boolean {
    return this.walker.walkSecond(this.root, this.levels, gpa, access, this.ad, out);
  }
}

/** Memo flags: the PASID entry is pass-through (PGTT 4); it has SRE. */
const MEMO_PT = 1;
const MEMO_SRE = 2;

const isRid = (rid: number): boolean => Number.isInteger(rid) && rid >= 0 && rid <= 0xffff;

export class IommuUnit {
  /** pageRequest() encodes its message into the queue record and keeps no reference (IommuPort). */
  readonly borrowsPageRequests = true;
  readonly caps: IommuCaps;
  readonly stats: IommuStats;
  private readonly regs: RegisterFile;
  private readonly walker: PageWalker;
  private readonly ctxCache: ContextCache;
  private readonly pasidCache: PasidCache;
  private readonly iotlb: Iotlb;
  private readonly walkOut = newWalkOut();
  private readonly stage2: NestedSecondStage;
  /** Scratch: 4-word entries and records, one word. */
  private readonly halves = new Uint32Array(RECORD_HALVES);
  private readonly rec = new Uint32Array(RECORD_HALVES);
  private readonly e = new Uint32Array(2);
  private readonly ctxFields = newContextFields();
  private readonly peFields = newPasidFields();
  /** 2^pasidWidth and 2^inputAddressWidth. */
  private readonly pasidLimit: number;
  private readonly iovaLimit: number;
  private sink: DeviceMessageSink | undefined;
  /**
   * The last (RID, request PASID) resolved to a PASID-cache slot. While it holds, both its context and
   * PASID entry are the most recently used of their caches, so reusing it skips the lookups without
   * changing any LRU order; every other cache lookup and every invalidation forgets it.
   */
  private memoRid = -1;
  private memoPasid = -2;
  private memoPe = -1;
  /** Of the memo's RID: its context-cache slot. */
  private memoCs = -1;
  /** Of the memo's PASID entry: IOTLB tag and its hash part, MEMO_* flags. */
  private memoTag = 0;
  private memoMix = 0;
  private memoFlags = 0;
  private inCommands = false;
  /** GSTS.TES, mirrored from the register file for the hot path. */
  private te = false;

  constructor(private readonly mem: PhysicalMemory, caps: IommuCaps, opts: IommuUnitOptions = {}) {
    checkCaps(caps);
    this.caps = { ...caps };
    this.regs = new RegisterFile(this.caps);
    this.walker = new PageWalker(mem, this.caps);
    this.stage2 = new NestedSecondStage(this.walker);
    this.ctxCache = new ContextCache(opts.contextCacheEntries ?? 64);
    this.pasidCache = new PasidCache(opts.pasidCacheEntries ?? 128);
    this.iotlb = new Iotlb(opts.iotlbEntries ?? 1024);
    this.stats = new IommuStats({ iotlb: this.iotlb, ctx: this.ctxCache, pasid: this.pasidCache });
    this.pasidLimit = 2 ** this.caps.pasidWidth;
    this.iovaLimit = 2 ** this.caps.inputAddressWidth;
    this.sink = opts.sendToDevice;
  }

  /** Connect (or replace) the device message sink, for fabrics built after the unit. */
  setDeviceMessageSink(sink: DeviceMessageSink | undefined): void { this.sink = sink; }

  // ---- Registers ----

  readReg(offset: number): number { return this.regs.read(offset); }
  writeReg(offset: number, value: number): void {
    this.regs.write(offset, value);
    this.te = this.regs.te;
  }

  // ---- Translation ----

  /** Translate one request into `out` (every field written); returns out.ok. Allocates nothing on an IOTLB hit. */
  translate(req: TranslationRequest, out: TranslationResult): boolean {
    // GCMD.TE clear: every request passes untranslated, as before an OS takes over.
    if (!this.te) return untranslated(req.iova, out);
    if (req.rid !== this.memoRid || req.pasid !== this.memoPasid) {
      if (this.resolve(req, out) < 0) return out.ok;
    }
    const flags = this.memoFlags;
    // PASID entry SRE (bit 9): privileged requests are allowed only with SRE set.
    if (req.priv && (flags & MEMO_SRE) === 0) return this.fault(req, out, FaultReason.PrivDenied, 0, 0);
    // PGTT 4: pass-through, the request goes untranslated.
    if ((flags & MEMO_PT) !== 0) return untranslated(req.iova, out);
    const iova = req.iova;
    const tlb = this.iotlb;
    // IOTLB: translations by (DID, PASID, IOVA page, page size).
    const slot = tlb.lookup(this.memoTag, this.memoMix, iova);
    if (slot >= 0) {
      const rights = tlb.rights[slot] as number;
      // A hit serves the request only if the cached permissions allow it, a write finds D already set
      // (or no A/D tracking), and a user request finds U checked; otherwise the walk decides.
      const need = (req.write ? PERM_W | TLB_DIRTY_OK : PERM_R) | (req.exec ? PERM_X : 0) | (req.priv ? 0 : TLB_USER_OK);
      if ((rights & need) === need) {
        this.stats.iotlbHits++;
        // Written out in full, not through a helper: passing these doubles to a call V8 does not inline
        // boxes them, and this path must not allocate (test/hw/iommu-alloc.test.ts caught exactly that).
        out.ok = true;
        out.pa = (tlb.paBase[slot] as number) + (iova - (tlb.iovaBase[slot] as number));
        out.pageSize = tlb.pageSize[slot] as number;
        out.perms = rights & TLB_PERMS;
        out.reason = FaultReason.None;
        out.stage = 0;
        out.faultGpa = 0;
        out.untranslated = false;
        out.recorded = false;
        return true;
      }
    }
    this.stats.iotlbMisses++;
    return this.walk(req, this.memoPe, slot, out);
  }

  /**
   * Context and PASID entry of a request: the PASID-cache slot to translate with, or -1 when `out` is
   * already final (a fault, or an untranslated request).
   */
  private resolve(req: TranslationRequest, out: TranslationResult): number {
    this.forgetMemo();
    const rid = req.rid;
    // A requester ID is 16 bits (bus << 8 | devfn): a wider one has no root entry.
    if (!isRid(rid)) return this.faultAndStop(req, out, FaultReason.RootNotPresent);
    const cs = this.contextFor(rid);
    if (cs < 0) return this.faultAndStop(req, out, -cs as FaultReason);
    const cc = this.ctxCache;
    const mode = cc.mode[cs];
    // Context MODE 0 blocked: every request faults BLOCKED.
    if (mode === ContextMode.Blocked) return this.faultAndStop(req, out, FaultReason.Blocked);
    // Context MODE 1 pass-through: untranslated.
    if (mode === ContextMode.PassThrough) { untranslated(req.iova, out); return -1; }
    // Context MODE 2: translate through the PASID table.
    let pasid = req.pasid;
    if (pasid === NO_PASID) {
      // Context word 1 RID_PASID: the PASID entry used for requests without a PASID.
      pasid = cc.ridPasid[cs] as number;
    } else {
      // Context PASIDE: requests carrying a PASID are allowed only with it set.
      if (((cc.flags[cs] as number) & CC_PASIDE) === 0) return this.faultAndStop(req, out, FaultReason.PasidDisallowed);
      // CAP pasidWidth: a PASID has that many bits.
      if (!(Number.isInteger(pasid) && pasid >= 0 && pasid < this.pasidLimit)) return this.faultAndStop(req, out, FaultReason.PasidOutOfRange);
    }
    // Context PDTS: the PASID directory has 2^PDTS entries, and a PASID uses entry pasid >> 6.
    if (pasid >>> 6 >= (cc.dirEntries[cs] as number)) return this.faultAndStop(req, out, FaultReason.PasidOutOfRange);
    // PASID entries are cached by (RID, PASID).
    let pe = this.pasidCache.lookup(rid, pasid);
    if (pe < 0) {
      const reason = fetchPasidEntry(this.mem, this.caps, cc.pasidDir[cs] as number, pasid, this.halves, this.e, this.peFields);
      if (reason !== FaultReason.None) return this.faultAndStop(req, out, reason);
      pe = this.pasidCache.insert(rid, pasid, this.peFields);
    }
    const pcache = this.pasidCache;
    this.memoRid = rid;
    this.memoPasid = req.pasid;
    this.memoPe = pe;
    this.memoCs = cs;
    this.memoTag = pcache.tag[pe] as number;
    this.memoMix = pcache.tagMix[pe] as number;
    this.memoFlags = (pcache.pgtt[pe] === Pgtt.PassThrough ? MEMO_PT : 0) | (((pcache.flags[pe] as number) & PC_SRE) !== 0 ? MEMO_SRE : 0);
    return pe;
  }

  /** Context-cache slot of `rid` (read from memory on a miss), or -reason. */
  private contextFor(rid: number): number {
    // Context entries are cached by RID.
    const slot = this.ctxCache.lookup(rid);
    if (slot >= 0) return slot;
    const reason = fetchContext(this.mem, this.caps, this.regs.dtaddr, rid, this.halves, this.e, this.ctxFields);
    // Only valid entries are cached: a faulting entry is read again next time.
    if (reason !== FaultReason.None) return -reason;
    return this.ctxCache.insert(rid, this.ctxFields);
  }

  /** IOTLB miss (or a hit the access may not use): walk the tables and cache the result. */
  private walk(req: TranslationRequest, pe: number, stale: number, out: TranslationResult): boolean {
    const pc = this.pasidCache;
    const iova = req.iova;
    const pgtt = pc.pgtt[pe];
    // The IOVA must be below 2^inputAddressWidth (the walker checks the table depth's own width).
    if (!(iova >= 0 && iova < this.iovaLimit && Number.isInteger(iova))) {
      return this.fault(req, out, FaultReason.AddressBeyondWidth, pgtt === Pgtt.SecondStage ? 2 : 1, 0);
    }
    const w = this.walkOut;
    // PASID entry SSADE: second-stage accessed/dirty update.
    const ssade = ((pc.flags[pe] as number) & PC_SSADE) !== 0;
    this.stats.walks++;
    let ok: boolean;
    if (pgtt === Pgtt.SecondStage) {
      // PGTT 2: second-stage table at the entry's PA field.
      ok = this.walker.walkSecond(pc.ssRoot[pe] as number, pc.ssLevels[pe] as number, iova, req, ssade, w);
    } else if (pgtt === Pgtt.FirstStage) {
      // PGTT 1: first-stage table at word 2's PA field.
      ok = this.walker.walkFirst(pc.fsRoot[pe] as number, pc.fsLevels[pe] as number, iova, req, w);
    } else {
      // PGTT 3 nested: the first-stage root, tables and leaves are GPAs, each translated through the second stage.
      const s2 = this.stage2;
      s2.root = pc.ssRoot[pe] as number;
      s2.levels = pc.ssLevels[pe] as number;
      s2.ad = ssade;
      ok = this.walker.walkFirst(pc.fsRoot[pe] as number, pc.fsLevels[pe] as number, iova, req, w, s2);
    }
    if (!ok) return this.fault(req, out, w.reason, w.stage, w.faultGpa);
    let rights = w.perms & TLB_PERMS;
    // A/D: the first stage always sets D on a write, the second stage when SSADE; a translation cached by a
    // read must be walked again by the first write so that D gets set.
    if (req.write || (pgtt === Pgtt.SecondStage && !ssade)) rights |= TLB_DIRTY_OK;
    // U/S exists only in the first stage, and a privileged walk does not check it.
    if (!req.priv || pgtt === Pgtt.SecondStage) rights |= TLB_USER_OK;
    if (stale >= 0) this.iotlb.remove(stale);
    // IOTLB: translations by (DID, PASID, IOVA page, page size).
    this.iotlb.insert(pc.tag[pe] as number, pc.tagMix[pe] as number, pc.did[pe] as number, pc.pasid[pe] as number, iova, w.pa, w.pageSize, rights);
    out.ok = true;
    out.pa = w.pa;
    out.pageSize = w.pageSize;
    out.perms = w.perms;
    out.reason = FaultReason.None;
    out.stage = 0;
    out.faultGpa = 0;
    out.untranslated = false;
    out.recorded = false;
    return true;
  }

  private faultAndStop(req: TranslationRequest, out: TranslationResult, reason: FaultReason): number {
    this.fault(req, out, reason, 0, 0);
    return -1;
  }

  /** Abort the request with `reason` and record it unless it was an ATS translation request. */
  private fault(req: TranslationRequest, out: TranslationResult, reason: FaultReason, stage: 0 | 1 | 2, gpa: number): false {
    out.ok = false;
    out.pa = 0;
    out.pageSize = 0;
    out.perms = 0;
    out.reason = reason;
    out.stage = stage;
    out.faultGpa = gpa;
    out.untranslated = false;
    // An ATS translation request from a device that will ask for the page (PRI) writes no fault record.
    out.recorded = req.ats ? false : this.recordFault(req, reason, stage, gpa);
    return false;
  }

  private recordFault(req: TranslationRequest, reason: FaultReason, stage: number, gpa: number): boolean {
    encodeFaultRecord(this.rec, reason, stage, req.write, req.exec, req.priv, req.rid, req.pasid, req.iova, gpa);
    const r = this.regs.fq.produce(this.mem, this.rec);
    if (r === Produce.Written) {
      this.stats.faultsRecorded++;
      // IPSR bit 0: fault queue interrupt pending.
      this.regs.ipsr |= IPSR_FQ;
      return true;
    }
    this.stats.faultsDropped++;
    // Overflow or memory fault newly flagged: interrupt, so software learns that records were lost.
    if (r === Produce.Overflow || r === Produce.MemoryFault) this.regs.ipsr |= IPSR_FQ;
    return false;
  }

  // ---- Page requests ----

  /** A Page Request message from a PRI-capable function (through the fabric). */
  pageRequest(msg: PageRequestMessage): void {
    this.stats.pageRequests++;
    if (!this.acceptsPageRequest(msg)) {
      this.stats.pageRequestsRejected++;
      // A request the context does not allow is answered at once with INVALID when it ends its group.
      if (msg.lastInGroup) this.respond(msg, PageResponseCode.Invalid);
      return;
    }
    encodePageRequestRecord(this.rec, msg);
    const pq = this.regs.pq;
    const r = pq.produce(this.mem, this.rec);
    if (r === Produce.Written) {
      // IPSR bit 1: page-request queue interrupt pending.
      this.regs.ipsr |= IPSR_PQ;
      return;
    }
    this.stats.pageRequestsDropped++;
    // When the page-request queue is full or off, the unit ... sets PQOF.
    if (r === Produce.Off) pq.errors |= QCSR_ERR;
    else if (r === Produce.Overflow || r === Produce.MemoryFault) this.regs.ipsr |= IPSR_PQ;
    // ... and answers the request itself with INVALID if LPIG is set (so the device never hangs).
    if (msg.lastInGroup) this.respond(msg, PageResponseCode.Invalid);
  }

  private acceptsPageRequest(msg: PageRequestMessage): boolean {
    // Page requests need translation enabled and a unit with page-request support (CAP bit 24).
    if (!this.regs.te || !this.caps.pri) return false;
    // A requester ID is 16 bits; the page address a 4 KiB page below 2^64.
    if (!isRid(msg.rid) || !(msg.address >= 0 && msg.address < UNTRANSLATED_PAGE_SIZE)) return false;
    // The translation memo's RID (the faulting request's: its retry uses the memo) needs no lookup: its
    // context is the most recently used already, as in translate(). Any other RID's lookup makes another
    // context the most recently used, so the memo is dropped, as resolve() drops it.
    let cs: number;
    if (msg.rid === this.memoRid) {
      cs = this.memoCs;
    } else {
      this.forgetMemo();
      cs = this.contextFor(msg.rid);
    }
    if (cs < 0) return false;
    const flags = this.ctxCache.flags[cs] as number;
    // Context PRE: page requests allowed from this function.
    if ((flags & CC_PRE) === 0) return false;
    // A PASID needs PASIDE and must fit the unit's PASID width.
    if (msg.pasid !== NO_PASID && ((flags & CC_PASIDE) === 0 || !(Number.isInteger(msg.pasid) && msg.pasid >= 0 && msg.pasid < this.pasidLimit))) return false;
    return true;
  }

  private respond(msg: PageRequestMessage, code: PageResponseCode): void {
    // Private data is echoed in the response when present (PDP).
    this.sink?.({ rid: msg.rid, pasid: msg.pasid, prgi: msg.prgi, code, privateData: msg.privateData });
  }

  // ---- Commands ----

  /** Drain the command queue (one call, as a clock tick would). Returns the commands executed. */
  processCommands(): number {
    // A page response's device may call back into the unit: a nested call does nothing.
    if (this.inCommands) return 0;
    this.inCommands = true;
    let done = 0;
    try {
      const cq = this.regs.cq;
      // At most one queue's worth per call, even if a device keeps adding commands from a callback.
      const limit = cq.entries;
      // CQCSR: commands are processed while enabled and neither CMD_ILL nor CQMF is set.
      while (cq.enabled && cq.errors === 0 && !cq.isEmpty() && done < limit) {
        // Queue memory outside memory: CQMF, processing stops with the head on the command.
        if (!cq.readHead(this.mem, this.halves)) { cq.errors |= QCSR_MF; break; }
        const r = this.executeWords(this.halves);
        // An unknown opcode or reserved bits set stop processing with CMD_ILL; the head stays on the bad command.
        if (r < 0) { cq.errors |= QCSR_ERR; break; }
        if (r === 0) break;
        cq.advanceHead();
        done++;
        this.stats.commandsProcessed++;
      }
    } finally {
      this.inCommands = false;
    }
    return done;
  }

  /**
   * Execute the command in `h`: 1 done, 0 it could not complete (the queue stops on it), -1 illegal
   * (CMD_ILL). PAGE_RESPONSE and FENCE (two per device fault) and IOTLB_INVAL (one per page unmapped)
   * are read straight from the words; the context and PASID-cache invalidations go through
   * decodeCommand() and invalidateCaches().
   */
  private executeWords(h: Uint32Array): number {
    const lo0 = h[0] as number;
    const op = lo0 & 0xff;
    if (op === Opcode.PageResponse) {
      if (!pageResponseWellFormed(h)) return -1;
      const lo1 = h[2] as number;
      const hi1 = h[3] as number;
      // Word 0: bits 11:8 code, bit 12 PASID valid, bit 13 PDP, bits 31:16 RID. Word 1: bits 8:0 PRGI,
      // bits 51:32 PASID. Word 2: private data (PDP).
      const pasid = (lo0 & (1 << 12)) !== 0 ? hi1 & 0xfffff : NO_PASID;
      const privateData: [number, number] | null = (lo0 & (1 << 13)) !== 0 ? [h[4] as number, h[5] as number] : null;
      // PAGE_RESPONSE: the response goes to the device, which matches it to its outstanding group.
      this.sink?.({ rid: lo0 >>> 16, pasid, prgi: lo1 & 0x1ff, code: ((lo0 >>> 8) & 0xf) as PageResponseCode, privateData });
      return 1;
    }
    if (op === Opcode.Fence) {
      if (!fenceWellFormed(h)) return -1;
      // Word 1: the status PA (bits 51:2); word 2: the status data; word 0 bit 8: interrupt.
      const statusAddress = (h[3] as number) * 4294967296 + (h[2] as number);
      // FENCE word 1: a PA to write word 2's low 32 bits to (0: none); a write outside memory is a queue memory fault.
      if (statusAddress !== 0 && !this.mem.write32(statusAddress, h[4] as number)) {
        this.regs.cq.errors |= QCSR_MF;
        return 0;
      }
      // FENCE word 0 bit 8: raise the command-completion interrupt (IPSR bit 2).
      if ((lo0 & 0x100) !== 0) this.regs.ipsr |= IPSR_CQ;
      return 1;
    }
    if (op === Opcode.IotlbInval) {
      if (!iotlbInvalWellFormed(h)) return -1;
      // Word 0: bits 9:8 granularity. Word 1: bits 15:0 DID, bits 51:32 PASID. Granularity 3: word 2 the
      // address, word 3 the number of 4 KiB pages.
      const gran = (lo0 >>> 8) & 3;
      const did = (h[2] as number) & 0xffff;
      const pasid = (h[3] as number) & 0xfffff;
      // IOTLB_INVAL granularity 0 global, 1 DID, 2 DID+PASID, 3 DID+PASID+range (every size overlapping).
      if (gran === 0) this.iotlb.invalidateAll();
      else if (gran === 3) this.iotlb.invalidateRange(did, pasid, ((h[5] as number) * 4294967296 + (h[4] as number)) / 4096, (h[7] as number) * 4294967296 + (h[6] as number));
      else this.iotlb.invalidate(did, gran === 2 ? pasid : -1);
      return 1;
    }
    const cmd = decodeCommand(h);
    if (cmd === null) return -1;
    // The opcodes taken above decode to nothing else: what is left is a cache invalidation.
    if (cmd.op !== 'context-inval' && cmd.op !== 'pasid-cache-inval') return -1;
    this.invalidateCaches(cmd);
    return 1;
  }

  /** Execute a context or PASID-cache invalidation (the commands executeWords() does not read from the words). */
  private invalidateCaches(cmd: Extract<Command, { op: 'context-inval' | 'pasid-cache-inval' }>): void {
    this.forgetMemo();
    if (cmd.op === 'context-inval') {
      // CONTEXT_INVAL granularity 0 global, 1 one RID.
      if (cmd.rid === null) this.ctxCache.invalidateAll(); else this.ctxCache.invalidateRid(cmd.rid);
      return;
    }
    // PASID_CACHE_INVAL granularity 0 global, 1 DID, 2 DID+PASID (entries are tagged with their DID).
    if (cmd.scope === 'global') this.pasidCache.invalidateAll();
    else this.pasidCache.invalidate(cmd.did, cmd.scope === 'pasid' ? cmd.pasid : -1);
  }

  private forgetMemo(): void {
    this.memoRid = -1;
    this.memoPasid = -2;
  }

  // ---- Introspection ----

  /** IOTLB entries in use. */
  iotlbSize(): number { return this.iotlb.size; }
  contextCacheSize(): number { return this.ctxCache.size; }
  pasidCacheSize(): number { return this.pasidCache.size; }
  /** RIDs in the context cache, most recently used first. */
  cachedContexts(): number[] { return this.ctxCache.rids(); }
  /** (RID, PASID) pairs in the PASID cache, most recently used first. */
  cachedPasidEntries(): Array<[number, number]> { return this.pasidCache.keys(); }
  /** IOTLB entries, most recently used first. */
  cachedTranslations(): Array<{ did: number; pasid: number; iova: number; pa: number; pageSize: number; perms: number }> {
    const t = this.iotlb;
    return t.slots().map((s) => ({
      did: t.did[s] as number, pasid: t.pasid[s] as number, iova: t.iovaBase[s] as number, pa: t.paBase[s] as number,
      pageSize: t.pageSize[s] as number, perms: (t.rights[s] as number) & TLB_PERMS,
    }));
  }
}

function untranslated(iova: number, out: TranslationResult): true {
  out.ok = true;
  out.pa = iova;
  out.pageSize = UNTRANSLATED_PAGE_SIZE;
  out.perms = PERM_R | PERM_W | PERM_X;
  out.reason = FaultReason.None;
  out.stage = 0;
  out.faultGpa = 0;
  out.untranslated = true;
  out.recorded = false;
  return true;
}
