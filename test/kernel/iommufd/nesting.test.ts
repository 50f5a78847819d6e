// Nested translation end to end (uAPI reference §11, §6.13): a VMM process backs guest RAM with its own
// memory, maps it at IOVA = GPA into a NEST_PARENT HWPT, the guest writes an x86-64 first-stage table into
// that RAM, and a device attached to the nested HWPT DMAs at guest IOVAs. The oracle is the process's own
// page tables (mm.lookupPfn) and the guest table as written, never the IOMMU's state.

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { FaultReason } from '../../../src/hw/iommu/types.ts';
import { NestedDomain } from '../../../src/kernel/iommu/nested-domain.ts';
import type { IommufdCtx } from '../../../src/kernel/iommufd/context.ts';
import { iommufdDeviceAttach, iommufdDeviceBind, iommufdDeviceReplace, iommufdDeviceUnbind, type IommufdDevice } from '../../../src/kernel/iommufd/device.ts';
import type { HwptNested } from '../../../src/kernel/iommufd/hwpt-nested.ts';
import { MAP_ANONYMOUS, MAP_POPULATE, MAP_PRIVATE } from '../../../src/kernel/mm/mman.ts';
import * as api from '../../../src/uapi/api.ts';
import { GuestPageTable } from '../../../src/uapi/guest-pagetable.ts';
import { IOMMU_HWPT_ALLOC_NEST_PARENT, IOMMU_HWPT_ALLOC_PASID, IOMMUFD_PAGE_RESP_SUCCESS } from '../../../src/uapi/iommufd-consts.ts';
import { enablePriPasid } from '../iommu/helpers.ts';
import { errno, PAGE, RW, value, world, type World } from '../../uapi/dispatch-helpers.ts';

const NVME = '39:00.0';
const DSA = '6a:01.0';
const GPA_BASE = 0x1000_0000;
/** Guest RAM: data pages, then the pages the guest's table lives in. */
const DATA_PAGES = 16;
const POOL_PAGES = 16;

interface Vm {
  bdf: string; w: World; a: { proc: ReturnType<World['table']['spawn']>; fd: number }; ctx: IommufdCtx;
  idev: IommufdDevice; devId: number; ioasId: number; parentId: number; va: number; gpt: GuestPageTable;
  dataGpa: (i: number) => number;
  dataVa: (i: number) => number;
}

/**
 * The VMM: guest RAM as one buffer, its data pages mapped at IOVA = GPA page by page with `perm(i)`
 * (null: not mapped, R, RW) and the table pool as one RW area; the guest's table in the pool.
 */
function vm(perm: (i: number) => 'r' | 'rw' | null = () => 'rw', w: World = world(), bdf = NVME): Vm {
  const memlock = 4096 * PAGE;
  const proc = w.table.spawn({ uid: 1000, rlimits: { RLIMIT_MEMLOCK: { soft: memlock, hard: memlock } } });
  const fd = value(api.openIommufd({ proc, core: w.core }));
  const a = { proc, fd };
  const file = value(proc.fds.get(fd));
  const ctx = file.file as IommufdCtx;
  const idev = value(iommufdDeviceBind(ctx, w.dev(bdf), { file }));
  const ioasId = value(api.ioasAlloc(a));
  const parentId = value(api.hwptAlloc({ ...a, devId: idev.id, ptId: ioasId, flags: IOMMU_HWPT_ALLOC_NEST_PARENT }));
  const pages = DATA_PAGES + POOL_PAGES;
  const va = value(proc.mmap(0, pages * PAGE, RW, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0));
  for (let i = 0; i < DATA_PAGES; i++) {
    const p = perm(i);
    if (p === null) continue;
    value(api.ioasMap({ ...a, ioasId, userVa: va + i * PAGE, length: PAGE, iova: GPA_BASE + i * PAGE, readable: true, writeable: p === 'rw' }));
  }
  value(api.ioasMap({ ...a, ioasId, userVa: va + DATA_PAGES * PAGE, length: POOL_PAGES * PAGE, iova: GPA_BASE + DATA_PAGES * PAGE }));
  const gpt = new GuestPageTable({ proc, va, gpa: GPA_BASE, size: pages * PAGE }, { pool: { gpa: GPA_BASE + DATA_PAGES * PAGE, pages: POOL_PAGES } });
  return {
    bdf, w, a, ctx, idev, devId: idev.id, ioasId, parentId, va, gpt,
    dataGpa: (i) => GPA_BASE + i * PAGE,
    dataVa: (i) => va + i * PAGE,
  };
}

/** Allocate the nested HWPT on the guest's table and attach the device's RID to it. */
function attachNested(v: Vm): number {
  const id = value(api.hwptAllocNested({ ...v.a, devId: v.devId, parentId: v.parentId, s1: { pgtblAddr: v.gpt.root, addrWidth: 48 } }));
  value(iommufdDeviceAttach(v.idev, id));
  return id;
}

function dmaWrite(v: Vm, iova: number, bytes: Uint8Array, pasid?: number) {
  return v.w.machine.dma(v.w.dev(v.bdf), { op: 'write', address: iova, length: bytes.length, data: bytes, ...(pasid === undefined ? {} : { pasid }) });
}

function dmaRead(v: Vm, iova: number, length: number) {
  return v.w.machine.dma(v.w.dev(v.bdf), { op: 'read', address: iova, length });
}

const userBytes = (v: Vm, va: number, n: number): Uint8Array => {
  const b = new Uint8Array(n);
  value(v.a.proc.mm.read(va, b));
  return b;
};

describe('nested translation through a guest stage-1 table', () => {
  it('a DMA at a guest IOVA lands at the host page backing the GPA the guest mapped', () => {
    const v = vm();
    value(v.gpt.map(0x40_0000, v.dataGpa(3), PAGE, { write: true }));
    attachNested(v);
    const r = dmaWrite(v, 0x40_0010, Uint8Array.of(1, 2, 3, 4));
    expect(r.status).toBe('ok');
    expect([...userBytes(v, v.dataVa(3) + 0x10, 4)]).toEqual([1, 2, 3, 4]);
    // The same host frame, seen from physical memory: the process's PFN for that guest page.
    const pa = v.a.proc.mm.lookupPfn(v.dataVa(3)) * PAGE + 0x10;
    expect(v.w.memory.read32(pa)).toBe(0x0403_0201);
    // A guest IOVA the guest did not map faults in stage 1.
    const miss = dmaRead(v, 0x50_0000, 8);
    expect(miss.status).toBe('fault');
    expect(miss.fault?.stage).toBe(1);
  });

  it('a guest PTE change is not seen until HWPT_INVALIDATE; then the new page is used', () => {
    const v = vm();
    value(v.gpt.map(0x40_0000, v.dataGpa(1), PAGE, { write: true }));
    const nested = attachNested(v);
    expect(dmaWrite(v, 0x40_0000, Uint8Array.of(0xaa)).status).toBe('ok');
    // The guest remaps the IOVA to another page without telling the IOMMU.
    expect(v.gpt.unmap(0x40_0000, PAGE)).toBe(PAGE);
    value(v.gpt.map(0x40_0000, v.dataGpa(2), PAGE, { write: true }));
    expect(dmaWrite(v, 0x40_0000, Uint8Array.of(0xbb)).status).toBe('ok');
    expect(userBytes(v, v.dataVa(1), 1)[0]).toBe(0xbb);
    expect(userBytes(v, v.dataVa(2), 1)[0]).toBe(0);
    // An invalidation of another range leaves it stale; of this one, the new translation is used.
    expect(api.hwptInvalidate({ ...v.a, hwptId: nested, entries: [{ addr: 0x80_0000, npages: 1 }] }).handled).toBe(1);
    expect(dmaWrite(v, 0x40_0000, Uint8Array.of(0xcc)).status).toBe('ok');
    expect(userBytes(v, v.dataVa(1), 1)[0]).toBe(0xcc);
    const inv = api.hwptInvalidate({ ...v.a, hwptId: nested, entries: [{ addr: 0x40_0000, npages: 1 }] });
    expect(inv.result.ok).toBe(true);
    expect(dmaWrite(v, 0x40_0000, Uint8Array.of(0xdd)).status).toBe('ok');
    expect(userBytes(v, v.dataVa(1), 1)[0]).toBe(0xcc);
    expect(userBytes(v, v.dataVa(2), 1)[0]).toBe(0xdd);
    // "Everything" (addr 0, npages U64_MAX) works too.
    v.gpt.unmap(0x40_0000, PAGE);
    value(v.gpt.map(0x40_0000, v.dataGpa(4), PAGE, { write: true }));
    expect(api.hwptInvalidate({ ...v.a, hwptId: nested, entries: [{ addr: 0, npages: (1n << 64n) - 1n }] }).handled).toBe(1);
    expect(dmaWrite(v, 0x40_0000, Uint8Array.of(0xee)).status).toBe('ok');
    expect(userBytes(v, v.dataVa(4), 1)[0]).toBe(0xee);
  });

  it("unmapping the parent's IOVA faults the DMA in stage 2 with the GPA latched, cached translation or not", () => {
    const v = vm();
    value(v.gpt.map(0x40_0000, v.dataGpa(5), PAGE, { write: true }));
    attachNested(v);
    expect(dmaWrite(v, 0x40_0000, Uint8Array.of(1)).status).toBe('ok');
    // The VMM takes the guest page away (IOVA = GPA in the parent); no guest invalidation is needed.
    expect(value(api.ioasUnmap({ ...v.a, ioasId: v.ioasId, iova: v.dataGpa(5), length: PAGE }))).toBe(BigInt(PAGE));
    const r = dmaWrite(v, 0x40_0000, Uint8Array.of(2));
    expect(r.status).toBe('fault');
    expect(r.fault?.stage).toBe(2);
    expect(r.fault?.faultGpa).toBe(v.dataGpa(5));
    expect(r.fault?.reason).toBe(FaultReason.PteNotPresent);
    expect(userBytes(v, v.dataVa(5), 1)[0]).toBe(1);
  });

  it('a read-only guest mapping refuses writes in stage 1, a read-only parent mapping in stage 2', () => {
    const v = vm((i) => (i === 7 ? 'r' : 'rw'));
    value(v.gpt.map(0x40_0000, v.dataGpa(6), PAGE, { write: false }));
    value(v.gpt.map(0x41_0000, v.dataGpa(7), PAGE, { write: true }));
    attachNested(v);
    value(v.a.proc.mm.write(v.dataVa(6), Uint8Array.of(0x5a)));
    expect(dmaRead(v, 0x40_0000, 1).data?.[0]).toBe(0x5a);
    const w1 = dmaWrite(v, 0x40_0000, Uint8Array.of(1));
    expect([w1.status, w1.fault?.stage, w1.fault?.reason]).toEqual(['fault', 1, FaultReason.WriteDenied]);
    expect(dmaRead(v, 0x41_0000, 1).status).toBe('ok');
    const w2 = dmaWrite(v, 0x41_0000, Uint8Array.of(1));
    expect([w2.status, w2.fault?.stage, w2.fault?.faultGpa]).toEqual(['fault', 2, v.dataGpa(7)]);
  });
});

describe('NestedDomain.iovaToPhys (what the DMA-confinement invariant walks)', () => {
  it('follows the guest table and the parent from memory: the frame DMA lands on, or null where a stage has no mapping', () => {
    const v = vm((i) => (i === 5 ? null : 'rw'));
    value(v.gpt.map(0x40_0000, v.dataGpa(3), PAGE, { write: true }));
    value(v.gpt.map(0x40_1000, v.dataGpa(5), PAGE, { write: true }));
    const id = attachNested(v);
    const domain = value(v.ctx.objects.get<HwptNested>(id, 'hwpt_nested')).domain;
    if (!(domain instanceof NestedDomain)) throw new Error('expected a NestedDomain');
    expect(dmaWrite(v, 0x40_0010, Uint8Array.of(7)).status).toBe('ok');
    expect(domain.iovaToPhys(0x40_0010)).toBe(v.a.proc.mm.lookupPfn(v.dataVa(3)) * PAGE + 0x10);
    // Guest IOVA 0x401000 points at GPA page 5, which the parent does not map: null, and the DMA faults.
    expect(domain.iovaToPhys(0x40_1000)).toBeNull();
    expect(dmaWrite(v, 0x40_1000, Uint8Array.of(7)).status).toBe('fault');
    // Nothing in the guest table at all.
    expect(domain.iovaToPhys(0x80_0000)).toBeNull();
    // A guest remap shows at once (memory, not the IOTLB).
    v.gpt.unmap(0x40_0000, PAGE);
    value(v.gpt.map(0x40_0000, v.dataGpa(4), PAGE, { write: true }));
    expect(domain.iovaToPhys(0x40_0000)).toBe(v.a.proc.mm.lookupPfn(v.dataVa(4)) * PAGE);
  });
});

describe('PASIDs and IO page faults on a nested HWPT', () => {
  it('a PASID-tagged DMA of the DSA goes through a nested HWPT allocated with ALLOC_PASID', () => {
    const w = world();
    enablePriPasid(w.dev(DSA));
    const v = vm(() => 'rw', w, DSA);
    value(v.gpt.map(0x40_0000, v.dataGpa(2), PAGE, { write: true }));
    const plain = value(api.hwptAllocNested({ ...v.a, devId: v.devId, parentId: v.parentId, s1: { pgtblAddr: v.gpt.root } }));
    expect(errno(iommufdDeviceAttach(v.idev, plain, 5))).toBe('EINVAL');
    const id = value(api.hwptAllocNested({ ...v.a, devId: v.devId, parentId: v.parentId, s1: { pgtblAddr: v.gpt.root }, flags: IOMMU_HWPT_ALLOC_PASID }));
    value(iommufdDeviceAttach(v.idev, id, 5));
    expect(dmaWrite(v, 0x40_0000, Uint8Array.of(0x77), 5).status).toBe('ok');
    expect(userBytes(v, v.dataVa(2), 1)[0]).toBe(0x77);
    // The RID has nothing attached: untagged DMA is blocked.
    expect(dmaWrite(v, 0x40_0000, Uint8Array.of(1)).status).toBe('fault');
  });

  it('a stage-1 miss of a PRI device becomes a page request on the FAULT object; the guest maps and answers', () => {
    const w = world();
    enablePriPasid(w.dev(DSA));
    const v = vm(() => 'rw', w, DSA);
    const f = value(api.faultQueueAlloc(v.a));
    const id = value(api.hwptAllocNested({ ...v.a, devId: v.devId, parentId: v.parentId, s1: { pgtblAddr: v.gpt.root }, flags: IOMMU_HWPT_ALLOC_PASID, faultId: f.faultId }));
    value(iommufdDeviceAttach(v.idev, id, 5));
    const r = dmaWrite(v, 0x40_0000, Uint8Array.of(0x99), 5);
    w.core.poll();
    expect(r.status).toBe('pending');
    const recs = value(api.faultRead({ proc: v.a.proc, faultFd: f.faultFd }));
    expect(recs.map((x) => [x.dev_id, x.pasid, Number(x.addr)])).toEqual([[v.devId, 5, 0x40_0000]]);
    // The guest handles the fault: it maps the page in its table, then the VMM answers for it.
    value(v.gpt.map(0x40_0000, v.dataGpa(3), PAGE, { write: true }));
    value(api.faultRespond({ proc: v.a.proc, faultFd: f.faultFd, responses: [{ cookie: recs[0]!.cookie, code: IOMMUFD_PAGE_RESP_SUCCESS }] }));
    w.machine.processCommands();
    expect(r.status).toBe('ok');
    expect(userBytes(v, v.dataVa(3), 1)[0]).toBe(0x99);
  });
});

describe('the PASID entry the driver programs', () => {
  it('PGTT nested with its own DID over the parent table; the parent alone is PGTT second stage', () => {
    const v = vm();
    attachNested(v);
    const driver = v.w.core.ioasisDriverOf(v.w.dev(NVME))!;
    const rid = v.w.core.ridsOf(v.w.dev(NVME))[0]!;
    expect(driver.domainAt(rid)?.type).toBe('nested');
    const entry = driver.readRid(rid).ridPasidEntry;
    expect(entry?.pgtt).toBe(3);
    value(iommufdDeviceReplace(v.idev, v.parentId));
    const back = driver.readRid(rid).ridPasidEntry;
    expect(back?.pgtt).toBe(2);
    expect(back?.did).not.toBe(entry?.did);
    expect(back?.ssRoot).toBe(entry?.ssRoot);
  });
});

describe('teardown', () => {
  it('unbind and close release the nested HWPT, its parent, the DID and every pin', () => {
    const v = vm();
    value(v.gpt.map(0x40_0000, v.dataGpa(1), PAGE, { write: true }));
    const id = attachNested(v);
    expect(dmaWrite(v, 0x40_0000, Uint8Array.of(1)).status).toBe('ok');
    const domain = value(v.ctx.objects.get<HwptNested>(id, 'hwpt_nested')).domain;
    const driver = v.w.core.ioasisDriverOf(v.w.dev(NVME))!;
    expect(driver.didOf(domain)).not.toBeNull();
    iommufdDeviceUnbind(v.idev);
    expect(driver.didOf(domain)).toBeNull();
    expect(v.a.proc.mm.pinnedVm).toBeGreaterThan(0);
    value(v.a.proc.fds.close(v.a.fd));
    expect(v.ctx.objects.size).toBe(0);
    expect(v.a.proc.mm.pinnedVm).toBe(0);
    expect(dmaWrite(v, 0x40_0000, Uint8Array.of(2)).status).not.toBe('ok');
  });
});

describe('nested walk = stage 1 ∘ stage 2 (property)', () => {
  const IOVAS = 8;
  const iovaOf = (k: number): number => 0x20_0000 + k * 0x1_1000;
  const s1Arb = fc.array(
    fc.option(fc.record({ page: fc.integer({ min: 0, max: DATA_PAGES + 3 }), write: fc.boolean() }), { nil: null }),
    { minLength: IOVAS, maxLength: IOVAS },
  );
  const s2Arb = fc.array(fc.constantFrom<'r' | 'rw' | null>('r', 'rw', null), { minLength: DATA_PAGES, maxLength: DATA_PAGES });

  it('every DMA reaches exactly the host page of s2(s1(iova)), or faults in the stage that lacks it', () => {
    fc.assert(fc.property(s1Arb, s2Arb, fc.integer({ min: 0, max: 255 }), (s1, s2, byte) => {
      const v = vm((i) => s2[i] ?? null);
      s1.forEach((m, k) => {
        // Pages past DATA_PAGES are GPAs outside guest RAM (beyond the pool): never mapped in stage 2.
        if (m !== null) value(v.gpt.map(iovaOf(k), m.page < DATA_PAGES ? v.dataGpa(m.page) : GPA_BASE + (DATA_PAGES + POOL_PAGES + m.page) * PAGE, PAGE, { write: m.write }));
      });
      attachNested(v);
      for (let k = 0; k < IOVAS; k++) {
        const m = s1[k] ?? null;
        const p2 = m !== null && m.page < DATA_PAGES ? (s2[m.page] ?? null) : null;
        const gpa = m === null ? 0 : m.page < DATA_PAGES ? v.dataGpa(m.page) : GPA_BASE + (DATA_PAGES + POOL_PAGES + m.page) * PAGE;
        for (const write of [false, true]) {
          const val = (byte + k + (write ? 1 : 0)) & 0xff;
          const r = write ? dmaWrite(v, iovaOf(k) + 8, Uint8Array.of(val)) : dmaRead(v, iovaOf(k) + 8, 1);
          if (m === null || (write && !m.write)) {
            expect([r.status, r.fault?.stage]).toEqual(['fault', 1]);
          } else if (p2 === null || (write && p2 === 'r')) {
            expect([r.status, r.fault?.stage, r.fault?.faultGpa]).toEqual(['fault', 2, gpa + 8]);
          } else {
            expect(r.status).toBe('ok');
            const va = v.dataVa(m.page) + 8;
            if (write) expect(userBytes(v, va, 1)[0]).toBe(val);
            else expect(r.data?.[0]).toBe(userBytes(v, va, 1)[0]);
          }
        }
      }
    }), { numRuns: 15 });
  });
});
