import type { PciDev } from '../dev.ts';
import { PcieType } from '../regs.ts';

// What Linux's DMA-ownership rule (v5.19+) accepts in a group VFIO claims: unbound devices, VFIO
// drivers, and drivers that set driver_managed_dma (pcieport, pci-stub).

/** vfio-pci and the variant drivers built on it (mlx5-vfio-pci, nvgrace-gpu-vfio-pci, ...). */
export function isVfioDriver(driver: string | undefined): boolean {
  return driver !== undefined && /(^|-)vfio(-|$)/.test(driver);
}

/** Drivers that leave the group's DMA to its owner: pcieport, pci-stub, and VFIO itself. */
export function isDmaManagedDriver(driver: string | undefined): boolean {
  return driver === 'pcieport' || driver === 'pci-stub' || isVfioDriver(driver);
}

/** A driver the host uses the device through: any driver but VFIO and pci-stub. */
export function isHostDriver(driver: string | undefined): driver is string {
  return driver !== undefined && driver !== 'pci-stub' && !isVfioDriver(driver);
}

/** PCIe ports, the devices pcieport binds to. */
export function isPciePort(dev: PciDev): boolean {
  if (!dev.isPcie()) return false;
  const t = dev.pcieType();
  return t === PcieType.RootPort || t === PcieType.DownstreamPort || t === PcieType.UpstreamPort;
}
