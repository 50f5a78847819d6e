import type { RawFunction } from './raw.ts';
import type { Warnings } from './warnings.ts';

const VENDOR_INTEL = 0x8086;
const VENDOR_AMD = 0x1022;
/** Hygon Dhyana: AMD's IOMMU design (amd_iommu drives it). */
const VENDOR_HYGON = 0x1d94;
const CLASS_HOST_BRIDGE = 0x0600;
const CLASS_IOMMU = 0x0806;

/**
 * Which IOMMU driver formed the groups. An AMD IOMMU is itself a PCI function (class 0806) on the
 * root bus; Intel VT-d is not, so the 00:00.0 host bridge's vendor is the next best evidence.
 */
export function detectIommu(fns: readonly RawFunction[], observedGroups: boolean, warnings: Warnings): 'intel' | 'amd' {
  const amdLike = (v: number): boolean => v === VENDOR_AMD || v === VENDOR_HYGON;
  if (fns.some((f) => amdLike(f.header.vendor) && f.header.classCode === CLASS_IOMMU)) return 'amd';
  const host = fns.find((f) => f.header.address.domain === 0 && f.header.address.bus === 0 && f.header.address.devfn === 0
    && f.header.classCode === CLASS_HOST_BRIDGE);
  if (host !== undefined && amdLike(host.header.vendor)) return 'amd';
  if (host !== undefined && host.header.vendor === VENDOR_INTEL) return 'intel';
  warnings.add(`the IOMMU vendor could not be told from the dump (no AMD IOMMU function, no Intel or AMD host bridge at 00:00.0)${
    observedGroups ? '' : ' and it shows no IOMMU groups'}; assuming Intel VT-d`);
  return 'intel';
}
