// Accounting through the byte-level dispatch: VmPin, VmLck and user->locked_vm return to zero when the
// iommufd is closed, and a fast-check property over random map/unmap/copy/destroy/attach sequences in two
// processes (USER and MM accounting): after every fd is closed and both exit, nothing is pinned, nothing
// is charged and no frame is left allocated.

import fc from 'fast-check';
import { beforeAll, describe, expect, it } from 'vitest';
import type { IommufdCtx } from '../../src/kernel/iommufd/context.ts';
import type { Ioas } from '../../src/kernel/iommufd/ioas.ts';
import type { IoPageTableDomain } from '../../src/kernel/iommu/domain.ts';
import { client, FIXED, PAGE, READ, U64_MAX, value, world, WRITE, type Caller, type World } from './dispatch-helpers.ts';

const RW = READ | WRITE;
let w: World;
beforeAll(() => { w = world(); });

function ctxOf(c: Caller): IommufdCtx {
  return value(c.proc.fds.get(c.fd)).file as IommufdCtx;
}

function attach(c: Caller, id: number): IoPageTableDomain {
  const d = value(w.core.allocPagingDomain(w.dev('39:00.0'), 'unmanaged')) as IoPageTableDomain;
  value(value(ctxOf(c).objects.get<Ioas>(id, 'ioas')).addDomain(d, {}));
  return d;
}

describe('accounting back to zero after close', () => {
  for (const mode of ['user', 'mm'] as const) {
    it(`${mode} mode: VmPin${mode === 'mm' ? ', VmLck' : ''} and locked_vm while mapped, zero after close`, () => {
      const c = client(w, { caps: ['CAP_SYS_RESOURCE'], uid: mode === 'mm' ? 2000 : 2001 });
      if (mode === 'mm') expect(c.call('IOMMU_OPTION', { option_id: 0, op: 0, val64: 1n }).e).toBe('ok');
      const id = c.ioasAlloc();
      const d = attach(c, id);
      const va = c.anon(8);
      const m = c.call('IOMMU_IOAS_MAP', { ioas_id: id, flags: RW, user_va: BigInt(va), length: BigInt(8 * PAGE) });
      expect(m.e).toBe('ok');
      const id2 = c.ioasAlloc();
      const d2 = attach(c, id2);
      expect(c.call('IOMMU_IOAS_COPY', { flags: RW, dst_ioas_id: id2, src_ioas_id: id, length: BigInt(8 * PAGE), src_iova: m.out.iova }).e).toBe('ok');
      const st = c.proc.status();
      expect(st.VmPin).toBe(32);
      expect(st.VmLck).toBe(mode === 'mm' ? 32 : 0);
      expect(c.proc.user.lockedVm).toBe(mode === 'user' ? 8 : 0);
      value(c.proc.fds.close(c.fd));
      d.free();
      d2.free();
      expect(c.proc.status()).toMatchObject({ VmPin: 0, VmLck: 0 });
      expect(c.proc.user.lockedVm).toBe(0);
      c.proc.exit();
    });
  }
});

type Op =
  | { k: 'map'; p: number; i: number; n: number; off: number; fixed: boolean }
  | { k: 'unmap'; p: number; i: number; which: number }
  | { k: 'unmapAll'; p: number; i: number }
  | { k: 'copy'; p: number; src: number; dst: number; which: number }
  | { k: 'destroy'; p: number; i: number }
  | { k: 'attach'; p: number; i: number }
  | { k: 'detach'; p: number; i: number };

const P = fc.integer({ min: 0, max: 1 });
const I = fc.integer({ min: 0, max: 2 });
const opArb: fc.Arbitrary<Op> = fc.oneof(
  fc.record({ k: fc.constant('map' as const), p: P, i: I, n: fc.integer({ min: 1, max: 6 }), off: fc.integer({ min: 0, max: 10 }), fixed: fc.boolean() }),
  fc.record({ k: fc.constant('unmap' as const), p: P, i: I, which: fc.nat() }),
  fc.record({ k: fc.constant('unmapAll' as const), p: P, i: I }),
  fc.record({ k: fc.constant('copy' as const), p: P, src: I, dst: I, which: fc.nat() }),
  fc.record({ k: fc.constant('destroy' as const), p: P, i: I }),
  fc.record({ k: fc.constant('attach' as const), p: P, i: I }),
  fc.record({ k: fc.constant('detach' as const), p: P, i: I }),
);

describe('property: pins, accounting and frames after random sequences', () => {
  it('everything is released after close and exit', () => {
    fc.assert(fc.property(fc.array(opArb, { maxLength: 40 }), fc.boolean(), (ops, mm) => {
      const baseFrames = w.frames.allocated;
      const cs = [client(w, { caps: ['CAP_SYS_RESOURCE'], memlockPages: 24, uid: 1000 }), client(w, { memlockPages: 24, uid: 1001 })];
      if (mm) expect((cs[0] as Caller).call('IOMMU_OPTION', { option_id: 0, op: 0, val64: 1n }).e).toBe('ok');
      const bufs = cs.map((c) => c.anon(16));
      const ids = cs.map((c) => [c.ioasAlloc(), c.ioasAlloc(), c.ioasAlloc()]);
      const domains = new Map<string, IoPageTableDomain>();
      const mapped = cs.map(() => [[], [], []] as { iova: bigint; len: bigint }[][]);
      let fixedNext = 0x100_0000n;
      for (const o of ops) {
        const c = cs[o.p] as Caller;
        const idsP = ids[o.p] as number[];
        const m = mapped[o.p] as { iova: bigint; len: bigint }[][];
        switch (o.k) {
          case 'map': {
            const len = BigInt(Math.min(o.n, 16 - o.off) * PAGE);
            if (len <= 0n) break;
            const iova = fixedNext;
            fixedNext += 0x10_0000n;
            const r = c.call('IOMMU_IOAS_MAP', { ioas_id: idsP[o.i], flags: RW | (o.fixed ? FIXED : 0), user_va: BigInt((bufs[o.p] as number) + o.off * PAGE), length: len, iova });
            expect(['ok', 'ENOMEM']).toContain(r.e);
            if (r.e === 'ok') (m[o.i] as { iova: bigint; len: bigint }[]).push({ iova: r.out.iova, len });
            break;
          }
          case 'unmap': {
            const list = m[o.i] as { iova: bigint; len: bigint }[];
            if (list.length === 0) break;
            const [a] = list.splice(o.which % list.length, 1);
            if (a === undefined) break;
            const r = c.call('IOMMU_IOAS_UNMAP', { ioas_id: idsP[o.i], iova: a.iova, length: a.len });
            expect(r.e).toBe('ok');
            expect(r.out.length).toBe(a.len);
            break;
          }
          case 'unmapAll':
            expect(c.call('IOMMU_IOAS_UNMAP', { ioas_id: idsP[o.i], iova: 0n, length: U64_MAX }).e).toBe('ok');
            m[o.i] = [];
            break;
          case 'copy': {
            const list = m[o.src] as { iova: bigint; len: bigint }[];
            if (list.length === 0) break;
            const a = list[o.which % list.length] as { iova: bigint; len: bigint };
            const r = c.call('IOMMU_IOAS_COPY', { flags: RW, src_ioas_id: idsP[o.src], dst_ioas_id: idsP[o.dst], src_iova: a.iova, length: a.len });
            expect(['ok', 'ENOMEM']).toContain(r.e);
            if (r.e === 'ok') (m[o.dst] as { iova: bigint; len: bigint }[]).push({ iova: r.out.dst_iova, len: a.len });
            break;
          }
          case 'destroy': {
            const key = `${o.p}:${idsP[o.i]}`;
            const d = domains.get(key);
            if (d !== undefined) {
              value(value(ctxOf(c).objects.get<Ioas>(idsP[o.i] as number, 'ioas')).removeDomain(d));
              d.free();
              domains.delete(key);
            }
            expect(c.call('IOMMU_DESTROY', { id: idsP[o.i] }).e).toBe('ok');
            idsP[o.i] = c.ioasAlloc();
            m[o.i] = [];
            break;
          }
          case 'attach': {
            const key = `${o.p}:${idsP[o.i]}`;
            if (domains.has(key)) break;
            const d = value(w.core.allocPagingDomain(w.dev('39:00.0'), 'unmanaged')) as IoPageTableDomain;
            const r = value(ctxOf(c).objects.get<Ioas>(idsP[o.i] as number, 'ioas')).addDomain(d, {});
            if (r.ok) domains.set(key, d);
            else { expect(['ENOMEM', 'EADDRINUSE']).toContain(r.errno); d.free(); }
            break;
          }
          case 'detach': {
            const key = `${o.p}:${idsP[o.i]}`;
            const d = domains.get(key);
            if (d === undefined) break;
            value(value(ctxOf(c).objects.get<Ioas>(idsP[o.i] as number, 'ioas')).removeDomain(d));
            d.free();
            domains.delete(key);
            break;
          }
        }
      }
      // Domains stay attached: closing the fd destroys each IOAS, which unmaps and detaches them.
      for (const c of cs) {
        value(c.proc.fds.close(c.fd));
        expect(c.proc.status()).toMatchObject({ VmPin: 0, VmLck: 0 });
        expect(c.proc.user.lockedVm).toBe(0);
        c.proc.exit();
      }
      for (const d of domains.values()) {
        expect(d.iovaToPhys(0x100_0000)).toBeNull();
        d.free();
      }
      let pinned = 0;
      w.frames.forEachAllocated((pfn) => { pinned += w.memory.pinCount(pfn); });
      expect(pinned).toBe(0);
      expect(w.frames.allocated).toBe(baseFrames);
    }), { numRuns: 60 });
  });
});
