import {
  PCI_BASE_ADDRESS_0, PCI_BASE_ADDRESS_MEM_TYPE_64, PCI_BASE_ADDRESS_SPACE_IO, PCI_CAPABILITY_LIST,
  PCI_CFG_SPACE_EXP_SIZE, PCI_CFG_SPACE_SIZE, PCI_HEADER_TYPE, PCI_HEADER_TYPE_BRIDGE, PCI_HEADER_TYPE_MASK,
  PCI_STATUS, PCI_STATUS_CAP_LIST,
} from './regs.ts';

/**
 * One function's 4 KiB configuration space: little-endian bytes, plus the one piece of hardware
 * behaviour software relies on to size BARs (writing all-ones reads back the size mask).
 */
export class ConfigSpace {
  readonly bytes: Uint8Array;
  private readonly view: DataView;
  /** BAR sizes in bytes by BAR index (0 = unimplemented); a 64-bit BAR's size sits at its low index. */
  readonly barSizes: Float64Array;

  constructor(bytes?: Uint8Array) {
    this.bytes = bytes ?? new Uint8Array(PCI_CFG_SPACE_EXP_SIZE);
    if (this.bytes.length !== PCI_CFG_SPACE_EXP_SIZE) {
      throw new RangeError(`config space must be ${PCI_CFG_SPACE_EXP_SIZE} bytes, got ${this.bytes.length}`);
    }
    this.view = new DataView(this.bytes.buffer, this.bytes.byteOffset, this.bytes.byteLength);
    this.barSizes = new Float64Array(6);
  }

  read8(off: number): number { return this.view.getUint8(off); }
  read16(off: number): number { return this.view.getUint16(off, true); }
  read32(off: number): number { return this.view.getUint32(off, true); }

  write8(off: number, value: number): void { this.view.setUint8(off, value & 0xff); }
  write16(off: number, value: number): void { this.view.setUint16(off, value & 0xffff, true); }

  write32(off: number, value: number): void {
    const bar = this.barIndexAt(off);
    if (bar >= 0) {
      this.writeBar(bar, off, value >>> 0);
      return;
    }
    this.view.setUint32(off, value >>> 0, true);
  }

  /** Header type with the multifunction bit stripped. */
  headerType(): number { return this.read8(PCI_HEADER_TYPE) & PCI_HEADER_TYPE_MASK; }

  private barCount(): number {
    const type = this.headerType();
    return type === 0 ? 6 : type === PCI_HEADER_TYPE_BRIDGE ? 2 : 0;
  }

  private barIndexAt(off: number): number {
    if (off < PCI_BASE_ADDRESS_0 || (off & 3) !== 0) return -1;
    const index = (off - PCI_BASE_ADDRESS_0) >> 2;
    return index < this.barCount() ? index : -1;
  }

  // BAR registers hard-wire their low address bits to zero: that is how the sizing protocol works.
  private writeBar(index: number, off: number, value: number): void {
    const old = this.view.getUint32(off, true);
    const lowIndex = this.upperHalfOf(index);
    if (lowIndex >= 0) {
      const size = this.barSizes[lowIndex] ?? 0;
      const mask = size > 0x1_0000_0000 ? ~Math.floor((size - 1) / 0x1_0000_0000) >>> 0 : 0xffffffff;
      this.view.setUint32(off, (value & mask) >>> 0, true);
      return;
    }
    const size = this.barSizes[index] ?? 0;
    if (size === 0) return; // unimplemented BARs read as zero whatever is written
    const flagBits = (old & PCI_BASE_ADDRESS_SPACE_IO) !== 0 ? 0x3 : 0xf;
    const addrMask = size >= 0x1_0000_0000 ? 0 : ~(size - 1) >>> 0;
    this.view.setUint32(off, ((value & addrMask & ~flagBits) | (old & flagBits)) >>> 0, true);
  }

  /** If BAR `index` is the upper half of a 64-bit BAR, the low half's index; otherwise -1. */
  private upperHalfOf(index: number): number {
    if (index === 0) return -1;
    const low = index - 1;
    const lowReg = this.view.getUint32(PCI_BASE_ADDRESS_0 + low * 4, true);
    const isMem64 = (lowReg & PCI_BASE_ADDRESS_SPACE_IO) === 0 && (lowReg & 0x6) === PCI_BASE_ADDRESS_MEM_TYPE_64;
    return isMem64 && (this.barSizes[low] ?? 0) > 0 ? low : -1;
  }

  /** Walk the standard capability list; returns the offset of capability `id`, or 0. */
  findCapability(id: number): number {
    if ((this.read16(PCI_STATUS) & PCI_STATUS_CAP_LIST) === 0) return 0;
    let pos = this.read8(PCI_CAPABILITY_LIST) & ~3;
    // Linux bounds the walk (PCI_FIND_CAP_TTL) so a looped list cannot hang it.
    for (let ttl = 48; ttl > 0 && pos >= 0x40; ttl--) {
      if (this.read8(pos) === id) return pos;
      pos = this.read8(pos + 1) & ~3;
    }
    return 0;
  }

  /** Walk the extended capability list from 0x100; returns the offset of capability `id`, or 0. */
  findExtCapability(id: number): number {
    let pos = PCI_CFG_SPACE_SIZE;
    // (4096 - 256) / 8 headers at most, as Linux's pci_find_next_ext_capability bounds it.
    for (let ttl = (PCI_CFG_SPACE_EXP_SIZE - PCI_CFG_SPACE_SIZE) / 8; ttl > 0; ttl--) {
      const header = this.read32(pos);
      if (header === 0 || header === 0xffffffff) return 0;
      if ((header & 0xffff) === id) return pos;
      pos = (header >>> 20) & 0xffc;
      if (pos < PCI_CFG_SPACE_SIZE) return 0;
    }
    return 0;
  }

  /** All extended capabilities in list order, as [id, offset]. */
  extCapabilities(): Array<[number, number]> {
    const out: Array<[number, number]> = [];
    let pos = PCI_CFG_SPACE_SIZE;
    for (let ttl = (PCI_CFG_SPACE_EXP_SIZE - PCI_CFG_SPACE_SIZE) / 8; ttl > 0; ttl--) {
      const header = this.read32(pos);
      if (header === 0 || header === 0xffffffff) break;
      out.push([header & 0xffff, pos]);
      pos = (header >>> 20) & 0xffc;
      if (pos < PCI_CFG_SPACE_SIZE) break;
    }
    return out;
  }

  clone(): ConfigSpace {
    const copy = new ConfigSpace(this.bytes.slice());
    copy.barSizes.set(this.barSizes);
    return copy;
  }
}
