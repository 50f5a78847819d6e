// Property tests of the unit's caches against models of what software may observe:
// - IOTLB: after any sequence of map / unmap / invalidate / translate, a successful translation matches
//   the current table or a mapping that was unmapped but not yet covered by an invalidation;
// - context and PASID caches: a translation behaves as some context and PASID entry that is current or was
//   current since the last invalidation covering it;
// - fuzz: garbage in the tables, the command queue and the registers never makes the unit throw;
// - the LRU index under the caches matches a simple model.

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { Command } from '../../src/hw/iommu/commands.ts';
import { LruIndex } from '../../src/hw/iommu/lru.ts';
import { Reg } from '../../src/hw/iommu/registers.ts';
import { clearContext, clearPasidEntry, writeContext, writePasidEntry } from '../../src/hw/iommu/setup.ts';
import { FaultReason, NO_PASID, newTranslationResult, type PageRequestMessage, type TranslationRequest } from '../../src/hw/iommu/types.ts';
import type { IoPageTable } from '../../src/hw/iommu/pgtable/builder.ts';
import { GiB, iommuBench, MiB, rid } from './iommu-fixture.ts';

const PAGE = 4096;
const PAGES_2M = 512;
/** IOVA window of the IOTLB model: 4 regions of 2 MiB. */
const WINDOW = 64 * MiB;

// ---- IOTLB staleness ----

const A = rid(1, 0, 0);
const B = rid(1, 0, 1);
/** Who translates: (RID, request PASID) → (DID, effective PASID). B's RID_PASID is 7, so B shares (2, 7) with A/7. */
const USERS = [
  { rid: A, pasid: NO_PASID, did: 1, eff: 0 },
  { rid: A, pasid: 5, did: 1, eff: 5 },
  { rid: A, pasid: 7, did: 2, eff: 7 },
  { rid: B, pasid: NO_PASID, did: 2, eff: 7 },
  { rid: B, pasid: 9, did: 1, eff: 9 },
] as const;
const DIDS = [1, 2] as const;

type TlbOp =
  | { kind: 'map'; domain: number; big: boolean; region: number; page: number; paSeed: number }
  | { kind: 'unmap'; domain: number; big: boolean; region: number; page: number }
  | { kind: 'inval'; cmd: Command }
  | { kind: 'translate'; user: number; region: number; page: number; offset: number; write: boolean };

// A small space (2 regions of 2 MiB, 4 pages each used at 4 KiB) so that maps, translations, unmaps and
// invalidations keep meeting on the same pages.
const region = fc.integer({ min: 0, max: 1 });
const pageInRegion = fc.integer({ min: 0, max: 3 });
const arbTlbOp: fc.Arbitrary<TlbOp> = fc.oneof(
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('map' as const), domain: fc.integer({ min: 0, max: 1 }), big: fc.boolean(), region, page: pageInRegion, paSeed: fc.integer({ min: 0, max: 500 }) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('unmap' as const), domain: fc.integer({ min: 0, max: 1 }), big: fc.boolean(), region, page: pageInRegion }) },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant('inval' as const),
      cmd: fc.oneof(
        fc.constant<Command>({ op: 'iotlb-inval', scope: 'global' }),
        fc.integer({ min: 1, max: 3 }).map((did): Command => ({ op: 'iotlb-inval', scope: 'domain', did })),
        fc.tuple(fc.integer({ min: 1, max: 3 }), fc.constantFrom(0, 5, 7, 9)).map(([did, pasid]): Command => ({ op: 'iotlb-inval', scope: 'pasid', did, pasid })),
        fc.tuple(fc.integer({ min: 1, max: 3 }), fc.constantFrom(0, 5, 7, 9), region, pageInRegion, fc.constantFrom(0, 1, 1, 2, 7, 512, 1024))
          .map(([did, pasid, r, p, pages]): Command => ({ op: 'iotlb-inval', scope: 'range', did, pasid, address: WINDOW + (r * PAGES_2M + p) * PAGE, pages })),
      ),
    }),
  },
  { weight: 7, arbitrary: fc.record({ kind: fc.constant('translate' as const), user: fc.integer({ min: 0, max: USERS.length - 1 }), region, page: fc.integer({ min: 0, max: 4 }), offset: fc.integer({ min: 0, max: 4095 }), write: fc.boolean() }) },
);

/** What the IOTLB property exercised, so that it can check it is not vacuous. */
const tlbCoverage = { staleServed: 0, staleDropped: 0, faults: 0, hits: 0 };

function runTlbModel(ops: readonly TlbOp[], iotlbEntries: number, ssade: boolean): void {
  const b = iommuBench({ iotlbEntries });
  b.context(A);
  b.context(B, { ridPasid: 7 });
  const tables: IoPageTable[] = [b.table('second', { pageSize1G: false }), b.table('first', { pageSize1G: false })];
  const [s, f] = tables as [IoPageTable, IoPageTable];
  for (const eff of [0, 5, 9]) b.pasid(A, eff, { pgtt: 'second', did: 1, ssRoot: s.root, ssade });
  b.pasid(A, 7, { pgtt: 'first', did: 2, fsRoot: f.root });
  b.pasid(B, 7, { pgtt: 'first', did: 2, fsRoot: f.root });
  b.pasid(B, 9, { pgtt: 'second', did: 1, ssRoot: s.root, ssade });

  // The model: each domain's current mapping (4 KiB page → PA page), and per (DID, PASID, page) the PA
  // pages of mappings removed since the last invalidation covering them.
  const current = [new Map<number, number>(), new Map<number, number>()];
  const stale = new Map<string, Set<number>>();
  const key = (did: number, pasid: number, page: number): string => `${did}:${pasid}:${page}`;
  const base = WINDOW;

  for (const op of ops) {
    switch (op.kind) {
      case 'map': {
        const pages = op.big ? PAGES_2M : 1;
        const first = (base / PAGE) + op.region * PAGES_2M + (op.big ? 0 : op.page);
        const cur = current[op.domain] as Map<number, number>;
        let free = true;
        for (let p = first; p < first + pages; p++) if (cur.has(p)) free = false;
        // A 4 KiB map inside a region that holds a 2 MiB leaf, or a 2 MiB map over any 4 KiB page, fails in the builder too.
        const paFirst = (GiB + op.paSeed * 2 * MiB) / PAGE + (op.big ? 0 : op.page);
        const ok = (tables[op.domain] as IoPageTable).map(first * PAGE, paFirst * PAGE, pages * PAGE, { read: true, write: true });
        expect(ok).toBe(free);
        if (ok) for (let i = 0; i < pages; i++) cur.set(first + i, paFirst + i);
        break;
      }
      case 'unmap': {
        const pages = op.big ? PAGES_2M : 1;
        const first = (base / PAGE) + op.region * PAGES_2M + (op.big ? 0 : op.page);
        (tables[op.domain] as IoPageTable).unmap(first * PAGE, pages * PAGE);
        const cur = current[op.domain] as Map<number, number>;
        for (let p = first; p < first + pages; p++) {
          const pa = cur.get(p);
          if (pa === undefined) continue;
          cur.delete(p);
          for (const u of USERS) if (u.did === DIDS[op.domain]) {
            const k = key(u.did, u.eff, p);
            (stale.get(k) ?? stale.set(k, new Set()).get(k))?.add(pa);
          }
        }
        break;
      }
      case 'inval': {
        b.submit(op.cmd);
        const c = op.cmd;
        if (c.op !== 'iotlb-inval') break;
        for (const k of [...stale.keys()]) {
          const [did, pasid, page] = k.split(':').map(Number) as [number, number, number];
          const covered = c.scope === 'global' || (c.scope === 'domain' && c.did === did) || (c.scope === 'pasid' && c.did === did && c.pasid === pasid)
            || (c.scope === 'range' && c.did === did && c.pasid === pasid && page >= c.address / PAGE && page < c.address / PAGE + c.pages);
          if (covered) { stale.delete(k); tlbCoverage.staleDropped++; }
        }
        break;
      }
      case 'translate': {
        const u = USERS[op.user] as (typeof USERS)[number];
        const iova = base + op.region * 2 * MiB + op.page * PAGE + op.offset;
        const page = Math.floor(iova / PAGE);
        const r = b.translate(u.rid, iova, { pasid: u.pasid, write: op.write });
        const cur = (current[DIDS.indexOf(u.did)] as Map<number, number>).get(page);
        const allowed = new Set(stale.get(key(u.did, u.eff, page)) ?? []);
        if (cur !== undefined) allowed.add(cur);
        if (r.ok) {
          // Never a mapping unmapped and then covered by an invalidation; always the current one or a stale one.
          expect(r.pa % PAGE).toBe(op.offset);
          expect(allowed.has(Math.floor(r.pa / PAGE)), `translate ${iova.toString(16)} → ${r.pa.toString(16)}`).toBe(true);
          if (Math.floor(r.pa / PAGE) !== cur) tlbCoverage.staleServed++;
        } else {
          tlbCoverage.faults++;
          // A fault only where the current table has no mapping.
          expect(cur).toBeUndefined();
          expect(r.reason).toBe(FaultReason.PteNotPresent);
        }
        break;
      }
    }
  }
  expect(b.unit.iotlbSize()).toBeLessThanOrEqual(iotlbEntries);
  tlbCoverage.hits += b.unit.stats.iotlbHits;
}

describe('IOTLB against a model of stale translations', () => {
  it('a translation is the current mapping or one unmapped but not yet invalidated', () => {
    fc.assert(fc.property(fc.array(arbTlbOp, { minLength: 10, maxLength: 100, size: 'max' }), fc.constantFrom(2, 4, 16, 1024), fc.boolean(), (ops, entries, ssade) => {
      runTlbModel(ops, entries, ssade);
    }), { numRuns: 400 });
    // The runs did serve stale translations, did drop stale ones by invalidation, and hit the IOTLB.
    expect(tlbCoverage.staleServed).toBeGreaterThan(20);
    expect(tlbCoverage.staleDropped).toBeGreaterThan(50);
    expect(tlbCoverage.hits).toBeGreaterThan(200);
    expect(tlbCoverage.faults).toBeGreaterThan(50);
  });

  it('stale translations are really served (the model is not vacuous)', () => {
    // The same scenario as the unit test, through the model runner: map, translate, unmap, translate.
    const ops: TlbOp[] = [
      { kind: 'map', domain: 0, big: true, region: 1, page: 0, paSeed: 3 },
      { kind: 'translate', user: 0, region: 1, page: 2, offset: 8, write: false },
      { kind: 'unmap', domain: 0, big: false, region: 1, page: 2 },
      { kind: 'translate', user: 0, region: 1, page: 2, offset: 8, write: false },
    ];
    expect(() => runTlbModel(ops, 4, false)).not.toThrow();
    // And the same without the stale allowance would have failed: the unit served the old 2 MiB translation.
    const b = iommuBench();
    b.context(A);
    const s = b.table('second', { pageSize1G: false });
    b.pasid(A, 0, { pgtt: 'second', did: 1, ssRoot: s.root });
    s.map(66 * MiB, GiB, 2 * MiB, { read: true, write: true });
    expect(b.translate(A, 66 * MiB + 0x2008).pa).toBe(GiB + 0x2008);
    s.unmap(66 * MiB + 0x2000, 0x1000);
    expect(b.translate(A, 66 * MiB + 0x2008).pa).toBe(GiB + 0x2008);
  });
});

// ---- Context and PASID cache staleness ----

type CtxVersion = { mode: 'absent' } | { mode: 'blocked' } | { mode: 'pass-through' } | { mode: 'translate'; ridPasid: 0 | 1 };
type PeVersion = { kind: 'absent' } | { kind: 'pass-through'; did: number } | { kind: 'second'; did: number };
type CacheOp =
  | { kind: 'ctx'; dev: number; v: CtxVersion }
  | { kind: 'pe'; dev: number; pasid: number; v: PeVersion }
  | { kind: 'ctx-inval'; dev: number | null }
  | { kind: 'pe-inval'; did: number | null; pasid: number | null }
  | { kind: 'translate'; dev: number; pasid: number; page: number };

const arbCtx: fc.Arbitrary<CtxVersion> = fc.oneof(
  fc.constant({ mode: 'absent' as const }),
  fc.constantFrom<CtxVersion>({ mode: 'blocked' }, { mode: 'pass-through' }),
  fc.constantFrom(0 as const, 1 as const).map((ridPasid) => ({ mode: 'translate' as const, ridPasid })),
);
const arbPe: fc.Arbitrary<PeVersion> = fc.oneof(
  fc.constant({ kind: 'absent' as const }),
  fc.integer({ min: 1, max: 3 }).map((did) => ({ kind: 'pass-through' as const, did })),
  { weight: 3, arbitrary: fc.integer({ min: 1, max: 3 }).map((did) => ({ kind: 'second' as const, did })) },
);
const arbCacheOp: fc.Arbitrary<CacheOp> = fc.oneof(
  fc.record({ kind: fc.constant('ctx' as const), dev: fc.integer({ min: 0, max: 1 }), v: arbCtx }),
  fc.record({ kind: fc.constant('pe' as const), dev: fc.integer({ min: 0, max: 1 }), pasid: fc.integer({ min: 0, max: 2 }), v: arbPe }),
  fc.record({ kind: fc.constant('ctx-inval' as const), dev: fc.option(fc.integer({ min: 0, max: 1 })) }),
  fc.record({ kind: fc.constant('pe-inval' as const), did: fc.option(fc.integer({ min: 1, max: 3 })), pasid: fc.option(fc.integer({ min: 0, max: 2 })) }),
  { weight: 4, arbitrary: fc.record({ kind: fc.constant('translate' as const), dev: fc.integer({ min: 0, max: 1 }), pasid: fc.constantFrom(NO_PASID, 0, 1, 2), page: fc.integer({ min: 0, max: 3 }) }) },
);

/** Translations whose result only a stale (not current) context or PASID entry explains. */
const cacheCoverage = { staleServed: 0, translations: 0 };

function runCacheModel(ops: readonly CacheOp[], ctxEntries: number, peEntries: number): void {
  const b = iommuBench({ contextCacheEntries: ctxEntries, pasidCacheEntries: peEntries });
  const devs = [rid(2, 0, 0), rid(2, 1, 0)];
  // One fixed table per DID: DID d maps IOVA x to d GiB + x, so the IOTLB can never mix domains up.
  const roots = [0, 1, 2, 3].map((d) => {
    const t = b.table('second');
    if (d > 0) t.map(0, d * GiB, 4 * PAGE, { read: true, write: true });
    return t.root;
  });
  const dirs = devs.map((d) => { b.context(d); return b.pasidDir(d); });
  const writePe = (dev: number, pasid: number, v: PeVersion): void => {
    const dir = dirs[dev] as number;
    if (v.kind === 'absent') clearPasidEntry(b.mem, dir, pasid);
    else writePasidEntry(b.mem, b.alloc, dir, pasid, v.kind === 'second' ? { pgtt: 'second', did: v.did, ssRoot: roots[v.did] } : { pgtt: 'pass-through', did: v.did });
  };
  const writeCtx = (dev: number, v: CtxVersion): void => {
    if (v.mode === 'absent') clearContext(b.mem, b.root, devs[dev] as number);
    else writeContext(b.mem, b.alloc, b.root, devs[dev] as number, { mode: v.mode, pasidEnable: true, ridPasid: v.mode === 'translate' ? v.ridPasid : 0, pdts: 0, pasidDir: dirs[dev] });
  };
  // Model: per device, the current context and the stale ones that may still be cached; per (device, PASID) likewise.
  interface Versions<V> { cur: V; stale: V[] }
  const ctx = devs.map((): Versions<CtxVersion> => ({ cur: { mode: 'translate', ridPasid: 0 }, stale: [] }));
  const pe = devs.map(() => [0, 1, 2].map((): Versions<PeVersion> => ({ cur: { kind: 'second', did: 1 }, stale: [] })));
  devs.forEach((_d, i) => { writeCtx(i, ctx[i]!.cur); [0, 1, 2].forEach((p) => writePe(i, p, pe[i]![p]!.cur)); });

  for (const op of ops) {
    switch (op.kind) {
      case 'ctx': {
        const m = ctx[op.dev]!;
        if (m.cur.mode !== 'absent') m.stale.push(m.cur); // only valid entries are ever cached
        m.cur = op.v;
        writeCtx(op.dev, op.v);
        break;
      }
      case 'pe': {
        const m = pe[op.dev]![op.pasid]!;
        if (m.cur.kind !== 'absent') m.stale.push(m.cur);
        m.cur = op.v;
        writePe(op.dev, op.pasid, op.v);
        break;
      }
      case 'ctx-inval':
        b.submit({ op: 'context-inval', rid: op.dev === null ? null : devs[op.dev] as number });
        ctx.forEach((m, i) => { if (op.dev === null || op.dev === i) m.stale = []; });
        break;
      case 'pe-inval': {
        const cmd: Command = op.did === null ? { op: 'pasid-cache-inval', scope: 'global' }
          : op.pasid === null ? { op: 'pasid-cache-inval', scope: 'domain', did: op.did }
          : { op: 'pasid-cache-inval', scope: 'pasid', did: op.did, pasid: op.pasid };
        b.submit(cmd);
        pe.forEach((perDev) => perDev.forEach((m, p) => {
          // A cached entry is dropped when its own (cached) DID matches.
          m.stale = m.stale.filter((v) => !(op.did === null || (v.kind !== 'absent' && v.did === op.did && (op.pasid === null || op.pasid === p))));
        }));
        break;
      }
      case 'translate': {
        const iova = op.page * PAGE + 0x10;
        const r = b.translate(devs[op.dev] as number, iova, { pasid: op.pasid });
        const got = r.ok ? (r.untranslated ? 'untranslated' : `pa ${r.pa}`) : `fault ${r.reason}`;
        const possible = new Set<string>();
        const m = ctx[op.dev]!;
        let currentOutcome = '';
        for (const c of [m.cur, ...m.stale]) {
          if (c.mode === 'absent') possible.add(`fault ${FaultReason.ContextNotPresent}`);
          else if (c.mode === 'blocked') possible.add(`fault ${FaultReason.Blocked}`);
          else if (c.mode === 'pass-through') possible.add('untranslated');
          else {
            const eff = op.pasid === NO_PASID ? c.ridPasid : op.pasid;
            const pm = pe[op.dev]![eff]!;
            for (const v of [pm.cur, ...pm.stale]) {
              const outcome = v.kind === 'absent' ? `fault ${FaultReason.PasidNotPresent}` : v.kind === 'pass-through' ? 'untranslated' : `pa ${v.did * GiB + iova}`;
              possible.add(outcome);
              if (c === m.cur && v === pm.cur) currentOutcome = outcome;
            }
          }
          if (c === m.cur && c.mode !== 'translate') currentOutcome = [...possible][0] ?? '';
        }
        expect([...possible], `translate dev ${op.dev} pasid ${op.pasid}`).toContain(got);
        cacheCoverage.translations++;
        if (got !== currentOutcome) cacheCoverage.staleServed++;
        break;
      }
    }
  }
}

describe('context and PASID caches against a model', () => {
  it('a translation follows a current or not-yet-invalidated context and PASID entry', () => {
    fc.assert(fc.property(fc.array(arbCacheOp, { minLength: 10, maxLength: 80, size: 'max' }), fc.constantFrom(1, 2, 64), fc.constantFrom(1, 2, 3, 128), (ops, c, p) => {
      runCacheModel(ops, c, p);
    }), { numRuns: 200 });
    expect(cacheCoverage.staleServed).toBeGreaterThan(50);
  });

  it('the model catches a missing invalidation', () => {
    // With caches, an edit without invalidation is still seen as the old entry; the model allows that, and
    // requires the new one after the invalidation.
    const ops: CacheOp[] = [
      { kind: 'translate', dev: 0, pasid: NO_PASID, page: 1 },
      { kind: 'ctx', dev: 0, v: { mode: 'blocked' } },
      { kind: 'translate', dev: 0, pasid: NO_PASID, page: 1 },
      { kind: 'ctx-inval', dev: 0 },
      { kind: 'translate', dev: 0, pasid: NO_PASID, page: 1 },
    ];
    expect(() => runCacheModel(ops, 4, 4)).not.toThrow();
  });
});

// ---- Fuzz: nothing software or a device does makes the unit throw ----

const word = fc.tuple(fc.nat({ max: 0xffff_ffff }), fc.nat({ max: 0xffff_ffff }));
const weirdNumber = fc.oneof(
  fc.nat({ max: 0xffff_ffff }), fc.integer({ min: 0, max: 2 ** 53 - 1 }), fc.constantFrom(-1, -4096, 0.5, NaN, Infinity, -Infinity, 2 ** 53, 2 ** 64, 2 ** 70, Number.MAX_VALUE),
);
type FuzzOp =
  | { kind: 'garbage'; area: number; offset: number; w: [number, number] }
  | { kind: 'reg'; offset: number; value: number }
  | { kind: 'translate'; req: TranslationRequest }
  | { kind: 'page-request'; msg: PageRequestMessage }
  | { kind: 'command'; halves: [number, number][] }
  | { kind: 'process' };

const arbFuzz: fc.Arbitrary<FuzzOp> = fc.oneof(
  { weight: 4, arbitrary: fc.record({ kind: fc.constant('garbage' as const), area: fc.nat({ max: 5 }), offset: fc.nat({ max: 8191 }).map((o) => o & ~7), w: word }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('reg' as const), offset: fc.oneof(fc.constantFrom(...Object.values(Reg)), fc.integer({ min: -8, max: 0x100 })), value: weirdNumber }) },
  {
    weight: 5,
    arbitrary: fc.record({
      kind: fc.constant('translate' as const),
      req: fc.record({
        rid: fc.oneof(fc.constantFrom(A, B, rid(1, 0, 2)), fc.integer({ min: -2, max: 0x1_0001 }), fc.constantFrom(NaN, 0.5)),
        pasid: fc.oneof(fc.constantFrom(NO_PASID, 0, 5, 7, 63, 64), fc.integer({ min: -3, max: 2 ** 21 }), fc.constantFrom(NaN, 1.5)),
        iova: fc.oneof(fc.integer({ min: 0, max: 4 * MiB }), weirdNumber), write: fc.boolean(), exec: fc.boolean(), priv: fc.boolean(), ats: fc.boolean(),
      }),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant('page-request' as const),
      msg: fc.record({
        rid: fc.oneof(fc.constantFrom(A, B), fc.integer({ min: -1, max: 0x10000 })), pasid: fc.oneof(fc.constantFrom(NO_PASID, 5), fc.integer({ min: -2, max: 2 ** 21 })),
        address: weirdNumber, read: fc.boolean(), write: fc.boolean(), exec: fc.boolean(), priv: fc.boolean(), lastInGroup: fc.boolean(),
        prgi: fc.integer({ min: -1, max: 600 }), privateData: fc.option(word),
      }),
    }),
  },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('command' as const), halves: fc.array(word, { minLength: 4, maxLength: 4 }) }) },
  { weight: 2, arbitrary: fc.constant({ kind: 'process' as const }) },
);

describe('fuzz', () => {
  it('garbage in tables, commands and registers never makes the unit throw', () => {
    fc.assert(fc.property(fc.array(arbFuzz, { maxLength: 80, size: 'max' }), fc.integer({ min: 1, max: 3 }), (ops, cache) => {
      const b = iommuBench({ iotlbEntries: cache, contextCacheEntries: cache, pasidCacheEntries: cache, cqLog2: 3, fqLog2: 2, pqLog2: 2 });
      const ctxA = b.context(A, { pri: true });
      const ctxB = b.context(B, { ridPasid: 7, pri: true });
      const s = b.table('second');
      s.map(0, 16 * MiB, 4 * MiB, { read: true, write: true });
      const peA = b.pasid(A, 0, { pgtt: 'second', did: 1, ssRoot: s.root, ssade: true });
      const peB = b.pasid(B, 7, { pgtt: 'nested', did: 2, ssRoot: s.root, fsRoot: 0x1000 });
      // Areas garbage may land in: root table, context entries, PASID entries, a page table, the command queue.
      const areas = [b.root, ctxA - (ctxA % 4096), ctxB - (ctxB % 4096), peA - (peA % 4096), peB - (peB % 4096), s.root, b.queues.command];
      const out = newTranslationResult();
      for (const op of ops) {
        switch (op.kind) {
          case 'garbage': b.mem.write64((areas[op.area] as number) + op.offset, op.w[0], op.w[1]); break;
          case 'reg': b.unit.writeReg(op.offset, op.value); expect(Number.isFinite(b.unit.readReg(op.offset))).toBe(true); break;
          case 'translate': {
            b.unit.translate(op.req, out);
            expect(out.ok).toBe(out.reason === FaultReason.None);
            expect(out.reason).toBeGreaterThanOrEqual(0);
            expect(out.reason).toBeLessThanOrEqual(18);
            expect([0, 1, 2]).toContain(out.stage);
            if (!out.ok) expect(out.pa).toBe(0);
            if (out.ok && !out.untranslated) expect(out.pa).toBeGreaterThanOrEqual(0);
            break;
          }
          case 'page-request': b.unit.pageRequest(op.msg); break;
          case 'command': {
            const t = b.unit.readReg(Reg.CQT);
            const base = b.unit.readReg(Reg.CQB);
            const at = base - (base % 4096) + t * 32;
            op.halves.forEach(([lo, hi], i) => b.mem.write64(at + i * 8, lo, hi));
            b.unit.writeReg(Reg.CQT, t + 1);
            break;
          }
          case 'process': expect(b.unit.processCommands()).toBeGreaterThanOrEqual(0); break;
        }
      }
      expect(b.unit.iotlbSize()).toBeLessThanOrEqual(cache);
      expect(b.unit.contextCacheSize()).toBeLessThanOrEqual(cache);
      expect(b.unit.pasidCacheSize()).toBeLessThanOrEqual(cache);
    }), { numRuns: 300 });
  });
});

// ---- The LRU index ----

describe('LRU index', () => {
  type LruOp = { kind: 'insert' | 'find' | 'touch' | 'remove'; a: number; b: number };
  const arbLru = fc.record({ kind: fc.constantFrom('insert' as const, 'find' as const, 'touch' as const, 'remove' as const), a: fc.integer({ min: 0, max: 3 }), b: fc.integer({ min: 0, max: 5 }) });
  it('matches a list model: lookups, most-recent-first order, least recently used evicted', () => {
    fc.assert(fc.property(fc.integer({ min: 1, max: 6 }), fc.array(arbLru, { maxLength: 120, size: 'max' }), (cap, ops: LruOp[]) => {
      const idx = new LruIndex(cap);
      let model: Array<[number, number]> = []; // most recent first
      const slotOf = new Map<string, number>();
      for (const op of ops) {
        const k = `${op.a},${op.b}`;
        const at = model.findIndex(([a, b]) => a === op.a && b === op.b);
        const found = idx.find(op.a, op.b);
        expect(found >= 0).toBe(at >= 0);
        if (found >= 0) expect(found).toBe(slotOf.get(k));
        if (op.kind === 'insert' && at < 0) {
          if (idx.full) {
            const victim = idx.victim();
            const [va, vb] = model.pop() as [number, number];
            expect(victim).toBe(slotOf.get(`${va},${vb}`));
            idx.remove(victim);
            slotOf.delete(`${va},${vb}`);
          }
          slotOf.set(k, idx.insert(op.a, op.b));
          model.unshift([op.a, op.b]);
        } else if (op.kind === 'touch' && found >= 0) {
          idx.touch(found);
          model = [[op.a, op.b], ...model.filter((_e, i) => i !== at)];
        } else if (op.kind === 'remove' && found >= 0) {
          idx.remove(found);
          slotOf.delete(k);
          model.splice(at, 1);
        }
        expect(idx.size).toBe(model.length);
        expect(idx.order().map((s) => [idx.keyAOf(s), idx.keyBOf(s)])).toEqual(model);
      }
    }), { numRuns: 300 });
  });

  it('keeps every key reachable through deletions in long probe chains', () => {
    // Keys whose b differs only above bit 32 share a bucket: a worst case for backward-shift deletion.
    const idx = new LruIndex(16);
    const keys = Array.from({ length: 16 }, (_v, i) => i * 2 ** 32);
    for (const k of keys) idx.insert(1, k);
    for (let i = 0; i < 16; i += 3) idx.remove(idx.find(1, keys[i] as number));
    keys.forEach((k, i) => expect(idx.find(1, k) >= 0).toBe(i % 3 !== 0));
  });
});
