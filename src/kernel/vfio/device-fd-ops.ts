// What a VFIO driver serves on a device fd once it is open (the ioctl/read/write part of struct
// vfio_device_ops): the uapi layer decodes the argument structs and calls these typed entry points.
// Every member is optional: a driver without one answers ENOTTY (ioctls) or EINVAL (read/write).

import type { Result } from '../errno.ts';
import type { Process } from '../process/process.ts';

export interface VfioDeviceInfo { readonly flags: number; readonly numRegions: number; readonly numIrqs: number }
export interface VfioRegionInfo { readonly flags: number; readonly size: number; readonly offset: number }
export interface VfioIrqInfo { readonly flags: number; readonly count: number }
export interface VfioIrqSetHdr { readonly flags: number; readonly index: number; readonly start: number; readonly count: number }

export interface VfioDeviceFdOps {
  /** VFIO_DEVICE_GET_INFO. */
  deviceInfo?(): VfioDeviceInfo;
  /** VFIO_DEVICE_GET_REGION_INFO (EINVAL for a bad index). */
  regionInfo?(index: number): Result<VfioRegionInfo>;
  /** VFIO_DEVICE_GET_IRQ_INFO (EINVAL for a bad index). */
  irqInfo?(index: number): Result<VfioIrqInfo>;
  /** VFIO_DEVICE_SET_IRQS, step 1: validate the header; `payload` bytes follow it within argsz. Returns the data size. */
  irqSetValidate?(hdr: VfioIrqSetHdr, payload: number): Result<number>;
  /** VFIO_DEVICE_SET_IRQS, step 2: act, with the payload copied in. */
  setIrqs?(proc: Process, hdr: VfioIrqSetHdr, data: Uint8Array): Result;
  /** VFIO_DEVICE_RESET. */
  reset?(): Result;
  /** read(2)/pread(2) at a region offset: the bytes read (possibly fewer than asked). */
  regionRead?(offset: number, count: number): Result<Uint8Array>;
  /** write(2)/pwrite(2) at a region offset: the bytes written. */
  regionWrite?(offset: number, data: Uint8Array): Result<number>;
}
