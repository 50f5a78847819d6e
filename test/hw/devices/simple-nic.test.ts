import { describe, expect, it } from 'vitest';
import {
  NIC_CTRL_ENABLE, NIC_CTRL_LOOPBACK, NIC_CTRL_RESET, NIC_DESC_BYTES, NIC_DESC_DD, NIC_DESC_TRUNCATED, NIC_INT_ERROR, NIC_INT_RX_DONE,
  NIC_INT_TX_DONE, NIC_STATUS_DMA_ERROR, NIC_STATUS_ENABLED, NIC_VECTOR, NicReg, SimpleNic,
} from '../../../src/hw/devices/simple-nic.ts';
import { put32, put64 } from '../../../src/hw/devices/model.ts';
import { FaultReason } from '../../../src/hw/iommu/types.ts';
import type { IoPageTable } from '../../../src/hw/iommu/pgtable/builder.ts';
import { deviceBench, PAGE, pattern, type DeviceBench } from './device-bench.ts';

// The NIC model on the default host's X710 port 0 (38:00.0): rings and buffers reached through a real
// second-stage table, loopback moving bytes from one IOVA range to another, faults latched.

const TX_RING = 0x1_0000;
const RX_RING = 0x2_0000;
const TX_BUF = 0x10_0000;
const RX_BUF = 0x20_0000;

function desc(addr: number, len: number, flags = 0): Uint8Array {
  const d = new Uint8Array(NIC_DESC_BYTES);
  put64(d, 0, addr);
  put32(d, 8, len | (flags << 16));
  return d;
}

function nicBench() {
  const b = deviceBench();
  const dev = b.fn('38:00.0');
  const ss = b.context(dev);
  for (const [iova, bytes] of [[TX_RING, PAGE], [RX_RING, PAGE], [TX_BUF, 4 * PAGE], [RX_BUF, 4 * PAGE]] as const) b.map(ss, iova, bytes);
  const irqs: number[] = [];
  const nic = new SimpleNic({ dma: b.m.dmaPort(dev), raiseIrq: (v) => irqs.push(v) });
  b.m.attachModel(dev, nic);
  const w = (off: number, v: number): void => b.m.mmio.write(dev, 0, off, 4, v);
  const r = (off: number): number => b.m.mmio.read(dev, 0, off, 4);
  /** Program both rings (`n` entries), unmask interrupts, enable with loopback. */
  const up = (n = 8, loopback = true): void => {
    b.m.mmio.write(dev, 0, NicReg.TX_BASE_LO, 8, TX_RING);
    w(NicReg.TX_SIZE, n);
    b.m.mmio.write(dev, 0, NicReg.RX_BASE_LO, 8, RX_RING);
    w(NicReg.RX_SIZE, n);
    w(NicReg.INT_MASK, 0);
    w(NicReg.CTRL, NIC_CTRL_ENABLE | (loopback ? NIC_CTRL_LOOPBACK : 0));
  };
  return { ...b, dev, ss, nic, irqs, w, r, up };
}

const txDesc = (b: DeviceBench, ss: IoPageTable, i: number, addr: number, len: number): void => b.poke(ss, TX_RING + i * NIC_DESC_BYTES, desc(addr, len));
const rxDesc = (b: DeviceBench, ss: IoPageTable, i: number, addr: number, len: number): void => b.poke(ss, RX_RING + i * NIC_DESC_BYTES, desc(addr, len));

describe('SimpleNic', () => {
  it('loopback moves packets from TX buffers into RX buffers through the IOMMU, writes back, interrupts', () => {
    const b = nicBench();
    b.up();
    const p0 = pattern(1500, 1);
    const p1 = pattern(300, 2);
    b.poke(b.ss, TX_BUF, p0);
    b.poke(b.ss, TX_BUF + PAGE, p1);
    txDesc(b, b.ss, 0, TX_BUF, p0.length);
    txDesc(b, b.ss, 1, TX_BUF + PAGE, p1.length);
    rxDesc(b, b.ss, 0, RX_BUF, 2048);
    rxDesc(b, b.ss, 1, RX_BUF + PAGE, 2048);
    b.w(NicReg.RX_TAIL, 2); // post two buffers
    b.w(NicReg.TX_TAIL, 2); // doorbell
    expect(b.peek(b.ss, RX_BUF, p0.length)).toEqual(p0);
    expect(b.peek(b.ss, RX_BUF + PAGE, p1.length)).toEqual(p1);
    const wb = b.peek(b.ss, RX_RING + 8, 4);
    expect(wb[0]! | (wb[1]! << 8)).toBe(1500);
    expect((wb[2]! | (wb[3]! << 8)) & NIC_DESC_DD).toBe(NIC_DESC_DD);
    expect(b.peek(b.ss, TX_RING + NIC_DESC_BYTES + 11, 1)[0]! << 8 & NIC_DESC_DD).toBe(NIC_DESC_DD);
    expect([b.r(NicReg.TX_HEAD), b.r(NicReg.RX_HEAD), b.r(NicReg.TX_PACKETS), b.r(NicReg.RX_PACKETS), b.r(NicReg.TX_BYTES)]).toEqual([2, 2, 2, 2, 1800]);
    expect(b.r(NicReg.STATUS)).toBe(NIC_STATUS_ENABLED);
    expect(b.r(NicReg.INT_CAUSE)).toBe(NIC_INT_TX_DONE | NIC_INT_RX_DONE);
    expect(b.irqs).toEqual([NIC_VECTOR.RX_DONE, NIC_VECTOR.TX_DONE, NIC_VECTOR.RX_DONE, NIC_VECTOR.TX_DONE]);
    expect(b.faults(b.dev)).toEqual([]);
    b.w(NicReg.INT_CAUSE, NIC_INT_TX_DONE | NIC_INT_RX_DONE);
    expect(b.r(NicReg.INT_CAUSE)).toBe(0);
  });

  it('a short RX buffer truncates; no buffer posted drops and counts; loopback off puts packets on the wire', () => {
    const b = nicBench();
    b.up(4);
    b.poke(b.ss, TX_BUF, pattern(100));
    txDesc(b, b.ss, 0, TX_BUF, 100);
    txDesc(b, b.ss, 1, TX_BUF, 100);
    rxDesc(b, b.ss, 0, RX_BUF, 40);
    b.w(NicReg.RX_TAIL, 1);
    b.w(NicReg.TX_TAIL, 2);
    const wb = b.peek(b.ss, RX_RING + 8, 4);
    expect(wb[0]).toBe(40);
    expect((wb[2]! | (wb[3]! << 8)) & NIC_DESC_TRUNCATED).toBe(NIC_DESC_TRUNCATED);
    expect(b.r(NicReg.RX_DROPS)).toBe(1);
    b.w(NicReg.CTRL, NIC_CTRL_ENABLE);
    txDesc(b, b.ss, 2, TX_BUF, 10);
    b.w(NicReg.TX_TAIL, 3);
    expect(b.nic.state.wire).toEqual([pattern(100).subarray(0, 10)]);
  });

  it('a DMA to an unmapped IOVA faults: recorded in the IOMMU fault queue, DMA_ERROR latched with the IOVA, ring stopped', () => {
    const b = nicBench();
    b.up();
    const bad = 0x9_0000_0000;
    txDesc(b, b.ss, 0, bad, 64);
    txDesc(b, b.ss, 1, TX_BUF, 64);
    rxDesc(b, b.ss, 0, RX_BUF, 2048);
    rxDesc(b, b.ss, 1, RX_BUF + PAGE, 2048);
    b.w(NicReg.RX_TAIL, 2);
    b.w(NicReg.TX_TAIL, 2);
    expect(b.r(NicReg.STATUS) & NIC_STATUS_DMA_ERROR).toBe(NIC_STATUS_DMA_ERROR);
    expect(b.m.mmio.read(b.dev, 0, NicReg.FAULT_LO, 8)).toBe(bad);
    expect(b.r(NicReg.FAULT_INFO)).toBe(1); // a fault, on a read
    expect(b.r(NicReg.TX_HEAD)).toBe(0);
    expect(b.r(NicReg.INT_CAUSE) & NIC_INT_ERROR).toBe(NIC_INT_ERROR);
    expect(b.irqs).toEqual([NIC_VECTOR.ERROR]);
    expect(b.faults(b.dev)).toEqual([expect.objectContaining({ rid: b.dev.rid, iova: bad, reason: FaultReason.PteNotPresent })]);
    // Software fixes the descriptor, clears the error: the ring resumes where it stopped.
    txDesc(b, b.ss, 0, TX_BUF, 64);
    b.w(NicReg.STATUS, NIC_STATUS_DMA_ERROR);
    expect([b.r(NicReg.TX_HEAD), b.r(NicReg.RX_HEAD), b.r(NicReg.STATUS)]).toEqual([2, 2, NIC_STATUS_ENABLED]);
  });

  it('an unmapped ring faults too, with the descriptor address latched', () => {
    const b = nicBench();
    b.m.mmio.write(b.dev, 0, NicReg.TX_BASE_LO, 8, 0x7770_0000);
    b.w(NicReg.TX_SIZE, 4);
    b.w(NicReg.CTRL, NIC_CTRL_ENABLE);
    b.w(NicReg.TX_TAIL, 1);
    expect(b.m.mmio.read(b.dev, 0, NicReg.FAULT_LO, 8)).toBe(0x7770_0000);
    expect(b.nic.state.lastError?.status).toBe('fault');
  });

  it('reset (CTRL.RESET or function reset) returns every register to its power-on value; masked interrupts are not raised', () => {
    const b = nicBench();
    b.up();
    b.w(NicReg.INT_MASK, 0x7);
    txDesc(b, b.ss, 0, 0x9_0000_0000, 4);
    b.w(NicReg.TX_TAIL, 1);
    expect(b.irqs).toEqual([]);
    b.w(NicReg.CTRL, NIC_CTRL_RESET);
    expect([b.r(NicReg.CTRL), b.r(NicReg.STATUS), b.r(NicReg.TX_SIZE), b.r(NicReg.INT_MASK)]).toEqual([0, 0, 0, 7]);
    b.up();
    b.m.resetFunction(b.dev);
    expect(b.r(NicReg.CTRL)).toBe(0);
    // Sub-dword reads see the register's bytes; narrow writes are dropped.
    b.w(NicReg.TX_SIZE, 0x123);
    expect(b.m.mmio.read(b.dev, 0, NicReg.TX_SIZE + 1, 1)).toBe(0x01);
    b.m.mmio.write(b.dev, 0, NicReg.TX_SIZE, 2, 5);
    expect(b.r(NicReg.TX_SIZE)).toBe(0x123);
  });

  it('BARs without a model are plain memory; peer-to-peer DMA to a modelled BAR reaches the model', () => {
    const b = nicBench();
    expect(b.m.mmio.modelFor(b.dev, 3)).toBeUndefined();
    b.m.mmio.write(b.dev, 3, 0x10, 4, 0xdeadbeef);
    expect(b.m.mmio.read(b.dev, 3, 0x10, 4)).toBe(0xdeadbeef);
    expect(b.m.barMemory(b.dev, 3)!.read32(0x10)).toBe(0xdeadbeef);
    // The GPU and its audio function (16:00.0/.1, no ACS) route to each other inside the device; a model
    // attached to the GPU's BAR 0 decodes what the audio function writes there.
    const gpu = b.m.device('16:00.0')!;
    const peer = b.m.device('16:00.1')!;
    const model = new SimpleNic({ dma: b.m.dmaPort(gpu) });
    b.m.attachModel(gpu, model);
    const bar0 = b.m.fabric.map.bars(gpu).find((x) => x.index === 0)!.start;
    expect(b.m.route(peer, bar0).kind).toBe('p2p');
    const v = new Uint8Array(4);
    put32(v, 0, 0x5);
    expect(b.m.dma(peer, { op: 'write', address: bar0 + NicReg.INT_MASK, length: 4, data: v }).status).toBe('p2p');
    expect(model.reg(NicReg.INT_MASK)).toBe(5);
    const rd = b.m.dma(peer, { op: 'read', address: bar0 + NicReg.INT_MASK, length: 4 });
    expect(rd.data).toEqual(v);
    expect(b.m.barMemory(gpu, 0)!.read32(NicReg.INT_MASK)).toBe(0); // the model decoded it, not memory
    b.m.mmio.detach(gpu);
    expect(b.m.mmio.read(gpu, 0, NicReg.INT_MASK, 4)).toBe(0);
  });
});
