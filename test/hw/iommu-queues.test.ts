import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { decodeCommand, encodeCommand, type Command } from '../../src/hw/iommu/commands.ts';
import { QCSR_EN, QCSR_ERR, QCSR_MF } from '../../src/hw/iommu/queues.ts';
import { decodeFaultRecord, decodePageRequestRecord, encodeFaultRecord, encodePageRequestRecord } from '../../src/hw/iommu/records.ts';
import { IPSR_CQ, IPSR_FQ, IPSR_PQ, Reg } from '../../src/hw/iommu/registers.ts';
import { postCommand, setupQueue } from '../../src/hw/iommu/setup.ts';
import { FaultReason, NO_PASID, PageResponseCode, type PageRequestMessage } from '../../src/hw/iommu/types.ts';
import { iommuBench, rid } from './iommu-fixture.ts';

const DEV = rid(1, 0, 0);

describe('fault queue', () => {
  it('records decode to what happened', () => {
    const b = iommuBench();
    b.context(DEV);
    const pt = b.table('second', { levels: 5 });
    b.pasid(DEV, 77, { pgtt: 'second', did: 3, ssRoot: pt.root, ssLevels: 5, sre: true });
    b.translate(DEV, 0x1234_5000, { pasid: 77, write: true, priv: true });
    b.translate(DEV, 2 ** 55 + 0x123, { pasid: 77, exec: true });
    const [a, c] = b.faults();
    expect(a).toEqual({ reason: FaultReason.PteNotPresent, stage: 2, write: true, exec: false, priv: true, rid: DEV, pasid: 77, iova: 0x1234_5000, gpa: 0 });
    // Above 2^53 the record keeps bits 63:12 of the IOVA.
    expect(c).toMatchObject({ exec: true, write: false, iova: 2 ** 55, pasid: 77 });
    expect(b.unit.readReg(Reg.FQT)).toBe(2);
    expect(b.unit.readReg(Reg.FQH)).toBe(2); // consumed
    expect(b.unit.readReg(Reg.IPSR) & IPSR_FQ).toBe(IPSR_FQ);
    expect(b.unit.stats.faultsRecorded).toBe(2);
  });

  it('record encoding round-trips', () => {
    const h = new Uint32Array(8);
    fc.assert(fc.property(
      fc.integer({ min: 1, max: 18 }), fc.constantFrom(0, 1, 2), fc.boolean(), fc.boolean(), fc.boolean(), fc.integer({ min: 0, max: 0xffff }),
      fc.oneof(fc.constant(NO_PASID), fc.integer({ min: 0, max: 0xfffff })), fc.integer({ min: 0, max: 2 ** 53 - 1 }), fc.integer({ min: 0, max: 2 ** 52 - 1 }),
      (reason, stage, write, exec, priv, r, pasid, iova, gpa) => {
        encodeFaultRecord(h, reason, stage, write, exec, priv, r, pasid, iova, gpa);
        expect(decodeFaultRecord(h)).toEqual({ reason, stage, write, exec, priv, rid: r, pasid, iova, gpa });
      }));
  });

  it('overflow: a tiny queue drops records and sets FQOF, and keeps dropping until FQOF is cleared', () => {
    const b = iommuBench({ fqLog2: 2 }); // 4 entries: 3 records fit
    b.context(DEV, { mode: 'blocked' });
    for (let i = 0; i < 3; i++) expect(b.translate(DEV, i * 0x1000).recorded).toBe(true);
    expect(b.unit.readReg(Reg.FQCSR)).toBe(QCSR_EN);
    expect(b.translate(DEV, 0x3000).recorded).toBe(false);
    expect(b.unit.readReg(Reg.FQCSR)).toBe(QCSR_EN | QCSR_ERR);
    expect(b.unit.readReg(Reg.FQT)).toBe(3);
    // Software drains the queue but has not cleared FQOF: still dropped.
    expect(b.faults().map((f) => f.iova)).toEqual([0, 0x1000, 0x2000]);
    b.unit.writeReg(Reg.IPSR, IPSR_FQ);
    expect(b.translate(DEV, 0x4000).recorded).toBe(false);
    expect(b.unit.readReg(Reg.IPSR) & IPSR_FQ).toBe(0); // no new interrupt while overflow stays set
    b.unit.writeReg(Reg.FQCSR, QCSR_EN | QCSR_ERR);
    expect(b.unit.readReg(Reg.FQCSR)).toBe(QCSR_EN);
    expect(b.translate(DEV, 0x5000).recorded).toBe(true);
    expect(b.faults().map((f) => f.iova)).toEqual([0x5000]);
    expect(b.unit.stats).toMatchObject({ faultsRecorded: 4, faultsDropped: 2 });
  });

  it('off: nothing recorded and no overflow; queue memory outside memory: FQMF', () => {
    const b = iommuBench();
    b.context(DEV, { mode: 'blocked' });
    b.unit.writeReg(Reg.FQCSR, 0);
    expect(b.translate(DEV, 0).recorded).toBe(false);
    expect(b.unit.readReg(Reg.FQCSR)).toBe(0);
    setupQueue(b.unit, 'fault', 2 ** 40, 4);
    expect(b.translate(DEV, 0).recorded).toBe(false);
    expect(b.unit.readReg(Reg.FQCSR)).toBe(QCSR_EN | QCSR_MF);
    expect(b.unit.readReg(Reg.IPSR) & IPSR_FQ).toBe(IPSR_FQ);
    expect(b.unit.stats.faultsDropped).toBe(2);
  });
});

describe('page requests', () => {
  const msg = (m: Partial<PageRequestMessage>): Partial<PageRequestMessage> & { rid: number } => ({ rid: DEV, ...m });

  it('are written to the page-request queue when the context has PRE', () => {
    const b = iommuBench();
    b.context(DEV, { pri: true });
    b.pageRequest(msg({ pasid: 5, address: 0x7000_1000, read: true, write: true, exec: false, priv: true, lastInGroup: false, prgi: 0x1ab, privateData: [0xdead_beef, 0x1234] }));
    b.pageRequest(msg({ address: 2 ** 50, read: false, write: false, exec: true, lastInGroup: true, prgi: 3 }));
    expect(b.pageRequests()).toEqual([
      { rid: DEV, pasid: 5, address: 0x7000_1000, read: true, write: true, exec: false, priv: true, lastInGroup: false, prgi: 0x1ab, privateData: [0xdead_beef, 0x1234] },
      { rid: DEV, pasid: NO_PASID, address: 2 ** 50, read: false, write: false, exec: true, priv: false, lastInGroup: true, prgi: 3, privateData: null },
    ]);
    expect(b.unit.readReg(Reg.IPSR) & IPSR_PQ).toBe(IPSR_PQ);
    expect(b.sent).toEqual([]);
    expect(b.unit.stats).toMatchObject({ pageRequests: 2, pageRequestsDropped: 0, pageRequestsRejected: 0 });
  });

  it('look the context up as a translation would: the most recently used order is the same with or without the translation memo', () => {
    // A translates (its context most recently used), B asks for a page (B's now), A translates again and
    // asks for a page: A's context must be the most recently used again each time, as after a lookup, so
    // that C's context evicts B's.
    const A = rid(1, 0, 0);
    const B = rid(2, 0, 0);
    const C = rid(3, 0, 0);
    const b = iommuBench({ contextCacheEntries: 2 });
    const pt = b.table('second');
    pt.map(0x1000, 0x1_0000_0000, 4096, { read: true, write: true });
    for (const r of [A, B, C]) {
      b.context(r, { pri: true });
      b.pasid(r, 0, { pgtt: 'second', did: 1, ssRoot: pt.root });
    }
    b.pageRequest({ rid: B, address: 0x1000, lastInGroup: false });
    b.translate(A, 0x1000);
    expect(b.unit.cachedContexts()).toEqual([A, B]);
    b.pageRequest({ rid: B, address: 0x2000, lastInGroup: false });
    expect(b.unit.cachedContexts()).toEqual([B, A]);
    expect(b.translate(A, 0x1000).ok).toBe(true);
    expect(b.unit.cachedContexts()).toEqual([A, B]);
    b.pageRequest({ rid: B, address: 0x3000, lastInGroup: false });
    b.pageRequest({ rid: A, address: 0x2000, lastInGroup: false });
    expect(b.unit.cachedContexts()).toEqual([A, B]);
    b.translate(C, 0x1000);
    expect(b.unit.cachedContexts()).toEqual([C, A]);
    expect(b.pageRequests()).toHaveLength(4);
  });

  it('without PRE (or without a context) the unit answers INVALID at once for the last page of a group', () => {
    const b = iommuBench();
    b.context(DEV, { pri: false });
    b.pageRequest(msg({ lastInGroup: false, prgi: 1 }));
    b.pageRequest(msg({ lastInGroup: true, prgi: 1, privateData: [1, 2] }));
    b.pageRequest({ rid: rid(9, 0, 0), pasid: NO_PASID, address: 0, read: true, write: false, exec: false, priv: false, lastInGroup: true, prgi: 2, privateData: null });
    expect(b.sent).toEqual([
      { rid: DEV, pasid: NO_PASID, prgi: 1, code: PageResponseCode.Invalid, privateData: [1, 2] },
      { rid: rid(9, 0, 0), pasid: NO_PASID, prgi: 2, code: PageResponseCode.Invalid, privateData: null },
    ]);
    expect(b.pageRequests()).toEqual([]);
    expect(b.unit.stats).toMatchObject({ pageRequests: 3, pageRequestsRejected: 3 });
  });

  it('a PASID needs PASIDE', () => {
    const b = iommuBench();
    b.context(DEV, { pri: true, pasidEnable: false });
    b.pageRequest(msg({ pasid: 3, prgi: 4 }));
    expect(b.sent).toMatchObject([{ prgi: 4, pasid: 3, code: PageResponseCode.Invalid }]);
  });

  it('overflow: dropped, PQOF set, INVALID auto-response for LPIG so the device never hangs', () => {
    const b = iommuBench({ pqLog2: 1 }); // 2 entries: 1 record fits
    b.context(DEV, { pri: true });
    b.pageRequest(msg({ address: 0x1000, lastInGroup: false, prgi: 7 }));
    expect(b.unit.readReg(Reg.PQCSR)).toBe(QCSR_EN);
    b.pageRequest(msg({ address: 0x2000, lastInGroup: false, prgi: 7 }));
    expect(b.unit.readReg(Reg.PQCSR)).toBe(QCSR_EN | QCSR_ERR);
    expect(b.sent).toEqual([]);
    b.pageRequest(msg({ address: 0x3000, lastInGroup: true, prgi: 7, pasid: 9, privateData: [5, 6] }));
    expect(b.sent).toEqual([{ rid: DEV, pasid: 9, prgi: 7, code: PageResponseCode.Invalid, privateData: [5, 6] }]);
    expect(b.pageRequests().map((r) => r.address)).toEqual([0x1000]);
    // Still dropped until PQOF is cleared.
    b.pageRequest(msg({ address: 0x4000, lastInGroup: true, prgi: 8 }));
    expect(b.sent).toHaveLength(2);
    b.unit.writeReg(Reg.PQCSR, QCSR_EN | QCSR_ERR);
    b.pageRequest(msg({ address: 0x5000, lastInGroup: true, prgi: 9 }));
    expect(b.sent).toHaveLength(2);
    expect(b.pageRequests().map((r) => r.address)).toEqual([0x5000]);
    expect(b.unit.stats).toMatchObject({ pageRequests: 5, pageRequestsDropped: 3 });
  });

  it('with the queue off the unit answers LPIG requests itself and sets PQOF', () => {
    const b = iommuBench();
    b.context(DEV, { pri: true });
    b.unit.writeReg(Reg.PQCSR, 0);
    b.pageRequest(msg({ lastInGroup: true, prgi: 1 }));
    expect(b.sent).toMatchObject([{ prgi: 1, code: PageResponseCode.Invalid }]);
    expect(b.unit.readReg(Reg.PQCSR)).toBe(QCSR_ERR);
    b.unit.writeReg(Reg.PQCSR, QCSR_EN); // enabling starts clean
    expect(b.unit.readReg(Reg.PQCSR)).toBe(QCSR_EN);
  });

  it('page requests on a unit without PRI or with translation off are answered INVALID', () => {
    const b = iommuBench();
    b.context(DEV, { pri: true });
    b.unit.writeReg(Reg.GCMD, 0);
    b.pageRequest(msg({ prgi: 1 }));
    expect(b.sent).toHaveLength(1);
    const c = iommuBench({ caps: { pri: false } });
    c.context(DEV);
    c.pageRequest(msg({ prgi: 2 }));
    expect(c.sent).toMatchObject([{ prgi: 2, code: PageResponseCode.Invalid }]);
  });

  it('record encoding round-trips', () => {
    const h = new Uint32Array(8);
    fc.assert(fc.property(
      fc.record({
        rid: fc.integer({ min: 0, max: 0xffff }), pasid: fc.oneof(fc.constant(NO_PASID), fc.integer({ min: 0, max: 0xfffff })),
        address: fc.integer({ min: 0, max: 2 ** 40 }).map((p) => p * 4096), read: fc.boolean(), write: fc.boolean(), exec: fc.boolean(),
        priv: fc.boolean(), lastInGroup: fc.boolean(), prgi: fc.integer({ min: 0, max: 511 }),
        privateData: fc.option(fc.tuple(fc.nat({ max: 0xffff_ffff }), fc.nat({ max: 0xffff_ffff }))),
      }),
      (m) => {
        encodePageRequestRecord(h, m);
        expect(decodePageRequestRecord(h)).toEqual(m);
      }));
  });
});

describe('commands', () => {
  it('PAGE_RESPONSE goes to the device', () => {
    const b = iommuBench();
    expect(b.submit(
      { op: 'page-response', rid: DEV, pasid: 12, prgi: 300, code: PageResponseCode.Success, privateData: [7, 8] },
      { op: 'page-response', rid: rid(2, 1, 0), pasid: NO_PASID, prgi: 0, code: PageResponseCode.Failure, privateData: null },
    )).toBe(2);
    expect(b.sent).toEqual([
      { rid: DEV, pasid: 12, prgi: 300, code: PageResponseCode.Success, privateData: [7, 8] },
      { rid: rid(2, 1, 0), pasid: NO_PASID, prgi: 0, code: PageResponseCode.Failure, privateData: null },
    ]);
    expect(b.unit.stats.commandsProcessed).toBe(2);
  });

  it('FENCE writes its status word and raises the completion interrupt when asked', () => {
    const b = iommuBench();
    const status = 0x2000_0000;
    b.submit({ op: 'fence', interrupt: false, statusAddress: status, statusData: 0xcafe });
    expect(b.mem.read32(status)).toBe(0xcafe);
    expect(b.unit.readReg(Reg.IPSR) & IPSR_CQ).toBe(0);
    b.submit({ op: 'fence', interrupt: true, statusAddress: 0, statusData: 0 });
    expect(b.unit.readReg(Reg.IPSR) & IPSR_CQ).toBe(IPSR_CQ);
  });

  it('FENCE whose status address is outside memory: CQMF, the head stays on it', () => {
    const b = iommuBench();
    expect(b.submit({ op: 'fence', interrupt: true, statusAddress: 2 ** 45, statusData: 1 })).toBe(0);
    expect(b.unit.readReg(Reg.CQCSR)).toBe(QCSR_EN | QCSR_MF);
    expect(b.unit.readReg(Reg.CQH)).toBe(0);
    expect(b.unit.readReg(Reg.IPSR) & IPSR_CQ).toBe(0);
  });

  it('an illegal command stops processing with CMD_ILL and the head on it; clearing resumes', () => {
    const b = iommuBench();
    b.submit({ op: 'context-inval', rid: null });
    expect(b.unit.readReg(Reg.CQH)).toBe(1);
    postCommand(b.unit, b.mem, { op: 'fence', interrupt: false, statusAddress: 0x2000_0000, statusData: 1 });
    // A command with an unknown opcode, written by hand at the tail.
    const tail = b.unit.readReg(Reg.CQT);
    b.mem.write64(b.queues.command + tail * 32, 0x06, 0);
    b.unit.writeReg(Reg.CQT, tail + 1);
    postCommand(b.unit, b.mem, { op: 'fence', interrupt: false, statusAddress: 0x2000_0000, statusData: 2 });
    expect(b.unit.processCommands()).toBe(1);
    expect(b.unit.readReg(Reg.CQCSR)).toBe(QCSR_EN | QCSR_ERR);
    expect(b.unit.readReg(Reg.CQH)).toBe(tail);
    expect(b.mem.read32(0x2000_0000)).toBe(1);
    expect(b.unit.processCommands()).toBe(0); // stopped until cleared
    // Software fixes the command (a global context invalidation) and clears CMD_ILL.
    b.mem.write64(b.queues.command + tail * 32, 0x01, 0);
    b.unit.writeReg(Reg.CQCSR, QCSR_EN | QCSR_ERR);
    expect(b.unit.processCommands()).toBe(2);
    expect(b.mem.read32(0x2000_0000)).toBe(2);
    expect(b.unit.stats.commandsProcessed).toBe(4);
  });

  const illegal: Array<[string, number[]]> = [
    ['opcode 0', [0, 0, 0, 0, 0, 0, 0, 0]],
    ['opcode 0xff', [0xff, 0, 0, 0, 0, 0, 0, 0]],
    ['CONTEXT_INVAL granularity 2', [0x201, 0, 0, 0, 0, 0, 0, 0]],
    ['CONTEXT_INVAL word 0 bit 10', [0x401, 0, 0, 0, 0, 0, 0, 0]],
    ['CONTEXT_INVAL word 1 set', [0x101, 0, 1, 0, 0, 0, 0, 0]],
    ['PASID_CACHE_INVAL granularity 3', [0x302, 0, 0, 0, 0, 0, 0, 0]],
    ['PASID_CACHE_INVAL word 1 bit 16', [0x102, 0, 0x10000, 0, 0, 0, 0, 0]],
    ['PASID_CACHE_INVAL word 2 set', [0x002, 0, 0, 0, 8, 0, 0, 0]],
    ['IOTLB_INVAL word 0 bit 16', [0x10003, 0, 0, 0, 0, 0, 0, 0]],
    ['IOTLB_INVAL PASID bits above 19', [0x203, 0, 0, 0x100000, 0, 0, 0, 0]],
    ['IOTLB_INVAL unaligned range address', [0x303, 0, 0, 0, 0x800, 0, 1, 0]],
    ['PAGE_RESPONSE code 2', [0x204, 0, 0, 0, 0, 0, 0, 0]],
    ['PAGE_RESPONSE bit 14', [0x4004, 0, 0, 0, 0, 0, 0, 0]],
    ['PAGE_RESPONSE PRGI bit 9', [0x004, 0, 0x200, 0, 0, 0, 0, 0]],
    ['PAGE_RESPONSE word 3 set', [0x004, 0, 0, 0, 0, 0, 0, 1]],
    ['FENCE bit 9', [0x205, 0, 0, 0, 0, 0, 0, 0]],
    ['FENCE unaligned status address', [0x005, 0, 0x2000_0002, 0, 0, 0, 0, 0]],
    ['FENCE status address bit 52', [0x005, 0, 0, 0x100000, 0, 0, 0, 0]],
    ['FENCE word 3 set', [0x005, 0, 0, 0, 0, 0, 0x10, 0]],
  ];
  it.each(illegal)('illegal: %s', (_what, halves) => {
    const b = iommuBench();
    for (let w = 0; w < 4; w++) b.mem.write64(b.queues.command + w * 8, halves[2 * w] as number, halves[2 * w + 1] as number);
    b.unit.writeReg(Reg.CQT, 1);
    expect(b.unit.processCommands()).toBe(0);
    expect(b.unit.readReg(Reg.CQCSR)).toBe(QCSR_EN | QCSR_ERR);
    expect(b.unit.readReg(Reg.CQH)).toBe(0);
    expect(decodeCommand(new Uint32Array(halves))).toBeNull();
  });

  it('queue memory outside memory: CQMF', () => {
    const b = iommuBench();
    setupQueue(b.unit, 'command', 2 ** 44, 3);
    b.unit.writeReg(Reg.CQT, 2);
    expect(b.unit.processCommands()).toBe(0);
    expect(b.unit.readReg(Reg.CQCSR)).toBe(QCSR_EN | QCSR_MF);
    expect(b.unit.readReg(Reg.CQH)).toBe(0);
  });

  it('nothing is processed while the queue is off', () => {
    const b = iommuBench();
    postCommand(b.unit, b.mem, { op: 'fence', interrupt: true, statusAddress: 0, statusData: 0 });
    b.unit.writeReg(Reg.CQCSR, 0);
    expect(b.unit.processCommands()).toBe(0);
  });

  it('the queue wraps around', () => {
    const b = iommuBench({ cqLog2: 2 }); // 3 commands fit
    for (let round = 0; round < 5; round++) {
      for (let i = 0; i < 3; i++) expect(postCommand(b.unit, b.mem, { op: 'fence', interrupt: false, statusAddress: 0x2000_0000, statusData: round * 3 + i })).toBe(true);
      expect(postCommand(b.unit, b.mem, { op: 'context-inval', rid: null })).toBe(false); // full
      expect(b.unit.processCommands()).toBe(3);
      expect(b.mem.read32(0x2000_0000)).toBe(round * 3 + 2);
    }
  });

  it('a device that calls back into the unit from a page response does not re-enter processing', () => {
    const b = iommuBench();
    let nested = -1;
    b.unit.setDeviceMessageSink(() => { nested = b.unit.processCommands(); });
    b.submit({ op: 'page-response', rid: DEV, pasid: NO_PASID, prgi: 1, code: PageResponseCode.Success, privateData: null }, { op: 'context-inval', rid: null });
    expect(nested).toBe(0);
    expect(b.unit.stats.commandsProcessed).toBe(2);
  });

  const arbCommand: fc.Arbitrary<Command> = fc.oneof(
    fc.record({ op: fc.constant('context-inval' as const), rid: fc.option(fc.integer({ min: 0, max: 0xffff })) }),
    ...(['pasid-cache-inval', 'iotlb-inval'] as const).flatMap((op) => [
      fc.constant({ op, scope: 'global' as const }),
      fc.record({ op: fc.constant(op), scope: fc.constant('domain' as const), did: fc.integer({ min: 0, max: 0xffff }) }),
      fc.record({ op: fc.constant(op), scope: fc.constant('pasid' as const), did: fc.integer({ min: 0, max: 0xffff }), pasid: fc.integer({ min: 0, max: 0xfffff }) }),
    ]),
    fc.record({
      op: fc.constant('iotlb-inval' as const), scope: fc.constant('range' as const), did: fc.integer({ min: 0, max: 0xffff }),
      pasid: fc.integer({ min: 0, max: 0xfffff }), address: fc.integer({ min: 0, max: 2 ** 40 }).map((p) => p * 4096), pages: fc.nat(),
    }),
    fc.record({
      op: fc.constant('page-response' as const), rid: fc.integer({ min: 0, max: 0xffff }), pasid: fc.oneof(fc.constant(NO_PASID), fc.integer({ min: 0, max: 0xfffff })),
      prgi: fc.integer({ min: 0, max: 511 }), code: fc.constantFrom(PageResponseCode.Success, PageResponseCode.Invalid, PageResponseCode.Failure),
      privateData: fc.option(fc.tuple(fc.nat({ max: 0xffff_ffff }), fc.nat({ max: 0xffff_ffff }))),
    }),
    fc.record({ op: fc.constant('fence' as const), interrupt: fc.boolean(), statusAddress: fc.integer({ min: 0, max: 2 ** 50 - 1 }).map((a) => a * 4), statusData: fc.nat({ max: 0xffff_ffff }) }),
  );

  it('command encoding round-trips', () => {
    fc.assert(fc.property(arbCommand, (cmd) => { expect(decodeCommand(encodeCommand(cmd))).toEqual(cmd); }), { numRuns: 500 });
  });

  it('encoding refuses fields that do not fit', () => {
    expect(() => encodeCommand({ op: 'context-inval', rid: 0x10000 })).toThrow(RangeError);
    expect(() => encodeCommand({ op: 'iotlb-inval', scope: 'range', did: 1, pasid: 0, address: 0x800, pages: 1 })).toThrow(RangeError);
    expect(() => encodeCommand({ op: 'fence', interrupt: false, statusAddress: 2, statusData: 0 })).toThrow(RangeError);
  });
});
