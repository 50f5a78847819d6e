import { describe, expect, it } from 'vitest';
import { DmaEngine } from '../../src/hw/dma/engine.ts';
import {
  PCI_PASID_CTRL_ENABLE, PCI_PASID_CTRL_PRIV, PCI_PRI_CTRL_ENABLE, PCI_PRI_CTRL_RESET, PCI_PRI_STATUS_RF, PCI_PRI_STATUS_UPRGI,
} from '../../src/hw/dma/pri.ts';
import type { DmaRequest, IommuPort } from '../../src/hw/dma/types.ts';
import type { Route } from '../../src/hw/fabric/fabric.ts';
import { IoPageTable } from '../../src/hw/iommu/pgtable/builder.ts';
import { PQCSR_PQOF, Reg } from '../../src/hw/iommu/registers.ts';
import {
  allocPasidDirectory, allocQueue, allocRootTable, enableTranslation, newRecordScratch, postCommand, readFaultRecords, readPageRequests, setupQueue,
  writeContext, writePasidEntry,
} from '../../src/hw/iommu/setup.ts';
import {
  FaultReason, NO_PASID, PageResponseCode, type PageRequestMessage, type PageResponseMessage, type TranslationRequest,
  type TranslationResult,
} from '../../src/hw/iommu/types.ts';
import { Machine } from '../../src/hw/machine.ts';
import { PhysicalMemory } from '../../src/hw/memory/physical-memory.ts';
import { bootHost } from '../../src/pci/boot.ts';
import type { PciDev } from '../../src/pci/dev.ts';
import {
  PCI_EXT_CAP_ID_PASID, PCI_EXT_CAP_ID_PRI, PCI_PASID_CTRL, PCI_PRI_ALLOC_REQ, PCI_PRI_CTRL, PCI_PRI_STATUS,
} from '../../src/pci/regs.ts';
import type { FunctionSpecInput } from '../../src/pci/spec.ts';
import { tableAllocator } from '../support/hw-bench.ts';
import { host, rootPort } from '../support/spec-helpers.ts';

// The Page Request Interface end to end: a PRI-capable function's fault becomes page requests in the real
// IOMMU unit's page-request queue; software answers with PAGE_RESPONSE commands; the device retries or
// aborts. Plus the engine alone, against a fake IOMMU, for what is awkward to reach through the unit.

const PAGE = 4096;
const PASID = 5;
const pattern = (n: number, seed = 7): Uint8Array => Uint8Array.from({ length: n }, (_, i) => (i * 13 + seed) & 0xff);
const write = (address: number, length: number, extra: Partial<DmaRequest> = {}): DmaRequest => ({ op: 'write', address, length, data: pattern(length), pasid: PASID, ...extra });

/** Software's side of enabling PRI and PASID on a function (what Linux's pci_enable_pri/pasid write). */
function enablePri(dev: PciDev, allocation: number): void {
  const pri = dev.config.findExtCapability(PCI_EXT_CAP_ID_PRI);
  dev.config.write32(pri + PCI_PRI_ALLOC_REQ, allocation);
  dev.config.write16(pri + PCI_PRI_CTRL, PCI_PRI_CTRL_ENABLE);
  const pasid = dev.config.findExtCapability(PCI_EXT_CAP_ID_PASID);
  dev.config.write16(pasid + PCI_PASID_CTRL, PCI_PASID_CTRL_ENABLE | PCI_PASID_CTRL_PRIV);
}

const priRegister = (dev: PciDev, reg: number): number => dev.config.read16(dev.config.findExtCapability(PCI_EXT_CAP_ID_PRI) + reg);
const setPriControl = (dev: PciDev, value: number): void => dev.config.write16(dev.config.findExtCapability(PCI_EXT_CAP_ID_PRI) + PCI_PRI_CTRL, value);

const dsa: FunctionSpecInput = {
  address: '00:01.0', id: '8086:0b25', class: '0880', express: { type: 'rc-integrated-endpoint' },
  ats: {}, pri: { outstanding: 16 }, pasid: { width: 20, privileged: true },
};

/** A machine with one DSA-like function (PRI, PASID) behind a real IOMMU unit, its context allowing page requests. */
function priBench(o: { allocation?: number; pqLog2?: number; pre?: boolean; maxPagesPerGroup?: number } = {}) {
  const spec = host([dsa, { ...dsa, address: '00:02.0', pri: undefined, ats: undefined }]);
  const m = new Machine(bootHost(spec), { memory: new PhysicalMemory({ size: 4 * 2 ** 30 }), ...(o.maxPagesPerGroup === undefined ? {} : { maxPagesPerGroup: o.maxPagesPerGroup }) });
  const mem = m.memory;
  const alloc = tableAllocator(mem, 0x1000_0000, 0x1000_0000);
  const unit = m.units[0]!.port;
  const root = allocRootTable(alloc);
  enableTranslation(unit, root);
  setupQueue(unit, 'command', allocQueue(alloc, 5), 5);
  setupQueue(unit, 'fault', allocQueue(alloc, 5), 5);
  setupQueue(unit, 'page-request', allocQueue(alloc, o.pqLog2 ?? 5), o.pqLog2 ?? 5);
  const dev = m.device('00:01.0')!;
  enablePri(dev, o.allocation ?? 8);
  const fsTable = new IoPageTable(mem, alloc, { format: 'first', levels: 4, pageSize2M: true, pageSize1G: true });
  const ssTable = new IoPageTable(mem, alloc, { format: 'second', levels: 4, pageSize2M: true, pageSize1G: true });
  for (const d of [dev, m.device('00:02.0')!]) {
    const dir = allocPasidDirectory(alloc, 2);
    writeContext(mem, alloc, root, d.rid, { mode: 'translate', pri: o.pre ?? true, pasidEnable: true, pdts: 2, pasidDir: dir });
    writePasidEntry(mem, alloc, dir, 0, { pgtt: 'second', did: 1, ssRoot: ssTable.root });
    writePasidEntry(mem, alloc, dir, PASID, { pgtt: 'first', did: 2, fsRoot: fsTable.root });
  }
  let nextFrame = 0x4000_0000;
  /** Software fixes the fault: map `pages` pages from `iova` for the PASID onto fresh frames; returns the frames. */
  const fix = (iova: number, pages = 1): number[] => {
    const frames: number[] = [];
    for (let i = 0; i < pages; i++) {
      frames.push(nextFrame);
      fsTable.map(iova + i * PAGE, nextFrame, PAGE, { read: true, write: true, user: true });
      nextFrame += PAGE;
    }
    return frames;
  };
  const respond = (prgi: number, code: PageResponseCode, pasid = PASID, privateData: readonly [number, number] | null = null): void => {
    expect(postCommand(unit, mem, { op: 'page-response', rid: dev.rid, pasid, prgi, code, privateData })).toBe(true);
    m.processCommands();
  };
  const engine = m.engine(dev);
  return {
    m, mem, unit, dev, engine, fix, respond,
    pageRequests: () => readPageRequests(unit, mem),
    faults: () => readFaultRecords(unit, mem),
  };
}

describe('page requests through the IOMMU unit', () => {
  it('fault -> page requests (one group, LPIG last, private data) -> PAGE_RESPONSE SUCCESS -> the retry completes', () => {
    const b = priBench();
    const r = b.m.dma(b.dev, write(0x40_0000, 3 * PAGE, { privateData: [0x1234, 0x5678] }));
    expect(r).toMatchObject({ status: 'pending', settled: false, pageRequests: 3, bytesDone: 0 });
    expect(r.fault).toMatchObject({ iova: 0x40_0000, reasonName: 'PTE_NOT_PRESENT', recorded: false });
    const prs = b.pageRequests();
    expect(prs.map((p) => [p.address, p.lastInGroup])).toEqual([[0x40_0000, false], [0x40_1000, false], [0x40_2000, true]]);
    expect(new Set(prs.map((p) => p.prgi)).size).toBe(1);
    expect(prs[2]).toMatchObject({ rid: b.dev.rid, pasid: PASID, write: true, read: false, privateData: [0x1234, 0x5678] });
    expect(b.faults()).toEqual([]); // an ATS translation request with PRI writes no fault record
    expect(b.m.pending()).toEqual([r]);
    const frames = b.fix(0x40_0000, 3);
    b.respond(prs[2]!.prgi, PageResponseCode.Success, PASID, [0x1234, 0x5678]);
    expect(r).toMatchObject({ status: 'ok', settled: true, bytesDone: 3 * PAGE, retries: 1 });
    const back = new Uint8Array(PAGE);
    b.mem.read(frames[1]!, back);
    expect(back).toEqual(pattern(3 * PAGE).subarray(PAGE, 2 * PAGE));
    expect(b.engine.outstanding).toBe(0);
  });

  it('explains itself as it goes: the pending line, the final line, the route and the log (texts built when read)', () => {
    const b = priBench();
    const r = b.m.dma(b.dev, write(0x40_0000, 3 * PAGE));
    const [first] = b.pageRequests();
    const prgi = first!.prgi;
    expect(r.why).toBe(`waiting for the response to page request group ${prgi} (3 pages from 0x400000, PTE_NOT_PRESENT)`);
    expect(r.route).toMatchObject({ kind: 'upstream', rid: b.dev.rid, rootPort: null });
    expect(r.route.why).toBe('00:01.0 is on root bus 00: the root complex hands the request for 0x400000 to the IOMMU as 00:01.0');
    b.fix(0x40_0000, 3);
    b.respond(prgi, PageResponseCode.Success, PASID, [0xab, 0xcd]);
    expect(r.why).toBe(`${3 * PAGE} bytes written through the IOMMU`);
    expect(b.engine.log).toEqual([
      `00:01.0: page request group ${prgi} PASID ${PASID}: 3 page(s) from 0x400000 (PTE_NOT_PRESENT, write)`,
      `00:01.0: page request group ${prgi} answered SUCCESS with private data 0xab 0xcd`,
    ]);
  });

  it('the fault of a pending transfer is made when first read (then the same object), exactly as the IOMMU reported it', () => {
    const b = priBench();
    // Read while pending, then the INVALID response's copy.
    const r = b.m.dma(b.dev, write(0x40_0ff8, 16));
    const f = r.fault;
    expect(f).toEqual({ iova: 0x40_0ff8, reason: FaultReason.PteNotPresent, reasonName: 'PTE_NOT_PRESENT', stage: 1, faultGpa: 0, write: true, recorded: false, response: null });
    expect(r.fault).toBe(f);
    const prgi = b.pageRequests()[0]!.prgi;
    expect(r.why).toBe(`waiting for the response to page request group ${prgi} (2 pages from 0x400000, PTE_NOT_PRESENT)`);
    b.respond(prgi, PageResponseCode.Invalid);
    expect(r.status).toBe('aborted');
    expect(r.fault).toEqual({ ...f, response: PageResponseCode.Invalid });
    // Never read while pending: the response's copy is the same.
    const r2 = b.m.dma(b.dev, write(0x80_0004, 4, { op: 'read', data: undefined }));
    const [pr] = b.pageRequests();
    b.respond(pr!.prgi, PageResponseCode.Invalid);
    expect(r2.fault).toEqual({ iova: 0x80_0004, reason: FaultReason.PteNotPresent, reasonName: 'PTE_NOT_PRESENT', stage: 1, faultGpa: 0, write: false, recorded: false, response: PageResponseCode.Invalid });
    // A fault the transfer ends with is set as an object at once (here: after SUCCESS the page is still missing).
    const r3 = b.m.dma(b.dev, write(0xc0_0000, 8));
    b.respond(b.pageRequests()[0]!.prgi, PageResponseCode.Success);
    expect(r3).toMatchObject({ status: 'fault', fault: { iova: 0xc0_0000, reasonName: 'PTE_NOT_PRESENT', recorded: true, response: null } });
  });

  it('INVALID aborts the transfer', () => {
    const b = priBench();
    const r = b.m.dma(b.dev, write(0x40_0000, PAGE));
    const [pr] = b.pageRequests();
    b.respond(pr!.prgi, PageResponseCode.Invalid);
    expect(r).toMatchObject({ status: 'aborted', settled: true, bytesDone: 0 });
    expect(r.fault?.response).toBe(PageResponseCode.Invalid);
    expect(b.engine.priActive()).toBe(true);
  });

  it('FAILURE aborts it and stops PRI until reset: later faults are plain faults the IOMMU records', () => {
    const b = priBench();
    const r = b.m.dma(b.dev, write(0x40_0000, PAGE));
    b.respond(b.pageRequests()[0]!.prgi, PageResponseCode.Failure);
    expect(r).toMatchObject({ status: 'aborted' });
    expect(r.why).toContain('PRI is stopped until reset');
    expect(b.engine.priStopped).toBe(true);
    expect(priRegister(b.dev, PCI_PRI_STATUS) & PCI_PRI_STATUS_RF).toBe(PCI_PRI_STATUS_RF);
    const plain = b.m.dma(b.dev, write(0x50_0000, PAGE));
    expect(plain).toMatchObject({ status: 'fault', pageRequests: 0 });
    expect(b.faults()).toEqual([expect.objectContaining({ reason: FaultReason.PteNotPresent, pasid: PASID, iova: 0x50_0000 })]);
    // Software resets the interface (Reset with Enable clear), then enables it again.
    setPriControl(b.dev, PCI_PRI_CTRL_RESET);
    expect(b.m.dma(b.dev, write(0x50_0000, PAGE)).status).toBe('fault');
    expect(b.engine.priStopped).toBe(false);
    expect(priRegister(b.dev, PCI_PRI_CTRL) & PCI_PRI_CTRL_RESET).toBe(0);
    expect(priRegister(b.dev, PCI_PRI_STATUS) & PCI_PRI_STATUS_RF).toBe(0);
    setPriControl(b.dev, PCI_PRI_CTRL_ENABLE);
    expect(b.m.dma(b.dev, write(0x60_0000, PAGE)).status).toBe('pending');
  });

  it('a response matching no outstanding (PASID, PRGI) is spurious: counted, logged, not applied', () => {
    const b = priBench();
    const r = b.m.dma(b.dev, write(0x40_0000, PAGE));
    const prgi = b.pageRequests()[0]!.prgi;
    b.respond((prgi + 77) % 512, PageResponseCode.Success);
    b.respond(prgi, PageResponseCode.Invalid, 9); // right index, wrong PASID
    expect(r.status).toBe('pending');
    expect(b.engine.stats.spuriousResponses).toBe(2);
    expect(b.engine.log.at(-1)).toContain('spurious page response');
    expect(priRegister(b.dev, PCI_PRI_STATUS) & PCI_PRI_STATUS_UPRGI).toBe(PCI_PRI_STATUS_UPRGI);
    b.fix(0x40_0000);
    b.respond(prgi, PageResponseCode.Success);
    expect(r.status).toBe('ok');
  });

  it('a full page-request queue: the unit answers the group INVALID itself, so the transfer aborts at once', () => {
    const b = priBench({ pqLog2: 1 }); // two entries: full with one record
    const r = b.m.dma(b.dev, write(0x40_0000, 2 * PAGE));
    expect(r).toMatchObject({ status: 'aborted', pageRequests: 2, settled: true });
    expect(r.fault?.response).toBe(PageResponseCode.Invalid);
    expect(b.unit.readReg(Reg.PQCSR) & PQCSR_PQOF).toBe(PQCSR_PQOF);
    expect(b.unit.stats.pageRequestsDropped).toBe(1);
  });

  it('a context without PRE refuses page requests: the unit answers INVALID', () => {
    const b = priBench({ pre: false });
    const r = b.m.dma(b.dev, write(0x40_0000, PAGE));
    expect(r.status).toBe('aborted');
    expect(b.unit.stats.pageRequestsRejected).toBe(1);
  });

  it('a page that faults again after SUCCESS is unrecoverable: issued as a plain request, recorded, transfer faults', () => {
    const b = priBench();
    const r = b.m.dma(b.dev, write(0x40_0000, 2 * PAGE));
    b.fix(0x40_0000, 1); // only the first of the two pages
    b.respond(b.pageRequests()[1]!.prgi, PageResponseCode.Success);
    expect(r).toMatchObject({ status: 'fault', bytesDone: PAGE, retries: 1, pageRequests: 2 });
    expect(r.why).toContain('0x401000 faulted again (PTE_NOT_PRESENT) after its page request was answered SUCCESS: unrecoverable, recorded by the IOMMU');
    expect(b.faults()).toEqual([expect.objectContaining({ iova: 0x40_1000, pasid: PASID, reason: FaultReason.PteNotPresent })]);
  });

  it('faults a page request cannot cure are recorded (the ATS request is repeated as a plain one)', () => {
    const b = priBench();
    const r = b.m.dma(b.dev, write(0x40_0000, PAGE, { pasid: 9 })); // no PASID-table entry 9
    expect(r).toMatchObject({ status: 'fault', pageRequests: 0 });
    expect(r.fault).toMatchObject({ reasonName: 'PASID_NOT_PRESENT', recorded: true });
    expect(b.faults()).toHaveLength(1);
  });

  it('a function without PRI simply faults', () => {
    const b = priBench();
    const other = b.m.device('00:02.0')!;
    const pasid = other.config.findExtCapability(PCI_EXT_CAP_ID_PASID);
    other.config.write16(pasid + PCI_PASID_CTRL, PCI_PASID_CTRL_ENABLE);
    const r = b.m.dma(other, write(0x40_0000, PAGE));
    expect(r).toMatchObject({ status: 'fault', pageRequests: 0 });
    expect(b.faults()[0]).toMatchObject({ rid: other.rid, iova: 0x40_0000 });
  });

  it('a group asks for no more pages than the PRI allocation allows; the rest are asked for on the retry', () => {
    const b = priBench({ allocation: 2 });
    const r = b.m.dma(b.dev, write(0x40_0000, 4 * PAGE));
    const first = b.pageRequests();
    expect(first.map((p) => p.address)).toEqual([0x40_0000, 0x40_1000]);
    b.fix(0x40_0000, 2);
    b.respond(first[1]!.prgi, PageResponseCode.Success);
    expect(r).toMatchObject({ status: 'pending', bytesDone: 2 * PAGE, pageRequests: 4 });
    const second = b.pageRequests();
    expect(second.map((p) => p.address)).toEqual([0x40_2000, 0x40_3000]);
    expect(second[0]!.prgi).not.toBe(first[0]!.prgi);
    b.fix(0x40_2000, 2);
    b.respond(second[1]!.prgi, PageResponseCode.Success);
    expect(r).toMatchObject({ status: 'ok', retries: 2 });
  });

  it('without free credits a transfer stalls (nothing sent) and asks once a response frees them', () => {
    const b = priBench({ allocation: 1 });
    const a = b.m.dma(b.dev, write(0x40_0000, PAGE));
    const c = b.m.dma(b.dev, write(0x80_0000, PAGE));
    expect(a.pageRequests).toBe(1);
    expect(c).toMatchObject({ status: 'pending', pageRequests: 0 });
    expect(c.why).toBe('stalled: all 1 page requests the PRI allocation allows are outstanding');
    expect(b.engine.stats.stalls).toBe(1);
    b.fix(0x40_0000);
    b.respond(b.pageRequests()[0]!.prgi, PageResponseCode.Success);
    expect(a.status).toBe('ok');
    expect(c).toMatchObject({ status: 'pending', pageRequests: 1 });
    const [pc] = b.pageRequests();
    expect(pc?.address).toBe(0x80_0000);
    b.fix(0x80_0000);
    b.respond(pc!.prgi, PageResponseCode.Success);
    expect(c.status).toBe('ok');
  });

  it('an allocation of 0 lets no page request out', () => {
    const b = priBench({ allocation: 0 });
    const r = b.m.dma(b.dev, write(0x40_0000, PAGE));
    expect(r).toMatchObject({ status: 'pending', pageRequests: 0 });
    expect(r.why).toContain('Outstanding Page Request Allocation is 0');
  });
});

// ---- The engine alone, against a fake IOMMU ----

/** A fake IOMMU: identity-maps the pages in `present` (the whole transfer when absent), fails the rest PTE_NOT_PRESENT. */
class FakeIommu implements IommuPort {
  readonly present = new Set<number>();
  readonly requests: PageRequestMessage[] = [];
  onRequest: (msg: PageRequestMessage) => void = () => {};
  translate(req: TranslationRequest, out: TranslationResult): boolean {
    const page = req.iova - (req.iova % PAGE);
    const ok = this.present.has(page);
    Object.assign(out, { ok, pa: ok ? req.iova : 0, pageSize: ok ? PAGE : 0, perms: ok ? 3 : 0, reason: ok ? FaultReason.None : FaultReason.PteNotPresent, stage: ok ? 0 : 1, faultGpa: 0, untranslated: false, recorded: !ok && !req.ats });
    return ok;
  }
  pageRequest(msg: PageRequestMessage): void {
    this.requests.push(msg);
    this.onRequest(msg);
  }
}

function engineBench() {
  const booted = bootHost(host([rootPort('00:01.0', 1, 1), { ...dsa, address: '01:00.0', express: { type: 'endpoint' } }]));
  const dev = booted.host.topology.get('01:00.0')!;
  enablePri(dev, 16);
  const iommu = new FakeIommu();
  const memory = new PhysicalMemory({ size: 2 ** 30 });
  const engine = new DmaEngine(dev, { memory, iommu, rid: dev.rid });
  const route: Route & { kind: 'upstream' } = { kind: 'upstream', rid: dev.rid, domain: 0, rootPort: null, why: 'test' };
  const response = (msg: PageRequestMessage, code: PageResponseCode): PageResponseMessage => ({ rid: msg.rid, pasid: msg.pasid, prgi: msg.prgi, code, privateData: msg.privateData });
  return { dev, iommu, memory, engine, route, response };
}

describe('the DMA engine on its own', () => {
  it('page request group indices are 9 bits and wrap', () => {
    const { iommu, engine, route, response } = engineBench();
    const seen: number[] = [];
    for (let i = 0; i < 520; i++) {
      const r = engine.start(write(0x1000_0000, 8), route);
      const msg = iommu.requests.at(-1)!;
      seen.push(msg.prgi);
      engine.deliverResponse(response(msg, PageResponseCode.Invalid));
      expect(r.status).toBe('aborted');
    }
    expect(seen.slice(0, 3)).toEqual([0, 1, 2]);
    expect(seen.slice(510, 515)).toEqual([510, 511, 0, 1, 2]);
    expect(Math.max(...seen)).toBe(511);
  });

  it('never hands out an index still outstanding', () => {
    const { iommu, engine, route } = engineBench();
    engine.start(write(0x1000_0000, 8), route);
    const held = iommu.requests[0]!.prgi;
    const later = new Set<number>();
    for (let i = 0; i < 14; i++) {
      engine.start(write(0x2000_0000 + i * PAGE, 8), route);
      later.add(iommu.requests.at(-1)!.prgi);
    }
    expect(later.has(held)).toBe(false);
    expect(engine.outstanding).toBe(15);
  });

  it('a response delivered from inside pageRequest (an IOMMU answering at once) is handled after the send', () => {
    const { iommu, engine, route, response } = engineBench();
    iommu.onRequest = (msg) => {
      if (!msg.lastInGroup) return;
      iommu.present.add(0x1000_0000);
      iommu.present.add(0x1000_1000);
      engine.deliverResponse(response(msg, PageResponseCode.Success));
    };
    const r = engine.start(write(0x1000_0000, 2 * PAGE), route);
    expect(r).toMatchObject({ status: 'ok', retries: 1, pageRequests: 2, bytesDone: 2 * PAGE });
  });

  it('reset aborts everything in flight and clears the credits', () => {
    const settled: string[] = [];
    const { dev, iommu, memory, route } = engineBench();
    const engine = new DmaEngine(dev, { memory, iommu, rid: dev.rid, onSettled: (r) => settled.push(r.status) });
    const r = engine.start(write(0x1000_0000, PAGE), route);
    engine.reset();
    expect(r).toMatchObject({ status: 'aborted', why: 'function reset while the transfer was pending' });
    expect(engine.outstanding).toBe(0);
    expect(settled).toEqual(['aborted']);
    expect(engine.pending()).toEqual([]);
  });

  it('refuses malformed requests without throwing, even used directly', () => {
    const { engine, route } = engineBench();
    for (const req of [
      { op: 'read', address: 0, length: -1 }, { op: 'read', address: 0, length: 2 ** 40 }, { op: 'write', address: 0, length: 4 },
      { op: 'read', address: Number.NaN, length: 4 }, { op: 'read', address: 0, length: 4, pasid: 2 ** 21 },
    ] as DmaRequest[]) {
      expect(engine.start(req, route)).toMatchObject({ status: 'aborted', settled: true, data: null });
    }
  });

  it('without PRI enabled the fake records the fault and nothing is asked', () => {
    const { dev, iommu, engine, route } = engineBench();
    setPriControl(dev, 0);
    const r = engine.start(write(0x1000_0000, PAGE), route);
    expect(r).toMatchObject({ status: 'fault', pageRequests: 0 });
    expect(r.fault?.recorded).toBe(true);
    expect(iommu.requests).toHaveLength(0);
  });

  it('an SR-IOV VF uses its PF\'s PRI and PASID registers', () => {
    const spec = host([
      rootPort('00:01.0', 1, 1, 'full', { express: { type: 'root-port', ariForwarding: true } }),
      { ...dsa, address: '01:00.0', express: { type: 'endpoint' }, sriov: { totalVfs: 2, numVfs: 1, vfOffset: 8, vfStride: 1, vfDevice: 0x0b26 } },
    ]);
    const m = new Machine(bootHost(spec), { memory: new PhysicalMemory({ size: 2 ** 30 }), createIommu: () => new FakeIommu() });
    const pf = m.device('01:00.0')!;
    const vf = m.device('01:01.0')!;
    expect(m.engine(vf).priActive()).toBe(false);
    enablePri(pf, 4);
    expect(m.engine(vf).priActive()).toBe(true);
    expect(m.dma(vf, write(0x1000_0000, 8)).status).toBe('pending');
    expect(m.dma(vf, { op: 'read', address: 0, length: 4, pasid: NO_PASID }).status).toBe('pending');
  });
});

describe('queue readers with lent record buffers', () => {
  it('read the same records as with their own buffers, and records do not share the buffers', () => {
    const b = priBench();
    for (let i = 0; i < 3; i++) b.m.dma(b.dev, write(0x40_0000 + i * 0x10_0000, (i + 1) * PAGE, { privateData: [i, 0x5678 + i] }));
    const head = b.unit.readReg(Reg.PQH);
    const own = readPageRequests(b.unit, b.mem);
    expect(own.length).toBe(6);
    b.unit.writeReg(Reg.PQH, head);
    const scratch = newRecordScratch();
    // Two reads through one scratch: the first read's records must keep their values.
    const first = readPageRequests(b.unit, b.mem, 2, scratch);
    const rest = readPageRequests(b.unit, b.mem, Infinity, scratch);
    expect([...first, ...rest]).toEqual(own);
    expect(readPageRequests(b.unit, b.mem, Infinity, scratch)).toEqual([]);
  });
});
