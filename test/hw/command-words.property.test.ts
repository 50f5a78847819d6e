import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { decodeCommand, encodeCommand, Opcode } from '../../src/hw/iommu/commands.ts';
import { QCSR_EN, QCSR_ERR, QCSR_MF } from '../../src/hw/iommu/queues.ts';
import { IPSR_CQ, Reg } from '../../src/hw/iommu/registers.ts';
import { NO_PASID, PageResponseCode } from '../../src/hw/iommu/types.ts';
import { iommuBench } from './iommu-fixture.ts';

// The unit executes PAGE_RESPONSE and FENCE straight from the command's words (no Command object): what
// it does must be exactly what the decoded command says, and it must stop with CMD_ILL exactly where
// decodeCommand() refuses.

/** A scratch page for fence status writes (inside the bench's memory, away from its tables and queues). */
const STATUS = 0x3000_0000;

const word = fc.nat({ max: 0xffff_ffff });
/** Mostly few bits set, so that well-formed commands come up often. */
const sparse = fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 31 }).map((b) => 2 ** b), word);

const arbHalves: fc.Arbitrary<number[]> = fc.oneof(
  // Page responses: a valid one, then bits flipped at random.
  fc.record({
    rid: fc.integer({ min: 0, max: 0xffff }), pasid: fc.oneof(fc.constant(NO_PASID), fc.integer({ min: 0, max: 0xfffff })),
    prgi: fc.integer({ min: 0, max: 511 }), code: fc.constantFrom(PageResponseCode.Success, PageResponseCode.Invalid, PageResponseCode.Failure),
    privateData: fc.option(fc.tuple(word, word)), flip: fc.array(fc.tuple(fc.integer({ min: 0, max: 7 }), sparse), { maxLength: 2 }),
  }).map(({ flip, ...c }) => {
    const h = [...encodeCommand({ op: 'page-response', ...c })];
    for (const [i, bits] of flip) h[i] = ((h[i] as number) ^ bits) >>> 0;
    return h;
  }),
  // Fences: status in the scratch page, at 0 (none), or outside memory; bits flipped at random.
  fc.record({
    interrupt: fc.boolean(), at: fc.oneof(fc.integer({ min: 0, max: 1023 }).map((i) => STATUS + i * 4), fc.constant(0), fc.integer({ min: 2 ** 36, max: 2 ** 50 - 1 }).map((a) => a * 4)),
    data: word, flip: fc.array(fc.tuple(fc.integer({ min: 0, max: 7 }), sparse), { maxLength: 2 }),
  }).map(({ interrupt, at, data, flip }) => {
    const h = [...encodeCommand({ op: 'fence', interrupt, statusAddress: at, statusData: data })];
    for (const [i, bits] of flip) h[i] = ((h[i] as number) ^ bits) >>> 0;
    return h;
  }),
  // Anything with one of the two opcodes.
  fc.tuple(fc.constantFrom(Opcode.PageResponse, Opcode.Fence), fc.array(sparse, { minLength: 8, maxLength: 8 })).map(([op, h]) => {
    h[0] = (((h[0] as number) & ~0xff) | op) >>> 0;
    return h;
  }),
);

describe('PAGE_RESPONSE and FENCE executed from the words', () => {
  it('do exactly what the decoded command says, and stop with CMD_ILL exactly where decoding fails', () => {
    fc.assert(fc.property(arbHalves, (halves) => {
      const b = iommuBench();
      for (let w = 0; w < 4; w++) b.mem.write64(b.queues.command + w * 8, halves[2 * w] as number, halves[2 * w + 1] as number);
      b.unit.writeReg(Reg.CQT, 1);
      const before = b.mem.read32(STATUS + ((halves[2] as number) & 0xffc));
      const done = b.unit.processCommands();
      const cmd = decodeCommand(new Uint32Array(halves));
      const csr = b.unit.readReg(Reg.CQCSR);
      const cq = b.unit.readReg(Reg.IPSR) & IPSR_CQ;
      if (cmd === null) {
        expect([done, csr, b.unit.readReg(Reg.CQH), b.sent.length, cq]).toEqual([0, QCSR_EN | QCSR_ERR, 0, 0, 0]);
        expect(b.mem.read32(STATUS + ((halves[2] as number) & 0xffc))).toBe(before);
      } else if (cmd.op === 'page-response') {
        expect([done, csr, b.unit.readReg(Reg.CQH)]).toEqual([1, QCSR_EN, 1]);
        expect(b.sent).toEqual([{ rid: cmd.rid, pasid: cmd.pasid, prgi: cmd.prgi, code: cmd.code, privateData: cmd.privateData }]);
      } else if (cmd.op === 'fence') {
        expect(b.sent).toEqual([]);
        if (cmd.statusAddress !== 0 && !b.mem.contains(cmd.statusAddress, 4)) {
          // A status write outside memory: CQMF, the head stays on the fence, no interrupt.
          expect([done, csr, b.unit.readReg(Reg.CQH), cq]).toEqual([0, QCSR_EN | QCSR_MF, 0, 0]);
        } else {
          expect([done, csr, b.unit.readReg(Reg.CQH), cq]).toEqual([1, QCSR_EN, 1, cmd.interrupt ? IPSR_CQ : 0]);
          if (cmd.statusAddress !== 0) expect(b.mem.read32(cmd.statusAddress)).toBe(cmd.statusData);
        }
      } else {
        expect(done).toBe(1);
      }
    }), { numRuns: 400 });
  });
});

describe('IOTLB_INVAL executed from the words', () => {
  /** A unit whose IOTLB holds 4 KiB, 2 MiB and 1 GiB translations of two domains, PASIDs 0 and 5 of each. */
  function filled() {
    const b = iommuBench();
    const dev = 0x0100;
    b.context(dev);
    for (const [pasid, did] of [[0, 1], [5, 1], [6, 2]] as const) {
      const t = b.table('second');
      t.map(0x4000_0000, 0x1_0000_0000, 8 * 4096, { read: true, write: true });
      t.map(0x8000_0000, 0x1_4000_0000, 2 * 2 ** 21, { read: true, write: true });
      t.map(0x1_0000_0000, 0x2_0000_0000, 2 ** 30, { read: true, write: true });
      b.pasid(dev, pasid, { pgtt: 'second', did, ssRoot: t.root });
      for (const iova of [0x4000_0000, 0x4000_3000, 0x4000_7000, 0x8000_0000, 0x8020_0000, 0x1_0000_0000]) {
        expect(b.translate(dev, iova, { pasid: pasid === 0 ? NO_PASID : pasid }).ok).toBe(true);
      }
    }
    return b;
  }
  const key = (t: { did: number; pasid: number; iova: number }): string => `${t.did}/${t.pasid}/${t.iova}`;

  it('drops exactly the entries the decoded command covers, and stops with CMD_ILL where decoding fails', () => {
    const arb = fc.record({
      gran: fc.integer({ min: 0, max: 3 }), did: fc.integer({ min: 0, max: 3 }), pasid: fc.constantFrom(0, 5, 6, 7),
      page: fc.oneof(fc.constantFrom(0x4000_0, 0x4000_3, 0x8000_0, 0x801ff, 0x1_0000_0 + 5), fc.integer({ min: 0, max: 2 ** 21 })),
      pages: fc.oneof(fc.integer({ min: 0, max: 70 }), fc.integer({ min: 0, max: 2 ** 19 })),
      flip: fc.array(fc.tuple(fc.integer({ min: 0, max: 7 }), sparse), { maxLength: 1 }),
    });
    fc.assert(fc.property(arb, ({ gran, did, pasid, page, pages, flip }) => {
      const b = filled();
      const h = [0x03 | (gran << 8), 0, did, pasid, (page * 4096) % 2 ** 32, Math.floor((page * 4096) / 2 ** 32), pages, 0];
      for (const [i, bits] of flip) h[i] = ((h[i] as number) ^ bits) >>> 0;
      const before = b.unit.cachedTranslations();
      for (let w = 0; w < 4; w++) b.mem.write64(b.queues.command + w * 8, h[2 * w] as number, h[2 * w + 1] as number);
      b.unit.writeReg(Reg.CQT, 1);
      const done = b.unit.processCommands();
      const cmd = decodeCommand(new Uint32Array(h));
      const after = b.unit.cachedTranslations().map(key).sort();
      if (cmd === null) {
        expect([done, b.unit.readReg(Reg.CQCSR)]).toEqual([0, QCSR_EN | QCSR_ERR]);
        expect(after).toEqual(before.map(key).sort());
        return;
      }
      expect(done).toBe(1);
      if (cmd.op !== 'iotlb-inval') return;
      const kept = before.filter((t) => {
        if (cmd.scope === 'global') return false;
        if (t.did !== cmd.did) return true;
        if (cmd.scope === 'domain') return false;
        if (t.pasid !== cmd.pasid) return true;
        if (cmd.scope === 'pasid') return false;
        const start = cmd.address;
        const end = cmd.address + cmd.pages * 4096;
        return !(t.iova < end && t.iova + t.pageSize > start);
      });
      expect(after).toEqual(kept.map(key).sort());
    }), { numRuns: 300 });
  });
});
