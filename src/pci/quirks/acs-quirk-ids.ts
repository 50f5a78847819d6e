// Device-ID data for the ACS quirk table (acs-quirks.ts), transcribed as data from the lists in
// Linux's drivers/pci/quirks.c (pci_dev_acs_enabled[] and the match helpers it calls). Checked
// against the v6.18 tree and linux-next; see acs-quirks.ts for what each list feeds.
//
// An ID set is a list of single IDs and inclusive [from, to] ranges.

export type IdSet = ReadonlyArray<number | readonly [number, number]>;

/** Whether `id` is in an ID set. */
export function inIdSet(set: IdSet, id: number): boolean {
  return set.some((e) => (typeof e === 'number' ? e === id : id >= e[0] && id <= e[1]));
}

/** Every single ID of a set, in order (ranges expanded). */
export function expandIdSet(set: IdSet): number[] {
  const out: number[] = [];
  for (const e of set) {
    if (typeof e === 'number') out.push(e);
    else for (let id = e[0]; id <= e[1]; id++) out.push(id);
  }
  return out;
}

export const VENDOR = {
  ATI: 0x1002,
  AMD: 0x1022,
  INTEL: 0x8086,
  SOLARFLARE: 0x1924,
  QCOM: 0x17cb,
  HXT: 0x1dbf,
  EMULEX_BE: 0x19a2,
  EMULEX: 0x10df,
  CAVIUM: 0x177d,
  AMCC: 0x10e8,
  AMPERE: 0x1def,
  BROADCOM: 0x14e4,
  LOONGSON: 0x0014,
  ANNAPURNA: 0x1c36,
  ZHAOXIN: 0x1d17,
  /** Linux names this both NXP and FREESCALE (the same 0x1957). */
  NXP: 0x1957,
  WANGXUN: 0x8088,
} as const;

// --- pci_quirk_amd_sb_acs -----------------------------------------------------------------------

/** SB7x0/SB8x0/SB9x0 functions (SMBus, IDE, HDA, LPC, PCI bridge, OHCI) under the ATI vendor ID. */
export const AMD_SB_ATI_IDS: IdSet = [0x4385, 0x439c, 0x4383, 0x439d, 0x4384, 0x4399];
/** FCH PCI bridge and OHCI controller. */
export const AMD_SB_AMD_IDS: IdSet = [0x780f, 0x7809];

// --- pci_quirk_mf_endpoint_acs ------------------------------------------------------------------
// Multifunction devices whose vendor vouches that functions never talk to each other directly.
// The lists are split by where they sit in Linux's table, because their position matters.

export const MF_SOLARFLARE_IDS: IdSet = [0x0903, 0x0923, 0x0a03];

/** Intel Ethernet, in table order. X550, X710 (i40e) and the 82571 quad-port parts are not listed. */
export const MF_INTEL_IDS: IdSet = [
  // 82598 / 82599 / X540 (ixgbe) parts
  0x10c6, 0x10db, 0x10dd, 0x10e1, 0x10f1, 0x10f7, 0x10f8, 0x10f9, 0x10fa, 0x10fb, 0x10fc,
  0x1507, 0x1514, 0x151c, 0x1529, 0x152a, 0x154d, 0x154f, 0x1551, 0x1558,
  // 82580
  0x1509, 0x150e, 0x150f, 0x1510, 0x1511, 0x1516, 0x1527,
  // 82576
  0x10c9, 0x10e6, 0x10e7, 0x10e8, 0x150a, 0x150d, 0x1518, 0x1526,
  // 82575
  0x10a7, 0x10a9, 0x10d6,
  // I350
  0x1521, 0x1522, 0x1523, 0x1524,
  // 82571, dual-port only: the quad-port cards sit behind a switch without ACS
  0x105e, 0x105f, 0x1060, 0x10d9,
  // I219
  0x15b7, 0x15b8,
];

/** Emulex BE3-R (19a2:0710) and Skyhawk-R (10df:0720); they come after the Intel PCH entries. */
export const MF_EMULEX_BE_IDS: IdSet = [0x0710];
export const MF_EMULEX_IDS: IdSet = [0x0720];

export const MF_CAVIUM_IDS: IdSet = [0xa026, 0xa059, 0xa060];

/** Broadcom NetXtreme-E/BCM5760X NICs. */
export const MF_BROADCOM_IDS: IdSet = [0x16d7, 0x1750, 0x1751, 0x1752, 0x1760, 0x1761, 0x1762, 0x1763];

export const MF_ZHAOXIN_IDS: IdSet = [0x3038, 0x3104, 0x9083];

// --- pci_quirk_qcom_rp_acs ----------------------------------------------------------------------

/** QDF2xxx (0400, 0401) and SA8775P (0115) root ports. */
export const QCOM_RP_IDS: IdSet = [0x0400, 0x0401, 0x0115];
/**
 * Hamoa (0111, the X1E80100 family) and Glymur (0120): in linux-next and later trees, not in v6.18.
 * They sit right after 0115 in the table.
 */
export const QCOM_RP_IDS_V6_19: IdSet = [0x0111, 0x0120];
export const QCOM_RP_SINCE_HAMOA = '6.19';
/** HXT SD4800, which shares the QDF2xxx design. */
export const HXT_RP_IDS: IdSet = [0x0401];

// --- pci_quirk_intel_pch_acs / pci_quirk_enable_intel_pch_acs ------------------------------------

/** PCH root ports with ACS-like isolation but no ACS capability (Linux's pci_quirk_intel_pch_acs_ids). */
export const INTEL_PCH_ACS_IDS: IdSet = [
  [0x3b42, 0x3b51], // Ibex Peak
  [0x1c10, 0x1c1f], // Cougar Point
  [0x1e10, 0x1e1f], // Panther Point
  [0x8c10, 0x8c1f], // Lynx Point-H
  [0x9c10, 0x9c1b], // Lynx Point-LP
  [0x9c90, 0x9c9b], // Wildcat Point
  0x1d10, 0x1d12, 0x1d14, 0x1d16, 0x1d18, 0x1d1a, 0x1d1c, 0x1d1e, // Patsburg (X79): even IDs only
  [0x8d10, 0x8d1e], // Wellsburg (X99): 8d1f is not listed
  0x8c90, 0x8c92, 0x8c94, 0x8c96, 0x8c98, 0x8c9a, 0x8c9c, 0x8c9e, // 9-series: even IDs only
];

// --- pci_quirk_intel_spt_pch_acs ----------------------------------------------------------------

/** Root ports whose ACS capability/control registers are dwords (control at +8). */
export const INTEL_SPT_PCH_IDS: IdSet = [
  [0xa110, 0xa11f], [0xa167, 0xa16a], // Sunrise Point
  [0xa290, 0xa29f], [0xa2e7, 0xa2ee], // Union Point
  [0x9d10, 0x9d1b], // 7th/8th generation mobile
];

// --- pci_quirk_cavium_acs -----------------------------------------------------------------------

/** ThunderX1 (the whole a000-a7ff block), ThunderX2 (af84) and ThunderX3 (b884) root ports. */
export const CAVIUM_RP_IDS: IdSet = [[0xa000, 0xa7ff], 0xaf84, 0xb884];

// --- pci_quirk_xgene_acs ------------------------------------------------------------------------

export const XGENE_AMCC_IDS: IdSet = [0xe004];
export const XGENE_AMPERE_IDS: IdSet = [[0xe005, 0xe00c]];

// --- pci_quirk_brcm_acs -------------------------------------------------------------------------

/** iProc PAXB root port. */
export const BRCM_RP_IDS: IdSet = [0xd714];

// --- pci_quirk_loongson_acs ---------------------------------------------------------------------

export const LOONGSON_RP_IDS: IdSet = [
  0x3c09, 0x3c19, 0x3c29, 0x7a09, 0x7a19, 0x7a29, 0x7a39, 0x7a49, 0x7a59, 0x7a69,
];

// --- pci_quirk_al_acs ---------------------------------------------------------------------------

export const ANNAPURNA_IDS: IdSet = [0x0031];

// --- pci_quirk_nxp_rp_acs -----------------------------------------------------------------------

/** Layerscape LX2xx0/LX2xx2 root ports (16/12/8-core variants of each SKU), in table order. */
export const NXP_RP_IDS: IdSet = [
  0x8d81, 0x8da1, 0x8d83, // LX2xx0A
  0x8d80, 0x8da0, 0x8d82, // LX2xx0C
  0x8d90, 0x8db0, 0x8d92, // LX2xx0E
  0x8d91, 0x8db1, 0x8d93, // LX2xx0N
  0x8d89, 0x8da9, 0x8d8b, // LX2xx2A
  0x8d88, 0x8da8, 0x8d8a, // LX2xx2C
  0x8d98, 0x8db8, 0x8d9a, // LX2xx2E
  0x8d99, 0x8db9, 0x8d9b, // LX2xx2N
];

// --- pci_quirk_zhaoxin_pcie_ports_acs -----------------------------------------------------------

/** Root and downstream ports treated as isolated; other Zhaoxin ports get a definite "no". */
export const ZHAOXIN_PORT_IDS: IdSet = [[0x0710, 0x071e], 0x0721, [0x0723, 0x0752]];

// --- pci_quirk_wangxun_nic_acs ------------------------------------------------------------------

/** SFxxx 1G (em), RP1000/RP2000 10G (sp), FF5xxx 40G/25G/10G (aml); other Wangxun IDs get a "no". */
export const WANGXUN_NIC_IDS: IdSet = [
  [0x0100, 0x010f], // em
  0x1001, 0x2001, // sp
  0x5010, 0x5025, 0x5040, 0x5110, 0x5125, 0x5140, // aml
];
