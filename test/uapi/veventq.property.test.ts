// Properties of the vEVENTQ fd under any interleaving of driver reports and reads of any size (uAPI
// reference §11.3): reads return whole records only; sequences rise by one between records unless events
// were lost; at most `depth` events wait; and a reader always notices a loss (the LOST_EVENTS header or a
// sequence gap), which is what the selftest's read_vevents turns into EOVERFLOW.

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { IommufdCtx } from '../../src/kernel/iommufd/context.ts';
import { iommufdDeviceBind } from '../../src/kernel/iommufd/device.ts';
import * as api from '../../src/uapi/api.ts';
import * as C from '../../src/uapi/iommufd-consts.ts';
import { sysPread } from '../../src/uapi/rw.ts';
import { IOMMU_VEVENTQ_TYPE_SELFTEST, IOMMU_VIOMMU_TYPE_SELFTEST } from '../../src/kernel/iommufd/selftest/constants.ts';
import { MockViommuDriver } from '../../src/kernel/iommufd/selftest/mock-viommu.ts';
import { client, PAGE, value, world } from './dispatch-helpers.ts';

const RECORD = 12;

function harness() {
  const w = world();
  const c = client(w);
  const file = value(c.proc.fds.get(c.fd));
  const ctx = file.file as IommufdCtx;
  const dev = w.dev('39:00.0');
  const idev = value(iommufdDeviceBind(ctx, dev, { file }));
  const drv = new MockViommuDriver(w.memory, 2 ** 32);
  const iommu = w.core.driverOf(dev);
  if (iommu === undefined) throw new Error('no IOMMU');
  drv.installOn(iommu);
  const ioasId = c.ioasAlloc();
  const parent = value(api.hwptAlloc({ proc: c.proc, fd: c.fd, devId: idev.id, ptId: ioasId, flags: C.IOMMU_HWPT_ALLOC_NEST_PARENT }));
  const buf = c.anon(4);
  /** A fresh vIOMMU with a vDEVICE and a queue of `depth`: its fd. */
  const queue = (depth: number): { fd: number; close: () => void } => {
    const a = { proc: c.proc, fd: c.fd };
    const vi = value(api.viommuAlloc({ ...a, devId: idev.id, hwptId: parent, type: IOMMU_VIOMMU_TYPE_SELFTEST })).viommuId;
    const vd = value(api.vdeviceAlloc({ ...a, viommuId: vi, devId: idev.id, virtId: 0x42 }));
    const q = value(api.veventqAlloc({ ...a, viommuId: vi, type: IOMMU_VEVENTQ_TYPE_SELFTEST, depth }));
    return {
      fd: q.veventqFd,
      close: () => {
        value(c.proc.fds.close(q.veventqFd));
        for (const id of [q.veventqId, vd, vi]) value(api.destroy({ ...a, id }));
      },
    };
  };
  return { c, dev, drv, queue, buf };
}

type Step = { kind: 'report' } | { kind: 'read'; count: number };
const step: fc.Arbitrary<Step> = fc.oneof(
  { arbitrary: fc.constant<Step>({ kind: 'report' }), weight: 2 },
  { arbitrary: fc.integer({ min: 0, max: 6 * RECORD }).map<Step>((count) => ({ kind: 'read', count })), weight: 1 },
);

describe('vEVENTQ fd properties', () => {
  const h = harness();

  it('whole records, rising sequences, at most depth waiting, every loss and only a loss visible to the reader', () => {
    fc.assert(fc.property(fc.integer({ min: 1, max: 4 }), fc.array(step, { maxLength: 40 }), (depth, steps) => {
      const q = h.queue(depth);
      try {
        run(h, q.fd, depth, steps);
      } finally {
        q.close();
      }
    }), { numRuns: 300 });
  });
});

function run(h: ReturnType<typeof harness>, fd: number, depth: number, steps: readonly Step[]): void {
  let pending = 0;
  /** The sequence numbers of reports that were lost and that no record read has revealed yet. */
  let unnoticed: number[] = [];
  /** Every report, kept or lost, takes the next sequence number. */
  let nextSeq = 0;
  let lastSeq = -1;
  let reported = 0;
  let readEvents = 0;
  const drain = (count: number): void => {
    const n = value(sysPread(h.c.proc, fd, h.buf, count, null));
    expect(n).toBeLessThanOrEqual(count);
    const bytes = new Uint8Array(n);
    value(h.c.proc.mm.read(h.buf, bytes));
    const dv = new DataView(bytes.buffer);
    for (let at = 0; at < n;) {
      const flags = dv.getUint32(at, true);
      const seq = dv.getUint32(at + 4, true);
      const lossShown = seq !== lastSeq + 1 || flags === C.IOMMU_VEVENTQ_FLAG_LOST_EVENTS;
      expect(seq).toBeGreaterThan(lastSeq);
      lastSeq = seq;
      // The first record at or after a lost report reveals it (LOST_EVENTS or a gap), and only such a record does.
      const revealed = unnoticed.filter((k) => k <= seq);
      expect(lossShown).toBe(revealed.length > 0);
      unnoticed = unnoticed.filter((k) => k > seq);
      if (flags === C.IOMMU_VEVENTQ_FLAG_LOST_EVENTS) {
        at += 8;
        continue;
      }
      expect(flags).toBe(0);
      expect(dv.getUint32(at + 8, true)).toBe(0x42);
      readEvents++;
      pending--;
      // Never more than the model let in: a report while `depth` waited must have been lost.
      expect(pending).toBeGreaterThanOrEqual(0);
      at += RECORD;
    }
    // Whole records only: what was left is smaller than the next record, or nothing is left.
    if (n < count && pending > 0) expect(count - n).toBeLessThan(RECORD);
  };
  for (const s of steps) {
    if (s.kind === 'report') {
      value(h.drv.triggerVevent(h.dev));
      reported++;
      if (pending === depth) unnoticed.push(nextSeq);
      else pending++;
      nextSeq++;
      expect(pending).toBeLessThanOrEqual(depth);
    } else {
      drain(s.count);
    }
  }
  drain(4 * PAGE);
  expect(readEvents).toBeLessThanOrEqual(reported);
  expect(pending).toBe(0);
  // Once everything is read, every loss has been noticed.
  expect(unnoticed).toEqual([]);
}
