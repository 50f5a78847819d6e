// vfio-pci's regions (vfio_pci_core.c GET_REGION_INFO and vfio_pci_rdwr.c): BAR0-5, the expansion ROM, the
// config space and the legacy VGA range, each at file offset index << 40 of the device fd.
//
//  * A BAR region's size is the BAR's size; flags READ|WRITE, plus MMAP for memory BARs. An I/O BAR
//    cannot be mapped. The upper half of a 64-bit BAR and an unimplemented BAR are size 0, flags 0.
//  * ROM: READ only, size of the ROM BAR (no ROM is modelled: 0). CONFIG: READ|WRITE, pdev->cfg_size.
//    VGA: only for a VGA-class function (0xa0000-0xbffff plus the I/O ports), else EINVAL.
//  * BAR reads and writes go through a per-BAR handler, so a device model can be plugged in; the default
//    is the Machine's BAR memory. Access needs COMMAND.MEMORY (or .IO for an I/O BAR) set in the user's
//    view of config space, else EIO; a range starting past the BAR is EINVAL and one running past its
//    end is cut short.

import type { PhysicalMemory } from '../../../hw/memory/physical-memory.ts';
import { PAGE_SIZE } from '../../../hw/memory/physical-memory.ts';
import type { PciDev } from '../../../pci/dev.ts';
import { PCI_BASE_ADDRESS_0, PCI_BASE_ADDRESS_MEM_TYPE_64, PCI_BASE_ADDRESS_SPACE_IO } from '../../../pci/regs.ts';
import { fail, ok, type Result } from '../../errno.ts';
import { PCI_CLASS_VGA } from './pci-consts.ts';

export const VFIO_PCI_OFFSET_SHIFT = 40;
export const REGION_READ = 1;
export const REGION_WRITE = 2;
export const REGION_MMAP = 4;
export const BAR_REGIONS = 6;
export const ROM_REGION = 6;
export const CONFIG_REGION = 7;
export const VGA_REGION = 8;
export const NUM_REGIONS = 9;
/** VGA legacy memory 0xa0000-0xbffff: vfio-pci reports 0xc0000 bytes (the region ends at 0xc0000). */
export const VGA_REGION_SIZE = 0xc0000;

/** VFIO_PCI_INDEX_TO_OFFSET(). */
export const regionOffset = (index: number): number => index * 2 ** VFIO_PCI_OFFSET_SHIFT;

/** What serves a BAR's bytes: a device model, or plain memory. */
export interface BarHandler {
  read(offset: number, dest: Uint8Array): void;
  write(offset: number, src: Uint8Array): void;
  /** The function was reset (FLR): registers back to their power-on values. */
  reset?(): void;
}

/** The default BAR handler: the Machine's memory behind the BAR; a reset clears it. */
export class MemoryBarHandler implements BarHandler {
  constructor(private readonly mem: PhysicalMemory, private readonly size: number) {}
  read(offset: number, dest: Uint8Array): void { this.mem.read(offset, dest); }
  write(offset: number, src: Uint8Array): void { this.mem.write(offset, src); }
  reset(): void { for (let pfn = 0; pfn * PAGE_SIZE < this.size; pfn++) this.mem.discardFrame(pfn); }
}

export interface RegionInfo {
  readonly flags: number;
  readonly size: number;
  readonly offset: number;
}

export interface BarInfo {
  readonly size: number;
  readonly io: boolean;
  readonly is64: boolean;
}

/** BAR `i` of a function as the PCI core sized it (size 0: unimplemented or the upper half of a 64-bit BAR). */
export function barInfo(dev: PciDev, i: number): BarInfo {
  const cfg = dev.config;
  const reg = cfg.read32(PCI_BASE_ADDRESS_0 + i * 4);
  const io = (reg & PCI_BASE_ADDRESS_SPACE_IO) !== 0;
  if (i > 0) {
    const prev = cfg.read32(PCI_BASE_ADDRESS_0 + (i - 1) * 4);
    if ((prev & PCI_BASE_ADDRESS_SPACE_IO) === 0 && (prev & 0x6) === PCI_BASE_ADDRESS_MEM_TYPE_64 && (cfg.barSizes[i - 1] ?? 0) > 0) {
      return { size: 0, io: false, is64: false };
    }
  }
  return { size: cfg.barSizes[i] ?? 0, io, is64: !io && (reg & 0x6) === PCI_BASE_ADDRESS_MEM_TYPE_64 };
}

/** VFIO_DEVICE_GET_REGION_INFO's answer for `index`, or EINVAL. */
export function regionInfo(dev: PciDev, cfgSize: number, index: number): Result<RegionInfo> {
  const offset = regionOffset(index);
  if (index < BAR_REGIONS) {
    const b = barInfo(dev, index);
    if (b.size === 0) return ok({ flags: 0, size: 0, offset });
    return ok({ flags: REGION_READ | REGION_WRITE | (b.io ? 0 : REGION_MMAP), size: b.size, offset });
  }
  if (index === ROM_REGION) return ok({ flags: 0, size: 0, offset });
  if (index === CONFIG_REGION) return ok({ flags: REGION_READ | REGION_WRITE, size: cfgSize, offset });
  if (index === VGA_REGION) {
    if ((dev.classCode & 0xffff00) !== PCI_CLASS_VGA) return fail('EINVAL', `${dev.bdf} is not a VGA device: it has no VGA region`);
    return ok({ flags: REGION_READ | REGION_WRITE, size: VGA_REGION_SIZE, offset });
  }
  return fail('EINVAL', `region index ${index} is past the ${NUM_REGIONS} regions of vfio-pci`);
}

/** An I/O BAR's ports: plain bytes (the Machine has no I/O space). */
export class PortBarHandler implements BarHandler {
  private readonly bytes: Uint8Array;
  constructor(size: number) { this.bytes = new Uint8Array(size); }
  read(offset: number, dest: Uint8Array): void { dest.set(this.bytes.subarray(offset, offset + dest.length)); }
  write(offset: number, src: Uint8Array): void { this.bytes.set(src, offset); }
  reset(): void { this.bytes.fill(0); }
}
