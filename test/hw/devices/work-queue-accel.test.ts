import { describe, expect, it } from 'vitest';
import { le32, le64, put32, put64 } from '../../../src/hw/devices/model.ts';
import {
  ACCEL_GENCTRL_ENABLE, ACCEL_GENCTRL_RESET, ACCEL_GENSTS_WAITING, AccelOp, AccelReg, AccelStatus, AccelSwErr, DESC_BYTES, DESC_FLAG_RCI,
  DESC_FLAG_RCR, PORTAL_STRIDE, WorkQueueAccel, WQ_CFG_DEDICATED, WQ_CFG_ENABLE, WQ_CFG_PASID_EN, WQ_STRIDE, WqReg,
} from '../../../src/hw/devices/work-queue-accel.ts';
import { FaultReason, PageResponseCode } from '../../../src/hw/iommu/types.ts';
import { deviceBench, PAGE, pattern } from './device-bench.ts';

// The accelerator model on the default host's DSA (6a:01.0, behind its own DRHD): descriptors submitted
// to shared (ENQCMD) and dedicated (MOVDIR64B) work queues, PASID-tagged DMA through first-stage
// tables, completion records, and page requests answered SUCCESS or INVALID.

const SRC = 0x10_0000;
const DST = 0x20_0000;
const COMP = 0x30_0000;
const SIZE = 3 * PAGE;

interface Desc { op: number; pasid?: number; flags?: number; comp?: number; src?: number; dst?: number; size?: number; handle?: number }

function descriptor(d: Desc): Uint8Array {
  const b = new Uint8Array(DESC_BYTES);
  put32(b, 0, d.pasid ?? 0);
  put32(b, 4, ((d.op << 24) | (d.flags ?? DESC_FLAG_RCR)) >>> 0);
  put64(b, 0x08, d.comp ?? COMP);
  put64(b, 0x10, d.src ?? SRC);
  put64(b, 0x18, d.dst ?? DST);
  put32(b, 0x20, d.size ?? SIZE);
  put32(b, 0x24, d.handle ?? 0);
  return b;
}

function accelBench(o: { pri?: boolean } = {}) {
  const b = deviceBench();
  const dev = b.fn('6a:01.0');
  b.context(dev);
  b.enablePasidPri(dev, o.pri ?? false);
  const t1 = b.pasid(dev, 1);
  const t2 = b.pasid(dev, 2);
  b.map(t1, SRC, SIZE);
  b.map(t1, DST, SIZE);
  b.map(t1, COMP, PAGE);
  b.map(t2, COMP, PAGE); // PASID 2 maps only its completion records
  b.poke(t1, SRC, pattern(PAGE, 1));
  b.poke(t1, SRC + PAGE, pattern(PAGE, 2));
  b.poke(t1, SRC + 2 * PAGE, pattern(PAGE, 3));
  const irqs: number[] = [];
  const accel = new WorkQueueAccel({ dma: b.m.dmaPort(dev), raiseIrq: (v) => irqs.push(v) });
  b.m.attachModel(dev, accel);
  const w = (off: number, v: number): void => b.m.mmio.write(dev, 0, off, 4, v);
  const r = (off: number): number => b.m.mmio.read(dev, 0, off, 4);
  const wq = (n: number, cfg: number, size = 16, pasid = 0): void => {
    const at = AccelReg.WQ_BASE + n * WQ_STRIDE;
    w(at + WqReg.SIZE, size);
    w(at + WqReg.PASID, pasid);
    w(at + WqReg.CFG, cfg);
  };
  const submit = (n: number, d: Desc): boolean => b.m.mmio.writeBlock(dev, 2, n * PORTAL_STRIDE, descriptor(d));
  /** The completion record at `at` in `t`: status, result, fault-info byte, bytes completed, fault address. */
  const record = (t = t1, at = COMP) => {
    const c = b.peek(t, at, 32);
    return { status: c[0], result: c[1], write: c[2], bytes: le32(c, 4), faultAddress: le64(c, 8) };
  };
  w(AccelReg.GENCTRL, ACCEL_GENCTRL_ENABLE);
  return { ...b, dev, t1, t2, accel, irqs, w, r, wq, submit, record };
}

const source = (): Uint8Array => {
  const s = new Uint8Array(SIZE);
  [1, 2, 3].forEach((seed, i) => s.set(pattern(PAGE, seed), i * PAGE));
  return s;
};

describe('WorkQueueAccel', () => {
  it('memmove on a shared WQ under PASID 1 lands; the completion record and interrupt follow', () => {
    const b = accelBench();
    b.wq(0, WQ_CFG_ENABLE);
    expect(b.submit(0, { op: AccelOp.MEMMOVE, pasid: 1, flags: DESC_FLAG_RCR | DESC_FLAG_RCI, handle: 9 })).toBe(true);
    expect(b.peek(b.t1, DST, PAGE)).toEqual(pattern(PAGE, 1));
    expect(b.peek(b.t1, DST + 2 * PAGE, PAGE)).toEqual(pattern(PAGE, 3));
    expect(b.record()).toEqual({ status: AccelStatus.SUCCESS, result: 0, write: 0, bytes: SIZE, faultAddress: 0 });
    expect(b.irqs).toEqual([9]);
    expect(b.r(AccelReg.DONE)).toBe(1);
    expect(b.faults(b.dev)).toEqual([]);
  });

  it('the same descriptor under PASID 2, whose table does not map the buffers, completes with PAGE_FAULT; the IOMMU records it', () => {
    const b = accelBench();
    b.wq(0, WQ_CFG_ENABLE);
    b.submit(0, { op: AccelOp.MEMMOVE, pasid: 2 });
    expect(b.record(b.t2)).toEqual({ status: AccelStatus.PAGE_FAULT, result: 0, write: 0, bytes: 0, faultAddress: SRC });
    expect(b.faults(b.dev)).toEqual([expect.objectContaining({ rid: b.dev.rid, pasid: 2, iova: SRC, reason: FaultReason.PteNotPresent })]);
    expect(b.peek(b.t1, DST, 16)).toEqual(new Uint8Array(16));
  });

  it('a dedicated WQ tags DMA with its configured PASID, whatever the descriptor says', () => {
    const b = accelBench();
    b.wq(1, WQ_CFG_ENABLE | WQ_CFG_DEDICATED | WQ_CFG_PASID_EN, 4, 1);
    expect(b.submit(1, { op: AccelOp.MEMMOVE, pasid: 2 })).toBe(true);
    expect(b.record().status).toBe(AccelStatus.SUCCESS);
    expect(b.peek(b.t1, DST + PAGE, PAGE)).toEqual(pattern(PAGE, 2));
    expect(b.accel.state.completions.at(-1)).toMatchObject({ wq: 1, pasid: 1, status: AccelStatus.SUCCESS });
    // Configuration is locked while the WQ is enabled.
    b.w(AccelReg.WQ_BASE + WQ_STRIDE + WqReg.PASID, 2);
    expect(b.accel.wqReg(1, WqReg.PASID)).toBe(1);
  });

  it('fill and compare', () => {
    const b = accelBench();
    b.wq(0, WQ_CFG_ENABLE);
    const fill = descriptor({ op: AccelOp.FILL, pasid: 1, size: 100 });
    fill.set([1, 2, 3, 4, 5, 6, 7, 8], 0x10);
    expect(b.m.mmio.writeBlock(b.dev, 2, 0, fill)).toBe(true);
    expect(b.peek(b.t1, DST, 10)).toEqual(Uint8Array.from([1, 2, 3, 4, 5, 6, 7, 8, 1, 2]));
    b.submit(0, { op: AccelOp.MEMMOVE, pasid: 1 });
    b.submit(0, { op: AccelOp.COMPARE, pasid: 1, comp: COMP + 32 });
    expect(b.record(b.t1, COMP + 32)).toMatchObject({ status: AccelStatus.SUCCESS, result: 0 });
    b.poke(b.t1, DST + 2 * PAGE + 5, Uint8Array.of(0xee));
    b.submit(0, { op: AccelOp.COMPARE, pasid: 1, comp: COMP + 64 });
    expect(b.record(b.t1, COMP + 64)).toMatchObject({ status: AccelStatus.SUCCESS, result: 1, bytes: 2 * PAGE + 5 });
    b.submit(0, { op: 0x7f, pasid: 1, comp: COMP + 96 });
    expect(b.record(b.t1, COMP + 96).status).toBe(AccelStatus.BAD_OPCODE);
    b.submit(0, { op: AccelOp.MEMMOVE, pasid: 1, size: 0, comp: COMP + 128 });
    expect(b.record(b.t1, COMP + 128).status).toBe(AccelStatus.BAD_SIZE);
  });

  it('a page fault with PRI on raises a page request; SUCCESS after mapping completes the descriptor', () => {
    const b = accelBench({ pri: true });
    b.wq(0, WQ_CFG_ENABLE);
    const DST2 = 0x50_0000;
    b.submit(0, { op: AccelOp.MEMMOVE, pasid: 1, dst: DST2 });
    expect(b.r(AccelReg.GENSTS) & ACCEL_GENSTS_WAITING).toBe(ACCEL_GENSTS_WAITING);
    const prs = b.pageRequests(b.dev);
    expect(prs.map((p) => [p.address, p.pasid, p.write])).toEqual([[DST2, 1, true], [DST2 + PAGE, 1, true], [DST2 + 2 * PAGE, 1, true]]);
    expect(b.record().status).toBe(0); // not written yet
    // A descriptor behind it waits too.
    b.submit(0, { op: AccelOp.NOOP, pasid: 1, comp: COMP + 32 });
    expect(b.r(AccelReg.WQ_BASE + WqReg.OCC)).toBe(1);
    b.map(b.t1, DST2, SIZE);
    b.respond(b.dev, 1, prs[2]!.prgi, PageResponseCode.Success);
    expect(b.record()).toMatchObject({ status: AccelStatus.SUCCESS, bytes: SIZE });
    expect(b.peek(b.t1, DST2 + PAGE, PAGE)).toEqual(source().subarray(PAGE, 2 * PAGE));
    expect(b.record(b.t1, COMP + 32).status).toBe(AccelStatus.SUCCESS);
    expect(b.r(AccelReg.GENSTS) & ACCEL_GENSTS_WAITING).toBe(0);
    expect(b.faults(b.dev)).toEqual([]);
  });

  it('a page request answered INVALID completes the descriptor with PAGE_FAULT and the faulting address', () => {
    const b = accelBench({ pri: true });
    b.wq(0, WQ_CFG_ENABLE);
    const DST2 = 0x50_0000;
    b.submit(0, { op: AccelOp.MEMMOVE, pasid: 1, dst: DST2 });
    const [pr] = b.pageRequests(b.dev);
    b.respond(b.dev, 1, pr!.prgi, PageResponseCode.Invalid);
    expect(b.record()).toEqual({ status: AccelStatus.PAGE_FAULT, result: 0, write: 1, bytes: 0, faultAddress: DST2 });
    expect(b.r(AccelReg.GENSTS) & ACCEL_GENSTS_WAITING).toBe(0);
  });

  it('submission errors: disabled WQ, full shared WQ (ENQCMD retry), narrow portal stores', () => {
    const b = accelBench({ pri: true });
    expect(b.submit(2, { op: AccelOp.NOOP, pasid: 1 })).toBe(false);
    expect(b.r(AccelReg.SWERR)).toBe(1 | (AccelSwErr.WQ_DISABLED << 8) | (2 << 16));
    b.w(AccelReg.SWERR, 1);
    expect(b.r(AccelReg.SWERR)).toBe(0);
    b.wq(0, WQ_CFG_ENABLE, 1);
    expect(b.submit(0, { op: AccelOp.MEMMOVE, pasid: 1, dst: 0x50_0000 })).toBe(true); // waits on a page request
    expect(b.submit(0, { op: AccelOp.NOOP, pasid: 1 })).toBe(true); // queued
    expect(b.submit(0, { op: AccelOp.NOOP, pasid: 1 })).toBe(false); // full: retry
    expect(b.r(AccelReg.SWERR)).toBe(0);
    b.m.mmio.write(b.dev, 2, 0, 4, 1);
    expect(b.r(AccelReg.SWERR) >>> 8 & 0xff).toBe(AccelSwErr.BAD_PORTAL);
  });

  it('function reset while a descriptor waits: everything back to power-on, the engine drops the transfer', () => {
    const b = accelBench({ pri: true });
    b.wq(0, WQ_CFG_ENABLE);
    b.submit(0, { op: AccelOp.MEMMOVE, pasid: 1, dst: 0x50_0000 });
    expect(b.accel.state.running).not.toBeNull();
    b.m.resetFunction(b.dev);
    expect(b.accel.state.running).toBeNull();
    expect(b.m.pending()).toEqual([]);
    expect([b.r(AccelReg.GENCTRL), b.r(AccelReg.GENSTS), b.accel.wqReg(0, WqReg.CFG), b.r(AccelReg.CAP) & 0xff]).toEqual([0, 0, 0, 4]);
    b.w(AccelReg.GENCTRL, ACCEL_GENCTRL_ENABLE);
    b.w(AccelReg.GENCTRL, ACCEL_GENCTRL_RESET);
    expect(b.r(AccelReg.GENCTRL)).toBe(0);
  });
});
