import type { PciDev } from '../../pci/dev.ts';
import type { Result } from '../errno.ts';
import type { IommuCore } from '../iommu/core.ts';
import type { IommuGroup } from '../iommu/group.ts';
import type { FileMmapRequest, KernelFile, PfnMapping } from '../process/file.ts';
import type { Process } from '../process/process.ts';
import type { Igroup, IommufdDevice } from './device.ts';
import type { IommufdObject } from './object.ts';
import { ObjectTable } from './object-table.ts';
import { iommufdFopsMmap } from './viommu.ts';
import type { IommufdSelftest } from './selftest/selftest.ts';

/** iommufd's module parameters (one object per Kernel, shared by its contexts). */
export interface IommufdParams {
  /** iommufd.allow_unsafe_interrupts: bind devices whose MSIs the platform cannot isolate. */
  readonly allowUnsafeInterrupts: boolean;
  /** CONFIG_IOMMUFD_TEST: the mock driver and IOMMU_TEST_CMD state; absent → IOMMU_TEST_CMD is ENOTTY. */
  readonly selftest?: IommufdSelftest;
}

export const DEFAULT_IOMMUFD_PARAMS: IommufdParams = { allowUnsafeInterrupts: false };

/** How pinned pages are charged (IOMMU_OPTION_RLIMIT_MODE): per user (default) or per mm (VFIO-compatible). */
export type AccountMode = 'user' | 'mm';

/**
 * One open /dev/iommu (struct iommufd_ctx): its object table, accounting mode and the IOAS the VFIO
 * compat layer uses. The file's release destroys every object leaf-first, as closing the fd does.
 */
export class IommufdCtx implements KernelFile {
  readonly kind = 'iommufd';
  readonly objects = new ObjectTable();
  /** /dev/iommu opens in USER mode; /dev/vfio/vfio served by iommufd opens in MM mode. */
  accountMode: AccountMode;
  /** IOMMU_VFIO_IOAS: the IOAS the VFIO container compat ioctls use (0 when none). */
  vfioIoasId = 0;
  /** VFIO_SET_IOMMU(VFIO_NOIOMMU_IOMMU) on the compat layer: no compat IOAS may be created any more. */
  vfioNoIommu = false;
  /** ictx->groups: the context's igroups by IOMMU group (device.ts keeps them). */
  readonly igroups = new Map<IommuGroup, Igroup>();
  /** The bound DEVICE objects by function (iommufd_get_device by device). */
  readonly devicesByDev = new Map<PciDev, IommufdDevice>();
  /** ucmd->new_obj of the ioctl in progress: IDs reserved, finalized or aborted by the dispatcher. */
  readonly pendingObjects: IommufdObject[] = [];
  /** Undo actions of the ioctl in progress, run (newest first) if its write-back fails. */
  readonly writeBackUndos: (() => void)[] = [];
  readonly params: IommufdParams;
  private closed = false;

  constructor(readonly core: IommuCore, readonly opener: Process, opts: { vfioCompat?: boolean; params?: IommufdParams } = {}) {
    this.accountMode = opts.vfioCompat === true ? 'mm' : 'user';
    this.params = opts.params ?? DEFAULT_IOMMUFD_PARAMS;
  }

  get isClosed(): boolean { return this.closed; }

  /** f_op->mmap: a vIOMMU's registered MMIO region (viommu.ts). */
  mmap(req: FileMmapRequest): Result<PfnMapping> { return iommufdFopsMmap(this, req); }

  /** Last close of the fd: destroy everything leaf-first (main.c iommufd_fops_release). */
  release(): void {
    if (this.closed) return;
    this.closed = true;
    const stuck = this.objects.closeAll();
    this.core.globalPasids.freeAll(this);
    if (stuck.length > 0) {
      // Linux WARNs here: something kept a reference it should not have. Surface it as a bug.
      throw new Error(`iommufd close left ${stuck.length} object(s) with users: ${stuck.map((o) => `${o.id}:${o.type}`).join(', ')}`);
    }
  }
}
