import { parseAddress } from '../address.ts';
import type { BootedHost } from '../boot.ts';
import type { PciDev } from '../dev.ts';
import type { Host } from '../host.ts';
import { PCI_SUBSYSTEM_VENDOR_ID } from '../regs.ts';
import type { PlatformSpec } from '../spec.ts';
import type { UncoveredDevice } from './types.ts';

/** A DMAR unit as Linux lists it: specific units in reverse table order, include-all ones last. */
export interface ProbeUnit {
  readonly name: string;
  readonly includeAll: boolean;
  readonly scope: readonly string[];
  /** The host file's per-unit capabilities (ECAP.SC, ECAP.DT), when it gives them. */
  readonly snoopControl?: boolean;
  readonly deviceTlb?: boolean;
}

export interface ProbePlan {
  /** Devices in the order the IOMMU core probes them (and so allocates group IDs). */
  readonly order: readonly PciDev[];
  readonly uncovered: readonly UncoveredDevice[];
  /** Intel only: the DMAR units in registration order, and whether they were inferred. */
  readonly units: readonly ProbeUnit[];
  readonly unitsInferred: boolean;
  /** The device list order, and why. */
  readonly sort: PciSort;
}

export interface PciSort {
  readonly order: 'depth-first' | 'breadth-first';
  readonly source: 'cmdline' | 'host description' | 'inferred' | 'default';
  readonly why: string;
}

const CLASS_IOMMU = 0x0806;
const CLASS_HOST_BRIDGE = 0x0600;
const VENDOR_AMD = 0x1022;
const VENDOR_INTEL = 0x8086;

/**
 * Which devices the IOMMU covers, and in which order bus_iommu_probe() reaches them: registration order
 * (each bus's functions, then each bridge's bus depth-first), unit by unit on Intel, where a device whose
 * DMAR unit is not yet registered fails its probe and is retried when that unit registers.
 */
export function planProbe(booted: BootedHost, unitsOverride?: readonly ProbeUnit[], sortOverride?: PciSort['order']): ProbePlan {
  const { host, options } = booted;
  const sort: PciSort = sortOverride !== undefined ? { order: sortOverride, source: 'cmdline', why: 'chosen for this run' } : pciSortOf(booted);
  const all = sort.order === 'breadth-first' ? breadthFirst(host.topology.devices()) : host.topology.devices();
  if (!options.iommu || host.platform.iommu === 'none') {
    const reason = host.platform.iommu === 'none' ? 'the host has no IOMMU' : `the IOMMU is off (${options.cmdline})`;
    return { order: [], uncovered: all.map((device) => ({ device, reason })), units: [], unitsInferred: false, sort };
  }
  const uncovered: UncoveredDevice[] = [];
  const explicit = host.platform.uncovered?.map((a) => parseAddress(a)) ?? null;
  const covered: PciDev[] = [];
  for (const dev of all) {
    const reason = explicit !== null
      ? (explicit.some((a) => a !== undefined && a.domain === dev.domain && a.bus === dev.busNumber && a.devfn === dev.devfn) ? 'listed as not covered by the IOMMU in the host description' : null)
      : defaultUncoveredReason(dev, host.platform);
    if (reason === null) covered.push(dev);
    else uncovered.push({ device: dev, reason });
  }
  if (host.platform.iommu !== 'intel') return { order: covered, uncovered, units: [], unitsInferred: false, sort };

  const declared = host.platform.dmarUnits;
  const units = unitsOverride ?? (declared !== undefined ? linuxUnitOrder(declared) : inferDmarUnits(host));
  const unitOf = new Map<PciDev, number>();
  const order: PciDev[] = [];
  const remaining: PciDev[] = [];
  for (const dev of covered) {
    const u = units.findIndex((unit) => unit.includeAll || unit.scope.some((s) => inScope(dev, s)));
    if (u < 0) uncovered.push({ device: dev, reason: 'outside every DMAR unit\'s device scope' });
    else { unitOf.set(dev, u); remaining.push(dev); }
  }
  for (let u = 0; u < units.length; u++) {
    for (const dev of remaining) if (unitOf.get(dev) === u) order.push(dev);
  }
  return { order, uncovered, units, unitsInferred: unitsOverride === undefined && declared === undefined, sort };
}

/** dmar_register_drhd_unit(): specific units go to the list head (reversing them), include-all to the tail. */
export function linuxUnitOrder(units: NonNullable<PlatformSpec['dmarUnits']>): ProbeUnit[] {
  const caps = (u: (typeof units)[number]): Pick<ProbeUnit, 'snoopControl' | 'deviceTlb'> => ({
    ...(u.snoopControl !== undefined ? { snoopControl: u.snoopControl } : {}),
    ...(u.deviceTlb !== undefined ? { deviceTlb: u.deviceTlb } : {}),
  });
  const specific = units.filter((u) => !u.includeAll).map((u, i): ProbeUnit => ({ name: u.name ?? `dmar${i}`, includeAll: false, scope: u.scope, ...caps(u) }));
  const all = units.filter((u) => u.includeAll).map((u, i): ProbeUnit => ({ name: u.name ?? `dmar-all${i}`, includeAll: true, scope: u.scope, ...caps(u) }));
  return [...specific.reverse(), ...all];
}

/** A scope entry names a device; a bridge entry also covers every bus below it. */
function inScope(dev: PciDev, entry: string): boolean {
  const a = parseAddress(entry);
  if (a === undefined) return false;
  for (let cur: PciDev | null = dev; cur !== null; cur = cur.bus.self) {
    if (cur.domain === a.domain && cur.busNumber === a.bus && cur.devfn === a.devfn) return true;
  }
  return false;
}

function defaultUncoveredReason(dev: PciDev, platform: PlatformSpec): string | null {
  if (platform.iommu !== 'amd') return null;
  // AMD-Vi does not translate for its own PCI function, and the IVRS tables of these platforms give
  // the root complex (00:00.0) no device entry: neither gets a group.
  if (dev.vendor === VENDOR_AMD && dev.baseSubClass() === CLASS_IOMMU) return 'the AMD IOMMU\'s own function';
  if (dev.vendor === VENDOR_AMD && dev.baseSubClass() === CLASS_HOST_BRIDGE && dev.bus.isRoot() && dev.busNumber === 0 && dev.devfn === 0) {
    return 'the AMD root complex, which the IOMMU does not translate for';
  }
  return null;
}

/** Integrated Thunderbolt root ports (Tiger Lake-LP/-H, Alder Lake-P, Meteor Lake), which sit at 00:07.x. */
const THUNDERBOLT_ROOT_PORTS: ReadonlySet<number> = new Set([
  0x9a23, 0x9a25, 0x9a27, 0x9a29, 0x9a2b, 0x9a2d, 0x9a2f, 0x9a31,
  0x463f, 0x462f, 0x466e, 0x461f, 0x7ec4, 0x7ec5, 0x7ec6, 0x7ec7,
]);

/**
 * Intel hosts described by an lspci dump do not show their DMAR table. Client platforms follow two
 * conventions that decide probe order: integrated graphics (00:02.0) has a unit of its own, and
 * Thunderbolt root ports 00:07.0-1 and 00:07.2-3 have one unit per pair. Everything else is include-all.
 */
export function inferDmarUnits(host: Host): ProbeUnit[] {
  const table: ProbeUnit[] = [];
  const rootDev = (slot: number, fn: number): PciDev | undefined => host.topology.get({ domain: 0, bus: 0, devfn: (slot << 3) | fn });
  const gfx = rootDev(2, 0);
  if (gfx !== undefined && gfx.vendor === VENDOR_INTEL && gfx.classCode >> 16 === 0x03) {
    table.push({ name: 'gfx (00:02.0)', includeAll: false, scope: ['00:02.0'] });
  }
  for (const pair of [[0, 1], [2, 3]] as const) {
    const ports = pair.map((fn) => rootDev(7, fn)).filter((d): d is PciDev => d !== undefined && d.vendor === VENDOR_INTEL && THUNDERBOLT_ROOT_PORTS.has(d.device));
    if (ports.length > 0) table.push({ name: `tbt (${ports.map((p) => p.shortBdf).join(', ')})`, includeAll: false, scope: ports.map((p) => p.shortBdf) });
  }
  return [...table.reverse(), { name: 'include-all', includeAll: true, scope: [] }];
}

/** pci_sort_breadthfirst(): boot-time devices sorted by domain, bus, devfn; VFs, added later, stay last. */
function breadthFirst(devices: readonly PciDev[]): PciDev[] {
  const key = (d: PciDev): number => d.domain * 0x10000 + d.busNumber * 0x100 + d.devfn;
  const physical = devices.filter((d) => !d.isVirtfn()).sort((a, b) => key(a) - key(b));
  return [...physical, ...devices.filter((d) => d.isVirtfn())];
}

const SYSTEM_VENDORS_WITH_BFSORT: ReadonlyMap<number, string> = new Map([
  [0x1028, 'Dell'], [0x103c, 'HP'], [0x1590, 'HPE'],
]);

/**
 * x86 sorts the PCI device list breadth-first on machines its DMI tables name (Dell PowerEdge via the
 * SMBIOS OEM flag, HP ProLiant by product name). A dump has no DMI, so the board vendor is read off the
 * subsystem IDs of its functions: three or more from Dell or HP stand in for the DMI match.
 */
export function pciSortOf(booted: BootedHost): PciSort {
  if (booted.options.pciSort !== null) {
    return { order: booted.options.pciSort, source: 'cmdline', why: `pci=${booted.options.pciSort === 'breadth-first' ? 'bfsort' : 'nobfsort'} on the command line` };
  }
  const declared = booted.host.platform.pciSort;
  if (declared !== undefined) return { order: declared, source: 'host description', why: 'set in the host description' };
  const counts = new Map<number, number>();
  for (const dev of booted.host.topology.devices()) {
    if (dev.isBridge()) continue;
    const sv = dev.config.read16(PCI_SUBSYSTEM_VENDOR_ID);
    if (SYSTEM_VENDORS_WITH_BFSORT.has(sv)) counts.set(sv, (counts.get(sv) ?? 0) + 1);
  }
  for (const [vendor, n] of counts) {
    if (n >= 3 && booted.host.platform.iommu !== 'none') {
      const name = SYSTEM_VENDORS_WITH_BFSORT.get(vendor) ?? '';
      return { order: 'breadth-first', source: 'inferred', why: `${n} functions carry ${name} subsystem IDs: a ${name} server, which Linux sorts breadth-first (pci=bfsort) by DMI` };
    }
  }
  return { order: 'depth-first', source: 'default', why: 'devices in scan order (depth-first)' };
}
