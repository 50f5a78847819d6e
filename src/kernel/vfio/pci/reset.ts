// Which function-level reset a function supports (pci_probe_reset_function(), the methods vfio-pci can
// use for VFIO_DEVICE_RESET; reset_works decides VFIO_DEVICE_FLAGS_RESET):
//  * FLR: the PCI Express capability advertises Function Level Reset (DEVCAP bit 28);
//  * PM: a power-management capability whose PMCSR does not set No_Soft_Reset (D3hot → D0 resets).
// A secondary bus reset (the function alone on its bus) and device-specific quirks are not modelled.

import type { PciDev } from '../../../pci/dev.ts';
import { PCI_CAP_ID_PM, PCI_EXP_DEVCAP } from '../../../pci/regs.ts';
import { PCI_EXP_DEVCAP_FLR, PCI_PM_CTRL, PCI_PM_CTRL_NO_SOFT_RESET } from './pci-consts.ts';

export type ResetMethod = 'flr' | 'pm';

/** The first reset method that works for `dev`, or null (not resettable). */
export function resetMethod(dev: PciDev): ResetMethod | null {
  const cfg = dev.config;
  if (dev.pcieCap !== 0 && (cfg.read32(dev.pcieCap + PCI_EXP_DEVCAP) & PCI_EXP_DEVCAP_FLR) !== 0) return 'flr';
  const pm = cfg.findCapability(PCI_CAP_ID_PM);
  if (pm !== 0 && (cfg.read16(pm + PCI_PM_CTRL) & PCI_PM_CTRL_NO_SOFT_RESET) === 0) return 'pm';
  return null;
}
