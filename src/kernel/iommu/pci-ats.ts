// The PCI side of PASID and PRI (drivers/pci/ats.c): what an IOMMU driver enables on a function when it
// probes it (PASID) and when IO page faults are turned on (PRI), and the function's PASID width. A VF
// has none of its own: its PF's capabilities govern.

import type { PciDev } from '../../pci/dev.ts';
import {
  PCI_EXT_CAP_ID_PASID, PCI_EXT_CAP_ID_PRI, PCI_PASID_CAP, PCI_PASID_CAP_EXEC, PCI_PASID_CAP_PRIV, PCI_PASID_CTRL,
  PCI_PRI_ALLOC_REQ, PCI_PRI_CTRL, PCI_PRI_MAX_REQ,
} from '../../pci/regs.ts';
import { PCI_PASID_CTRL_ENABLE, PCI_PRI_CTRL_ENABLE } from '../../hw/dma/pri.ts';

/**
 * What the IOMMU driver does when IOPF is enabled for a device (intel_iommu_enable_iopf): PASID on if the
 * function has the capability (pci_enable_pasid, with Execute/Privileged where supported), then PRI with
 * the outstanding-request allocation set to the function's maximum (pci_enable_pri). Not for VFs: their
 * PF's capabilities govern.
 */
export function enablePri(dev: PciDev): void {
  if (dev.physfn !== undefined && dev.physfn !== null) return;
  const cfg = dev.config;
  enablePasid(dev);
  const pri = cfg.findExtCapability(PCI_EXT_CAP_ID_PRI);
  if (pri === 0 || (cfg.read16(pri + PCI_PRI_CTRL) & PCI_PRI_CTRL_ENABLE) !== 0) return;
  cfg.write32(pri + PCI_PRI_ALLOC_REQ, cfg.read32(pri + PCI_PRI_MAX_REQ));
  cfg.write16(pri + PCI_PRI_CTRL, PCI_PRI_CTRL_ENABLE);
}

/** pci_enable_pasid(): Execute and Privileged modes too where the function supports them. */
export function enablePasid(dev: PciDev): void {
  if (dev.physfn !== undefined && dev.physfn !== null) return;
  const cfg = dev.config;
  const pasid = cfg.findExtCapability(PCI_EXT_CAP_ID_PASID);
  if (pasid === 0 || (cfg.read16(pasid + PCI_PASID_CTRL) & PCI_PASID_CTRL_ENABLE) !== 0) return;
  const cap = cfg.read16(pasid + PCI_PASID_CAP);
  cfg.write16(pasid + PCI_PASID_CTRL, PCI_PASID_CTRL_ENABLE | (cap & (PCI_PASID_CAP_EXEC | PCI_PASID_CAP_PRIV)));
}

/** intel_iommu_disable_iopf(): pci_disable_pri (PASID stays enabled, as Linux leaves it). */
export function disablePri(dev: PciDev): void {
  if (dev.physfn !== undefined && dev.physfn !== null) return;
  const pri = dev.config.findExtCapability(PCI_EXT_CAP_ID_PRI);
  if (pri !== 0) dev.config.write16(pri + PCI_PRI_CTRL, dev.config.read16(pri + PCI_PRI_CTRL) & ~PCI_PRI_CTRL_ENABLE);
}

/** pci_max_pasids(): 2^(Max PASID Width) from the PASID capability (a VF's PF's); 0 without one. */
export function devicePasids(dev: PciDev): number {
  const owner = dev.physfn ?? dev;
  const cap = owner.config.findExtCapability(PCI_EXT_CAP_ID_PASID);
  if (cap === 0) return 0;
  return 2 ** ((owner.config.read16(cap + PCI_PASID_CAP) >> 8) & 0x1f);
}
