import { PCI_DEVFN } from '../address.ts';
import type { PciDev } from '../dev.ts';
import { PCI_DEV_FLAG_PCIE_BRIDGE_ALIAS, PCI_DEV_FLAGS_BRIDGE_XLATE_ROOT } from '../dev.ts';
import { PcieType } from '../regs.ts';

// The DMA-alias fixups of Linux's drivers/pci/quirks.c (checked against v6.18 and linux-next):
// functions whose DMA carries a requester ID other than their own, and bridges that alias like
// PCIe-to-PCI bridges without saying so. Entries follow the file's order, which is the order the
// fixups run in. All of them are header fixups matched on vendor/device alone except where noted.

export interface AliasFixup {
  /** Linux's function name, shown in the boot log. */
  readonly name: string;
  readonly vendor: number;
  readonly devices: readonly number[];
  /** Only when the subsystem matches too (quirk_fixed_dma_alias's table). */
  readonly subsystem?: { vendor: number; devices: readonly number[] };
  /** Only functions whose class code, shifted right by `shift`, equals `value` (CLASS fixups). */
  readonly classCode?: { value: number; shift: number };
  /** False for a fixup ioasis cannot reproduce: it only logs that Linux would do more. */
  readonly modelled?: boolean;
  /** Apply to `dev`; returns what it did for the log, or '' when it did nothing. */
  readonly apply: (dev: PciDev) => string;
}

const VENDOR_INTEL = 0x8086;

/** quirk_dma_func0_alias: functions other than 0 issue DMA with function 0's requester ID. */
function func0(dev: PciDev): string {
  if (dev.fn === 0) return '';
  dev.addDmaAlias(PCI_DEVFN(dev.slot, 0));
  return `DMA alias to function 0 (${hex2(dev.slot)}.0)`;
}

/** quirk_dma_func1_alias: functions other than 1 issue DMA with function 1's ID (a ghost function on some SKUs). */
function func1(dev: PciDev): string {
  if (dev.fn === 1) return '';
  dev.addDmaAlias(PCI_DEVFN(dev.slot, 1));
  return `DMA alias to function 1 (${hex2(dev.slot)}.1)`;
}

/** quirk_fixed_dma_alias: a hidden DMA engine at 01.0 on the card's internal bus (Adaptec 3405/3805). */
function fixed01(dev: PciDev): string {
  dev.addDmaAlias(PCI_DEVFN(1, 0));
  return 'fixed DMA alias to 01.0';
}

/**
 * quirk_use_pcie_bridge_dma_alias: a bridge without a PCIe capability, not on a root bus, below a
 * PCIe port that is not itself a PCIe-to-PCI bridge, is really a PCIe-to-PCI bridge: flag it so the
 * alias walk uses its secondary bus's 00.0.
 */
function pcieBridgeAlias(dev: PciDev): string {
  const up = dev.bus.self;
  if (dev.bus.isRoot() || !dev.isBridge() || dev.isPcie() || up === null || !up.isPcie()
    || up.pcieType() === PcieType.PcieToPciBridge) return '';
  dev.devFlags |= PCI_DEV_FLAG_PCIE_BRIDGE_ALIAS;
  return 'conventional bridge treated as a PCIe-to-PCI bridge for DMA aliasing';
}

/** quirk_mic_x200_dma_alias: the Xeon Phi x200 NTB forwards with three fixed foreign requester IDs. */
function micX200(dev: PciDev): string {
  for (const devfn of [PCI_DEVFN(0x10, 0), PCI_DEVFN(0x11, 0), PCI_DEVFN(0x12, 3)]) dev.addDmaAlias(devfn);
  return 'DMA aliases to 10.0, 11.0 and 12.3 (Xeon Phi x200)';
}

/** quirk_pex_vca_alias: the Intel VCA's NTBs alias functions 0-4 of all 32 slots of their bus. */
function vcaAlias(dev: PciDev): string {
  for (let slot = 0; slot < 32; slot++) dev.addDmaAlias(PCI_DEVFN(slot, 0), 5);
  return 'DMA aliases to functions 0-4 of every slot (Intel VCA)';
}

/** quirk_bridge_cavm_thrx2_pcie_root: the IOMMU sits below these root ports, so alias walks stop here. */
function xlateRoot(dev: PciDev): string {
  dev.devFlags |= PCI_DEV_FLAGS_BRIDGE_XLATE_ROOT;
  return 'DMA alias walk stops at this root port (BRIDGE_XLATE_ROOT)';
}

/**
 * quirk_switchtec_ntb_dma_alias: Linux reads each peer partition's requester-ID table from the
 * switch's NTB registers in BAR 0 and aliases every proxy ID in it. Those tables are invisible in
 * config space and lspci, so ioasis adds nothing and says so.
 */
function switchtecNtb(_dev: PciDev): string {
  return 'not modelled: Linux would add the NTB proxy-ID aliases listed in the switch\'s BAR 0 registers';
}

/** quirk_plx_ntb_dma_alias: a PLX NTB may forward with any requester ID of its bus: alias all 256 devfns. */
function plxNtb(dev: PciDev): string {
  dev.addDmaAlias(0, 256);
  return 'DMA aliases to every devfn on its bus (PLX NTB proxy IDs)';
}

const PCI_CLASS_BRIDGE_OTHER = 0x0680;

/** Microsemi Switchtec PFX/PSX/PAX (Gen3), and PFX/PSX/PAX/-A (Gen4, Gen5) device IDs. */
function switchtecMicrosemiIds(): number[] {
  const ids: number[] = [];
  // Gen3: 0x85<family><size>, families 3..7 (PFX, PSX, PAX, PFXL, PFXI), sizes 1..6 (24..96 lanes).
  for (const family of [0x853, 0x854, 0x855, 0x856, 0x857]) for (let size = 1; size <= 6; size++) ids.push(family * 16 + size);
  // Gen4 and Gen5: <prefix><lanes>, lane codes 100, 84, 68, 52, 36, 28; the "A" variants stop at 52.
  const allLanes = [0x00, 0x84, 0x68, 0x52, 0x36, 0x28];
  const aLanes = [0x52, 0x36, 0x28];
  for (const prefix of [0x40, 0x41, 0x42]) for (const l of allLanes) ids.push(prefix * 256 + l);
  for (const prefix of [0x43, 0x44, 0x45]) for (const l of aLanes) ids.push(prefix * 256 + l);
  for (const prefix of [0x50, 0x51, 0x52, 0x53, 0x54, 0x55]) for (const l of allLanes) ids.push(prefix * 256 + l);
  return ids;
}

export const ALIAS_FIXUPS: readonly AliasFixup[] = [
  { name: 'quirk_dma_func0_alias', vendor: 0x1180, devices: [0xe832, 0xe476], apply: func0 }, // Ricoh
  { name: 'quirk_dma_func0_alias', vendor: 0x6766, devices: [0x3d40, 0x3d41], apply: func0 }, // Glenfly
  {
    name: 'quirk_dma_func1_alias', vendor: 0x1b4b, // Marvell (88SE91xx/92xx SATA)
    devices: [0x9120, 0x9123, 0x9125, 0x9128, 0x9130, 0x9170, 0x9172, 0x917a, 0x9182, 0x9183, 0x91a0, 0x9215, 0x9220, 0x9230, 0x9235],
    apply: func1,
  },
  { name: 'quirk_dma_func1_alias', vendor: 0x1103, devices: [0x0642, 0x0645], apply: func1 }, // HighPoint (TTI)
  { name: 'quirk_dma_func1_alias', vendor: 0x197b, devices: [0x2392], apply: func1 }, // JMicron JMB388 SD/MMC
  { name: 'quirk_dma_func1_alias', vendor: 0x1c28, devices: [0x0122], apply: func1 }, // Lite-On/Plextor M6e
  { name: 'quirk_fixed_dma_alias', vendor: 0x9005, devices: [0x0285], subsystem: { vendor: 0x9005, devices: [0x02bb, 0x02bc] }, apply: fixed01 }, // Adaptec
  { name: 'quirk_use_pcie_bridge_dma_alias', vendor: 0x1b21, devices: [0x1080], apply: pcieBridgeAlias }, // ASMedia ASM1083/1085
  { name: 'quirk_use_pcie_bridge_dma_alias', vendor: 0x10e3, devices: [0x8113], apply: pcieBridgeAlias }, // Tundra
  { name: 'quirk_use_pcie_bridge_dma_alias', vendor: 0x1283, devices: [0x8892, 0x8893], apply: pcieBridgeAlias }, // ITE
  { name: 'quirk_use_pcie_bridge_dma_alias', vendor: VENDOR_INTEL, devices: [0x244e], apply: pcieBridgeAlias }, // Intel 82801
  { name: 'quirk_mic_x200_dma_alias', vendor: VENDOR_INTEL, devices: [0x2260, 0x2264], apply: micX200 },
  { name: 'quirk_pex_vca_alias', vendor: VENDOR_INTEL, devices: [0x2954, 0x2955, 0x2956, 0x2958, 0x2959, 0x295a], apply: vcaAlias },
  { name: 'quirk_bridge_cavm_thrx2_pcie_root', vendor: 0x14e4, devices: [0x9000, 0x9084], apply: xlateRoot }, // Broadcom Vulcan/ThunderX2
  // Final-pass class fixups (other bridge, 0680): the NTB functions of Switchtec switches.
  {
    name: 'quirk_switchtec_ntb_dma_alias', vendor: 0x11f8, devices: switchtecMicrosemiIds(),
    classCode: { value: PCI_CLASS_BRIDGE_OTHER, shift: 8 }, modelled: false, apply: switchtecNtb,
  },
  {
    name: 'quirk_switchtec_ntb_dma_alias', vendor: 0x1055, devices: [0x1001, 0x1002, 0x1003, 0x1004, 0x1005, 0x1006], // PCI100x
    classCode: { value: PCI_CLASS_BRIDGE_OTHER, shift: 8 }, modelled: false, apply: switchtecNtb,
  },
  { name: 'quirk_plx_ntb_dma_alias', vendor: 0x10b5, devices: [0x87b0, 0x87b1], apply: plxNtb },
];

/** Run the alias fixups for one function; returns what each applied fixup did, for the boot log. */
export function applyAliasFixups(dev: PciDev, subsystemVendor: number, subsystemDevice: number): string[] {
  const log: string[] = [];
  for (const f of ALIAS_FIXUPS) {
    if (f.vendor !== dev.vendor || !f.devices.includes(dev.device)) continue;
    if (f.subsystem !== undefined && (f.subsystem.vendor !== subsystemVendor || !f.subsystem.devices.includes(subsystemDevice))) continue;
    if (f.classCode !== undefined && (dev.classCode >>> f.classCode.shift) !== f.classCode.value) continue;
    const what = f.apply(dev);
    if (what !== '') log.push(`${dev.shortBdf}: ${f.name}: ${what}`);
  }
  return log;
}

function hex2(n: number): string { return n.toString(16).padStart(2, '0'); }
