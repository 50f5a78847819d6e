// CONFIG_IOMMUFD_TEST for one kernel: the mock IOMMU driver, the mock bus with its device numbers, and
// the temporary memory limit. Linux keeps these as module globals (they survive every /dev/iommu open
// and close); here they hang off the Kernel that booted with `iommufdTest`, so two kernels never share.

import type { IommuCore } from '../../iommu/core.ts';
import { DEFAULT_TEMP_MEMORY_LIMIT } from './constants.ts';
import { MockBus } from './mock-device.ts';
import { MockIommuDriver } from './mock-iommu-driver.ts';

export class IommufdSelftest {
  readonly driver = new MockIommuDriver();
  readonly bus: MockBus;
  /**
   * iommufd_test_memory_limit, in pages: caps pages.c's temporary batch allocations in Linux. The model
   * pins in batches sized by its own rules, so the value is kept and reported, not acted on.
   */
  memoryLimit = DEFAULT_TEMP_MEMORY_LIMIT;

  constructor(readonly core: IommuCore) {
    this.bus = new MockBus(core, this.driver);
  }
}
