// IOMMU_HW_QUEUE_ALLOC (uAPI reference §6.20, §11.4; selftest oracle §4.7 hw_queue) and closing an iommufd
// full of vIOMMU objects (§16).

import { describe, expect, it } from 'vitest';
import { iommufdDeviceUnbind } from '../../src/kernel/iommufd/device.ts';
import type { Ioas } from '../../src/kernel/iommufd/ioas.ts';
import * as api from '../../src/uapi/api.ts';
import * as C from '../../src/uapi/iommufd-consts.ts';
import { IOMMU_HW_QUEUE_TYPE_SELFTEST, IOMMU_VEVENTQ_TYPE_SELFTEST } from '../../src/kernel/iommufd/selftest/constants.ts';
import { FIXED, PAGE, READ, U64_MAX, value, WRITE } from './dispatch-helpers.ts';
import { NVME, num, setup, viommuWithData, type Out } from './viommu-helpers.ts';

describe('IOMMU_HW_QUEUE_ALLOC', () => {
  function withViommu() {
    const s = setup();
    const vi = s.viommuAlloc();
    const va = s.c.anon(4);
    value(s.c.proc.mm.write(va, new Uint8Array(4 * PAGE).fill(1)));
    const iova = 0x10_0000n;
    expect(s.c.call('IOMMU_IOAS_MAP', { ioas_id: s.ioasId, flags: FIXED | READ | WRITE, user_va: BigInt(va), length: BigInt(4 * PAGE), iova }).e).toBe('ok');
    const call = (f: Out) => s.c.call('IOMMU_HW_QUEUE_ALLOC', {
      viommu_id: vi, type: IOMMU_HW_QUEUE_TYPE_SELFTEST, index: 0, nesting_parent_iova: iova, length: BigInt(PAGE), ...f,
    });
    const q = (f: Out) => {
      const r = call(f);
      expect(r.e).toBe('ok');
      return num(r, 'out_hw_queue_id');
    };
    return { ...s, vi, va, iova, call, q };
  }

  it('errnos in the kernel order', () => {
    const s = withViommu();
    const ids = s.ctx.objects.size;
    expect(s.call({ flags: 1, viommu_id: 999 }).e).toBe('EOPNOTSUPP');
    expect(s.call({ type: C.IOMMU_HW_QUEUE_TYPE_DEFAULT, viommu_id: 999 }).e).toBe('EOPNOTSUPP');
    expect(s.call({ length: 0n, viommu_id: 999 }).e).toBe('EINVAL');
    expect(s.call({ nesting_parent_iova: U64_MAX, length: 2n, viommu_id: 999 }).e).toBe('EOVERFLOW');
    expect(s.call({ viommu_id: 999 }).e).toBe('ENOENT');
    expect(s.call({ type: 0xdead }).e).toBe('EOPNOTSUPP');
    // offset + length does not fit a size_t (no u64 wrap of iova + length - 1 though).
    expect(s.call({ nesting_parent_iova: 0xfffn, length: (1n << 64n) - 0xfffn }).e).toBe('ERANGE');
    expect(s.call({ nesting_parent_iova: 0x4000_0000n }).e).toBe('ENOENT');
    expect(s.call({ length: BigInt(5 * PAGE) }).e).toBe('ENOENT');
    expect(s.call({ index: 1 }).e).toBe('EIO');
    expect(s.call({ index: 2 }).e).toBe('EINVAL');
    expect(s.ctx.objects.size).toBe(ids);
    const area = value(s.ctx.objects.get<Ioas>(s.ioasId, 'ioas')).iopt.areaAt(s.iova);
    expect([area?.numLocks, area?.numAccesses]).toEqual([0, 0]);
  });

  it('refuses scattered pages: EFAULT', () => {
    const s = withViommu();
    const va = s.c.anon(2);
    // Fault the second page in first so the frames run backwards.
    value(s.c.proc.mm.write(va + PAGE, new Uint8Array([1])));
    value(s.c.proc.mm.write(va, new Uint8Array([1])));
    expect(s.c.proc.mm.lookupPfn(va + PAGE)).not.toBe(s.c.proc.mm.lookupPfn(va) + 1);
    const iova = 0x20_0000n;
    expect(s.c.call('IOMMU_IOAS_MAP', { ioas_id: s.ioasId, flags: FIXED | READ | WRITE, user_va: BigInt(va), length: BigInt(2 * PAGE), iova }).e).toBe('ok');
    expect(s.call({ nesting_parent_iova: iova, length: BigInt(2 * PAGE) }).e).toBe('EFAULT');
    expect(s.call({ nesting_parent_iova: iova + 0x80n, length: 0x100n }).e).toBe('ok');
  });

  it('index rules, the pinned area refuses unmap, and queues go in descending order', () => {
    const s = withViommu();
    const q0 = s.q({ index: 0 });
    expect(s.call({ index: 0 }).e).toBe('EEXIST');
    const q1 = value(api.hwQueueAlloc({ proc: s.c.proc, fd: s.c.fd, viommuId: s.vi, type: IOMMU_HW_QUEUE_TYPE_SELFTEST, index: 1, iova: s.iova + 0x1010n, length: 0x100 }));
    const area = value(s.ctx.objects.get<Ioas>(s.ioasId, 'ioas')).iopt.areaAt(s.iova);
    expect([area?.numLocks, area?.numAccesses]).toEqual([2, 2]);
    expect(s.c.call('IOMMU_IOAS_UNMAP', { ioas_id: s.ioasId, iova: s.iova, length: BigInt(4 * PAGE) }).e).toBe('EBUSY');
    expect(s.c.call('IOMMU_DESTROY', { id: s.vi }).e).toBe('EBUSY');
    expect(s.c.call('IOMMU_DESTROY', { id: q0 }).e).toBe('EBUSY');
    expect(s.c.call('IOMMU_DESTROY', { id: q1 }).e).toBe('ok');
    expect(s.c.call('IOMMU_IOAS_UNMAP', { ioas_id: s.ioasId, iova: s.iova, length: BigInt(4 * PAGE) }).e).toBe('EBUSY');
    expect(s.c.call('IOMMU_DESTROY', { id: q0 }).e).toBe('ok');
    expect([area?.numLocks, area?.numAccesses]).toEqual([0, 0]);
    expect(s.c.call('IOMMU_IOAS_UNMAP', { ioas_id: s.ioasId, iova: s.iova, length: BigInt(4 * PAGE) }).e).toBe('ok');
    expect(s.c.call('IOMMU_DESTROY', { id: s.vi }).e).toBe('ok');
  });
});

describe('closing the iommufd', () => {
  it('destroys every vIOMMU object leaf first and releases the queue pins', () => {
    const s = setup();
    const v = viommuWithData(s, 3);
    const va = s.c.anon(1);
    value(s.c.proc.mm.write(va, new Uint8Array([1])));
    expect(s.c.call('IOMMU_IOAS_MAP', { ioas_id: s.ioasId, flags: FIXED | READ | WRITE, user_va: BigInt(va), length: BigInt(PAGE), iova: 0x10_0000n }).e).toBe('ok');
    const a = { proc: s.c.proc, fd: s.c.fd, viommuId: v.id };
    value(api.vdeviceAlloc({ ...a, devId: s.nvme.id, virtId: 1 }));
    const q = value(api.veventqAlloc({ ...a, type: IOMMU_VEVENTQ_TYPE_SELFTEST, depth: 4 }));
    value(api.hwQueueAlloc({ ...a, type: IOMMU_HW_QUEUE_TYPE_SELFTEST, index: 0, iova: 0x10_0000n, length: 64 }));
    value(api.hwQueueAlloc({ ...a, type: IOMMU_HW_QUEUE_TYPE_SELFTEST, index: 1, iova: 0x10_0040n, length: 64 }));
    value(s.drv.triggerVevent(s.w.dev(NVME)));
    expect(s.w.frames.pinCount(s.c.proc.mm.lookupPfn(va))).toBe(1);
    value(s.c.proc.fds.close(q.veventqFd));
    for (const d of [s.nvme, s.usb, s.dsa]) iommufdDeviceUnbind(d);
    value(s.c.proc.fds.close(s.c.fd));
    expect(s.ctx.isClosed).toBe(true);
    expect(s.ctx.objects.size).toBe(0);
    expect(s.w.frames.pinCount(s.c.proc.mm.lookupPfn(va))).toBe(0);
    expect(s.drv.viommus[0]?.destroyed).toBe(true);
  });

  it('a vEVENTQ fd keeps the iommufd open after close(fd)', () => {
    const s = setup();
    const vi = s.viommuAlloc();
    const q = value(api.veventqAlloc({ proc: s.c.proc, fd: s.c.fd, viommuId: vi, type: IOMMU_VEVENTQ_TYPE_SELFTEST, depth: 1 }));
    for (const d of [s.nvme, s.usb, s.dsa]) iommufdDeviceUnbind(d);
    value(s.c.proc.fds.close(s.c.fd));
    expect(s.ctx.isClosed).toBe(false);
    value(s.c.proc.fds.close(q.veventqFd));
    expect(s.ctx.isClosed).toBe(true);
  });
});

