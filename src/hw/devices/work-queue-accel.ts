import { NO_PASID } from '../iommu/types.ts';
import type { DmaRequest, DmaResult } from '../dma/types.ts';
import { le32, le64, put32, put64, subDword, type DeviceModel, type DmaPort, type ModelAccessSize, type RaiseIrq } from './model.ts';

// WorkQueueAccel: a DSA-like accelerator (docs/hw-devices.md). BAR0 holds the registers and the work-queue
// configuration, BAR2 the submission portals (one 4 KiB page per WQ). Software submits a 64-byte
// descriptor with one 64-byte store to a portal: MOVDIR64B to a dedicated WQ (the PASID is the WQ's), or
// ENQCMD to a shared WQ (the PASID travels in the descriptor; a full queue answers "retry").
//
// BAR0 (32-bit registers; aligned dword stores only):
// | off   | name     | access | meaning                                                                |
// |-------|----------|--------|------------------------------------------------------------------------|
// | 0x000 | VERSION  | RO     | 0x100                                                                  |
// | 0x004 | CAP      | RO     | bits 7:0 WQ count, 15:8 log2 max queue size, 23:16 log2 max transfer   |
// | 0x008 | GENCTRL  | RW     | bit0 ENABLE, bit31 RESET (self-clearing: function reset)               |
// | 0x00c | GENSTS   | RO     | bit0 ENABLED, bit1 WAITING (a descriptor waits for a page response)    |
// | 0x010 | SWERR    | W1C    | bit0 VALID, 15:8 code (AccelSwErr), 23:16 WQ; writing bit0 clears it   |
// | 0x014 | DONE     | RO     | descriptors completed (wraps at 2^32)                                  |
// | 0x100 + 0x10*n | WQ_SIZE  | RW | queue entries (1..2^CAP[15:8]); locked while the WQ is enabled    |
// | 0x104 + 0x10*n | WQ_CFG   | RW | bit0 ENABLE, bit1 DEDICATED, bit2 PASID_EN, bit3 PRIV (dedicated)  |
// | 0x108 + 0x10*n | WQ_PASID | RW | PASID of a dedicated WQ (bits 19:0); locked while enabled          |
// | 0x10c + 0x10*n | WQ_OCC   | RO | descriptors queued, not yet started                                |
//
// Descriptor (64 bytes): 0x00 u32 PASID (19:0) | PRIV (bit31), used by shared WQs only; 0x04 u32 flags
// (23:0: bit2 RCR request completion record, bit3 RCI request completion interrupt) | opcode (31:24);
// 0x08 u64 completion record address; 0x10 u64 source (FILL: the 8-byte pattern); 0x18 u64 destination
// (COMPARE: the second source); 0x20 u32 size; 0x24 u16 interrupt handle (the MSI-X vector for RCI).
// Completion record (32 bytes): byte 0 status (AccelStatus), byte 1 result (COMPARE: 0 equal, 1 not),
// byte 2 bit0 the failing access was a write, 0x04 u32 bytes completed, 0x08 u64 the faulting address.
//
// Work runs when a descriptor is submitted, one at a time in submission order. Every DMA carries the
// descriptor's PASID (shared WQ) or the WQ's (dedicated with PASID_EN; otherwise RID only). When the
// function's PRI is enabled a fault becomes page requests (dma/engine.ts); the descriptor then waits, and
// the machine calls process() after delivering page responses: SUCCESS retries and the descriptor goes
// on, INVALID/FAILURE (and faults without PRI) complete it with PAGE_FAULT. A descriptor waiting on a
// page response holds up the ones behind it. Block-on-fault is not modelled: faults always go to PRI
// when it is enabled.

export const AccelReg = { VERSION: 0x000, CAP: 0x004, GENCTRL: 0x008, GENSTS: 0x00c, SWERR: 0x010, DONE: 0x014, WQ_BASE: 0x100 } as const;
export const WqReg = { SIZE: 0x0, CFG: 0x4, PASID: 0x8, OCC: 0xc } as const;
export const WQ_STRIDE = 0x10;
export const PORTAL_STRIDE = 0x1000;
export const ACCEL_GENCTRL_ENABLE = 0x1;
export const ACCEL_GENCTRL_RESET = 0x8000_0000;
export const ACCEL_GENSTS_ENABLED = 0x1;
export const ACCEL_GENSTS_WAITING = 0x2;
export const WQ_CFG_ENABLE = 0x1;
export const WQ_CFG_DEDICATED = 0x2;
export const WQ_CFG_PASID_EN = 0x4;
export const WQ_CFG_PRIV = 0x8;
export const DESC_FLAG_RCR = 0x4;
export const DESC_FLAG_RCI = 0x8;
export const DESC_PRIV = 0x8000_0000;
export const DESC_BYTES = 64;
export const COMPLETION_BYTES = 32;

export const AccelOp = { NOOP: 0x00, MEMMOVE: 0x03, FILL: 0x04, COMPARE: 0x05 } as const;
export const AccelStatus = { SUCCESS: 0x01, PAGE_FAULT: 0x03, DMA_ERROR: 0x05, BAD_OPCODE: 0x10, BAD_SIZE: 0x11 } as const;
export const AccelSwErr = { WQ_DISABLED: 1, QUEUE_FULL: 2, BAD_PORTAL: 3, COMPLETION_WRITE: 4 } as const;

export interface WorkQueueAccelOptions {
  readonly dma: DmaPort;
  readonly raiseIrq?: RaiseIrq;
  /** Work queues (default 4, at most 16). */
  readonly wqs?: number;
  /** log2 of the largest queue (default 6) and of the largest transfer (default 20: 1 MiB). */
  readonly maxQueueLog2?: number;
  readonly maxTransferLog2?: number;
  readonly registerBar?: number;
  readonly portalBar?: number;
}

/** One finished descriptor, as the device saw it. */
export interface AccelCompletion {
  readonly wq: number;
  readonly op: number;
  readonly pasid: number;
  readonly status: number;
  readonly result: number;
  readonly bytes: number;
  readonly faultAddress: number;
}

/** The descriptor being executed. */
interface Running {
  readonly wq: number;
  readonly desc: Uint8Array;
  readonly op: number;
  readonly pasid: number;
  readonly priv: boolean;
  readonly size: number;
  /** Which DMA of the operation is next (0, 1, ...); -1 once the completion record is being written. */
  phase: number;
  /** The DMA in flight, or null. */
  pending: DmaResult | null;
  src: Uint8Array | null;
  status: number;
  result: number;
  bytes: number;
  faultAddress: number;
  faultWrite: boolean;
}

export interface AccelState {
  readonly regs: Uint32Array;
  /** Per WQ, the descriptors queued (64-byte copies). */
  readonly queues: Uint8Array[][];
  running: Running | null;
  /** Finished descriptors, oldest first (bounded). */
  readonly completions: AccelCompletion[];
  readonly irqs: number[];
}

const REG_BYTES = 0x200;

export class WorkQueueAccel implements DeviceModel {
  readonly bars: readonly number[];
  readonly state: AccelState;
  private readonly nwq: number;
  private readonly maxQueue: number;
  private readonly maxTransfer: number;
  private readonly regBar: number;
  private readonly portalBar: number;
  private busy = false;
  private again = false;
  private nextWq = 0;

  constructor(private readonly opts: WorkQueueAccelOptions) {
    this.nwq = Math.max(1, Math.min(16, opts.wqs ?? 4));
    this.maxQueue = 2 ** (opts.maxQueueLog2 ?? 6);
    this.maxTransfer = 2 ** (opts.maxTransferLog2 ?? 20);
    this.regBar = opts.registerBar ?? 0;
    this.portalBar = opts.portalBar ?? 2;
    this.bars = [this.regBar, this.portalBar];
    this.state = { regs: new Uint32Array(REG_BYTES / 4), queues: [], running: null, completions: [], irqs: [] };
    this.reset();
  }

  reg(offset: number): number { return this.state.regs[offset >>> 2] ?? 0; }
  wqReg(wq: number, r: number): number { return this.reg(AccelReg.WQ_BASE + wq * WQ_STRIDE + r); }

  reset(): void {
    const s = this.state;
    s.regs.fill(0);
    s.regs[AccelReg.VERSION >>> 2] = 0x100;
    s.regs[AccelReg.CAP >>> 2] = this.nwq | (Math.log2(this.maxQueue) << 8) | (Math.log2(this.maxTransfer) << 16);
    s.queues.length = 0;
    for (let i = 0; i < this.nwq; i++) s.queues.push([]);
    // A descriptor in flight is abandoned: its DMA results are no longer looked at.
    s.running = null;
    s.completions.length = 0;
    s.irqs.length = 0;
    this.nextWq = 0;
  }

  mmioRead(bar: number, offset: number, size: ModelAccessSize): number {
    if (bar !== this.regBar || offset < 0 || offset >= REG_BYTES) return 0;
    return subDword(this.reg(offset & ~3), offset, size);
  }

  mmioWrite(bar: number, offset: number, size: ModelAccessSize, value: number): void {
    if (bar === this.portalBar && bar !== this.regBar) {
      // A portal only takes a 64-byte store: anything narrower is a software error.
      this.swerr(AccelSwErr.BAD_PORTAL, Math.floor(offset / PORTAL_STRIDE));
      return;
    }
    if (bar !== this.regBar || size !== 4 || offset % 4 !== 0 || offset < 0 || offset >= REG_BYTES) return;
    const v = value >>> 0;
    const r = this.state.regs;
    if (offset === AccelReg.GENCTRL) {
      if ((v & ACCEL_GENCTRL_RESET) !== 0) { this.reset(); return; }
      r[AccelReg.GENCTRL >>> 2] = v & ACCEL_GENCTRL_ENABLE;
      r[AccelReg.GENSTS >>> 2] = (this.reg(AccelReg.GENSTS) & ~ACCEL_GENSTS_ENABLED) | (v & ACCEL_GENCTRL_ENABLE);
      this.process();
      return;
    }
    if (offset === AccelReg.SWERR) {
      if ((v & 1) !== 0) r[AccelReg.SWERR >>> 2] = 0;
      return;
    }
    const wq = Math.floor((offset - AccelReg.WQ_BASE) / WQ_STRIDE);
    if (offset < AccelReg.WQ_BASE || wq >= this.nwq) return;
    const field = (offset - AccelReg.WQ_BASE) % WQ_STRIDE;
    const enabled = (this.wqReg(wq, WqReg.CFG) & WQ_CFG_ENABLE) !== 0;
    if (field === WqReg.CFG) {
      // Configuration is locked while enabled: only the ENABLE bit can change then.
      const cfg = enabled ? (this.wqReg(wq, WqReg.CFG) & ~WQ_CFG_ENABLE) | (v & WQ_CFG_ENABLE) : v & 0xf;
      const size = this.wqReg(wq, WqReg.SIZE);
      // A WQ without a size cannot be enabled; disabling discards what it had queued.
      r[offset >>> 2] = size === 0 ? cfg & ~WQ_CFG_ENABLE : cfg;
      if ((r[offset >>> 2]! & WQ_CFG_ENABLE) === 0) this.state.queues[wq]!.length = 0;
      this.syncOcc(wq);
    } else if (!enabled && field === WqReg.SIZE) {
      r[offset >>> 2] = Math.min(v, this.maxQueue);
    } else if (!enabled && field === WqReg.PASID) {
      r[offset >>> 2] = v & 0xfffff;
    }
  }

  /** MOVDIR64B / ENQCMD to a portal. False: not accepted (ENQCMD retry, or dropped with SWERR set). */
  mmioWriteBlock(bar: number, offset: number, data: Uint8Array): boolean {
    if (bar !== this.portalBar || data.length !== DESC_BYTES || offset % DESC_BYTES !== 0 || offset < 0) {
      if (bar === this.regBar && bar !== this.portalBar) return false;
      this.swerr(AccelSwErr.BAD_PORTAL, Math.floor(offset / PORTAL_STRIDE));
      return false;
    }
    const wq = Math.floor(offset / PORTAL_STRIDE);
    if (wq >= this.nwq) { this.swerr(AccelSwErr.BAD_PORTAL, wq); return false; }
    const cfg = this.wqReg(wq, WqReg.CFG);
    if ((this.reg(AccelReg.GENCTRL) & ACCEL_GENCTRL_ENABLE) === 0 || (cfg & WQ_CFG_ENABLE) === 0) {
      this.swerr(AccelSwErr.WQ_DISABLED, wq);
      return false;
    }
    const q = this.state.queues[wq]!;
    if (q.length >= this.wqReg(wq, WqReg.SIZE)) {
      // ENQCMD to a full shared WQ reports retry; MOVDIR64B to a full dedicated WQ is dropped.
      if ((cfg & WQ_CFG_DEDICATED) !== 0) this.swerr(AccelSwErr.QUEUE_FULL, wq);
      return false;
    }
    q.push(data.slice());
    this.syncOcc(wq);
    this.process();
    return true;
  }

  /** Run descriptors until the queues are empty or one waits for a page response. */
  process(): void {
    if (this.busy) { this.again = true; return; }
    this.busy = true;
    try {
      do {
        this.again = false;
        this.drain();
      } while (this.again);
    } finally {
      this.busy = false;
    }
  }

  private drain(): void {
    const s = this.state;
    for (;;) {
      let cur = s.running;
      if (cur === null) {
        if ((this.reg(AccelReg.GENCTRL) & ACCEL_GENCTRL_ENABLE) === 0) break;
        cur = this.dequeue();
        if (cur === null) break;
        s.running = cur;
      }
      if (cur.pending !== null) {
        if (!cur.pending.settled) break;
        const done = cur.pending;
        cur.pending = null;
        if (!this.settle(cur, done)) continue;
      }
      if (s.running !== cur) continue;
      this.step(cur);
    }
    const waiting = s.running?.pending?.settled === false;
    const g = this.reg(AccelReg.GENSTS);
    s.regs[AccelReg.GENSTS >>> 2] = waiting ? g | ACCEL_GENSTS_WAITING : g & ~ACCEL_GENSTS_WAITING;
  }

  /** The next descriptor, round-robin over the WQs. */
  private dequeue(): Running | null {
    for (let t = 0; t < this.nwq; t++) {
      const wq = (this.nextWq + t) % this.nwq;
      const desc = this.state.queues[wq]!.shift();
      if (desc === undefined) continue;
      this.nextWq = (wq + 1) % this.nwq;
      this.syncOcc(wq);
      const cfg = this.wqReg(wq, WqReg.CFG);
      const dedicated = (cfg & WQ_CFG_DEDICATED) !== 0;
      const word0 = le32(desc, 0);
      const pasid = dedicated ? ((cfg & WQ_CFG_PASID_EN) !== 0 ? this.wqReg(wq, WqReg.PASID) : NO_PASID) : word0 & 0xfffff;
      const priv = pasid !== NO_PASID && (dedicated ? (cfg & WQ_CFG_PRIV) !== 0 : (word0 & DESC_PRIV) !== 0);
      return {
        wq, desc, op: le32(desc, 4) >>> 24, pasid, priv, size: le32(desc, 0x20), phase: 0, pending: null, src: null,
        status: AccelStatus.SUCCESS, result: 0, bytes: 0, faultAddress: 0, faultWrite: false,
      };
    }
    return null;
  }

  /** Issue the next DMA of `cur` (or finish it). */
  private step(cur: Running): void {
    if (cur.phase === 0) {
      const known = cur.op === AccelOp.NOOP || cur.op === AccelOp.MEMMOVE || cur.op === AccelOp.FILL || cur.op === AccelOp.COMPARE;
      if (!known) { this.complete(cur, AccelStatus.BAD_OPCODE); return; }
      if (cur.op !== AccelOp.NOOP && (cur.size === 0 || cur.size > this.maxTransfer)) { this.complete(cur, AccelStatus.BAD_SIZE); return; }
    }
    const src = le64(cur.desc, 0x10);
    const dst = le64(cur.desc, 0x18);
    const read = (address: number): DmaRequest => ({ op: 'read', address, length: cur.size, data: new Uint8Array(cur.size), ...this.tag(cur) });
    const write = (data: Uint8Array): DmaRequest => ({ op: 'write', address: dst, length: cur.size, data, ...this.tag(cur) });
    let req: DmaRequest | null = null;
    switch (cur.op) {
      case AccelOp.MEMMOVE:
        req = cur.phase === 0 ? read(src) : cur.phase === 1 ? write(cur.src!) : null;
        break;
      case AccelOp.FILL:
        req = cur.phase === 0 ? write(fillPattern(cur.desc, cur.size)) : null;
        break;
      case AccelOp.COMPARE:
        req = cur.phase === 0 ? read(src) : cur.phase === 1 ? read(dst) : null;
        break;
      default:
        break;
    }
    if (req === null) { this.complete(cur, cur.status); return; }
    cur.pending = this.opts.dma.dma(req);
  }

  /** Take a settled DMA of `cur`. False when it ended the descriptor. */
  private settle(cur: Running, r: DmaResult): boolean {
    if (cur.phase < 0) {
      // The completion record write.
      if (r.status !== 'ok' && r.status !== 'p2p') this.swerr(AccelSwErr.COMPLETION_WRITE, cur.wq);
      this.finish(cur);
      return false;
    }
    if (r.status !== 'ok' && r.status !== 'p2p') {
      cur.bytes = r.bytesDone;
      cur.faultAddress = r.fault?.iova ?? r.address + r.bytesDone;
      cur.faultWrite = r.op === 'write';
      this.complete(cur, r.fault !== null || r.status === 'fault' ? AccelStatus.PAGE_FAULT : AccelStatus.DMA_ERROR);
      return false;
    }
    if (cur.op === AccelOp.COMPARE && cur.phase === 1) {
      const a = cur.src!;
      const b = r.data!;
      let i = 0;
      while (i < cur.size && a[i] === b[i]) i++;
      cur.result = i < cur.size ? 1 : 0;
      cur.bytes = i < cur.size ? i : cur.size;
    } else if (r.op === 'read') {
      cur.src = r.data;
    } else {
      cur.bytes = r.bytesDone;
    }
    cur.phase++;
    return true;
  }

  /** Write the completion record (if asked for), then retire the descriptor. */
  private complete(cur: Running, status: number): void {
    cur.status = status;
    cur.phase = -1;
    const flags = le32(cur.desc, 4) & 0xffffff;
    const at = le64(cur.desc, 0x08);
    if ((flags & DESC_FLAG_RCR) === 0) { this.finish(cur); return; }
    const rec = new Uint8Array(COMPLETION_BYTES);
    rec[0] = status;
    rec[1] = cur.result;
    rec[2] = cur.faultWrite ? 1 : 0;
    put32(rec, 4, cur.bytes);
    put64(rec, 8, cur.faultAddress);
    cur.pending = this.opts.dma.dma({ op: 'write', address: at, length: COMPLETION_BYTES, data: rec, ...this.tag(cur) });
  }

  private finish(cur: Running): void {
    const s = this.state;
    s.running = null;
    s.completions.push({ wq: cur.wq, op: cur.op, pasid: cur.pasid, status: cur.status, result: cur.result, bytes: cur.bytes, faultAddress: cur.faultAddress });
    if (s.completions.length > 256) s.completions.shift();
    s.regs[AccelReg.DONE >>> 2] = (this.reg(AccelReg.DONE) + 1) >>> 0;
    if ((le32(cur.desc, 4) & DESC_FLAG_RCI) !== 0) {
      const vector = le32(cur.desc, 0x24) & 0xffff;
      s.irqs.push(vector);
      if (s.irqs.length > 256) s.irqs.shift();
      this.opts.raiseIrq?.(vector);
    }
  }

  private tag(cur: Running): { pasid?: number; priv?: boolean } {
    return cur.pasid === NO_PASID ? {} : { pasid: cur.pasid, ...(cur.priv ? { priv: true } : {}) };
  }

  private syncOcc(wq: number): void {
    this.state.regs[(AccelReg.WQ_BASE + wq * WQ_STRIDE + WqReg.OCC) >>> 2] = this.state.queues[wq]?.length ?? 0;
  }

  private swerr(code: number, wq: number): void {
    this.state.regs[AccelReg.SWERR >>> 2] = 1 | ((code & 0xff) << 8) | ((wq & 0xff) << 16);
  }
}

/** FILL: the 8-byte pattern in the source field, repeated. */
function fillPattern(desc: Uint8Array, size: number): Uint8Array {
  const out = new Uint8Array(size);
  for (let i = 0; i < size; i++) out[i] = desc[0x10 + (i & 7)] ?? 0;
  return out;
}
