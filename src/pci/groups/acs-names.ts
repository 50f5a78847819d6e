import { PCI_ACS_CR, PCI_ACS_DT, PCI_ACS_EC, PCI_ACS_RR, PCI_ACS_SV, PCI_ACS_TB, PCI_ACS_UF } from '../regs.ts';

const NAMES: ReadonlyArray<[number, string]> = [
  [PCI_ACS_SV, 'SV'], [PCI_ACS_TB, 'TB'], [PCI_ACS_RR, 'RR'], [PCI_ACS_CR, 'CR'],
  [PCI_ACS_UF, 'UF'], [PCI_ACS_EC, 'EC'], [PCI_ACS_DT, 'DT'],
];

/** "SV RR CR UF" for a bit set; "none" for 0. */
export function acsBitNames(bits: number): string {
  const names = NAMES.filter(([bit]) => (bits & bit) !== 0).map(([, n]) => n);
  return names.length === 0 ? 'none' : names.join(' ');
}
