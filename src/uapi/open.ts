// open("/dev/iommu"): a new iommufd context (USER accounting) on the lowest free fd of the process.

import type { Result } from '../kernel/errno.ts';
import type { IommuCore } from '../kernel/iommu/core.ts';
import { IommufdCtx } from '../kernel/iommufd/context.ts';
import type { Process } from '../kernel/process/process.ts';

/** iommufd_fops_open(): EMFILE when no fd is free. */
export function openDevIommu(proc: Process, core: IommuCore): Result<number> {
  return proc.fds.install(new IommufdCtx(core, proc));
}
