import type { PciDev } from '../../pci/dev.ts';
import type { PhysicalMemory } from '../memory/physical-memory.ts';
import { le32, put32, type DeviceModel, type ModelAccessSize } from './model.ts';

// MMIO dispatch: loads and stores to a function's BARs. A BAR with a model attached decodes them in the
// model; any other memory BAR is plain memory (the machine's barMemory()), as it always was. Sizes 1, 2,
// 4 and 8; an 8-byte access reaches a model as two dword accesses, low dword first (how a 64-bit store is
// split on the way to a device that decodes dwords), and its value must be a safe integer (< 2^53).
// Peer-to-peer DMA into a modelled BAR (deliver()) is cut into aligned dwords with byte accesses at the
// ragged edges; a 64-byte-aligned 64-byte write goes to mmioWriteBlock when the model has one.

export type MmioSize = 1 | 2 | 4 | 8;

export type BarMemoryOf = (dev: PciDev, bar: number) => PhysicalMemory | undefined;

const TWO32 = 2 ** 32;

export class MmioBus {
  private readonly models = new Map<PciDev, Map<number, DeviceModel>>();
  private readonly attached = new Set<DeviceModel>();
  private polling = false;

  constructor(private readonly barMemory: BarMemoryOf) {}

  /** Route accesses to `model.bars` of `dev` to `model` (replacing any model there). */
  attach(dev: PciDev, model: DeviceModel): void {
    let perDev = this.models.get(dev);
    if (perDev === undefined) this.models.set(dev, (perDev = new Map<number, DeviceModel>()));
    for (const bar of model.bars) perDev.set(bar, model);
    this.attached.add(model);
  }

  /** Remove every model of `dev`: its BARs are plain memory again. */
  detach(dev: PciDev): void {
    for (const m of this.models.get(dev)?.values() ?? []) this.attached.delete(m);
    this.models.delete(dev);
  }

  modelFor(dev: PciDev, bar: number): DeviceModel | undefined { return this.models.get(dev)?.get(bar); }

  /** The distinct models of `dev`. */
  modelsOf(dev: PciDev): DeviceModel[] { return [...new Set(this.models.get(dev)?.values() ?? [])]; }

  /** A load. Returns 0xffffffff-style all-ones for a BAR the function does not have (a master abort). */
  read(dev: PciDev, bar: number, offset: number, size: MmioSize): number {
    const model = this.modelFor(dev, bar);
    if (model !== undefined) {
      if (size !== 8) return model.mmioRead(bar, offset, size);
      return model.mmioRead(bar, offset, 4) + model.mmioRead(bar, offset + 4, 4) * TWO32;
    }
    const mem = this.barMemory(dev, bar);
    const buf = new Uint8Array(8);
    if (mem === undefined || !mem.read(offset, buf.subarray(0, size))) return size === 8 ? Number.MAX_SAFE_INTEGER : 2 ** (size * 8) - 1;
    return le32(buf, 0) + (size === 8 ? le32(buf, 4) * TWO32 : 0);
  }

  /** A store; dropped for a BAR the function does not have. */
  write(dev: PciDev, bar: number, offset: number, size: MmioSize, value: number): void {
    const model = this.modelFor(dev, bar);
    if (model !== undefined) {
      if (size !== 8) { model.mmioWrite(bar, offset, size, value); return; }
      model.mmioWrite(bar, offset, 4, value >>> 0);
      model.mmioWrite(bar, offset + 4, 4, Math.floor(value / TWO32) >>> 0);
      return;
    }
    const buf = new Uint8Array(8);
    put32(buf, 0, value >>> 0);
    put32(buf, 4, Math.floor(value / TWO32) >>> 0);
    this.barMemory(dev, bar)?.write(offset, buf.subarray(0, size));
  }

  /** A 64-byte store (MOVDIR64B/ENQCMD). True when accepted (plain memory always accepts). */
  writeBlock(dev: PciDev, bar: number, offset: number, data: Uint8Array): boolean {
    const model = this.modelFor(dev, bar);
    if (model === undefined) return this.barMemory(dev, bar)?.write(offset, data) ?? false;
    return this.deliver(model, bar, offset, data, true);
  }

  /** A DMA (peer-to-peer) access to a modelled BAR: bytes in or out. Returns what mmioWriteBlock said, else true. */
  deliver(model: DeviceModel, bar: number, offset: number, data: Uint8Array, write: boolean): boolean {
    if (write && data.length === 64 && offset % 64 === 0 && model.mmioWriteBlock !== undefined) {
      return model.mmioWriteBlock(bar, offset, data);
    }
    let i = 0;
    while (i < data.length) {
      const at = offset + i;
      const size: ModelAccessSize = at % 4 === 0 && data.length - i >= 4 ? 4 : 1;
      if (write) model.mmioWrite(bar, at, size, size === 4 ? le32(data, i) : (data[i] ?? 0));
      else if (size === 4) put32(data, i, model.mmioRead(bar, at, 4));
      else data[i] = model.mmioRead(bar, at, 1) & 0xff;
      i += size;
    }
    return true;
  }

  /** Let every model with work waiting on DMA continue (after page responses were delivered). */
  poll(): void {
    // Most machines have no model attached: nothing to iterate (this runs after every page response).
    if (this.polling || this.attached.size === 0) return;
    this.polling = true;
    try {
      for (const m of this.attached) m.process?.();
    } finally {
      this.polling = false;
    }
  }
}
