import fc from 'fast-check';
import { formatShortAddress, PCI_DEVFN } from '../../src/pci/address.ts';
import { hostSpecSchema, type FunctionSpecInput, type HostSpec, type PcieTypeKey, type PlatformSpec } from '../../src/pci/spec.ts';

// Small random topologies for property tests of the group engine: always valid (they build and boot),
// small enough to reason about when a property fails (≤ ~40 functions), and rich in the things groups
// depend on: ACS bits, multifunction slots, switches, PCIe-to-PCI bridges, SR-IOV, quirked device IDs.

export interface ArbHostOptions {
  /** Upper bound on functions, VFs included (default 40). Subtrees that would exceed it are left empty. */
  readonly maxFunctions?: number;
  /** How many switches may nest below a root port (default 1: root port, switch, then leaves). */
  readonly maxSwitchDepth?: number;
  /** Fix the platform's IOMMU; by default drawn from intel, amd and arm-smmu. */
  readonly iommu?: PlatformSpec['iommu'];
}

interface AcsDraw { readonly cap: number; readonly ctl: number }
interface FnDraw { readonly id: string; readonly type: PcieTypeKey | null; readonly acs: AcsDraw | null }
interface PortDraw { readonly id: string; readonly acs: AcsDraw | null }

type Leaf =
  | { readonly kind: 'endpoint'; readonly fns: readonly FnDraw[]; readonly mfBit: boolean | undefined }
  | { readonly kind: 'pci-bridge'; readonly hidden: boolean; readonly cards: ReadonlyArray<readonly string[]> }
  | { readonly kind: 'sriov'; readonly numVfs: readonly number[] }
  | { readonly kind: 'empty' };
interface SwitchDraw { readonly kind: 'switch'; readonly id: string; readonly dsps: ReadonlyArray<{ readonly port: PortDraw; readonly child: Node }> }
type Node = Leaf | SwitchDraw;

type RootItem =
  | { readonly kind: 'port'; readonly port: PortDraw; readonly child: Node }
  | { readonly kind: 'integrated'; readonly fns: readonly FnDraw[] };

// Root ports: plain with or without ACS, plus quirked IDs (Intel PCH enable quirk, Intel SPT dword
// layout, Cavium, Zhaoxin).
const ROOT_PORT_IDS = ['8086:352a', '1022:1483', '8086:1bb8', '8086:8c10', '8086:a110', '177d:a000', '1d17:0710'];
const SWITCH_IDS = ['10b5:8747', '1022:57a3', '11f8:4052'];
// Endpoints: NVMe, GPU, Intel I350 (multifunction ACS quirk), Marvell 88SE9123 (DMA alias to fn 1),
// Ricoh (DMA alias to fn 0), ConnectX-5, a Solarflare (multifunction ACS quirk). Integrated functions
// include an AMD southbridge ID (its quirk needs IVRS, i.e. the amd platform).
const ENDPOINT_IDS = ['144d:a80a', '10de:2204', '8086:1521', '1b4b:9123', '1180:e832', '15b3:1017', '1924:0903'];
const CONVENTIONAL_IDS = ['1000:0030', '9710:9865', '1102:0002', '1b4b:9123'];

const acsArb: fc.Arbitrary<AcsDraw | null> = fc.option(
  fc.record({ cap: fc.integer({ min: 0, max: 0x7f }), ctlMask: fc.integer({ min: 0, max: 0x7f }) })
    .map(({ cap, ctlMask }) => ({ cap, ctl: cap & ctlMask })),
  { nil: null, freq: 2 },
);
const portArb = (ids: readonly string[]): fc.Arbitrary<PortDraw> => fc.record({ id: fc.constantFrom(...ids), acs: acsArb });

const pcieFnArb: fc.Arbitrary<FnDraw> = fc.record({
  id: fc.constantFrom(...ENDPOINT_IDS),
  type: fc.constantFrom<PcieTypeKey>('endpoint', 'endpoint', 'legacy-endpoint'),
  acs: acsArb,
});
const integratedFnArb: fc.Arbitrary<FnDraw> = fc.record({
  id: fc.constantFrom('8086:0b25', '8086:1bc9', '8086:1b81', '1022:780f', '8086:09a2'),
  type: fc.constantFrom<PcieTypeKey | null>(null, null, 'rc-integrated-endpoint', 'rc-event-collector'),
  acs: acsArb,
});

const leafArb: fc.Arbitrary<Leaf> = fc.oneof(
  { weight: 5, arbitrary: fc.record({ kind: fc.constant('endpoint' as const), fns: fc.array(pcieFnArb, { minLength: 1, maxLength: 4 }), mfBit: fc.option(fc.boolean(), { nil: undefined, freq: 5 }) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('pci-bridge' as const), hidden: fc.boolean(), cards: fc.array(fc.array(fc.constantFrom(...CONVENTIONAL_IDS), { minLength: 1, maxLength: 2 }), { minLength: 1, maxLength: 3 }) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('sriov' as const), numVfs: fc.array(fc.integer({ min: 0, max: 4 }), { minLength: 1, maxLength: 2 }) }) },
  { weight: 1, arbitrary: fc.constant({ kind: 'empty' as const }) },
);

function nodeArb(depth: number): fc.Arbitrary<Node> {
  if (depth <= 0) return leafArb;
  const sw: fc.Arbitrary<Node> = fc.record({
    kind: fc.constant('switch' as const),
    id: fc.constantFrom(...SWITCH_IDS),
    dsps: fc.array(fc.record({ port: portArb(SWITCH_IDS), child: nodeArb(depth - 1) }), { minLength: 1, maxLength: 3 }),
  });
  return fc.oneof({ weight: 3, arbitrary: leafArb }, { weight: 1, arbitrary: sw });
}

/** Random small hosts that build and boot: for property tests of IOMMU grouping. */
export function arbHostSpec(opts: ArbHostOptions = {}): fc.Arbitrary<HostSpec> {
  const rootItem: fc.Arbitrary<RootItem> = fc.oneof(
    { weight: 3, arbitrary: fc.record({ kind: fc.constant('port' as const), port: portArb(ROOT_PORT_IDS), child: nodeArb(opts.maxSwitchDepth ?? 1) }) },
    { weight: 1, arbitrary: fc.record({ kind: fc.constant('integrated' as const), fns: fc.array(integratedFnArb, { minLength: 1, maxLength: 4 }) }) },
  );
  return fc.record({
    buses: fc.array(fc.array(rootItem, { minLength: 1, maxLength: 5 }), { minLength: 1, maxLength: 2 }),
    iommu: opts.iommu === undefined ? fc.constantFrom<PlatformSpec['iommu']>('intel', 'amd', 'arm-smmu') : fc.constant(opts.iommu),
    acsCtl: fc.constantFrom<'firmware' | 'post-boot'>('firmware', 'firmware', 'post-boot'),
  }).map(({ buses, iommu, acsCtl }) => hostSpecSchema.parse({
    name: 'arbitrary',
    platform: { iommu },
    acsCtl,
    functions: new Builder(opts.maxFunctions ?? 40).build(buses),
  }));
}

const acsSpec = (a: AcsDraw | null): FunctionSpecInput['acs'] => (a === null ? undefined : { cap: a.cap, ctl: a.ctl });

/** Turns drawn trees into functions: bus numbers depth-first, a budget on the function count. */
class Builder {
  private readonly out: FunctionSpecInput[] = [];
  private nextBus = 0;
  private left: number;

  constructor(max: number) { this.left = max; }

  build(buses: ReadonlyArray<readonly RootItem[]>): FunctionSpecInput[] {
    for (const items of buses) {
      const bus = this.nextBus++;
      items.forEach((item, slot) => {
        if (item.kind === 'integrated') this.fns(bus, slot, item.fns, undefined);
        else if (this.left >= 1) this.port(bus, slot, item.port, 'root-port', item.child);
      });
    }
    if (this.out.length === 0) this.fns(0, 0, [{ id: '8086:09a2', type: 'rc-integrated-endpoint', acs: null }], undefined);
    return this.out;
  }

  private add(fn: FunctionSpecInput, extra = 0): void {
    this.out.push(fn);
    this.left -= 1 + extra;
  }

  private port(bus: number, slot: number, draw: PortDraw, type: PcieTypeKey, child: Node): void {
    const fn: FunctionSpecInput = {
      address: at(bus, slot, 0), id: draw.id, class: 0x0604, express: { type, ariForwarding: child.kind === 'sriov' },
      acs: acsSpec(draw.acs), bridge: { secondary: this.nextBus, subordinate: this.nextBus },
    };
    this.add(fn);
    const secondary = this.nextBus++;
    this.node(secondary, child);
    if (fn.bridge !== undefined) fn.bridge.subordinate = this.nextBus - 1;
  }

  private node(bus: number, node: Node): void {
    switch (node.kind) {
      case 'empty':
        return;
      case 'endpoint':
        this.fns(bus, 0, node.fns, node.mfBit);
        return;
      case 'pci-bridge': {
        const cost = 1 + node.cards.reduce((s, c) => s + c.length, 0);
        if (cost > this.left) return;
        const secondary = this.nextBus++;
        this.add({
          address: at(bus, 0, 0), class: 0x0604, bridge: { secondary, subordinate: secondary },
          // A hidden one has no Express capability (quirk_use_pcie_bridge_dma_alias matches ASMedia's).
          ...(node.hidden ? { id: '1b21:1080' } : { id: '12d8:e111', express: { type: 'pcie-to-pci-bridge' as const } }),
        });
        node.cards.forEach((card, c) => card.forEach((id, f) => this.add({ address: at(secondary, 4 + c, f), id, class: 0x0100 })));
        return;
      }
      case 'sriov': {
        const cost = node.numVfs.reduce((s, n) => s + 1 + n, 0);
        if (cost > this.left) return;
        let firstVf = 0x80; // VF routing IDs from devfn 0x80 up, clear of the PFs
        node.numVfs.forEach((numVfs, p) => {
          this.add({
            address: at(bus, 0, p), id: '8086:1572', class: 0x0200, express: { type: 'endpoint' },
            ari: { nextFunction: p + 1 < node.numVfs.length ? p + 1 : 0 },
            sriov: { totalVfs: 8, numVfs, vfOffset: firstVf - p, vfStride: 1, vfDevice: 0x154c },
          }, numVfs);
          firstVf += numVfs;
        });
        return;
      }
      case 'switch': {
        if (2 + node.dsps.length > this.left) return;
        const dspBus = this.nextBus++;
        const usp: FunctionSpecInput = {
          address: at(bus, 0, 0), id: node.id, class: 0x0604, express: { type: 'upstream-port' },
          bridge: { secondary: dspBus, subordinate: dspBus },
        };
        this.add(usp);
        // Hold back the downstream ports' own cost, so the first ports' subtrees cannot starve the rest.
        this.left -= node.dsps.length;
        node.dsps.forEach((dsp, d) => {
          this.left += 1;
          this.port(dspBus, d, dsp.port, 'downstream-port', dsp.child);
        });
        if (usp.bridge !== undefined) usp.bridge.subordinate = this.nextBus - 1;
        return;
      }
    }
  }

  /** One slot's functions (conventional when `type` is null); as many as the budget allows. */
  private fns(bus: number, slot: number, fns: readonly FnDraw[], mfBit: boolean | undefined): void {
    fns.slice(0, Math.max(0, this.left)).forEach((f, i) => this.add({
      address: at(bus, slot, i), id: f.id, class: f.type === 'rc-event-collector' ? 0x0807 : 0x0880,
      express: f.type === null ? undefined : { type: f.type },
      acs: f.type === null ? undefined : acsSpec(f.acs),
      // Some single-function devices set the header's multifunction bit anyway.
      multifunction: fns.length === 1 && mfBit === true ? true : undefined,
    }));
  }
}

function at(bus: number, slot: number, fn: number): string {
  return formatShortAddress({ domain: 0, bus, devfn: PCI_DEVFN(slot, fn) });
}
