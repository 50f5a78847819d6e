// The driver's device-fd ioctls from bytes (vfio_pci_core_ioctl): GET_INFO, GET_REGION_INFO, GET_IRQ_INFO,
// SET_IRQS and RESET, each with VFIO's argsz convention (copy minsz, argsz < minsz → EINVAL, write back
// at most what the kernel's struct holds). A driver without the op, or any other number, → ENOTTY.

import { fail, ok, type Result } from '../kernel/errno.ts';
import type { Process } from '../kernel/process/process.ts';
import type { VfioDevice } from '../kernel/vfio/vfio-device.ts';
import {
  VFIO_DEVICE_GET_INFO, VFIO_DEVICE_GET_IRQ_INFO, VFIO_DEVICE_GET_REGION_INFO, VFIO_DEVICE_RESET, VFIO_DEVICE_SET_IRQS,
} from './ioctl.ts';
import { copyArgszFromUser, copyArgszToUser, placeCapChain, writeCapChain } from './vfio-argsz.ts';
import { VFIO_PCI_NUM_IRQS, VFIO_REGION_INFO_FLAG_CAPS } from './vfio-consts.ts';
import * as V from './vfio-structs.ts';

const hex = (n: number): string => `0x${(n >>> 0).toString(16)}`;
const notty = (what: string): Result<number> => fail('ENOTTY', what);

export function deviceDriverIoctl(proc: Process, vdev: VfioDevice, cmd: number, arg: number): Result<number> {
  const ops = vdev.ops;
  switch (cmd) {
    case VFIO_DEVICE_GET_INFO: {
      if (ops.deviceInfo === undefined) return notty(`${ops.name} has no GET_INFO`);
      const S = V.vfio_device_info;
      const c = copyArgszFromUser(proc.mm, arg, S, S.offsetofend('num_irqs'));
      if (!c.ok) return c;
      const info = ops.deviceInfo();
      // vfio_pci_ioctl_get_info(): info starts zeroed, minsz (16) is read, and min(argsz, sizeof) is written back.
      const out = S.encode({ argsz: c.value.argsz, flags: info.flags, num_regions: info.numRegions, num_irqs: info.numIrqs, cap_offset: 0, pad: 0 });
      const n = Math.min(c.value.argsz, S.sizeof);
      return proc.mm.write(arg, out.subarray(0, n)).ok ? ok(0) : fail('EFAULT', 'cannot write struct vfio_device_info');
    }
    case VFIO_DEVICE_GET_REGION_INFO: {
      if (ops.regionInfo === undefined) return notty(`${ops.name} has no GET_REGION_INFO`);
      const S = V.vfio_region_info;
      const minsz = S.offsetofend('offset');
      const c = copyArgszFromUser(proc.mm, arg, S, minsz);
      if (!c.ok) return c;
      const r = ops.regionInfo(c.value.value.index);
      if (!r.ok) return r;
      // The capability chain goes after the struct only if argsz holds it; else argsz says what is needed.
      const placed = placeCapChain(S.sizeof, c.value.argsz, r.value.caps ?? []);
      const flags = r.value.flags | (placed.hasCaps ? VFIO_REGION_INFO_FLAG_CAPS : 0);
      const v = { ...c.value.value, argsz: placed.argsz, flags, cap_offset: placed.capOffset, size: BigInt(r.value.size), offset: BigInt(r.value.offset) };
      const chain = writeCapChain(proc.mm, arg, S.sizeof, placed);
      if (!chain.ok) return chain;
      const w = copyArgszToUser(proc.mm, arg, S, v, minsz);
      return w.ok ? ok(0) : w;
    }
    case VFIO_DEVICE_GET_IRQ_INFO: {
      if (ops.irqInfo === undefined) return notty(`${ops.name} has no GET_IRQ_INFO`);
      const S = V.vfio_irq_info;
      const minsz = S.offsetofend('count');
      const c = copyArgszFromUser(proc.mm, arg, S, minsz);
      if (!c.ok) return c;
      if (c.value.value.index >= VFIO_PCI_NUM_IRQS) return fail('EINVAL', `IRQ index ${c.value.value.index}`);
      const r = ops.irqInfo(c.value.value.index);
      if (!r.ok) return r;
      const w = copyArgszToUser(proc.mm, arg, S, { ...c.value.value, flags: r.value.flags, count: r.value.count }, minsz);
      return w.ok ? ok(0) : w;
    }
    case VFIO_DEVICE_SET_IRQS: {
      if (ops.setIrqs === undefined || ops.irqSetValidate === undefined) return notty(`${ops.name} has no SET_IRQS`);
      const S = V.vfio_irq_set;
      const minsz = S.offsetofend('count');
      const c = copyArgszFromUser(proc.mm, arg, S, minsz);
      if (!c.ok) return c;
      const h = c.value.value;
      const size = ops.irqSetValidate(h, c.value.argsz - minsz);
      if (!size.ok) return size;
      const data = new Uint8Array(size.value);
      if (size.value > 0 && !proc.mm.read(arg + minsz, data).ok) return fail('EFAULT', 'cannot read the SET_IRQS data');
      const r = ops.setIrqs(proc, h, data);
      return r.ok ? ok(0) : r;
    }
    case VFIO_DEVICE_RESET: {
      if (ops.reset === undefined) return notty(`${ops.name} has no RESET`);
      const r = ops.reset();
      return r.ok ? ok(0) : r;
    }
    default:
      return notty(`${hex(cmd)} is not a ${ops.name} device ioctl`);
  }
}
