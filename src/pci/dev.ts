import { formatAddress, formatShortAddress, PCI_FUNC, PCI_SLOT, type PciAddress } from './address.ts';
import type { PciBus } from './bus.ts';
import type { ConfigSpace } from './config-space.ts';
import {
  PCI_ACS_CAP, PCI_ACS_CTRL, PCI_CAP_ID_EXP, PCI_CLASS_DEVICE, PCI_CLASS_PROG, PCI_DEVICE_ID, PCI_EXP_FLAGS,
  PCI_EXP_FLAGS_TYPE, PCI_EXT_CAP_ID_ACS, PCI_HEADER_TYPE, PCI_HEADER_TYPE_BRIDGE, PCI_HEADER_TYPE_MASK,
  PCI_HEADER_TYPE_MFD, PCI_SECONDARY_BUS, PCI_SUBORDINATE_BUS, PCI_VENDOR_ID, type PcieType,
} from './regs.ts';

/** What a person reads about a function; never an input to the algorithms. */
export interface PciDevInfo {
  /** lspci's description: "Ethernet controller: Intel Corporation I350 Gigabit ..." */
  readonly name?: string;
  /** `IOMMU group: N` as the source machine's kernel reported it. */
  readonly observedGroup?: number;
  /** "Kernel driver in use" on the source machine. */
  readonly driver?: string;
}

// Linux pci_dev->dev_flags bits that the group engine consults (set by boot-time quirks).
export const PCI_DEV_FLAGS_ACS_ENABLED_QUIRK = 1 << 0;
export const PCI_DEV_FLAG_PCIE_BRIDGE_ALIAS = 1 << 1;
export const PCI_DEV_FLAGS_BRIDGE_XLATE_ROOT = 1 << 2;

/**
 * One PCI function as Linux's PCI core sees it (struct pci_dev): its config space, the fields
 * pci_setup_device() caches from it, and the quirk state boot adds (DMA alias mask, dev_flags).
 */
export class PciDev {
  readonly domain: number;
  readonly devfn: number;
  readonly vendor: number;
  readonly device: number;
  /** 24-bit class code: base class, subclass, prog-if. */
  readonly classCode: number;
  readonly hdrType: number;
  /** Header-type bit 7, read once at setup as Linux does (dev->multifunction). */
  readonly multifunction: boolean;
  /** Offset of the PCI Express capability, 0 for conventional PCI. */
  readonly pcieCap: number;
  /** Offset of the ACS extended capability, 0 when absent (dev->acs_cap). */
  readonly acsCap: number;
  /** PCI_EXP_FLAGS, cached at setup as Linux caches dev->pcie_flags_reg. */
  private readonly pcieFlags: number;
  private bdfText: string | undefined;
  private shortBdfText: string | undefined;
  /** The child bus of a bridge, once enumerated. */
  subordinate: PciBus | null = null;
  /** For an SR-IOV virtual function, its physical function. */
  physfn: PciDev | null = null;
  /** Same-bus devfns this function's DMA may also carry as requester ID (quirks, firmware). */
  dmaAliasMask: Uint32Array | null = null;
  devFlags = 0;

  constructor(
    readonly bus: PciBus,
    devfn: number,
    readonly config: ConfigSpace,
    readonly info: PciDevInfo = {},
  ) {
    this.domain = bus.domain;
    this.devfn = devfn;
    this.vendor = config.read16(PCI_VENDOR_ID);
    this.device = config.read16(PCI_DEVICE_ID);
    this.classCode = (config.read16(PCI_CLASS_DEVICE) << 8) | config.read8(PCI_CLASS_PROG);
    const header = config.read8(PCI_HEADER_TYPE);
    this.hdrType = header & PCI_HEADER_TYPE_MASK;
    this.multifunction = (header & PCI_HEADER_TYPE_MFD) !== 0;
    this.pcieCap = config.findCapability(PCI_CAP_ID_EXP);
    this.acsCap = this.pcieCap !== 0 ? config.findExtCapability(PCI_EXT_CAP_ID_ACS) : 0;
    this.pcieFlags = this.pcieCap !== 0 ? config.read16(this.pcieCap + PCI_EXP_FLAGS) : 0;
  }

  /** Linux reads the bus number from the bus, not the function: PciAddress.bus. */
  get busNumber(): number { return this.bus.number; }
  get slot(): number { return PCI_SLOT(this.devfn); }
  get fn(): number { return PCI_FUNC(this.devfn); }
  get address(): PciAddress { return { domain: this.domain, bus: this.bus.number, devfn: this.devfn }; }
  /** "dddd:bb:dd.f" */
  get bdf(): string { return (this.bdfText ??= formatAddress(this.address)); }
  /** "bb:dd.f" on domain 0, as lspci prints it. */
  get shortBdf(): string { return (this.shortBdfText ??= formatShortAddress(this.address)); }
  /** "vvvv:dddd" */
  get ids(): string { return `${hex4(this.vendor)}:${hex4(this.device)}`; }
  /** Requester ID: bus << 8 | devfn. */
  get rid(): number { return (this.bus.number << 8) | this.devfn; }

  isPcie(): boolean { return this.pcieCap !== 0; }
  isBridge(): boolean { return this.hdrType === PCI_HEADER_TYPE_BRIDGE; }
  isVirtfn(): boolean { return this.physfn !== null; }

  /** pci_pcie_type(): PCI_EXP_FLAGS bits 7:4; meaningless for conventional PCI. */
  pcieType(): PcieType {
    return ((this.pcieFlags & PCI_EXP_FLAGS_TYPE) >> 4) as PcieType;
  }

  /** ACS Capability register, live from config space (0 without the capability). */
  acsCapReg(): number { return this.acsCap === 0 ? 0 : this.config.read16(this.acsCap + PCI_ACS_CAP); }
  /** ACS Control register, live from config space. */
  acsCtrlReg(): number { return this.acsCap === 0 ? 0 : this.config.read16(this.acsCap + PCI_ACS_CTRL); }

  secondaryBus(): number { return this.config.read8(PCI_SECONDARY_BUS); }
  subordinateBus(): number { return this.config.read8(PCI_SUBORDINATE_BUS); }

  /** Base class and subclass, e.g. 0x0604 for a PCI bridge. */
  baseSubClass(): number { return this.classCode >> 8; }

  hasDmaAlias(devfn: number): boolean {
    const mask = this.dmaAliasMask;
    return mask !== null && ((mask[devfn >> 5] ?? 0) & (1 << (devfn & 31))) !== 0;
  }

  /** pci_add_dma_alias(): remember that this function also issues DMA as `devfn` on its bus. */
  addDmaAlias(devfn: number, count = 1): void {
    this.dmaAliasMask ??= new Uint32Array(8);
    for (let d = devfn; d < devfn + count && d < 256; d++) {
      this.dmaAliasMask[d >> 5] = (this.dmaAliasMask[d >> 5] ?? 0) | (1 << (d & 31));
    }
  }

  toString(): string { return this.shortBdf; }
}

function hex4(n: number): string { return n.toString(16).padStart(4, '0'); }

