// The IOMMU core (Linux's drivers/iommu/iommu.c) over the simulated machine: one driver per IOMMU unit,
// every covered device probed into its IOMMU group (the group engine's IDs) with the group's default
// domain attached at boot, the DMA-ownership API, group and PASID attach/replace/detach, reserved regions,
// and the io-pgfault layer fed from the drivers' page-request queues. Drivers are reached only through
// IommuDriverOps (driver-ops.ts); devices outside the host topology (the selftest's mock bus) join later
// with addDevice(), each in its own group (generic_device_group), and leave with removeDevice().
//
// Rules, as iommu.c has them (names in brackets):
//  * [iommu_device_use_default_domain] owner_cnt ≠ 0 and (an owner is set, the group's domain is not its
//    default, or a PASID is attached) → EBUSY; else owner_cnt++.
//  * [__iommu_take_dma_ownership] the group's domain is not the default → EBUSY; else attach the blocking
//    domain, set the owner, owner_cnt++.
//  * [iommu_group_claim_dma_owner] null owner → EINVAL; owner_cnt ≠ 0 → EPERM.
//  * [iommu_device_claim_dma_owner] null owner → EINVAL; owner_cnt ≠ 0: another owner → EPERM, the same
//    owner → owner_cnt++.
//  * [__iommu_release_dma_ownership] owner_cnt = 0, owner = null, back to the default domain (refused, as
//    a WARN, while PASIDs are attached).
//  * [__iommu_attach_group] a group whose domain is neither its default nor its blocking domain → EBUSY; a
//    domain of another driver → EINVAL. [iommu_detach_group_handle] back to the core domain: blocking
//    while owned, else default.
//  * [iommu_attach_device_pasid] pasid 0 (IOMMU_NO_PASID) or ≥ the device's max_pasids → EINVAL,
//    occupied pasid_array slot → EBUSY; set on every device of the group with PASID support, rolled back
//    on failure. Ownership cannot be taken while PASIDs are attached (EBUSY). [iommu_replace_device_pasid] nothing attached → EINVAL; a failure keeps the old domain.
//    [iommu_detach_device_pasid] not attached → nothing.
//  * max_pasids = min(the IOMMU's 2^pasidWidth, the PCI PASID capability's 2^width) (pci_max_pasids; an
//    SR-IOV VF reads its PF's capability); no PASID capability → 0.
//  * The default domain is DMA (a paging domain that maps nothing until the kernel's DMA API maps
//    buffers into it), or IDENTITY with iommu=pt / iommu.passthrough=1 (iommu_def_domain_type).
//  * IOPF is enabled for a device while any of its attachments (RID or PASID) is to a domain with an
//    iopf_handler (what iommufd does around such an attach): the driver sets the context's PRE and the
//    io-pgfault layer gets the device. Detach and replace answer INVALID the pending groups of the attach
//    they end (iommufd_auto_response_faults).

import { PCI_EXT_CAP_ID_ATS } from '../../pci/regs.ts';
import type { PciDev } from '../../pci/dev.ts';
import type { GroupingRun } from '../../pci/groups/compute.ts';
import { devicePasids, disablePri, enablePasid, enablePri } from './pci-ats.ts';
import type { IommuGroup as GroupPlacement } from '../../pci/groups/types.ts';
import type { PageRequestRecord } from '../../hw/iommu/records.ts';
import { NO_PASID } from '../../hw/iommu/types.ts';
import type { IommuUnit } from '../../hw/iommu/unit.ts';
import type { Machine } from '../../hw/machine.ts';
import { PageResponseCode } from '../../hw/iommu/types.ts';
import { interruptRemappingOf } from '../../pci/spec.ts';
import { fail, ok, type Result } from '../errno.ts';
import { FrameAllocator } from '../mm/frame-allocator.ts';
import type { IommuDomain, PagingDomain } from './domain.ts';
import { IommuGroup, type AttachHandle } from './group.ts';
import { IopfQueue, type IopfGroup, type IopfOptions, type PageResponse } from './io-pgfault.ts';
import type { HwInfo, IommuCap, IommuDriverOps, PagingAllocOptions } from './driver-ops.ts';
import { IoasisIommuDriver } from './ioasis-iommu-driver.ts';
import { deviceResvRegions, type ResvRegion } from './resv-regions.ts';
import { GlobalPasidAllocator, type PasidAllocationPolicy } from './global-pasid.ts';

export interface IommuCoreOptions {
  /** Where the drivers' tables and queues come from (default: the upper half of the machine's memory). */
  readonly frames?: FrameAllocator;
  readonly iopf?: IopfOptions;
  /** Default domains IDENTITY (default: iommu=pt or iommu.passthrough=1 on the command line). */
  readonly passthrough?: boolean;
  /** Per-device PASIDs (Linux) or the 2021 system-wide allocator (global-pasid.ts). */
  readonly pasidAllocation?: PasidAllocationPolicy;
}

interface DeviceInfo {
  readonly dev: PciDev;
  readonly group: IommuGroup;
  readonly driver: IommuDriverOps;
  /** The requester IDs its DMA carries at the unit (the fabric's, and its own when different). */
  readonly rids: readonly number[];
  readonly maxPasids: number;
  /** Attachments of this device to domains with an iopf handler. */
  iopfUsers: number;
}

export class IommuCore {
  /** Every group: the host's from boot, then hot-plugged singletons (addDevice). */
  readonly groups: readonly IommuGroup[];
  /** The hardware drivers, one per unit (the ones poll() drains). */
  readonly drivers: readonly IoasisIommuDriver[];
  readonly iopf: IopfQueue;
  readonly passthrough: boolean;
  /** The system-wide PASID space (iommu_global_pasid_ida) and the allocation policy. */
  readonly globalPasids: GlobalPasidAllocator;
  /** WARN_ON lines (bounded). */
  readonly log: string[] = [];
  private readonly info = new Map<PciDev, DeviceInfo>();
  /** The device last looked up in `info` and its entry (see infoOf); forgotten whenever `info` changes. */
  private lastDev: PciDev | null = null;
  private lastInfo: DeviceInfo | undefined = undefined;
  private readonly byRid = new Map<IommuDriverOps, Map<number, PciDev>>();
  private readonly groupList: IommuGroup[] = [];
  /** Devices added by addDevice() (not in the host topology: the selftest's mock bus). */
  private readonly hotplugged = new Set<PciDev>();
  /**
   * byRid's map of each of `drivers` (same index): made at boot and only ever updated in place, so poll()
   * finds a driver's requester IDs without a lookup by driver.
   */
  private readonly driverRids: ReadonlyMap<number, PciDev>[] = [];
  /** poll()'s array of drained page requests (empty between polls), and whether a poll is running. */
  private readonly pollRequests: PageRequestRecord[] = [];
  private polling = false;

  constructor(readonly machine: Machine<IommuUnit>, readonly run: GroupingRun, opts: IommuCoreOptions = {}) {
    const booted = run.booted;
    const words = booted.options.cmdline.split(/\s+/);
    this.passthrough = opts.passthrough ?? (words.includes('iommu=pt') || words.includes('iommu.passthrough=1'));
    this.globalPasids = new GlobalPasidAllocator(opts.pasidAllocation ?? 'per-device');
    this.iopf = new IopfQueue((dev, pasid, prgi, code, pd) => this.respond(dev, pasid, prgi, code, pd), opts.iopf);
    const drivers: IoasisIommuDriver[] = [];
    const groups = this.groupList;
    this.drivers = drivers;
    this.groups = groups;
    if (!booted.options.iommu) return;
    const mem = machine.memory;
    const frames = opts.frames ?? new FrameAllocator(mem, { firstPfn: Math.floor(mem.frameCount / 2) });
    const driverOf = new Map<IommuUnit, IoasisIommuDriver>();
    for (const u of machine.units) {
      const d = new IoasisIommuDriver(u.port, mem, frames, { name: u.name, kick: () => machine.processCommands() });
      driverOf.set(u.port, d);
      drivers.push(d);
      const rids = new Map<number, PciDev>();
      this.byRid.set(d, rids);
      this.driverRids.push(rids);
    }
    for (const placement of run.groups) {
      const first = placement.devices[0];
      const unit = first === undefined ? null : machine.iommuFor(first);
      const driver = unit === null ? undefined : driverOf.get(unit.port);
      if (driver === undefined) continue;
      let def: IommuDomain;
      if (this.passthrough) def = driver.identityDomain;
      else {
        const r = driver.allocPagingDomain('dma');
        if (!r.ok) throw new Error(`no default domain for group ${placement.id}: ${r.reason}`);
        def = r.value;
      }
      const group = new IommuGroup(placement, driver, def);
      groups.push(group);
      for (const dev of placement.devices) {
        const fabricRid = machine.fabric.requesterId(dev).rid;
        const rids = fabricRid === dev.rid ? [dev.rid] : [fabricRid, dev.rid];
        const maxPasids = Math.min(driver.maxPasids, devicePasids(dev));
        // intel_iommu_probe_finalize() -> iommu_enable_pci_caps(): PASID on at probe when both sides support it.
        if (maxPasids > 0) enablePasid(dev);
        const di: DeviceInfo = { dev, group, driver, rids, maxPasids, iopfUsers: 0 };
        this.info.set(dev, di);
        this.lastDev = null;
        const map = this.byRid.get(driver) as Map<number, PciDev>;
        for (const rid of rids) {
          if (!map.has(rid)) map.set(rid, dev);
          driver.probeDevice(rid, maxPasids);
        }
      }
      // Boot: the group's default domain is attached (iommu_setup_default_domain).
      const r = this.setGroupDomain(group, def);
      if (!r.ok) throw new Error(`group ${group.id}: default domain attach failed: ${r.reason}`);
    }
  }

  // ---- Hot-plug (devices outside the host topology) ----

  /**
   * iommu_probe_device() for a device the boot-time group engine never saw (the selftest's mock bus): the
   * driver's probe_device, a new singleton group (generic_device_group) with the lowest free group ID, and
   * the driver's blocking domain as both default and current domain (the mock's def_domain_type). The
   * device's requester ID is `dev.rid` on `driver`; its max_pasids is min(driver, PASID capability).
   */
  addDevice(dev: PciDev, driver: IommuDriverOps): Result<IommuGroup> {
    if (this.info.has(dev)) return fail('EEXIST', `${dev.shortBdf} is already probed`);
    const used = new Set(this.groupList.map((g) => g.id));
    let id = 0;
    while (used.has(id)) id++;
    const placement: GroupPlacement = {
      id, devices: [dev], nonIsolated: false,
      steps: [{ rule: 'new-group', device: dev, text: `${dev.shortBdf} is alone in its group: its IOMMU driver's device_group is generic_device_group` }],
    };
    const group = new IommuGroup(placement, driver, driver.blockedDomain);
    const maxPasids = Math.min(driver.maxPasids, devicePasids(dev));
    const di: DeviceInfo = { dev, group, driver, rids: [dev.rid], maxPasids, iopfUsers: 0 };
    let map = this.byRid.get(driver);
    if (map === undefined) { map = new Map(); this.byRid.set(driver, map); }
    map.set(dev.rid, dev);
    driver.probeDevice(dev.rid, maxPasids);
    this.info.set(dev, di);
    this.lastDev = null;
    this.hotplugged.add(dev);
    this.groupList.push(group);
    this.groupList.sort((a, b) => a.id - b.id);
    return ok(group);
  }

  /**
   * iommu_release_device() of a hot-plugged device: its group must be back on its default domain with no
   * owner and no PASID attached (the caller detached and released it first), else EBUSY.
   */
  removeDevice(dev: PciDev): Result {
    const di = this.info.get(dev);
    if (di === undefined || !this.hotplugged.has(dev)) return fail('ENODEV', `${dev.shortBdf} was not added with addDevice`);
    const g = di.group;
    if (g.ownerCnt !== 0 || g.pasidArray.size > 0 || g.domain !== g.defaultDomain) return fail('EBUSY', `group ${g.id} is still in use`);
    if (di.iopfUsers > 0) this.iopf.removeDevice(dev, true);
    di.driver.releaseDevice?.(dev.rid);
    this.byRid.get(di.driver)?.delete(dev.rid);
    this.info.delete(dev);
    this.lastDev = null;
    this.hotplugged.delete(dev);
    this.groupList.splice(this.groupList.indexOf(g), 1);
    return ok();
  }

  /** Added with addDevice (not a host-topology device). */
  isHotplugged(dev: PciDev): boolean { return this.hotplugged.has(dev); }

  // ---- Lookup ----

  groupOf(dev: PciDev): IommuGroup | undefined { return this.infoOf(dev)?.group; }

  /**
   * info.get(dev), remembering the last answer: every fault looks its device up several times (routing,
   * response), and a Map lookup by object costs more than this compare.
   */
  private infoOf(dev: PciDev): DeviceInfo | undefined {
    if (dev === this.lastDev) return this.lastInfo;
    const di = this.info.get(dev);
    this.lastDev = dev;
    this.lastInfo = di;
    return di;
  }
  group(id: number): IommuGroup | undefined { return this.groups.find((g) => g.id === id); }
  driverOf(dev: PciDev): IommuDriverOps | undefined { return this.info.get(dev)?.driver; }
  /** The hardware driver of a host device (what tests and the isolation checker read registers of). */
  ioasisDriverOf(dev: PciDev): IoasisIommuDriver | undefined {
    const d = this.info.get(dev)?.driver;
    return d instanceof IoasisIommuDriver ? d : undefined;
  }
  /** device_iommu_capable(dev, cap): false for a device without an IOMMU. */
  deviceCapable(dev: PciDev, cap: IommuCap): boolean {
    const di = this.info.get(dev);
    return di !== undefined && di.driver.capable(di.rids[0] as number, cap);
  }
  /** ops->hw_info for `dev` (ENODEV without an IOMMU; the driver's EOPNOTSUPP for a type it lacks). */
  hwInfo(dev: PciDev, requestedType: number): Result<HwInfo> {
    const di = this.info.get(dev);
    if (di === undefined) return fail('ENODEV', `${dev.shortBdf} has no IOMMU`);
    return di.driver.hwInfo(di.rids[0] as number, requestedType);
  }
  /** The requester IDs the device's DMA carries at its IOMMU. */
  ridsOf(dev: PciDev): readonly number[] { return this.info.get(dev)?.rids ?? []; }
  /** dev->iommu->max_pasids. */
  maxPasids(dev: PciDev): number { return this.info.get(dev)?.maxPasids ?? 0; }
  /** iommu_get_domain_for_dev. */
  domainOf(dev: PciDev): IommuDomain | null { return this.groupOf(dev)?.domain ?? null; }
  /** iommu_get_domain_for_dev_pasid. */
  domainAtPasid(dev: PciDev, pasid: number): IommuDomain | null { return this.groupOf(dev)?.pasidArray.get(pasid)?.domain ?? null; }

  /** A paging domain from the device's IOMMU driver (domain_alloc_paging). */
  allocPagingDomain(dev: PciDev, type: 'dma' | 'unmanaged' = 'unmanaged', opts: PagingAllocOptions = {}): Result<PagingDomain> {
    const di = this.info.get(dev);
    if (di === undefined) return fail('ENODEV', `${dev.shortBdf} has no IOMMU group`);
    return di.driver.allocPagingDomain(type, { ...opts, rid: di.rids[0] as number });
  }

  /**
   * iommu_group_has_isolated_msi(): every device's MSIs are isolated (msi_device_has_isolated_msi). The
   * model has one answer per platform: the host's interrupt remapping (interruptRemappingOf).
   */
  groupHasIsolatedMsi(g: IommuGroup): boolean {
    // Hot-plugged mock devices have no MSIs; iommufd skips the check for them (iommufd_selftest_is_mock_dev).
    if (g.devices.some((d) => this.hotplugged.has(d))) return true;
    return g.devices.length === 0 || interruptRemappingOf(this.machine.host.platform);
  }

  /**
   * device_iommu_capable(dev, IOMMU_CAP_PCI_ATS_SUPPORTED), intel's info->ats_supported: the unit has a
   * device TLB (ECAP.DT) and the function has the ATS capability (pci_ats_supported).
   */
  pciAtsSupported(dev: PciDev): boolean {
    const di = this.info.get(dev);
    if (di === undefined || !di.driver.capable(di.rids[0] as number, 'device-tlb')) return false;
    return dev.config.findExtCapability(PCI_EXT_CAP_ID_ATS) !== 0;
  }

  /** iommu_get_resv_regions. */
  resvRegions(dev: PciDev): ResvRegion[] {
    if (!this.info.has(dev) || this.hotplugged.has(dev)) return [];
    return deviceResvRegions(this.machine.host.platform.iommu !== 'arm-smmu');
  }

  // ---- DMA ownership ----

  /** iommu_device_use_default_domain: a host driver without driver_managed_dma probes. */
  deviceUseDefaultDomain(dev: PciDev): Result {
    const g = this.groupOf(dev);
    if (g === undefined) return ok();
    if (g.ownerCnt !== 0 && (g.owner !== null || g.domain !== g.defaultDomain || g.pasidArray.size > 0)) {
      return fail('EBUSY', `group ${g.id} is owned for user-space DMA: a host driver cannot bind ${dev.shortBdf}`);
    }
    g.ownerCnt++;
    return ok();
  }

  /** iommu_device_unuse_default_domain: the host driver was removed. */
  deviceUnuseDefaultDomain(dev: PciDev): void {
    const g = this.groupOf(dev);
    if (g === undefined) return;
    if (g.ownerCnt === 0 || g.owner !== null || g.pasidArray.size > 0) { this.warn(`unuse_default_domain on group ${g.id} with owner_cnt ${g.ownerCnt}`); return; }
    g.ownerCnt--;
  }

  private takeOwnership(g: IommuGroup, owner: unknown): Result {
    if (g.domain !== g.defaultDomain) return fail('EBUSY', `group ${g.id} is not on its default domain`);
    if (g.pasidArray.size > 0) return fail('EBUSY', `group ${g.id} has PASIDs attached`);
    const r = this.setGroupDomain(g, g.blockingDomain);
    if (!r.ok) return r;
    g.owner = owner;
    g.ownerCnt++;
    return ok();
  }

  /** iommu_group_claim_dma_owner (legacy VFIO container). */
  groupClaimDmaOwner(g: IommuGroup, owner: unknown): Result {
    if (owner === null || owner === undefined) return fail('EINVAL', 'a DMA owner cannot be null');
    if (g.ownerCnt !== 0) return fail('EPERM', `group ${g.id} is already claimed (owner_cnt ${g.ownerCnt})`);
    return this.takeOwnership(g, owner);
  }

  /** iommu_device_claim_dma_owner (iommufd bind). */
  deviceClaimDmaOwner(dev: PciDev, owner: unknown): Result {
    const g = this.groupOf(dev);
    if (g === undefined) return fail('ENODEV', `${dev.shortBdf} has no IOMMU group`);
    if (owner === null || owner === undefined) return fail('EINVAL', 'a DMA owner cannot be null');
    if (g.ownerCnt !== 0) {
      if (g.owner !== owner) return fail('EPERM', `group ${g.id} is claimed by another owner`);
      g.ownerCnt++;
      return ok();
    }
    return this.takeOwnership(g, owner);
  }

  private releaseOwnership(g: IommuGroup): void {
    if (g.ownerCnt === 0 || g.owner === null || g.pasidArray.size > 0) {
      this.warn(`release of group ${g.id}: owner_cnt ${g.ownerCnt}, ${g.pasidArray.size} PASID(s) attached`);
      return;
    }
    g.ownerCnt = 0;
    g.owner = null;
    g.ridHandle = null;
    const r = this.setGroupDomain(g, g.defaultDomain);
    if (!r.ok) this.warn(`group ${g.id}: default domain re-attach failed: ${r.reason}`);
  }

  /** iommu_group_release_dma_owner. */
  groupReleaseDmaOwner(g: IommuGroup): void { this.releaseOwnership(g); }

  /** iommu_device_release_dma_owner. */
  deviceReleaseDmaOwner(dev: PciDev): void {
    const g = this.groupOf(dev);
    if (g === undefined) return;
    if (g.ownerCnt > 1) g.ownerCnt--;
    else this.releaseOwnership(g);
  }

  /** iommu_group_dma_owner_claimed: VFIO's VIABLE is its negation for other users. */
  dmaOwnerClaimed(g: IommuGroup): boolean { return g.dmaOwnerClaimed; }

  // ---- Group attach ----

  /** iommu_attach_group_handle (and iommu_attach_group with no cookie). */
  attachGroup(domain: IommuDomain, g: IommuGroup, cookie?: unknown): Result {
    const snoop = snoopCompatible(domain, g.driver);
    if (!snoop.ok) return snoop;
    if (domain.owner !== g.driver) return fail('EINVAL', `the domain belongs to another IOMMU driver than group ${g.id}'s`);
    if (g.ridHandle !== null) return fail('EBUSY', `group ${g.id} already has an attach handle: use replace`);
    if (g.domain !== g.defaultDomain && g.domain !== g.blockingDomain) return fail('EBUSY', `group ${g.id} is attached to another domain`);
    const r = this.setGroupDomain(g, domain);
    if (!r.ok) return r;
    g.ridHandle = { domain, cookie };
    return ok();
  }

  /** iommu_replace_group_handle: move the group to `domain` without passing through blocking. */
  replaceGroupHandle(g: IommuGroup, domain: IommuDomain, cookie?: unknown): Result {
    const snoop = snoopCompatible(domain, g.driver);
    if (!snoop.ok) return snoop;
    if (domain.owner !== g.driver) return fail('EINVAL', `the domain belongs to another IOMMU driver than group ${g.id}'s`);
    const r = this.setGroupDomain(g, domain);
    if (!r.ok) return r;
    g.ridHandle = { domain, cookie };
    return ok();
  }

  /** iommu_detach_group_handle: back to the blocking domain while owned, else the default domain. */
  detachGroup(g: IommuGroup): void {
    g.ridHandle = null;
    const r = this.setGroupDomain(g, g.owner !== null ? g.blockingDomain : g.defaultDomain);
    if (!r.ok) this.warn(`group ${g.id}: detach failed: ${r.reason}`);
  }

  /** __iommu_group_set_domain: every device's RIDs, rolled back on failure; pending faults of the old attach answered. */
  private setGroupDomain(g: IommuGroup, domain: IommuDomain): Result {
    const old = g.domain;
    if (old === domain) return ok();
    const done: DeviceInfo[] = [];
    for (const dev of g.devices) {
      const di = this.info.get(dev) as DeviceInfo;
      for (const rid of di.rids) {
        const r = g.driver.attachDev(rid, domain);
        if (!r.ok) {
          for (const d of done) for (const x of d.rids) g.driver.attachDev(x, old);
          for (const x of di.rids) g.driver.attachDev(x, old);
          return r;
        }
      }
      done.push(di);
    }
    g.domain = domain;
    for (const dev of g.devices) {
      const di = this.info.get(dev) as DeviceInfo;
      if (old.iopfHandler !== null) {
        this.iopf.autoRespond(dev, NO_PASID, old);
        this.iopfPut(di);
      }
      if (domain.iopfHandler !== null) this.iopfGet(di);
    }
    return ok();
  }

  // ---- PASID attach ----

  // What attach and replace at a PASID both check first: the device's group (ENODEV), cache coherency,
  // the domain's driver, not the blocking domain, not IOMMU_NO_PASID, the PASID range (EINVAL).
  private pasidAttachChecks(domain: IommuDomain, dev: PciDev, pasid: number, blockedWhy: string): Result<IommuGroup> {
    const di = this.info.get(dev);
    if (di === undefined) return fail('ENODEV', `${dev.shortBdf} has no IOMMU group`);
    const snoop = snoopCompatible(domain, di.driver);
    if (!snoop.ok) return snoop;
    if (domain.owner !== di.driver) return fail('EINVAL', 'the domain belongs to another IOMMU driver');
    if (domain.type === 'blocked') return fail('EINVAL', blockedWhy);
    if (!Number.isInteger(pasid) || pasid === 0) return fail('EINVAL', 'PASID 0 is IOMMU_NO_PASID: the RID has its own attach');
    const check = this.checkPasid(di.group, dev, pasid);
    return check.ok ? ok(di.group) : check;
  }

  /** iommu_attach_device_pasid. */
  attachDevicePasid(domain: IommuDomain, dev: PciDev, pasid: number, cookie?: unknown): Result {
    const checked = this.pasidAttachChecks(domain, dev, pasid, 'attach the blocking domain with removeDevicePasid');
    if (!checked.ok) return checked;
    const g = checked.value;
    if (g.pasidArray.has(pasid)) return fail('EBUSY', `PASID ${pasid} of group ${g.id} is already attached: use replace`);
    const r = this.setGroupPasid(g, pasid, domain, null);
    if (!r.ok) return r;
    g.pasidArray.set(pasid, { domain, cookie });
    return ok();
  }

  /** iommu_replace_device_pasid. */
  replaceDevicePasid(domain: IommuDomain, dev: PciDev, pasid: number, cookie?: unknown): Result {
    const checked = this.pasidAttachChecks(domain, dev, pasid, 'replace with the blocking domain is a detach');
    if (!checked.ok) return checked;
    const g = checked.value;
    const cur = g.pasidArray.get(pasid);
    if (cur === undefined) return fail('EINVAL', `PASID ${pasid} of group ${g.id} is not attached`);
    if (cur.domain !== domain) {
      const r = this.setGroupPasid(g, pasid, domain, cur.domain);
      if (!r.ok) return r;
    }
    g.pasidArray.set(pasid, { domain, cookie });
    return ok();
  }

  /** iommu_detach_device_pasid: a PASID not attached is left alone. */
  removeDevicePasid(dev: PciDev, pasid: number): void {
    const g = this.groupOf(dev);
    const cur = g?.pasidArray.get(pasid);
    if (g === undefined || cur === undefined) return;
    for (const d of this.pasidDevices(g)) {
      for (const rid of d.rids) d.driver.removeDevPasid(rid, pasid);
      if (cur.domain.iopfHandler !== null) {
        this.iopf.autoRespond(d.dev, pasid, cur.domain);
        this.iopfPut(d);
      }
    }
    g.pasidArray.delete(pasid);
  }

  /** The attach handle at (group of dev, pasid). */
  pasidHandle(dev: PciDev, pasid: number): AttachHandle | undefined { return this.groupOf(dev)?.pasidArray.get(pasid); }

  private checkPasid(g: IommuGroup, dev: PciDev, pasid: number): Result {
    const di = this.info.get(dev) as DeviceInfo;
    if (pasid < 0 || pasid >= di.maxPasids) return fail('EINVAL', `PASID ${pasid} is not below ${dev.shortBdf}'s max_pasids (${di.maxPasids})`);
    if (g !== di.group) throw new Error('device outside its group');
    return ok();
  }

  /**
   * The devices of `g` a PASID attach is applied to: those with PASID support. A sibling whose PASID
   * table is too small fails in the driver (EINVAL) and the attach is rolled back.
   */
  private pasidDevices(g: IommuGroup): DeviceInfo[] {
    return g.devices.map((d) => this.info.get(d) as DeviceInfo).filter((d) => d.maxPasids > 0);
  }

  /** __iommu_set_group_pasid, with rollback to `old` (null: blocked). */
  private setGroupPasid(g: IommuGroup, pasid: number, domain: IommuDomain, old: IommuDomain | null): Result {
    const devs = this.pasidDevices(g);
    const done: DeviceInfo[] = [];
    for (const d of devs) {
      for (let k = 0; k < d.rids.length; k++) {
        const r = d.driver.setDevPasid(d.rids[k] as number, pasid, domain);
        if (!r.ok) {
          // The RID that failed keeps what it had (the driver's contract); the ones already set go back.
          const undo = [...done.flatMap((u) => u.rids.map((x) => [u, x] as const)), ...d.rids.slice(0, k).map((x) => [d, x] as const)];
          for (const [u, x] of undo) {
            if (old === null) u.driver.removeDevPasid(x, pasid);
            else void u.driver.setDevPasid(x, pasid, old);
          }
          return r;
        }
      }
      done.push(d);
    }
    for (const d of devs) {
      if (old?.iopfHandler != null) {
        this.iopf.autoRespond(d.dev, pasid, old);
        this.iopfPut(d);
      }
      if (domain.iopfHandler !== null) this.iopfGet(d);
    }
    return ok();
  }

  // ---- IO page faults ----

  private iopfGet(di: DeviceInfo): void {
    if (di.iopfUsers++ > 0) return;
    this.iopf.addDevice(di.dev);
    for (const rid of di.rids) di.driver.setPageRequests(rid, true);
    enablePri(di.dev);
  }

  private iopfPut(di: DeviceInfo): void {
    if (di.iopfUsers === 0 || --di.iopfUsers > 0) return;
    this.iopf.removeDevice(di.dev, true);
    for (const rid of di.rids) di.driver.setPageRequests(rid, false);
    disablePri(di.dev);
  }

  /**
   * Remove the fault handler of `dev` (iopf_queue_remove_device / the 2019 unregister): answers every
   * pending group INVALID, or EBUSY with `unregisterWithPendingFaults: 'ebusy'` and pending groups.
   * Page requests from the device are refused from then on.
   */
  disableIopf(dev: PciDev): Result {
    const di = this.info.get(dev);
    if (di === undefined) return fail('ENODEV', `${dev.shortBdf} has no IOMMU group`);
    const r = this.iopf.removeDevice(dev);
    if (!r.ok) return r;
    di.iopfUsers = 0;
    for (const rid of di.rids) di.driver.setPageRequests(rid, false);
    return ok();
  }

  /** iommu_page_response. `privateData`: with privateDataCookie, the sequence number the group carried. */
  pageResponse(dev: PciDev, pasid: number, prgi: number, code: PageResponse, privateData?: readonly [number, number] | null): Result {
    return this.iopf.pageResponse(dev, pasid, prgi, code, privateData);
  }

  /** Answer a delivered group (pageResponse with the group's own identifiers). */
  respondGroup(group: IopfGroup, code: PageResponse): Result {
    return this.pageResponse(group.dev, group.pasid, group.prgi, code, group.privateData);
  }

  private respond(dev: PciDev, pasid: number, prgi: number, code: PageResponseCode, pd: readonly [number, number] | null): void {
    const di = this.infoOf(dev);
    if (di === undefined) return;
    di.driver.pageResponse(di.rids[0] as number, pasid, prgi, code, pd);
  }

  /**
   * The IOMMU interrupt handlers: drain every driver's fault queue into its log and its page-request
   * queue into the io-pgfault layer. Returns the number of records read.
   */
  poll(): number {
    // Polled on every fault: the drained requests go through one reused array (a poll from inside a fault
    // handler, which would overwrite it mid-walk, gets its own).
    // (Emptied with pop(): `length = 0` is a runtime call that also gives the backing store back.)
    const requests = this.polling ? [] : this.pollRequests;
    this.polling = true;
    let n = 0;
    try {
      for (let i = 0; i < this.drivers.length; i++) {
        const d = this.drivers[i] as IoasisIommuDriver;
        n += d.drain(requests);
        if (d.pageRequestOverflow) this.iopf.discardPartials();
        if (requests.length === 0) continue;
        const devs = this.driverRids[i];
        for (let k = 0; k < requests.length; k++) this.reportPageRequest(d, devs, requests[k] as PageRequestRecord);
        while (requests.length > 0) requests.pop();
      }
    } finally {
      while (requests.length > 0) requests.pop();
      if (requests === this.pollRequests) this.polling = false;
    }
    return n;
  }

  /**
   * iommu_report_device_fault() for a page request that does not come through a hardware queue (the
   * selftest's TRIGGER_IOPF): the same io-pgfault path as a drained record. EINVAL when IOPF is not
   * enabled for the device (no fault_param) or the group finds no domain with a handler.
   */
  reportDeviceFault(dev: PciDev, rec: Omit<PageRequestRecord, 'rid'>): Result {
    const di = this.info.get(dev);
    if (di === undefined) return fail('ENODEV', `${dev.shortBdf} has no IOMMU`);
    if (!this.iopf.enabled(dev)) return fail('EINVAL', `${dev.shortBdf} has IO page faults disabled (no fault handler attached)`);
    const full: PageRequestRecord = { ...rec, rid: di.rids[0] as number };
    const before = this.iopf.stats.discarded;
    this.iopf.report(dev, full, this);
    return this.iopf.stats.discarded === before ? ok() : fail('EINVAL', `no domain with a fault handler at ${rec.pasid === NO_PASID ? 'the RID' : `PASID ${rec.pasid}`}`);
  }

  private reportPageRequest(d: IommuDriverOps, devs: ReadonlyMap<number, PciDev> | undefined, rec: PageRequestRecord): void {
    const dev = devs?.get(rec.rid);
    if (dev === undefined) {
      // No device behind this requester ID: answer so nothing waits forever.
      if (rec.lastInGroup) d.pageResponse(rec.rid, rec.pasid, rec.prgi, PageResponseCode.Invalid, rec.privateData);
      return;
    }
    this.iopf.report(dev, rec, this);
  }

  /**
   * find_fault_handler(): the domain at the fault's PASID; with none there, a driver whose PASID table is
   * the user's (ops->user_pasid_table) sends it to the NESTED domain at the RID.
   */
  faultDomain(dev: PciDev, pasid: number): IommuDomain | null {
    if (pasid === NO_PASID) return this.domainOf(dev);
    const at = this.domainAtPasid(dev, pasid);
    if (at !== null) return at;
    const rid = this.domainOf(dev);
    return this.infoOf(dev)?.driver.userPasidTable === true && rid?.type === 'nested' ? rid : null;
  }

  /** Fault records of `dev` (by its requester IDs) in its driver's log, oldest first. */
  faultsOf(dev: PciDev): ReturnType<IommuDriverOps['poll']>['faults'] {
    const di = this.info.get(dev);
    if (di === undefined) return [];
    return di.driver.faultLog.filter((f) => di.rids.includes(f.rid));
  }

  /** WARN_ON(): a kernel-side bug (not a user error) is logged, and execution goes on as Linux's does. */
  warn(line: string): void {
    this.log.push(`WARNING: ${line}`);
    if (this.log.length > 256) this.log.splice(0, this.log.length - 256);
  }
}

/**
 * intel paging_domain_compatible()'s snoop rule, checked before anything else about the domain: a domain
 * that forces snooping cannot be attached to a device whose unit has no snoop control (EINVAL).
 */
function snoopCompatible(domain: IommuDomain, driver: { readonly name: string; readonly enforceCacheCoherency: boolean }): Result {
  if (domain.forceSnooping && !driver.enforceCacheCoherency) {
    return fail('EINVAL', `the domain enforces cache coherency and ${driver.name} has no snoop control`);
  }
  return ok();
}
