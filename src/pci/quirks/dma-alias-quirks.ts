import { PCI_DEVFN } from '../address.ts';
import type { PciDev } from '../dev.ts';
import { PCI_DEV_FLAG_PCIE_BRIDGE_ALIAS, PCI_DEV_FLAGS_BRIDGE_XLATE_ROOT } from '../dev.ts';
import { PcieType } from '../regs.ts';

// DMA-alias fixups from drivers/pci/quirks.c: functions whose DMA carries another requester ID than
// their own, and bridges that alias like PCIe-to-PCI bridges without saying so.

export interface AliasFixup {
  readonly name: string;
  readonly vendor: number;
  readonly devices: readonly number[];
  /** Only when the subsystem matches (quirk_fixed_dma_alias). */
  readonly subsystem?: { vendor: number; devices: readonly number[] };
  readonly apply: (dev: PciDev) => string;
}

const func0 = (dev: PciDev): string => {
  // quirk_dma_func0_alias: non-zero functions issue DMA as function 0.
  if (dev.fn === 0) return '';
  dev.addDmaAlias(PCI_DEVFN(dev.slot, 0));
  return `DMA alias to function 0 (${hex2(dev.slot)}.0)`;
};
const func1 = (dev: PciDev): string => {
  // quirk_dma_func1_alias: Marvell and friends tag DMA with function 1.
  if (dev.fn === 1) return '';
  dev.addDmaAlias(PCI_DEVFN(dev.slot, 1));
  return `DMA alias to function 1 (${hex2(dev.slot)}.1)`;
};
const fixed01 = (dev: PciDev): string => {
  dev.addDmaAlias(PCI_DEVFN(1, 0));
  return 'fixed DMA alias to 01.0';
};
const micX200 = (dev: PciDev): string => {
  for (const devfn of [PCI_DEVFN(0x10, 0), PCI_DEVFN(0x11, 0), PCI_DEVFN(0x12, 3)]) dev.addDmaAlias(devfn);
  return 'DMA aliases to 10.0, 11.0 and 12.3 (Xeon Phi x200)';
};
const vcaAlias = (dev: PciDev): string => {
  // quirk_pex_vca_alias: the VCA's root ports alias 5 functions in each of the 32 slots.
  for (let slot = 0; slot < 32; slot++) dev.addDmaAlias(PCI_DEVFN(slot, 0), 5);
  return 'DMA aliases to functions 0-4 of every slot (Intel VCA)';
};
const pcieBridgeAlias = (dev: PciDev): string => {
  dev.devFlags |= PCI_DEV_FLAG_PCIE_BRIDGE_ALIAS;
  return 'conventional bridge treated as a PCIe-to-PCI bridge for DMA aliasing';
};
const xlateRoot = (dev: PciDev): string => {
  dev.devFlags |= PCI_DEV_FLAGS_BRIDGE_XLATE_ROOT;
  return 'DMA alias walk stops at this root port (BRIDGE_XLATE_ROOT)';
};

export const ALIAS_FIXUPS: readonly AliasFixup[] = [
  { name: 'quirk_dma_func0_alias', vendor: 0x1180, devices: [0xe832, 0xe476], apply: func0 }, // Ricoh
  { name: 'quirk_dma_func0_alias', vendor: 0x6766, devices: [0x3d40, 0x3d41], apply: func0 }, // Glenfly
  { name: 'quirk_dma_func1_alias', vendor: 0x1b4b, devices: [0x9120, 0x9123, 0x9125, 0x9128, 0x9130, 0x9170, 0x9172, 0x917a, 0x9182, 0x9183, 0x91a0, 0x9215, 0x9220, 0x9230, 0x9235], apply: func1 }, // Marvell
  { name: 'quirk_dma_func1_alias', vendor: 0x1103, devices: [0x0642, 0x0645], apply: func1 }, // TTI
  { name: 'quirk_dma_func1_alias', vendor: 0x197b, devices: [0x2394], apply: func1 }, // JMicron JMB388_ESD
  { name: 'quirk_dma_func1_alias', vendor: 0x1c28, devices: [0x0122], apply: func1 }, // Lite-On / Plextor
  { name: 'quirk_fixed_dma_alias', vendor: 0x9005, devices: [0x0285], subsystem: { vendor: 0x9005, devices: [0x02bb, 0x02bc] }, apply: fixed01 }, // Adaptec
  { name: 'quirk_mic_x200_dma_alias', vendor: 0x8086, devices: [0x2260, 0x2264], apply: micX200 },
  { name: 'quirk_pex_vca_alias', vendor: 0x8086, devices: [0x2954, 0x2955, 0x2956, 0x2958, 0x2959, 0x295a], apply: vcaAlias },
  { name: 'quirk_use_pcie_bridge_dma_alias', vendor: 0x1b21, devices: [0x1080], apply: pcieBridgeAlias }, // ASMedia
  { name: 'quirk_use_pcie_bridge_dma_alias', vendor: 0x10e3, devices: [0x8113], apply: pcieBridgeAlias }, // Tundra
  { name: 'quirk_use_pcie_bridge_dma_alias', vendor: 0x1283, devices: [0x8892, 0x8893], apply: pcieBridgeAlias }, // ITE
  { name: 'quirk_use_pcie_bridge_dma_alias', vendor: 0x8086, devices: [0x244e], apply: pcieBridgeAlias }, // Intel 82801
  { name: 'quirk_bridge_cavm_thrx2_pcie_root', vendor: 0x14e4, devices: [0x9000, 0x9084], apply: xlateRoot },
  { name: 'quirk_bridge_cavm_thrx2_pcie_root', vendor: 0x177d, devices: [0x9000, 0x9084], apply: xlateRoot },
];

/** Run the alias fixups for one function; returns what each applied fixup did, for the boot log. */
export function applyAliasFixups(dev: PciDev, subsystemVendor: number, subsystemDevice: number): string[] {
  const log: string[] = [];
  for (const f of ALIAS_FIXUPS) {
    if (f.vendor !== dev.vendor || !f.devices.includes(dev.device)) continue;
    if (f.subsystem !== undefined && (f.subsystem.vendor !== subsystemVendor || !f.subsystem.devices.includes(subsystemDevice))) continue;
    if (f.name === 'quirk_use_pcie_bridge_dma_alias' && !qualifiesAsHiddenPcieBridge(dev)) continue;
    const what = f.apply(dev);
    if (what !== '') log.push(`${dev.shortBdf}: ${f.name}: ${what}`);
  }
  return log;
}


// Only a conventional bridge below a PCIe port that is not itself a PCIe-to-PCI bridge.
function qualifiesAsHiddenPcieBridge(dev: PciDev): boolean {
  const up = dev.bus.self;
  return !dev.bus.isRoot() && dev.isBridge() && !dev.isPcie() && up !== null && up.isPcie()
    && up.pcieType() !== PcieType.PcieToPciBridge;
}

function hex2(n: number): string { return n.toString(16).padStart(2, '0'); }
