// A vIOMMU driver implementation modelled on the selftest mock's (drivers/iommu/iommufd/selftest.c,
// kernel-selftest-oracle §7 and §8), to install on an ioasis driver instance through its `viommu` member
// so the generic iommufd side can be tested before the mock IOMMU driver exists. Meant to move into that
// driver later. Behaviour:
//
//  * get_viommu_size: only IOMMU_VIOMMU_TYPE_SELFTEST (0xdeadbeef).
//  * viommu_init with data (struct iommu_viommu_selftest {u32 in_data, u32 out_data, u64 out_mmap_offset,
//    u64 out_mmap_length}, at least up to out_data): two driver pages registered for mmap, page 0 starting
//    with in_data, out_data = in_data (loopback), the region's offset and length reported back.
//  * vdevice_init: the device remembers its vIOMMU and virt_id (what TRIGGER_VEVENT reports).
//  * HW queues of IOMMU_HW_QUEUE_TYPE_SELFTEST only: index ≥ 2 → EINVAL, a taken index → EEXIST, index > 0
//    without the previous one → EIO, a base PA that is not the parent's translation of the IOVA → EFAULT;
//    each queue depends on the previous one (destroy in descending order).
//
// The "MMIO" pages are a physical range the driver owns outside the frame allocator (like a BAR).

import type { PhysicalMemory } from '../../src/hw/memory/physical-memory.ts';
import type { PciDev } from '../../src/pci/dev.ts';
import { fail, ok, type Result } from '../../src/kernel/errno.ts';
import type { IommuDriverOps } from '../../src/kernel/iommu/ioasis-iommu-driver.ts';
import type {
  DriverObjectHooks, HwQueueCore, IommuUserData, VdeviceCore, ViommuCore, ViommuDriverOps, ViommuOps,
} from '../../src/kernel/iommu/viommu-ops.ts';
import type { PagingDomain } from '../../src/kernel/iommu/domain.ts';

export const IOMMU_VIOMMU_TYPE_SELFTEST = 0xdeadbeef;
export const IOMMU_VEVENTQ_TYPE_SELFTEST = 0xbeefbeef;
export const IOMMU_HW_QUEUE_TYPE_SELFTEST = 0xdeadbeef;
export const IOMMU_TEST_HW_QUEUE_MAX = 2;
/** sizeof(struct iommu_viommu_selftest), and offsetofend(out_data). */
export const VIOMMU_SELFTEST_SIZE = 24;
const VIOMMU_SELFTEST_MIN = 8;
const PAGE = 4096;

/** What the test driver keeps per vIOMMU (struct mock_viommu). */
export interface MockViommu {
  readonly core: ViommuCore;
  readonly parent: PagingDomain;
  readonly hwQueues: (HwQueueCore | null)[];
  /** Physical address of its two pages and their mmap offset (0 when allocated without data). */
  pa: number;
  mmapOffset: number;
  destroyed: boolean;
}

export class SelftestViommuDriver implements ViommuDriverOps {
  readonly viommus: MockViommu[] = [];
  /** The mock device's viommu and vdev_id (set by vdevice_init). */
  private readonly vdevOf = new Map<PciDev, { viommu: MockViommu; virtId: bigint }>();
  private nextPa: number;

  /** `mmioPa`: a physical range (page aligned, outside the frame allocator) this driver hands out 2 pages at a time. */
  constructor(private readonly memory: PhysicalMemory, mmioPa: number) {
    this.nextPa = mmioPa;
  }

  /** Install on `driver` (its `viommu` member); returns this driver. */
  installOn(driver: IommuDriverOps): this {
    driver.viommu = this;
    return this;
  }

  getViommuSize(_dev: PciDev, type: number): number {
    return type === IOMMU_VIOMMU_TYPE_SELFTEST ? 1 : 0;
  }

  viommuInit(core: ViommuCore, parent: PagingDomain, data: IommuUserData | null): Result<ViommuOps> {
    const mv: MockViommu = { core, parent, hwQueues: new Array<HwQueueCore | null>(IOMMU_TEST_HW_QUEUE_MAX).fill(null), pa: 0, mmapOffset: 0, destroyed: false };
    if (data !== null) {
      const got = data.copyIn(IOMMU_VIOMMU_TYPE_SELFTEST, VIOMMU_SELFTEST_MIN, VIOMMU_SELFTEST_SIZE);
      if (!got.ok) return got;
      const inData = new DataView(got.value.buffer).getUint32(0, true);
      const pa = this.nextPa;
      mv.pa = pa;
      this.nextPa += 2 * PAGE;
      const offset = core.allocMmap(pa, 2 * PAGE);
      if (!offset.ok) return offset;
      this.memory.write(pa, new Uint8Array(2 * PAGE));
      const word = new Uint8Array(4);
      new DataView(word.buffer).setUint32(0, inData, true);
      this.memory.write(pa, word);
      const out = new Uint8Array(VIOMMU_SELFTEST_SIZE);
      const v = new DataView(out.buffer);
      v.setUint32(0, inData, true);
      v.setUint32(4, inData, true);
      v.setBigUint64(8, BigInt(offset.value), true);
      v.setBigUint64(16, BigInt(2 * PAGE), true);
      const w = data.copyOut(out);
      if (!w.ok) {
        core.destroyMmap(offset.value);
        return w;
      }
      mv.mmapOffset = offset.value;
    }
    this.viommus.push(mv);
    return ok(this.opsFor(mv));
  }

  /** IOMMU_TEST_OP_TRIGGER_VEVENT for `dev`: ENOENT without a vDEVICE, else an event {u32 virt_id}. */
  triggerVevent(dev: PciDev): Result {
    const v = this.vdevOf.get(dev);
    if (v === undefined) return fail('ENOENT', `${dev.shortBdf} has no vDEVICE`);
    const b = new Uint8Array(4);
    new DataView(b.buffer).setUint32(0, Number(v.virtId & 0xffff_ffffn), true);
    return v.viommu.core.reportEvent(IOMMU_VEVENTQ_TYPE_SELFTEST, b);
  }

  private opsFor(mv: MockViommu): ViommuOps {
    return {
      destroy: () => {
        mv.destroyed = true;
        if (mv.mmapOffset !== 0) mv.core.destroyMmap(mv.mmapOffset);
      },
      vdeviceInit: (vdev: VdeviceCore): Result<DriverObjectHooks> => {
        this.vdevOf.set(vdev.dev, { viommu: mv, virtId: vdev.virtId });
        return ok({ destroy: () => { this.vdevOf.delete(vdev.dev); } });
      },
      getHwQueueSize: (type: number) => (type === IOMMU_HW_QUEUE_TYPE_SELFTEST ? 1 : 0),
      hwQueueInitPhys: (q: HwQueueCore, index: number, basePa: number): Result<DriverObjectHooks> => {
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
      },
    };
  }
}
