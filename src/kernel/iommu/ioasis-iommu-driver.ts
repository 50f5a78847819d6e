// The kernel's driver for the simulated IOMMU unit (docs/hw-iommu.md), in the role intel-iommu plays for
// VT-d scalable mode: it owns the unit's root table and its command, fault and page-request queues,
// enables translation, programs a context entry per requester ID and a PASID-table entry per attached
// PASID (the RID's own domain lives in PASID entry 0, RID_PASID), allocates domain IDs, and after every
// change posts the invalidations the programming model requires followed by a FENCE whose status write
// proves the unit executed them. It drains the fault queue into `faultLog` and returns page requests for
// the core's io-pgfault layer, and answers page requests with PAGE_RESPONSE.
//
// Decisions:
//  * A RID whose domain is BLOCKED and that has no PASID attached gets context MODE 0 (blocked), so its
//    DMA faults BLOCKED. With PASIDs attached the context must translate; the RID's PASID entry 0 is then
//    cleared (its DMA faults PASID_NOT_PRESENT), as intel-iommu's blocking domain clears RID_PASID.
//  * IDENTITY is PASID entry 0 with PGTT pass-through under DID 1 (intel-iommu's FLPT_DEFAULT_DID);
//    paging domains get DIDs from 2, one per (domain, unit), freed with the last attachment.
//  * Invalidation after an entry changes: CONTEXT_INVAL for the RID when the context entry changed,
//    PASID_CACHE_INVAL and IOTLB_INVAL for the old DID and that PASID (global PASID-cache invalidation
//    when no DID was cached), then FENCE. Unmap invalidates the IOTLB range of the DID for every PASID the
//    domain is attached at on this unit (intel-iommu's cache tags).
//  * Nesting (see the "Nesting" section): a NESTED domain is a PASID entry with PGTT nested, the guest's
//    first-stage root (a GPA) in FSPTR, the NEST_PARENT domain's table as the second stage, and a DID of
//    its own. Its IOTLB entries are combined GIOVA→HPA translations, so an unmap in the parent flushes the
//    whole DID of every nested domain built on it (intel's nesting cache tags), and the user's
//    IOMMU_HWPT_INVALIDATE flushes ranges of the nested DID.

import type { IommuUnit } from '../../hw/iommu/unit.ts';
import type { Command } from '../../hw/iommu/commands.ts';
import { CONTEXT_TABLE_BYTES, PE_SSADE, type ContextEntrySpec, type PasidEntrySpec } from '../../hw/iommu/device-table.ts';
import type { FaultRecord, PageRequestRecord } from '../../hw/iommu/records.ts';
import {
  allocPasidDirectory, clearPasidEntry, contextEntryAddress, enableTranslation, pasidEntryAddress,
  writeContext, writePasidEntry, writeRootEntry,
} from '../../hw/iommu/setup.ts';
import type { IommuCaps, PageResponseCode } from '../../hw/iommu/types.ts';
import type { PhysicalMemory } from '../../hw/memory/physical-memory.ts';
import { fail, ok, type Result } from '../errno.ts';
import type { FrameAllocator } from '../mm/frame-allocator.ts';
import {
  IoPageTableDomain, StaticDomain, type DirtyTrackingHost, type IommuDomain, type IotlbFlusher, type PagingDomain,
} from './domain.ts';
import { checkNestedAlloc, nestedAttachChecks, nestedPasidEntry } from './ioasis-nesting.ts';
import { NestedDomain, type NestedCacheFlusher } from './nested-domain.ts';
import type { IommuUserData } from './user-data.ts';
import type { HwInfo, IommuCap, IommuDriverOps, PagingAllocOptions } from './driver-ops.ts';
import { DriverQueues, type DriverQueueStats } from './ioasis-queues.ts';
import { TableFrames } from './table-frames.ts';
import { hwInfoVtd, IOMMU_HW_INFO_TYPE_INTEL_VTD } from './vtd-hw-info.ts';

export type { IommuDriverOps } from './driver-ops.ts';

const FRAME = 4096;
const QUEUE_LOG2 = 8;
const IDENTITY_DID = 1;
const FIRST_DID = 2;
const MAX_DID = 0xffff;

interface RidState {
  readonly pdts: number;
  readonly dir: number;
  pri: boolean;
  ridDomain: IommuDomain;
  readonly pasids: Map<number, IommuDomain>;
  /** The context mode last written. */
  mode: 'blocked' | 'translate';
}

interface DidUse { readonly did: number; readonly pasids: Map<number, number> }

export interface IoasisIommuDriverOptions {
  readonly name?: string;
  /** Runs the unit's command queue (and delivers page responses); default unit.processCommands(). */
  readonly kick?: () => void;
}

/** What the hardware holds for one RID, read back from memory (for tests and invariants). */
export interface RidHwState {
  readonly contextMode: 'absent' | 'blocked' | 'pass-through' | 'translate' | 'invalid';
  readonly pri: boolean;
  /** PASID entry 0 (the RID's domain): null when not present. */
  readonly ridPasidEntry: { readonly pgtt: number; readonly did: number; readonly ssRoot: number; readonly ssade: boolean } | null;
}

export class IoasisIommuDriver implements IommuDriverOps, IotlbFlusher, NestedCacheFlusher, DirtyTrackingHost {
  readonly name: string;
  readonly caps: IommuCaps;
  readonly maxPasids: number;
  readonly blockedDomain: IommuDomain;
  readonly identityDomain: IommuDomain;
  readonly enforceCacheCoherency: boolean;
  /** Fault records drained from the fault queue, newest last (bounded). */
  get faultLog(): FaultRecord[] { return this.queues.faultLog; }
  readonly root: number;
  readonly tables: TableFrames;
  /** Commands posted, fences completed (for tests). */
  readonly stats: DriverQueueStats = { commands: 0, fences: 0, invalidations: 0, pageResponses: 0, faultsLogged: 0, pageRequestsRead: 0 };
  private readonly rids = new Map<number, RidState>();
  private readonly dids = new Map<IommuDomain, DidUse>();
  /** Nested domains among `dids` (an unmap looks for them only when there are some). */
  private nestedCount = 0;
  /** Why the driver is a flusher of a paging domain: its own DID here, plus one per nested child with a DID. */
  private readonly flushHolds = new Map<PagingDomain, number>();
  private readonly freeDids: number[] = [];
  private nextDid = FIRST_DID;
  private readonly queues: DriverQueues;
  private readonly e = new Uint32Array(2);

  /** Domain numbers, for logs and tests. */
  private nextDomainId = 1;

  constructor(readonly unit: IommuUnit, readonly memory: PhysicalMemory, frames: FrameAllocator, opts: IoasisIommuDriverOptions = {}) {
    this.name = opts.name ?? 'ioasis-iommu';
    this.caps = unit.caps;
    this.maxPasids = this.caps.pasidWidth === 0 ? 0 : 2 ** this.caps.pasidWidth;
    this.enforceCacheCoherency = this.caps.snoopControl;
    this.tables = new TableFrames(frames);
    this.blockedDomain = new StaticDomain(this.nextDomainId++, 'blocked', this);
    this.identityDomain = new StaticDomain(this.nextDomainId++, 'identity', this);
    const root = this.tables.alloc();
    const cq = this.tables.contiguous(queueFrames());
    const fq = this.tables.contiguous(queueFrames());
    const pq = this.tables.contiguous(queueFrames());
    const status = this.tables.alloc();
    if (root < 0 || cq < 0 || fq < 0 || pq < 0 || status < 0) throw new RangeError('no memory for the IOMMU root table and queues');
    this.root = root;
    this.queues = new DriverQueues(this.name, unit, memory, status, opts.kick ?? (() => unit.processCommands()), this.stats);
    this.queues.setupQueues(cq, fq, pq, QUEUE_LOG2);
    // Every requester ID without a context entry faults CONTEXT_NOT_PRESENT from here on.
    enableTranslation(unit, root);
  }

  // ---- Domains ----

  /** intel_iommu_capable() and the capabilities iommufd reads from the unit. */
  capable(_rid: number, cap: IommuCap): boolean {
    switch (cap) {
      case 'dirty-tracking': return this.caps.dirtyTracking;
      case 'enforce-cache-coherency': return this.caps.snoopControl;
      case 'nesting': return this.caps.nesting;
      case 'device-tlb': return this.caps.deviceTlb;
    }
  }

  /** intel_iommu_hw_info(): struct iommu_hw_info_vtd, for DEFAULT or INTEL_VTD (else EOPNOTSUPP). */
  hwInfo(_rid: number, requestedType: number): Result<HwInfo> {
    if (requestedType !== 0 && requestedType !== IOMMU_HW_INFO_TYPE_INTEL_VTD) {
      return fail('EOPNOTSUPP', `the IOMMU driver reports INTEL_VTD data, not type ${requestedType}`);
    }
    return ok({ type: IOMMU_HW_INFO_TYPE_INTEL_VTD, data: hwInfoVtd(this.caps) });
  }

  allocPagingDomain(type: 'dma' | 'unmanaged', opts: PagingAllocOptions = {}): Result<PagingDomain> {
    // intel_iommu_domain_alloc_paging_flags(): paging domains take no driver data.
    if (opts.userData !== undefined) return fail('EOPNOTSUPP', `${this.name}'s paging domains take no driver data (type ${opts.userData.type})`);
    if (opts.dirtyTracking === true && !this.caps.dirtyTracking) return fail('EOPNOTSUPP', `${this.name} has no second-stage dirty tracking (SSADE)`);
    if (!this.caps.secondStage) return fail('EOPNOTSUPP', `${this.name} has no second-stage translation`);
    try {
      return ok(new IoPageTableDomain({
        id: this.nextDomainId++, type, owner: this, memory: this.memory, tables: this.tables, addressWidth: this.caps.inputAddressWidth,
        pageSize2M: this.caps.pageSize2M, pageSize1G: this.caps.pageSize1G, dirtyTracking: opts.dirtyTracking === true,
        snoopControl: this.caps.snoopControl, nestParent: opts.nestParent === true, ...(opts.dirtyTracking === true ? { dirtyHost: this } : {}),
      }));
    } catch {
      return fail('ENOMEM', 'no memory for a page-table root');
    }
  }

  /** The DID `domain` has on this unit, or null when it is not attached here. */
  didOf(domain: IommuDomain): number | null {
    if (domain.type === 'identity') return IDENTITY_DID;
    return this.dids.get(domain)?.did ?? null;
  }

  private getDid(domain: IommuDomain, pasid: number): number | null {
    if (domain.type === 'identity') return IDENTITY_DID;
    let use = this.dids.get(domain);
    if (use === undefined) {
      const did = this.freeDids.pop() ?? (this.nextDid <= MAX_DID ? this.nextDid++ : -1);
      if (did < 0) return null;
      use = { did, pasids: new Map() };
      this.dids.set(domain, use);
      if (domain instanceof NestedDomain) this.nestedCount++;
      this.holdFlushes(domain);
    }
    use.pasids.set(pasid, (use.pasids.get(pasid) ?? 0) + 1);
    return use.did;
  }

  private putDid(domain: IommuDomain, pasid: number): void {
    const use = this.dids.get(domain);
    if (use === undefined) return;
    const n = (use.pasids.get(pasid) ?? 0) - 1;
    if (n > 0) use.pasids.set(pasid, n);
    else use.pasids.delete(pasid);
    if (use.pasids.size === 0) {
      this.dids.delete(domain);
      if (domain instanceof NestedDomain) this.nestedCount--;
      this.dropFlushes(domain);
      // The DID may be reused: nothing of the old domain may stay in the IOTLB under it.
      this.sync([{ op: 'iotlb-inval', scope: 'domain', did: use.did }]);
      this.freeDids.push(use.did);
    }
  }

  flushRange(domain: IommuDomain, iova: number, size: number): void {
    const use = this.dids.get(domain);
    const first = Math.floor(iova / FRAME) * FRAME;
    const pages = Math.ceil((iova + size - first) / FRAME);
    // Every unmap comes here. With no nested domain (whose flushes are added as Commands) the range
    // invalidations are posted straight from the DID's PASIDs, without a command array.
    if (this.nestedCount === 0) {
      if (use !== undefined && use.pasids.size > 0) this.queues.syncIotlbRange(use.did, use.pasids, first, pages);
      return;
    }
    const cmds: Command[] = [];
    if (use !== undefined) for (const pasid of use.pasids.keys()) cmds.push({ op: 'iotlb-inval', scope: 'range', did: use.did, pasid, address: first, pages });
    this.nestedChildFlushes(domain, cmds);
    if (cmds.length > 0) this.sync(cmds);
  }

  // ---- Dirty tracking ----

  /**
   * intel_pasid_setup_dirty_tracking() for every (RID, PASID) whose entry uses `domain` as its second
   * stage: its own entries, and those of nested domains built on it (a domain whose `parent` it is,
   * intel's parent_domain_set_dirty_tracking). SSADE is flipped in place in the live entry, as intel does,
   * then, per VT-d's invalidation guidance for a second-stage entry, a PASID-selective PASID-cache
   * invalidation and a domain-selective IOTLB invalidation for each DID (translations cached while SSADE
   * was off would let writes through without setting D), all behind one FENCE.
   */
  programDirtyTracking(domain: IoPageTableDomain, enabled: boolean): Result {
    const usesStage2 = (d: IommuDomain): boolean => d === domain || ('parent' in d && (d as { parent: unknown }).parent === domain);
    const cmds: Command[] = [];
    const dids = new Set<number>();
    for (const st of this.rids.values()) {
      const entries: [number, IommuDomain][] = [[0, st.ridDomain], ...st.pasids];
      for (const [pasid, d] of entries) {
        const did = this.dids.get(d)?.did;
        if (did === undefined || !usesStage2(d)) continue;
        const at = pasidEntryAddress(this.memory, st.dir, pasid);
        if (at < 0 || !this.memory.read64(at, this.e)) return fail('EFAULT', `${this.name}: PASID ${pasid} entry is not in memory`);
        const lo = this.e[0] as number;
        this.memory.write64(at, (enabled ? lo | PE_SSADE : lo & ~PE_SSADE) >>> 0, this.e[1] as number);
        cmds.push({ op: 'pasid-cache-inval', scope: 'pasid', did, pasid });
        dids.add(did);
      }
    }
    if (cmds.length === 0) return ok();
    for (const did of dids) cmds.push({ op: 'iotlb-inval', scope: 'domain', did });
    this.sync(cmds);
    return ok();
  }

  // ---- Devices ----

  probeDevice(rid: number, maxPasids: number): void {
    if (this.rids.has(rid)) return;
    // 2^pdts directory entries of 64 PASIDs each.
    const pdts = maxPasids <= 64 ? 0 : Math.ceil(Math.log2(maxPasids / 64));
    const dir = this.directory(pdts);
    const st: RidState = { pdts, dir, pri: false, ridDomain: this.blockedDomain, pasids: new Map(), mode: 'blocked' };
    this.rids.set(rid, st);
    this.writeContextOf(rid, st);
    this.sync([{ op: 'context-inval', rid }]);
  }

  private directory(pdts: number): number {
    const frames = Math.max(1, Math.ceil((2 ** pdts * 8) / FRAME));
    const dir = frames === 1 ? allocPasidDirectory(this.tables, pdts) : this.tables.contiguous(frames);
    if (dir < 0) throw new RangeError('no memory for a PASID directory');
    return dir;
  }

  private state(rid: number): RidState {
    const st = this.rids.get(rid);
    if (st === undefined) throw new Error(`${this.name}: requester ID ${rid} was never probed`);
    return st;
  }

  private writeContextOf(rid: number, st: RidState): void {
    const mode = st.ridDomain.type === 'blocked' && st.pasids.size === 0 ? 'blocked' : 'translate';
    st.mode = mode;
    if (contextEntryAddress(this.memory, this.root, rid) < 0) {
      const table = this.tables.contiguous(CONTEXT_TABLE_BYTES / FRAME);
      if (table < 0) throw new RangeError('no memory for a context table');
      writeRootEntry(this.memory, this.root, rid >>> 8, table);
    }
    const spec: ContextEntrySpec = { mode, pri: st.pri, pasidEnable: this.maxPasids > 0, ridPasid: 0, pdts: st.pdts, pasidDir: st.dir };
    if (writeContext(this.memory, this.tables, this.root, rid, spec) < 0) throw new RangeError('context entry outside memory');
  }

  private writePasid(st: RidState, pasid: number, domain: IommuDomain, did: number | null): void {
    if (domain.type === 'blocked' || did === null) {
      clearPasidEntry(this.memory, st.dir, pasid);
      return;
    }
    let spec: PasidEntrySpec;
    if (domain.type === 'identity') spec = { pgtt: 'pass-through', did };
    else if (domain instanceof NestedDomain) spec = nestedPasidEntry(domain, did);
    else {
      const d = domain as IoPageTableDomain;
      spec = { pgtt: 'second', did, ssRoot: d.table.root, ssLevels: d.levels, ssade: d.dirtyTrackingEnabled };
    }
    if (writePasidEntry(this.memory, this.tables, st.dir, pasid, spec) < 0) throw new RangeError('no memory for a PASID table');
  }

  /** Point (rid, pasid) at `domain`; pasid 0 is the RID's own domain. */
  private program(rid: number, pasid: number, domain: IommuDomain): Result {
    const st = this.state(rid);
    if (domain.owner !== this) return fail('EINVAL', `the domain belongs to another IOMMU driver than ${this.name}`);
    if (domain.type === 'identity' && !this.caps.passThrough) return fail('EOPNOTSUPP', `${this.name} has no pass-through`);
    if (domain instanceof NestedDomain) {
      const checked = nestedAttachChecks(this.caps, this.name, domain);
      if (!checked.ok) return checked;
    }
    const old = pasid === 0 ? st.ridDomain : (st.pasids.get(pasid) ?? this.blockedDomain);
    if (old === domain) return ok();
    const oldDid = old.type === 'blocked' ? null : this.didOf(old);
    let did: number | null = null;
    if (domain.type !== 'blocked') {
      did = this.getDid(domain, pasid);
      if (did === null) return fail('ENOSPC', `${this.name}: no free domain ID`);
    }
    const oldMode = st.mode;
    this.writePasid(st, pasid, domain, did);
    if (pasid === 0) st.ridDomain = domain;
    else if (domain.type === 'blocked') st.pasids.delete(pasid);
    else st.pasids.set(pasid, domain);
    const wantMode = st.ridDomain.type === 'blocked' && st.pasids.size === 0 ? 'blocked' : 'translate';
    const cmds: Command[] = [];
    if (wantMode !== oldMode) {
      this.writeContextOf(rid, st);
      cmds.push({ op: 'context-inval', rid });
    }
    if (oldDid !== null) {
      cmds.push({ op: 'pasid-cache-inval', scope: 'pasid', did: oldDid, pasid });
      cmds.push({ op: 'iotlb-inval', scope: 'pasid', did: oldDid, pasid });
    } else {
      cmds.push({ op: 'pasid-cache-inval', scope: 'global' });
    }
    this.sync(cmds);
    if (old.type !== 'blocked' && old.type !== 'identity') this.putDid(old, pasid);
    return ok();
  }

  attachDev(rid: number, domain: IommuDomain): Result {
    return this.program(rid, 0, domain);
  }

  setDevPasid(rid: number, pasid: number, domain: IommuDomain): Result {
    const st = this.state(rid);
    if (pasid <= 0 || pasid >= 2 ** st.pdts * 64 || pasid >= this.maxPasids) return fail('EINVAL', `PASID ${pasid} is outside this device's PASID table`);
    return this.program(rid, pasid, domain);
  }

  removeDevPasid(rid: number, pasid: number): void {
    const st = this.rids.get(rid);
    if (st === undefined || !st.pasids.has(pasid)) return;
    this.program(rid, pasid, this.blockedDomain);
  }

  setPageRequests(rid: number, enabled: boolean): void {
    const st = this.state(rid);
    if (st.pri === enabled) return;
    st.pri = enabled;
    this.writeContextOf(rid, st);
    this.sync([{ op: 'context-inval', rid }]);
  }

  /** The domain programmed for (rid, pasid); pasid 0 is the RID's. */
  domainAt(rid: number, pasid = 0): IommuDomain | null {
    const st = this.rids.get(rid);
    if (st === undefined) return null;
    return pasid === 0 ? st.ridDomain : (st.pasids.get(pasid) ?? null);
  }

  /** Read back what memory holds for `rid` (context entry, PASID entry 0). */
  readRid(rid: number): RidHwState {
    const at = contextEntryAddress(this.memory, this.root, rid);
    if (at < 0) return { contextMode: 'absent', pri: false, ridPasidEntry: null };
    this.memory.read64(at, this.e);
    const w0 = this.e[0] as number;
    if ((w0 & 1) === 0) return { contextMode: 'absent', pri: false, ridPasidEntry: null };
    const modes = ['blocked', 'pass-through', 'translate'] as const;
    const contextMode = modes[(w0 >>> 1) & 7] ?? 'invalid';
    const pri = (w0 & (1 << 4)) !== 0;
    const dir = pageAddress(w0, this.e[1] as number);
    const pe = pasidEntryAddress(this.memory, dir, 0);
    if (pe < 0) return { contextMode, pri, ridPasidEntry: null };
    this.memory.read64(pe, this.e);
    const p0 = this.e[0] as number;
    if ((p0 & 1) === 0) return { contextMode, pri, ridPasidEntry: null };
    const ssRoot = pageAddress(p0, this.e[1] as number);
    this.memory.read64(pe + 8, this.e);
    return { contextMode, pri, ridPasidEntry: { pgtt: (p0 >>> 1) & 7, did: (this.e[0] as number) & 0xffff, ssRoot, ssade: (p0 & (1 << 4)) !== 0 } };
  }

  // ---- Nesting (intel nested.c / intel_pasid_setup_nested) ----

  /** domain_alloc_nested (rules in ioasis-nesting.ts). */
  allocNestedDomain(parent: IommuDomain, flags: number, data: IommuUserData): Result<IommuDomain> {
    const s1 = checkNestedAlloc(this.caps, this.name, this, parent, flags, data);
    if (!s1.ok) return s1;
    return ok(new NestedDomain(this.nextDomainId++, this, s1.value.parent, s1.value.config, this));
  }

  /** IOTLB invalidation of a nested domain's DID for the user (cache_invalidate_user). */
  flushNested(domain: NestedDomain, addr: bigint, pages: bigint | null): void {
    const use = this.dids.get(domain);
    if (use === undefined) return;
    const limit = 2n ** BigInt(this.caps.inputAddressWidth);
    const cmds: Command[] = [];
    for (const pasid of use.pasids.keys()) {
      // Past the input width (or "all") there is nothing narrower to say than the whole PASID.
      if (pages === null || addr >= limit || addr + pages * 4096n > limit) cmds.push({ op: 'iotlb-inval', scope: 'pasid', did: use.did, pasid });
      else cmds.push({ op: 'iotlb-inval', scope: 'range', did: use.did, pasid, address: Number(addr), pages: Number(pages) });
    }
    if (cmds.length > 0) this.sync(cmds);
  }

  /** The domain-wide IOTLB flushes a change of `parent`'s second stage needs for its nested children here. */
  /** Append a domain-selective IOTLB flush for each nested domain built on `parent` (their DIDs cache its translations). */
  private nestedChildFlushes(parent: IommuDomain, cmds: Command[]): void {
    if (this.nestedCount === 0) return;
    for (const [d, use] of this.dids) if (d instanceof NestedDomain && d.parent === parent) cmds.push({ op: 'iotlb-inval', scope: 'domain', did: use.did });
  }

  /** Be told of unmaps of the paging domain behind `domain` (itself, or a nested domain's parent). */
  private holdFlushes(domain: IommuDomain): void {
    const p = domain instanceof NestedDomain ? domain.parent : domain.isPaging() ? domain : null;
    if (p === null) return;
    const n = this.flushHolds.get(p) ?? 0;
    if (n === 0) p.addFlusher(this);
    this.flushHolds.set(p, n + 1);
  }

  private dropFlushes(domain: IommuDomain): void {
    const p = domain instanceof NestedDomain ? domain.parent : domain.isPaging() ? domain : null;
    if (p === null) return;
    const n = (this.flushHolds.get(p) ?? 0) - 1;
    if (n > 0) { this.flushHolds.set(p, n); return; }
    this.flushHolds.delete(p);
    p.removeFlusher(this);
  }

  // ---- Queues (ioasis-queues.ts) ----

  pageResponse(rid: number, pasid: number, prgi: number, code: PageResponseCode, privateData: readonly [number, number] | null): void {
    this.queues.pageResponse(rid, pasid, prgi, code, privateData);
  }

  poll(): { faults: FaultRecord[]; pageRequests: PageRequestRecord[]; pageRequestOverflow: boolean } {
    return this.queues.poll();
  }

  /** poll() without allocating (the core's path): see DriverQueues.drain. */
  drain(pageRequests: PageRequestRecord[]): number { return this.queues.drain(pageRequests); }

  /** Whether the last poll() or drain() found the page-request queue overflowed. */
  get pageRequestOverflow(): boolean { return this.queues.pageRequestOverflow; }

  private sync(cmds: readonly Command[]): void {
    this.queues.sync(cmds);
  }
}

function queueFrames(): number { return Math.max(1, (2 ** QUEUE_LOG2 * 32) / FRAME); }

function pageAddress(lo: number, hi: number): number {
  return (hi & 0xfffff) * 4294967296 + ((lo & 0xfffff000) >>> 0);
}

