import { parseAddress } from '../pci/address.ts';
import type { BootedHost } from '../pci/boot.ts';
import type { PciDev } from '../pci/dev.ts';
import { planProbe, type ProbeUnit } from '../pci/groups/probe-order.ts';
import type { Host } from '../pci/host.ts';
import { MmioBus } from './devices/mmio.ts';
import type { DeviceModel, DmaPort } from './devices/model.ts';
import { DmaEngine, type DmaEngineOptions } from './dma/engine.ts';
import {
  inRange, type AddressRange, type DmaRequest, type DmaResult, type DmaStatus, type IommuPort, type MsiMessage,
  type MutableDmaResult,
} from './dma/types.ts';
import { Fabric, type FabricOptions, type Route } from './fabric/fabric.ts';
import { DEFAULT_IOMMU_CAPS, NO_PASID, type DeviceMessageSink, type IommuCaps, type PageResponseMessage } from './iommu/types.ts';
import { IommuUnit } from './iommu/unit.ts';
import { PAGE_SIZE, PhysicalMemory } from './memory/physical-memory.ts';

// The simulated machine: a booted host's PCI topology, physical memory, and its IOMMU unit(s), with one
// DMA engine per function. dma() routes a transfer through the fabric (fabric/fabric.ts) and then:
//
//  * p2p: delivered to the peer's BAR, untranslated. A BAR with a device model attached (attachModel,
//    devices/mmio.ts) decodes the access in the model; other BARs are backed by memory of their own
//    (barMemory()), so a test can see what landed there. A transfer running past the end of the BAR is
//    cut there. A transfer is routed as one request, by its first address.
//  * upstream, without a PASID, into the interrupt window (x86 platforms: intel, amd, virtio, none;
//    0xFEE00000-0xFEEFFFFF): not DMA. An aligned dword write is an interrupt message, recorded in the
//    bounded msiLog and passed to onMsi; anything else there (a read, another size) is an Unsupported
//    Request. Interrupt remapping is not modelled: messages are delivered as written. Requests with a
//    PASID are translated like any other (as VT-d scalable mode treats them). ARM (arm-smmu) has no fixed
//    window: MSIs are ordinary writes that Linux maps to the ITS doorbell (IOMMU_RESV_SW_MSI), and the
//    GIC is not modelled, so there they are plain DMA.
//  * upstream otherwise: the function's DMA engine (dma/engine.ts) translates page by page through the
//    IOMMU unit covering the function and copies to or from memory; faults, page requests, retries.
//    Translated addresses always reach PhysicalMemory: the host's MMIO holes are not carved out of it, so
//    an IOMMU mapping onto a peer's BAR (root-complex P2P through the IOMMU) lands in memory, not in the
//    BAR. A transfer whose first address goes upstream is not split if it later runs into a peer's BAR.
//
// IOMMU units (IommuUnit by default, with DEFAULT_IOMMU_CAPS; any IommuPort through createIommu): Intel
// hosts get one per DMAR unit (the platform's dmarUnits, or those Linux would infer), in DMAR table
// order, a unit of the INCLUDE_PCI_ALL kind once per PCI segment; other platforms one per PCI segment. A
// function no unit covers (outside every DMAR scope, the AMD IOMMU's own function, `platform.uncovered`)
// and every function of a host whose platform has no IOMMU (or with createIommu: null) DMA to physical
// addresses untranslated. The kernel command line does not matter here: intel_iommu=off leaves the
// hardware in place, with translation off until software enables it (GCMD.TE), as after reset.
//
// Page responses a unit sends (sendToDevice) are queued and delivered to the engine owning the requester
// ID when the machine next runs: at the end of dma(), processCommands() and deliverMessages(). So a
// device never re-enters a unit that is still processing commands. Drive units through the machine's
// processCommands(), or call deliverMessages() after driving a unit yourself.

/** The x86 interrupt window. */
export const X86_MSI_WINDOW: AddressRange = { base: 0xfee0_0000, size: 0x10_0000 };

/** Largest transfer one dma() call takes (1 GiB); larger requests are refused as malformed. */
export const MAX_DMA_LENGTH = 2 ** 30;

export interface IommuFactoryContext {
  readonly index: number;
  readonly name: string;
  readonly domain: number;
  readonly memory: PhysicalMemory;
  /** Where the unit sends page responses. */
  readonly sendToDevice: DeviceMessageSink;
  /** Capabilities the host file sets for this unit (its DMAR entry's snoopControl, deviceTlb). */
  readonly unitCaps: Partial<Pick<IommuCaps, 'snoopControl' | 'deviceTlb'>>;
}

export type IommuFactory<P extends IommuPort = IommuPort> = (ctx: IommuFactoryContext) => P;

export interface MachineIommu<P extends IommuPort = IommuPort> {
  readonly index: number;
  /** "DRHD0 (socket 0, accelerator stack 6a)", "segment 0000". */
  readonly name: string;
  readonly domain: number;
  readonly port: P;
}

export interface MachineOptions<P extends IommuPort = IommuUnit> {
  /** Default: 64 GiB of sparse memory. */
  readonly memory?: PhysicalMemory;
  /**
   * Builds each IOMMU unit. Default: an IommuUnit with `iommuCaps`. null: no units at all (every function
   * DMAs to physical addresses, untranslated).
   */
  readonly createIommu?: IommuFactory<P> | null;
  /** Capabilities of the default units (DEFAULT_IOMMU_CAPS). */
  readonly iommuCaps?: IommuCaps;
  /** Override the interrupt window (null: none). Default by platform, see above. */
  readonly msiWindow?: AddressRange | null;
  readonly onMsi?: (m: MsiMessage) => void;
  /** Interrupt messages kept in msiLog (default 1024). */
  readonly msiLogSize?: number;
  /** Called whenever a transfer settles (including pending ones finishing later). */
  readonly onSettled?: (r: DmaResult) => void;
  readonly fabric?: FabricOptions;
  readonly maxPagesPerGroup?: number;
}

export interface MachineStats {
  dma: number;
  p2p: number;
  msi: number;
  blocked: number;
  /** Page responses whose requester ID no function of the unit's scope carries. */
  undeliverableResponses: number;
}

interface UnitSlot<P extends IommuPort> {
  unit: MachineIommu<P> | null; readonly key: string; readonly name: string; readonly domain: number; readonly order: number;
  readonly unitCaps: Partial<Pick<IommuCaps, 'snoopControl' | 'deviceTlb'>>;
}

const hex = (n: number): string => `0x${n.toString(16)}`;

export class Machine<P extends IommuPort = IommuUnit> {
  readonly host: Host;
  readonly memory: PhysicalMemory;
  readonly fabric: Fabric;
  readonly msiLog: MsiMessage[] = [];
  readonly stats: MachineStats = { dma: 0, p2p: 0, msi: 0, blocked: 0, undeliverableResponses: 0 };
  /** Lines about messages the machine could not deliver, newest last (bounded). */
  readonly log: string[] = [];
  private readonly msiWindow: AddressRange | null;
  private readonly slots = new Map<string, UnitSlot<P>>();
  private readonly unitList: Array<MachineIommu<P>> = [];
  private readonly slotOf = new Map<PciDev, UnitSlot<P>>();
  /** Per unit: requester ID -> functions whose requests carry it. */
  private readonly ridOwners = new Map<MachineIommu<P>, Map<number, PciDev[]>>();
  private readonly engines = new Map<PciDev, DmaEngine>();
  /**
   * Page responses not yet delivered and the unit each came from: [inboxHead, inboxTail), reset to 0 when
   * empty. Two arrays rather than a wrapper object per response, never shortened (that drops their storage).
   */
  private readonly inboxUnits: Array<MachineIommu<P> | null> = [];
  private readonly inboxMsgs: Array<PageResponseMessage | null> = [];
  private inboxHead = 0;
  private inboxTail = 0;
  private readonly barMem = new Map<PciDev, Map<number, PhysicalMemory>>();
  /** CPU/user loads and stores to BARs: device models where attached, plain BAR memory elsewhere. */
  readonly mmio: MmioBus = new MmioBus((dev, bar) => this.barMemory(dev, bar));
  private nextId = 0;
  private msiSeq = 0;

  private readonly factory: IommuFactory<P> | null;

  constructor(readonly booted: BootedHost, private readonly opts: MachineOptions<P> = {}) {
    const caps = opts.iommuCaps ?? DEFAULT_IOMMU_CAPS;
    const real: IommuFactory = (ctx) => new IommuUnit(ctx.memory, { ...caps, ...ctx.unitCaps }, { sendToDevice: ctx.sendToDevice });
    this.factory = opts.createIommu === null ? null : (opts.createIommu ?? (real as unknown as IommuFactory<P>));
    this.host = booted.host;
    this.memory = opts.memory ?? new PhysicalMemory();
    this.fabric = new Fabric(this.host, opts.fabric);
    const x86 = this.host.platform.iommu !== 'arm-smmu';
    this.msiWindow = opts.msiWindow !== undefined ? opts.msiWindow : x86 ? X86_MSI_WINDOW : null;
    this.assignUnits();
  }

  /** The IOMMU units, in creation order. */
  get units(): ReadonlyArray<MachineIommu<P>> { return this.unitList; }

  /** Look a function up by "[dddd:]bb:dd.f". */
  device(bdf: string): PciDev | undefined { return this.host.topology.get(bdf); }

  /** The IOMMU unit translating for `dev`, or null (its DMA is untranslated). */
  iommuFor(dev: PciDev): MachineIommu<P> | null {
    return this.slotOf.get(dev)?.unit ?? null;
  }

  /** The DMA engine of a function (created on first use). */
  engine(dev: PciDev): DmaEngine {
    let e = this.engines.get(dev);
    if (e === undefined) {
      const unit = this.iommuFor(dev);
      const options: DmaEngineOptions = {
        memory: this.memory, iommu: unit?.port ?? null, rid: this.fabric.requesterId(dev).rid, msiWindow: this.msiWindow,
        nextId: () => ++this.nextId,
        ...(this.opts.onSettled === undefined ? {} : { onSettled: this.opts.onSettled }),
        ...(this.opts.maxPagesPerGroup === undefined ? {} : { maxPagesPerGroup: this.opts.maxPagesPerGroup }),
      };
      e = new DmaEngine(dev, options);
      this.engines.set(dev, e);
    }
    return e;
  }

  /** What a BAR holds: memory of its own, created on first use (undefined if `dev` has no such memory BAR). */
  barMemory(dev: PciDev, bar: number): PhysicalMemory | undefined {
    let perDev = this.barMem.get(dev);
    let mem = perDev?.get(bar);
    if (mem !== undefined) return mem;
    const b = this.fabric.map.bars(dev).find((x) => x.index === bar);
    if (b === undefined) return undefined;
    if (perDev === undefined) this.barMem.set(dev, (perDev = new Map<number, PhysicalMemory>()));
    mem = new PhysicalMemory({ size: Math.ceil(Math.max(b.size, PAGE_SIZE) / PAGE_SIZE) * PAGE_SIZE });
    perDev.set(bar, mem);
    return mem;
  }

  /** Attach a device model to `dev`'s BARs `model.bars` (see devices/model.ts). */
  attachModel(dev: PciDev, model: DeviceModel): void { this.mmio.attach(dev, model); }

  /** How a model attached to `dev` issues DMA: as `dev`, through dma(). */
  dmaPort(dev: PciDev): DmaPort { return { dma: (req) => this.dma(dev, req) }; }

  /** Function-level reset: the engine aborts its transfers and drops page-request state, models reset. */
  resetFunction(dev: PciDev): void {
    this.engines.get(dev)?.reset();
    for (const m of this.mmio.modelsOf(dev)) m.reset();
  }

  /** Route where a request from `dev` for `address` would go (no side effects). */
  route(dev: PciDev, address: number): Route {
    return this.fabric.route(dev, address);
  }

  /** A DMA transfer by `dev` (or "bb:dd.f"). Never throws; see DmaResult for the outcome. */
  dma(who: PciDev | string, req: DmaRequest): DmaResult {
    this.stats.dma++;
    const dev = typeof who === 'string' ? this.host.topology.get(who) : who;
    if (dev === undefined) {
      return this.settled(String(who), req, { kind: 'blocked', at: null, why: 'no such function' }, 'aborted', `no function ${String(who)} on this machine`);
    }
    const bad = malformed(req);
    if (bad !== null) return this.settled(dev.shortBdf, req, { kind: 'blocked', at: null, why: bad }, 'aborted', `malformed request: ${bad}`);
    const route = this.fabric.route(dev, req.address);
    let result: DmaResult;
    switch (route.kind) {
      case 'blocked':
        this.stats.blocked++;
        result = this.settled(dev.shortBdf, req, route, 'blocked', route.why);
        break;
      case 'p2p':
        result = this.peerToPeer(dev, req, route);
        break;
      case 'upstream':
        result = (req.pasid ?? NO_PASID) === NO_PASID && this.msiWindow !== null && inRange(this.msiWindow, req.address)
          ? this.interrupt(dev, req, route)
          : this.engine(dev).start(req, route);
        break;
    }
    this.deliverMessages();
    return result;
  }

  /** Run every unit's command queue, then deliver the page responses it produced. */
  processCommands(): void {
    for (const u of this.unitList) u.port.processCommands?.();
    this.deliverMessages();
  }

  /** Deliver queued page responses to the functions they are addressed to; returns how many. */
  deliverMessages(): number {
    let n = 0;
    // A delivery may queue more responses (or deliver some itself, re-entering here): the queue is shared.
    while (this.inboxHead < this.inboxTail) {
      const at = this.inboxHead;
      const unit = this.inboxUnits[at] as MachineIommu<P>;
      const msg = this.inboxMsgs[at] as PageResponseMessage;
      this.inboxUnits[at] = null;
      this.inboxMsgs[at] = null;
      if (++this.inboxHead === this.inboxTail) this.inboxHead = this.inboxTail = 0;
      n++;
      const owners = this.ridOwners.get(unit)?.get(msg.rid);
      // The first owner's engine that expects the response, else the first owner's (every engine is created).
      let target: DmaEngine | undefined;
      let first: DmaEngine | undefined;
      if (owners !== undefined) {
        for (let i = 0; i < owners.length; i++) {
          const e = this.engine(owners[i] as PciDev);
          first ??= e;
          if (target === undefined && e.expects(msg)) target = e;
        }
      }
      target ??= first;
      if (target === undefined) {
        this.stats.undeliverableResponses++;
        this.note(`${unit.name}: page response for requester ID ${formatRid(msg.rid)}, which no function behind this unit carries: dropped`);
        continue;
      }
      target.deliverResponse(msg);
    }
    if (n > 0) this.mmio.poll();
    return n;
  }

  /** Transfers waiting for page responses or credits, over all functions. */
  pending(): DmaResult[] {
    return [...this.engines.values()].flatMap((e) => e.pending());
  }

  private note(line: string): void {
    this.log.push(line);
    if (this.log.length > 256) this.log.splice(0, this.log.length - 256);
  }

  private settled(device: string, req: DmaRequest, route: Route, status: DmaStatus, why: string, extra: Partial<MutableDmaResult> = {}): DmaResult {
    const r: MutableDmaResult = {
      id: ++this.nextId, device, op: req.op, address: req.address, length: req.length, pasid: req.pasid ?? NO_PASID,
      status, bytesDone: 0, route, why, data: null, fault: null, msi: null, pageRequests: 0, retries: 0, settled: true, ...extra,
    };
    this.opts.onSettled?.(r);
    return r;
  }

  private peerToPeer(dev: PciDev, req: DmaRequest, route: Route & { kind: 'p2p' }): DmaResult {
    this.stats.p2p++;
    const mem = this.barMemory(route.target, route.bar) as PhysicalMemory;
    const model = this.mmio.modelFor(route.target, route.bar);
    const n = Math.min(req.length, route.barRemaining);
    const cut = n < req.length ? `; the transfer ran past the end of ${route.target.shortBdf}'s BAR ${route.bar} and was cut there after ${n} bytes` : '';
    if (model !== undefined) {
      const data = req.op === 'write' ? (req.data as Uint8Array).slice(0, n) : (req.data ?? new Uint8Array(req.length));
      this.mmio.deliver(model, route.bar, route.offset, req.op === 'write' ? data : data.subarray(0, n), req.op === 'write');
      return this.settled(dev.shortBdf, req, route, 'p2p', `${route.why} (decoded by the device model)${cut}`, { bytesDone: n, data: req.op === 'write' ? null : data });
    }
    if (req.op === 'write') {
      mem.write(route.offset, (req.data as Uint8Array).subarray(0, n));
      return this.settled(dev.shortBdf, req, route, 'p2p', route.why + cut, { bytesDone: n });
    }
    const data = req.data ?? new Uint8Array(req.length);
    mem.read(route.offset, data.subarray(0, n));
    return this.settled(dev.shortBdf, req, route, 'p2p', route.why + cut, { bytesDone: n, data });
  }

  private interrupt(dev: PciDev, req: DmaRequest, route: Route & { kind: 'upstream' }): DmaResult {
    const window = `the interrupt window ${hex((this.msiWindow as AddressRange).base)}-${hex((this.msiWindow as AddressRange).base + (this.msiWindow as AddressRange).size - 1)}`;
    if (req.op === 'read') return this.settled(dev.shortBdf, req, route, 'ur', `${hex(req.address)} is in ${window}: a read there is an Unsupported Request`);
    if (req.length !== 4 || req.address % 4 !== 0) {
      return this.settled(dev.shortBdf, req, route, 'ur', `${hex(req.address)} is in ${window}: an interrupt message is one aligned dword, this write is ${req.length} bytes: Unsupported Request`);
    }
    const d = req.data as Uint8Array;
    const data = ((d[0] ?? 0) | ((d[1] ?? 0) << 8) | ((d[2] ?? 0) << 16) | ((d[3] ?? 0) << 24)) >>> 0;
    const msg: MsiMessage = {
      seq: ++this.msiSeq, device: dev.shortBdf, rid: route.rid, domain: route.domain, address: req.address, data,
      destination: (req.address >>> 12) & 0xff, vector: data & 0xff,
    };
    this.stats.msi++;
    this.msiLog.push(msg);
    const keep = this.opts.msiLogSize ?? 1024;
    if (this.msiLog.length > keep) this.msiLog.splice(0, this.msiLog.length - keep);
    this.opts.onMsi?.(msg);
    return this.settled(dev.shortBdf, req, route, 'msi',
      `${route.why}; ${hex(req.address)} is in ${window}: an interrupt message (vector ${msg.vector}, APIC ${msg.destination}; interrupt remapping is not modelled), not DMA`,
      { bytesDone: 4, msi: msg });
  }

  private assignUnits(): void {
    const platform = this.host.platform;
    if (platform.iommu === 'none' || this.factory === null) return;
    // Coverage is the hardware's (DMAR scopes, IVRS), not the kernel's: plan as if the IOMMU were on.
    const plan = planProbe({ ...this.booted, options: { ...this.booted.options, iommu: true } });
    const covered = new Set(plan.order);
    for (const dev of this.host.topology.devices()) {
      if (!covered.has(dev)) continue;
      const slot = this.slotFor(dev, plan.units);
      if (slot !== null) this.slotOf.set(dev, slot);
    }
    // Units are created in DMAR table order (Linux's registration order), then by segment.
    for (const slot of [...this.slots.values()].sort((a, b) => a.order - b.order || a.domain - b.domain)) this.materialise(slot);
    for (const [dev, slot] of this.slotOf) {
      const unit = this.materialise(slot);
      let owners = this.ridOwners.get(unit);
      if (owners === undefined) this.ridOwners.set(unit, (owners = new Map<number, PciDev[]>()));
      const rid = this.fabric.requesterId(dev).rid;
      const list = owners.get(rid) ?? [];
      list.push(dev);
      owners.set(rid, list);
    }
  }

  private slotFor(dev: PciDev, units: readonly ProbeUnit[]): UnitSlot<P> | null {
    let key: string;
    let name: string;
    let order = 0;
    let unitCaps: UnitSlot<P>['unitCaps'] = {};
    if (this.host.platform.iommu === 'intel' && units.length > 0) {
      const u = units.findIndex((unit) => unit.includeAll || unit.scope.some((s) => inScope(dev, s)));
      if (u < 0) return null;
      const unit = units[u] as ProbeUnit;
      order = u;
      unitCaps = {
        ...(unit.snoopControl !== undefined ? { snoopControl: unit.snoopControl } : {}),
        ...(unit.deviceTlb !== undefined ? { deviceTlb: unit.deviceTlb } : {}),
      };
      key = unit.includeAll ? `${u}@${dev.domain}` : `${u}`;
      name = unit.includeAll && dev.domain !== 0 ? `${unit.name} (segment ${dev.domain.toString(16).padStart(4, '0')})` : unit.name;
    } else {
      key = `segment ${dev.domain}`;
      name = `${this.host.platform.iommu} IOMMU, segment ${dev.domain.toString(16).padStart(4, '0')}`;
    }
    let slot = this.slots.get(key);
    if (slot === undefined) this.slots.set(key, (slot = { unit: null, key, name, domain: dev.domain, order, unitCaps }));
    return slot;
  }

  private materialise(slot: UnitSlot<P>): MachineIommu<P> {
    if (slot.unit !== null) return slot.unit;
    const index = this.unitList.length;
    const holder: { unit: MachineIommu<P> | null } = { unit: null };
    const sendToDevice: DeviceMessageSink = (msg) => {
      if (holder.unit !== null) {
        this.inboxUnits[this.inboxTail] = holder.unit;
        this.inboxMsgs[this.inboxTail++] = msg;
      }
    };
    const port = (this.factory as IommuFactory<P>)({ index, name: slot.name, domain: slot.domain, memory: this.memory, sendToDevice, unitCaps: slot.unitCaps });
    const unit: MachineIommu<P> = { index, name: slot.name, domain: slot.domain, port };
    holder.unit = unit;
    slot.unit = unit;
    this.unitList.push(unit);
    return unit;
  }
}

/** Why a request cannot even be formed, or null. */
function malformed(req: DmaRequest): string | null {
  if (req.op !== 'read' && req.op !== 'write') return 'op must be read or write';
  if (!Number.isSafeInteger(req.address) || req.address < 0) return `address ${String(req.address)} is not a bus address`;
  if (!Number.isSafeInteger(req.length) || req.length < 0 || req.length > MAX_DMA_LENGTH) return `length ${String(req.length)} (at most ${MAX_DMA_LENGTH})`;
  if (req.address + req.length > Number.MAX_SAFE_INTEGER) return 'the transfer runs past the end of the address space';
  if (req.op === 'write' && (req.data === undefined || req.data.length < req.length)) return `a write of ${req.length} bytes needs that much data`;
  if (req.op === 'read' && req.data !== undefined && req.data.length < req.length) return `the read buffer holds ${req.data.length} bytes, the transfer needs ${req.length}`;
  if (req.pasid !== undefined && req.pasid !== NO_PASID && (!Number.isInteger(req.pasid) || req.pasid < 0)) return `PASID ${String(req.pasid)}`;
  return null;
}

/** A DMAR scope entry names a device; a bridge entry also covers everything below it. */
function inScope(dev: PciDev, entry: string): boolean {
  const a = parseAddress(entry);
  if (a === undefined) return false;
  // Linux matches an SR-IOV VF by its PF (dmar_find_matched_drhd_unit uses pci_physfn()).
  for (let cur: PciDev | null = dev.physfn ?? dev; cur !== null; cur = cur.bus.self) {
    if (cur.domain === a.domain && cur.busNumber === a.bus && cur.devfn === a.devfn) return true;
  }
  return false;
}

function formatRid(rid: number): string {
  return `${(rid >> 8).toString(16).padStart(2, '0')}:${((rid >> 3) & 0x1f).toString(16).padStart(2, '0')}.${rid & 7}`;
}
