// A PCI driver as the driver core sees it (Linux's struct pci_driver with its struct device_driver): a
// name, whether it manages DMA itself (driver_managed_dma), the devices it matches, and probe/remove.
// The driver core, not the driver, claims the group's default domain for drivers that do not manage DMA
// (pci_dma_configure() -> iommu_device_use_default_domain()).

import type { PciDev } from '../../pci/dev.ts';
import { ok, type Result } from '../errno.ts';

export interface PciDriver {
  readonly name: string;
  /**
   * driver_managed_dma: probing does not take the group's default domain, so the group stays usable by a
   * DMA owner (vfio-pci, pci-stub, pcieport). Every other driver makes its group non-viable for VFIO.
   */
  readonly driverManagedDma: boolean;
  /** pci_match_device() without driver_override: the static id table and dynamic ids (new_id). */
  matches(dev: PciDev): boolean;
  /** ->probe(): the device is ours now. An error leaves it unbound. */
  probe(dev: PciDev): Result;
  /**
   * ->remove(). Linux's remove cannot fail; a driver that would block here (vfio-pci waiting for the user
   * to close the device, after signalling its REQ interrupt) answers EBUSY instead, since the model
   * cannot wait.
   */
  remove(dev: PciDev): Result;
  /** new_id: "vvvv:dddd" pairs added at run time; absent when the driver takes none. */
  readonly dynamicIds?: Set<string>;
}

/** Drivers the kernel marks driver_managed_dma (pci-stub, pci-pf-stub, pcieport; VFIO's own drivers). */
export const DRIVER_MANAGED_DMA = new Set(['pcieport', 'pci-stub', 'pci-pf-stub', 'vfio-pci']);

/**
 * A host (kernel) driver known by name: it matches the functions the host file says it drove on the source
 * machine ("Kernel driver in use") plus dynamic ids, and its probe and remove always succeed.
 */
export class HostPciDriver implements PciDriver {
  readonly driverManagedDma: boolean;
  /** new_id: "vendor device" pairs added at run time. */
  readonly dynamicIds = new Set<string>();

  constructor(readonly name: string, private readonly idTable: ReadonlySet<PciDev>) {
    this.driverManagedDma = DRIVER_MANAGED_DMA.has(name);
  }

  matches(dev: PciDev): boolean { return this.idTable.has(dev) || this.dynamicIds.has(dev.ids); }
  probe(): Result { return ok(); }
  remove(): Result { return ok(); }
}
