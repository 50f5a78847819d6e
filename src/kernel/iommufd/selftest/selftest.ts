// CONFIG_IOMMUFD_TEST for one kernel: the mock IOMMU driver, the mock bus with its device numbers, and
// the temporary memory limit. Linux keeps these as module globals (they survive every /dev/iommu open
// and close); here they hang off the Kernel that booted with `iommufdTest`, so two kernels never share.

import type { IommuCore } from '../../iommu/core.ts';
import { TableFrames } from '../../iommu/table-frames.ts';
import type { FrameAllocator } from '../../mm/frame-allocator.ts';
import { DEFAULT_TEMP_MEMORY_LIMIT } from './constants.ts';
import { MockBus } from './mock-device.ts';
import { MockIommuDriver } from './mock-iommu-driver.ts';
import { MockViommuDriver } from './mock-viommu.ts';

export class IommufdSelftest {
  readonly driver: MockIommuDriver;
  readonly bus: MockBus;
  /**
   * iommufd_test_memory_limit, in pages: caps pages.c's temporary batch allocations in Linux. The model
   * pins in batches sized by its own rules, so the value is kept and reported, not acted on.
   */
  memoryLimit = DEFAULT_TEMP_MEMORY_LIMIT;

  /** `frames`: kernel memory for the mock vIOMMU's mmap pages (kzalloc'd in Linux). */
  constructor(readonly core: IommuCore, frames: FrameAllocator) {
    const tf = new TableFrames(frames);
    const viommu = new MockViommuDriver(core.machine.memory, { alloc2: () => tf.contiguous(2), free2: (pa) => { tf.freeContiguous(pa, 2); } });
    this.driver = new MockIommuDriver(viommu);
    this.bus = new MockBus(core, this.driver);
  }
}
