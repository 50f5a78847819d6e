// IOMMU_HWPT_ALLOC of nested HWPTs and IOMMU_HWPT_INVALIDATE through the byte-level dispatch (uAPI
// reference §6.10, §6.13, §11, §13; selftest alloc_hwpt_nested): every errno, in the kernel's order, with
// the driver data and the invalidation array written into the caller's memory as a C program would.

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { IommufdCtx } from '../../src/kernel/iommufd/context.ts';
import { iommufdDeviceAttach, iommufdDeviceBind, iommufdDeviceDetach, iommufdDeviceReplace } from '../../src/kernel/iommufd/device.ts';
import type { HwptPaging } from '../../src/kernel/iommufd/hw-pagetable.ts';
import type { HwptNested } from '../../src/kernel/iommufd/hwpt-nested.ts';
import * as KN from '../../src/kernel/iommu/nested-domain.ts';
import * as C from '../../src/uapi/iommufd-consts.ts';
import { iommu_hwpt_vtd_s1, iommu_hwpt_vtd_s1_invalidate } from '../../src/uapi/iommufd-structs.ts';
import { client, PAGE, U64_MAX, value, world, type World } from './dispatch-helpers.ts';

const NVME = '39:00.0';
const DSA = '6a:01.0';

function setup(w: World = world()) {
  const c = client(w);
  const file = value(c.proc.fds.get(c.fd));
  const ctx = file.file as IommufdCtx;
  const nvme = value(iommufdDeviceBind(ctx, w.dev(NVME), { file }));
  const dsa = value(iommufdDeviceBind(ctx, w.dev(DSA), { file }));
  const ioasId = c.ioasAlloc();
  const buf = c.anon(4);
  const alloc = (f: Record<string, unknown>) => c.call('IOMMU_HWPT_ALLOC', { dev_id: nvme.id, ...f });
  const id = (r: { out: Record<string, unknown> }): number => Number(r.out.out_hwpt_id);
  const parent = id(alloc({ pt_id: ioasId, flags: C.IOMMU_HWPT_ALLOC_NEST_PARENT }));
  /** struct iommu_hwpt_vtd_s1 at `buf`; returns the data fields of the ioctl. */
  const s1 = (f: { flags?: bigint; pgtbl_addr?: bigint; addr_width?: number; __reserved?: number } = {}, len = iommu_hwpt_vtd_s1.sizeof) => {
    value(c.proc.mm.write(buf, iommu_hwpt_vtd_s1.encode({ pgtbl_addr: 0x10_0000n, addr_width: 48, ...f })));
    return { data_type: C.IOMMU_HWPT_DATA_VTD_S1, data_len: len, data_uptr: BigInt(buf) };
  };
  const nested = (f: Record<string, unknown> = {}) => alloc({ pt_id: parent, ...s1(), ...f });
  return { w, c, ctx, nvme, dsa, ioasId, buf, alloc, id, parent, s1, nested };
}

describe('IOMMU_HWPT_ALLOC (nested on a HWPT_PAGING)', () => {
  it('the kernel copies of the VT-d uapi values agree with src/uapi', () => {
    expect([KN.IOMMU_HWPT_DATA_VTD_S1, KN.IOMMU_HWPT_INVALIDATE_DATA_VTD_S1, KN.IOMMU_VTD_S1_SRE, KN.IOMMU_VTD_S1_EAFE, KN.IOMMU_VTD_S1_WPE, KN.IOMMU_VTD_INV_FLAGS_LEAF])
      .toEqual([C.IOMMU_HWPT_DATA_VTD_S1, C.IOMMU_HWPT_INVALIDATE_DATA_VTD_S1, C.IOMMU_VTD_S1_SRE, C.IOMMU_VTD_S1_EAFE, C.IOMMU_VTD_S1_WPE, C.IOMMU_VTD_INV_FLAGS_LEAF]);
    expect([KN.VTD_S1_SIZE, KN.VTD_S1_INV_SIZE]).toEqual([iommu_hwpt_vtd_s1.sizeof, iommu_hwpt_vtd_s1_invalidate.sizeof]);
  });

  it('allocates a nested HWPT holding its parent: the parent cannot be destroyed first', () => {
    const s = setup();
    const r = s.nested();
    expect(r.e).toBe('ok');
    const nid = s.id(r);
    const h = value(s.ctx.objects.get<HwptNested>(nid, 'hwpt_nested'));
    const p = value(s.ctx.objects.get<HwptPaging>(s.parent, 'hwpt_paging'));
    expect(h.parent).toBe(p);
    expect(h.domain.type).toBe('nested');
    expect(h.ioas.id).toBe(s.ioasId);
    expect(p.users).toBe(2);
    expect(s.c.call('IOMMU_DESTROY', { id: s.parent }).e).toBe('EBUSY');
    expect(s.c.call('IOMMU_DESTROY', { id: nid }).e).toBe('ok');
    expect(p.users).toBe(1);
    expect(s.c.call('IOMMU_DESTROY', { id: s.parent }).e).toBe('ok');
  });

  it('every errno of a nested allocation, in the kernel order', () => {
    const s = setup();
    const before = s.ctx.objects.size;
    // The generic checks come first.
    expect(s.nested({ __reserved: 1 }).e).toBe('EOPNOTSUPP');
    expect(s.nested({ data_type: C.IOMMU_HWPT_DATA_NONE }).e).toBe('EINVAL');
    expect(s.nested({ data_len: 0 }).e).toBe('EINVAL');
    expect(s.nested({ dev_id: 999 }).e).toBe('ENOENT');
    expect(s.nested({ pt_id: 999 }).e).toBe('EINVAL');
    // DATA_NONE without data reaches the nested allocation: no data → EOPNOTSUPP.
    expect(s.nested({ data_type: C.IOMMU_HWPT_DATA_NONE, data_len: 0 }).e).toBe('EOPNOTSUPP');
    // Flags other than FAULT_ID_VALID | ALLOC_PASID.
    for (const flags of [C.IOMMU_HWPT_ALLOC_NEST_PARENT, C.IOMMU_HWPT_ALLOC_DIRTY_TRACKING, 1 << 4]) expect(s.nested({ flags }).e).toBe('EOPNOTSUPP');
    // A data type the driver does not nest.
    expect(s.nested({ data_type: C.IOMMU_HWPT_DATA_ARM_SMMUV3 }).e).toBe('EOPNOTSUPP');
    // Parent rules: not NEST_PARENT, an auto domain, nested on nested, another IOMMU instance.
    const plain = s.id(s.alloc({ pt_id: s.ioasId }));
    expect(s.nested({ pt_id: plain }).e).toBe('EINVAL');
    const auto = value(iommufdDeviceAttach(s.nvme, s.ioasId));
    expect(value(s.ctx.objects.get<HwptPaging>(auto, 'hwpt_paging')).autoDomain).toBe(true);
    expect(s.nested({ pt_id: auto }).e).toBe('EINVAL');
    iommufdDeviceDetach(s.nvme);
    const n1 = s.id(s.nested());
    expect(s.nested({ pt_id: n1 }).e).toBe('EINVAL');
    expect(s.nested({ dev_id: s.dsa.id }).e).toBe('EINVAL');
    // The driver's copy of the struct: short or long → EINVAL, unreadable → EFAULT.
    expect(s.alloc({ pt_id: s.parent, ...s.s1({}, 16) }).e).toBe('EINVAL');
    expect(s.alloc({ pt_id: s.parent, ...s.s1({}, 32) }).e).toBe('EINVAL');
    expect(s.nested({ data_uptr: 0n }).e).toBe('EFAULT');
    // A bad fault_id with FAULT_ID_VALID: ENOENT, and the half-built HWPT goes, releasing the parent.
    expect(s.nested({ flags: C.IOMMU_HWPT_FAULT_ID_VALID, fault_id: 0xffff }).e).toBe('ENOENT');
    expect(value(s.ctx.objects.get<HwptPaging>(s.parent, 'hwpt_paging')).users).toBe(2);
    expect(s.ctx.objects.size).toBe(before + 2);
  });

  it('an IOMMU without nesting answers EOPNOTSUPP', () => {
    const w = world();
    const s = setup(w);
    const driver = w.core.ioasisDriverOf(w.dev(NVME))!;
    const caps = driver.caps;
    (driver as { caps: unknown }).caps = { ...caps, nesting: false };
    expect(s.nested().e).toBe('EOPNOTSUPP');
    (driver as { caps: unknown }).caps = caps;
    expect(s.nested().e).toBe('ok');
  });

  it('takes a FAULT object with FAULT_ID_VALID and PASID compatibility with ALLOC_PASID', () => {
    const s = setup();
    const f = s.c.call('IOMMU_FAULT_QUEUE_ALLOC', {});
    const faultId = Number((f.out as Record<string, number>).out_fault_id);
    const r = s.nested({ flags: C.IOMMU_HWPT_FAULT_ID_VALID | C.IOMMU_HWPT_ALLOC_PASID, fault_id: faultId });
    expect(r.e).toBe('ok');
    const h = value(s.ctx.objects.get<HwptNested>(s.id(r), 'hwpt_nested'));
    expect(h.fault?.id).toBe(faultId);
    expect(h.pasidCompat).toBe(true);
    expect(h.domain.iopfHandler).not.toBeNull();
    expect(s.c.call('IOMMU_DESTROY', { id: faultId }).e).toBe('EBUSY');
  });

  it('the stage-1 data is checked at attach, as intel does: address width, EAFE, WPE', () => {
    const s = setup();
    const bad = [{ addr_width: 39 }, { flags: BigInt(C.IOMMU_VTD_S1_EAFE) }, { flags: BigInt(C.IOMMU_VTD_S1_WPE) }, { pgtbl_addr: 1n << 60n }];
    for (const f of bad) {
      const r = s.alloc({ pt_id: s.parent, ...s.s1(f) });
      expect(r.e).toBe('ok');
      const a = iommufdDeviceAttach(s.nvme, s.id(r));
      expect(a.ok ? 'ok' : a.errno).toBe('EINVAL');
      expect(s.nvme.hwptAt()).toBeNull();
    }
    const good = s.id(s.alloc({ pt_id: s.parent, ...s.s1({ addr_width: 57, flags: BigInt(C.IOMMU_VTD_S1_SRE) }) }));
    expect(iommufdDeviceAttach(s.nvme, good).ok).toBe(true);
  });

  it('attach, replace between paging and nested, PASID rules, detach', () => {
    const s = setup();
    const nested = s.id(s.nested());
    const nestedPasid = s.id(s.nested({ flags: C.IOMMU_HWPT_ALLOC_PASID }));
    const h = value(s.ctx.objects.get<HwptNested>(nested, 'hwpt_nested'));
    expect(value(iommufdDeviceAttach(s.nvme, nested))).toBe(nested);
    expect(s.nvme.hwptAt()).toBe(h);
    expect(h.users).toBe(2);
    // The device's reserved regions go into the parent's IOAS: a fixed map over the MSI window hits them.
    const mapMsi = () => s.c.call('IOMMU_IOAS_MAP', { flags: 1 | 2 | 4, ioas_id: s.ioasId, user_va: BigInt(s.buf), length: BigInt(PAGE), iova: 0xfee0_0000n }).e;
    expect(mapMsi()).toBe('EINVAL');
    expect(s.c.call('IOMMU_DESTROY', { id: nested }).e).toBe('EBUSY');
    // Replace nested → paging parent → nested again.
    expect(value(iommufdDeviceReplace(s.nvme, s.parent))).toBe(s.parent);
    expect(h.users).toBe(1);
    expect(value(iommufdDeviceReplace(s.nvme, nested))).toBe(nested);
    // A PASID attach of a nested HWPT needs ALLOC_PASID, and the RID's HWPT must be PASID-compatible too.
    const e1 = iommufdDeviceAttach(s.dsa, nested, 1);
    expect(e1.ok ? 'ok' : e1.errno).toBe('EINVAL');
    iommufdDeviceDetach(s.nvme);
    expect(h.users).toBe(1);
    expect(mapMsi()).toBe('ok');
    // The DSA is on the other unit: its own NEST_PARENT parent and nested HWPT.
    const dsaParent = s.id(s.alloc({ dev_id: s.dsa.id, pt_id: s.ioasId, flags: C.IOMMU_HWPT_ALLOC_NEST_PARENT }));
    const dsaNested = s.id(s.alloc({ dev_id: s.dsa.id, pt_id: dsaParent, ...s.s1(), flags: C.IOMMU_HWPT_ALLOC_PASID }));
    expect(iommufdDeviceAttach(s.dsa, dsaNested, 1).ok).toBe(true);
    // The nvme's nested HWPT belongs to the other IOMMU.
    const e2 = iommufdDeviceAttach(s.dsa, nestedPasid, 2);
    expect(e2.ok ? 'ok' : e2.errno).toBe('EINVAL');
    iommufdDeviceDetach(s.dsa, 1);
  });
});

describe('IOMMU_HWPT_INVALIDATE', () => {
  function inv() {
    const s = setup();
    const nested = s.id(s.nested());
    const arr = s.buf + PAGE;
    const entries = (list: { addr?: bigint; npages?: bigint; flags?: number; __reserved?: number }[]) => {
      const b = new Uint8Array(list.length * 24);
      list.forEach((e, i) => iommu_hwpt_vtd_s1_invalidate.encode({ addr: 0n, npages: 1n, ...e }, b.subarray(i * 24, (i + 1) * 24)));
      value(s.c.proc.mm.write(arr, b));
      return list.length;
    };
    const call = (f: Record<string, unknown>) => s.c.call('IOMMU_HWPT_INVALIDATE', {
      hwpt_id: nested, data_uptr: BigInt(arr), data_type: C.IOMMU_HWPT_INVALIDATE_DATA_VTD_S1, entry_len: 24, ...f,
    });
    const num = (r: { out: Record<string, unknown> }): number => Number(r.out.entry_num);
    return { ...s, nested, arr, entries, call, num };
  }

  it('checks before the object: __reserved, entry_num with no array; entry_num is written back as 0', () => {
    const s = inv();
    const n = s.entries([{}]);
    for (const [f, e] of [
      [{ __reserved: 1, entry_num: n }, 'EOPNOTSUPP'],
      [{ entry_num: n, data_uptr: 0n }, 'EINVAL'],
      [{ entry_num: n, entry_len: 0 }, 'EINVAL'],
      [{ entry_num: n, hwpt_id: 999 }, 'ENOENT'],
      [{ entry_num: n, hwpt_id: s.parent }, 'EINVAL'],
      [{ entry_num: n, hwpt_id: s.ioasId }, 'EINVAL'],
      [{ entry_num: n, hwpt_id: s.nvme.id }, 'EINVAL'],
    ] as const) {
      const r = s.call(f);
      expect(r.e, JSON.stringify(f, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v))).toBe(e);
      expect(s.num(r)).toBe(0);
    }
    // entry_num 0 is a probe: no array needed.
    const probe = s.call({ entry_num: 0, data_uptr: 0n, entry_len: 0 });
    expect(probe.e).toBe('ok');
    expect(s.num(probe)).toBe(0);
  });

  it("the driver's rules: data_type (even for no entries), entry_len, flags, __reserved, alignment, U64_MAX", () => {
    const s = inv();
    expect(s.call({ entry_num: 0, data_type: 1 }).e).toBe('EINVAL');
    const n = s.entries([{}]);
    expect(s.call({ entry_num: n, data_type: 1 }).e).toBe('EINVAL');
    expect(s.call({ entry_num: n, entry_len: 23 }).e).toBe('EINVAL');
    expect(s.call({ entry_num: n, entry_len: 25 }).e).toBe('EINVAL');
    s.entries([{ flags: 2 }]);
    expect(s.call({ entry_num: 1 }).e).toBe('EOPNOTSUPP');
    s.entries([{ __reserved: 1 }]);
    expect(s.call({ entry_num: 1 }).e).toBe('EOPNOTSUPP');
    s.entries([{ addr: 0x1800n }]);
    expect(s.call({ entry_num: 1 }).e).toBe('EINVAL');
    s.entries([{ addr: 0x1000n, npages: U64_MAX }]);
    expect(s.call({ entry_num: 1 }).e).toBe('EINVAL');
    s.entries([{ addr: 0n, npages: U64_MAX, flags: C.IOMMU_VTD_INV_FLAGS_LEAF }]);
    const all = s.call({ entry_num: 1 });
    expect(all.e).toBe('ok');
    expect(s.num(all)).toBe(1);
    // An array the process has not mapped: EFAULT on the first entry.
    expect(s.call({ entry_num: 1, data_uptr: 0x7000_0000_0000n }).e).toBe('EFAULT');
  });

  it('partial success, as a property: entry_num is the index of the first bad entry, whose kind gives the errno', () => {
    const s = inv();
    type Kind = 'ok' | 'flags' | 'reserved' | 'unaligned' | 'all-at-addr';
    const ERRNO: Record<Exclude<Kind, 'ok'>, string> = { flags: 'EOPNOTSUPP', reserved: 'EOPNOTSUPP', unaligned: 'EINVAL', 'all-at-addr': 'EINVAL' };
    const kindArb = fc.constantFrom<Kind>('ok', 'ok', 'ok', 'flags', 'reserved', 'unaligned', 'all-at-addr');
    fc.assert(fc.property(fc.array(fc.tuple(kindArb, fc.integer({ min: 0, max: 0xfff }), fc.integer({ min: 1, max: 64 })), { maxLength: 12 }), (list) => {
      const n = s.entries(list.map(([k, page, npages]) => {
        const addr = BigInt(page) * 4096n;
        switch (k) {
          case 'ok': return { addr, npages: BigInt(npages), flags: npages % 2 };
          case 'flags': return { addr, flags: (1 << (1 + (npages % 31))) >>> 0 };
          case 'reserved': return { addr, __reserved: npages };
          case 'unaligned': return { addr: addr + BigInt(npages), npages: 1n };
          case 'all-at-addr': return { addr: addr + 4096n, npages: U64_MAX };
        }
      }));
      const r = s.call({ entry_num: n });
      const bad = list.findIndex(([k]) => k !== 'ok');
      expect(s.num(r)).toBe(bad < 0 ? n : bad);
      expect(r.e).toBe(bad < 0 ? 'ok' : ERRNO[list[bad]![0] as Exclude<Kind, 'ok'>]);
    }), { numRuns: 60 });
  });

  it('partial success: entry_num says how many entries were handled before the failing one', () => {
    const s = inv();
    const n = s.entries([{ addr: 0x1000n }, { addr: 0x2000n, npages: 4n }, { addr: 0x3001n }, { addr: 0x4000n }]);
    const r = s.call({ entry_num: n });
    expect(r.e).toBe('EINVAL');
    expect(s.num(r)).toBe(2);
    const ok4 = s.entries([{ addr: 0x1000n }, { addr: 0x2000n }, { addr: 0x3000n }, { addr: 0x4000n }]);
    const r2 = s.call({ entry_num: ok4 });
    expect(r2.e).toBe('ok');
    expect(s.num(r2)).toBe(4);
  });
});
