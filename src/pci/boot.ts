import type { PciDev } from './dev.ts';
import { PCI_DEV_FLAGS_ACS_ENABLED_QUIRK } from './dev.ts';
import { buildHost, type Host } from './host.ts';
import {
  DEFAULT_KERNEL_OPTIONS, DISABLE_ACS_REDIR_MASK, parseKernelCmdline, type KernelOptions, type PciDevSelector,
} from './kernel-options.ts';
import { INTEL_SPT_ACS_CTRL, isIntelPchAcsRootPort, isIntelSptPchRootPort } from './quirks/acs-quirks.ts';
import { applyAliasFixups } from './quirks/dma-alias-quirks.ts';
import {
  PCI_ACS_CR, PCI_ACS_CTRL, PCI_ACS_EC, PCI_ACS_RR, PCI_ACS_SV, PCI_ACS_TB, PCI_ACS_UF, PCI_SUBSYSTEM_ID,
  PCI_SUBSYSTEM_VENDOR_ID,
} from './regs.ts';
import { parseAddress } from './address.ts';
import type { HostSpec, HostSpecInput } from './spec.ts';

/** A host after Linux's PCI core has booted on it: quirks applied, ACS enabled, under these options. */
export interface BootedHost {
  readonly host: Host;
  readonly options: KernelOptions;
  /** What the kernel would log about it ("Intel PCH root port ACS workaround enabled", ...). */
  readonly log: readonly string[];
}

/**
 * Build a host and boot it: the PCI core's header fixups (DMA aliases, bridge flags), firmware DMA
 * aliases, then pci_enable_acs() on every function, which writes ACS Control in config space.
 */
export function bootHost(spec: HostSpec | HostSpecInput, cmdline?: string | KernelOptions): BootedHost {
  const host = buildHost(spec);
  const options = cmdline === undefined ? DEFAULT_KERNEL_OPTIONS
    : typeof cmdline === 'string' ? parseKernelCmdline(cmdline) : cmdline;
  const log: string[] = [];
  const iommuOn = options.iommu && host.platform.iommu !== 'none';
  for (const dev of host.topology.devices()) {
    const cfg = dev.config;
    log.push(...applyAliasFixups(dev, cfg.read16(PCI_SUBSYSTEM_VENDOR_ID), cfg.read16(PCI_SUBSYSTEM_ID)));
  }
  for (const [devText, aliasText] of host.platform.firmwareAliases) {
    const dev = host.topology.get(devText);
    const alias = parseAddress(aliasText);
    if (dev === undefined || alias === undefined) {
      log.push(`firmware alias ${devText} -> ${aliasText}: no such device, ignored`);
      continue;
    }
    if (alias.bus !== dev.busNumber || alias.domain !== dev.domain) {
      log.push(`firmware alias ${devText} -> ${aliasText}: not on the same bus; Linux records same-bus aliases only`);
      continue;
    }
    dev.addDmaAlias(alias.devfn);
    log.push(`${dev.shortBdf}: firmware DMA alias to ${aliasText}`);
  }
  // The IOMMU drivers call pci_request_acs() at init; without an IOMMU nothing enables ACS.
  for (const dev of host.topology.devices()) enableAcs(dev, options, iommuOn, log);
  if (options.acsOverride !== null) {
    log.push('Warning: PCIe ACS overrides enabled; This may allow non-IOMMU protected peer-to-peer DMA');
  }
  return { host, options, log };
}

/** pci_enable_acs(): device-specific enable quirks, else the standard enable; then the two parameters. */
function enableAcs(dev: PciDev, options: KernelOptions, requested: boolean, log: string[]): void {
  // An lspci dump already shows ACS Control after the source kernel's enabling: re-enabling is a no-op
  // there, and the firmware value that config_acs starts from is approximated by the dumped one.
  let handledByQuirk = false;
  if (requested) {
    if (isIntelPchAcsRootPort(dev)) {
      dev.devFlags |= PCI_DEV_FLAGS_ACS_ENABLED_QUIRK;
      log.push(`${dev.shortBdf}: Intel PCH root port ACS workaround enabled`);
      handledByQuirk = true;
    } else if (isIntelSptPchRootPort(dev)) {
      if (dev.acsCap !== 0) {
        const cap = dev.config.read32(dev.acsCap + 4);
        const ctrlAt = dev.acsCap + INTEL_SPT_ACS_CTRL;
        dev.config.write32(ctrlAt, dev.config.read32(ctrlAt) | (cap & (PCI_ACS_SV | PCI_ACS_RR | PCI_ACS_CR | PCI_ACS_UF)));
        log.push(`${dev.shortBdf}: Intel SPT PCH root port ACS enabled (dword layout)`);
      }
      handledByQuirk = true;
    }
  }
  if (dev.acsCap === 0) return;
  const cap = dev.acsCapReg();
  const fwCtrl = dev.acsCtrlReg();
  let ctrl = fwCtrl;
  if (requested && !handledByQuirk) {
    ctrl |= cap & (PCI_ACS_SV | PCI_ACS_RR | PCI_ACS_CR | PCI_ACS_UF);
    if (options.noats) ctrl |= cap & PCI_ACS_TB;
  }
  // __pci_config_acs(): ctrl = (firmware & ~mask) | (flags & mask). The base is the firmware value, so
  // on a listed device every bit outside the mask falls back to what the firmware left, not to what the
  // standard enable just set. SPT ports take their own op instead of the standard register.
  const apply = (mask: number, flags: number, why: string): void => {
    if (isIntelSptPchRootPort(dev)) {
      const at = dev.acsCap + INTEL_SPT_ACS_CTRL;
      dev.config.write32(at, (dev.config.read32(at) & ~(PCI_ACS_RR | PCI_ACS_CR | PCI_ACS_EC)) >>> 0);
      log.push(`${dev.shortBdf}: ${why} (Intel SPT op: RR, CR, EC cleared)`);
      return;
    }
    const masked = mask & (cap | PCI_ACS_EC);
    ctrl = (fwCtrl & ~masked) | (flags & masked);
    log.push(`${dev.shortBdf}: ${why}: ACSCtl ${hex4(fwCtrl)} (firmware) -> ${hex4(ctrl)}`);
  };
  if (options.disableAcsRedir.some((s) => selectorMatches(s, dev))) apply(DISABLE_ACS_REDIR_MASK, 0, 'disable_acs_redir');
  for (const entry of options.configAcs) {
    if (selectorMatches(entry.selector, dev)) apply(entry.mask, entry.flags, `config_acs=${entry.selector.text}`);
  }
  if (ctrl !== fwCtrl) dev.config.write16(dev.acsCap + PCI_ACS_CTRL, ctrl);
}

/** pci_dev_str_match(): a path from a root-bus device through bridges, or an ID match with 0 wildcards. */
export function selectorMatches(sel: PciDevSelector, dev: PciDev): boolean {
  if (sel.kind === 'ids') {
    const sv = dev.config.read16(PCI_SUBSYSTEM_VENDOR_ID);
    const sd = dev.config.read16(PCI_SUBSYSTEM_ID);
    return (sel.vendor === 0 || sel.vendor === dev.vendor) && (sel.device === 0 || sel.device === dev.device)
      && (sel.subvendor === 0 || sel.subvendor === sv) && (sel.subdevice === 0 || sel.subdevice === sd);
  }
  // Walk up from dev: the path's last hop is dev itself, the first hop sits on bus `sel.bus`.
  let cur: PciDev | null = dev;
  for (let i = sel.path.length - 1; i >= 0; i--) {
    const hop = sel.path[i];
    if (cur === null || hop === undefined || cur.slot !== hop.slot || cur.fn !== hop.fn) return false;
    if (i === 0) return cur.domain === sel.domain && cur.busNumber === sel.bus;
    cur = cur.bus.self;
  }
  return false;
}

function hex4(n: number): string { return n.toString(16).padStart(4, '0'); }

