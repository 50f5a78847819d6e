import type { PciDev } from '../dev.ts';
import { PCI_DEV_FLAG_PCIE_BRIDGE_ALIAS, PCI_DEV_FLAGS_BRIDGE_XLATE_ROOT } from '../dev.ts';
import { PcieType } from '../regs.ts';

/** A requester ID a function's DMA may carry, and the device Linux reports it through. */
export interface DmaAlias {
  readonly dev: PciDev;
  readonly rid: number;
  /** Why this alias exists, for explanations. */
  readonly why: 'self' | 'alias-mask' | 'pcie-to-pci-bridge' | 'pci-to-pcie-bridge' | 'pci-bridge' | 'pcie-bridge-alias';
}

/** pci_real_dma_dev(): the device whose requester ID is really used (Intel VMD redirects; not modelled). */
export function realDmaDev(dev: PciDev): PciDev {
  return dev;
}

/**
 * pci_for_each_dma_alias(): every requester ID the IOMMU may see for `pdev`'s DMA, nearest first:
 * itself, its same-bus alias mask, then bridges above it that rewrite the requester ID. `fn` returning
 * true stops the walk (and the walk returns true).
 */
export function forEachDmaAlias(pdev: PciDev, fn: (alias: DmaAlias) => boolean): boolean {
  const dev = realDmaDev(pdev);
  if (fn({ dev, rid: dev.rid, why: 'self' })) return true;
  const mask = dev.dmaAliasMask;
  if (mask !== null) {
    for (let devfn = 0; devfn < 256; devfn++) {
      if (((mask[devfn >> 5] ?? 0) & (1 << (devfn & 31))) !== 0
        && fn({ dev, rid: (dev.busNumber << 8) | devfn, why: 'alias-mask' })) return true;
    }
  }
  for (let bus = dev.bus; !bus.isRoot(); bus = bus.parent ?? bus) {
    const bridge = bus.self;
    if (bridge === null) continue; // an SR-IOV virtual bus: no bridge rewrites anything
    if ((bridge.devFlags & PCI_DEV_FLAGS_BRIDGE_XLATE_ROOT) !== 0) break;
    const secondaryRid = (bus.number << 8) | 0;
    if (!bridge.isPcie()) {
      // Conventional PCI bridges: requests behind them look like the bridge itself, unless a quirk says
      // this one behaves like a PCIe-to-PCI bridge (secondary bus, devfn 0).
      const alias = (bridge.devFlags & PCI_DEV_FLAG_PCIE_BRIDGE_ALIAS) !== 0;
      if (fn(alias ? { dev: bridge, rid: secondaryRid, why: 'pcie-bridge-alias' } : { dev: bridge, rid: bridge.rid, why: 'pci-bridge' })) return true;
      continue;
    }
    switch (bridge.pcieType()) {
      case PcieType.RootPort:
      case PcieType.UpstreamPort:
      case PcieType.DownstreamPort:
        continue; // PCIe ports forward the requester ID untouched
      case PcieType.PcieToPciBridge:
        if (fn({ dev: bridge, rid: secondaryRid, why: 'pcie-to-pci-bridge' })) return true;
        continue;
      case PcieType.PciToPcieBridge:
        if (fn({ dev: bridge, rid: bridge.rid, why: 'pci-to-pcie-bridge' })) return true;
        continue;
      default:
        continue;
    }
  }
  return false;
}

/** pci_devs_are_dma_aliases(): either lists the other in its alias mask (or is its real DMA device). */
export function devsAreDmaAliases(a: PciDev, b: PciDev): boolean {
  return a.hasDmaAlias(b.devfn) || b.hasDmaAlias(a.devfn) || realDmaDev(a) === b || realDmaDev(b) === a;
}
