// Reserved regions of a device (Linux's iommu_get_resv_regions): IOVA ranges a paging domain must not map
// for it. On x86 the interrupt window 0xFEE00000-0xFEEFFFFF is an IOMMU_RESV_MSI region (intel-iommu's
// get_resv_regions): a write there is an interrupt message, never DMA (the machine routes it so). This
// model has no RMRRs, so there are no DIRECT or DIRECT_RELAXABLE regions; ARM's software MSI window
// (IOMMU_RESV_SW_MSI) does not apply to the units modelled here.

import { X86_MSI_WINDOW } from '../../hw/machine.ts';

export type ResvRegionType = 'direct' | 'direct-relaxable' | 'reserved' | 'msi' | 'sw-msi';

export interface ResvRegion {
  readonly start: number;
  readonly length: number;
  readonly type: ResvRegionType;
  /** IOMMU_READ / IOMMU_WRITE for direct regions; the MSI window is write-only. */
  readonly prot: { readonly read: boolean; readonly write: boolean };
}

/** The reserved regions of a device behind an x86 IOMMU (`x86`) or none. */
export function deviceResvRegions(x86: boolean): ResvRegion[] {
  if (!x86) return [];
  return [{ start: X86_MSI_WINDOW.base, length: X86_MSI_WINDOW.size, type: 'msi', prot: { read: false, write: true } }];
}
