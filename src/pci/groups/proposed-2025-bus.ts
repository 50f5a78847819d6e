import type { PciBus } from '../bus.ts';
import type { PciDev } from '../dev.ts';
import { PCI_DEV_FLAG_PCIE_BRIDGE_ALIAS } from '../dev.ts';
import {
  PCI_BASE_ADDRESS_0, PCI_BASE_ADDRESS_MEM_TYPE_64, PCI_BASE_ADDRESS_SPACE_IO, PCI_HEADER_TYPE_BRIDGE,
  PCI_HEADER_TYPE_NORMAL, PcieType,
} from '../regs.ts';
import type { AcsContext } from './acs.ts';
import { describeKind } from './acs.ts';
import {
  acsEnabled2025, acsWhy2025, PCI_ACS_DSP_MT_RR, PCI_ACS_ISOLATED, PCI_ACS_USP_MT_RR,
} from './proposed-2025-acs.ts';

// pci_bus_isolated() of the 2025 series: isolation is judged per bus, not per device. A bus is isolated
// when nothing a device below it sends can land anywhere but upstream; otherwise the first such bus on
// the way down decides the group of everything beneath it.

/** The series' enum pci_bus_isolation, under the kernel's names. */
export type BusIsolation =
  /** Downstream traffic on this bus cannot reach any peer: devices may get groups of their own. */
  | 'PCIE_ISOLATED'
  /** A switch's internal bus whose upstream port is out of reach but whose downstream ports are not isolated from each other. */
  | 'PCIE_SWITCH_DSP_NON_ISOLATED'
  /** No isolation on this PCIe bus, the bridge (or switch upstream port) above it included. */
  | 'PCIE_NON_ISOLATED'
  /** A conventional PCI bus behind a bridge that neither aliases its own ID nor exposes MMIO to it. */
  | 'PCI_BUS_NON_ISOLATED'
  /** A conventional PCI/PCI-X bus whose bridge is reachable from it (or aliases its devices). */
  | 'PCI_BRIDGE_NON_ISOLATED';

export interface BusVerdict {
  readonly kind: BusIsolation;
  /** One clause a person reads: why the bus is (not) isolated. */
  readonly why: string;
  /** The device that decided it (a downstream port without ACS, the bridge, ...), if one did. */
  readonly culprit: PciDev | null;
}

/** pci_bus_isolated(bus). SR-IOV virtual buses are never passed here: callers use the PF's bus. */
export function busIsolated(bus: PciBus, ctx: AcsContext): BusVerdict {
  const bridge = bus.self;
  if (bus.isRoot()) {
    // The root complex is not described by any spec; Linux has always hoped it sends everything to
    // the IOMMU.
    return { kind: 'PCIE_ISOLATED', why: `root bus ${hex2(bus.number)} is assumed isolated`, culprit: null };
  }
  if (bridge === null) {
    // Only SR-IOV virtual buses lack a bridge, and callers pass the PF's bus instead (the kernel WARNs).
    return { kind: 'PCI_BRIDGE_NON_ISOLATED', why: `bus ${hex2(bus.number)} is a virtual bus with no bridge to judge`, culprit: null };
  }
  let type: number;
  if (!bridge.isPcie()) {
    if ((bridge.devFlags & PCI_DEV_FLAG_PCIE_BRIDGE_ALIAS) === 0) {
      return {
        kind: 'PCI_BRIDGE_NON_ISOLATED', culprit: bridge,
        why: `${describeKind(bridge)} ${bridge.shortBdf} leads to conventional PCI bus ${hex2(bus.number)}, where every device can reach the others and the bridge`,
      };
    }
    // A quirk says this conventional bridge aliases like a PCIe-to-PCI bridge.
    type = PcieType.PcieToPciBridge;
  } else {
    type = bridge.pcieType();
  }
  switch (type) {
    case PcieType.RootPort: {
      // A point-to-point link; the only way back down is a loopback inside the port, and the port's
      // own MMIO is covered by DSP_MT_RR. No ACS capability now means no loopback, like an MFD.
      if (bridge.acsCap === 0) {
        return { kind: 'PCIE_ISOLATED', culprit: null, why: `root port ${bridge.shortBdf} has no ACS capability, so it is assumed to have no internal loopback` };
      }
      const flags = PCI_ACS_ISOLATED | PCI_ACS_DSP_MT_RR;
      const why = `root port ${bridge.shortBdf} ${acsWhy2025(bridge, flags, ctx)}`;
      return acsEnabled2025(bridge, flags, ctx)
        ? { kind: 'PCIE_ISOLATED', culprit: null, why }
        : { kind: 'PCIE_NON_ISOLATED', culprit: bridge, why: `${why}, so it does not isolate the devices below it` };
    }
    case PcieType.DownstreamPort:
      // The link below a DSP is point-to-point; the DSP's own ACS is judged on the switch's internal bus.
      return { kind: 'PCIE_ISOLATED', culprit: null, why: `downstream port ${bridge.shortBdf} ends in a point-to-point link` };
    case PcieType.UpstreamPort:
      return switchIsolated(bus, bridge, ctx);
    case PcieType.PcieToPciBridge:
      // Devices behind it reach the host as (secondary bus, 00.0): they alias each other, not the bridge.
      if (hasMmio(bridge)) {
        return {
          kind: 'PCI_BRIDGE_NON_ISOLATED', culprit: bridge,
          why: `${describeKind(bridge)} ${bridge.shortBdf} has an MMIO BAR the conventional devices behind it can reach (nothing like ACS guards it)`,
        };
      }
      return {
        kind: 'PCI_BUS_NON_ISOLATED', culprit: bridge,
        why: `conventional PCI bus ${hex2(bus.number)} behind ${describeKind(bridge)} ${bridge.shortBdf} lets its devices reach each other and they all reach the IOMMU as ${hex2(bus.number)}:00.0; the bridge has no MMIO BAR and keeps its own requester ID`,
      };
    case PcieType.PciToPcieBridge:
      return {
        kind: 'PCI_BRIDGE_NON_ISOLATED', culprit: bridge,
        why: `${describeKind(bridge)} ${bridge.shortBdf} sits below conventional PCI, where requester IDs can be lost`,
      };
    default:
      return { kind: 'PCI_BRIDGE_NON_ISOLATED', culprit: bridge, why: `bridge ${bridge.shortBdf} is of a type Linux does not expect, so nothing below it is isolated` };
  }
}

/**
 * A switch's internal bus. Any downstream port that lets upstream-bound traffic turn back down spoils
 * the whole bus; if it can also reach the upstream port's MMIO, the upstream port is in it too.
 */
function switchIsolated(bus: PciBus, usp: PciDev, ctx: AcsContext): BusVerdict {
  const sw = `switch ${usp.shortBdf}`;
  for (const dev of bus.devices) {
    if (!dev.isPcie() || dev.pcieType() !== PcieType.DownstreamPort) {
      return { kind: 'PCIE_NON_ISOLATED', culprit: dev, why: `${dev.shortBdf} on ${sw}'s internal bus is not a downstream port, so the bus cannot be shown to isolate` };
    }
    if (dev.dmaAliasMask !== null) {
      return { kind: 'PCIE_NON_ISOLATED', culprit: dev, why: `downstream port ${dev.shortBdf} of ${sw} issues DMA under other requester IDs, so the bus cannot be shown to isolate` };
    }
    const all = PCI_ACS_ISOLATED | PCI_ACS_DSP_MT_RR | PCI_ACS_USP_MT_RR;
    if (acsEnabled2025(dev, all, ctx)) continue;
    if (!acsEnabled2025(dev, PCI_ACS_USP_MT_RR, ctx)) {
      const why = acsWhy2025(dev, PCI_ACS_USP_MT_RR, ctx);
      return {
        kind: 'PCIE_NON_ISOLATED', culprit: dev,
        why: `${sw}'s ports are not isolated from each other or from the upstream port's own MMIO (DSP ${dev.shortBdf} ${why})`,
      };
    }
    return {
      kind: 'PCIE_SWITCH_DSP_NON_ISOLATED', culprit: dev,
      why: `${sw}'s downstream ports are not isolated from each other (DSP ${dev.shortBdf} ${acsWhy2025(dev, all, ctx)})`,
    };
  }
  return { kind: 'PCIE_ISOLATED', culprit: null, why: `every downstream port of ${sw} isolates (ACS SV RR CR UF and the memory-target redirects in effect)` };
}

/**
 * pci_has_mmio(): does the function decode any memory BAR? Sized the way the PCI core does it, by
 * writing all-ones to each BAR of a copy of the config space and reading back the address mask. The
 * expansion ROM, which Linux also counts, is not part of the model.
 */
export function hasMmio(dev: PciDev): boolean {
  const hdr = dev.config.headerType();
  const count = hdr === PCI_HEADER_TYPE_NORMAL ? 6 : hdr === PCI_HEADER_TYPE_BRIDGE ? 2 : 0;
  const cfg = dev.config.clone();
  for (let i = 0; i < count; i++) {
    const off = PCI_BASE_ADDRESS_0 + i * 4;
    const orig = cfg.read32(off);
    if ((orig & PCI_BASE_ADDRESS_SPACE_IO) !== 0) continue;
    const is64 = (orig & 0x6) === PCI_BASE_ADDRESS_MEM_TYPE_64 && i + 1 < count;
    cfg.write32(off, 0xffffffff);
    const low = (cfg.read32(off) & ~0xf) >>> 0;
    let high = 0;
    if (is64) {
      cfg.write32(off + 4, 0xffffffff);
      high = cfg.read32(off + 4);
      i++;
    }
    if (low !== 0 || high !== 0) return true;
  }
  return false;
}

function hex2(n: number): string { return n.toString(16).padStart(2, '0'); }
