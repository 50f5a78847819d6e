import { describe, expect, it } from 'vitest';
import { decodeCaps, encodeCaps, IOMMU_VERSION, IPSR_CQ, IPSR_FQ, IPSR_PQ, Reg } from '../../src/hw/iommu/registers.ts';
import { QCSR_EN, QCSR_ERR, QCSR_MF } from '../../src/hw/iommu/queues.ts';
import { DEFAULT_IOMMU_CAPS, type IommuCaps } from '../../src/hw/iommu/types.ts';
import { IommuUnit } from '../../src/hw/iommu/unit.ts';
import { newMemory } from '../support/hw-bench.ts';

const unitWith = (caps: IommuCaps = DEFAULT_IOMMU_CAPS): IommuUnit => new IommuUnit(newMemory(2 ** 30), caps);

describe('IOMMU registers', () => {
  it('VER reads 0x10 and is read-only', () => {
    const u = unitWith();
    expect(u.readReg(Reg.VER)).toBe(IOMMU_VERSION);
    u.writeReg(Reg.VER, 0x99);
    expect(u.readReg(Reg.VER)).toBe(0x10);
  });

  it('CAP encodes every capability at its documented bits', () => {
    const caps: IommuCaps = {
      inputAddressWidth: 48, physAddressWidth: 39, fiveLevel: false, pageSize2M: true, pageSize1G: false, pasidWidth: 16,
      pri: true, nesting: false, dirtyTracking: true, coherent: false, firstStage: true, secondStage: false, passThrough: true,
      snoopControl: false, deviceTlb: true,
    };
    const v = unitWith(caps).readReg(Reg.CAP);
    expect(v & 0xff).toBe(48);
    expect((v >>> 8) & 0xff).toBe(39);
    expect((v >>> 16) & 1).toBe(0); // fiveLevel
    expect((v >>> 17) & 1).toBe(1); // 2 MiB
    expect((v >>> 18) & 1).toBe(0); // 1 GiB
    expect((v >>> 19) & 0x1f).toBe(16); // pasidWidth
    expect([24, 25, 26, 27, 28, 29, 30, 31].map((b) => (v >>> b) & 1)).toEqual([1, 0, 1, 0, 1, 0, 1, 0]);
    expect(Math.floor(v / 2 ** 32) & 1).toBe(1); // deviceTlb
    expect(decodeCaps(v)).toEqual(caps);
    expect(decodeCaps(encodeCaps(DEFAULT_IOMMU_CAPS))).toEqual(DEFAULT_IOMMU_CAPS);
    const u = unitWith();
    u.writeReg(Reg.CAP, 0); // read-only
    expect(u.readReg(Reg.CAP)).toBe(encodeCaps(DEFAULT_IOMMU_CAPS));
  });

  it('GCMD is write-only; GSTS.TES follows GCMD.TE', () => {
    const u = unitWith();
    expect(u.readReg(Reg.GSTS)).toBe(0);
    u.writeReg(Reg.GCMD, 1);
    expect(u.readReg(Reg.GCMD)).toBe(0);
    expect(u.readReg(Reg.GSTS)).toBe(1);
    u.writeReg(Reg.GSTS, 0); // read-only
    expect(u.readReg(Reg.GSTS)).toBe(1);
    u.writeReg(Reg.GCMD, 0xfffe); // other bits ignored, TE clear
    expect(u.readReg(Reg.GSTS)).toBe(0);
  });

  it('DTADDR keeps bits 51:12 of what is written', () => {
    const u = unitWith();
    u.writeReg(Reg.DTADDR, 0x1234_5678_9fff);
    expect(u.readReg(Reg.DTADDR)).toBe(0x1234_5678_9000);
    u.writeReg(Reg.DTADDR, 2 ** 52 + 0x5000);
    expect(u.readReg(Reg.DTADDR)).toBe(0x5000);
  });

  it('queue base registers hold a 4 KiB-aligned base and log2(entries); indices wrap at the entry count', () => {
    const u = unitWith();
    u.writeReg(Reg.CQB, 0x8000_0000 + 0xfe0 + 3); // bits 11:5 ignored
    expect(u.readReg(Reg.CQB)).toBe(0x8000_0003);
    u.writeReg(Reg.CQT, 5);
    expect(u.readReg(Reg.CQT)).toBe(5);
    u.writeReg(Reg.CQT, 9); // 8 entries: modulo
    expect(u.readReg(Reg.CQT)).toBe(1);
    u.writeReg(Reg.CQH, 3); // read-only: the unit consumes
    expect(u.readReg(Reg.CQH)).toBe(0);
    u.writeReg(Reg.FQB, 0x9000_0000 + 2);
    u.writeReg(Reg.FQH, 2);
    expect(u.readReg(Reg.FQH)).toBe(2);
    u.writeReg(Reg.FQT, 3); // read-only: the unit produces
    expect(u.readReg(Reg.FQT)).toBe(0);
    u.writeReg(Reg.PQB, 0xa000_0000 + 4);
    u.writeReg(Reg.PQH, 20);
    expect(u.readReg(Reg.PQH)).toBe(4);
    u.writeReg(Reg.PQT, 1);
    expect(u.readReg(Reg.PQT)).toBe(0);
  });

  it('queue CSRs: enable bit, error bits cleared only by writing 1, enabling resets the queue', () => {
    const u = unitWith();
    const mem = newMemory(2 ** 20); // queue memory outside this small memory
    const small = new IommuUnit(mem, DEFAULT_IOMMU_CAPS);
    small.writeReg(Reg.CQB, 0x4000_0000 + 2);
    small.writeReg(Reg.CQCSR, QCSR_EN);
    small.writeReg(Reg.CQT, 1);
    small.processCommands();
    expect(small.readReg(Reg.CQCSR)).toBe(QCSR_EN | QCSR_MF);
    small.writeReg(Reg.CQCSR, QCSR_EN); // writing 0 to bit 9 does not clear it
    expect(small.readReg(Reg.CQCSR)).toBe(QCSR_EN | QCSR_MF);
    small.writeReg(Reg.CQCSR, QCSR_EN | QCSR_MF | QCSR_ERR); // write 1 to clear
    expect(small.readReg(Reg.CQCSR)).toBe(QCSR_EN);
    expect(u.readReg(Reg.FQCSR)).toBe(0);
    u.writeReg(Reg.FQB, 0x1000 + 4);
    u.writeReg(Reg.FQCSR, QCSR_EN);
    expect(u.readReg(Reg.FQCSR)).toBe(QCSR_EN);
    u.writeReg(Reg.FQH, 7);
    u.writeReg(Reg.FQCSR, 0);
    u.writeReg(Reg.FQCSR, QCSR_EN); // 0 -> 1: empty queue
    expect(u.readReg(Reg.FQH)).toBe(0);
  });

  it('IPSR is write-1-to-clear', () => {
    const mem = newMemory(2 ** 20);
    const u = new IommuUnit(mem, DEFAULT_IOMMU_CAPS);
    u.writeReg(Reg.CQB, 0x1000 + 2);
    u.writeReg(Reg.CQCSR, QCSR_EN);
    // A FENCE with the interrupt bit, written by hand at entry 0.
    mem.write64(0x1000, 0x105, 0);
    u.writeReg(Reg.CQT, 1);
    expect(u.processCommands()).toBe(1);
    expect(u.readReg(Reg.IPSR)).toBe(IPSR_CQ);
    u.writeReg(Reg.IPSR, IPSR_FQ | IPSR_PQ); // other bits: no effect
    expect(u.readReg(Reg.IPSR)).toBe(IPSR_CQ);
    u.writeReg(Reg.IPSR, IPSR_CQ);
    expect(u.readReg(Reg.IPSR)).toBe(0);
  });

  it('bad offsets read 0 and ignore writes; absurd values are ignored', () => {
    const u = unitWith();
    for (const off of [0x04, 0x90, 0x1000, -8, 0.5, NaN]) {
      u.writeReg(off, 123);
      expect(u.readReg(off)).toBe(0);
    }
    u.writeReg(Reg.DTADDR, 0x5000);
    for (const v of [-1, 0.5, NaN, Infinity, 2 ** 53, 2 ** 70]) {
      expect(() => u.writeReg(Reg.DTADDR, v)).not.toThrow();
      expect(u.readReg(Reg.DTADDR)).toBe(0x5000);
    }
    u.writeReg(Reg.CQB, 2 ** 53 - 1); // the largest value: base bits 51:12, log2 31
    expect(u.readReg(Reg.CQB)).toBe(2 ** 52 - 4096 + 31);
  });

  it('rejects capabilities no unit could have', () => {
    expect(() => unitWith({ ...DEFAULT_IOMMU_CAPS, pasidWidth: 21 })).toThrow(RangeError);
    expect(() => unitWith({ ...DEFAULT_IOMMU_CAPS, physAddressWidth: 60 })).toThrow(RangeError);
    expect(() => new IommuUnit(newMemory(2 ** 20), DEFAULT_IOMMU_CAPS, { iotlbEntries: 0 })).toThrow(RangeError);
  });
});
