// Property: random bind / attach / replace / detach / unbind / map / close sequences in two iommufd
// contexts over the default host. No IOMMU group is ever owned by two contexts (and a group's owner count
// is the number of its devices bound in the owning context); after closing everything, no object, pin,
// accounting, ownership or attach remains.

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { IommufdCtx } from '../../../src/kernel/iommufd/context.ts';
import {
  deviceOf, iommufdDeviceAttach, iommufdDeviceBind, iommufdDeviceDetach, iommufdDeviceReplace, iommufdDeviceUnbind,
} from '../../../src/kernel/iommufd/device.ts';
import * as C from '../../../src/uapi/iommufd-consts.ts';
import { client, FIXED, PAGE, READ, value, world, WRITE, type World } from '../../uapi/dispatch-helpers.ts';

const DEVS = ['39:00.0', '6a:01.0', '16:00.0', '16:00.1', '00:1f.3'];

type Op =
  | { k: 'bind' | 'unbind'; c: number; d: number }
  | { k: 'attachIoas' | 'replaceIoas'; c: number; d: number }
  | { k: 'alloc'; c: number; d: number; pasid: boolean }
  | { k: 'attachHwpt' | 'replaceHwpt'; c: number; d: number; h: number; pasid: number }
  | { k: 'detach'; c: number; d: number; pasid: number }
  | { k: 'map'; c: number; page: number }
  | { k: 'close'; c: number };

const c = fc.integer({ min: 0, max: 1 });
const d = fc.integer({ min: 0, max: DEVS.length - 1 });
const pasid = fc.constantFrom(-1, -1, 3, 7);
const op: fc.Arbitrary<Op> = fc.oneof(
  { arbitrary: fc.record({ k: fc.constant('bind' as const), c, d }), weight: 3 },
  fc.record({ k: fc.constant('unbind' as const), c, d }),
  fc.record({ k: fc.constantFrom('attachIoas' as const, 'replaceIoas' as const), c, d }),
  { arbitrary: fc.record({ k: fc.constant('alloc' as const), c, d, pasid: fc.boolean() }), weight: 2 },
  { arbitrary: fc.record({ k: fc.constantFrom('attachHwpt' as const, 'replaceHwpt' as const), c, d, h: fc.nat(2), pasid }), weight: 3 },
  fc.record({ k: fc.constant('detach' as const), c, d, pasid }),
  fc.record({ k: fc.constant('map' as const), c, page: fc.nat(7) }),
  fc.record({ k: fc.constant('close' as const), c }),
);

function open(w: World) {
  const cl = client(w);
  const file = value(cl.proc.fds.get(cl.fd));
  const ctx = file.file as IommufdCtx;
  return { cl, file, ctx, ioasId: cl.ioasAlloc(), hwpts: [] as number[] };
}
type Slot = ReturnType<typeof open>;

function run(ops: readonly Op[]): void {
  const w = world();
  const slots: Slot[] = [open(w), open(w)];
  const closed: Slot[] = [];
  /** The i-th (mod count) device bound in the slot's context, so that most operations have a target. */
  const idev = (s: Slot, i: number) => {
    const bound = DEVS.flatMap((b) => deviceOf(s.ctx, w.dev(b)) ?? []);
    return bound.length === 0 ? undefined : bound[i % bound.length];
  };
  const closeSlot = (s: Slot): void => {
    for (const bdf of DEVS) {
      const x = deviceOf(s.ctx, w.dev(bdf));
      if (x !== undefined) iommufdDeviceUnbind(x);
    }
    value(s.cl.proc.fds.close(s.cl.fd));
    closed.push(s);
  };
  const check = (): void => {
    for (const g of w.core.groups) {
      const owners = slots.filter((s) => g.devices.some((dev) => deviceOf(s.ctx, dev) !== undefined));
      expect(owners.length).toBeLessThanOrEqual(1);
      if (owners.length === 1) {
        expect(g.owner).toBe(owners[0]!.ctx);
        expect(g.ownerCnt).toBe(g.devices.filter((dev) => deviceOf(owners[0]!.ctx, dev) !== undefined).length);
      }
    }
  };
  for (const o of ops) {
    const s = slots[o.c]!;
    switch (o.k) {
      case 'bind': void iommufdDeviceBind(s.ctx, w.dev(DEVS[o.d]!), { file: s.file }); break;
      case 'unbind': { const x = idev(s, o.d); if (x !== undefined) iommufdDeviceUnbind(x); break; }
      case 'attachIoas': { const x = idev(s, o.d); if (x !== undefined) void iommufdDeviceAttach(x, s.ioasId); break; }
      case 'replaceIoas': { const x = idev(s, o.d); if (x !== undefined) void iommufdDeviceReplace(x, s.ioasId); break; }
      case 'alloc': {
        const x = idev(s, o.d);
        if (x === undefined) break;
        const r = s.cl.call('IOMMU_HWPT_ALLOC', { dev_id: x.id, pt_id: s.ioasId, flags: o.pasid ? C.IOMMU_HWPT_ALLOC_PASID : 0 });
        if (r.e === 'ok') s.hwpts.push(Number((r.out as Record<string, unknown>).out_hwpt_id));
        break;
      }
      case 'attachHwpt':
      case 'replaceHwpt': {
        const x = idev(s, o.d);
        const h = s.hwpts[o.h];
        if (x === undefined || h === undefined) break;
        void (o.k === 'attachHwpt' ? iommufdDeviceAttach(x, h, o.pasid) : iommufdDeviceReplace(x, h, o.pasid));
        break;
      }
      case 'detach': { const x = idev(s, o.d); if (x !== undefined) iommufdDeviceDetach(x, o.pasid); break; }
      case 'map': {
        const va = s.cl.anon(1);
        void s.cl.call('IOMMU_IOAS_MAP', { flags: FIXED | READ | WRITE, ioas_id: s.ioasId, user_va: BigInt(va), length: BigInt(PAGE), iova: BigInt((o.page + 1) * 0x10_0000) });
        break;
      }
      case 'close':
        closeSlot(s);
        slots[o.c] = open(w);
        break;
    }
    check();
  }
  for (const s of slots) closeSlot(s);
  for (const s of closed) {
    expect(s.ctx.isClosed).toBe(true);
    expect(s.ctx.objects.size).toBe(0);
    expect(s.cl.proc.status().VmPin).toBe(0);
    expect(s.cl.proc.user.lockedVm).toBe(0);
  }
  for (const g of w.core.groups) {
    expect(g.owner).toBeNull();
    expect(g.ownerCnt).toBe(0);
    expect(g.domain).toBe(g.defaultDomain);
    expect(g.pasidArray.size).toBe(0);
  }
}

describe('bind/attach/unbind/close in two contexts', () => {
  it('never two owners of a group; nothing left after closing everything', () => {
    fc.assert(fc.property(fc.array(op, { minLength: 10, maxLength: 60 }), (ops) => { run(ops); }), { numRuns: 30 });
  });
});
