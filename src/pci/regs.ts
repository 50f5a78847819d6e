// PCI and PCI Express register offsets, capability IDs and bit values (PCI Local Bus 3.0, PCIe Base 6.0),
// named after include/uapi/linux/pci_regs.h so a reader can hold both side by side.

export const PCI_CFG_SPACE_SIZE = 256;
export const PCI_CFG_SPACE_EXP_SIZE = 4096;

export const PCI_VENDOR_ID = 0x00;
export const PCI_DEVICE_ID = 0x02;
export const PCI_COMMAND = 0x04;
export const PCI_STATUS = 0x06;
export const PCI_STATUS_CAP_LIST = 0x10;
export const PCI_CLASS_REVISION = 0x08;
export const PCI_REVISION_ID = 0x08;
export const PCI_CLASS_PROG = 0x09;
export const PCI_CLASS_DEVICE = 0x0a;
export const PCI_HEADER_TYPE = 0x0e;
export const PCI_HEADER_TYPE_MASK = 0x7f;
export const PCI_HEADER_TYPE_MFD = 0x80;
export const PCI_HEADER_TYPE_NORMAL = 0;
export const PCI_HEADER_TYPE_BRIDGE = 1;
export const PCI_BASE_ADDRESS_0 = 0x10;
export const PCI_BASE_ADDRESS_SPACE_IO = 0x01;
export const PCI_BASE_ADDRESS_MEM_TYPE_64 = 0x04;
export const PCI_BASE_ADDRESS_MEM_PREFETCH = 0x08;
export const PCI_SUBSYSTEM_VENDOR_ID = 0x2c;
export const PCI_SUBSYSTEM_ID = 0x2e;
export const PCI_CAPABILITY_LIST = 0x34;
export const PCI_INTERRUPT_PIN = 0x3d;

// Type 1 (bridge) header.
export const PCI_PRIMARY_BUS = 0x18;
export const PCI_SECONDARY_BUS = 0x19;
export const PCI_SUBORDINATE_BUS = 0x1a;
export const PCI_BRIDGE_CONTROL = 0x3e;

// Standard capability IDs.
export const PCI_CAP_ID_PM = 0x01;
export const PCI_CAP_ID_MSI = 0x05;
export const PCI_CAP_ID_EXP = 0x10;
export const PCI_CAP_ID_MSIX = 0x11;

// PCI Express capability.
export const PCI_EXP_FLAGS = 0x02;
export const PCI_EXP_FLAGS_VERS = 0x000f;
export const PCI_EXP_FLAGS_TYPE = 0x00f0;
export const PCI_EXP_FLAGS_SLOT = 0x0100;
export const PCI_EXP_DEVCAP = 0x04;
export const PCI_EXP_DEVCAP2 = 0x24;
export const PCI_EXP_DEVCAP2_ARI = 0x20;
export const PCI_EXP_DEVCTL2 = 0x28;
export const PCI_EXP_DEVCTL2_ARI = 0x20;
export const PCI_EXP_CAP_SIZEOF_V2 = 0x3c;

/** PCIe device/port type, PCI_EXP_FLAGS bits 7:4. */
export const PcieType = {
  Endpoint: 0x0,
  LegacyEndpoint: 0x1,
  RootPort: 0x4,
  UpstreamPort: 0x5,
  DownstreamPort: 0x6,
  PcieToPciBridge: 0x7,
  PciToPcieBridge: 0x8,
  RcIntegratedEndpoint: 0x9,
  RcEventCollector: 0xa,
} as const;
export type PcieType = (typeof PcieType)[keyof typeof PcieType];

/** Linux's names for the port types, as lspci prints them after "Express (vN)". */
export const PCIE_TYPE_NAMES: Readonly<Record<PcieType, string>> = {
  [PcieType.Endpoint]: 'Endpoint',
  [PcieType.LegacyEndpoint]: 'Legacy Endpoint',
  [PcieType.RootPort]: 'Root Port',
  [PcieType.UpstreamPort]: 'Upstream Port',
  [PcieType.DownstreamPort]: 'Downstream Port',
  [PcieType.PcieToPciBridge]: 'PCI-Express to PCI/PCI-X Bridge',
  [PcieType.PciToPcieBridge]: 'PCI/PCI-X to PCI-Express Bridge',
  [PcieType.RcIntegratedEndpoint]: 'Root Complex Integrated Endpoint',
  [PcieType.RcEventCollector]: 'Root Complex Event Collector',
};

// Extended capability IDs.
export const PCI_EXT_CAP_ID_ERR = 0x01;
export const PCI_EXT_CAP_ID_ACS = 0x0d;
export const PCI_EXT_CAP_ID_ARI = 0x0e;
export const PCI_EXT_CAP_ID_ATS = 0x0f;
export const PCI_EXT_CAP_ID_SRIOV = 0x10;
export const PCI_EXT_CAP_ID_PRI = 0x13;
export const PCI_EXT_CAP_ID_PASID = 0x1b;

// ACS extended capability: capability register u16 at +4, control u16 at +6.
export const PCI_ACS_CAP = 0x04;
export const PCI_ACS_CTRL = 0x06;
export const PCI_ACS_SV = 0x01;
export const PCI_ACS_TB = 0x02;
export const PCI_ACS_RR = 0x04;
export const PCI_ACS_CR = 0x08;
export const PCI_ACS_UF = 0x10;
export const PCI_ACS_EC = 0x20;
export const PCI_ACS_DT = 0x40;
export const PCI_ACS_ENHANCED = 0x80;
/** All seven classic ACS bits. */
export const PCI_ACS_ALL = 0x7f;
/** iommu.c's REQ_ACS_FLAGS: no RID spoofing, no redirected requests or completions, all upstream. */
export const REQ_ACS_FLAGS = PCI_ACS_SV | PCI_ACS_RR | PCI_ACS_CR | PCI_ACS_UF;

// ARI: capability u16 at +4 (next function number in bits 15:8).
export const PCI_ARI_CAP = 0x04;
// ATS: capability u16 at +4, control u16 at +6.
export const PCI_ATS_CAP = 0x04;
export const PCI_ATS_CTRL = 0x06;
// PRI: control u16 +4, status u16 +6, outstanding request capacity u32 +8, allocation u32 +0xc.
export const PCI_PRI_CTRL = 0x04;
export const PCI_PRI_STATUS = 0x06;
export const PCI_PRI_MAX_REQ = 0x08;
export const PCI_PRI_ALLOC_REQ = 0x0c;
// PASID: capability u16 +4 (bit 1 exec, bit 2 privileged, bits 12:8 max width), control u16 +6.
export const PCI_PASID_CAP = 0x04;
export const PCI_PASID_CTRL = 0x06;
export const PCI_PASID_CAP_EXEC = 0x02;
export const PCI_PASID_CAP_PRIV = 0x04;
// SR-IOV.
export const PCI_SRIOV_CAP = 0x04;
export const PCI_SRIOV_CTRL = 0x08;
export const PCI_SRIOV_CTRL_VFE = 0x01;
export const PCI_SRIOV_CTRL_ARI = 0x10;
export const PCI_SRIOV_INITIAL_VF = 0x0c;
export const PCI_SRIOV_TOTAL_VF = 0x0e;
export const PCI_SRIOV_NUM_VF = 0x10;
export const PCI_SRIOV_VF_OFFSET = 0x14;
export const PCI_SRIOV_VF_STRIDE = 0x16;
export const PCI_SRIOV_VF_DID = 0x1a;
export const PCI_SRIOV_BAR = 0x24;

/** Size of each extended capability body the synthesiser lays out (header included). */
export const EXT_CAP_SIZES: Readonly<Record<number, number>> = {
  [PCI_EXT_CAP_ID_ACS]: 0x08,
  [PCI_EXT_CAP_ID_ARI]: 0x08,
  [PCI_EXT_CAP_ID_ATS]: 0x08,
  [PCI_EXT_CAP_ID_SRIOV]: 0x40,
  [PCI_EXT_CAP_ID_PRI]: 0x10,
  [PCI_EXT_CAP_ID_PASID]: 0x08,
};
