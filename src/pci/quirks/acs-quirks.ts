import type { PciDev } from '../dev.ts';
import { PCI_DEV_FLAGS_ACS_ENABLED_QUIRK } from '../dev.ts';
import type { AcsOverride } from '../kernel-options.ts';
import {
  PCI_ACS_CR, PCI_ACS_DT, PCI_ACS_EC, PCI_ACS_RR, PCI_ACS_SV, PCI_ACS_TB, PCI_ACS_UF, PcieType,
} from '../regs.ts';
import {
  AMD_SB_AMD_IDS, AMD_SB_ATI_IDS, ANNAPURNA_IDS, BRCM_RP_IDS, CAVIUM_RP_IDS, expandIdSet, HXT_RP_IDS,
  inIdSet, INTEL_PCH_ACS_IDS, INTEL_SPT_PCH_IDS, LOONGSON_RP_IDS, MF_BROADCOM_IDS, MF_CAVIUM_IDS,
  MF_EMULEX_BE_IDS, MF_EMULEX_IDS, MF_INTEL_IDS, MF_SOLARFLARE_IDS, MF_ZHAOXIN_IDS, NXP_RP_IDS,
  QCOM_RP_IDS, QCOM_RP_IDS_V6_19, QCOM_RP_SINCE_HAMOA, VENDOR, WANGXUN_NIC_IDS, XGENE_AMCC_IDS,
  XGENE_AMPERE_IDS, ZHAOXIN_PORT_IDS, type IdSet,
} from './acs-quirk-ids.ts';

// Linux's pci_dev_acs_enabled[] (drivers/pci/quirks.c, checked against v6.18 and linux-next):
// device-specific answers to "are these ACS flags in effect?", which pci_acs_enabled() asks before
// looking at the standard capability. Entries are tried in table order; the first one whose function
// gives a verdict decides. A function that does not apply returns "no opinion" (Linux: a negative
// errno, -ENOTTY or -ENODEV) and the scan goes on. ID lists live in acs-quirk-ids.ts.

/** A quirk's verdict: true/false, or null for "no opinion" (-ENOTTY), letting the next entry decide. */
export type AcsVerdict = boolean | null;

export interface AcsQuirkContext {
  /** ACPI IVRS present (AMD IOMMU platform): pci_quirk_amd_sb_acs needs it. */
  readonly amdIvrs: boolean;
  readonly override: AcsOverride | null;
  /**
   * The kernel release being modelled ("6.17.3-arch1"), when known. Entries added to mainline after
   * the release are skipped; without it the newest table applies.
   */
  readonly kernelVersion?: string | null;
}

export interface AcsQuirk {
  /** Linux's function name, shown in explanations. */
  readonly name: string;
  /** A vendor ID, or -1 for any (only the out-of-tree override). */
  readonly vendor: number;
  /** A device ID, or 'any'. */
  readonly device: number | 'any';
  readonly check: (dev: PciDev, flags: number, ctx: AcsQuirkContext) => AcsVerdict;
  /** First mainline release ("major.minor") carrying the entry, for entries newer than v6.18. */
  readonly since?: string;
}

const ANY = 'any' as const;
/** Linux's pci_acs_ctrl_enabled(): every requested control is among those provided. */
const enabled = (req: number, provided: number): boolean => (req & provided) === req;
/** The four controls REQ_ACS_FLAGS asks for, which most "isolated port" quirks claim. */
const SV_RR_CR_UF = PCI_ACS_SV | PCI_ACS_RR | PCI_ACS_CR | PCI_ACS_UF;

const isPcieType = (dev: PciDev, ...types: PcieType[]): boolean => dev.isPcie() && types.includes(dev.pcieType());
const isRootPort = (dev: PciDev): boolean => isPcieType(dev, PcieType.RootPort);

/**
 * pci_quirk_amd_sb_acs: SB7x0-SB9x0/FCH functions. Only a multifunction device on a root bus of a
 * machine with an IVRS table qualifies (otherwise no opinion). Only RR, CR, EC and DT are judged,
 * and only RR and CR are provided: REQ_ACS_FLAGS (no EC/DT) passes, EC or DT fails.
 */
function amdSouthbridge(dev: PciDev, flags: number, ctx: AcsQuirkContext): AcsVerdict {
  if (!dev.multifunction || !dev.bus.isRoot() || !ctx.amdIvrs) return null;
  return enabled(flags & (PCI_ACS_RR | PCI_ACS_CR | PCI_ACS_EC | PCI_ACS_DT), PCI_ACS_RR | PCI_ACS_CR);
}

/**
 * pci_quirk_mf_endpoint_acs: listed devices count as providing SV, TB, RR, CR, UF and DT; only EC is
 * not provided. No port-type or multifunction test: the ID alone decides.
 */
function mfEndpoint(_dev: PciDev, flags: number): AcsVerdict {
  return enabled(flags, PCI_ACS_SV | PCI_ACS_TB | PCI_ACS_RR | PCI_ACS_CR | PCI_ACS_UF | PCI_ACS_DT);
}

/**
 * pci_quirk_rciep_acs: any Intel root-complex integrated endpoint (VT-d forbids untranslated RCiEP
 * peer-to-peer). Other Intel functions, conventional PCI ones included, get no opinion.
 */
function intelRciep(dev: PciDev, flags: number): AcsVerdict {
  if (!isPcieType(dev, PcieType.RcIntegratedEndpoint)) return null;
  return enabled(flags, SV_RR_CR_UF);
}

/**
 * The unconditional "isolated port" answer for a listed ID: pci_quirk_qcom_rp_acs,
 * pci_quirk_xgene_acs, pci_quirk_brcm_acs, pci_quirk_loongson_acs and pci_quirk_nxp_rp_acs. None of
 * them looks at the port type.
 */
function listedPortIsolated(_dev: PciDev, flags: number): AcsVerdict {
  return enabled(flags, SV_RR_CR_UF);
}

/** pci_quirk_al_acs: Annapurna Labs root ports are isolated; other functions get no opinion. */
function annapurnaRootPort(dev: PciDev, flags: number): AcsVerdict {
  if (!isRootPort(dev)) return null;
  return enabled(flags, SV_RR_CR_UF);
}

/** pci_quirk_cavium_acs: ThunderX root ports in the ID list are isolated; anything else, no opinion. */
function caviumRootPort(dev: PciDev, flags: number): AcsVerdict {
  if (!isRootPort(dev) || !inIdSet(CAVIUM_RP_IDS, dev.device)) return null;
  return enabled(flags, SV_RR_CR_UF);
}

/** pci_quirk_intel_pch_acs_match: a PCIe root port whose ID is in the PCH list. */
export function isIntelPchAcsRootPort(dev: PciDev): boolean {
  return dev.vendor === VENDOR.INTEL && isRootPort(dev) && inIdSet(INTEL_PCH_ACS_IDS, dev.device);
}

/**
 * pci_quirk_intel_pch_acs: isolated only when the enable quirk succeeded and set
 * PCI_DEV_FLAGS_ACS_ENABLED_QUIRK; without it nothing is provided, so only an empty request passes.
 */
function intelPch(dev: PciDev, flags: number): AcsVerdict {
  if (!isIntelPchAcsRootPort(dev)) return null;
  const provided = (dev.devFlags & PCI_DEV_FLAGS_ACS_ENABLED_QUIRK) !== 0 ? SV_RR_CR_UF : 0;
  return enabled(flags, provided);
}

/** pci_quirk_intel_spt_pch_acs_match: Sunrise/Union Point and 7th/8th-gen mobile PCH root ports. */
export function isIntelSptPchRootPort(dev: PciDev): boolean {
  return dev.vendor === VENDOR.INTEL && isRootPort(dev) && inIdSet(INTEL_SPT_PCH_IDS, dev.device);
}

/** Where those ports keep ACS Control: a dword at capability + 8 (the spec's word is at + 6). */
export const INTEL_SPT_ACS_CTRL = 0x08;

/**
 * pci_quirk_intel_spt_pch_acs: the standard test (unimplemented bits count as on, except EC) on the
 * dword registers. A matching port without an ACS capability gets no opinion.
 */
function intelSpt(dev: PciDev, flags: number): AcsVerdict {
  if (!isIntelSptPchRootPort(dev) || dev.acsCap === 0) return null;
  const cap = dev.config.read32(dev.acsCap + 4);
  const ctrl = dev.config.read32(dev.acsCap + INTEL_SPT_ACS_CTRL);
  const f = flags & (cap | PCI_ACS_EC);
  return (ctrl & f) === f;
}

/**
 * pci_quirk_zhaoxin_pcie_ports_acs: applies to every Zhaoxin root or downstream port. Listed ones are
 * isolated; any other such port gets a definite "not isolated" (future parts are expected to
 * implement real ACS). Non-port functions get no opinion.
 */
function zhaoxinPort(dev: PciDev, flags: number): AcsVerdict {
  if (!isPcieType(dev, PcieType.RootPort, PcieType.DownstreamPort)) return null;
  return inIdSet(ZHAOXIN_PORT_IDS, dev.device) ? enabled(flags, SV_RR_CR_UF) : false;
}

/**
 * pci_quirk_wangxun_nic_acs: applies to every Wangxun function. Listed NICs are isolated; every other
 * Wangxun ID (VFs included) gets a definite "not isolated", whatever its type.
 */
function wangxunNic(dev: PciDev, flags: number): AcsVerdict {
  return inIdSet(WANGXUN_NIC_IDS, dev.device) ? enabled(flags, SV_RR_CR_UF) : false;
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

/** One table entry per ID, as Linux lists them. */
function entries(name: string, vendor: number, devices: IdSet | typeof ANY, check: AcsQuirk['check'], since?: string): AcsQuirk[] {
  const ids: Array<number | typeof ANY> = devices === ANY ? [ANY] : expandIdSet(devices);
  return ids.map((device) => (since === undefined ? { name, vendor, device, check } : { name, vendor, device, check, since }));
}

const MF = 'pci_quirk_mf_endpoint_acs';

/** The table, in Linux's order (first verdict wins). */
export const ACS_QUIRKS: readonly AcsQuirk[] = [
  ...entries('pci_quirk_amd_sb_acs', VENDOR.ATI, AMD_SB_ATI_IDS, amdSouthbridge),
  ...entries('pci_quirk_amd_sb_acs', VENDOR.AMD, AMD_SB_AMD_IDS, amdSouthbridge),
  ...entries(MF, VENDOR.SOLARFLARE, MF_SOLARFLARE_IDS, mfEndpoint),
  ...entries(MF, VENDOR.INTEL, MF_INTEL_IDS, mfEndpoint),
  ...entries('pci_quirk_rciep_acs', VENDOR.INTEL, ANY, intelRciep),
  ...entries('pci_quirk_qcom_rp_acs', VENDOR.QCOM, QCOM_RP_IDS, listedPortIsolated),
  ...entries('pci_quirk_qcom_rp_acs', VENDOR.QCOM, QCOM_RP_IDS_V6_19, listedPortIsolated, QCOM_RP_SINCE_HAMOA),
  ...entries('pci_quirk_qcom_rp_acs', VENDOR.HXT, HXT_RP_IDS, listedPortIsolated),
  ...entries('pci_quirk_intel_pch_acs', VENDOR.INTEL, ANY, intelPch),
  ...entries('pci_quirk_intel_spt_pch_acs', VENDOR.INTEL, ANY, intelSpt),
  ...entries(MF, VENDOR.EMULEX_BE, MF_EMULEX_BE_IDS, mfEndpoint),
  ...entries(MF, VENDOR.EMULEX, MF_EMULEX_IDS, mfEndpoint),
  ...entries('pci_quirk_cavium_acs', VENDOR.CAVIUM, ANY, caviumRootPort),
  ...entries(MF, VENDOR.CAVIUM, MF_CAVIUM_IDS, mfEndpoint),
  ...entries('pci_quirk_xgene_acs', VENDOR.AMCC, XGENE_AMCC_IDS, listedPortIsolated),
  ...entries('pci_quirk_xgene_acs', VENDOR.AMPERE, XGENE_AMPERE_IDS, listedPortIsolated),
  ...entries(MF, VENDOR.BROADCOM, MF_BROADCOM_IDS, mfEndpoint),
  ...entries('pci_quirk_brcm_acs', VENDOR.BROADCOM, BRCM_RP_IDS, listedPortIsolated),
  ...entries('pci_quirk_loongson_acs', VENDOR.LOONGSON, LOONGSON_RP_IDS, listedPortIsolated),
  ...entries('pci_quirk_al_acs', VENDOR.ANNAPURNA, ANNAPURNA_IDS, annapurnaRootPort),
  ...entries(MF, VENDOR.ZHAOXIN, MF_ZHAOXIN_IDS, mfEndpoint),
  ...entries('pci_quirk_nxp_rp_acs', VENDOR.NXP, NXP_RP_IDS, listedPortIsolated),
  ...entries('pci_quirk_zhaoxin_pcie_ports_acs', VENDOR.ZHAOXIN, ANY, zhaoxinPort),
  ...entries('pci_quirk_wangxun_nic_acs', VENDOR.WANGXUN, ANY, wangxunNic),
  { name: 'pcie_acs_overrides', vendor: -1, device: ANY, check: acsOverride },
];

/** "6.17.3-arch1-1" -> [6, 17]; null when it does not start with major.minor. */
function parseRelease(release: string): [number, number] | null {
  const m = /^\s*v?(\d+)\.(\d+)/.exec(release);
  return m === null ? null : [Number(m[1]), Number(m[2])];
}

/** Whether an entry exists in the modelled kernel: unknown releases get the newest table. */
function presentIn(q: AcsQuirk, kernelVersion: string | null | undefined): boolean {
  if (q.since === undefined || kernelVersion === undefined || kernelVersion === null) return true;
  const have = parseRelease(kernelVersion);
  const need = parseRelease(q.since);
  if (have === null || need === null) return true;
  return have[0] > need[0] || (have[0] === need[0] && have[1] >= need[1]);
}

// The table split by vendor, each list in table order with the any-vendor entries merged in where
// they stand, so a lookup scans only what can match.
const byVendor = new Map<number, AcsQuirk[]>();
for (const q of ACS_QUIRKS) {
  if (q.vendor !== -1 && !byVendor.has(q.vendor)) byVendor.set(q.vendor, ACS_QUIRKS.filter((e) => e.vendor === q.vendor || e.vendor === -1));
}
const anyVendor = ACS_QUIRKS.filter((q) => q.vendor === -1);

/** pci_dev_specific_acs_enabled(): the first verdict for `dev` and the entry that gave it. */
export function acsQuirkVerdict(dev: PciDev, flags: number, ctx: AcsQuirkContext): { verdict: boolean; quirk: AcsQuirk } | null {
  for (const q of byVendor.get(dev.vendor) ?? anyVendor) {
    if (q.device !== ANY && q.device !== dev.device) continue;
    if (!presentIn(q, ctx.kernelVersion)) continue;
    const verdict = q.check(dev, flags, ctx);
    if (verdict !== null) return { verdict, quirk: q };
  }
  return null;
}
