import type { PciDev } from '../dev.ts';
import { PCI_DEV_FLAGS_ACS_ENABLED_QUIRK } from '../dev.ts';
import type { AcsOverride } from '../kernel-options.ts';
import {
  PCI_ACS_CR, PCI_ACS_DT, PCI_ACS_EC, PCI_ACS_RR, PCI_ACS_SV, PCI_ACS_TB, PCI_ACS_UF, PcieType,
} from '../regs.ts';

// Linux's pci_dev_acs_enabled[] (drivers/pci/quirks.c): device-specific answers to "are these ACS
// flags in effect?", consulted before the standard capability. The first entry whose function returns
// a verdict (not "no opinion", Linux's -ENOTTY) decides.

/** A quirk's verdict: true/false, or null for "no opinion" (-ENOTTY), letting the next entry decide. */
export type AcsVerdict = boolean | null;

export interface AcsQuirkContext {
  /** ACPI IVRS present (AMD IOMMU platform): pci_quirk_amd_sb_acs needs it. */
  readonly amdIvrs: boolean;
  readonly override: AcsOverride | null;
}

export interface AcsQuirk {
  /** Linux's function name, shown in explanations. */
  readonly name: string;
  readonly vendor: number;
  /** A device ID, or 'any'. */
  readonly device: number | 'any';
  readonly check: (dev: PciDev, flags: number, ctx: AcsQuirkContext) => AcsVerdict;
}

const ANY = 'any' as const;
const enabled = (req: number, ena: number): boolean => (req & ena) === req;

const VENDOR_INTEL = 0x8086;
const VENDOR_AMD = 0x1022;
const VENDOR_ATI = 0x1002;

/** pci_quirk_amd_sb_acs: SB7x0-9x0/FCH functions on the root bus, with IVRS, count as isolated. */
function amdSouthbridge(dev: PciDev, flags: number, ctx: AcsQuirkContext): AcsVerdict {
  if (!dev.multifunction || !dev.bus.isRoot() || !ctx.amdIvrs) return null;
  // The southbridge filters P2P itself; it provides no RR/CR, and EC/DT do not apply.
  const f = flags & (PCI_ACS_RR | PCI_ACS_CR | PCI_ACS_EC | PCI_ACS_DT);
  return enabled(f, PCI_ACS_RR | PCI_ACS_CR);
}

/** pci_quirk_mf_endpoint_acs: multifunction endpoints that do no internal peer-to-peer. */
function mfEndpoint(_dev: PciDev, flags: number): AcsVerdict {
  // SV, TB, RR, CR, UF and DT are provided in effect; EC must still be asked for explicitly.
  return enabled(flags, PCI_ACS_SV | PCI_ACS_TB | PCI_ACS_RR | PCI_ACS_CR | PCI_ACS_UF | PCI_ACS_DT);
}

/** pci_quirk_rciep_acs: Intel root-complex integrated endpoints cannot do P2P. */
function intelRciep(dev: PciDev, flags: number): AcsVerdict {
  if (!dev.isPcie() || dev.pcieType() !== PcieType.RcIntegratedEndpoint) return null;
  return enabled(flags, PCI_ACS_SV | PCI_ACS_RR | PCI_ACS_CR | PCI_ACS_UF);
}

const isRootOrDownstream = (dev: PciDev): boolean =>
  dev.isPcie() && (dev.pcieType() === PcieType.RootPort || dev.pcieType() === PcieType.DownstreamPort);

const isRootPort = (dev: PciDev): boolean => dev.isPcie() && dev.pcieType() === PcieType.RootPort;

/** Root ports documented by their vendor to isolate: SV|RR|CR|UF in effect. */
function isolatedRootPort(dev: PciDev, flags: number): AcsVerdict {
  if (!isRootPort(dev)) return null;
  return enabled(flags, PCI_ACS_SV | PCI_ACS_RR | PCI_ACS_CR | PCI_ACS_UF);
}

function anyPortIsolated(_dev: PciDev, flags: number): AcsVerdict {
  return enabled(flags, PCI_ACS_SV | PCI_ACS_RR | PCI_ACS_CR | PCI_ACS_UF);
}

/** Intel PCH root ports (Ibexpeak .. 9-series) that get ACS-equivalent isolation from an enable quirk. */
export function isIntelPchAcsRootPort(dev: PciDev): boolean {
  if (dev.vendor !== VENDOR_INTEL || !isRootPort(dev)) return false;
  const d = dev.device;
  // Ibexpeak, Cougarpoint, Pantherpoint, Lynxpoint-H/-LP, Wildcat Point; Patsburg and 9-series: even IDs.
  return (d >= 0x3b42 && d <= 0x3b51) || (d >= 0x1c10 && d <= 0x1c1f) || (d >= 0x1e10 && d <= 0x1e1f)
    || (d >= 0x8c10 && d <= 0x8c1f) || (d >= 0x9c10 && d <= 0x9c1b) || (d >= 0x9c90 && d <= 0x9c9b)
    || (d >= 0x1d10 && d <= 0x1d1e && (d & 1) === 0) || (d >= 0x8d10 && d <= 0x8d1e)
    || (d >= 0x8c90 && d <= 0x8c9e && (d & 1) === 0);
}

/** pci_quirk_intel_pch_acs: isolated only if the enable quirk succeeded (IOMMU on, RCBA reachable). */
function intelPch(dev: PciDev, flags: number): AcsVerdict {
  if (!isIntelPchAcsRootPort(dev)) return null;
  const provided = (dev.devFlags & PCI_DEV_FLAGS_ACS_ENABLED_QUIRK) !== 0 ? PCI_ACS_SV | PCI_ACS_RR | PCI_ACS_CR | PCI_ACS_UF : 0;
  return enabled(flags, provided);
}

/** Sunrise/Union Point and 7th-8th gen mobile PCH root ports: ACS laid out as dwords at +4 and +8. */
export function isIntelSptPchRootPort(dev: PciDev): boolean {
  if (dev.vendor !== VENDOR_INTEL || !isRootPort(dev)) return false;
  const d = dev.device;
  return (d >= 0xa110 && d <= 0xa11f) || (d >= 0xa167 && d <= 0xa16a) || (d >= 0xa290 && d <= 0xa29f)
    || (d >= 0xa2e7 && d <= 0xa2ee) || (d >= 0x9d10 && d <= 0x9d1b);
}

/** SPT dword control register offset (+8), as pci_quirk_intel_spt_pch_acs reads it. */
export const INTEL_SPT_ACS_CTRL = 0x08;

/** pci_quirk_intel_spt_pch_acs: the standard test, but on the dword capability and control registers. */
function intelSpt(dev: PciDev, flags: number): AcsVerdict {
  if (!isIntelSptPchRootPort(dev) || dev.acsCap === 0) return null;
  const cap = dev.config.read32(dev.acsCap + 4);
  const ctrl = dev.config.read32(dev.acsCap + INTEL_SPT_ACS_CTRL);
  const f = flags & (cap | PCI_ACS_EC);
  return (ctrl & f) === f;
}

/** pcie_acs_overrides (out of tree): the last {ANY, ANY} entry; never overrides a real ACS capability. */
function acsOverride(dev: PciDev, _flags: number, ctx: AcsQuirkContext): AcsVerdict {
  const o = ctx.override;
  if (o === null || !dev.isPcie() || dev.acsCap !== 0) return null;
  if (o.ids.some((id) => id.vendor === dev.vendor && id.device === dev.device)) return true;
  const type = dev.pcieType();
  if (o.downstream && (type === PcieType.DownstreamPort || type === PcieType.RootPort)) return true;
  if (o.multifunction && dev.multifunction && (type === PcieType.Endpoint || type === PcieType.UpstreamPort
    || type === PcieType.LegacyEndpoint || type === PcieType.RcIntegratedEndpoint)) return true;
  return null;
}

function range(from: number, to: number): number[] {
  const out: number[] = [];
  for (let d = from; d <= to; d++) out.push(d);
  return out;
}

const entries = (name: string, vendor: number, devices: ReadonlyArray<number> | 'any', check: AcsQuirk['check']): AcsQuirk[] =>
  devices === ANY ? [{ name, vendor, device: ANY, check }] : devices.map((device) => ({ name, vendor, device, check }));

/** The table, in Linux's order (first verdict wins). */
export const ACS_QUIRKS: readonly AcsQuirk[] = [
  ...entries('pci_quirk_amd_sb_acs', VENDOR_ATI, [0x4385, 0x439c, 0x4383, 0x439d, 0x4384, 0x4399], amdSouthbridge),
  ...entries('pci_quirk_amd_sb_acs', VENDOR_AMD, [0x780f, 0x7809], amdSouthbridge),
  ...entries('pci_quirk_mf_endpoint_acs', 0x1924, [0x0903, 0x0923, 0x0a03], mfEndpoint), // Solarflare
  ...entries('pci_quirk_mf_endpoint_acs', VENDOR_INTEL, [
    0x10c6, 0x10db, 0x10dd, 0x10e1, 0x10f1, 0x10f7, 0x10f8, 0x10f9, 0x10fa, 0x10fb, 0x10fc, 0x1507, 0x1514,
    0x151c, 0x1529, 0x152a, 0x154d, 0x154f, 0x1551, 0x1558, // 82598, 82599, X540
    0x1509, 0x150e, 0x150f, 0x1510, 0x1511, 0x1516, 0x1527, // 82580
    0x10c9, 0x10e6, 0x10e7, 0x10e8, 0x150a, 0x150d, 0x1518, 0x1526, // 82576
    0x10a7, 0x10a9, 0x10d6, // 82575
    0x1521, 0x1522, 0x1523, 0x1524, // I350
    0x105e, 0x105f, 0x1060, 0x10d9, 0x10da, 0x10a4, 0x10d5, 0x10a5, 0x10bc, // 82571
    0x15b7, 0x15b8, // I219
  ], mfEndpoint),
  ...entries('pci_quirk_mf_endpoint_acs', 0x19a2, [0x0710], mfEndpoint), // Emulex
  ...entries('pci_quirk_mf_endpoint_acs', 0x10df, [0x0720], mfEndpoint),
  ...entries('pci_quirk_mf_endpoint_acs', 0x177d, [0xa026, 0xa059, 0xa060], mfEndpoint), // Cavium
  ...entries('pci_quirk_rciep_acs', VENDOR_INTEL, ANY, intelRciep),
  ...entries('pci_quirk_qcom_rp_acs', 0x17cb, [0x0400, 0x0401, 0x0115, 0x0111, 0x0120], isolatedRootPort),
  ...entries('pci_quirk_qcom_rp_acs', 0x1dbf, [0x0401], isolatedRootPort), // HXT
  ...entries('pci_quirk_intel_pch_acs', VENDOR_INTEL, ANY, intelPch),
  ...entries('pci_quirk_intel_spt_pch_acs', VENDOR_INTEL, ANY, intelSpt),
  ...entries('pci_quirk_cavium_acs', 0x177d, ANY, (dev, flags) => {
    const d = dev.device;
    const known = (d >= 0xa000 && d <= 0xa7ff) || d === 0xaf84 || d === 0xb884;
    return known && isRootPort(dev) ? anyPortIsolated(dev, flags) : null;
  }),
  ...entries('pci_quirk_xgene_acs', 0x10e8, [0xe004], anyPortIsolated), // APM X-Gene
  ...entries('pci_quirk_xgene_acs', 0x1def, range(0xe005, 0xe00c), anyPortIsolated), // Ampere
  ...entries('pci_quirk_brcm_acs', 0x14e4, [0xd714], anyPortIsolated),
  ...entries('pci_quirk_loongson_acs', 0x0014, [0x3c09, 0x3c19, 0x3c29, 0x7a09, 0x7a19, 0x7a29, 0x7a39, 0x7a49, 0x7a59, 0x7a69], anyPortIsolated),
  ...entries('pci_quirk_al_acs', 0x1c36, [0x0031], isolatedRootPort), // Amazon Annapurna Labs
  ...entries('pci_quirk_zhaoxin_pcie_ports_acs', 0x1d17, ANY, (dev, flags) => {
    if (!isRootOrDownstream(dev)) return null;
    const d = dev.device;
    const known = (d >= 0x0710 && d <= 0x071e) || d === 0x0721 || (d >= 0x0723 && d <= 0x0752);
    return known ? anyPortIsolated(dev, flags) : false;
  }),
  ...entries('pci_quirk_mf_endpoint_acs', 0x1d17, [0x3038, 0x3104, 0x9083], mfEndpoint), // Zhaoxin
  { name: 'pcie_acs_overrides', vendor: -1, device: ANY, check: acsOverride },
];

/** Look the quirk table up for `dev`: the first verdict and the entry that gave it. */
export function acsQuirkVerdict(dev: PciDev, flags: number, ctx: AcsQuirkContext): { verdict: boolean; quirk: AcsQuirk } | null {
  for (const q of ACS_QUIRKS) {
    if (q.vendor !== -1 && q.vendor !== dev.vendor) continue;
    if (q.device !== ANY && q.device !== dev.device) continue;
    const verdict = q.check(dev, flags, ctx);
    if (verdict !== null) return { verdict, quirk: q };
  }
  return null;
}

