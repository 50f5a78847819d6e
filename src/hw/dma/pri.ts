import type { PciDev } from '../../pci/dev.ts';
import {
  PCI_EXT_CAP_ID_PASID, PCI_EXT_CAP_ID_PRI, PCI_PASID_CAP, PCI_PASID_CTRL, PCI_PRI_ALLOC_REQ, PCI_PRI_CTRL,
  PCI_PRI_MAX_REQ, PCI_PRI_STATUS,
} from '../../pci/regs.ts';

// The Page Request Interface and PASID capabilities as the device reads them (PCIe r6 §10.5, §7.8.8),
// bits named after include/uapi/linux/pci_regs.h. An SR-IOV VF has neither of its own: it uses its PF's
// (Linux: "VFs share the PF PRI/PASID"), so the registers are read from the PF.

export const PCI_PRI_CTRL_ENABLE = 0x0001;
export const PCI_PRI_CTRL_RESET = 0x0002;
/** Response Failure: a PRG response said FAILURE; the interface stops asking until reset. RW1C. */
export const PCI_PRI_STATUS_RF = 0x0001;
/** Unexpected Page Request Group Index: a response matched no outstanding group. RW1C. */
export const PCI_PRI_STATUS_UPRGI = 0x0002;
export const PCI_PRI_STATUS_STOPPED = 0x0100;
export const PCI_PASID_CTRL_ENABLE = 0x0001;
export const PCI_PASID_CTRL_EXEC = 0x0002;
export const PCI_PASID_CTRL_PRIV = 0x0004;

/** Where a function's PRI and PASID registers are (0 when absent). */
export class PriRegisters {
  readonly owner: PciDev;
  readonly pri: number;
  readonly pasid: number;

  constructor(dev: PciDev) {
    this.owner = dev.physfn ?? dev;
    this.pri = this.owner.config.findExtCapability(PCI_EXT_CAP_ID_PRI);
    this.pasid = this.owner.config.findExtCapability(PCI_EXT_CAP_ID_PASID);
  }

  priControl(): number { return this.pri === 0 ? 0 : this.owner.config.read16(this.pri + PCI_PRI_CTRL); }
  priEnabled(): boolean { return (this.priControl() & PCI_PRI_CTRL_ENABLE) !== 0; }
  /** Outstanding page requests the function can track (Outstanding Page Request Capacity). */
  priCapacity(): number { return this.pri === 0 ? 0 : this.owner.config.read32(this.pri + PCI_PRI_MAX_REQ); }
  /** Outstanding page requests software allows (Outstanding Page Request Allocation), capped by the capacity. */
  priAllocation(): number {
    return this.pri === 0 ? 0 : Math.min(this.owner.config.read32(this.pri + PCI_PRI_ALLOC_REQ), this.priCapacity());
  }

  /** Honour a Reset written to PRI Control: returns true (and clears the bit) when one was pending with Enable clear. */
  takeReset(): boolean {
    const ctrl = this.priControl();
    if ((ctrl & PCI_PRI_CTRL_RESET) === 0) return false;
    this.owner.config.write16(this.pri + PCI_PRI_CTRL, ctrl & ~PCI_PRI_CTRL_RESET);
    return (ctrl & PCI_PRI_CTRL_ENABLE) === 0;
  }

  setStatus(bits: number): void {
    if (this.pri === 0) return;
    const at = this.pri + PCI_PRI_STATUS;
    this.owner.config.write16(at, this.owner.config.read16(at) | bits);
  }

  clearStatus(bits: number): void {
    if (this.pri === 0) return;
    const at = this.pri + PCI_PRI_STATUS;
    this.owner.config.write16(at, this.owner.config.read16(at) & ~bits);
  }

  pasidControl(): number { return this.pasid === 0 ? 0 : this.owner.config.read16(this.pasid + PCI_PASID_CTRL); }
  /** Max PASID Width (bits 12:8 of the PASID Capability register). */
  pasidWidth(): number { return this.pasid === 0 ? 0 : (this.owner.config.read16(this.pasid + PCI_PASID_CAP) >> 8) & 0x1f; }
}
