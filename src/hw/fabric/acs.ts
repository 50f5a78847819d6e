import type { PciDev } from '../../pci/dev.ts';
import { acsQuirkVerdict } from '../../pci/quirks/acs-quirks.ts';
import { PCI_ACS_CR, PCI_ACS_EC, PCI_ACS_RR, PCI_ACS_SV, PCI_ACS_TB, PCI_ACS_UF, REQ_ACS_FLAGS } from '../../pci/regs.ts';

// What a function's ACS capability makes the hardware do with a peer-to-peer request, read live from
// config space (so after boot's pci_enable_acs(), and after anything software wrote since).
//
// Register reading, and why:
//  * Control bits count only where the Capability register implements them: an unimplemented control
//    is hard-wired to 0 whatever software wrote (config_acs can try to set EC on a port without it).
//  * For SV, RR, CR and UF a capability that does not implement the bit means the function has no such
//    path at all: PCIe r6 §6.12.1 requires a port or multifunction function that supports peer-to-peer
//    to implement P2P Request Redirect (and Upstream Forwarding), so one that does not implement it
//    sends everything upstream. This is the reading of Linux's pci_acs_flags_enabled() ("hard-wired").
//  * Egress Control and Translation Blocking only act when really enabled.
//  * The Egress Control Vector (ACS capability + 8) is not in the model: EC, when enabled, blocks
//    peer-to-peer requests to every other port or function, as an all-ones vector would.
//  * A function with no ACS capability redirects nothing.
//  * Linux's device-ID ACS quirks are vendors' statements about their silicon (multifunction endpoints
//    without internal peer paths, Intel RCiEPs, AMD southbridges, listed root/downstream ports, and
//    ports or NICs whose ACS must not be trusted), so where one gives a verdict it decides, before the
//    registers: "isolated" means no peer path (requests go upstream), "not isolated" means the ACS shown
//    does not act (nothing is redirected). The out-of-tree pcie_acs_override is software believing
//    something, so it is never consulted. AMD's southbridge quirk needs an AMD (IVRS) platform, as in Linux.

export interface AcsBehaviour {
  /** The function has an ACS extended capability. */
  readonly present: boolean;
  /** Peer-to-peer requests entering here are redirected upstream. */
  readonly requestRedirect: boolean;
  /** Requests that would go back down the link they came from are forwarded upstream instead. */
  readonly upstreamForwarding: boolean;
  /** Peer-to-peer requests entering here are blocked (Egress Control, all-ones vector). */
  readonly egressControl: boolean;
  /** Requests with the AT field set to Translated are blocked (not used: ATS-translated requests are not modelled). */
  readonly translationBlocking: boolean;
  /** The redirect comes from a vendor's statement (a Linux ACS quirk), not from registers. */
  readonly byQuirk: string | null;
  /** "has ACS with RR enabled", "has no ACS capability", ... for explanations. */
  readonly text: string;
}

const HARDWIRED_WHEN_ABSENT = PCI_ACS_SV | PCI_ACS_RR | PCI_ACS_CR | PCI_ACS_UF;

/** The ACS behaviour of `dev` as an ingress point for a request, from its registers (and vendor quirks). */
export function acsBehaviour(dev: PciDev, amdPlatform: boolean): AcsBehaviour {
  const quirk = acsQuirkVerdict(dev, REQ_ACS_FLAGS, { amdIvrs: amdPlatform, override: null, kernelVersion: null });
  if (quirk !== null && quirk.verdict) {
    return {
      present: dev.acsCap !== 0, requestRedirect: true, upstreamForwarding: true, egressControl: false, translationBlocking: false,
      byQuirk: quirk.quirk.name, text: `has no peer path, as its vendor states (${quirk.quirk.name})`,
    };
  }
  if (quirk === null && dev.acsCap !== 0) {
    const cap = dev.acsCapReg();
    const ctl = dev.acsCtrlReg();
    const effective = (ctl & cap) | (~cap & HARDWIRED_WHEN_ABSENT);
    const rr = (effective & PCI_ACS_RR) !== 0;
    const ec = (effective & PCI_ACS_EC) !== 0;
    const uf = (effective & PCI_ACS_UF) !== 0;
    const parts: string[] = [];
    if (rr) parts.push((cap & PCI_ACS_RR) !== 0 ? 'RR enabled' : 'RR hard-wired');
    else parts.push('RR not enabled');
    if (ec) parts.push('EC enabled');
    return {
      present: true, requestRedirect: rr, upstreamForwarding: uf, egressControl: ec,
      translationBlocking: (effective & PCI_ACS_TB) !== 0, byQuirk: null, text: `has ACS with ${parts.join(', ')}`,
    };
  }
  return {
    present: dev.acsCap !== 0, requestRedirect: false, upstreamForwarding: false, egressControl: false, translationBlocking: false,
    byQuirk: quirk?.quirk.name ?? null,
    text: quirk === null ? 'has no ACS' : `has ACS its vendor says does not isolate (${quirk.quirk.name})`,
  };
}
