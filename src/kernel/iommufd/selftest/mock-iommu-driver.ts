// The selftest's mock IOMMU driver (drivers/iommu/iommufd/selftest.c, mock_ops): the IOMMU behind every
// device on the iommufd_mock bus. It keeps per-device state by requester ID (the core's handle) and does
// no DMA; what the tests observe is the core and iommufd above it:
//
//  * max_pasids 1 << 20; user_pasid_table (PASID faults go to the RID's nested domain); the blocking domain is the default domain; no identity domain;
//  * capable(): DIRTY_TRACKING unless the device is MOCK_FLAGS_DEVICE_NO_DIRTY (CACHE_COHERENCY is always
//    true, ENFORCE_CACHE_COHERENCY never); nesting parents are accepted;
//  * hw_info: DEFAULT or SELFTEST (else EOPNOTSUPP) → IOMMU_HW_INFO_TYPE_SELFTEST {flags 0, test_reg 0xdeadbeef};
//  * domain_alloc_paging_flags: DIRTY on a NO_DIRTY device → EOPNOTSUPP; data other than NONE/SELFTEST →
//    EOPNOTSUPP; SELFTEST data shorter than its iotlb field → EINVAL; pagetable_type DEFAULT or HUGE
//    (AMDV1, the real AMD format, is not modelled: EOPNOTSUPP);
//  * domain_alloc_nested (on a paging parent): flags beyond ALLOC_PASID → EOPNOTSUPP, a parent that is not
//    paging → EINVAL, then the mock nested domain's data rules (mock-nested-domain.ts);
//  * the vIOMMU ops of mock-viommu.ts (nested domains on a vIOMMU, its cache invalidation, HW queues);
//  * attach_dev: a dirty-tracking domain on a NO_DIRTY device → EINVAL; a nested domain of a vIOMMU needs
//    the device's vDEVICE on that vIOMMU (ENOENT), and the device then remembers both (TRIGGER_VEVENT);
//  * set_dev_pasid at PASID 1024: the first non-blocking set arms a fake error, the next fails ENOMEM (and
//    disarms it), a blocking set disarms it, so the core's rollback on replace is exercised;
//  * page_response does nothing; there is no hardware queue to poll.

import type { FaultRecord, PageRequestRecord } from '../../../hw/iommu/records.ts';
import type { PageResponseCode } from '../../../hw/iommu/types.ts';
import { fail, ok, type Result } from '../../errno.ts';
import { StaticDomain, type IommuDomain, type PagingDomain } from '../../iommu/domain.ts';
import type { HwInfo, IommuCap, IommuDriverOps, PagingAllocOptions } from '../../iommu/driver-ops.ts';
import { copyStructFromUser, u32At, type IommuUserData } from '../../iommu/user-data.ts';
import type { ViommuCore } from '../../iommu/viommu-ops.ts';
import type { PciDev } from '../../../pci/dev.ts';
import {
  HWPT_SELFTEST_MIN, HWPT_SELFTEST_SIZE, IOMMU_HW_INFO_SELFTEST_REGVAL, IOMMU_HW_INFO_TYPE_SELFTEST, IOMMU_HWPT_DATA_NONE, IOMMU_HWPT_DATA_SELFTEST,
  IOMMU_TEST_PASID_RESERVED, MOCK_FLAGS_DEVICE_NO_DIRTY, MOCK_IOMMUPT_AMDV1, MOCK_IOMMUPT_DEFAULT, MOCK_IOMMUPT_HUGE, MOCK_PASID_WIDTH,
} from './constants.ts';
import { MockPagingDomain } from './mock-domain.ts';
import { mockNestedAlloc, MockNestedDomain } from './mock-nested-domain.ts';
import type { MockViommuDriver } from './mock-viommu.ts';

/** IOMMU_HWPT_ALLOC_PASID, the one flag domain_alloc_nested accepts. */
const ALLOC_PASID = 1 << 2;

/** sizeof(struct iommu_test_hw_info) {u32 flags; u32 test_reg}. */
const TEST_HW_INFO_SIZE = 8;

/** struct mock_dev, the part the driver keeps. */
interface MockDevState {
  readonly flags: number;
  readonly dev: PciDev | undefined;
  /** mdev->viommu and mdev->vdev_id: set by attaching a nested domain of a vIOMMU. */
  viommu: ViommuCore | null;
  vdevId: bigint;
  ridDomain: IommuDomain;
  readonly pasids: Map<number, IommuDomain>;
  /** mdev->pasid_1024_fake_error. */
  pasid1024FakeError: boolean;
}

export class MockIommuDriver implements IommuDriverOps {
  readonly name = 'iommufd_selftest_iommu';
  readonly maxPasids = 2 ** MOCK_PASID_WIDTH;
  readonly blockedDomain: IommuDomain;
  readonly identityDomain = null;
  readonly enforceCacheCoherency = false;
  readonly userPasidTable = true;
  readonly faultLog: readonly FaultRecord[] = [];
  private readonly devs = new Map<number, MockDevState>();
  private readonly flagsByRid = new Map<number, { flags: number; dev: PciDev | undefined }>();
  private nextDomainId = 1;

  constructor(readonly viommu: MockViommuDriver) {
    this.blockedDomain = new StaticDomain(this.nextDomainId++, 'blocked', this);
    viommu.setDomainSource({ owner: this, nextDomainId: () => this.nextDomainId++ });
  }

  /** mock_dev_create(): the device's flags, known before the core probes it. */
  registerDevice(rid: number, flags: number, dev?: PciDev): void { this.flagsByRid.set(rid, { flags, dev }); }

  /** The device's MOCK_FLAGS_DEVICE_* flags (0 for an unknown RID). */
  deviceFlags(rid: number): number { return this.flagsByRid.get(rid)?.flags ?? 0; }

  capable(rid: number, cap: IommuCap): boolean {
    if (cap === 'dirty-tracking') return (this.deviceFlags(rid) & MOCK_FLAGS_DEVICE_NO_DIRTY) === 0;
    // The mock builds nested domains over any paging parent (domain_alloc_nested), so NEST_PARENT is fine.
    return cap === 'nesting';
  }

  hwInfo(_rid: number, requestedType: number): Result<HwInfo> {
    if (requestedType !== 0 && requestedType !== IOMMU_HW_INFO_TYPE_SELFTEST) {
      return fail('EOPNOTSUPP', `the mock IOMMU reports SELFTEST data, not type 0x${(requestedType >>> 0).toString(16)}`);
    }
    const data = new Uint8Array(TEST_HW_INFO_SIZE);
    new DataView(data.buffer).setUint32(4, IOMMU_HW_INFO_SELFTEST_REGVAL, true);
    return ok({ type: IOMMU_HW_INFO_TYPE_SELFTEST, data });
  }

  allocPagingDomain(type: 'dma' | 'unmanaged', opts: PagingAllocOptions = {}): Result<PagingDomain> {
    const dirty = opts.dirtyTracking === true;
    if (dirty && opts.rid !== undefined && !this.capable(opts.rid, 'dirty-tracking')) {
      return fail('EOPNOTSUPP', 'the mock device was created with MOCK_FLAGS_DEVICE_NO_DIRTY: no dirty tracking');
    }
    let pagetable = MOCK_IOMMUPT_DEFAULT;
    const ud = opts.userData;
    if (ud !== undefined) {
      if (ud.type !== IOMMU_HWPT_DATA_SELFTEST && ud.type !== IOMMU_HWPT_DATA_NONE) {
        return fail('EOPNOTSUPP', `the mock takes IOMMU_HWPT_DATA_SELFTEST paging data, not type 0x${(ud.type >>> 0).toString(16)}`);
      }
      const b = copyStructFromUser(ud, IOMMU_HWPT_DATA_SELFTEST, HWPT_SELFTEST_SIZE, HWPT_SELFTEST_MIN);
      if (!b.ok) return b;
      pagetable = u32At(b.value, 4);
    }
    if (pagetable === MOCK_IOMMUPT_AMDV1) return fail('EOPNOTSUPP', 'MOCK_IOMMUPT_AMDV1 (the real AMDv1 format) is not modelled by ioasis');
    if (pagetable !== MOCK_IOMMUPT_DEFAULT && pagetable !== MOCK_IOMMUPT_HUGE) return fail('EOPNOTSUPP', `unknown mock pagetable_type ${pagetable}`);
    return ok(new MockPagingDomain({
      id: this.nextDomainId++, type, owner: this, huge: pagetable === MOCK_IOMMUPT_HUGE, dirty, pasid: opts.pasid === true,
    }));
  }

  /** mock_domain_alloc_nested(): a nested domain on a paging parent of this driver. */
  allocNestedDomain(parent: IommuDomain, flags: number, data: IommuUserData): Result<IommuDomain> {
    if ((flags & ~ALLOC_PASID) !== 0) return fail('EOPNOTSUPP', `flags 0x${(flags >>> 0).toString(16)}: the mock's nested domains take only ALLOC_PASID`);
    if (!parent.isPaging() || !(parent instanceof MockPagingDomain)) return fail('EINVAL', `domain ${parent.id} is not a mock paging domain`);
    return mockNestedAlloc(this.nextDomainId++, this, parent, data, null);
  }

  /** The mock device's state at `rid` as a test op sees it: its viommu and vdev_id after a nested attach. */
  attachedViommu(rid: number): { viommu: ViommuCore; vdevId: bigint } | null {
    const st = this.devs.get(rid);
    return st?.viommu == null ? null : { viommu: st.viommu, vdevId: st.vdevId };
  }

  probeDevice(rid: number, _maxPasids: number): void {
    const reg = this.flagsByRid.get(rid);
    this.devs.set(rid, { flags: reg?.flags ?? 0, dev: reg?.dev, viommu: null, vdevId: 0n, ridDomain: this.blockedDomain, pasids: new Map(), pasid1024FakeError: false });
  }

  releaseDevice(rid: number): void {
    const dev = this.devs.get(rid)?.dev;
    if (dev !== undefined) this.viommu.forgetDev(dev);
    this.devs.delete(rid);
    this.flagsByRid.delete(rid);
  }

  /** mock_domain_nop_attach(). */
  attachDev(rid: number, domain: IommuDomain): Result {
    const st = this.state(rid);
    if (domain.isPaging() && domain.dirtyOps !== null && (st.flags & MOCK_FLAGS_DEVICE_NO_DIRTY) !== 0) {
      return fail('EINVAL', 'a dirty-tracking domain cannot be attached to a MOCK_FLAGS_DEVICE_NO_DIRTY device');
    }
    let viommu: ViommuCore | null = null;
    let vdevId = 0n;
    if (domain instanceof MockNestedDomain && domain.viommu !== null) {
      viommu = domain.viommu;
      const id = st.dev === undefined ? fail('ENOENT', 'not a mock bus device') : viommu.getVdevId(st.dev);
      if (!id.ok) return fail('ENOENT', 'a vDEVICE must be allocated before attaching to a nested HWPT of its vIOMMU');
      vdevId = id.value;
    }
    st.viommu = viommu;
    st.vdevId = vdevId;
    st.ridDomain = domain;
    return ok();
  }

  /** mock_domain_set_dev_pasid_nop(), with the PASID 1024 fake error. */
  setDevPasid(rid: number, pasid: number, domain: IommuDomain): Result {
    const st = this.state(rid);
    if (pasid === IOMMU_TEST_PASID_RESERVED) {
      if (domain.type === 'blocked') st.pasid1024FakeError = false;
      else if (st.pasid1024FakeError) {
        st.pasid1024FakeError = false;
        return fail('ENOMEM', 'the mock driver fails every second set_dev_pasid at PASID 1024 (IOMMU_TEST_PASID_RESERVED) by design');
      } else st.pasid1024FakeError = true;
    }
    if (domain.type === 'blocked') st.pasids.delete(pasid);
    else st.pasids.set(pasid, domain);
    return ok();
  }

  removeDevPasid(rid: number, pasid: number): void {
    void this.setDevPasid(rid, pasid, this.blockedDomain);
  }

  domainAt(rid: number, pasid = 0): IommuDomain | null {
    const st = this.devs.get(rid);
    if (st === undefined) return null;
    return pasid === 0 ? st.ridDomain : (st.pasids.get(pasid) ?? null);
  }

  setPageRequests(_rid: number, _enabled: boolean): void { /* iopf_queue_add_device only: no hardware to program */ }

  pageResponse(_rid: number, _pasid: number, _prgi: number, _code: PageResponseCode, _pd: readonly [number, number] | null): void {
    /* mock_domain_page_response: nothing waits for the answer */
  }

  poll(): { faults: FaultRecord[]; pageRequests: PageRequestRecord[]; pageRequestOverflow: boolean } {
    return { faults: [], pageRequests: [], pageRequestOverflow: false };
  }

  private state(rid: number): MockDevState {
    const st = this.devs.get(rid);
    if (st === undefined) throw new Error(`mock IOMMU: RID ${rid} was never probed`);
    return st;
  }
}
