import { formatShortAddress, PCI_DEVFN } from './address.ts';
import { hostSpecSchema, type AcsBitName, type FunctionSpecInput, type HostSpec, type PcieTypeKey } from './spec.ts';

// Large, plausible, reproducible hosts for benchmarks and scale tests: the same seed always gives the
// same host. Function counts include the SR-IOV VFs that enabling NumVFs generates.

export interface SyntheticOptions {
  /** Functions wanted, VFs included; the result has exactly this many. */
  readonly functions: number;
  readonly seed: number;
}

/** mulberry32: tiny, fast and good enough to draw topologies from; Math.random would not be reproducible. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 0x1_0000_0000;
  };
}

interface Rng {
  int(lo: number, hi: number): number;
  chance(p: number): boolean;
  pick<T>(items: readonly T[]): T;
}

function makeRng(seed: number): Rng {
  const next = prng(seed);
  return {
    int: (lo, hi) => lo + Math.floor(next() * (hi - lo + 1)),
    chance: (p) => next() < p,
    pick: (items) => {
      const item = items[Math.floor(next() * items.length)];
      if (item === undefined) throw new Error('pick from an empty list');
      return item;
    },
  };
}

interface PortKind { id: string; name: string; acs?: { cap: AcsBitName[] } }
interface EndpointKind {
  id: string; class: number; name: string; driver: string;
  /** The slot's other functions, [id, class, name]; a device has 1 + 0..siblings.length of them. */
  siblings?: ReadonlyArray<readonly [string, number, string]>;
  type?: PcieTypeKey;
  acs?: boolean;
  barSize: number;
}

const FULL_ACS: AcsBitName[] = ['SV', 'TB', 'RR', 'CR', 'UF'];

const ROOT_PORTS: readonly PortKind[] = [
  { id: '8086:352a', name: 'PCI bridge: Intel Corporation Sapphire Rapids PCI Express Root Port A', acs: { cap: FULL_ACS } },
  { id: '1022:1483', name: 'PCI bridge: Advanced Micro Devices, Inc. [AMD] Starship/Matisse GPP Bridge', acs: { cap: FULL_ACS } },
  { id: '8086:352c', name: 'PCI bridge: Intel Corporation Sapphire Rapids PCI Express Root Port C', acs: { cap: ['SV', 'TB'] } },
  { id: '8086:1bb8', name: 'PCI bridge: Intel Corporation C741 PCI Express Root Port #1' },
  { id: '8086:8c10', name: 'PCI bridge: Intel Corporation 8 Series/C220 Series Chipset Family PCI Express Root Port #1' },
];
const SWITCHES: readonly PortKind[] = [
  { id: '10b5:8747', name: 'PCI bridge: PLX Technology, Inc. PEX 8747 48-Lane, 5-Port PCI Express Gen 3 (8.0 GT/s) Switch', acs: { cap: ['SV', 'RR', 'CR', 'UF', 'EC', 'DT'] } },
  { id: '1000:c010', name: 'PCI bridge: Broadcom / LSI PEX880xx PCIe Gen 4 Switch', acs: { cap: ['SV', 'TB', 'RR', 'CR', 'UF', 'DT'] } },
];
const ENDPOINTS: readonly EndpointKind[] = [
  { id: '144d:a80a', class: 0x0108, name: 'Non-Volatile memory controller: Samsung Electronics Co Ltd NVMe SSD Controller PM9A1/PM9A3/980PRO', driver: 'nvme', barSize: 0x4000 },
  { id: '8086:0b60', class: 0x0108, name: 'Non-Volatile memory controller: Intel Corporation NVMe DC SSD [3DNAND, Sentinel Rock Controller]', driver: 'nvme', barSize: 0x4000 },
  { id: '10de:2204', class: 0x0300, name: 'VGA compatible controller: NVIDIA Corporation GA102 [GeForce RTX 3090]', driver: 'nvidia', type: 'legacy-endpoint', barSize: 0x100000,
    siblings: [['10de:1aef', 0x0403, 'Audio device: NVIDIA Corporation GA102 High Definition Audio Controller']] },
  { id: '8086:1521', class: 0x0200, name: 'Ethernet controller: Intel Corporation I350 Gigabit Network Connection', driver: 'igb', barSize: 0x20000,
    siblings: [1, 2, 3].map(() => ['8086:1521', 0x0200, 'Ethernet controller: Intel Corporation I350 Gigabit Network Connection'] as const) },
  { id: '1b4b:9123', class: 0x0106, name: 'SATA controller: Marvell Technology Group Ltd. 88SE9123 PCIe SATA 6.0 Gb/s controller', driver: 'ahci', barSize: 0x1000,
    siblings: [['1b4b:91a4', 0x0101, 'IDE interface: Marvell Technology Group Ltd. 88SE912x IDE Controller']] },
  { id: '1000:0097', class: 0x0107, name: 'Serial Attached SCSI controller: Broadcom / LSI SAS3008 PCI-Express Fusion-MPT SAS-3', driver: 'mpt3sas', barSize: 0x10000 },
  { id: '15b3:1017', class: 0x0200, name: 'Ethernet controller: Mellanox Technologies MT27800 Family [ConnectX-5]', driver: 'mlx5_core', acs: true, barSize: 0x100000,
    siblings: [['15b3:1017', 0x0200, 'Ethernet controller: Mellanox Technologies MT27800 Family [ConnectX-5]']] },
];
const CONVENTIONAL: readonly EndpointKind[] = [
  { id: '1000:0030', class: 0x0100, name: 'SCSI storage controller: Broadcom / LSI 53c1030 PCI-X Fusion-MPT Dual Ultra320 SCSI', driver: 'mptspi', barSize: 0x20000 },
  { id: '9710:9865', class: 0x0700, name: 'Serial controller: MosChip Semiconductor Technology Ltd. PCI 9865 Multi-I/O Controller', driver: 'parport_serial', barSize: 0x1000 },
  { id: '1102:0002', class: 0x0401, name: 'Multimedia audio controller: Creative Labs EMU10k1 [Sound Blaster Live! Series]', driver: 'snd_emu10k1', barSize: 0x1000 },
];
const CHIPSET: ReadonlyArray<readonly [string, number, string, string | undefined]> = [
  ['8086:1b81', 0x0601, 'ISA bridge: Intel Corporation C741 LPC/eSPI Controller', undefined],
  ['8086:1bf2', 0x0106, 'SATA controller: Intel Corporation C741 SATA Controller [AHCI mode]', 'ahci'],
  ['8086:1bc8', 0x0403, 'Audio device: Intel Corporation C741 HD Audio Controller', 'snd_hda_intel'],
  ['8086:1bc9', 0x0c05, 'SMBus: Intel Corporation C741 SMBus Controller', 'i801_smbus'],
  ['8086:1bca', 0x0c80, 'Serial bus controller: Intel Corporation C741 SPI Controller', 'intel-spi'],
  ['8086:1bcd', 0x0c03, 'USB controller: Intel Corporation C741 USB 3.2 xHCI Controller', 'xhci_hcd'],
  ['8086:1be0', 0x0780, 'Communication controller: Intel Corporation C741 MEI Controller #1', 'mei_me'],
  ['8086:1bcc', 0x1180, 'Signal processing controller: Intel Corporation C741 Trace Hub', undefined],
];

const MIB = 0x10_0000;
/** Root-bus slot 0 holds the host bridge's registers; ports and integrated devices take 1..31. */
const FIRST_ROOT_SLOT = 1;
const LAST_SLOT = 31;
const MAX_BUS = 0xff;
/** The most bus numbers one template takes: a switch with 8 downstream ports. */
const MAX_TEMPLATE_BUSES = 10;

/**
 * Lays a synthetic host out: root buses of 31 slots each, bus numbers handed out depth-first like a
 * BIOS does, a new PCI domain when a domain's 256 buses run out, and BARs from one bump allocator so
 * every subtree's addresses are contiguous (bridge windows never overlap).
 */
class Layout {
  readonly functions: FunctionSpecInput[] = [];
  count = 0;
  private domain = 0;
  private nextBus = 0;
  private rootBus = -1;
  private rootSlot = LAST_SLOT + 1;
  private mmio = 0x1000_0000_0000;

  /**
   * Make sure the current root bus has a free slot and `buses` bus numbers after it, opening a root bus
   * (in a new domain when this one's buses run out) otherwise. Templates run after this, so the function
   * the new root bus costs is counted before they are given their budget.
   */
  ensureRoot(buses: number): void {
    if (this.rootSlot > LAST_SLOT || this.nextBus + buses > MAX_BUS + 1) this.openRootBus(buses);
  }

  /** A root-bus slot; ensureRoot() has made room for it. */
  rootSlotFor(buses: number): { domain: number; bus: number; slot: number } {
    if (this.rootSlot > LAST_SLOT || this.nextBus + buses > MAX_BUS + 1) throw new Error('synthetic layout: no room on the root bus');
    return { domain: this.domain, bus: this.rootBus, slot: this.rootSlot++ };
  }

  bus(): number { return this.nextBus++; }
  lastBus(): number { return this.nextBus - 1; }

  /** Start (and later end) a bridge's address range on a 1 MiB boundary, as bridge windows are granular. */
  alignWindow(): void { this.mmio = Math.ceil(this.mmio / MIB) * MIB; }

  bar(size: number): { index: number; type: 'mem64'; prefetchable: boolean; base: number; size: number } {
    this.mmio = Math.ceil(this.mmio / size) * size;
    const base = this.mmio;
    this.mmio += size;
    return { index: 0, type: 'mem64', prefetchable: true, base, size };
  }

  add(fn: FunctionSpecInput, vfs = 0): void {
    this.functions.push(fn);
    this.count += 1 + vfs;
  }

  private openRootBus(buses: number): void {
    if (this.nextBus + buses + 1 > MAX_BUS + 1) {
      this.domain++;
      this.nextBus = 0;
    }
    this.rootBus = this.nextBus++;
    this.alignWindow();
    // The host bridge's own registers: an Intel RCiEP (isolated by the RCiEP quirk).
    this.add({
      address: formatShortAddress({ domain: this.domain, bus: this.rootBus, devfn: 0 }),
      id: '8086:09a2', class: 0x0880, name: 'System peripheral: Intel Corporation Ice Lake Memory Map/VT-d',
      express: { type: 'rc-integrated-endpoint' },
    });
    this.rootSlot = FIRST_ROOT_SLOT;
  }
}

const addr = (domain: number, bus: number, slot: number, fn: number): string =>
  formatShortAddress({ domain, bus, devfn: PCI_DEVFN(slot, fn) });

function acsFor(rng: Rng, kind: PortKind): FunctionSpecInput['acs'] {
  if (kind.acs === undefined) return undefined;
  // Firmware sometimes leaves some bits on; the kernel enables the rest at boot.
  return { cap: kind.acs.cap, ctl: rng.chance(0.2) ? ['SV'] : [] };
}

/** A root port on the root bus with `buses` buses below it; returns where its secondary bus is. */
function rootPort(l: Layout, rng: Rng, buses: number, extra: Partial<FunctionSpecInput> = {}): { domain: number; secondary: number; fix: (sub: number) => void } {
  const at = l.rootSlotFor(buses);
  const kind = rng.pick(ROOT_PORTS);
  const secondary = l.bus();
  const fn: FunctionSpecInput = {
    address: addr(at.domain, at.bus, at.slot, 0), id: kind.id, class: 0x0604, name: kind.name,
    bridge: { secondary, subordinate: secondary },
    express: { type: 'root-port', slot: true, ...(extra.express ?? {}) },
    acs: acsFor(rng, kind), driver: 'pcieport',
  };
  l.add(fn);
  return { domain: at.domain, secondary, fix: (sub) => { if (fn.bridge !== undefined) fn.bridge.subordinate = sub; } };
}

/** An endpoint of 1..n functions at bus:slot; returns how many functions it placed. */
function endpoint(l: Layout, rng: Rng, domain: number, bus: number, slot: number, budget: number): number {
  const kind = rng.pick(ENDPOINTS);
  const wanted = 1 + rng.int(0, kind.siblings?.length ?? 0);
  const n = Math.max(1, Math.min(wanted, budget));
  for (let f = 0; f < n; f++) {
    const sib = f === 0 ? undefined : kind.siblings?.[f - 1];
    l.add({
      address: addr(domain, bus, slot, f), id: sib?.[0] ?? kind.id, class: sib?.[1] ?? kind.class, name: sib?.[2] ?? kind.name,
      express: { type: f === 0 ? kind.type ?? 'endpoint' : 'endpoint' },
      acs: kind.acs === true && n > 1 ? { cap: [], ctl: [] } : undefined,
      bars: [l.bar(kind.barSize)], driver: kind.driver,
    });
  }
  return n;
}

type Template = (l: Layout, rng: Rng, budget: number) => void;

/** Root port, one (possibly multifunction) endpoint. */
const portWithEndpoint: Template = (l, rng, budget) => {
  l.alignWindow();
  const rp = rootPort(l, rng, 1);
  endpoint(l, rng, rp.domain, rp.secondary, 0, budget - 1);
  l.alignWindow();
};

/** Root port, switch upstream port, downstream ports with mixed ACS, an endpoint (or nothing) below each. */
const pcieSwitch: Template = (l, rng, budget) => {
  const dsps = Math.max(1, Math.min(rng.int(2, 8), Math.floor((budget - 2) / 2)));
  const kind = rng.pick(SWITCHES);
  l.alignWindow();
  const rp = rootPort(l, rng, 2 + dsps);
  const dspBus = l.bus();
  const usp: FunctionSpecInput = {
    address: addr(rp.domain, rp.secondary, 0, 0), id: kind.id, class: 0x0604, name: kind.name,
    bridge: { secondary: dspBus, subordinate: dspBus }, express: { type: 'upstream-port' }, driver: 'pcieport',
  };
  l.add(usp);
  let left = budget - 2 - dsps;
  const below: Array<{ secondary: number }> = [];
  for (let d = 0; d < dsps; d++) {
    const secondary = l.bus();
    below.push({ secondary });
    l.add({
      address: addr(rp.domain, dspBus, d, 0), id: kind.id, class: 0x0604, name: kind.name,
      bridge: { secondary, subordinate: secondary }, express: { type: 'downstream-port', slot: true },
      // Mixed ACS: an EEPROM that hides the capability on some ports.
      acs: rng.chance(0.75) ? acsFor(rng, kind) : undefined, driver: 'pcieport',
    });
  }
  for (const { secondary } of below) {
    if (left <= 0 || rng.chance(0.15)) continue; // an empty bay
    l.alignWindow();
    left -= endpoint(l, rng, rp.domain, secondary, 0, left);
    l.alignWindow();
  }
  if (usp.bridge !== undefined) usp.bridge.subordinate = l.lastBus();
  rp.fix(l.lastBus());
};

/** Root port, PCIe-to-PCI bridge, conventional PCI cards (sometimes a two-function one). */
const legacyBridge: Template = (l, rng, budget) => {
  l.alignWindow();
  const rp = rootPort(l, rng, 2);
  const secondary = l.bus();
  const conventionalBridge = rng.chance(0.2);
  l.add({
    address: addr(rp.domain, rp.secondary, 0, 0),
    // ASMedia's bridge hides its PCIe-ness (quirk_use_pcie_bridge_dma_alias); Pericom's says what it is.
    ...(conventionalBridge
      ? { id: '1b21:1080', name: 'PCI bridge: ASMedia Technology Inc. ASM1083/1085 PCIe to PCI Bridge' }
      : { id: '12d8:e111', name: 'PCI bridge: Pericom Semiconductor PI7C9X111SL PCIe-to-PCI Reversible Bridge', express: { type: 'pcie-to-pci-bridge' } }),
    class: 0x0604, bridge: { secondary, subordinate: secondary },
  });
  let left = budget - 2;
  const cards = Math.max(1, Math.min(rng.int(1, 4), left));
  for (let c = 0; c < cards && left > 0; c++) {
    const kind = rng.pick(CONVENTIONAL);
    const fns = Math.min(left, rng.chance(0.25) ? 2 : 1);
    for (let f = 0; f < fns; f++) {
      l.add({ address: addr(rp.domain, secondary, 4 + c, f), id: kind.id, class: kind.class, name: kind.name, bars: [l.bar(kind.barSize)], driver: kind.driver });
    }
    left -= fns;
  }
  l.alignWindow();
};

/** Root port with ARI, an SR-IOV NIC of one or two ports with VFs enabled. */
const sriovNic: Template = (l, rng, budget) => {
  l.alignWindow();
  const rp = rootPort(l, rng, 1, { express: { type: 'root-port', slot: true, ariForwarding: true } });
  const ports = budget >= 4 && rng.chance(0.6) ? 2 : 1;
  let left = budget - 1 - ports;
  let firstVfRid = 0x10; // VF routing IDs from devfn 0x10 up, clear of the PFs
  for (let p = 0; p < ports; p++) {
    const numVfs = Math.max(0, Math.min(rng.int(1, 16), ports === 2 && p === 0 ? Math.floor(left / 2) : left));
    left -= numVfs;
    l.add({
      address: addr(rp.domain, rp.secondary, 0, p), id: '8086:1572', class: 0x0200,
      name: `Ethernet controller: Intel Corporation Ethernet Controller X710 for 10GbE SFP+ (port ${p})`,
      express: { type: 'endpoint' }, acs: { cap: [], ctl: [] }, ari: { nextFunction: p + 1 < ports ? p + 1 : 0 },
      sriov: { totalVfs: 64, numVfs, vfOffset: firstVfRid - p, vfStride: 1, vfDevice: 0x154c },
      bars: [l.bar(0x80_0000)], driver: 'i40e',
    }, numVfs);
    firstVfRid += numVfs;
  }
  l.alignWindow();
};

/** Functions on the root bus itself: a chipset-style conventional multifunction slot, or one RCiEP. */
const integrated: Template = (l, rng, budget) => {
  const at = l.rootSlotFor(0);
  if (rng.chance(budget === 1 ? 0.5 : 0.1)) {
    l.add({
      address: addr(at.domain, at.bus, at.slot, 0), id: '8086:0b25', class: 0x0880,
      name: 'System peripheral: Intel Corporation Data Streaming Accelerator (DSA)', express: { type: 'rc-integrated-endpoint' },
      ats: {}, pri: {}, pasid: { privileged: true }, bars: [l.bar(0x10000)], driver: 'idxd',
    });
    return;
  }
  const n = Math.min(budget, rng.int(1, CHIPSET.length));
  for (let f = 0; f < n; f++) {
    const entry = CHIPSET[f];
    if (entry === undefined) break;
    const [id, cls, name, driver] = entry;
    l.add({ address: addr(at.domain, at.bus, at.slot, f), id, class: cls, name, bars: [l.bar(0x1000)], driver });
  }
};

const TEMPLATES: ReadonlyArray<readonly [Template, number, number]> = [
  // [template, weight, fewest functions it needs]
  [portWithEndpoint, 40, 2],
  [pcieSwitch, 15, 5],
  [legacyBridge, 10, 3],
  [sriovNic, 15, 3],
  [integrated, 20, 1],
];
const TOTAL_WEIGHT = TEMPLATES.reduce((s, [, w]) => s + w, 0);

/** A deterministic synthetic host of exactly `functions` functions (VFs included), spread over PCI domains. */
export function syntheticHostSpec(opts: SyntheticOptions): HostSpec {
  if (!Number.isInteger(opts.functions) || opts.functions < 1) throw new RangeError(`functions must be a positive integer, got ${opts.functions}`);
  const rng = makeRng(opts.seed);
  const layout = new Layout();
  while (layout.count < opts.functions) {
    layout.ensureRoot(MAX_TEMPLATE_BUSES);
    const budget = opts.functions - layout.count;
    if (budget < 1) break;
    let roll = rng.int(0, TOTAL_WEIGHT - 1);
    let chosen: Template = integrated;
    for (const [template, weight, fewest] of TEMPLATES) {
      roll -= weight;
      if (roll < 0) {
        chosen = fewest <= budget ? template : integrated;
        break;
      }
    }
    chosen(layout, rng, budget);
  }
  return hostSpecSchema.parse({
    name: `synthetic-${opts.functions}-${opts.seed}`,
    description: `Synthetic host: ${opts.functions} functions drawn from seed ${opts.seed}`,
    platform: { iommu: 'intel' },
    functions: layout.functions,
  });
}
