// vfio-pci's view of a function's configuration space (drivers/vfio/pci/vfio_pci_config.c, modelled, not
// copied). User space reads and writes config space through the CONFIG region; vfio-pci keeps a shadow
// copy (vconfig) and a per-byte map of which bits are virtualised (served from the shadow) and which the
// user may write. Everything not virtualised reads the function's real bytes.
//
// What is virtualised:
//  * BARs and the ROM BAR: writes land in the shadow only; reads return the written value masked by the
//    BAR's size with the BAR's type bits (so writing all-ones then reading back sizes the BAR, and the
//    device's real BARs never move). An unassigned BAR reads 0; no ROM reads 0.
//  * COMMAND: the memory, I/O and INTx-disable bits (the user's view; INTx disable masks vfio's INTx);
//    the other writable bits (bus master, ...) go to the device.
//  * INTERRUPT_LINE (writable) and INTERRUPT_PIN (read-only; 0 for a VF).
//  * The capability lists: every capability header is in the shadow, and capabilities vfio-pci has no
//    length for are hidden by relinking the previous next pointer (a hidden first extended capability
//    stays as a header with ID 0 that keeps the chain). STATUS.CAP_LIST and the list pointer follow.
//  * MSI: the enable and multiple-message-enable bits, the address, data and mask registers.
//  * PCI Express Device Control: the function-level reset bit (writing it starts an FLR).
// MSI-X is not virtualised: its control word reads the device (vfio-pci sets its enable bit itself when
// user space configures MSI-X through VFIO_DEVICE_SET_IRQS) and config writes to it are dropped.

import type { PciDev } from '../../../pci/dev.ts';
import {
  PCI_BASE_ADDRESS_0, PCI_BASE_ADDRESS_MEM_TYPE_64, PCI_BASE_ADDRESS_SPACE_IO, PCI_CAP_ID_EXP, PCI_CAP_ID_MSI,
  PCI_CAP_ID_PM, PCI_CAP_ID_MSIX, PCI_CAPABILITY_LIST, PCI_CFG_SPACE_EXP_SIZE, PCI_CFG_SPACE_SIZE, PCI_COMMAND,
  PCI_INTERRUPT_PIN, PCI_STATUS, PCI_STATUS_CAP_LIST,
} from '../../../pci/regs.ts';
import {
  PCI_BIST, PCI_CACHE_LINE_SIZE, PCI_COMMAND_INTX_DISABLE, PCI_COMMAND_IO, PCI_COMMAND_MEMORY, PCI_EXP_DEVCTL,
  PCI_EXP_DEVCTL_BCR_FLR, PCI_EXP_DEVCTL_PHANTOM, PCI_INTERRUPT_LINE, PCI_LATENCY_TIMER, PCI_MSI_FLAGS,
  PCI_MSI_FLAGS_64BIT, PCI_MSI_FLAGS_ENABLE, PCI_MSI_FLAGS_MASKBIT, PCI_MSI_FLAGS_QSIZE, PCI_PM_CTRL,
  PCI_PM_CTRL_STATE_MASK, PCI_ROM_ADDRESS,
} from './pci-consts.ts';

/** Standard capability IDs vfio-pci gives no length (so hides): SLOTID, DBG, CCRC, SHPC, SSVID, AGP3, SECDEV, EA, FPB. */
const HIDDEN_CAPS = new Set([0x04, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f, 0x14, 0x15]);
/** Extended capability IDs vfio-pci shows (the others, e.g. PASID, root-only and "not yet" ones, are hidden). */
const VISIBLE_ECAPS = new Set([0x01, 0x02, 0x03, 0x04, 0x08, 0x09, 0x0b, 0x0d, 0x0e, 0x0f, 0x10, 0x12, 0x13, 0x15, 0x16, 0x17, 0x18, 0x23]);

/** What a write to config space asks vfio-pci to do besides storing bits. */
export interface ConfigWriteEffects {
  /** COMMAND.INTX_DISABLE changed to this value. */
  intxDisable?: boolean;
  /** PCI Express Device Control's Initiate FLR bit was written as 1. */
  flr?: boolean;
}

export class VfioPciConfig {
  /** pdev->cfg_size: 4096 for PCI Express, 256 for conventional PCI. */
  readonly size: number;
  readonly vconfig: Uint8Array;
  /** Per byte: bits served from vconfig. */
  private readonly virt: Uint8Array;
  /** Per byte: bits the user may write (to vconfig where virtualised, else to the device). */
  private readonly wr: Uint8Array;
  private readonly msiCap: number;

  constructor(readonly dev: PciDev) {
    const hw = dev.config;
    this.size = dev.pcieCap !== 0 ? PCI_CFG_SPACE_EXP_SIZE : PCI_CFG_SPACE_SIZE;
    this.vconfig = hw.bytes.slice(0, this.size);
    this.virt = new Uint8Array(this.size);
    this.wr = new Uint8Array(this.size);
    this.basicPerms();
    this.msiCap = hw.findCapability(PCI_CAP_ID_MSI);
    this.capChain();
    if (this.size > PCI_CFG_SPACE_SIZE) this.ecapChain();
    // INTERRUPT_PIN: a VF has no INTx.
    if (dev.physfn !== null) this.vconfig[PCI_INTERRUPT_PIN] = 0;
  }

  /** Read `len` (1, 2 or 4) bytes at `off` as the user sees them. */
  read(off: number, len: number): number {
    let v = 0;
    for (let i = len - 1; i >= 0; i--) v = (v << 8) | this.byte(off + i);
    return v >>> 0;
  }

  /** Bytes [off, off + n) as the user sees them. */
  readBytes(off: number, n: number): Uint8Array {
    const out = new Uint8Array(n);
    for (let i = 0; i < n; i++) out[i] = this.byte(off + i);
    return out;
  }

  /** Write bytes at `off` (the user's value), applying the write masks. */
  writeBytes(off: number, data: Uint8Array): ConfigWriteEffects {
    const hw = this.dev.config;
    const cmdBefore = this.byte(PCI_COMMAND + 1);
    const effects: ConfigWriteEffects = {};
    for (let i = 0; i < data.length; i++) {
      const at = off + i;
      const val = data[i] ?? 0;
      const w = this.wr[at] ?? 0;
      const vw = w & (this.virt[at] ?? 0);
      const hwW = w & ~(this.virt[at] ?? 0) & 0xff;
      if (vw !== 0) this.vconfig[at] = ((this.vconfig[at] ?? 0) & ~vw) | (val & vw);
      if (hwW !== 0) hw.write8(at, (hw.read8(at) & ~hwW) | (val & hwW));
      const exp = this.dev.pcieCap;
      if (exp !== 0 && at === exp + PCI_EXP_DEVCTL + 1 && (val & (PCI_EXP_DEVCTL_BCR_FLR >> 8)) !== 0) {
        effects.flr = true;
        this.vconfig[at] = (this.vconfig[at] ?? 0) & ~(PCI_EXP_DEVCTL_BCR_FLR >> 8);
      }
    }
    const cmdAfter = this.byte(PCI_COMMAND + 1);
    const bit = PCI_COMMAND_INTX_DISABLE >> 8;
    if ((cmdBefore & bit) !== (cmdAfter & bit)) effects.intxDisable = (cmdAfter & bit) !== 0;
    return effects;
  }

  /** The user's COMMAND register (vconfig bits merged with the device's). */
  get command(): number { return this.read(PCI_COMMAND, 2); }

  /** The MSI capability's offset (0: none). */
  get msi(): number { return this.msiCap; }

  private byte(at: number): number {
    const m = this.virt[at] ?? 0;
    const hwb = this.dev.config.read8(at);
    if (m === 0) return hwb;
    const vb = at >= PCI_BASE_ADDRESS_0 && at < PCI_BASE_ADDRESS_0 + 24 ? this.barByte(at)
      : at >= PCI_ROM_ADDRESS && at < PCI_ROM_ADDRESS + 4 ? 0 // no expansion ROM is modelled: it reads 0
        : (this.vconfig[at] ?? 0);
    return ((hwb & ~m) | (vb & m)) & 0xff;
  }

  // vfio_bar_fixup(): the shadow BAR masked by the BAR's size, with the device's type bits.
  private barByte(at: number): number {
    const hw = this.dev.config;
    const index = (at - PCI_BASE_ADDRESS_0) >> 2;
    const low = this.lowIndexOf(index);
    const size = hw.barSizes[low] ?? 0;
    const hwLow = hw.read32(PCI_BASE_ADDRESS_0 + low * 4);
    const hwHigh = (hwLow & 0x7) === PCI_BASE_ADDRESS_MEM_TYPE_64 ? hw.read32(PCI_BASE_ADDRESS_0 + (low + 1) * 4) : 0;
    const assigned = size > 0 && ((hwLow & ~0xf) !== 0 || hwHigh !== 0 || (hwLow & PCI_BASE_ADDRESS_SPACE_IO) !== 0);
    if (!assigned) return 0;
    const dv = new DataView(this.vconfig.buffer, this.vconfig.byteOffset);
    const mask = ~(BigInt(size) - 1n) & 0xffff_ffff_ffff_ffffn;
    let dword: number;
    if (index === low) {
      const io = (hwLow & PCI_BASE_ADDRESS_SPACE_IO) !== 0;
      const flags = hwLow & (io ? 0x3 : 0xf);
      dword = ((dv.getUint32(PCI_BASE_ADDRESS_0 + index * 4, true) & Number(mask & 0xffff_ffffn) & ~(io ? 0x3 : 0xf)) | flags) >>> 0;
    } else {
      dword = (dv.getUint32(PCI_BASE_ADDRESS_0 + index * 4, true) & Number(mask >> 32n)) >>> 0;
    }
    return (dword >>> ((at & 3) * 8)) & 0xff;
  }

  /** For the upper half of a 64-bit BAR, the index of its lower half; otherwise `index`. */
  private lowIndexOf(index: number): number {
    if (index === 0) return 0;
    const hw = this.dev.config;
    const prev = hw.read32(PCI_BASE_ADDRESS_0 + (index - 1) * 4);
    const is64 = (prev & PCI_BASE_ADDRESS_SPACE_IO) === 0 && (prev & 0x6) === PCI_BASE_ADDRESS_MEM_TYPE_64 && (hw.barSizes[index - 1] ?? 0) > 0;
    return is64 ? index - 1 : index;
  }

  private set(at: number, len: number, virt: number, wr: number): void {
    for (let i = 0; i < len; i++) {
      this.virt[at + i] = (virt >>> (i * 8)) & 0xff;
      this.wr[at + i] = (wr >>> (i * 8)) & 0xff;
    }
  }

  // The type 0 header's permissions.
  private basicPerms(): void {
    this.set(PCI_COMMAND, 2, PCI_COMMAND_MEMORY | PCI_COMMAND_IO | PCI_COMMAND_INTX_DISABLE, 0xffff);
    this.set(PCI_STATUS, 2, PCI_STATUS_CAP_LIST, 0);
    this.set(PCI_CACHE_LINE_SIZE, 1, 0, 0xff);
    this.set(PCI_LATENCY_TIMER, 1, 0, 0xff);
    this.set(PCI_BIST, 1, 0, 0xff);
    for (let i = 0; i < 6; i++) this.set(PCI_BASE_ADDRESS_0 + i * 4, 4, 0xffffffff, 0xffffffff);
    this.set(PCI_ROM_ADDRESS, 4, 0xffffffff, 0xffffffff);
    this.set(PCI_CAPABILITY_LIST, 1, 0xff, 0);
    this.set(PCI_INTERRUPT_LINE, 1, 0xff, 0xff);
    this.set(PCI_INTERRUPT_PIN, 1, 0xff, 0);
  }

  // vfio_cap_init(): walk the list, hide what has no length, virtualise each header and the known caps.
  private capChain(): void {
    const hw = this.dev.config;
    const v = this.vconfig;
    if ((hw.read16(PCI_STATUS) & PCI_STATUS_CAP_LIST) === 0) return;
    let prevNext = PCI_CAPABILITY_LIST;
    let pos = hw.read8(PCI_CAPABILITY_LIST) & ~3;
    v[prevNext] = 0;
    let visible = 0;
    for (let ttl = 48; ttl > 0 && pos >= 0x40; ttl--) {
      const id = hw.read8(pos);
      const next = hw.read8(pos + 1) & ~3;
      if (!HIDDEN_CAPS.has(id)) {
        v[prevNext] = pos;
        v[pos + 1] = 0;
        this.set(pos, 2, 0xffff, 0);
        prevNext = pos + 1;
        visible++;
        this.capPerms(id, pos);
      }
      pos = next;
    }
    if (visible === 0) v[PCI_STATUS] = (v[PCI_STATUS] ?? 0) & ~PCI_STATUS_CAP_LIST;
  }

  private capPerms(id: number, pos: number): void {
    const hw = this.dev.config;
    if (id === PCI_CAP_ID_PM) this.set(pos + PCI_PM_CTRL, 2, 0, ~PCI_PM_CTRL_STATE_MASK & 0xffff);
    else if (id === PCI_CAP_ID_EXP) this.set(pos + PCI_EXP_DEVCTL, 2, PCI_EXP_DEVCTL_BCR_FLR, ~PCI_EXP_DEVCTL_PHANTOM & 0xffff);
    else if (id === PCI_CAP_ID_MSI) {
      const flags = hw.read16(pos + PCI_MSI_FLAGS);
      this.set(pos + PCI_MSI_FLAGS, 2, PCI_MSI_FLAGS_QSIZE | PCI_MSI_FLAGS_ENABLE, PCI_MSI_FLAGS_QSIZE | PCI_MSI_FLAGS_ENABLE);
      // address (+4, +8 when 64-bit), data, then mask and pending when per-vector masking exists.
      const is64 = (flags & PCI_MSI_FLAGS_64BIT) !== 0;
      const len = (is64 ? 10 : 6) + ((flags & PCI_MSI_FLAGS_MASKBIT) !== 0 ? 10 : 0);
      for (let i = 4; i < 4 + len; i++) this.set(pos + i, 1, 0xff, 0xff);
    } else if (id === PCI_CAP_ID_MSIX) {
      // Not virtualised: reads the device, writes are dropped.
    }
  }

  // vfio_ecap_init(): relink around hidden extended capabilities; a hidden first one keeps only `next`.
  private ecapChain(): void {
    const hw = this.dev.config;
    const dv = new DataView(this.vconfig.buffer, this.vconfig.byteOffset);
    let prev = -1;
    let pos = PCI_CFG_SPACE_SIZE;
    for (let ttl = (PCI_CFG_SPACE_EXP_SIZE - PCI_CFG_SPACE_SIZE) / 8; ttl > 0; ttl--) {
      const header = hw.read32(pos);
      if (header === 0 || header === 0xffffffff) return;
      const id = header & 0xffff;
      const next = (header >>> 20) & 0xffc;
      if (VISIBLE_ECAPS.has(id) || prev < 0) {
        this.set(pos, 4, 0xffffffff, 0);
        if (!VISIBLE_ECAPS.has(id)) dv.setUint32(pos, (header & 0xfff00000) >>> 0, true);
        prev = pos;
      } else {
        const p = dv.getUint32(prev, true);
        dv.setUint32(prev, ((p & 0x000fffff) | (next << 20)) >>> 0, true);
      }
      if (next < PCI_CFG_SPACE_SIZE) return;
      pos = next;
    }
  }
}
