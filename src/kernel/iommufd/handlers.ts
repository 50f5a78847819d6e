// The iommufd ioctl handlers by ioctl name (main.c's IOCTL_OP table, execute column). The byte-level
// dispatcher (src/uapi/dispatch.ts) looks the number up in the uapi table, decodes the struct and calls
// the handler registered here under the same name; names without a handler are not built yet.

import { ok } from '../errno.ts';
import { iommufdHwptGetDirtyBitmap, iommufdHwptSetDirtyTracking } from './dirty.ts';
import { iommufdFaultAlloc, type FaultAllocCmd } from './fault-fd.ts';
import { iommufdGetHwInfo } from './hw-info.ts';
import { iommufdHwptInvalidate } from './hwpt-invalidate.ts';
import { iommufdHwptAlloc } from './hwpt-ioctls.ts';
import {
  handler, iommufdDestroy, iommufdIoasAlloc, iommufdIoasAllowIovas, iommufdIoasChangeProcess, iommufdIoasCopy,
  iommufdIoasIovaRanges, iommufdIoasMap, iommufdIoasMapFile, iommufdIoasUnmap, iommufdVfioIoas, onWriteBackFailure,
  type IoctlHandler,
} from './ioas-ioctls.ts';
import { iommufdOption } from './option.ts';
import { iommufdHwQueueAlloc, iommufdVdeviceAlloc, iommufdVeventqAllocIoctl, iommufdViommuAlloc } from './viommu-ioctls.ts';

/**
 * IOMMU_FAULT_QUEUE_ALLOC (fault-fd.ts) finalizes its object and installs its fd itself; if the write-back
 * then faults, the fd is closed and the object destroyed, as the handler's contract asks.
 */
const faultQueueAlloc = handler<FaultAllocCmd>((ctx, proc, cmd) => {
  const r = iommufdFaultAlloc(ctx, proc, cmd);
  if (!r.ok) return r;
  onWriteBackFailure(ctx, () => {
    void proc.fds.close(r.value.out_fault_fd);
    void ctx.objects.destroyUser(r.value.out_fault_id);
  });
  return ok(r.value);
});

export type { Decoded, IoctlHandler, KernelErrorWithWriteBack } from './ioas-ioctls.ts';
export { newObject, onWriteBackFailure, takeNewObjects, takeWriteBackUndos } from './ioas-ioctls.ts';

export const IOMMUFD_HANDLERS: Readonly<Record<string, IoctlHandler | undefined>> = {
  IOMMU_DESTROY: iommufdDestroy,
  IOMMU_IOAS_ALLOC: iommufdIoasAlloc,
  IOMMU_IOAS_ALLOW_IOVAS: iommufdIoasAllowIovas,
  IOMMU_IOAS_COPY: iommufdIoasCopy,
  IOMMU_IOAS_IOVA_RANGES: iommufdIoasIovaRanges,
  IOMMU_IOAS_MAP: iommufdIoasMap,
  IOMMU_IOAS_UNMAP: iommufdIoasUnmap,
  IOMMU_OPTION: iommufdOption,
  IOMMU_VFIO_IOAS: iommufdVfioIoas,
  IOMMU_FAULT_QUEUE_ALLOC: faultQueueAlloc,
  IOMMU_IOAS_MAP_FILE: iommufdIoasMapFile,
  IOMMU_IOAS_CHANGE_PROCESS: iommufdIoasChangeProcess,
  IOMMU_HWPT_ALLOC: iommufdHwptAlloc,
  IOMMU_HWPT_INVALIDATE: iommufdHwptInvalidate,
  IOMMU_GET_HW_INFO: iommufdGetHwInfo,
  IOMMU_VIOMMU_ALLOC: iommufdViommuAlloc,
  IOMMU_VDEVICE_ALLOC: iommufdVdeviceAlloc,
  IOMMU_VEVENTQ_ALLOC: iommufdVeventqAllocIoctl,
  IOMMU_HW_QUEUE_ALLOC: iommufdHwQueueAlloc,
  IOMMU_HWPT_SET_DIRTY_TRACKING: iommufdHwptSetDirtyTracking,
  IOMMU_HWPT_GET_DIRTY_BITMAP: iommufdHwptGetDirtyBitmap,
};
