import type { DmaResult } from '../dma/types.ts';
import { le32, le64, put32, subDword, type DeviceModel, type DmaPort, type ModelAccessSize, type RaiseIrq } from './model.ts';

// SimpleNic: a NIC-like function with one TX and one RX descriptor ring (docs/hw-devices.md). Registers
// are 32-bit in BAR0; only aligned dword stores are decoded (narrower or misaligned stores are dropped),
// loads of any size return the register's bytes.
//
// | off  | name        | access | meaning                                                              |
// |------|-------------|--------|----------------------------------------------------------------------|
// | 0x00 | CTRL        | RW     | bit0 ENABLE, bit1 LOOPBACK, bit31 RESET (self-clearing: function reset)|
// | 0x04 | STATUS      | RO/W1C | bit0 ENABLED (RO), bit1 DMA_ERROR (W1C), bit2 RX_NO_BUFFER (W1C)     |
// | 0x08 | INT_CAUSE   | W1C    | bit0 TX_DONE, bit1 RX_DONE, bit2 ERROR                               |
// | 0x0c | INT_MASK    | RW     | same bits, 1 = masked; reset value 0x7 (all masked)                  |
// | 0x10 | FAULT_LO    | RO     | IOVA of the DMA that failed, bits 31:0                               |
// | 0x14 | FAULT_HI    | RO     | bits 63:32                                                           |
// | 0x18 | FAULT_INFO  | RO     | bits 7:0 what failed (1 fault, 2 aborted, 3 ur, 4 blocked, 5 pending),|
// |      |             |        | bit8 the access was a write                                          |
// | 0x20 | TX_BASE_LO  | RW     | TX ring IOVA (16-byte aligned; low 4 bits ignored)                   |
// | 0x24 | TX_BASE_HI  | RW     |                                                                      |
// | 0x28 | TX_SIZE     | RW     | descriptors in the ring (0..4096; 0 = ring off)                      |
// | 0x2c | TX_HEAD     | RO     | next descriptor the device reads                                     |
// | 0x30 | TX_TAIL     | RW     | doorbell: one past the last descriptor software filled               |
// | 0x40 | RX_BASE_LO  | RW     | RX ring, as TX                                                       |
// | 0x44 | RX_BASE_HI  | RW     |                                                                      |
// | 0x48 | RX_SIZE     | RW     |                                                                      |
// | 0x4c | RX_HEAD     | RO     | next RX descriptor the device fills                                  |
// | 0x50 | RX_TAIL     | RW     | doorbell: one past the last buffer software posted                   |
// | 0x60 | TX_PACKETS  | RO     | counters (wrap at 2^32)                                              |
// | 0x64 | RX_PACKETS  | RO     |                                                                      |
// | 0x68 | TX_BYTES    | RO     |                                                                      |
// | 0x6c | RX_DROPS    | RO     | packets looped back with no RX buffer posted                         |
//
// Descriptors (16 bytes, both rings): u64 buffer IOVA, u16 length, u16 flags. TX flags: bit15 DD
// (written back by the device once sent). RX: length is the buffer size when posted; the device writes
// back the packet length and flags DD | (bit1 TRUNCATED if the buffer was shorter than the packet).
// MSI-X vectors: 0 TX_DONE, 1 RX_DONE, 2 ERROR, raised when the cause bit is set and not masked.
// All DMA is RID-tagged (no PASID). A DMA that does not complete ('fault', 'ur', 'blocked', 'aborted',
// or 'pending': the model does not wait for page requests) stops both rings: STATUS.DMA_ERROR is set
// with the failing IOVA in FAULT_LO/HI, and nothing is processed until software clears DMA_ERROR.

export const NicReg = {
  CTRL: 0x00, STATUS: 0x04, INT_CAUSE: 0x08, INT_MASK: 0x0c, FAULT_LO: 0x10, FAULT_HI: 0x14, FAULT_INFO: 0x18,
  TX_BASE_LO: 0x20, TX_BASE_HI: 0x24, TX_SIZE: 0x28, TX_HEAD: 0x2c, TX_TAIL: 0x30,
  RX_BASE_LO: 0x40, RX_BASE_HI: 0x44, RX_SIZE: 0x48, RX_HEAD: 0x4c, RX_TAIL: 0x50,
  TX_PACKETS: 0x60, RX_PACKETS: 0x64, TX_BYTES: 0x68, RX_DROPS: 0x6c,
} as const;

export const NIC_CTRL_ENABLE = 0x1;
export const NIC_CTRL_LOOPBACK = 0x2;
export const NIC_CTRL_RESET = 0x8000_0000;
export const NIC_STATUS_ENABLED = 0x1;
export const NIC_STATUS_DMA_ERROR = 0x2;
export const NIC_STATUS_RX_NO_BUFFER = 0x4;
export const NIC_INT_TX_DONE = 0x1;
export const NIC_INT_RX_DONE = 0x2;
export const NIC_INT_ERROR = 0x4;
export const NIC_DESC_DD = 0x8000;
export const NIC_DESC_TRUNCATED = 0x2;
export const NIC_DESC_BYTES = 16;
export const NIC_MAX_RING = 4096;
/** Vectors per cause bit (bit i -> vector i). */
export const NIC_VECTOR = { TX_DONE: 0, RX_DONE: 1, ERROR: 2 } as const;
export const NIC_FAULT_KIND: Readonly<Record<string, number>> = { fault: 1, aborted: 2, ur: 3, blocked: 4, pending: 5 };

const REG_WORDS = 0x80 / 4;
const RO = new Set<number>([NicReg.TX_HEAD, NicReg.RX_HEAD, NicReg.FAULT_LO, NicReg.FAULT_HI, NicReg.FAULT_INFO,
  NicReg.TX_PACKETS, NicReg.RX_PACKETS, NicReg.TX_BYTES, NicReg.RX_DROPS]);

export interface SimpleNicOptions {
  /** How the NIC issues DMA (Machine.dmaPort(dev)). */
  readonly dma: DmaPort;
  readonly raiseIrq?: RaiseIrq;
  /** Packets sent without loopback kept in `state.wire` (default 64). */
  readonly wireLog?: number;
}

export interface NicState {
  /** The register file, indexed by offset / 4. */
  readonly regs: Uint32Array;
  /** Packets that left on the wire (loopback off), oldest first. */
  readonly wire: Uint8Array[];
  /** The last DMA that failed, or null. */
  lastError: DmaResult | null;
  /** Interrupts raised, by vector. */
  readonly irqs: number[];
}

export class SimpleNic implements DeviceModel {
  readonly bars: readonly number[] = [0];
  readonly state: NicState = { regs: new Uint32Array(REG_WORDS), wire: [], lastError: null, irqs: [] };
  // Scratch buffers reused for every descriptor (TX, RX) and write-back dword.
  private readonly desc = new Uint8Array(NIC_DESC_BYTES);
  private readonly rxDesc = new Uint8Array(NIC_DESC_BYTES);
  private readonly wb = new Uint8Array(4);
  private busy = false;

  constructor(private readonly opts: SimpleNicOptions) {
    this.reset();
  }

  reg(offset: number): number { return this.state.regs[offset >>> 2] ?? 0; }

  reset(): void {
    this.state.regs.fill(0);
    this.state.regs[NicReg.INT_MASK >>> 2] = NIC_INT_TX_DONE | NIC_INT_RX_DONE | NIC_INT_ERROR;
    this.state.wire.length = 0;
    this.state.lastError = null;
    this.state.irqs.length = 0;
  }

  mmioRead(bar: number, offset: number, size: ModelAccessSize): number {
    if (bar !== 0 || offset < 0 || offset >= REG_WORDS * 4) return 0;
    return subDword(this.reg(offset & ~3), offset, size);
  }

  mmioWrite(bar: number, offset: number, size: ModelAccessSize, value: number): void {
    // Only aligned dword stores are decoded.
    if (bar !== 0 || size !== 4 || offset % 4 !== 0 || offset < 0 || offset >= REG_WORDS * 4 || RO.has(offset)) return;
    const v = value >>> 0;
    const r = this.state.regs;
    switch (offset) {
      case NicReg.CTRL:
        if ((v & NIC_CTRL_RESET) !== 0) { this.reset(); return; }
        r[NicReg.CTRL >>> 2] = v & (NIC_CTRL_ENABLE | NIC_CTRL_LOOPBACK);
        this.setStatusBit(NIC_STATUS_ENABLED, (v & NIC_CTRL_ENABLE) !== 0);
        break;
      case NicReg.STATUS:
        r[NicReg.STATUS >>> 2] = this.reg(NicReg.STATUS) & ~(v & (NIC_STATUS_DMA_ERROR | NIC_STATUS_RX_NO_BUFFER));
        break;
      case NicReg.INT_CAUSE:
        r[NicReg.INT_CAUSE >>> 2] = this.reg(NicReg.INT_CAUSE) & ~v;
        return;
      case NicReg.INT_MASK:
        r[NicReg.INT_MASK >>> 2] = v & 0x7;
        return;
      case NicReg.TX_SIZE: case NicReg.RX_SIZE:
        // A new ring size restarts the ring at 0 (as reprogramming a ring does).
        r[offset >>> 2] = Math.min(v, NIC_MAX_RING);
        r[(offset + 4) >>> 2] = 0;
        r[(offset + 8) >>> 2] = 0;
        return;
      case NicReg.TX_TAIL: case NicReg.RX_TAIL: {
        const size = this.reg(offset - 8);
        r[offset >>> 2] = size === 0 ? 0 : v % size;
        break;
      }
      default:
        r[offset >>> 2] = v;
        return;
    }
    this.run();
  }

  /** Process TX descriptors from TX_HEAD to TX_TAIL while enabled and no error is latched. */
  private run(): void {
    if (this.busy) return;
    this.busy = true;
    try {
      while (this.canRun()) {
        const size = this.reg(NicReg.TX_SIZE);
        const head = this.reg(NicReg.TX_HEAD);
        if (size === 0 || head === this.reg(NicReg.TX_TAIL)) break;
        if (!this.transmit(head)) break;
        this.state.regs[NicReg.TX_HEAD >>> 2] = (head + 1) % size;
      }
    } finally {
      this.busy = false;
    }
  }

  private canRun(): boolean {
    return (this.reg(NicReg.CTRL) & NIC_CTRL_ENABLE) !== 0 && (this.reg(NicReg.STATUS) & NIC_STATUS_DMA_ERROR) === 0;
  }

  /** Send TX descriptor `i`: read it, read its buffer, loop it back or put it on the wire, write DD back. */
  private transmit(i: number): boolean {
    const at = this.ringBase(NicReg.TX_BASE_LO) + i * NIC_DESC_BYTES;
    if (!this.dmaRead(at, this.desc)) return false;
    const addr = le64(this.desc, 0);
    const len = le32(this.desc, 8) & 0xffff;
    const flags = le32(this.desc, 8) >>> 16;
    const packet = new Uint8Array(len);
    if (len > 0 && !this.dmaRead(addr, packet)) return false;
    if ((this.reg(NicReg.CTRL) & NIC_CTRL_LOOPBACK) !== 0) {
      if (!this.receive(packet)) return false;
    } else {
      this.state.wire.push(packet);
      if (this.state.wire.length > (this.opts.wireLog ?? 64)) this.state.wire.shift();
    }
    // Descriptor write-back: DD set in the flags word.
    const wb = this.wb;
    put32(wb, 0, (len | ((flags | NIC_DESC_DD) << 16)) >>> 0);
    if (!this.dmaWrite(at + 8, wb)) return false;
    this.bump(NicReg.TX_PACKETS, 1);
    this.bump(NicReg.TX_BYTES, len);
    this.cause(NIC_INT_TX_DONE);
    return true;
  }

  /** Loopback: the packet into the next posted RX buffer; dropped (counted) when none is posted. */
  private receive(packet: Uint8Array): boolean {
    const size = this.reg(NicReg.RX_SIZE);
    const head = this.reg(NicReg.RX_HEAD);
    if (size === 0 || head === this.reg(NicReg.RX_TAIL)) {
      this.bump(NicReg.RX_DROPS, 1);
      this.setStatusBit(NIC_STATUS_RX_NO_BUFFER, true);
      return true;
    }
    const at = this.ringBase(NicReg.RX_BASE_LO) + head * NIC_DESC_BYTES;
    const d = this.rxDesc;
    if (!this.dmaRead(at, d)) return false;
    const room = le32(d, 8) & 0xffff;
    const n = Math.min(room, packet.length);
    if (n > 0 && !this.dmaWrite(le64(d, 0), packet.subarray(0, n))) return false;
    const wb = this.wb;
    put32(wb, 0, (n | ((NIC_DESC_DD | (n < packet.length ? NIC_DESC_TRUNCATED : 0)) << 16)) >>> 0);
    if (!this.dmaWrite(at + 8, wb)) return false;
    this.state.regs[NicReg.RX_HEAD >>> 2] = (head + 1) % size;
    this.bump(NicReg.RX_PACKETS, 1);
    this.cause(NIC_INT_RX_DONE);
    return true;
  }

  private ringBase(lo: number): number {
    return (this.reg(lo) & ~0xf) + this.reg(lo + 4) * 2 ** 32;
  }

  private dmaRead(address: number, into: Uint8Array): boolean {
    return this.check(this.opts.dma.dma({ op: 'read', address, length: into.length, data: into }), false);
  }

  private dmaWrite(address: number, data: Uint8Array): boolean {
    return this.check(this.opts.dma.dma({ op: 'write', address, length: data.length, data }), true);
  }

  /** A DMA that did not complete latches DMA_ERROR with the failing IOVA and stops the rings. */
  private check(r: DmaResult, write: boolean): boolean {
    if (r.status === 'ok' || r.status === 'p2p') return true;
    const iova = r.fault?.iova ?? r.address + r.bytesDone;
    const regs = this.state.regs;
    regs[NicReg.FAULT_LO >>> 2] = iova >>> 0;
    regs[NicReg.FAULT_HI >>> 2] = Math.floor(iova / 2 ** 32) >>> 0;
    regs[NicReg.FAULT_INFO >>> 2] = (NIC_FAULT_KIND[r.status] ?? 0xff) | (write ? 0x100 : 0);
    this.state.lastError = r;
    this.setStatusBit(NIC_STATUS_DMA_ERROR, true);
    this.cause(NIC_INT_ERROR);
    return false;
  }

  private setStatusBit(bit: number, on: boolean): void {
    const s = this.reg(NicReg.STATUS);
    this.state.regs[NicReg.STATUS >>> 2] = on ? s | bit : s & ~bit;
  }

  private bump(offset: number, n: number): void {
    this.state.regs[offset >>> 2] = (this.reg(offset) + n) >>> 0;
  }

  /** Set a cause bit; raise its vector unless masked (MSI-X: one message per event). */
  private cause(bit: number): void {
    this.state.regs[NicReg.INT_CAUSE >>> 2] = this.reg(NicReg.INT_CAUSE) | bit;
    if ((this.reg(NicReg.INT_MASK) & bit) !== 0) return;
    const vector = 31 - Math.clz32(bit);
    this.state.irqs.push(vector);
    if (this.state.irqs.length > 256) this.state.irqs.shift();
    this.opts.raiseIrq?.(vector);
  }
}
