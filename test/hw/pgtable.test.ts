import { describe, expect, it } from 'vitest';
import { IoPageTable } from '../../src/hw/iommu/pgtable/builder.ts';
import { SS_RSVD_LO } from '../../src/hw/iommu/pgtable/format.ts';
import { newWalkOut, PageWalker, type Access, type SecondStage } from '../../src/hw/iommu/pgtable/walk.ts';
import { DEFAULT_IOMMU_CAPS, FaultReason } from '../../src/hw/iommu/types.ts';
import { newMemory, tableAllocator } from '../support/hw-bench.ts';

const R: Access = { write: false, exec: false, priv: false };
const W: Access = { write: true, exec: false, priv: false };
const X: Access = { write: false, exec: true, priv: false };
const MiB = 2 ** 20;
const GiB = 2 ** 30;

function setup(format: 'first' | 'second', levels: 4 | 5 = 4) {
  const mem = newMemory();
  const alloc = tableAllocator(mem);
  const pt = new IoPageTable(mem, alloc, { format, levels, pageSize2M: true, pageSize1G: true });
  const walker = new PageWalker(mem, DEFAULT_IOMMU_CAPS);
  const out = newWalkOut();
  const walk = (iova: number, access: Access = R, ad = true): boolean =>
    format === 'second' ? walker.walkSecond(pt.root, levels, iova, access, ad, out) : walker.walkFirst(pt.root, levels, iova, access, out);
  return { mem, alloc, pt, walker, out, walk };
}

describe.each(['second', 'first'] as const)('%s-stage tables', (format) => {
  it.each([4, 5] as const)('translate 4 KiB, 2 MiB and 1 GiB leaves with %i levels', (levels) => {
    const { pt, out, walk } = setup(format, levels);
    expect(pt.map(0x1000, 0x20_0000_0000 + 0x5000, 0x1000, { read: true, write: true })).toBe(true);
    expect(pt.map(4 * MiB, 6 * MiB, 2 * MiB, { read: true, write: false })).toBe(true);
    expect(pt.map(3 * GiB, 5 * GiB, GiB, { read: true, write: true })).toBe(true);
    const high = levels === 5 ? 2 ** 50 : 2 ** 46;
    expect(pt.map(high, 0x3000, 0x1000, { read: true, write: true })).toBe(true);
    expect(walk(0x1234)).toBe(true);
    expect([out.pa, out.pageSize]).toEqual([0x20_0000_5234, 0x1000]);
    expect(walk(4 * MiB + 0x12345)).toBe(true);
    expect([out.pa, out.pageSize]).toEqual([6 * MiB + 0x12345, 2 * MiB]);
    expect(walk(3 * GiB + 0x123456)).toBe(true);
    expect([out.pa, out.pageSize]).toEqual([5 * GiB + 0x123456, GiB]);
    expect(walk(high + 8)).toBe(true);
    expect(out.pa).toBe(0x3008);
  });

  it('faults: not present, write to read-only, beyond the input width', () => {
    const { pt, out, walk } = setup(format);
    pt.map(0, 0x10000, 0x1000, { read: true, write: false });
    expect(walk(0x1000)).toBe(false);
    expect(out.reason).toBe(FaultReason.PteNotPresent);
    expect(walk(0, W)).toBe(false);
    expect(out.reason).toBe(FaultReason.WriteDenied);
    expect(walk(2 ** 48)).toBe(false);
    expect(out.reason).toBe(FaultReason.AddressBeyondWidth);
  });

  it('sets accessed on use and dirty on write', () => {
    const { pt, walk } = setup(format);
    pt.map(0, 0x10000, 0x1000, { read: true, write: true });
    expect(pt.lookup(0)).toMatchObject({ accessed: false, dirty: false });
    walk(0, R);
    expect(pt.lookup(0)).toMatchObject({ accessed: true, dirty: false });
    walk(0, W);
    expect(pt.lookup(0)).toMatchObject({ accessed: true, dirty: true });
    expect(pt.clearDirty(0)).toBe(true);
    expect(pt.lookup(0)).toMatchObject({ dirty: false });
  });

  it('reports a table pointer outside memory as a table read error', () => {
    const { mem, pt, out, walk } = setup(format);
    pt.map(0, 0x10000, 0x1000, { read: true, write: true });
    // Point the top-level entry at 2^45, beyond the 64 GiB of memory, keeping its flag bits.
    const e = new Uint32Array(2);
    mem.read64(pt.root, e);
    mem.write64(pt.root, ((e[0] as number) & 0xfff) >>> 0, 0x2000);
    expect(walk(0)).toBe(false);
    expect(out.reason).toBe(FaultReason.TableReadError);
  });

  it('unmap splits a large leaf and frees emptied tables', () => {
    const { pt, alloc, walk, out } = setup(format);
    pt.map(0, 0x4000_0000, 2 * MiB, { read: true, write: true });
    const tablesWithLeaf = alloc.used();
    expect(pt.unmap(0x1000, 0x1000)).toBe(0x1000);
    expect(walk(0x1000)).toBe(false);
    expect(walk(0x2000)).toBe(true);
    expect(out.pa).toBe(0x4000_2000);
    expect(pt.unmap(0, 2 * MiB)).toBe(2 * MiB - 0x1000);
    expect(alloc.used()).toBeLessThan(tablesWithLeaf + 1);
    expect(alloc.used()).toBe(1); // the root alone
  });
});

describe('second-stage specifics', () => {
  it('reserved bits fault; execute needs X; A/D only with SSADE', () => {
    const { mem, pt, out, walk } = setup('second');
    pt.map(0, 0x10000, 0x1000, { read: true, write: true });
    expect(walk(0, X)).toBe(false);
    expect(out.reason).toBe(FaultReason.ExecDenied);
    walk(0, W, false);
    expect(pt.lookup(0)).toMatchObject({ accessed: false, dirty: false });
    const e = new Uint32Array(2);
    mem.read64(pt.root, e);
    mem.write64(pt.root, ((e[0] as number) | SS_RSVD_LO) >>> 0, e[1] as number);
    expect(walk(0)).toBe(false);
    expect(out.reason).toBe(FaultReason.PteReserved);
  });
});

describe('first-stage specifics', () => {
  it('user requests need U/S on every level; execute honours XD', () => {
    const { pt, out, walk } = setup('first');
    pt.map(0, 0x10000, 0x1000, { read: true, write: true, user: false });
    pt.map(0x1000, 0x11000, 0x1000, { read: true, write: true, exec: false });
    expect(walk(0, R)).toBe(false);
    expect(out.reason).toBe(FaultReason.PrivDenied);
    expect(walk(0, { write: false, exec: false, priv: true })).toBe(true);
    expect(walk(0x1000, X)).toBe(false);
    expect(out.reason).toBe(FaultReason.ExecDenied);
  });

  it('nested: stage-1 tables and output are guest-physical, translated through stage 2', () => {
    const mem = newMemory();
    const hostAlloc = tableAllocator(mem, 0x1000_0000);
    const s2 = new IoPageTable(mem, hostAlloc, { format: 'second', levels: 4, pageSize2M: true });
    // Guest memory: GPA [0, 64 MiB) backed by HPA [2 GiB, 2 GiB + 64 MiB).
    s2.map(0, 2 * GiB, 64 * MiB, { read: true, write: true });
    // The guest builds its stage-1 table in its own memory, at GPAs from 16 MiB: write through the host view.
    let nextGpa = 16 * MiB;
    const guestAlloc = { alloc: () => { nextGpa += 0x1000; return nextGpa - 0x1000 + 2 * GiB; }, free: () => undefined };
    const s1host = new IoPageTable(mem, guestAlloc, { format: 'first', levels: 4 });
    // s1host wrote HPAs into its entries; rewrite them as the guest would see them (GPA = HPA - 2 GiB).
    s1host.map(0x7000_0000, 2 * GiB + 0x30_0000, 0x1000, { read: true, write: true });
    const toGuest = (table: number, level: number): void => {
      const e = new Uint32Array(2);
      for (let i = 0; i < 512; i++) {
        mem.read64(table + i * 8, e);
        if (((e[0] as number) & 1) === 0) continue;
        const pa = ((e[1] as number) & 0xfffff) * 2 ** 32 + (((e[0] as number) & 0xfffff000) >>> 0);
        const gpa = pa - 2 * GiB;
        mem.write64(table + i * 8, ((gpa % 2 ** 32) & 0xfffff000 | ((e[0] as number) & 0xfff)) >>> 0, Math.floor(gpa / 2 ** 32));
        if (level > 1) toGuest(pa, level - 1);
      }
    };
    toGuest(s1host.root, 4);
    const walker = new PageWalker(mem, DEFAULT_IOMMU_CAPS);
    const stage2: SecondStage = { translate: (gpa, access, o) => walker.walkSecond(s2.root, 4, gpa, access, true, o) };
    const out = newWalkOut();
    const ok = walker.walkFirst(s1host.root - 2 * GiB, 4, 0x7000_0123, W, out, stage2);
    expect({ ok, reason: out.reason, stage: out.stage, gpa: out.faultGpa }).toEqual({ ok: true, reason: 0, stage: 0, gpa: 0 });
    expect(out.pa).toBe(2 * GiB + 0x30_0123);
    // A stage-2 hole under the data page faults as stage 2, with the GPA.
    s2.unmap(0x30_0000, 0x1000);
    const nested = new PageWalker(mem, DEFAULT_IOMMU_CAPS);
    const stage2b: SecondStage = { translate: (gpa, access, o) => nested.walkSecond(s2.root, 4, gpa, access, true, o) };
    expect(nested.walkFirst(s1host.root - 2 * GiB, 4, 0x7000_0123, R, out, stage2b)).toBe(false);
    expect([out.stage, out.reason, out.faultGpa]).toEqual([2, FaultReason.PteNotPresent, 0x30_0123]);
  });
});
