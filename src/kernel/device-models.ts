// Which simulated device stands behind which function's BARs: the platform wiring a real machine gets
// from its hardware. Ethernet functions with a memory BAR 0 get a SimpleNic; Intel DSA and IAX get a
// WorkQueueAccel (register BAR 0, portals BAR 2). Their MSI-X vectors reach user space through vfio-pci's
// eventfds while the function is on vfio-pci; otherwise nothing listens (no host driver is modelled).

import { SimpleNic } from '../hw/devices/simple-nic.ts';
import { WorkQueueAccel } from '../hw/devices/work-queue-accel.ts';
import type { Machine } from '../hw/machine.ts';
import type { IommuUnit } from '../hw/iommu/unit.ts';
import type { PciDev } from '../pci/dev.ts';

const PCI_CLASS_ETHERNET = 0x0200;
/** 8086:0b25 DSA, 8086:0cfe IAX (drivers/dma/idxd). */
const IDXD_IDS = new Set(['8086:0b25', '8086:0cfe']);
/** VFIO_PCI_MSIX_IRQ_INDEX. */
const MSIX_IRQ_INDEX = 2;

/** Raise MSI-X vector `vector` of `dev` towards whoever listens (vfio-pci's eventfds). */
export type IrqSink = (dev: PciDev, index: number, vector: number) => void;

export type DeviceModelKind = 'simple-nic' | 'work-queue-accel';

/** The model a function gets, or null. */
export function modelKindFor(dev: PciDev): DeviceModelKind | null {
  if (IDXD_IDS.has(dev.ids) && (dev.config.barSizes[0] ?? 0) > 0 && (dev.config.barSizes[2] ?? 0) > 0) return 'work-queue-accel';
  if (dev.classCode >> 8 === PCI_CLASS_ETHERNET && (dev.config.barSizes[0] ?? 0) > 0) return 'simple-nic';
  return null;
}

/** Attach a model to every function that has one; returns the functions wired, with their kind. */
export function attachDeviceModels(machine: Machine<IommuUnit>, devices: readonly PciDev[], irq: IrqSink): Map<PciDev, DeviceModelKind> {
  const wired = new Map<PciDev, DeviceModelKind>();
  for (const dev of devices) {
    const kind = modelKindFor(dev);
    if (kind === null) continue;
    const opts = { dma: machine.dmaPort(dev), raiseIrq: (vector: number) => { irq(dev, MSIX_IRQ_INDEX, vector); } };
    machine.attachModel(dev, kind === 'simple-nic' ? new SimpleNic(opts) : new WorkQueueAccel(opts));
    wired.set(dev, kind);
  }
  return wired;
}
