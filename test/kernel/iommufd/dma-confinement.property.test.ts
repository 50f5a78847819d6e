// DMA confinement, as a property: two processes on the default host, each with its own iommufd context,
// device (39:00.0 and 6a:01.0, separate groups), two IOASes and a populated 16-page buffer, run random
// sequences of IOAS map/unmap/copy (through the typed API, i.e. the byte-level dispatch), attach / replace
// / detach, and device DMA reads and writes at random IOVAs. The oracle is independent of iommufd: a model
// of which user page each IOVA of each IOAS maps (from the successful calls) and the process's own page
// tables (mm.lookupPfn). Every DMA that succeeds must touch exactly the expected physical page (writes land
// there and nowhere else in either buffer; reads return its bytes); a DMA with no expected page must fault.
// At the end, after unbinding and closing everything, no pins, accounting or objects may remain.

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { IommufdCtx } from '../../../src/kernel/iommufd/context.ts';
import { iommufdDeviceAttach, iommufdDeviceBind, iommufdDeviceDetach, iommufdDeviceReplace, iommufdDeviceUnbind, type IommufdDevice } from '../../../src/kernel/iommufd/device.ts';
import { MAP_ANONYMOUS, MAP_POPULATE, MAP_PRIVATE } from '../../../src/kernel/mm/mman.ts';
import type { Process } from '../../../src/kernel/process/process.ts';
import * as api from '../../../src/uapi/api.ts';
import { PAGE, RW, value, world, type World } from '../../uapi/dispatch-helpers.ts';
import type { PciDev } from '../../../src/pci/dev.ts';

const NPAGES = 16;
const SLOTS = 3;
const SLOT_PAGES = 4;
const IOVA_BASE = 0x100_0000;
const slotIova = (slot: number): number => IOVA_BASE + slot * SLOT_PAGES * PAGE;

type Op =
  | { k: 'map'; who: number; ioas: number; slot: number; page: number; n: number }
  | { k: 'unmap'; who: number; ioas: number; slot: number }
  | { k: 'unmapAll'; who: number; ioas: number }
  | { k: 'copy'; who: number; from: number; slot: number; toSlot: number }
  | { k: 'attach'; who: number; ioas: number }
  | { k: 'detach'; who: number }
  | { k: 'dma'; who: number; slot: number; page: number; off: number; write: boolean; byte: number; aim: boolean };

const who = fc.integer({ min: 0, max: 1 });
const ioas = fc.integer({ min: 0, max: 1 });
const slot = fc.integer({ min: 0, max: SLOTS - 1 });
const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 4, arbitrary: fc.record({ k: fc.constant('map' as const), who, ioas, slot, page: fc.integer({ min: 0, max: NPAGES - 1 }), n: fc.integer({ min: 1, max: SLOT_PAGES }) }) },
  { weight: 2, arbitrary: fc.record({ k: fc.constant('unmap' as const), who, ioas, slot }) },
  { weight: 1, arbitrary: fc.record({ k: fc.constant('unmapAll' as const), who, ioas }) },
  { weight: 2, arbitrary: fc.record({ k: fc.constant('copy' as const), who, from: ioas, slot, toSlot: slot }) },
  { weight: 2, arbitrary: fc.record({ k: fc.constant('attach' as const), who, ioas }) },
  { weight: 1, arbitrary: fc.record({ k: fc.constant('detach' as const), who }) },
  { weight: 6, arbitrary: fc.record({ k: fc.constant('dma' as const), who, slot, page: fc.integer({ min: 0, max: SLOT_PAGES - 1 }), off: fc.integer({ min: 0, max: PAGE - 8 }), write: fc.boolean(), byte: fc.integer({ min: 0, max: 255 }), aim: fc.boolean() }) },
);

/** A whole mapping as the model has it: IOVA start, page count, the user VA it maps. */
interface Area { iova: number; n: number; va: number }

interface Side {
  proc: Process; fd: number; ctx: IommufdCtx; dev: PciDev; idev: IommufdDevice;
  ioas: number[]; buf: number; shadow: Uint8Array;
  /** Model: per IOAS, its areas by slot. */
  areas: Map<number, Area>[];
  attached: number | null;
}

function side(w: World, uid: number, bdf: string): Side {
  const memlock = 4096 * PAGE;
  const proc = w.table.spawn({ uid, rlimits: { RLIMIT_MEMLOCK: { soft: memlock, hard: memlock } } });
  const fd = value(api.openIommufd({ proc, core: w.core }));
  const file = value(proc.fds.get(fd));
  const ctx = file.file as IommufdCtx;
  const dev = w.dev(bdf);
  const idev = value(iommufdDeviceBind(ctx, dev, { file }));
  const ioasIds = [value(api.ioasAlloc({ proc, fd })), value(api.ioasAlloc({ proc, fd }))];
  const buf = value(proc.mmap(0, NPAGES * PAGE, RW, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0));
  const shadow = new Uint8Array(NPAGES * PAGE).map((_, i) => (i * 7 + uid) & 0xff);
  value(proc.mm.write(buf, shadow));
  // Start attached to the first IOAS (an auto domain); the sequence may detach, replace or reattach.
  value(iommufdDeviceAttach(idev, ioasIds[0]!));
  return { proc, fd, ctx, dev, idev, ioas: ioasIds, buf, shadow, areas: [new Map<number, Area>(), new Map<number, Area>()], attached: 0 };
}

/** The user VA `iova` reaches through IOAS `i` of `s` by the model, or null. */
function modelVa(s: Side, i: number, iova: number): number | null {
  for (const a of s.areas[i]!.values()) {
    if (iova >= a.iova && iova < a.iova + a.n * PAGE) return a.va + (iova - a.iova);
  }
  return null;
}

function overlaps(s: Side, i: number, iova: number, n: number): boolean {
  for (const a of s.areas[i]!.values()) if (iova < a.iova + a.n * PAGE && a.iova < iova + n * PAGE) return true;
  return false;
}

/** Both buffers hold exactly what the model says (compared here: toEqual on 64 KiB is slow). */
function checkBuffers(sides: Side[]): void {
  for (const s of sides) {
    const got = new Uint8Array(NPAGES * PAGE);
    value(s.proc.mm.read(s.buf, got));
    const diff = got.findIndex((b, i) => b !== s.shadow[i]);
    expect(diff, `buffer of pid ${s.proc.pid} differs at byte ${diff}`).toBe(-1);
  }
}

/** Outcomes seen over all runs, so the property is known to exercise both paths. */
const seen = { ok: 0, fault: 0 };

function step(w: World, sides: Side[], op: Op): void {
  const s = sides[op.who]!;
  const { proc, fd } = s;
  switch (op.k) {
    case 'map': {
      const n = Math.min(op.n, NPAGES - op.page);
      const iova = slotIova(op.slot);
      const r = api.ioasMap({ proc, fd, ioasId: s.ioas[op.ioas]!, userVa: s.buf + op.page * PAGE, length: n * PAGE, iova });
      expect(r.ok).toBe(!overlaps(s, op.ioas, iova, n));
      if (r.ok) s.areas[op.ioas]!.set(op.slot, { iova, n, va: s.buf + op.page * PAGE });
      return;
    }
    case 'unmap': {
      const a = s.areas[op.ioas]!.get(op.slot);
      const r = api.ioasUnmap({ proc, fd, ioasId: s.ioas[op.ioas]!, iova: slotIova(op.slot), length: (a?.n ?? 1) * PAGE });
      if (a === undefined) {
        expect(r.ok).toBe(false);
      } else {
        expect(value(r)).toBe(BigInt(a.n * PAGE));
        s.areas[op.ioas]!.delete(op.slot);
      }
      return;
    }
    case 'unmapAll': {
      const total = [...s.areas[op.ioas]!.values()].reduce((t, a) => t + a.n * PAGE, 0);
      const r = api.ioasUnmap({ proc, fd, ioasId: s.ioas[op.ioas]!, iova: 0, length: (1n << 64n) - 1n });
      expect(value(r)).toBe(BigInt(total));
      s.areas[op.ioas]!.clear();
      return;
    }
    case 'copy': {
      const a = s.areas[op.from]!.get(op.slot);
      const to = 1 - op.from;
      const dst = slotIova(op.toSlot);
      const r = api.ioasCopy({ proc, fd, srcIoasId: s.ioas[op.from]!, dstIoasId: s.ioas[to]!, srcIova: slotIova(op.slot), length: (a?.n ?? 1) * PAGE, dstIova: dst });
      const expectOk = a !== undefined && !overlaps(s, to, dst, a.n);
      expect(r.ok).toBe(expectOk);
      if (r.ok && a !== undefined) s.areas[to]!.set(op.toSlot, { iova: dst, n: a.n, va: a.va });
      return;
    }
    case 'attach': {
      const id = s.ioas[op.ioas]!;
      value(s.attached === null ? iommufdDeviceAttach(s.idev, id) : iommufdDeviceReplace(s.idev, id));
      s.attached = op.ioas;
      return;
    }
    case 'detach':
      iommufdDeviceDetach(s.idev);
      s.attached = null;
      return;
    case 'dma': {
      // Aimed DMAs go to a page the model has mapped in the attached IOAS (when there is one), so that
      // successes are frequent; the others go anywhere in the slots.
      const targets = s.attached === null ? [] : [...s.areas[s.attached]!.values()];
      const aimed = op.aim ? targets[op.byte % Math.max(1, targets.length)] : undefined;
      const iova = aimed === undefined ? slotIova(op.slot) + op.page * PAGE + op.off : aimed.iova + (op.page % aimed.n) * PAGE + op.off;
      const va = s.attached === null ? null : modelVa(s, s.attached, iova);
      seen[va === null ? 'fault' : 'ok']++;
      const expectedPa = va === null ? null : s.proc.mm.lookupPfn(va) * PAGE + (va % PAGE);
      if (op.write) {
        const data = new Uint8Array(8).fill(op.byte);
        const r = w.machine.dma(s.dev, { op: 'write', address: iova, length: 8, data });
        if (va === null) {
          expect(r.status).toBe('fault');
        } else {
          expect(r.status).toBe('ok');
          s.shadow.set(data, va - s.buf);
          const at = new Uint8Array(8);
          w.memory.read(expectedPa!, at);
          expect(at).toEqual(data);
        }
        checkBuffers(sides);
      } else {
        const got = new Uint8Array(8);
        const r = w.machine.dma(s.dev, { op: 'read', address: iova, length: 8, data: got });
        if (va === null) {
          expect(r.status).toBe('fault');
        } else {
          expect(r.status).toBe('ok');
          const at = new Uint8Array(8);
          w.memory.read(expectedPa!, at);
          expect(got).toEqual(at);
          expect(got).toEqual(s.shadow.subarray(va - s.buf, va - s.buf + 8));
        }
      }
      return;
    }
  }
}

describe('DMA confinement (property)', () => {
  it('every successful DMA touches exactly the page the attached IOAS maps; unmapped IOVAs fault; nothing leaks', () => {
    fc.assert(
      fc.property(fc.array(opArb, { minLength: 10, maxLength: 40, size: 'max' }), (ops) => {
        const w = world(4096);
        const before = w.frames.allocated;
        const sides = [side(w, 1000, '39:00.0'), side(w, 1001, '6a:01.0')];
        const bufPfns = sides.flatMap((s) => Array.from({ length: NPAGES }, (_, i) => s.proc.mm.lookupPfn(s.buf + i * PAGE)));
        for (const op of ops) step(w, sides, op);
        for (const s of sides) {
          iommufdDeviceUnbind(s.idev);
          value(s.proc.fds.close(s.fd));
          expect(s.ctx.objects.size).toBe(0);
          expect(s.proc.mm.pinnedVm).toBe(0);
          expect(s.proc.mm.lockedVm).toBe(0);
          expect(s.proc.user.lockedVm).toBe(0);
          expect(w.core.domainOf(s.dev)).not.toBe(null);
        }
        for (const pfn of bufPfns) expect(w.memory.pinCount(pfn)).toBe(0);
        for (const s of sides) s.proc.exit();
        expect(w.frames.allocated).toBe(before);
      }),
      { numRuns: 100 },
    );
    expect(seen.ok).toBeGreaterThan(0);
    expect(seen.fault).toBeGreaterThan(0);
  });
});
