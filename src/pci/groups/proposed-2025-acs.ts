import type { PciDev } from '../dev.ts';
import { acsQuirkVerdict } from '../quirks/acs-quirks.ts';
import {
  PCI_ACS_CR, PCI_ACS_DT, PCI_ACS_EC, PCI_ACS_ENHANCED, PCI_ACS_RR, PCI_ACS_SV, PCI_ACS_TB, PCI_ACS_UF, PcieType,
  REQ_ACS_FLAGS,
} from '../regs.ts';
import { acsEnabledByPortType, describeKind, type AcsContext } from './acs.ts';

// ACS as the 2025 series reads it. Two things differ from mainline's pci_acs_flags_enabled():
//  * the series names REQ_ACS_FLAGS "PCI_ACS_ISOLATED" and adds the ACS Enhanced control bits;
//  * which requested bits must really be set in ACS Control is decided by a mask built from the ACS
//    Capability register (pci_acs_ctrl_mask). Classic bits the hardware does not implement count as
//    hard-wired on, as before. The Enhanced bits only count when the port advertises ACS Enhanced
//    (capability bit 0x80); without it Linux assumes P2P Request Redirect already covers the port's own
//    MMIO, so a request for DSP_MT_RR or USP_MT_RR is satisfied.
// Bits 15:8 of the Capability register are the Egress Control Vector Size, not Enhanced bits, which is
// why mainline's `flags & (cap | EC)` cannot simply be reused with the new flags.

/** The series' name for REQ_ACS_FLAGS: SV | RR | CR | UF. */
export const PCI_ACS_ISOLATED = REQ_ACS_FLAGS;

// ACS Control bits added by ACS Enhanced (PCIe r6 §7.7.8.3). Values as the series defines them.
/** I/O Request Blocking. */
export const PCI_ACS_IORB = 0x0080;
/** Downstream Port memory target access: request blocking. */
export const PCI_ACS_DSP_MT_RB = 0x0100;
/** Downstream Port memory target access: request redirect (also covers a root port's own MMIO). */
export const PCI_ACS_DSP_MT_RR = 0x0200;
/** Upstream Port memory target access: request blocking. */
export const PCI_ACS_USP_MT_RB = 0x0400;
/** Upstream Port memory target access: request redirect (the switch USP's own MMIO). */
export const PCI_ACS_USP_MT_RR = 0x0800;
/** Unclaimed Request Redirect. */
export const PCI_ACS_UNCLAIMED_RR = 0x1000;

const ENHANCED_CTRL = PCI_ACS_IORB | PCI_ACS_DSP_MT_RB | PCI_ACS_DSP_MT_RR | PCI_ACS_USP_MT_RB | PCI_ACS_USP_MT_RR | PCI_ACS_UNCLAIMED_RR;
const CLASSIC = PCI_ACS_SV | PCI_ACS_TB | PCI_ACS_RR | PCI_ACS_CR | PCI_ACS_UF | PCI_ACS_DT;

/**
 * pci_acs_ctrl_mask(): the requested bits that must really be set in ACS Control. Egress Control is
 * always required (as the patch intends; its v3 text assigns instead of OR-ing and so drops EC, which
 * no group check asks for anyway).
 */
export function acsCtrlMask(capReg: number): number {
  let mask = (capReg & CLASSIC) | PCI_ACS_EC;
  if ((capReg & PCI_ACS_ENHANCED) !== 0) mask |= ENHANCED_CTRL;
  return mask;
}

/** pci_acs_flags_enabled() with the series' mask: no capability means nothing is enabled. */
export function acsFlagsEnabled2025(dev: PciDev, flags: number): boolean {
  if (dev.acsCap === 0) return false;
  const need = flags & acsCtrlMask(dev.acsCapReg());
  return (dev.acsCtrlReg() & need) === need;
}

/** The requested bits that are required and not set: what keeps `dev` from passing, 0 if nothing. */
function missingBits(dev: PciDev, flags: number): number {
  return flags & acsCtrlMask(dev.acsCapReg()) & ~dev.acsCtrlReg();
}

/** pci_acs_enabled() under the series: the quirk table first, then the rules by PCIe port type. */
export function acsEnabled2025(dev: PciDev, flags: number, ctx: AcsContext): boolean {
  const quirk = acsQuirkVerdict(dev, flags, ctx);
  if (quirk !== null) return quirk.verdict;
  return acsEnabledByPortType(dev, (d) => acsFlagsEnabled2025(d, flags));
}

const BIT_NAMES: ReadonlyArray<[number, string]> = [
  [PCI_ACS_SV, 'SV'], [PCI_ACS_TB, 'TB'], [PCI_ACS_RR, 'RR'], [PCI_ACS_CR, 'CR'], [PCI_ACS_UF, 'UF'],
  [PCI_ACS_EC, 'EC'], [PCI_ACS_DT, 'DT'], [PCI_ACS_IORB, 'IORB'], [PCI_ACS_DSP_MT_RB, 'DSP_MT_RB'],
  [PCI_ACS_DSP_MT_RR, 'DSP_MT_RR'], [PCI_ACS_USP_MT_RB, 'USP_MT_RB'], [PCI_ACS_USP_MT_RR, 'USP_MT_RR'],
  [PCI_ACS_UNCLAIMED_RR, 'UNCLAIMED_RR'],
];

/** "RR DSP_MT_RR" for a set of ACS Control bits. */
export function acsBitNames2025(bits: number): string {
  const names = BIT_NAMES.filter(([bit]) => (bits & bit) !== 0).map(([, n]) => n);
  return names.length === 0 ? 'none' : names.join(' ');
}

/**
 * Why acsEnabled2025(dev, flags) answers as it does, as a predicate phrase about the device:
 * "has ACS but RR is not enabled", "lacks ACS", "counts as isolated by quirk ...".
 */
export function acsWhy2025(dev: PciDev, flags: number, ctx: AcsContext): string {
  const quirk = acsQuirkVerdict(dev, flags, ctx);
  if (quirk !== null) {
    const q = quirk.quirk.name === 'pcie_acs_overrides' ? 'pcie_acs_override' : `quirk ${quirk.quirk.name} (${dev.ids})`;
    if (quirk.verdict) return `counts as isolated by ${q}`;
    // Quirks vouch for the classic bits only; asked for Enhanced bits as well they answer "no".
    const classic = flags & ~ENHANCED_CTRL;
    const extra = classic !== flags && acsQuirkVerdict(dev, classic, ctx)?.verdict === true
      ? `, which vouches only for the classic ACS bits, not ${acsBitNames2025(flags & ENHANCED_CTRL)}` : '';
    return `counts as not isolated by ${q}${extra}`;
  }
  if (!dev.isPcie()) return 'is conventional PCI, without ACS';
  const type = dev.pcieType();
  if (type === PcieType.PcieToPciBridge || type === PcieType.PciToPcieBridge || type === PcieType.RcEventCollector) {
    return `is a ${describeKind(dev)}, which Linux never treats as isolated`;
  }
  const isPort = type === PcieType.DownstreamPort || type === PcieType.RootPort;
  if (!isPort && !dev.multifunction) return 'is single-function, so ACS does not apply';
  if (dev.acsCap === 0) return 'lacks ACS';
  const missing = missingBits(dev, flags);
  if (missing !== 0) return `has ACS but ${acsBitNames2025(missing)} ${countBits(missing) > 1 ? 'are' : 'is'} not enabled`;
  const enabled = flags & acsCtrlMask(dev.acsCapReg());
  return enabled === 0 ? 'has ACS, and every bit asked for is hard-wired' : `has ACS with ${acsBitNames2025(enabled)} enabled`;
}

function countBits(n: number): number {
  let c = 0;
  for (let v = n; v !== 0; v &= v - 1) c++;
  return c;
}
