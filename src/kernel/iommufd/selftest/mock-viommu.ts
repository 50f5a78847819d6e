// The mock driver's vIOMMU (selftest.c mock_viommu_ops, kernel-selftest-oracle §7, §8). The mock IOMMU
// driver installs one as its `viommu` ops; tests may also install one on an ioasis driver instance
// (installOn) to exercise the generic vIOMMU objects behind a PCI device. Behaviour:
//
//  * get_viommu_size: IOMMU_VIOMMU_TYPE_SELFTEST only (0 otherwise: the core answers EOPNOTSUPP).
//  * viommu_init with data (struct iommu_viommu_selftest, at least up to out_data): two driver pages
//    registered for mmap, page 0 starting with in_data; out_data = in_data (loopback) and the region's
//    offset and length written back.
//  * alloc_domain_nested: flags beyond ALLOC_PASID → EOPNOTSUPP, then the mock nested domain's rules.
//  * cache_invalidate (IOMMU_VIOMMU_INVALIDATE_DATA_SELFTEST {flags, vdev_id, cache_id}): zero entries of
//    the right type is fine; the whole array copied first (type, entry_num 0 → EINVAL; a longer entry with
//    a non-zero tail → E2BIG; EFAULT); then per entry unknown flags → EOPNOTSUPP, cache_id > 3 → EINVAL, no
//    device with that vdev_id → EINVAL; FLAG_ALL clears the device's four cache entries. `done` counts.
//  * HW queues of IOMMU_HW_QUEUE_TYPE_SELFTEST only: index ≥ 2 → EINVAL, a taken index → EEXIST, index > 0
//    without the previous one → EIO, a base PA that is not the parent's translation → EFAULT; each queue
//    depends on the previous one (so they go in descending order).
//
// The driver pages come from `pages` (a bump allocator over a physical range the driver owns, or the
// kernel's frame allocator), as kzalloc'd pages would.

import type { PhysicalMemory } from '../../../hw/memory/physical-memory.ts';
import type { PciDev } from '../../../pci/dev.ts';
import { fail, ok, type Result } from '../../errno.ts';
import type { IommuDomain, PagingDomain } from '../../iommu/domain.ts';
import type { IommuDriverOps } from '../../iommu/driver-ops.ts';
import { copyStructFromFullUserArray, copyStructFromUser, copyStructToUser, u32At, type IommuUserData, type IommuUserDataArray } from '../../iommu/user-data.ts';
import type { DriverObjectHooks, HwQueueCore, VdeviceCore, ViommuCore, ViommuDriverOps, ViommuOps } from '../../iommu/viommu-ops.ts';
import {
  IOMMU_HW_QUEUE_TYPE_SELFTEST, IOMMU_TEST_DEV_CACHE_DEFAULT, IOMMU_TEST_HW_QUEUE_MAX, IOMMU_TEST_INVALIDATE_FLAG_ALL,
  IOMMU_VEVENTQ_TYPE_SELFTEST, IOMMU_VIOMMU_INVALIDATE_DATA_SELFTEST, IOMMU_VIOMMU_TYPE_SELFTEST, MOCK_DEV_CACHE_ID_MAX,
  MOCK_DEV_CACHE_NUM, VIOMMU_INVALIDATE_SELFTEST_SIZE, VIOMMU_SELFTEST_MIN, VIOMMU_SELFTEST_SIZE,
} from './constants.ts';
import { mockNestedAlloc } from './mock-nested-domain.ts';

const PAGE = 4096;
/** IOMMU_HWPT_ALLOC_PASID, the one flag the mock's alloc_domain_nested accepts. */
const ALLOC_PASID = 1 << 2;

/** What the driver keeps per vIOMMU (struct mock_viommu). */
export interface MockViommu {
  readonly core: ViommuCore;
  readonly parent: PagingDomain;
  readonly hwQueues: (HwQueueCore | null)[];
  /** Physical address of its two pages and their mmap offset (0 when allocated without data). */
  pa: number;
  mmapOffset: number;
  destroyed: boolean;
}

/** Two physically contiguous driver pages (their PA, or -1), and their release. */
export interface DriverPages {
  alloc2(): number;
  free2(pa: number): void;
}

/** Where a new nested domain gets its number and owner (the IOMMU driver the vIOMMU belongs to). */
export interface NestedDomainSource {
  readonly owner: unknown;
  nextDomainId(): number;
}

export class MockViommuDriver implements ViommuDriverOps {
  readonly viommus: MockViommu[] = [];
  /** Which vIOMMU and virt_id each device's vDEVICE has (set by vdevice_init). */
  private readonly vdevOf = new Map<PciDev, { viommu: MockViommu; virtId: bigint }>();
  /** mdev->cache[4] of each device, created at 0xbaddad on first use. */
  private readonly caches = new Map<PciDev, Uint32Array>();
  private readonly pages: DriverPages;
  private domains: NestedDomainSource = { owner: null, nextDomainId: (() => { let n = 1 << 20; return () => n++; })() };

  /** `pages`: a page-aligned physical address to hand out 2 pages at a time from (never reused), or an allocator. */
  constructor(private readonly memory: PhysicalMemory, pages: number | DriverPages) {
    if (typeof pages === 'number') {
      let next = pages;
      this.pages = { alloc2: () => { const pa = next; next += 2 * PAGE; return pa; }, free2: () => { /* a fixed range: never reused */ } };
    } else this.pages = pages;
  }

  /** The IOMMU driver whose nested domains this vIOMMU builds (their owner and numbers). */
  setDomainSource(src: NestedDomainSource): this {
    this.domains = src;
    return this;
  }

  /**
   * Install on `driver` (its `viommu` member); returns this driver. The nested domains it then builds are
   * owned by this object, not by `driver`, which cannot program them: attaching one is EINVAL (another
   * driver's domain), where a real driver's would program its hardware.
   */
  installOn(driver: IommuDriverOps): this {
    driver.viommu = this;
    let n = 1 << 20;
    this.domains = { owner: this, nextDomainId: () => n++ };
    return this;
  }

  /** The device's four cache entries (DEV_CHECK_CACHE). */
  devCache(dev: PciDev): Uint32Array {
    let c = this.caches.get(dev);
    if (c === undefined) {
      c = new Uint32Array(MOCK_DEV_CACHE_NUM).fill(IOMMU_TEST_DEV_CACHE_DEFAULT);
      this.caches.set(dev, c);
    }
    return c;
  }

  /** mock_dev_destroy(): the device's state goes. */
  forgetDev(dev: PciDev): void {
    this.caches.delete(dev);
    this.vdevOf.delete(dev);
  }

  getViommuSize(_dev: PciDev, type: number): number {
    return type === IOMMU_VIOMMU_TYPE_SELFTEST ? 1 : 0;
  }

  viommuInit(core: ViommuCore, parent: PagingDomain, data: IommuUserData | null): Result<ViommuOps> {
    const mv: MockViommu = { core, parent, hwQueues: new Array<HwQueueCore | null>(IOMMU_TEST_HW_QUEUE_MAX).fill(null), pa: 0, mmapOffset: 0, destroyed: false };
    if (data !== null) {
      const got = copyStructFromUser(data, IOMMU_VIOMMU_TYPE_SELFTEST, VIOMMU_SELFTEST_SIZE, VIOMMU_SELFTEST_MIN);
      if (!got.ok) return got;
      const inData = u32At(got.value, 0);
      const pa = this.pages.alloc2();
      if (pa < 0) return fail('ENOMEM', 'no memory for the vIOMMU pages');
      mv.pa = pa;
      const offset = core.allocMmap(pa, 2 * PAGE);
      if (!offset.ok) { this.pages.free2(pa); return offset; }
      const page = new Uint8Array(2 * PAGE);
      new DataView(page.buffer).setUint32(0, inData, true);
      this.memory.write(pa, page);
      const out = new Uint8Array(VIOMMU_SELFTEST_SIZE);
      const v = new DataView(out.buffer);
      v.setUint32(0, inData, true);
      v.setUint32(4, inData, true);
      v.setBigUint64(8, BigInt(offset.value), true);
      v.setBigUint64(16, BigInt(2 * PAGE), true);
      const w = copyStructToUser(data, IOMMU_VIOMMU_TYPE_SELFTEST, out, VIOMMU_SELFTEST_MIN);
      if (!w.ok) {
        core.destroyMmap(offset.value);
        this.pages.free2(pa);
        return w;
      }
      mv.mmapOffset = offset.value;
    }
    this.viommus.push(mv);
    return ok(this.opsFor(mv));
  }

  /** An event {u32 virt_id} for `dev`'s vDEVICE (ENOENT without one), as TRIGGER_VEVENT reports it. */
  triggerVevent(dev: PciDev): Result {
    const v = this.vdevOf.get(dev);
    if (v === undefined) return fail('ENOENT', `${dev.shortBdf} has no vDEVICE`);
    return reportSelftestEvent(v.viommu.core, v.virtId);
  }

  private opsFor(mv: MockViommu): ViommuOps {
    return {
      destroy: () => {
        mv.destroyed = true;
        if (mv.mmapOffset !== 0) {
          mv.core.destroyMmap(mv.mmapOffset);
          this.pages.free2(mv.pa);
        }
      },
      allocDomainNested: (flags: number, data: IommuUserData): Result<IommuDomain> => {
        if ((flags & ~ALLOC_PASID) !== 0) return fail('EOPNOTSUPP', `flags 0x${(flags >>> 0).toString(16)}: the mock's nested domains take only ALLOC_PASID`);
        return mockNestedAlloc(this.domains.nextDomainId(), this.domains.owner, mv.parent, data, mv.core);
      },
      cacheInvalidate: (array: IommuUserDataArray) => this.cacheInvalidate(mv, array),
      vdeviceInit: (vdev: VdeviceCore): Result<DriverObjectHooks> => {
        this.vdevOf.set(vdev.dev, { viommu: mv, virtId: vdev.virtId });
        return ok({ destroy: () => { this.vdevOf.delete(vdev.dev); } });
      },
      getHwQueueSize: (type: number) => (type === IOMMU_HW_QUEUE_TYPE_SELFTEST ? 1 : 0),
      hwQueueInitPhys: (q: HwQueueCore, index: number, basePa: number) => hwQueueInit(mv, q, index, basePa),
    };
  }

  /** mock_viommu_cache_invalidate(). */
  private cacheInvalidate(mv: MockViommu, array: IommuUserDataArray): { readonly done: number; readonly error: Result } {
    if (array.entryNum === 0 && array.type === IOMMU_VIOMMU_INVALIDATE_DATA_SELFTEST) return { done: 0, error: ok() };
    const all = copyStructFromFullUserArray(array, IOMMU_VIOMMU_INVALIDATE_DATA_SELFTEST, VIOMMU_INVALIDATE_SELFTEST_SIZE);
    if (!all.ok) return { done: 0, error: all };
    let i = 0;
    for (; i < array.entryNum; i++) {
      const at = i * VIOMMU_INVALIDATE_SELFTEST_SIZE;
      const flags = u32At(all.value, at);
      const vdevId = u32At(all.value, at + 4);
      const cacheId = u32At(all.value, at + 8);
      if ((flags & ~IOMMU_TEST_INVALIDATE_FLAG_ALL) !== 0) return { done: i, error: fail('EOPNOTSUPP', `entry ${i}: unknown flags 0x${flags.toString(16)}`) };
      if (cacheId > MOCK_DEV_CACHE_ID_MAX) return { done: i, error: fail('EINVAL', `entry ${i}: cache_id ${cacheId} is above ${MOCK_DEV_CACHE_ID_MAX}`) };
      const dev = mv.core.findDev(BigInt(vdevId));
      if (dev === undefined) return { done: i, error: fail('EINVAL', `entry ${i}: no vDEVICE with virt_id 0x${vdevId.toString(16)} on this vIOMMU`) };
      const cache = this.devCache(dev);
      if ((flags & IOMMU_TEST_INVALIDATE_FLAG_ALL) !== 0) cache.fill(0);
      else cache[cacheId] = 0;
    }
    return { done: i, error: ok() };
  }
}

/** iommufd_viommu_report_event(viommu, SELFTEST, {virt_id}); TRIGGER_VEVENT ignores its answer. */
export function reportSelftestEvent(core: ViommuCore, virtId: bigint): Result {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, Number(virtId & 0xffff_ffffn), true);
  return core.reportEvent(IOMMU_VEVENTQ_TYPE_SELFTEST, b);
}

/** mock_hw_queue_init_phys(). */
function hwQueueInit(mv: MockViommu, q: HwQueueCore, index: number, basePa: number): Result<DriverObjectHooks> {
  if (index >= IOMMU_TEST_HW_QUEUE_MAX) return fail('EINVAL', `index ${index}: the mock has ${IOMMU_TEST_HW_QUEUE_MAX} queues`);
  if (mv.hwQueues[index] !== null) return fail('EEXIST', `queue ${index} exists`);
  const prev = index > 0 ? mv.hwQueues[index - 1] ?? null : null;
  if (index > 0 && prev === null) return fail('EIO', `queue ${index - 1} must exist before queue ${index}`);
  if (basePa !== mv.parent.iovaToPhys(Number(q.baseIova))) return fail('EFAULT', 'base PA is not the parent translation');
  if (prev !== null) {
    const d = mv.core.hwQueueDepend(q, prev);
    if (!d.ok) return d;
  }
  mv.hwQueues[index] = q;
  return ok({
    destroy: () => {
      mv.hwQueues[index] = null;
      if (prev !== null) mv.core.hwQueueUndepend(q, prev);
    },
  });
}
