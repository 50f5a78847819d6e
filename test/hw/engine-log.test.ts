import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { EngineLog } from '../../src/hw/dma/engine-log.ts';
import { FaultReason, NO_PASID, PageResponseCode } from '../../src/hw/iommu/types.ts';

// The engine log keeps the newest `size` lines, formatting the per-fault lines when read: the same text,
// in the same order, as a list of strings trimmed to its last `size` entries.

type Entry =
  | { kind: 'text'; line: string }
  | { kind: 'request'; prgi: number; pasid: number; pages: number; first: number; reason: number; write: boolean }
  | { kind: 'answer'; prgi: number; code: number; pd: readonly [number, number] | null };

const hex = (n: number): string => `0x${n.toString(16)}`;
const REASONS: Record<number, string> = { [FaultReason.PteNotPresent]: 'PTE_NOT_PRESENT', [FaultReason.WriteDenied]: 'WRITE_DENIED' };

function expected(e: Entry): string {
  switch (e.kind) {
    case 'text': return e.line;
    case 'request':
      return `6a:01.0: page request group ${e.prgi}${e.pasid === NO_PASID ? '' : ` PASID ${e.pasid}`}: ${e.pages} page(s) from ${hex(e.first)} (${REASONS[e.reason]}, ${e.write ? 'write' : 'read'})`;
    case 'answer':
      return `6a:01.0: page request group ${e.prgi} answered ${e.code === PageResponseCode.Success ? 'SUCCESS' : e.code === PageResponseCode.Invalid ? 'INVALID' : 'FAILURE'}${e.pd === null ? '' : ` with private data ${hex(e.pd[0])} ${hex(e.pd[1])}`}`;
  }
}

const arbEntry: fc.Arbitrary<Entry> = fc.oneof(
  fc.record({ kind: fc.constant('text' as const), line: fc.string() }),
  fc.record({
    kind: fc.constant('request' as const), prgi: fc.integer({ min: 0, max: 511 }), pasid: fc.constantFrom(NO_PASID, 0, 7, 0xfffff),
    pages: fc.integer({ min: 1, max: 32 }), first: fc.integer({ min: 0, max: 2 ** 40 }).map((p) => p * 4096),
    reason: fc.constantFrom(FaultReason.PteNotPresent, FaultReason.WriteDenied), write: fc.boolean(),
  }),
  fc.record({
    kind: fc.constant('answer' as const), prgi: fc.integer({ min: 0, max: 511 }), code: fc.constantFrom(PageResponseCode.Success, PageResponseCode.Invalid, PageResponseCode.Failure),
    pd: fc.option(fc.tuple(fc.nat(), fc.nat()).map(([a, b]) => [a >>> 0, b >>> 0] as const), { nil: null }),
  }),
);

describe('EngineLog', () => {
  it('reads back the newest lines, formatted, oldest first', () => {
    fc.assert(fc.property(fc.integer({ min: 0, max: 8 }), fc.array(arbEntry, { maxLength: 40 }), (size, entries) => {
      const log = new EngineLog('6a:01.0', size);
      for (const e of entries) {
        if (e.kind === 'text') log.text(e.line);
        else if (e.kind === 'request') log.request(e.prgi, e.pasid, e.pages, e.first, e.reason, e.write);
        else log.answer(e.prgi, e.code, e.pd);
      }
      const all = entries.map(expected);
      expect(log.lines()).toEqual(size === 0 ? [] : all.slice(Math.max(0, all.length - size)));
    }));
  });
});
