import { parseAddress } from '../address.ts';
import { selectorMatches, type BootedHost } from '../boot.ts';
import { acsBitNames } from '../groups/acs-names.ts';
import { PCI_ACS_CR, PCI_ACS_DT, PCI_ACS_EC, PCI_ACS_RR, PCI_ACS_SV, PCI_ACS_TB, PCI_ACS_UF } from '../regs.ts';

/** An `acs:` edit, remembered so the final boot can say whether Linux keeps it. */
export interface AcsEditRecord {
  /** Short BDF, updated when a later move relocates the function. */
  address: string;
  /** The ACS Control Linux would group with if it honoured the edit. */
  readonly intended: number;
  readonly what: string;
}

const KERNEL_ENABLED = PCI_ACS_SV | PCI_ACS_RR | PCI_ACS_CR | PCI_ACS_UF;
// config_acs writes bits most significant first: DT EC UF CR RR TB SV.
const CONFIG_ACS_ORDER = [PCI_ACS_DT, PCI_ACS_EC, PCI_ACS_UF, PCI_ACS_CR, PCI_ACS_RR, PCI_ACS_TB, PCI_ACS_SV];

/** `pci=config_acs=BITS@BDF` forcing all seven bits to `value`, so no bit depends on the firmware. */
export function configAcsOption(address: string, value: number): string {
  const bits = CONFIG_ACS_ORDER.map((b) => ((value & b) !== 0 ? '1' : '0')).join('');
  return `pci=config_acs=${bits}@${address}`;
}

/** A config_acs bit string for mask/flags: 1 set, 0 cleared, x kept; leading x's dropped. */
export function configAcsBits(mask: number, flags: number): string {
  return CONFIG_ACS_ORDER.map((b) => ((mask & b) === 0 ? 'x' : (flags & b) !== 0 ? '1' : '0')).join('').replace(/^x+(?=.)/, '');
}

/**
 * For each ACS edit, compare what Linux runs with after boot against what the edit asked for, and say
 * why they differ: an IOMMU driver makes pci_enable_acs() turn SV RR CR UF back on, and config_acs /
 * disable_acs_redir rewrite the register after that. The config_acs option that would pin it is offered.
 */
export function acsNotes(edits: readonly AcsEditRecord[], booted: BootedHost): string[] {
  const notes: string[] = [];
  for (const e of edits) {
    const dev = booted.host.topology.get(e.address);
    if (dev === undefined || parseAddress(e.address) === undefined) continue;
    const effective = dev.acsCtrlReg();
    if (effective === e.intended) continue;
    const why: string[] = [];
    const iommuOn = booted.options.iommu && booted.host.platform.iommu !== 'none';
    const reenabled = effective & ~e.intended & KERNEL_ENABLED & dev.acsCapReg();
    if (iommuOn && reenabled !== 0) why.push(`the IOMMU driver has pci_enable_acs() turn ${acsBitNames(reenabled)} back on wherever implemented`);
    const o = booted.options;
    const cmd = [
      ...o.disableAcsRedir.filter((s) => selectorMatches(s, dev)).map((s) => `pci=disable_acs_redir=${s.text}`),
      ...o.configAcs.filter((c) => selectorMatches(c.selector, dev)).map((c) => `pci=config_acs=${configAcsBits(c.mask, c.flags)}@${c.selector.text}`),
    ];
    if (cmd.length > 0) why.push(`${cmd.join(', ')} on the command line rewrite${cmd.length === 1 ? 's' : ''} it`);
    if (why.length === 0) why.push('the boot rewrites it');
    notes.push(`${e.what}: at boot Linux runs ${dev.shortBdf} with ACS Control ${acsBitNames(effective)}, not ${acsBitNames(e.intended)}: ${why.join('; ')}, so the groups do not see this edit. To keep it at boot, use cmdline:${configAcsOption(dev.shortBdf, e.intended)}`);
  }
  return notes;
}
