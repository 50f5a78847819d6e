import { describe, expect, it } from 'vitest';
import type { PhysicalMemory } from '../../src/hw/memory/physical-memory.ts';
import { IoPageTable } from '../../src/hw/iommu/pgtable/builder.ts';
import { Reg } from '../../src/hw/iommu/registers.ts';
import { FaultReason, NO_PASID } from '../../src/hw/iommu/types.ts';
import { UNTRANSLATED_PAGE_SIZE } from '../../src/hw/iommu/unit.ts';
import { GiB, iommuBench, MiB, rid, type IommuBench } from './iommu-fixture.ts';

const DEV = rid(1, 0, 0);

/** OR bits into the (lo, hi) halves of word `word` of the entry at `pa`. */
function orWord(mem: PhysicalMemory, pa: number, word: number, lo: number, hi = 0): void {
  const e = new Uint32Array(2);
  mem.read64(pa + word * 8, e);
  mem.write64(pa + word * 8, ((e[0] as number) | lo) >>> 0, ((e[1] as number) | hi) >>> 0);
}

/** Replace bits `mask` of word `word`'s low half with `value`. */
function setField(mem: PhysicalMemory, pa: number, word: number, mask: number, value: number): void {
  const e = new Uint32Array(2);
  mem.read64(pa + word * 8, e);
  mem.write64(pa + word * 8, (((e[0] as number) & ~mask) | value) >>> 0, e[1] as number);
}

/** A device with a translating context and RID_PASID (0) on a second-stage table mapping 1 GiB → 4 GiB. */
function secondStageDevice(b: IommuBench, opts: { ssade?: boolean; sre?: boolean; did?: number } = {}) {
  const ctx = b.context(DEV);
  const pt = b.table('second');
  pt.map(GiB, 4 * GiB, 64 * 1024, { read: true, write: true });
  const pe = b.pasid(DEV, 0, { pgtt: 'second', did: opts.did ?? 1, ssRoot: pt.root, ssade: opts.ssade ?? false, sre: opts.sre ?? false });
  return { ctx, pt, pe };
}

describe('translation enable', () => {
  it('with TE clear every request passes untranslated', () => {
    const b = iommuBench();
    b.unit.writeReg(Reg.GCMD, 0);
    const r = b.translate(DEV, 0x1234_5678, { write: true, pasid: 5 });
    expect(r).toMatchObject({ ok: true, pa: 0x1234_5678, untranslated: true, pageSize: UNTRANSLATED_PAGE_SIZE, perms: 7, reason: 0, recorded: false });
    expect(b.unit.stats.walks).toBe(0);
  });
});

describe('device table: root and context entries', () => {
  it('root entry not present, context entry not present', () => {
    const b = iommuBench();
    expect(b.translate(DEV, 0)).toMatchObject({ ok: false, reason: FaultReason.RootNotPresent, stage: 0, recorded: true });
    b.context(rid(1, 2, 0)); // creates bus 1's context table, not DEV's entry
    expect(b.translate(DEV, 0).reason).toBe(FaultReason.ContextNotPresent);
  });

  it('a table pointer outside memory is a table read error', () => {
    const b = iommuBench();
    b.unit.writeReg(Reg.DTADDR, 2 ** 40);
    expect(b.translate(DEV, 0).reason).toBe(FaultReason.TableReadError);
    b.unit.writeReg(Reg.DTADDR, b.root);
    b.mem.write64(b.root + 8, 1, 0x1000); // bus 1 root entry → 2^44
    expect(b.translate(DEV, 0).reason).toBe(FaultReason.TableReadError);
  });

  it('MODE 0 blocks every request; MODE 1 passes it untranslated', () => {
    const b = iommuBench();
    b.context(DEV, { mode: 'blocked' });
    expect(b.translate(DEV, 0x1000)).toMatchObject({ ok: false, reason: FaultReason.Blocked, stage: 0 });
    const pt = rid(2, 0, 0);
    b.context(pt, { mode: 'pass-through' });
    expect(b.translate(pt, 0x5000_0123, { write: true })).toMatchObject({ ok: true, pa: 0x5000_0123, untranslated: true });
    expect(b.translate(pt, 0x5000_0123, { pasid: 9 })).toMatchObject({ ok: true, untranslated: true });
  });

  const invalidContexts: Array<[string, (b: IommuBench, at: number) => void, Partial<Parameters<typeof iommuBench>[0]>?]> = [
    ['word 0 bits 11:6 set', (b, at) => orWord(b.mem, at, 0, 1 << 6)],
    ['word 0 bit 63 set', (b, at) => orWord(b.mem, at, 0, 0, 0x8000_0000)],
    ['word 1 bits 23:20 set', (b, at) => orWord(b.mem, at, 1, 1 << 20)],
    ['word 1 bit 29 set', (b, at) => orWord(b.mem, at, 1, 1 << 29)],
    ['word 1 high half set', (b, at) => orWord(b.mem, at, 1, 0, 1)],
    ['word 2 not zero', (b, at) => orWord(b.mem, at, 2, 1)],
    ['word 3 not zero', (b, at) => orWord(b.mem, at, 3, 0, 0x10)],
    ...[3, 4, 5, 6, 7].map((mode): [string, (b: IommuBench, at: number) => void] => [`MODE ${mode}`, (b, at) => setField(b.mem, at, 0, 0xe, mode << 1)]),
    ['pass-through without caps.passThrough', (b, at) => setField(b.mem, at, 0, 0xe, 1 << 1), { caps: { passThrough: false } }],
    ['PRE without caps.pri', (b, at) => orWord(b.mem, at, 0, 1 << 4), { caps: { pri: false } }],
    ['PASIDE without PASID support', (b, at) => orWord(b.mem, at, 0, 1 << 5), { caps: { pasidWidth: 0 } }],
    ['RID_PASID beyond the PASID width', (b, at) => setField(b.mem, at, 1, 0xfffff, 1 << 8), { caps: { pasidWidth: 8 } }],
  ];
  it.each(invalidContexts)('context entry invalid: %s', (_what, corrupt, opts) => {
    const b = iommuBench(opts);
    const ctx = b.context(DEV, { pasidEnable: false });
    corrupt(b, ctx);
    const r = b.translate(DEV, 0);
    expect(r).toMatchObject({ ok: false, reason: FaultReason.ContextInvalid, stage: 0 });
    expect(b.unit.contextCacheSize()).toBe(0); // faulting entries are not cached
  });
});

describe('PASID rules', () => {
  it('a PASID needs PASIDE; requests without one use RID_PASID', () => {
    const b = iommuBench();
    b.context(DEV, { pasidEnable: false, ridPasid: 3 });
    const pt = b.table('second');
    pt.map(0, 8 * GiB, 4096, { read: true, write: true });
    b.pasid(DEV, 3, { pgtt: 'second', did: 7, ssRoot: pt.root });
    expect(b.translate(DEV, 0x10)).toMatchObject({ ok: true, pa: 8 * GiB + 0x10 });
    expect(b.translate(DEV, 0x10, { pasid: 3 })).toMatchObject({ ok: false, reason: FaultReason.PasidDisallowed });
  });

  it('PASIDs beyond the width or the directory are out of range', () => {
    const b = iommuBench({ caps: { pasidWidth: 10 } });
    b.context(DEV, { pdts: 2 }); // PASIDs 0..255
    expect(b.translate(DEV, 0, { pasid: 1024 }).reason).toBe(FaultReason.PasidOutOfRange);
    expect(b.translate(DEV, 0, { pasid: 256 }).reason).toBe(FaultReason.PasidOutOfRange);
    expect(b.translate(DEV, 0, { pasid: 255 }).reason).toBe(FaultReason.PasidDirNotPresent);
    for (const weird of [-5, 1.5, NaN, 2 ** 40]) expect(b.translate(DEV, 0, { pasid: weird }).reason).toBe(FaultReason.PasidOutOfRange);
    const other = rid(1, 1, 0);
    b.context(other, { pdts: 0, ridPasid: 64 });
    expect(b.translate(other, 0).reason).toBe(FaultReason.PasidOutOfRange);
  });

  it('directory entry and PASID entry must be present', () => {
    const b = iommuBench();
    b.context(DEV);
    expect(b.translate(DEV, 0, { pasid: 70 }).reason).toBe(FaultReason.PasidDirNotPresent);
    b.pasid(DEV, 65, { pgtt: 'pass-through', did: 1 });
    expect(b.translate(DEV, 0, { pasid: 70 }).reason).toBe(FaultReason.PasidNotPresent);
    expect(b.translate(DEV, 0x777, { pasid: 65 })).toMatchObject({ ok: true, untranslated: true, pa: 0x777 });
  });

  it('a PASID directory pointer outside memory is a table read error', () => {
    const b = iommuBench();
    b.context(DEV, { pasidDir: 2 ** 45 });
    expect(b.translate(DEV, 0).reason).toBe(FaultReason.TableReadError);
  });
});

describe('PASID entry validity', () => {
  const cases: Array<[string, (b: IommuBench, at: number) => void, Partial<Parameters<typeof iommuBench>[0]>?]> = [
    ['word 0 bit 10 set', (b, at) => orWord(b.mem, at, 0, 1 << 10)],
    ['word 0 bit 52 set', (b, at) => orWord(b.mem, at, 0, 0, 1 << 20)],
    ['word 1 bit 16 set', (b, at) => orWord(b.mem, at, 1, 1 << 16)],
    ['word 1 high half set', (b, at) => orWord(b.mem, at, 1, 0, 1)],
    ['word 2 low bits set', (b, at) => orWord(b.mem, at, 2, 0x800)],
    ['word 2 bit 63 set', (b, at) => orWord(b.mem, at, 2, 0, 0x8000_0000)],
    ['word 3 not zero', (b, at) => orWord(b.mem, at, 3, 4)],
    ...[0, 5, 6, 7].map((v): [string, (b: IommuBench, at: number) => void] => [`PGTT ${v}`, (b, at) => setField(b.mem, at, 0, 0xe, v << 1)]),
    ['first stage unsupported', (b, at) => setField(b.mem, at, 0, 0xe, 1 << 1), { caps: { firstStage: false, nesting: false } }],
    ['second stage unsupported', () => undefined, { caps: { secondStage: false, nesting: false } }],
    ['nested unsupported', (b, at) => setField(b.mem, at, 0, 0xe, 3 << 1), { caps: { nesting: false } }],
    ['pass-through unsupported', (b, at) => setField(b.mem, at, 0, 0xe, 4 << 1), { caps: { passThrough: false } }],
    ['SSADE without dirty tracking', (b, at) => orWord(b.mem, at, 0, 1 << 4), { caps: { dirtyTracking: false } }],
    ['SSLVL 2 (undefined)', (b, at) => setField(b.mem, at, 0, 0x60, 2 << 5)],
    ['5-level second stage when caps.fiveLevel is false', (b, at) => setField(b.mem, at, 0, 0x60, 1 << 5), { caps: { fiveLevel: false, inputAddressWidth: 48 } }],
    ['5-level first stage (nested) when caps.fiveLevel is false', (b, at) => setField(b.mem, at, 0, 0x1fe, (3 << 1) | (1 << 7)), { caps: { fiveLevel: false, inputAddressWidth: 48 } }],
  ];
  it.each(cases)('invalid: %s', (_what, corrupt, opts) => {
    const b = iommuBench(opts);
    const { pe } = secondStageDevice(b);
    corrupt(b, pe);
    expect(b.translate(DEV, GiB)).toMatchObject({ ok: false, reason: FaultReason.PasidEntryInvalid, stage: 0 });
    expect(b.unit.pasidCacheSize()).toBe(0);
  });

  it('fields of a stage the PGTT does not use are ignored', () => {
    const b = iommuBench({ caps: { fiveLevel: false, inputAddressWidth: 48 } });
    const { pe } = secondStageDevice(b);
    setField(b.mem, pe, 0, 0x180, 3 << 7); // FSLVL 3 on a second-stage-only entry
    expect(b.translate(DEV, GiB).ok).toBe(true);
  });
});

describe('translation types', () => {
  it('second stage: 4 KiB, 2 MiB and 1 GiB leaves, permissions and faults', () => {
    const b = iommuBench();
    b.context(DEV);
    const pt = b.table('second');
    pt.map(0x1000, 0x8_0000_0000, 0x1000, { read: true, write: false, exec: true });
    pt.map(4 * MiB, 16 * MiB, 2 * MiB, { read: true, write: true });
    pt.map(3 * GiB, 5 * GiB, GiB, { read: true, write: true });
    b.pasid(DEV, 0, { pgtt: 'second', did: 1, ssRoot: pt.root });
    expect(b.translate(DEV, 0x1abc)).toMatchObject({ ok: true, pa: 0x8_0000_0abc, pageSize: 0x1000, perms: 5, untranslated: false, stage: 0 });
    expect(b.translate(DEV, 4 * MiB + 0x12345)).toMatchObject({ ok: true, pa: 16 * MiB + 0x12345, pageSize: 2 * MiB, perms: 3 });
    expect(b.translate(DEV, 3 * GiB + 0x1234567)).toMatchObject({ ok: true, pa: 5 * GiB + 0x1234567, pageSize: GiB });
    expect(b.translate(DEV, 0x1abc, { write: true })).toMatchObject({ ok: false, reason: FaultReason.WriteDenied, stage: 2 });
    expect(b.translate(DEV, 4 * MiB, { exec: true })).toMatchObject({ ok: false, reason: FaultReason.ExecDenied, stage: 2 });
    expect(b.translate(DEV, 0x9000)).toMatchObject({ ok: false, reason: FaultReason.PteNotPresent, stage: 2 });
    expect(b.translate(DEV, 2 ** 48)).toMatchObject({ ok: false, reason: FaultReason.AddressBeyondWidth, stage: 2 });
    for (const bad of [-4096, 0.5, NaN, Infinity]) expect(b.translate(DEV, bad).reason).toBe(FaultReason.AddressBeyondWidth);
  });

  it('first stage: U/S, R/W, XD; A and D always updated', () => {
    const b = iommuBench();
    b.context(DEV);
    const pt = b.table('first');
    pt.map(0x10_0000, 0x20_0000, 0x1000, { read: true, write: true, user: true, exec: false });
    pt.map(0x11_0000, 0x21_0000, 0x1000, { read: true, write: false, user: false });
    b.pasid(DEV, 4, { pgtt: 'first', did: 2, fsRoot: pt.root, sre: true });
    const p = { pasid: 4 };
    expect(b.translate(DEV, 0x10_0010, p)).toMatchObject({ ok: true, pa: 0x20_0010, perms: 3 });
    expect(pt.lookup(0x10_0000)).toMatchObject({ accessed: true, dirty: false });
    expect(b.translate(DEV, 0x10_0010, { ...p, exec: true })).toMatchObject({ ok: false, reason: FaultReason.ExecDenied, stage: 1 });
    expect(b.translate(DEV, 0x11_0000, p)).toMatchObject({ ok: false, reason: FaultReason.PrivDenied, stage: 1 });
    expect(b.translate(DEV, 0x11_0000, { ...p, priv: true })).toMatchObject({ ok: true, pa: 0x21_0000, perms: 5 });
    expect(b.translate(DEV, 0x11_0000, { ...p, priv: true, write: true })).toMatchObject({ ok: false, reason: FaultReason.WriteDenied, stage: 1 });
    expect(b.translate(DEV, 0x10_0000, { ...p, write: true }).ok).toBe(true);
    expect(pt.lookup(0x10_0000)).toMatchObject({ dirty: true });
  });

  it('5-level tables translate addresses above 2^48', () => {
    const b = iommuBench();
    b.context(DEV);
    const pt = b.table('second', { levels: 5 });
    pt.map(2 ** 50, 0x3000, 0x1000, { read: true, write: true });
    b.pasid(DEV, 0, { pgtt: 'second', did: 1, ssRoot: pt.root, ssLevels: 5 });
    expect(b.translate(DEV, 2 ** 50 + 8)).toMatchObject({ ok: true, pa: 0x3008 });
    expect(b.translate(DEV, 2 ** 57).reason).toBe(FaultReason.AddressBeyondWidth);
  });

  it('nested: first-stage tables in guest memory translated through the second stage', () => {
    const b = iommuBench();
    b.context(DEV);
    // Guest memory: GPA [0, 64 MiB) at HPA [2 GiB, 2 GiB + 64 MiB).
    const s2 = b.table('second', { pageSize1G: false });
    s2.map(0, 2 * GiB, 64 * MiB, { read: true, write: true });
    // The guest's first-stage table, built by a guest allocator handing out GPAs 16 MiB upwards (written via HPA).
    let nextGpa = 16 * MiB;
    const hostView = { alloc: () => { nextGpa += 0x1000; b.mem.discardFrame((nextGpa - 0x1000 + 2 * GiB) / 4096); return nextGpa - 0x1000; }, free: () => undefined };
    const guestMem = {
      read64: (gpa: number, out: Uint32Array) => b.mem.read64(gpa + 2 * GiB, out),
      write64: (gpa: number, lo: number, hi: number) => b.mem.write64(gpa + 2 * GiB, lo, hi),
    } as unknown as PhysicalMemory;
    const s1 = new IoPageTable(guestMem, hostView, { format: 'first', levels: 4, pageSize2M: true });
    s1.map(0x7000_0000, 0x30_0000, 0x1000, { read: true, write: true });
    s1.map(0x7020_0000, 0x40_0000, 2 * MiB, { read: true, write: true });
    b.pasid(DEV, 0, { pgtt: 'nested', did: 3, ssRoot: s2.root, fsRoot: s1.root, ssade: true });
    expect(b.translate(DEV, 0x7000_0123, { write: true })).toMatchObject({ ok: true, pa: 2 * GiB + 0x30_0123, pageSize: 0x1000 });
    // A 2 MiB first-stage leaf over a 2 MiB second-stage leaf.
    expect(b.translate(DEV, 0x7020_0456)).toMatchObject({ ok: true, pa: 2 * GiB + 0x40_0456, pageSize: 2 * MiB });
    expect(s2.lookup(0x30_0000)).toMatchObject({ accessed: true, dirty: true }); // SSADE
    // A hole in the second stage under a first-stage table: a stage-2 fault with the GPA.
    s2.unmap(0x30_0000, 0x1000);
    b.submit({ op: 'iotlb-inval', scope: 'global' });
    const r = b.translate(DEV, 0x7000_0123);
    expect(r).toMatchObject({ ok: false, stage: 2, reason: FaultReason.PteNotPresent, faultGpa: 0x30_0123, recorded: true });
    expect(b.faults().at(-1)).toMatchObject({ reason: FaultReason.PteNotPresent, stage: 2, gpa: 0x30_0123, iova: 0x7000_0123 });
    // A first-stage hole: stage 1.
    expect(b.translate(DEV, 0x6000_0000)).toMatchObject({ ok: false, stage: 1, reason: FaultReason.PteNotPresent, faultGpa: 0 });
  });

  it('SRE: privileged requests fault PRIV_DENIED unless the PASID entry has SRE', () => {
    const b = iommuBench();
    secondStageDevice(b, { sre: false });
    expect(b.translate(DEV, GiB, { priv: true })).toMatchObject({ ok: false, reason: FaultReason.PrivDenied, stage: 0, recorded: true });
    expect(b.translate(DEV, GiB).ok).toBe(true);
    const other = rid(3, 0, 0);
    b.context(other);
    const pt = b.table('second');
    pt.map(0, 0x10_0000, 0x1000, { read: true, write: true });
    b.pasid(other, 0, { pgtt: 'second', did: 9, ssRoot: pt.root, sre: true });
    expect(b.translate(other, 0, { priv: true })).toMatchObject({ ok: true, pa: 0x10_0000 });
  });

  it('PGTT pass-through: untranslated', () => {
    const b = iommuBench();
    b.context(DEV);
    b.pasid(DEV, 0, { pgtt: 'pass-through', did: 4 });
    expect(b.translate(DEV, 0xabcd_e000, { write: true })).toMatchObject({ ok: true, untranslated: true, pa: 0xabcd_e000 });
  });
});

describe('faults', () => {
  it('are recorded unless the request is an ATS translation request', () => {
    const b = iommuBench();
    secondStageDevice(b);
    const r = b.translate(DEV, 0x5000, { ats: true, write: true });
    expect(r).toMatchObject({ ok: false, reason: FaultReason.PteNotPresent, recorded: false });
    expect(b.faults()).toEqual([]);
    b.translate(DEV, 0x5000, { write: true, exec: true });
    expect(b.faults()).toEqual([{ reason: FaultReason.PteNotPresent, stage: 2, write: true, exec: true, priv: false, rid: DEV, pasid: NO_PASID, iova: 0x5000, gpa: 0 }]);
    expect(b.unit.readReg(Reg.IPSR) & 1).toBe(1);
  });

  it('every field of the result is written, whatever came before', () => {
    const b = iommuBench();
    secondStageDevice(b);
    b.translate(DEV, GiB);
    const fault = b.translate(DEV, 0);
    expect(fault).toEqual({ ok: false, pa: 0, pageSize: 0, perms: 0, reason: FaultReason.PteNotPresent, stage: 2, faultGpa: 0, untranslated: false, recorded: true });
    const ok = b.translate(DEV, GiB + 5);
    expect(ok).toEqual({ ok: true, pa: 4 * GiB + 5, pageSize: 4096, perms: 3, reason: 0, stage: 0, faultGpa: 0, untranslated: false, recorded: false });
  });
});

describe('IOTLB', () => {
  it('counts hits, misses and walks', () => {
    const b = iommuBench();
    secondStageDevice(b);
    b.translate(DEV, GiB);
    b.translate(DEV, GiB + 8);
    b.translate(DEV, GiB + 0x1000);
    b.translate(DEV, GiB + 0x1008);
    expect(b.unit.stats).toMatchObject({ iotlbHits: 2, iotlbMisses: 2, walks: 2, iotlbEntries: 2 });
    expect(b.unit.iotlbSize()).toBe(2);
  });

  it('evicts the least recently used entry (2 entries)', () => {
    const b = iommuBench({ iotlbEntries: 2 });
    secondStageDevice(b);
    const A = GiB, B = GiB + 0x1000, C = GiB + 0x2000;
    b.translate(DEV, A);
    b.translate(DEV, B);
    b.translate(DEV, A); // A most recent
    expect(b.unit.stats.walks).toBe(2);
    b.translate(DEV, C); // evicts B
    expect(b.unit.cachedTranslations().map((t) => t.iova)).toEqual([C, A]);
    b.translate(DEV, A);
    expect(b.unit.stats.walks).toBe(3);
    b.translate(DEV, B);
    expect(b.unit.stats.walks).toBe(4);
    expect(b.unit.cachedTranslations().map((t) => t.iova)).toEqual([B, A]);
  });

  it('a write hitting a read-filled entry walks again to set D (SSADE); without SSADE it does not', () => {
    const b = iommuBench();
    const { pt } = secondStageDevice(b, { ssade: true });
    b.translate(DEV, GiB);
    expect(pt.lookup(GiB)).toMatchObject({ accessed: true, dirty: false });
    b.translate(DEV, GiB, { write: true });
    expect(b.unit.stats.walks).toBe(2);
    expect(pt.lookup(GiB)).toMatchObject({ dirty: true });
    b.translate(DEV, GiB + 4, { write: true });
    b.translate(DEV, GiB + 8);
    expect(b.unit.stats.walks).toBe(2);

    const c = iommuBench();
    const { pt: pt2 } = secondStageDevice(c, { ssade: false });
    c.translate(DEV, GiB);
    c.translate(DEV, GiB, { write: true });
    expect(c.unit.stats.walks).toBe(1);
    expect(pt2.lookup(GiB)).toMatchObject({ accessed: false, dirty: false });
  });

  it('first stage: a user request after a privileged fill walks again (U/S is checked)', () => {
    const b = iommuBench();
    b.context(DEV);
    const pt = b.table('first');
    pt.map(0, 0x9000, 0x1000, { read: true, write: true, user: false });
    b.pasid(DEV, 0, { pgtt: 'first', did: 5, fsRoot: pt.root, sre: true });
    expect(b.translate(DEV, 0, { priv: true }).ok).toBe(true);
    expect(b.translate(DEV, 0)).toMatchObject({ ok: false, reason: FaultReason.PrivDenied, stage: 1 });
    expect(b.unit.stats.walks).toBe(2);
  });

  it('stale translations: a remapped page keeps its old translation until the IOTLB is invalidated', () => {
    const b = iommuBench();
    const { pt } = secondStageDevice(b, { did: 6 });
    expect(b.translate(DEV, GiB + 0x10).pa).toBe(4 * GiB + 0x10);
    pt.unmap(GiB, 0x1000);
    pt.map(GiB, 7 * GiB, 0x1000, { read: true, write: true });
    expect(b.translate(DEV, GiB + 0x10).pa).toBe(4 * GiB + 0x10); // stale
    b.submit({ op: 'iotlb-inval', scope: 'domain', did: 5 }); // another domain: no effect
    expect(b.translate(DEV, GiB + 0x10).pa).toBe(4 * GiB + 0x10);
    b.submit({ op: 'iotlb-inval', scope: 'pasid', did: 6, pasid: 0 });
    expect(b.translate(DEV, GiB + 0x10).pa).toBe(7 * GiB + 0x10);
    // Unmapped without invalidation: still translates; after a range invalidation it faults.
    pt.unmap(GiB, 0x1000);
    expect(b.translate(DEV, GiB).ok).toBe(true);
    b.submit({ op: 'iotlb-inval', scope: 'range', did: 6, pasid: 0, address: GiB, pages: 1 });
    expect(b.translate(DEV, GiB).reason).toBe(FaultReason.PteNotPresent);
  });

  it('a range invalidation drops every page size overlapping it, and nothing outside it', () => {
    const b = iommuBench();
    b.context(DEV);
    const pt = b.table('second');
    pt.map(2 * MiB, 10 * MiB, 2 * MiB, { read: true, write: true });
    pt.map(GiB, 3 * GiB, GiB, { read: true, write: true });
    pt.map(0x1000, 0x5000, 0x1000, { read: true, write: true });
    b.pasid(DEV, 0, { pgtt: 'second', did: 1, ssRoot: pt.root });
    b.translate(DEV, 2 * MiB);
    b.translate(DEV, GiB);
    b.translate(DEV, 0x1000);
    expect(b.unit.iotlbSize()).toBe(3);
    b.submit({ op: 'iotlb-inval', scope: 'range', did: 1, pasid: 0, address: 3 * MiB + 0x5000, pages: 1 });
    expect(b.unit.cachedTranslations().map((t) => t.pageSize).sort((x, y) => x - y)).toEqual([0x1000, GiB]);
    b.submit({ op: 'iotlb-inval', scope: 'range', did: 1, pasid: 0, address: GiB + GiB - 0x1000, pages: 2 });
    expect(b.unit.cachedTranslations().map((t) => t.pageSize)).toEqual([0x1000]);
    b.submit({ op: 'iotlb-inval', scope: 'range', did: 1, pasid: 0, address: 0x2000, pages: 0x100 });
    expect(b.unit.iotlbSize()).toBe(1);
    b.submit({ op: 'iotlb-inval', scope: 'range', did: 1, pasid: 1, address: 0, pages: 0x100 }); // other PASID
    expect(b.unit.iotlbSize()).toBe(1);
    b.submit({ op: 'iotlb-inval', scope: 'range', did: 1, pasid: 0, address: 0, pages: 2 ** 40 });
    expect(b.unit.iotlbSize()).toBe(0);
  });
});

describe('context and PASID caches', () => {
  it('a context edited without CONTEXT_INVAL keeps its cached meaning', () => {
    const b = iommuBench();
    secondStageDevice(b);
    expect(b.translate(DEV, GiB).ok).toBe(true);
    b.context(DEV, { mode: 'blocked' });
    expect(b.translate(DEV, GiB).ok).toBe(true); // stale
    b.submit({ op: 'context-inval', rid: rid(1, 0, 1) }); // another function
    expect(b.translate(DEV, GiB).ok).toBe(true);
    b.submit({ op: 'context-inval', rid: DEV });
    expect(b.translate(DEV, GiB).reason).toBe(FaultReason.Blocked);
    b.context(DEV, { mode: 'pass-through' });
    b.submit({ op: 'context-inval', rid: null });
    expect(b.translate(DEV, GiB).untranslated).toBe(true);
  });

  it('a faulting context is not cached: writing a valid one works at once', () => {
    const b = iommuBench();
    expect(b.translate(DEV, GiB).reason).toBe(FaultReason.RootNotPresent);
    secondStageDevice(b);
    expect(b.translate(DEV, GiB).ok).toBe(true);
  });

  it('a PASID entry edited without PASID_CACHE_INVAL keeps its cached DID and table', () => {
    const b = iommuBench();
    const { pt } = secondStageDevice(b, { did: 1 });
    const pt2 = b.table('second');
    pt2.map(GiB, 9 * GiB, 0x1000, { read: true, write: true });
    expect(b.translate(DEV, GiB).pa).toBe(4 * GiB);
    b.pasid(DEV, 0, { pgtt: 'second', did: 2, ssRoot: pt2.root });
    b.submit({ op: 'iotlb-inval', scope: 'global' });
    expect(b.translate(DEV, GiB).pa).toBe(4 * GiB); // old entry, old table
    b.submit({ op: 'pasid-cache-inval', scope: 'domain', did: 2 }); // the new DID: the cached entry is tagged 1
    expect(b.translate(DEV, GiB).pa).toBe(4 * GiB);
    b.submit({ op: 'pasid-cache-inval', scope: 'pasid', did: 1, pasid: 0 });
    expect(b.translate(DEV, GiB).pa).toBe(9 * GiB);
    expect(pt.root).not.toBe(pt2.root);
  });

  it('caches evict the least recently used entry', () => {
    const b = iommuBench({ contextCacheEntries: 2, pasidCacheEntries: 2 });
    const devs = [rid(1, 0, 0), rid(1, 0, 1), rid(1, 0, 2)];
    for (const d of devs) {
      b.context(d);
      b.pasid(d, 0, { pgtt: 'pass-through', did: 1 });
      b.pasid(d, 1, { pgtt: 'pass-through', did: 1 });
    }
    const [d0, d1, d2] = devs as [number, number, number];
    b.translate(d0, 0);
    b.translate(d1, 0);
    b.translate(d0, 0);
    b.translate(d2, 0);
    expect(b.unit.cachedContexts()).toEqual([d2, d0]);
    b.translate(d0, 0, { pasid: 1 });
    expect(b.unit.cachedPasidEntries()).toEqual([[d0, 1], [d2, 0]]);
    expect(b.unit.stats).toMatchObject({ contextCacheEntries: 2, pasidCacheEntries: 2 });
  });
});
