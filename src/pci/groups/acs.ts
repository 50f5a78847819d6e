import type { PciDev } from '../dev.ts';
import { acsQuirkVerdict, type AcsQuirkContext } from '../quirks/acs-quirks.ts';
import { PCI_ACS_EC, PCIE_TYPE_NAMES, PcieType } from '../regs.ts';
import { acsBitNames } from './acs-names.ts';

// The ACS predicates of drivers/pci/pci.c, exactly: pci_acs_flags_enabled, pci_acs_enabled and
// pci_acs_path_enabled, each with a twin that says *why* for explanations.

export type AcsContext = AcsQuirkContext;

/** pci_acs_flags_enabled(): unimplemented bits count as hard-wired on, except Egress Control. */
export function acsFlagsEnabled(dev: PciDev, flags: number): boolean {
  if (dev.acsCap === 0) return false;
  const f = flags & (dev.acsCapReg() | PCI_ACS_EC);
  return (dev.acsCtrlReg() & f) === f;
}

/** pci_acs_enabled(): the quirk table first, then the rules by PCIe port type. */
export function acsEnabled(dev: PciDev, flags: number, ctx: AcsContext): boolean {
  const quirk = acsQuirkVerdict(dev, flags, ctx);
  if (quirk !== null) return quirk.verdict;
  return acsEnabledByPortType(dev, (d) => acsFlagsEnabled(d, flags));
}

/**
 * pci_acs_enabled() past the quirk table: the rules by PCIe port type, with the register test passed in
 * (mainline's, or the 2025 series' that also masks ACS Enhanced bits).
 */
export function acsEnabledByPortType(dev: PciDev, registersEnable: (dev: PciDev) => boolean): boolean {
  if (!dev.isPcie()) return false;
  switch (dev.pcieType()) {
    // PCIe-to-PCI bridges and event collectors forward without any ACS: never isolated.
    case PcieType.PcieToPciBridge:
    case PcieType.PciToPcieBridge:
    case PcieType.RcEventCollector:
      return false;
    case PcieType.DownstreamPort:
    case PcieType.RootPort:
      return registersEnable(dev);
    // ACS is "not applicable" to a single-function endpoint or upstream port: nothing to redirect.
    case PcieType.Endpoint:
    case PcieType.UpstreamPort:
    case PcieType.LegacyEndpoint:
    case PcieType.RcIntegratedEndpoint:
      return !dev.multifunction || registersEnable(dev);
    default:
      return true;
  }
}

/** pci_acs_path_enabled(start, NULL, flags): every device from `start` up to the root bus passes. */
export function acsPathEnabled(start: PciDev, flags: number, ctx: AcsContext): boolean {
  return acsPathBlocker(start, flags, ctx) === null;
}

/** The first device on the way from `start` to the root bus that fails pci_acs_enabled, or null. */
export function acsPathBlocker(start: PciDev, flags: number, ctx: AcsContext): PciDev | null {
  let dev: PciDev | null = start;
  while (dev !== null) {
    if (!acsEnabled(dev, flags, ctx)) return dev;
    if (dev.bus.isRoot()) return null;
    dev = dev.bus.self;
  }
  return null;
}

/** One line on why pci_acs_enabled(dev, flags) answers as it does. */
export function acsVerdictReason(dev: PciDev, flags: number, ctx: AcsContext): string {
  const quirk = acsQuirkVerdict(dev, flags, ctx);
  const kind = describeKind(dev);
  if (quirk !== null) {
    const q = quirk.quirk.name === 'pcie_acs_overrides' ? 'pcie_acs_override (the out-of-tree override)' : `quirk ${quirk.quirk.name} (${dev.ids})`;
    return quirk.verdict ? `${kind} ${dev.shortBdf} counts as isolated by ${q}` : `${kind} ${dev.shortBdf} counts as not isolated by ${q}`;
  }
  if (!dev.isPcie()) return `${kind} ${dev.shortBdf} is conventional PCI: it has no ACS and cannot be isolated`;
  const type = dev.pcieType();
  switch (type) {
    case PcieType.PcieToPciBridge:
    case PcieType.PciToPcieBridge:
    case PcieType.RcEventCollector:
      return `${kind} ${dev.shortBdf} is a ${PCIE_TYPE_NAMES[type]}: Linux never treats it as isolated`;
    case PcieType.DownstreamPort:
    case PcieType.RootPort:
    case PcieType.Endpoint:
    case PcieType.UpstreamPort:
    case PcieType.LegacyEndpoint:
    case PcieType.RcIntegratedEndpoint: {
      const isPort = type === PcieType.DownstreamPort || type === PcieType.RootPort;
      if (!isPort && !dev.multifunction) return `${kind} ${dev.shortBdf} is single-function: ACS does not apply`;
      const mf = isPort ? '' : 'multifunction, ';
      if (dev.acsCap === 0) return `${kind} ${dev.shortBdf} (${mf}no ACS capability) is not isolated`;
      const need = flags & (dev.acsCapReg() | PCI_ACS_EC);
      const missing = need & ~dev.acsCtrlReg();
      const hardwired = flags & ~dev.acsCapReg() & ~PCI_ACS_EC;
      const hw = hardwired !== 0 ? `; ${acsBitNames(hardwired)} hard-wired` : '';
      return missing === 0
        ? `${kind} ${dev.shortBdf} has ACS ${acsBitNames(need)} enabled${hw}`
        : `${kind} ${dev.shortBdf} has ACS but ${acsBitNames(missing)} ${popcount(missing) > 1 ? 'are' : 'is'} not enabled`;
    }
    default:
      return `${kind} ${dev.shortBdf} counts as isolated`;
  }
}

/** "root port", "downstream port", "endpoint", "PCI bridge", ... for sentences. */
export function describeKind(dev: PciDev): string {
  if (!dev.isPcie()) return dev.isBridge() ? 'PCI bridge' : 'PCI device';
  switch (dev.pcieType()) {
    case PcieType.RootPort: return 'root port';
    case PcieType.DownstreamPort: return 'downstream port';
    case PcieType.UpstreamPort: return 'upstream port';
    case PcieType.PcieToPciBridge: return 'PCIe-to-PCI bridge';
    case PcieType.PciToPcieBridge: return 'PCI-to-PCIe bridge';
    case PcieType.RcIntegratedEndpoint: return 'integrated endpoint';
    case PcieType.RcEventCollector: return 'event collector';
    case PcieType.LegacyEndpoint: return 'legacy endpoint';
    default: return 'endpoint';
  }
}

function popcount(n: number): number {
  let c = 0;
  for (let v = n; v !== 0; v &= v - 1) c++;
  return c;
}
