// IOMMU_VIOMMU_ALLOC, IOMMU_VDEVICE_ALLOC, IOMMU_VEVENTQ_ALLOC and IOMMU_HW_QUEUE_ALLOC
// (drivers/iommu/iommufd/viommu.c, eventq.c), checks in the kernel's order so the first failing one
// decides the errno (uAPI reference §6.16, §6.17, §6.19, §6.20, §11).

import { fail, ok } from '../errno.ts';
import type { IommuDriverOps } from '../iommu/ioasis-iommu-driver.ts';
import type { IommufdDevice } from './device.ts';
import type { HwptPaging } from './hw-pagetable.ts';
import { HwQueue, hwQueuePinPhys } from './hw-queue.ts';
import { handler, newObject, onWriteBackFailure } from './ioas-ioctls.ts';
import { hex64, U64_MAX, ULONG_MAX } from './iova-intervals.ts';
import { userData } from './user-data.ts';
import { Vdevice, vdeviceOf } from './vdevice.ts';
import { iommufdVeventqAlloc, type VeventqAllocCmd } from './veventq-fd.ts';
import { Viommu } from './viommu.ts';

/** IOMMU_VIOMMU_TYPE_DEFAULT and IOMMU_HW_QUEUE_TYPE_DEFAULT: reserved, never a valid type. */
export const IOMMU_VIOMMU_TYPE_DEFAULT = 0;
export const IOMMU_HW_QUEUE_TYPE_DEFAULT = 0;

// ---- IOMMU_VIOMMU_ALLOC -----------------------------------------------------------------------------

export interface ViommuAllocCmd {
  size: number; flags: number; type: number; dev_id: number; hwpt_id: number; out_viommu_id: number;
  data_len: number; __reserved: number; data_uptr: bigint;
}

/**
 * iommufd_viommu_alloc_ioctl(): flags or type DEFAULT → EOPNOTSUPP; dev_id → ENOENT; the device's IOMMU
 * driver has no vIOMMU ops, or not for this type → EOPNOTSUPP; hwpt_id not a HWPT_PAGING → ENOENT; not a
 * NEST_PARENT → EINVAL; then the driver's viommu_init (its errors abort the object).
 */
export const iommufdViommuAlloc = handler<ViommuAllocCmd>((ctx, proc, cmd) => {
  if (cmd.flags !== 0 || cmd.type === IOMMU_VIOMMU_TYPE_DEFAULT) {
    return fail('EOPNOTSUPP', cmd.flags !== 0 ? `VIOMMU_ALLOC flags 0x${(cmd.flags >>> 0).toString(16)}` : 'vIOMMU type DEFAULT is reserved');
  }
  const idev = ctx.objects.get<IommufdDevice>(cmd.dev_id, 'device');
  if (!idev.ok) return idev;
  const dev = idev.value.dev;
  const driver: IommuDriverOps | undefined = ctx.core.driverOf(dev);
  const vops = driver?.viommu;
  if (driver === undefined || vops === undefined) {
    return fail('EOPNOTSUPP', `the IOMMU driver of ${dev.shortBdf} has no vIOMMU support (as intel-iommu has none)`);
  }
  if (vops.getViommuSize(dev, cmd.type) === 0) {
    return fail('EOPNOTSUPP', `the IOMMU driver of ${dev.shortBdf} cannot give a vIOMMU of type 0x${(cmd.type >>> 0).toString(16)}`);
  }
  const hwpt = ctx.objects.get<HwptPaging>(cmd.hwpt_id, 'hwpt_paging');
  if (!hwpt.ok) return hwpt;
  if (!hwpt.value.nestParent) return fail('EINVAL', `HWPT ${cmd.hwpt_id} was not allocated with IOMMU_HWPT_ALLOC_NEST_PARENT`);
  const viommu = new Viommu(ctx, hwpt.value, driver, cmd.type);
  const id = newObject(ctx, viommu);
  if (!id.ok) {
    viommu.destroy();
    return id;
  }
  // From here a failure is undone by the dispatcher (abort → destroy: the parent's reference goes).
  const data = cmd.data_len === 0 ? null : userData(proc, cmd.type, cmd.data_uptr, cmd.data_len);
  const ops = vops.viommuInit(viommu, hwpt.value.domain, data);
  if (!ops.ok) return ops;
  viommu.ops = ops.value;
  return ok({ out_viommu_id: id.value });
});

// ---- IOMMU_VDEVICE_ALLOC ----------------------------------------------------------------------------

export interface VdeviceAllocCmd { size: number; viommu_id: number; dev_id: number; out_vdevice_id: number; virt_id: bigint }

/**
 * iommufd_vdevice_alloc_ioctl(): virt_id > ULONG_MAX → EINVAL (it indexes an xarray; never true with a
 * 64-bit long); viommu_id, dev_id → ENOENT; a device behind another physical IOMMU → EINVAL; a device
 * being unbound → ENOENT; a device with a vDEVICE → EEXIST; a virt_id taken in this vIOMMU → EEXIST; the
 * driver's vdevice_init.
 */
export const iommufdVdeviceAlloc = handler<VdeviceAllocCmd>((ctx, _proc, cmd) => {
  if (cmd.virt_id > ULONG_MAX) return fail('EINVAL', `virt_id ${hex64(cmd.virt_id)} is above ULONG_MAX`);
  const viommu = ctx.objects.get<Viommu>(cmd.viommu_id, 'viommu');
  if (!viommu.ok) return viommu;
  const idev = ctx.objects.get<IommufdDevice>(cmd.dev_id, 'device');
  if (!idev.ok) return idev;
  const v = viommu.value;
  if (ctx.core.driverOf(idev.value.dev) !== v.iommuDev) {
    return fail('EINVAL', `${idev.value.dev.shortBdf} is not behind the physical IOMMU of vIOMMU ${cmd.viommu_id}`);
  }
  if (!idev.value.isBound) return fail('ENOENT', `device ${cmd.dev_id} is being unbound`);
  const existing = vdeviceOf(idev.value);
  if (existing !== undefined) return fail('EEXIST', `device ${cmd.dev_id} already has vDEVICE ${existing.id}`);
  const vdev = new Vdevice(v, idev.value, cmd.virt_id);
  const id = newObject(ctx, vdev);
  if (!id.ok) {
    vdev.destroy();
    return id;
  }
  const taken = v.vdevs.get(cmd.virt_id);
  if (taken !== undefined) return fail('EEXIST', `virt_id ${hex64(cmd.virt_id)} is already ${taken.dev.shortBdf}'s on vIOMMU ${cmd.viommu_id}`);
  v.vdevs.set(cmd.virt_id, vdev);
  if (v.ops?.vdeviceInit !== undefined) {
    const hooks = v.ops.vdeviceInit(vdev);
    if (!hooks.ok) return hooks;
    vdev.hooks = hooks.value;
  }
  return ok({ out_vdevice_id: id.value });
});

// ---- IOMMU_VEVENTQ_ALLOC ----------------------------------------------------------------------------

/** The vEVENTQ object and fd are made by veventq-fd.ts; a faulting write-back closes the fd and destroys it. */
export const iommufdVeventqAllocIoctl = handler<VeventqAllocCmd>((ctx, proc, cmd) => {
  const r = iommufdVeventqAlloc(ctx, proc, cmd);
  if (!r.ok) return r;
  onWriteBackFailure(ctx, () => {
    void proc.fds.close(r.value.out_veventq_fd);
    void ctx.objects.destroyUser(r.value.out_veventq_id);
  });
  return ok(r.value);
});

// ---- IOMMU_HW_QUEUE_ALLOC ---------------------------------------------------------------------------

export interface HwQueueAllocCmd {
  size: number; flags: number; viommu_id: number; type: number; index: number; out_hw_queue_id: number;
  nesting_parent_iova: bigint; length: bigint;
}

/**
 * iommufd_hw_queue_alloc_ioctl(): flags or type DEFAULT → EOPNOTSUPP; length 0 → EINVAL; iova + length - 1
 * overflowing u64 → EOVERFLOW; viommu_id → ENOENT; no queue ops, or not for this type → EOPNOTSUPP; then
 * the pin (ERANGE, ENOENT for an unmapped IOVA, EFAULT for scattered pages) and the driver's
 * hw_queue_init_phys (its errors abort the object).
 */
export const iommufdHwQueueAlloc = handler<HwQueueAllocCmd>((ctx, _proc, cmd) => {
  if (cmd.flags !== 0 || cmd.type === IOMMU_HW_QUEUE_TYPE_DEFAULT) {
    return fail('EOPNOTSUPP', cmd.flags !== 0 ? `HW_QUEUE_ALLOC flags 0x${(cmd.flags >>> 0).toString(16)}` : 'HW queue type DEFAULT is reserved');
  }
  if (cmd.length === 0n) return fail('EINVAL', 'a HW queue of length 0');
  if (cmd.nesting_parent_iova + cmd.length - 1n > U64_MAX) {
    return fail('EOVERFLOW', `${hex64(cmd.nesting_parent_iova)} + ${hex64(cmd.length)} wraps`);
  }
  const viommu = ctx.objects.get<Viommu>(cmd.viommu_id, 'viommu');
  if (!viommu.ok) return viommu;
  const v = viommu.value;
  const ops = v.ops;
  if (ops?.getHwQueueSize === undefined || ops.hwQueueInitPhys === undefined) {
    return fail('EOPNOTSUPP', `vIOMMU ${cmd.viommu_id} has no HW queues`);
  }
  if (ops.getHwQueueSize(cmd.type) === 0) return fail('EOPNOTSUPP', `vIOMMU ${cmd.viommu_id} has no HW queue of type 0x${(cmd.type >>> 0).toString(16)}`);
  const q = new HwQueue(ctx, cmd.type, cmd.index, cmd.nesting_parent_iova, cmd.length);
  const id = newObject(ctx, q);
  if (!id.ok) return id;
  const pin = hwQueuePinPhys(ctx, v.hwpt.ioas, cmd.nesting_parent_iova, cmd.length);
  if (!pin.ok) return pin;
  q.attach(v, pin.value);
  const hooks = ops.hwQueueInitPhys(q, cmd.index, pin.value.basePa);
  if (!hooks.ok) return hooks;
  q.hooks = hooks.value;
  return ok({ out_hw_queue_id: id.value });
});
