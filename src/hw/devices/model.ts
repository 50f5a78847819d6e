import type { DmaRequest, DmaResult } from '../dma/types.ts';

// What a device model is to the machine: a state machine behind one or more of a function's memory BARs.
// CPU (and user, through a VFIO mapping) loads and stores reach it as mmioRead/mmioWrite; a 64-byte
// atomic store (MOVDIR64B, ENQCMD) as mmioWriteBlock. A model moves data only through its DmaPort, so
// its requests carry the function's requester ID and go through the fabric and the IOMMU like any DMA.

/** Access sizes a model decodes: the bus splits an 8-byte access into two dwords, low first. */
export type ModelAccessSize = 1 | 2 | 4;

export interface DeviceModel {
  /** The BAR indexes the model decodes; accesses to the function's other BARs stay plain memory. */
  readonly bars: readonly number[];
  /** A load of `size` bytes at `offset` in BAR `bar`. Never throws; unimplemented registers read 0. */
  mmioRead(bar: number, offset: number, size: ModelAccessSize): number;
  /** A store. Never throws; writes to unimplemented or read-only registers are dropped. */
  mmioWrite(bar: number, offset: number, size: ModelAccessSize, value: number): void;
  /**
   * A 64-byte store issued as one transaction (MOVDIR64B, ENQCMD). Returns whether the device accepted it
   * (ENQCMD's status: false means retry). Models without it see the bytes as dword stores.
   */
  mmioWriteBlock?(bar: number, offset: number, data: Uint8Array): boolean;
  /** Function-level reset: back to the power-on state. */
  reset(): void;
  /** Continue work that waited for DMA (page responses); the machine calls it after delivering messages. */
  process?(): void;
}

/** How a model issues DMA: as its function, through the machine (Machine.dmaPort). */
export interface DmaPort {
  dma(req: DmaRequest): DmaResult;
}

/** An interrupt the model raises (an MSI-X vector of its function). */
export type RaiseIrq = (vector: number) => void;

/** Little-endian helpers over a byte buffer (descriptor and register images). */
export function le32(b: Uint8Array, at: number): number {
  return ((b[at] ?? 0) | ((b[at + 1] ?? 0) << 8) | ((b[at + 2] ?? 0) << 16) | ((b[at + 3] ?? 0) << 24)) >>> 0;
}
export function le64(b: Uint8Array, at: number): number {
  return le32(b, at) + le32(b, at + 4) * 2 ** 32;
}
export function put32(b: Uint8Array, at: number, v: number): void {
  b[at] = v & 0xff; b[at + 1] = (v >>> 8) & 0xff; b[at + 2] = (v >>> 16) & 0xff; b[at + 3] = (v >>> 24) & 0xff;
}
export function put64(b: Uint8Array, at: number, v: number): void {
  put32(b, at, v >>> 0);
  put32(b, at + 4, Math.floor(v / 2 ** 32) >>> 0);
}

/** The bytes a sub-dword read of a 32-bit register returns. */
export function subDword(reg: number, offset: number, size: ModelAccessSize): number {
  const shift = (offset & 3) * 8;
  return size === 4 ? reg >>> 0 : (reg >>> shift) & (size === 2 ? 0xffff : 0xff);
}
