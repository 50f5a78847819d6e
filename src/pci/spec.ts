import { z } from 'zod';
import { parseAddress } from './address.ts';
import {
  PCI_ACS_CR, PCI_ACS_DT, PCI_ACS_EC, PCI_ACS_RR, PCI_ACS_SV, PCI_ACS_TB, PCI_ACS_UF, PcieType,
} from './regs.ts';

// The host description: what a YAML/JSON topology file says, and what the lspci importer produces.
// Strings of digits are hexadecimal (as lspci prints them); YAML numbers are numbers.

const hexNumber = (what: string, max: number) =>
  z.union([
    z.number().int().nonnegative(),
    z.string().regex(/^(0x)?[0-9a-fA-F]+$/, `${what} must be hexadecimal`).transform((s) => parseInt(s.replace(/^0x/i, ''), 16)),
  ]).refine((n) => n <= max, `${what} must be at most 0x${max.toString(16)}`);

const SIZE_UNITS: Readonly<Record<string, number>> = { '': 1, K: 1024, M: 1024 ** 2, G: 1024 ** 3, T: 1024 ** 4 };

/** A byte count: a number, or "64K", "16M", "2G". */
export const sizeSchema = z.union([
  z.number().int().positive(),
  z.string().regex(/^\d+[KMGT]?$/, 'size must look like 4096, 64K, 16M or 2G').transform((s) => {
    const unit = s.replace(/^\d+/, '');
    return parseInt(s, 10) * (SIZE_UNITS[unit] ?? 1);
  }),
]);

const addressSchema = z.string().refine((s) => parseAddress(s) !== undefined, 'address must be [dddd:]bb:dd.f');

const idPair = z.string().regex(/^[0-9a-fA-F]{4}:[0-9a-fA-F]{4}$/, 'IDs are written vvvv:dddd');

export const PCIE_TYPE_KEYS = {
  'endpoint': PcieType.Endpoint,
  'legacy-endpoint': PcieType.LegacyEndpoint,
  'root-port': PcieType.RootPort,
  'upstream-port': PcieType.UpstreamPort,
  'downstream-port': PcieType.DownstreamPort,
  'pcie-to-pci-bridge': PcieType.PcieToPciBridge,
  'pci-to-pcie-bridge': PcieType.PciToPcieBridge,
  'rc-integrated-endpoint': PcieType.RcIntegratedEndpoint,
  'rc-event-collector': PcieType.RcEventCollector,
} as const;
export type PcieTypeKey = keyof typeof PCIE_TYPE_KEYS;

export const ACS_BIT_NAMES = {
  SV: PCI_ACS_SV, TB: PCI_ACS_TB, RR: PCI_ACS_RR, CR: PCI_ACS_CR, UF: PCI_ACS_UF, EC: PCI_ACS_EC, DT: PCI_ACS_DT,
} as const;
export type AcsBitName = keyof typeof ACS_BIT_NAMES;

/** ACS bits: a list of names (SV TB RR CR UF EC DT), or a number/hex string. */
const acsBits = z.union([
  z.array(z.enum(Object.keys(ACS_BIT_NAMES) as [AcsBitName, ...AcsBitName[]]))
    .transform((names) => names.reduce((acc, n) => acc | ACS_BIT_NAMES[n], 0)),
  hexNumber('ACS bits', 0xffff),
]);

const offset = hexNumber('capability offset', 0xffc).optional();

export const barSpecSchema = z.object({
  index: z.number().int().min(0).max(5),
  type: z.enum(['mem32', 'mem64', 'io']).default('mem32'),
  prefetchable: z.boolean().default(false),
  base: hexNumber('BAR base', Number.MAX_SAFE_INTEGER).default(0),
  size: sizeSchema,
}).strict();
export type BarSpec = z.infer<typeof barSpecSchema>;

export const functionSpecSchema = z.object({
  address: addressSchema,
  /** vendor:device, e.g. "8086:1521". */
  id: idPair,
  subsystem: idPair.optional(),
  /** Base class and subclass, e.g. "0604"; prog-if apart. */
  class: hexNumber('class', 0xffff),
  progIf: hexNumber('prog-if', 0xff).default(0),
  revision: hexNumber('revision', 0xff).default(0),
  /** The description lspci prints, or any label; shown to people, never used by the algorithms. */
  name: z.string().optional(),
  /** Header-type multifunction bit; inferred from sibling functions of the slot when absent. */
  multifunction: z.boolean().optional(),
  bridge: z.object({
    primary: hexNumber('bus', 0xff).optional(),
    secondary: hexNumber('bus', 0xff),
    subordinate: hexNumber('bus', 0xff),
  }).strict().optional(),
  /** The PCI Express capability; absent means conventional PCI / PCI-X. */
  express: z.object({
    type: z.enum(Object.keys(PCIE_TYPE_KEYS) as [PcieTypeKey, ...PcieTypeKey[]]),
    version: z.number().int().min(1).max(2).default(2),
    slot: z.boolean().default(false),
    ariForwarding: z.boolean().default(false),
    offset,
  }).strict().optional(),
  acs: z.object({ cap: acsBits, ctl: acsBits.default(0), offset }).strict().optional(),
  ari: z.object({ nextFunction: z.number().int().min(0).max(255).default(0), offset }).strict().optional(),
  ats: z.object({ queueDepth: z.number().int().min(0).max(31).default(0), offset }).strict().optional(),
  pri: z.object({ outstanding: z.number().int().nonnegative().default(512), enabled: z.boolean().default(false), offset }).strict().optional(),
  pasid: z.object({
    width: z.number().int().min(1).max(20).default(20),
    exec: z.boolean().default(false),
    privileged: z.boolean().default(false),
    enabled: z.boolean().default(false),
    offset,
  }).strict().optional(),
  sriov: z.object({
    totalVfs: z.number().int().min(0).max(0xffff),
    numVfs: z.number().int().min(0).max(0xffff).default(0),
    vfOffset: z.number().int().min(0).max(0xffff),
    vfStride: z.number().int().min(0).max(0xffff).default(1),
    vfDevice: hexNumber('VF device ID', 0xffff),
    offset,
  }).strict().optional(),
  bars: z.array(barSpecSchema).default([]),
  /** The function of which this one is an SR-IOV virtual function. */
  virtfnOf: addressSchema.optional(),
  /** `IOMMU group: N` as a real kernel reported it: ground truth for --check. */
  observedGroup: z.number().int().nonnegative().optional(),
  /** The driver bound on the source machine ("Kernel driver in use"). */
  driver: z.string().optional(),
}).strict();
export type FunctionSpec = z.infer<typeof functionSpecSchema>;
export type FunctionSpecInput = z.input<typeof functionSpecSchema>;

export const platformSchema = z.object({
  /** The IOMMU driver whose device_group op forms the groups; 'none' means no IOMMU at all. */
  iommu: z.enum(['intel', 'amd', 'arm-smmu', 'virtio', 'none']).default('intel'),
  /** Intel DMAR units in DRHD table order: devices are probed unit by unit (see docs/groups.md). */
  dmarUnits: z.array(z.object({
    name: z.string().optional(),
    includeAll: z.boolean().default(false),
    /** Devices (and, for bridges, everything below them) the unit's device scope lists. */
    scope: z.array(addressSchema).default([]),
    /** Snoop control (ECAP.SC): the unit can enforce cache coherency on its domains. Default true. */
    snoopControl: z.boolean().optional(),
    /** Device-TLB support (ECAP.DT): ATS can be used by the devices of this unit. Default true. */
    deviceTlb: z.boolean().optional(),
  }).strict()).optional(),
  /** Functions the IOMMU does not translate for (no group); a platform default applies when absent. */
  uncovered: z.array(addressSchema).optional(),
  /**
   * The order of the PCI device list the IOMMU core walks: depth-first as scanned, or sorted by address
   * (x86 pci=bfsort, which Linux turns on by DMI for Dell PowerEdge and HP ProLiant machines). When
   * absent it is inferred: see docs/groups.md.
   */
  pciSort: z.enum(['depth-first', 'breadth-first']).optional(),
  /**
   * Whether the platform isolates MSIs (Linux's "isolated MSI": x86 interrupt remapping, the ARM GIC
   * ITS). Without it, iommufd refuses to bind a device and VFIO type1 to attach a group (EPERM) unless
   * allow_unsafe_interrupts is set. Absent: see interruptRemappingOf().
   */
  interruptRemapping: z.boolean().optional(),
  /** Firmware (IVRS/IORT) DMA aliases on the same bus, invisible in lspci: [device, alias]. */
  firmwareAliases: z.array(z.tuple([addressSchema, addressSchema])).default([]),
}).strict();
export type PlatformSpec = z.infer<typeof platformSchema>;

/**
 * Whether the platform's MSIs are isolated: the host file's `interruptRemapping`, else on for intel and
 * amd (interrupt remapping is enabled with the IOMMU) and arm-smmu (the ITS), off for virtio (an x86
 * guest without a remapping unit) and none.
 */
export function interruptRemappingOf(platform: Pick<PlatformSpec, 'iommu' | 'interruptRemapping'>): boolean {
  return platform.interruptRemapping ?? (platform.iommu === 'intel' || platform.iommu === 'amd' || platform.iommu === 'arm-smmu');
}

export const hostSpecSchema = z.object({
  name: z.string().default('unnamed host'),
  description: z.string().optional(),
  platform: platformSchema.default({ iommu: 'intel', firmwareAliases: [] }),
  kernel: z.object({
    version: z.string().optional(),
    /** The command line the source machine booted with, when known. */
    cmdline: z.string().optional(),
  }).strict().default({}),
  /**
   * Whether ACSCtl values are the firmware's (a synthetic host: the kernel enables ACS at boot) or
   * were read after boot (an lspci dump: the kernel already did; the firmware value is unknowable).
   */
  acsCtl: z.enum(['firmware', 'post-boot']).default('firmware'),
  functions: z.array(functionSpecSchema).min(1, 'a host needs at least one PCI function'),
}).strict();
export type HostSpec = z.infer<typeof hostSpecSchema>;
export type HostSpecInput = z.input<typeof hostSpecSchema>;
