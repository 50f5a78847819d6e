import { formatShortAddress, PCI_DEVFN } from '../../pci/address.ts';
import type { PciBus } from '../../pci/bus.ts';
import type { PciDev } from '../../pci/dev.ts';
import { ALIAS_FIXUPS } from '../../pci/quirks/dma-alias-quirks.ts';
import { PCI_SUBSYSTEM_ID, PCI_SUBSYSTEM_VENDOR_ID, PcieType } from '../../pci/regs.ts';

// The requester ID a function's upstream memory request carries when it reaches the root complex, from
// what the hardware does (device IDs and topology), never from Linux's dma_alias_mask or dev_flags:
//
//  * The function starts with its own ID, except devices known to issue DMA under another function's ID
//    (Linux's quirk_dma_func0_alias, quirk_dma_func1_alias and quirk_fixed_dma_alias: Ricoh, Marvell
//    88SE9xxx, HighPoint, JMicron, Lite-On, Adaptec). Real parts use the alias ID for some of their DMA
//    (Marvell's SATA controllers, for one, use function 1 for some commands); the model uses it for all
//    DMA, the case that matters for isolation.
//  * PCIe root ports, switch upstream and downstream ports forward the ID untouched.
//  * A PCIe-to-PCI/PCI-X bridge takes ownership of requests from its conventional side: (secondary bus,
//    devfn 0) (PCIe-to-PCI/PCI-X Bridge spec r1.0 §2.3; in PCI-X mode a bridge may keep the requester's
//    ID, 00.0 is the case Linux plans for). So does a bridge without a PCIe capability that is really one
//    (Linux's quirk_use_pcie_bridge_dma_alias device IDs: ASMedia ASM1083/1085, Tundra, ITE, Intel 82801):
//    the model decides from the ID alone.
//  * A conventional PCI-to-PCI bridge and a PCI/PCI-X-to-PCIe bridge forward with their own ID.
//  * The NTB aliases in the quirk table (Xeon Phi, VCA, PLX and Switchtec NTBs) are IDs the NTB uses for
//    traffic it forwards from the other side, not for the function's own DMA: they do not change it.
// The bridge nearest the root that rewrites the ID wins.

export interface RequesterId {
  /** bus << 8 | devfn, as the IOMMU sees it. */
  readonly rid: number;
  readonly domain: number;
  /** "99:00.0" (with the domain when it is not 0). */
  readonly text: string;
  /** One line saying where the ID comes from: "its own", "taken over by PCIe-to-PCI bridge 98:00.0". */
  readonly why: string;
  /** The bridge that rewrote the ID, or null when the function's own (or alias) ID reaches the root. */
  readonly rewrittenBy: PciDev | null;
}

const FUNC_ALIAS_FIXUPS = ALIAS_FIXUPS.filter((f) => f.name === 'quirk_dma_func0_alias' || f.name === 'quirk_dma_func1_alias' || f.name === 'quirk_fixed_dma_alias');
const BRIDGE_ALIAS_FIXUPS = ALIAS_FIXUPS.filter((f) => f.name === 'quirk_use_pcie_bridge_dma_alias');

/** The devfn (same bus) a function issues its DMA as because of a function-alias hardware bug, or null. */
export function functionAliasDevfn(dev: PciDev): { devfn: number; quirk: string } | null {
  if (dev.isBridge()) return null;
  for (const f of FUNC_ALIAS_FIXUPS) {
    if (f.vendor !== dev.vendor || !f.devices.includes(dev.device)) continue;
    if (f.subsystem !== undefined) {
      const sv = dev.config.read16(PCI_SUBSYSTEM_VENDOR_ID);
      const sd = dev.config.read16(PCI_SUBSYSTEM_ID);
      if (f.subsystem.vendor !== sv || !f.subsystem.devices.includes(sd)) continue;
    }
    switch (f.name) {
      case 'quirk_dma_func0_alias':
        if (dev.fn !== 0) return { devfn: PCI_DEVFN(dev.slot, 0), quirk: f.name };
        break;
      case 'quirk_dma_func1_alias':
        if (dev.fn !== 1) return { devfn: PCI_DEVFN(dev.slot, 1), quirk: f.name };
        break;
      default:
        return { devfn: PCI_DEVFN(1, 0), quirk: f.name };
    }
  }
  return null;
}

/** A bridge without a PCIe capability that is really a PCIe-to-PCI bridge (by device ID). */
export function isHiddenPcieToPciBridge(bridge: PciDev): boolean {
  return bridge.isBridge() && !bridge.isPcie()
    && BRIDGE_ALIAS_FIXUPS.some((f) => f.vendor === bridge.vendor && f.devices.includes(bridge.device));
}

/** Whether `bridge` gives requests from its secondary side the ID (secondary bus, 00.0). */
export function takesOwnership(bridge: PciDev): boolean {
  if (!bridge.isBridge()) return false;
  if (!bridge.isPcie()) return isHiddenPcieToPciBridge(bridge);
  return bridge.pcieType() === PcieType.PcieToPciBridge;
}

/** The requester ID `dev`'s upstream memory requests carry at the root complex. */
export function requesterIdOf(dev: PciDev): RequesterId {
  const alias = functionAliasDevfn(dev);
  let rid = alias === null ? dev.rid : (dev.busNumber << 8) | alias.devfn;
  let why = alias === null ? 'its own ID' : `the alias ID of a function-alias bug (${alias.quirk}; all its DMA is modelled as using it)`;
  let rewrittenBy: PciDev | null = null;
  for (let bus: PciBus | null = dev.bus; bus !== null && !bus.isRoot(); bus = bus.parent) {
    const bridge = bus.self;
    if (bridge === null) continue; // an SR-IOV virtual bus: nothing rewrites the ID
    if (takesOwnership(bridge)) {
      rid = bus.number << 8;
      rewrittenBy = bridge;
      why = bridge.isPcie()
        ? `taken over by PCIe-to-PCI bridge ${bridge.shortBdf} (secondary bus, devfn 0)`
        : `taken over by ${bridge.shortBdf}, a PCIe-to-PCI bridge without a PCIe capability (secondary bus, devfn 0)`;
    } else if (!bridge.isPcie() || bridge.pcieType() === PcieType.PciToPcieBridge) {
      rid = bridge.rid;
      rewrittenBy = bridge;
      why = `forwarded by ${bridge.isPcie() ? 'PCI-to-PCIe bridge' : 'conventional PCI bridge'} ${bridge.shortBdf} with its own ID`;
    }
    // Root ports and switch ports forward the ID untouched.
  }
  const text = formatShortAddress({ domain: dev.domain, bus: rid >> 8, devfn: rid & 0xff });
  return { rid, domain: dev.domain, text, why, rewrittenBy };
}
