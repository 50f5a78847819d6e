// ATTACH/DETACH_IOMMUFD_PT with PASIDs on the cdev (reference §7.2): vfio-pci tracks attached PASIDs (a
// re-attach is a replace), a driver without PASID ops answers EOPNOTSUPP, and close detaches everything.

import { describe, expect, it } from 'vitest';
import type { IommufdCtx } from '../../../src/kernel/iommufd/context.ts';
import { VfioPciCore } from '../../../src/kernel/vfio/pci/vfio-pci-core.ts';
import { VfioDevice, type VfioDeviceOps } from '../../../src/kernel/vfio/vfio-device.ts';
import { hwptAlloc, ioasAlloc } from '../../../src/uapi/api.ts';
import { IOMMU_HWPT_ALLOC_PASID } from '../../../src/uapi/iommufd-consts.ts';
import { VFIO_DEVICE_ATTACH_IOMMUFD_PT, VFIO_DEVICE_DETACH_IOMMUFD_PT } from '../../../src/uapi/ioctl.ts';
import { deviceAttachPt, deviceBindIommufd, deviceDetachPt } from '../../../src/uapi/vfio-api.ts';
import * as V from '../../../src/uapi/vfio-structs.ts';
import { boot, dev, errno, raw, spawn, toVfio, value } from './vfio-helpers.ts';

describe('PASID attach through the cdev', () => {
  it('attaches, replaces on re-attach, detaches, and close leaves nothing attached', () => {
    const k = boot();
    const dsa = dev(k, '6a:01.0');
    const vdev = toVfio(k, '6a:01.0');
    const p = spawn(k);
    const ifd = value(k.devfs.open(p, '/dev/iommu'));
    const fd = value(k.devfs.open(p, `/dev/vfio/devices/vfio${vdev.index}`));
    const devId = value(deviceBindIommufd({ proc: p, fd, iommufd: ifd }));
    const ioas = value(ioasAlloc({ proc: p, fd: ifd }));
    const h1 = value(hwptAlloc({ proc: p, fd: ifd, devId, ptId: ioas, flags: IOMMU_HWPT_ALLOC_PASID }));
    const h2 = value(hwptAlloc({ proc: p, fd: ifd, devId, ptId: ioas, flags: IOMMU_HWPT_ALLOC_PASID }));
    expect(value(deviceAttachPt({ proc: p, fd, ptId: h1 }))).toBe(h1);
    expect(value(deviceAttachPt({ proc: p, fd, ptId: h1, pasid: 5 }))).toBe(h1);
    expect(value(deviceAttachPt({ proc: p, fd, ptId: h2, pasid: 5 }))).toBe(h2); // a replace, not EBUSY
    expect(value(deviceAttachPt({ proc: p, fd, ptId: h2 }))).toBe(h2); // RID replace
    const core = k.vfioPci.core(dsa);
    expect([...(core?.pasids ?? [])]).toEqual([5]);
    // An IOAS at a PASID has no auto domain: iommufd's EINVAL passes through; a missing ID is ENOENT.
    expect(errno(deviceAttachPt({ proc: p, fd, ptId: ioas, pasid: 6 }))).toBe('EINVAL');
    expect(errno(deviceAttachPt({ proc: p, fd, ptId: 999, pasid: 6 }))).toBe('ENOENT');
    expect([...(core?.pasids ?? [])]).toEqual([5]);
    value(deviceDetachPt({ proc: p, fd, pasid: 7 })); // not attached: nothing happens
    value(deviceDetachPt({ proc: p, fd, pasid: 5 }));
    expect(core?.pasids.size).toBe(0);
    value(deviceAttachPt({ proc: p, fd, ptId: h1, pasid: 9 }));
    const group = k.core.groupOf(dsa);
    expect(group?.pasidArray.size).toBe(1);
    value(p.fds.close(fd));
    expect(group?.pasidArray.size).toBe(0);
    expect(group?.domain).toBe(group?.defaultDomain);
    value(p.fds.close(ifd));
  });

  it('argument rules: flags beyond PASID EINVAL, a PASID flag whose argsz does not reach pasid EINVAL', () => {
    const k = boot();
    const vdev = toVfio(k, '6a:01.0');
    const p = spawn(k);
    const ifd = value(k.devfs.open(p, '/dev/iommu'));
    const fd = value(k.devfs.open(p, `/dev/vfio/devices/vfio${vdev.index}`));
    value(deviceBindIommufd({ proc: p, fd, iommufd: ifd }));
    const ioas = value(ioasAlloc({ proc: p, fd: ifd }));
    const A = V.vfio_device_attach_iommufd_pt;
    const D = V.vfio_device_detach_iommufd_pt;
    expect(raw(p, fd, VFIO_DEVICE_ATTACH_IOMMUFD_PT, A, { argsz: 11, pt_id: ioas }).e).toBe('EINVAL');
    expect(raw(p, fd, VFIO_DEVICE_ATTACH_IOMMUFD_PT, A, { flags: 2, pt_id: ioas }).e).toBe('EINVAL');
    expect(raw(p, fd, VFIO_DEVICE_ATTACH_IOMMUFD_PT, A, { argsz: 12, flags: 1, pt_id: ioas, pasid: 3 }).e).toBe('EINVAL');
    const ok = raw(p, fd, VFIO_DEVICE_ATTACH_IOMMUFD_PT, A, { argsz: 12, pt_id: ioas });
    expect(ok.e).toBe('ok');
    expect(ok.out.pt_id).not.toBe(ioas);
    expect(raw(p, fd, VFIO_DEVICE_DETACH_IOMMUFD_PT, D, { argsz: 7 }).e).toBe('EINVAL');
    expect(raw(p, fd, VFIO_DEVICE_DETACH_IOMMUFD_PT, D, { flags: 2 }).e).toBe('EINVAL');
    expect(raw(p, fd, VFIO_DEVICE_DETACH_IOMMUFD_PT, D, { argsz: 8, flags: 1 }).e).toBe('EINVAL');
    expect(raw(p, fd, VFIO_DEVICE_DETACH_IOMMUFD_PT, D, { argsz: 8 }).e).toBe('ok');
  });

  it('a VFIO driver without PASID ops answers EOPNOTSUPP for the PASID flag', () => {
    const k = boot();
    const iax = dev(k, '6a:02.0');
    value(k.drivers.unbind(iax));
    // A physical-device VFIO driver with only the RID ops (as drivers without pasid_attach_ioas have).
    const core = new VfioPciCore(iax, (d, bar) => k.machine.barMemory(d, bar));
    const ops: VfioDeviceOps = {
      name: 'rid-only',
      openDevice: () => core.openDevice(),
      closeDevice: () => core.closeDevice(),
      bindIommufd: (v, ctx: IommufdCtx) => core.bindIommufd(v, ctx),
      unbindIommufd: () => core.unbindIommufd(),
      attachIoas: (v, pt) => core.attachIoas(v, pt),
      detachIoas: () => core.detachIoas(),
    };
    const vdev = new VfioDevice(iax.bdf, 'iommu', ops, iax);
    value(k.vfio.registerGroupDev(vdev));
    const p = spawn(k);
    const ifd = value(k.devfs.open(p, '/dev/iommu'));
    const fd = value(k.devfs.open(p, `/dev/vfio/devices/vfio${vdev.index}`));
    value(deviceBindIommufd({ proc: p, fd, iommufd: ifd }));
    const ioas = value(ioasAlloc({ proc: p, fd: ifd }));
    expect(errno(deviceAttachPt({ proc: p, fd, ptId: ioas, pasid: 1 }))).toBe('EOPNOTSUPP');
    expect(errno(deviceDetachPt({ proc: p, fd, pasid: 1 }))).toBe('EOPNOTSUPP');
    value(deviceAttachPt({ proc: p, fd, ptId: ioas }));
    value(p.fds.close(fd));
    value(k.vfio.unregister(vdev));
    expect(k.devfs.exists(`/dev/vfio/devices/vfio${vdev.index}`)).toBe(false);
  });
});
