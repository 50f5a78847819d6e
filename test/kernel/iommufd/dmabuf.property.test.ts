// dma-buf areas under random sequences of map, IOAS_COPY, unmap, revoke/restore, mock domains coming and
// going and fds closing, against a model of Linux's rules: every mock domain translates a live area to
// the exporter's page and a revoked one to nothing; a revoke kills every area sharing the pages (copies
// too), restoring never brings them back; a revoked buffer cannot be mapped (ENODEV). Attachments match
// the live storages, and at the end everything balances: no attachment left, every buffer released,
// no user page pinned (teardown's MD_CHECK_REFS).

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { DmaBuf } from '../../../src/kernel/dma-buf/dma-buf.ts';
import { IommufdCtx } from '../../../src/kernel/iommufd/context.ts';
import type { HwptPaging } from '../../../src/kernel/iommufd/hw-pagetable.ts';
import type { MockDmaBufExporter } from '../../../src/kernel/iommufd/selftest/mock-dmabuf.ts';
import * as api from '../../../src/uapi/api.ts';
import { MOCK_APERTURE_LAST, MOCK_APERTURE_START } from '../../../src/uapi/iommufd-test-structs.ts';
import { errno, PAGE, selftestWorld, value } from './selftest-helpers.ts';

const BUF_PAGES = 4;

type Op =
  | { k: 'map'; buf: number; ioas: number; start: number; n: number }
  | { k: 'copy'; area: number }
  | { k: 'unmap'; area: number }
  | { k: 'revoke'; buf: number; revoked: boolean }
  | { k: 'domain'; ioas: number }
  | { k: 'undomain'; md: number }
  | { k: 'close'; buf: number };

const opArb: fc.Arbitrary<Op> = fc.oneof(
  fc.record({ k: fc.constant('map' as const), buf: fc.nat(1), ioas: fc.nat(1), start: fc.nat(BUF_PAGES - 1), n: fc.integer({ min: 1, max: BUF_PAGES }) }),
  fc.record({ k: fc.constant('copy' as const), area: fc.nat(7) }),
  fc.record({ k: fc.constant('unmap' as const), area: fc.nat(7) }),
  fc.record({ k: fc.constant('revoke' as const), buf: fc.nat(1), revoked: fc.boolean() }),
  fc.record({ k: fc.constant('domain' as const), ioas: fc.nat(1) }),
  fc.record({ k: fc.constant('undomain' as const), md: fc.nat(3) }),
  fc.record({ k: fc.constant('close' as const), buf: fc.nat(1) }),
);

interface TestBuf { dfd: number | null; readonly file: DmaBuf; readonly exporter: MockDmaBufExporter; revoked: boolean }
interface Area { ioas: number; iova: bigint; pages: number; buf: number; start: number; n: number }

function run(ops: readonly Op[]): void {
  const w = selftestWorld();
  const ioases = [w.ioasAlloc(), w.ioasAlloc()];
  // Keep automatic IOVAs inside the mock aperture, so a mock domain can attach after maps.
  for (const ioasId of ioases) value(api.ioasAllowIovas({ ...w.a, ioasId, ranges: [{ start: MOCK_APERTURE_START, last: MOCK_APERTURE_LAST }] }));
  const f = value(w.proc.fds.get(w.fd)).file;
  if (!(f instanceof IommufdCtx)) throw new Error('not an iommufd');
  const ctx = f;
  const bufs = [0, 1].map((): TestBuf => {
    const dfd = value(w.t.getDmabuf(BUF_PAGES * PAGE));
    const file = value(w.proc.fds.get(dfd)).file as DmaBuf;
    return { dfd, file, exporter: file.exporter as MockDmaBufExporter, revoked: false };
  });
  // Model: each storage (one per MAP_FILE, shared by its copies) is live until its buffer is invalidated.
  const live: boolean[] = [];
  const storageBuf: number[] = [];
  let areas: Area[] = [];
  const mds: { stdevId: number; hwptId: number; ioas: number }[] = [];

  const check = (): void => {
    for (const md of mds) {
      const domain = value(ctx.objects.get<HwptPaging>(md.hwptId, 'hwpt_paging')).domain;
      for (const a of areas.filter((x) => x.ioas === md.ioas)) {
        for (let i = 0; i < a.n; i++) {
          const want = live[a.pages] === true ? (bufs[a.buf] as TestBuf).exporter.pageToPhys(a.start + i) : null;
          expect(domain.iovaToPhys(Number(a.iova) + i * PAGE)).toBe(want);
        }
      }
    }
    bufs.forEach((b, i) => {
      const storages = new Set(areas.filter((a) => a.buf === i).map((a) => a.pages));
      expect(b.file.attachmentCount).toBe(storages.size);
      expect(b.file.released).toBe(b.dfd === null && storages.size === 0);
    });
  };

  for (const op of ops) {
    switch (op.k) {
      case 'map': {
        const b = bufs[op.buf] as TestBuf;
        if (b.dfd === null) break;
        const n = Math.min(op.n, BUF_PAGES - op.start);
        const r = api.ioasMapFile({ ...w.a, ioasId: ioases[op.ioas] as number, file: b.dfd, start: op.start * PAGE, length: n * PAGE });
        if (b.revoked) { expect(errno(r)).toBe('ENODEV'); break; }
        live.push(true);
        storageBuf.push(op.buf);
        areas.push({ ioas: op.ioas, iova: value(r), pages: live.length - 1, buf: op.buf, start: op.start, n });
        break;
      }
      case 'copy': {
        const a = areas[op.area % Math.max(areas.length, 1)];
        if (a === undefined) break;
        const to = 1 - a.ioas;
        const dst = value(api.ioasCopy({ ...w.a, srcIoasId: ioases[a.ioas] as number, dstIoasId: ioases[to] as number, srcIova: a.iova, length: a.n * PAGE }));
        areas.push({ ...a, ioas: to, iova: dst });
        break;
      }
      case 'unmap': {
        const a = areas[op.area % Math.max(areas.length, 1)];
        if (a === undefined) break;
        expect(value(api.ioasUnmap({ ...w.a, ioasId: ioases[a.ioas] as number, iova: a.iova, length: a.n * PAGE }))).toBe(BigInt(a.n * PAGE));
        areas = areas.filter((x) => x !== a);
        break;
      }
      case 'revoke': {
        const b = bufs[op.buf] as TestBuf;
        if (b.dfd === null) break;
        value(w.t.revokeDmabuf(b.dfd, op.revoked));
        b.revoked = op.revoked;
        // Any invalidation is a revoke for the importer (iopt_revoke_notify() does not ask why).
        storageBuf.forEach((sb, i) => { if (sb === op.buf) live[i] = false; });
        break;
      }
      case 'domain': {
        if (mds.length >= 3) break;
        const md = value(w.t.mockDomain(ioases[op.ioas] as number));
        mds.push({ stdevId: md.stdevId, hwptId: md.hwptId, ioas: op.ioas });
        break;
      }
      case 'undomain': {
        const md = mds[op.md % Math.max(mds.length, 1)];
        if (md === undefined) break;
        value(api.destroy({ ...w.a, id: md.stdevId }));
        mds.splice(mds.indexOf(md), 1);
        break;
      }
      case 'close': {
        const b = bufs[op.buf] as TestBuf;
        if (b.dfd === null) break;
        value(w.proc.fds.close(b.dfd));
        b.dfd = null;
        break;
      }
    }
    check();
  }
  for (const b of bufs) if (b.dfd !== null) value(w.proc.fds.close(b.dfd));
  w.teardown();
  for (const b of bufs) {
    expect(b.file.attachmentCount).toBe(0);
    expect(b.file.released).toBe(true);
  }
  expect(w.proc.mm.pinnedVm).toBe(0);
}

describe('dma-buf areas: revoke, copies, domains and closes balance', () => {
  it('random sequences follow the model and leave nothing behind', () => {
    fc.assert(fc.property(fc.array(opArb, { minLength: 5, maxLength: 40 }), (ops) => { run(ops); }), { numRuns: 40 });
  });
});
