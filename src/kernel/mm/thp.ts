// Transparent huge pages (mm/huge_memory.c): the system-wide mode of
// /sys/kernel/mm/transparent_hugepage/enabled and the per-VMA advice madvise() sets, which together decide
// whether an anonymous fault may allocate one order-9 folio and map it with a PMD entry.
//
// Default 'always': upstream mm/Kconfig makes TRANSPARENT_HUGEPAGE_ALWAYS the default of its "sysfs
// defaults" choice (distributions often pick madvise instead).

import { FOLIO_PAGES } from './frame-allocator.ts';

/** The enabled= setting: always, only on MADV_HUGEPAGE regions, or never. */
export type ThpMode = 'always' | 'madvise' | 'never';

/** VM_HUGEPAGE (MADV_HUGEPAGE), VM_NOHUGEPAGE (MADV_NOHUGEPAGE), or neither. */
export type ThpAdvice = 'none' | 'huge' | 'nohuge';

/** The sysfs knob, one object shared by every mm of a machine. */
export interface ThpSettings {
  enabled: ThpMode;
}

export const defaultThpSettings = (): ThpSettings => ({ enabled: 'always' });

/** Virtual pages a PMD entry maps (HPAGE_PMD_NR). */
export const PMD_PAGES = FOLIO_PAGES;

/** Index of the PMD (2 MiB slot) holding virtual page `vpn`. */
export const pmdIndex = (vpn: number): number => Math.floor(vpn / PMD_PAGES);

/** What the THP decision needs of a VMA. */
export interface ThpVma {
  readonly thp: ThpSettings;
  readonly thpAdvice: ThpAdvice;
  readonly shared: boolean;
  readonly file: unknown;
  readonly startVpn: number;
  readonly endVpn: number;
}

/**
 * thp_vma_allowable_order() for PMD order on an anonymous private VMA plus the fault's own check: the
 * mode allows it (always unless VM_NOHUGEPAGE; madvise only with VM_HUGEPAGE) and the whole 2 MiB slot of
 * `vpn` lies inside the VMA. Shared and file mappings keep 4 KiB pages here.
 */
export function thpAllowed(vma: ThpVma, vpn: number): boolean {
  if (vma.shared || vma.file !== null) return false;
  const mode = vma.thp.enabled;
  if (mode === 'never' || vma.thpAdvice === 'nohuge') return false;
  if (mode === 'madvise' && vma.thpAdvice !== 'huge') return false;
  const first = pmdIndex(vpn) * PMD_PAGES;
  return first >= vma.startVpn && first + PMD_PAGES <= vma.endVpn;
}
