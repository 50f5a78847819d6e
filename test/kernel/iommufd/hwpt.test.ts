// IOMMU_HWPT_ALLOC through dispatch (uAPI reference §6.10, §9.4, §12.1): paging HWPTs on an IOAS, every
// errno that applies without nesting, the references a HWPT holds (IOAS, FAULT), and destroy.

import { describe, expect, it } from 'vitest';
import type { IommufdCtx } from '../../../src/kernel/iommufd/context.ts';
import { iommufdDeviceAttach, iommufdDeviceBind, iommufdDeviceDetach } from '../../../src/kernel/iommufd/device.ts';
import type { IommufdFault } from '../../../src/kernel/iommufd/fault.ts';
import * as K from '../../../src/kernel/iommufd/hw-pagetable.ts';
import type { HwptPaging } from '../../../src/kernel/iommufd/hw-pagetable.ts';
import type { Ioas } from '../../../src/kernel/iommufd/ioas.ts';
import * as C from '../../../src/uapi/iommufd-consts.ts';
import { client, value, world, type World } from '../../uapi/dispatch-helpers.ts';

const NVME = '39:00.0';
const DSA = '6a:01.0';

function setup(w: World = world()) {
  const c = client(w);
  const file = value(c.proc.fds.get(c.fd));
  const ctx = file.file as IommufdCtx;
  const nvme = value(iommufdDeviceBind(ctx, w.dev(NVME), { file }));
  const dsa = value(iommufdDeviceBind(ctx, w.dev(DSA), { file }));
  const ioasId = c.ioasAlloc();
  const alloc = (f: Record<string, unknown>) => c.call('IOMMU_HWPT_ALLOC', { dev_id: nvme.id, pt_id: ioasId, ...f });
  const faultAlloc = () => {
    const r = c.call('IOMMU_FAULT_QUEUE_ALLOC', {});
    expect(r.e).toBe('ok');
    return { id: Number((r.out as Record<string, number>).out_fault_id), fd: Number((r.out as Record<string, number>).out_fault_fd) };
  };
  return { w, c, ctx, file, nvme, dsa, ioasId, alloc, faultAlloc };
}

const outId = (r: { out: Record<string, unknown> }): number => Number(r.out.out_hwpt_id);

describe('IOMMU_HWPT_ALLOC (paging)', () => {
  it('the kernel flag values agree with the uapi ones', () => {
    expect([K.IOMMU_HWPT_ALLOC_NEST_PARENT, K.IOMMU_HWPT_ALLOC_DIRTY_TRACKING, K.IOMMU_HWPT_FAULT_ID_VALID, K.IOMMU_HWPT_ALLOC_PASID])
      .toEqual([C.IOMMU_HWPT_ALLOC_NEST_PARENT, C.IOMMU_HWPT_ALLOC_DIRTY_TRACKING, C.IOMMU_HWPT_FAULT_ID_VALID, C.IOMMU_HWPT_ALLOC_PASID]);
  });

  it('allocates a HWPT on the IOAS holding a reference on it; destroy drops it', () => {
    const s = setup();
    const r = s.alloc({ flags: 0 });
    expect(r.e).toBe('ok');
    const id = outId(r);
    const hwpt = value(s.ctx.objects.get<HwptPaging>(id, 'hwpt_paging'));
    const ioas = value(s.ctx.objects.get<Ioas>(s.ioasId, 'ioas'));
    expect(hwpt.autoDomain).toBe(false);
    expect(ioas.domains()).toEqual([hwpt.domain]);
    expect(ioas.users).toBe(2);
    expect(s.c.call('IOMMU_DESTROY', { id: s.ioasId }).e).toBe('EBUSY');
    expect(s.c.call('IOMMU_DESTROY', { id }).e).toBe('ok');
    expect(ioas.domains()).toEqual([]);
    expect(ioas.users).toBe(1);
    expect(s.c.call('IOMMU_DESTROY', { id }).e).toBe('ENOENT');
  });

  it('accepts NEST_PARENT, DIRTY_TRACKING and ALLOC_PASID on the default host', () => {
    const s = setup();
    for (const flags of [C.IOMMU_HWPT_ALLOC_NEST_PARENT, C.IOMMU_HWPT_ALLOC_DIRTY_TRACKING, C.IOMMU_HWPT_ALLOC_PASID]) {
      const r = s.alloc({ flags });
      expect(r.e).toBe('ok');
      const h = value(s.ctx.objects.get<HwptPaging>(outId(r), 'hwpt_paging'));
      expect(h.nestParent).toBe(flags === C.IOMMU_HWPT_ALLOC_NEST_PARENT);
      expect(h.dirtyTracking).toBe(flags === C.IOMMU_HWPT_ALLOC_DIRTY_TRACKING);
      expect(h.pasidCompat).toBe(flags === C.IOMMU_HWPT_ALLOC_PASID);
    }
  });

  it('errnos in the kernel order', () => {
    const s = setup();
    const before = s.ctx.objects.size;
    expect(s.alloc({ flags: 1 << 4 }).e).toBe('EOPNOTSUPP');
    expect(s.alloc({ __reserved: 1 }).e).toBe('EOPNOTSUPP');
    expect(s.alloc({ flags: C.IOMMU_HWPT_ALLOC_NEST_PARENT | C.IOMMU_HWPT_FAULT_ID_VALID }).e).toBe('EOPNOTSUPP');
    expect(s.alloc({ data_type: C.IOMMU_HWPT_DATA_NONE, data_len: 8 }).e).toBe('EINVAL');
    expect(s.alloc({ data_type: C.IOMMU_HWPT_DATA_VTD_S1, data_len: 0 }).e).toBe('EINVAL');
    expect(s.alloc({ dev_id: 999 }).e).toBe('ENOENT');
    expect(s.alloc({ dev_id: s.ioasId }).e).toBe('ENOENT');
    // Flags are checked by the paging allocation, after the lookups.
    expect(s.alloc({ flags: 1 << 4, dev_id: 999 }).e).toBe('ENOENT');
    expect(s.alloc({ flags: 1 << 4, pt_id: 999 }).e).toBe('EINVAL');
    // A missing pt_id is EINVAL, not ENOENT; so is a pt_id of another type.
    expect(s.alloc({ pt_id: 999 }).e).toBe('EINVAL');
    expect(s.alloc({ pt_id: s.nvme.id }).e).toBe('EINVAL');
    // Driver data for a paging HWPT: not supported.
    expect(s.alloc({ data_type: C.IOMMU_HWPT_DATA_VTD_S1, data_len: 24 }).e).toBe('EOPNOTSUPP');
    // A bad fault_id with FAULT_ID_VALID: ENOENT, and the half-built HWPT is aborted.
    expect(s.alloc({ flags: C.IOMMU_HWPT_FAULT_ID_VALID, fault_id: 0xffff_ffff }).e).toBe('ENOENT');
    expect(s.ctx.objects.size).toBe(before);
    expect(value(s.ctx.objects.get<Ioas>(s.ioasId, 'ioas')).domains()).toEqual([]);
    // Nested: pt_id a HWPT_PAGING with a NULL data_uptr → EFAULT (test/uapi/hwpt-nested.test.ts has the rest).
    const parent = outId(s.alloc({ flags: C.IOMMU_HWPT_ALLOC_NEST_PARENT }));
    expect(s.alloc({ pt_id: parent, data_type: C.IOMMU_HWPT_DATA_VTD_S1, data_len: 24 }).e).toBe('EFAULT');
  });

  it('DIRTY_TRACKING without the capability and ALLOC_PASID without PASID support → EOPNOTSUPP', () => {
    const w = world();
    const s = setup(w);
    const driver = w.core.ioasisDriverOf(w.dev(NVME))!;
    const caps = driver.caps;
    (driver as { caps: unknown }).caps = { ...caps, dirtyTracking: false };
    expect(s.alloc({ flags: C.IOMMU_HWPT_ALLOC_DIRTY_TRACKING }).e).toBe('EOPNOTSUPP');
    (driver as { caps: unknown }).caps = caps;
    const max = driver.maxPasids;
    (driver as { maxPasids: number }).maxPasids = 0;
    expect(s.alloc({ flags: C.IOMMU_HWPT_ALLOC_PASID }).e).toBe('EOPNOTSUPP');
    (driver as { maxPasids: number }).maxPasids = max;
    expect(s.alloc({ flags: C.IOMMU_HWPT_ALLOC_PASID }).e).toBe('ok');
  });

  it('FAULT_ID_VALID: the domain gets the fault handler and the FAULT a reference until the HWPT goes', () => {
    const s = setup();
    const f = s.faultAlloc();
    const fault = value(s.ctx.objects.get<IommufdFault>(f.id, 'fault'));
    const users = fault.users;
    const r = s.alloc({ dev_id: s.dsa.id, flags: C.IOMMU_HWPT_FAULT_ID_VALID | C.IOMMU_HWPT_ALLOC_PASID, fault_id: f.id });
    expect(r.e).toBe('ok');
    const h = value(s.ctx.objects.get<HwptPaging>(outId(r), 'hwpt_paging'));
    expect(h.fault).toBe(fault);
    expect(h.domain.iopfHandler).toBe(fault.iopfHandler);
    expect(fault.users).toBe(users + 1);
    expect(s.c.call('IOMMU_DESTROY', { id: f.id }).e).toBe('EBUSY');
    expect(s.c.call('IOMMU_DESTROY', { id: h.id }).e).toBe('ok');
    expect(fault.users).toBe(users);
  });

  it('a manual HWPT is EBUSY to destroy while attached', () => {
    const s = setup();
    const id = outId(s.alloc({}));
    expect(value(iommufdDeviceAttach(s.nvme, id))).toBe(id);
    expect(s.c.call('IOMMU_DESTROY', { id }).e).toBe('EBUSY');
    iommufdDeviceDetach(s.nvme);
    expect(s.c.call('IOMMU_DESTROY', { id }).e).toBe('ok');
  });
});
