import type { PciBus } from '../../pci/bus.ts';
import type { PciDev } from '../../pci/dev.ts';
import type { Host } from '../../pci/host.ts';
import { PcieType } from '../../pci/regs.ts';
import { acsBehaviour, type AcsBehaviour } from './acs.ts';
import { AddressMap, type MemBar } from './address-map.ts';
import { requesterIdOf, type RequesterId } from './requester-id.ts';

// Routing of a memory request (untranslated: the AT field says so) from a function, by address, through
// the PCI hierarchy. The request climbs from its function towards the root complex; at each point that
// could turn it around it may be delivered to a peer, untranslated, and the IOMMU never sees it:
//
//  1. Inside a multifunction device (the other functions of its slot, SR-IOV VFs excepted): if the
//     address is in a sibling function's BAR, the requesting function's ACS decides: RR redirects it
//     out of the device, EC blocks it, otherwise it is routed inside the device. A function with no ACS
//     capability (and no vendor quirk) loops back, unless the fabric is built with
//     `mfdLoopbackWithoutAcs: false` (the PCIe r6 §6.12.1.2 reading the 2025 Linux series takes: a
//     function that does peer-to-peer must implement ACS, so one without it has no internal path).
//  2. A conventional PCI bus (below a PCIe-to-PCI bridge, or a bridge without a PCIe capability): a
//     shared bus where every device sees every transaction, no ACS: a sibling whose BAR (or whose
//     bridge window) holds the address claims it. A bridge crossed upwards claims an address in its own
//     BAR. Everything else is forwarded upstream by the bridge.
//  3. A switch downstream port (the ingress port), whose ACS is read from config space as it is now:
//     - an address inside the ingress port's own windows would go back down the same link: Upstream
//       Forwarding sends it upstream instead, else it is routed back down (peer-to-peer);
//     - an address claimed on the switch's internal bus (another downstream port's window, a downstream
//       port's own BAR, or the upstream port's own BARs) is a peer-to-peer request: ACS P2P Request
//       Redirect sends it upstream (RR takes precedence over Egress Control), else Egress Control blocks
//       it, else it is routed inside the switch, untranslated. ACS Enhanced (DSP/USP Memory Target
//       Access) is not modelled: the port's and the upstream port's own BARs are treated as peers,
//       governed by RR, which is the reading Linux takes for ports without ACS Enhanced.
//     - anything else leaves the switch through its upstream port and climbs on.
//  4. A root port: the request enters the root complex and reaches its IOMMU, always. Root-complex
//     peer-to-peer is modelled as IOMMU-mediated only, and functions on a root bus (integrated endpoints,
//     chipset functions) reach each other only through the IOMMU (multifunction slots excepted, step 1).
//
// Translation Blocking acts on requests already translated by ATS (AT = Translated); the model issues
// only untranslated requests (ATS translation requests go to the IOMMU directly), so TB and Direct
// Translated P2P never apply. Source Validation is implicit: a function cannot spoof its requester ID.

export type P2pMechanism =
  /** Between the functions of one multifunction device. */
  | 'multifunction'
  /** Between ports of a switch (or to a switch port's own BAR). */
  | 'switch'
  /** Turned back down the link it came up (a downstream port without Upstream Forwarding). */
  | 'port-loopback'
  /** Claimed on a shared conventional PCI bus. */
  | 'conventional-bus'
  /** A bridge's own BAR, claimed as the request crossed it. */
  | 'bridge-bar'
  /** A function sitting on a switch's internal bus (not a port) reached a peer there. */
  | 'switch-internal';

export type Route =
  | {
    readonly kind: 'p2p';
    readonly target: PciDev;
    readonly bar: number;
    /** Offset of the address in the BAR. */
    readonly offset: number;
    /** Bytes from the address to the end of the BAR. */
    readonly barRemaining: number;
    readonly mechanism: P2pMechanism;
    /** Where it turned around: the function, port or bridge whose (lack of) ACS decided. */
    readonly at: PciDev;
    readonly why: string;
  }
  | {
    readonly kind: 'upstream';
    /** Requester ID at the root complex (after any bridge took the request over). */
    readonly rid: number;
    readonly domain: number;
    /** The root port it entered the root complex through, null for a function on a root bus. */
    readonly rootPort: PciDev | null;
    readonly why: string;
  }
  | { readonly kind: 'blocked'; readonly at: PciDev | null; readonly why: string };

export interface FabricOptions {
  /** Multifunction functions without an ACS capability (or vendor quirk) route to their siblings internally. Default true. */
  readonly mfdLoopbackWithoutAcs?: boolean;
}

const hex = (n: number): string => `0x${n.toString(16)}`;
const hex2 = (n: number): string => n.toString(16).padStart(2, '0');

function kindOf(dev: PciDev): string {
  if (!dev.isPcie()) return dev.isBridge() ? 'PCI bridge' : 'PCI function';
  switch (dev.pcieType()) {
    case PcieType.RootPort: return 'root port';
    case PcieType.DownstreamPort: return 'switch downstream port';
    case PcieType.UpstreamPort: return 'switch upstream port';
    case PcieType.PcieToPciBridge: return 'PCIe-to-PCI bridge';
    case PcieType.PciToPcieBridge: return 'PCI-to-PCIe bridge';
    default: return 'function';
  }
}

/** The PCIe fabric of a host: memory decoding, requester IDs and ACS-aware routing. */
export class Fabric {
  readonly map: AddressMap;
  private readonly amd: boolean;
  private readonly mfdLoopback: boolean;
  private readonly rids = new Map<PciDev, RequesterId>();

  constructor(readonly host: Host, opts: FabricOptions = {}) {
    this.map = new AddressMap(host.topology);
    this.amd = host.platform.iommu === 'amd';
    this.mfdLoopback = opts.mfdLoopbackWithoutAcs ?? true;
  }

  /** Re-read BARs after software reprogrammed them (ACS Control is always read live). */
  refresh(): void { this.map.refresh(); }

  /** The requester ID `dev`'s upstream requests carry at the root complex (topology is fixed: cached). */
  requesterId(dev: PciDev): RequesterId {
    let r = this.rids.get(dev);
    if (r === undefined) this.rids.set(dev, (r = requesterIdOf(dev)));
    return r;
  }

  /** How `dev`'s ACS treats a request entering at it, now. */
  acs(dev: PciDev): AcsBehaviour { return acsBehaviour(dev, this.amd); }

  /** Route an untranslated memory request from `src` for `address`. Never throws. */
  route(src: PciDev, address: number): Route {
    const owner = this.map.barAt(address);
    // Texts are made only where a route ends (or notes a detour); an upstream route's when first read.
    let notes: string[] | null = null;

    // 1. Inside a multifunction device.
    if (!src.isVirtfn()) {
      for (const sib of src.bus.devices) {
        if (sib === src || sib.slot !== src.slot || sib.isVirtfn()) continue;
        const bar = this.map.barOf(sib, address);
        if (bar === undefined) continue;
        const acs = this.acs(src);
        if (acs.requestRedirect) {
          (notes ??= []).push(`${src.shortBdf} ${acs.text}, so ${describeRequest(owner, address)} leaves the device`);
        } else if (acs.egressControl) {
          return { kind: 'blocked', at: src, why: `${src.shortBdf} ${acs.text}: Egress Control blocks ${describeRequest(owner, address)} inside the multifunction device` };
        } else if (!acs.present && !this.mfdLoopback) {
          (notes ??= []).push(`${src.shortBdf} has no ACS and is taken to have no internal path to its sibling functions, so ${describeRequest(owner, address)} leaves the device`);
        } else {
          return p2p(bar, address, 'multifunction', src, `${src.shortBdf} ${acs.text}: ${describeRequest(owner, address)} is routed inside the multifunction device`);
        }
        break;
      }
    }

    // 2-4. Climb.
    let node: PciDev = src;
    let bus: PciBus = src.bus;
    for (let guard = 0; guard < 1024; guard++) {
      if (bus.isVirtual()) { bus = bus.parent as PciBus; continue; }
      const bridge = bus.self;
      if (bus.isRoot() || bridge === null) {
        return this.upstream(src, null, notes, 'root-bus', node, bus.number, owner, address);
      }
      if (!bridge.isPcie() || bridge.pcieType() === PcieType.PcieToPciBridge) {
        // A conventional PCI bus: shared, no ACS.
        const hit = this.map.claimOnBus(bus, address, node);
        if (hit !== undefined) {
          const by = hit.bar !== undefined && hit.bar.dev === hit.claimedBy ? '' : ` by ${kindOf(hit.claimedBy)} ${hit.claimedBy.shortBdf}`;
          return this.deliver(hit.bar, address, 'conventional-bus', bridge, hit.claimedBy,
            `conventional PCI bus ${hex2(bus.number)} is shared, with no ACS: ${describeRequest(owner, address)} is claimed on it${by}`);
        }
        const own = this.map.barOf(bridge, address);
        if (own !== undefined) {
          return p2p(own, address, 'bridge-bar', bridge, `${kindOf(bridge)} ${bridge.shortBdf} claims ${describeRequest(owner, address)} as it crosses it from conventional PCI bus ${hex2(bus.number)}`);
        }
        node = bridge;
        bus = bridge.bus;
        continue;
      }
      switch (bridge.pcieType()) {
        case PcieType.RootPort: {
          return this.upstream(src, bridge, notes, this.map.inWindow(bridge, address) ? 'root-port-below' : 'root-port', bridge, 0, owner, address);
        }
        case PcieType.DownstreamPort: {
          const acs = this.acs(bridge);
          const sub = bridge.subordinate;
          if (sub !== null && this.map.inWindow(bridge, address)) {
            if (acs.upstreamForwarding) {
              (notes ??= []).push(`switch downstream port ${bridge.shortBdf} ${acs.text}: Upstream Forwarding sends ${describeRequest(owner, address)} upstream instead of back down`);
            } else {
              const bar = this.map.claimBelow(sub, address);
              return this.deliver(bar, address, 'port-loopback', bridge, bridge,
                `switch downstream port ${bridge.shortBdf} ${acs.text} and no Upstream Forwarding: ${describeRequest(owner, address)} is routed back down its link`);
            }
          } else {
            const internal = bridge.bus;
            const usp = internal.self;
            let hit = this.map.claimOnBus(internal, address);
            if (hit === undefined && usp !== null) {
              const b = this.map.barOf(usp, address);
              if (b !== undefined) hit = { claimedBy: usp, bar: b };
            }
            if (hit !== undefined) {
              if (acs.requestRedirect) {
                (notes ??= []).push(`switch downstream port ${bridge.shortBdf} ${acs.text}, so ${describeRequest(owner, address)} is redirected upstream`);
              } else if (acs.egressControl) {
                return { kind: 'blocked', at: bridge, why: `switch downstream port ${bridge.shortBdf} ${acs.text}: Egress Control blocks ${describeRequest(owner, address)}` };
              } else {
                return this.deliver(hit.bar, address, 'switch', bridge, hit.claimedBy,
                  `switch downstream port ${bridge.shortBdf} ${acs.text}: ${describeRequest(owner, address)} is routed inside the switch`);
              }
            }
          }
          const up = bridge.bus.self;
          if (up === null || bridge.bus.isRoot()) {
            return this.upstream(src, null, notes, 'port-on-root-bus', bridge, bridge.busNumber, owner, address);
          }
          node = up;
          bus = up.bus;
          continue;
        }
        case PcieType.UpstreamPort: {
          // `node` is a function on a switch's internal bus that is not a downstream port.
          let hit = this.map.claimOnBus(bus, address, node);
          if (hit === undefined) {
            const b = this.map.barOf(bridge, address);
            if (b !== undefined) hit = { claimedBy: bridge, bar: b };
          }
          if (hit !== undefined) {
            const acs = this.acs(node);
            if (acs.requestRedirect) {
              (notes ??= []).push(`${node.shortBdf} on switch ${bridge.shortBdf}'s internal bus ${acs.text}, so ${describeRequest(owner, address)} is redirected upstream`);
            } else if (acs.egressControl) {
              return { kind: 'blocked', at: node, why: `${node.shortBdf} ${acs.text}: Egress Control blocks ${describeRequest(owner, address)}` };
            } else {
              return this.deliver(hit.bar, address, 'switch-internal', node, hit.claimedBy,
                `${node.shortBdf} sits on switch ${bridge.shortBdf}'s internal bus and ${acs.text}: ${describeRequest(owner, address)} is routed inside the switch`);
            }
          }
          node = bridge;
          bus = bridge.bus;
          continue;
        }
        default:
          // PCI/PCI-X-to-PCIe bridges and anything else: forwarded upstream, no turnaround modelled.
          node = bridge;
          bus = bridge.bus;
          continue;
      }
    }
    return { kind: 'blocked', at: null, why: 'the hierarchy above the function loops: no route' };
  }

  private upstream(
    src: PciDev, rootPort: PciDev | null, notes: readonly string[] | null, at: EntryKind, node: PciDev, busNumber: number, owner: MemBar | undefined, address: number,
  ): Route {
    return new UpstreamRoute(src, this.requesterId(src), rootPort, notes, at, node, busNumber, owner, address);
  }

  private deliver(bar: MemBar | undefined, address: number, mechanism: P2pMechanism, at: PciDev, claimedBy: PciDev, why: string): Route {
    if (bar === undefined) {
      return { kind: 'blocked', at, why: `${why}, but no function below ${claimedBy.shortBdf} decodes ${hex(address)} (inside its window): Unsupported Request` };
    }
    return p2p(bar, address, mechanism, at, why);
  }
}

/** "the request for 0x1000" / "the request for 03:00.0's BAR 2". */
function describeRequest(owner: MemBar | undefined, address: number): string {
  return owner === undefined ? `the request for ${hex(address)}` : `the request for ${owner.dev.shortBdf}'s BAR ${owner.index}`;
}

/**
 * Where a request entered the root complex: a function on a root bus, a root port (the address inside its
 * window or not), a downstream port on a root bus.
 */
type EntryKind = 'root-bus' | 'root-port' | 'root-port-below' | 'port-on-root-bus';

/**
 * A route to the root complex. The explanation is built when first read, from what routing saw: making
 * the text (hex addresses, requester ID) costs more than the routing, and the DMA fast path never reads it.
 */
class UpstreamRoute {
  readonly kind = 'upstream' as const;
  readonly rid: number;
  readonly domain: number;
  private text: string | null = null;

  // What routing saw (the entry point, the function or port there, the BAR holding the address).
  constructor(
    private readonly src: PciDev,
    private readonly requester: RequesterId,
    readonly rootPort: PciDev | null,
    private readonly notes: readonly string[] | null,
    private readonly at: EntryKind,
    private readonly node: PciDev,
    private readonly busNumber: number,
    private readonly owner: MemBar | undefined,
    private readonly address: number,
  ) {
    this.rid = requester.rid;
    this.domain = requester.domain;
  }

  get why(): string {
    if (this.text !== null) return this.text;
    const { at, node, busNumber, owner, address } = this;
    const what = this.notes !== null ? 'it' : describeRequest(owner, address);
    let final: string;
    switch (at) {
      case 'root-bus': final = `${node.shortBdf} is on root bus ${hex2(busNumber)}: the root complex hands ${what} to the IOMMU`; break;
      case 'port-on-root-bus': final = `downstream port ${node.shortBdf} sits on root bus ${hex2(busNumber)}: the root complex hands ${what} to the IOMMU`; break;
      default: {
        const turn = at === 'root-port-below' ? ' (the address is below it, but root ports do not turn requests around: root-complex peer-to-peer goes through the IOMMU)' : '';
        final = `root port ${node.shortBdf} passes ${what} to the root complex's IOMMU${turn}`;
      }
    }
    const rid = this.requester;
    const as = rid.rewrittenBy === null && rid.rid === this.src.rid ? `as ${rid.text}` : `as ${rid.text} (${rid.why})`;
    this.text = [...(this.notes ?? []), `${final} ${as}`].join('; ');
    return this.text;
  }
}

function p2p(bar: MemBar, address: number, mechanism: P2pMechanism, at: PciDev, why: string): Route {
  return {
    kind: 'p2p', target: bar.dev, bar: bar.index, offset: address - bar.start, barRemaining: bar.end - address + 1,
    mechanism, at, why: `${why}, untranslated`,
  };
}
