// Property: random sequences of map, unmap, pin, unpin, rw, access detach/attach and device (domain)
// attach/detach on one IOAS, with two accesses whose drivers honour the unmap contract, keep the pins
// exact: every pinned page is pinned once (pinned_vm = user locked_vm = the union of what the accesses
// pin and, while a device is attached, everything mapped), each area's num_accesses is the number of pins
// over it, errnos are the predicted ones, rw moves the real bytes, and tearing down returns all to zero.

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { PAGE_SIZE } from '../../../src/hw/memory/physical-memory.ts';
import { iommufdAccessAttach, iommufdAccessDestroy, iommufdAccessDetach, iommufdAccessRw } from '../../../src/kernel/iommufd/access.ts';
import { iommufdDeviceAttach, iommufdDeviceBind, iommufdDeviceDetach, iommufdDeviceUnbind } from '../../../src/kernel/iommufd/device.ts';
import * as api from '../../../src/uapi/api.ts';
import { errno, value, world } from '../../uapi/dispatch-helpers.ts';
import { FakeDriver, P, setup } from './access-helpers.ts';

const SLOTS = 4;
const SLOT_PAGES = 4;
const BASE = 0x40_0000n;
/** Slots are 8 pages apart: the 4 pages after each are a hole. */
const slotIova = (slot: number): bigint => BASE + BigInt(slot * 8) * P;
const NVME = '39:00.0';

type Op =
  | { k: 'map'; slot: number; ro: boolean }
  | { k: 'unmap'; slot: number }
  | { k: 'unmapAll' }
  | { k: 'pin'; who: number; slot: number; page: number; n: number; write: boolean; sub: number }
  | { k: 'unpin'; who: number; pick: number }
  | { k: 'rw'; who: number; slot: number; off: number; len: number; write: boolean }
  | { k: 'toggleAccess'; who: number }
  | { k: 'toggleDevice' };

const who = fc.integer({ min: 0, max: 1 });
const slot = fc.integer({ min: 0, max: SLOTS - 1 });
const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 4, arbitrary: fc.record({ k: fc.constant('map' as const), slot, ro: fc.boolean() }) },
  { weight: 2, arbitrary: fc.record({ k: fc.constant('unmap' as const), slot }) },
  { weight: 1, arbitrary: fc.constant({ k: 'unmapAll' as const }) },
  {
    weight: 6,
    arbitrary: fc.record({
      k: fc.constant('pin' as const), who, slot, page: fc.integer({ min: 0, max: SLOT_PAGES - 1 }),
      n: fc.integer({ min: 1, max: SLOT_PAGES + 1 }), write: fc.boolean(), sub: fc.constantFrom(0, 0, 1, 100),
    }),
  },
  { weight: 4, arbitrary: fc.record({ k: fc.constant('unpin' as const), who, pick: fc.nat() }) },
  {
    weight: 3,
    arbitrary: fc.record({
      k: fc.constant('rw' as const), who, slot, off: fc.integer({ min: 0, max: SLOT_PAGES * PAGE_SIZE - 1 }),
      len: fc.integer({ min: 1, max: 2 * PAGE_SIZE }), write: fc.boolean(),
    }),
  },
  { weight: 1, arbitrary: fc.record({ k: fc.constant('toggleAccess' as const), who }) },
  { weight: 1, arbitrary: fc.constant({ k: 'toggleDevice' as const }) },
);

describe('ACCESS pins and accounting (property)', () => {
  const w = world();
  /** A fresh uid per run: user->locked_vm is per user and the world is shared between runs. */
  let uid = 2000;
  it('random pin/unpin/unmap/rw sequences keep pins exact and release to zero', () => {
    fc.assert(fc.property(fc.array(opArb, { maxLength: 40 }), (ops) => {
      w.core.log.splice(0);
      const s = setup(w, { uid: uid++ });
      const drivers = [new FakeDriver(s.ctx), new FakeDriver(s.ctx)];
      for (const d of drivers) value(iommufdAccessAttach(d.access, s.ioasId));
      const attached = [true, true];
      const idev = value(iommufdDeviceBind(s.ctx, w.dev(NVME), { file: s.file }));
      try {
        let deviceOn = false;
        /** Mapped slots: user VA and whether read-only. */
        const mapped = new Map<number, { va: number; ro: boolean }>();

        const slotOf = (iova: bigint): number => Number((iova - BASE) / (8n * P));
        const check = (): void => {
          const want = new Set<string>();
          const perArea = new Map<number, number>();
          for (const d of drivers) {
            for (const p of d.pins) {
              const sl = slotOf(p.iova);
              perArea.set(sl, (perArea.get(sl) ?? 0) + 1);
              for (let i = (p.iova - BASE) / P; i <= (p.iova + p.length - 1n - BASE) / P; i++) want.add(String(i));
            }
          }
          if (deviceOn) {
            for (const sl of mapped.keys()) for (let i = 0; i < SLOT_PAGES; i++) want.add(String(sl * 8 + i));
          }
          let pinned = 0;
          for (const pg of s.ioas.pagesList()) pinned += pg.pinnedPages;
          expect(pinned).toBe(want.size);
          expect(s.pinnedVm()).toBe(want.size);
          expect(s.lockedVm()).toBe(want.size);
          for (const sl of mapped.keys()) expect(s.ioas.iopt.areaAt(slotIova(sl))!.numAccesses).toBe(perArea.get(sl) ?? 0);
        };

        for (const o of ops) {
          switch (o.k) {
            case 'map': {
              if (mapped.has(o.slot)) break;
              const va = s.map(slotIova(o.slot), SLOT_PAGES, { writeable: !o.ro });
              mapped.set(o.slot, { va, ro: o.ro });
              break;
            }
            case 'unmap': {
              const r = s.unmap(slotIova(o.slot), BigInt(SLOT_PAGES) * P);
              expect(errno(r)).toBe(mapped.has(o.slot) ? 'ok' : 'ENOENT');
              mapped.delete(o.slot);
              break;
            }
            case 'unmapAll':
              value(s.unmap(0n, (1n << 64n) - 1n));
              mapped.clear();
              break;
            case 'pin': {
              const d = drivers[o.who]!;
              const iova = slotIova(o.slot) + BigInt(o.page) * P;
              const length = BigInt(o.n) * P - BigInt(o.sub);
              const r = d.pin(iova, length, o.write);
              const m = mapped.get(o.slot);
              const want = !attached[o.who] || m === undefined || o.page * PAGE_SIZE + Number(length) > SLOT_PAGES * PAGE_SIZE
                ? 'ENOENT' : o.write && m.ro ? 'EPERM' : 'ok';
              // A read-only write pin that also runs into the hole fails EPERM first (area order).
              expect(errno(r)).toBe(want === 'ENOENT' && attached[o.who] && m !== undefined && o.write && m.ro ? 'EPERM' : want);
              break;
            }
            case 'unpin': {
              const d = drivers[o.who]!;
              if (d.pins.length === 0) break;
              const p = d.pins[o.pick % d.pins.length]!;
              d.unpin(p.iova, p.length);
              break;
            }
            case 'rw': {
              const d = drivers[o.who]!;
              const m = mapped.get(o.slot);
              const len = Math.min(o.len, SLOT_PAGES * PAGE_SIZE - o.off);
              const data = new Uint8Array(len).map((_, i) => (i + o.off) & 0xff);
              const r = iommufdAccessRw(d.access, slotIova(o.slot) + BigInt(o.off), data, { write: o.write });
              const want = !attached[o.who] || m === undefined ? 'ENOENT' : o.write && m.ro ? 'EPERM' : 'ok';
              expect(errno(r)).toBe(want);
              if (r.ok && m !== undefined) {
                const back = new Uint8Array(len);
                value(s.proc.mm.read(m.va + o.off, back));
                if (o.write) expect(back).toEqual(data);
                else expect(data).toEqual(back);
              }
              break;
            }
            case 'toggleAccess': {
              const d = drivers[o.who]!;
              if (attached[o.who]) iommufdAccessDetach(d.access);
              else value(iommufdAccessAttach(d.access, s.ioasId));
              attached[o.who] = !attached[o.who];
              expect(d.pins).toEqual([]);
              break;
            }
            case 'toggleDevice':
              if (deviceOn) iommufdDeviceDetach(idev);
              else value(iommufdDeviceAttach(idev, s.ioasId));
              deviceOn = !deviceOn;
              break;
          }
          check();
        }

        if (deviceOn) iommufdDeviceDetach(idev);
        iommufdDeviceUnbind(idev);
        for (const d of drivers) iommufdAccessDestroy(d.access);
        for (const d of drivers) expect(d.pins).toEqual([]);
        expect([s.pinnedVm(), s.lockedVm()]).toEqual([0, 0]);
        expect(s.ioas.users).toBe(1);
        value(api.destroy({ proc: s.proc, fd: s.fd, id: s.ioasId }));
        value(s.proc.fds.close(s.fd));
        expect(s.ctx.isClosed).toBe(true);
        expect(s.w.core.log.filter((l) => l.startsWith('WARNING:'))).toEqual([]);
      } finally {
        // A failed run must not leave the shared world's device owned or the process alive.
        if (idev.isBound) { iommufdDeviceDetach(idev); iommufdDeviceUnbind(idev); }
        s.proc.exit();
      }
    }), { numRuns: 60 });
  });
});
