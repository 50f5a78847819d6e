import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { DeviceModel, DmaPort } from '../../../src/hw/devices/model.ts';
import { SimpleNic } from '../../../src/hw/devices/simple-nic.ts';
import { WorkQueueAccel } from '../../../src/hw/devices/work-queue-accel.ts';
import type { DmaRequest, DmaResult, DmaStatus, MutableDmaResult } from '../../../src/hw/dma/types.ts';
import { NO_PASID } from '../../../src/hw/iommu/types.ts';
import { deviceBench } from './device-bench.ts';

// Random register, portal and DMA-outcome sequences never make a model throw, and the machine's MMIO
// path never throws either.

type Op =
  | { kind: 'write'; bar: number; offset: number; size: 1 | 2 | 4 | 8; value: number }
  | { kind: 'read'; bar: number; offset: number; size: 1 | 2 | 4 | 8 }
  | { kind: 'block'; bar: number; offset: number; data: Uint8Array }
  | { kind: 'reset' } | { kind: 'process' };

// Offsets near the registers most of the time, anywhere sometimes; values biased to small and enable bits.
const offset = fc.oneof(fc.integer({ min: 0, max: 0x200 }).map((o) => o & ~3), fc.integer({ min: 0, max: 0x20000 }), fc.constantFrom(-4, 2 ** 40));
const value = fc.oneof(fc.integer({ min: 0, max: 16 }), fc.constantFrom(1, 3, 0xf, 0x8000_0000, 0xffff_ffff), fc.integer({ min: 0, max: 0xffff_ffff }));
const op: fc.Arbitrary<Op> = fc.oneof(
  { weight: 6, arbitrary: fc.record({ kind: fc.constant('write' as const), bar: fc.constantFrom(0, 0, 2, 3), offset, size: fc.constantFrom<1 | 2 | 4 | 8>(4, 4, 1, 2, 8), value }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('read' as const), bar: fc.constantFrom(0, 2, 5), offset, size: fc.constantFrom<1 | 2 | 4 | 8>(1, 2, 4, 8) }) },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('block' as const), bar: fc.constantFrom(2, 2, 0), offset: fc.constantFrom(0, 64, 0x1000, 0x3000, 0x10000, 3), data: fc.uint8Array({ minLength: 64, maxLength: 64 }) }) },
  { weight: 1, arbitrary: fc.constantFrom<Op>({ kind: 'reset' }, { kind: 'process' }) },
);

/** A DMA port whose outcomes are drawn from `statuses` in turn; 'pending' results settle on a later call. */
function fakeDma(statuses: readonly DmaStatus[]): DmaPort {
  let i = 0;
  const held: MutableDmaResult[] = [];
  return {
    dma(req: DmaRequest): DmaResult {
      const status = statuses[i++ % statuses.length] ?? 'ok';
      const late = held.shift();
      if (late !== undefined) { late.status = 'ok'; late.settled = true; late.bytesDone = late.length; }
      const r: MutableDmaResult = {
        id: i, device: 'fake', op: req.op, address: req.address, length: req.length, pasid: req.pasid ?? NO_PASID, status,
        bytesDone: status === 'ok' ? req.length : 0, route: { kind: 'blocked', at: null, why: '' }, why: '',
        data: req.op === 'read' ? (req.data ?? new Uint8Array(req.length)) : null, fault: null, msi: null, pageRequests: 0, retries: 0,
        settled: status !== 'pending',
      };
      if (status === 'pending') held.push(r);
      return r;
    },
  };
}

function apply(model: DeviceModel, o: Op): void {
  switch (o.kind) {
    case 'write': if (o.size !== 8) model.mmioWrite(o.bar, o.offset, o.size, o.value); break;
    case 'read': if (o.size !== 8) model.mmioRead(o.bar, o.offset, o.size); break;
    case 'block': model.mmioWriteBlock?.(o.bar, o.offset, o.data); break;
    case 'reset': model.reset(); break;
    case 'process': model.process?.(); break;
  }
}

const status = fc.array(fc.constantFrom<DmaStatus>('ok', 'ok', 'ok', 'fault', 'pending', 'aborted', 'ur', 'p2p'), { minLength: 1, maxLength: 8 });

describe('device model fuzz', () => {
  it('random register and portal writes against random DMA outcomes never throw', () => {
    fc.assert(fc.property(status, fc.array(op, { maxLength: 60 }), (st, ops) => {
      const models: DeviceModel[] = [
        new SimpleNic({ dma: fakeDma(st), raiseIrq: () => undefined }),
        new WorkQueueAccel({ dma: fakeDma(st), raiseIrq: () => undefined }),
      ];
      for (const m of models) for (const o of ops) expect(() => apply(m, o)).not.toThrow();
    }), { numRuns: 300 });
  });

  it('through the machine (real IOMMU, PRI on): random MMIO never throws', () => {
    const b = deviceBench();
    const nicDev = b.fn('38:00.0');
    const dsaDev = b.fn('6a:01.0');
    b.context(nicDev);
    b.context(dsaDev);
    b.enablePasidPri(dsaDev, true, 4);
    b.pasid(dsaDev, 1);
    b.m.attachModel(nicDev, new SimpleNic({ dma: b.m.dmaPort(nicDev) }));
    b.m.attachModel(dsaDev, new WorkQueueAccel({ dma: b.m.dmaPort(dsaDev) }));
    fc.assert(fc.property(fc.array(op, { maxLength: 40 }), fc.boolean(), (ops, toDsa) => {
      const dev = toDsa ? dsaDev : nicDev;
      for (const o of ops) {
        expect(() => {
          if (o.kind === 'write') b.m.mmio.write(dev, o.bar, o.offset, o.size, o.value);
          else if (o.kind === 'read') b.m.mmio.read(dev, o.bar, o.offset, o.size);
          else if (o.kind === 'block') b.m.mmio.writeBlock(dev, o.bar, o.offset, o.data);
          else if (o.kind === 'reset') b.m.resetFunction(dev);
          else b.m.processCommands();
        }).not.toThrow();
      }
    }), { numRuns: 100 });
  });
});
