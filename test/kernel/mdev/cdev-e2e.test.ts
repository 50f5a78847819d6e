import { describe, expect, it } from 'vitest';
import { checkIsolation } from '../../../src/kernel/isolation/check.ts';
import type { Kernel } from '../../../src/kernel/kernel.ts';
import { EmulatedParentDriver } from '../../../src/kernel/mdev/emulated-parent.ts';
import { IommuBackedParentDriver, type MdevGroupPolicy } from '../../../src/kernel/mdev/iommu-backed-parent.ts';
import { PasidBackedParentDriver } from '../../../src/kernel/mdev/pasid-backed-parent.ts';
import type { VfioDevice } from '../../../src/kernel/vfio/vfio-device.ts';
import { deviceAttachPt, deviceBindIommufd } from '../../../src/uapi/vfio-api.ts';
import { boot, dev, errno, PAGE, user, UUID1, UUID2, value, type User } from './helpers.ts';

// End to end through the VFIO cdevs (/dev/vfio/devices/vfioN, BIND_IOMMUFD, ATTACH_IOMMUFD_PT) for the
// three kinds of mdev, and seed 001's exact scenario: one function on vfio-pci in one process, its
// sibling wrapped by vfio-mdev-pci in another.

/** open(/dev/vfio/devices/vfioN) and VFIO_DEVICE_BIND_IOMMUFD; returns the cdev fd and out_devid. */
function cdevBind(k: Kernel, u: User, vdev: VfioDevice | null) {
  if (vdev === null) throw new Error('no VFIO device');
  const fd = value(k.devfs.open(u.proc, `/dev/vfio/devices/vfio${vdev.index}`));
  return { fd, bind: deviceBindIommufd({ proc: u.proc, fd, iommufd: u.fd }) };
}

describe('mdevs through the VFIO cdev', () => {
  it('emulated: out_devid is the ACCESS, ATTACH to the IOAS, the device blits into the process; close unbinds', () => {
    const k = boot();
    const drv = new EmulatedParentDriver({ vfio: k.vfio, memory: k.memory });
    value(k.mdev.registerParent(dev(k, '16:00.0'), drv, drv.types()));
    const m = value(k.mdev.create(dev(k, '16:00.0'), 'vgpu-lite-1', UUID1));
    const u = user(k, 0);
    const { fd, bind } = cdevBind(k, u, m.vdev);
    const devid = value(bind);
    expect(value(u.ctx.objects.get(devid)).type).toBe('access');
    expect(value(deviceAttachPt({ proc: u.proc, fd, ptId: u.ioasId }))).toBe(u.ioasId);
    value(drv.blit(m, u.iova + 8n, Uint8Array.of(4, 3, 2, 1)));
    expect(u.read(8, 4)).toEqual(Uint8Array.of(4, 3, 2, 1));
    value(drv.pin(m, u.iova, 1));
    expect(value(u.unmap(u.iova, 4n * BigInt(PAGE)))).toBe(4n * BigInt(PAGE));
    value(u.proc.fds.close(fd));
    expect(errno(u.ctx.objects.get(devid))).toBe('ENOENT');
    expect(m.user).toBeNull();
  });

  it('PASID-backed: ATTACH returns the PASID HWPT; the work queue\'s DMA lands in the process; nothing to report', () => {
    const k = boot();
    const drv = new PasidBackedParentDriver({ core: k.core, vfio: k.vfio, mdev: k.mdev, machine: k.machine });
    value(drv.registerParent(dev(k, '6a:01.0')));
    const m = value(k.mdev.create(dev(k, '6a:01.0'), 'idxd-siov-wq', UUID1));
    const u = user(k, 0);
    const { fd, bind } = cdevBind(k, u, m.vdev);
    value(bind);
    const hwpt = value(deviceAttachPt({ proc: u.proc, fd, ptId: u.ioasId }));
    expect(k.core.pasidHandle(dev(k, '6a:01.0'), m.pasid ?? 0)?.cookie).toBe(value(u.ctx.objects.get(hwpt)));
    expect(drv.dma(m, { op: 'write', address: Number(u.iova), length: 2, data: Uint8Array.of(8, 9) }).status).toBe('ok');
    expect(u.read(0, 2)).toEqual(Uint8Array.of(8, 9));
    expect(checkIsolation(k).breaches).toEqual([]);
    value(u.proc.fds.close(fd));
    expect(k.core.pasidHandle(dev(k, '6a:01.0'), m.pasid ?? 0)).toBeUndefined();
  });

  describe('seed 001: 16:00.0 on vfio-pci in process A, 16:00.1 as a vfio-mdev-pci mdev in process B', () => {
    function scenario(policy: MdevGroupPolicy) {
      const k = boot();
      const drv = new IommuBackedParentDriver({ core: k.core, vfio: k.vfio, mdev: k.mdev }, policy);
      k.drivers.registerDriver(drv.pciDriver);
      const f0 = dev(k, '16:00.0');
      const f1 = dev(k, '16:00.1');
      value(k.drivers.unbind(f0));
      value(k.drivers.setDriverOverride(f0, 'vfio-pci'));
      value(k.drivers.bind(f0, 'vfio-pci'));
      value(k.drivers.unbind(f1));
      value(k.drivers.setDriverOverride(f1, 'vfio-mdev-pci'));
      value(k.drivers.bind(f1, 'vfio-mdev-pci'));
      const m = value(k.mdev.create(f1, 'vfio-mdev-pci-1', UUID2));
      const a = user(k, 0);
      const b = user(k, 0);
      const pci = cdevBind(k, a, k.vfioPci.vfioDevice(f0) ?? null);
      value(pci.bind);
      value(deviceAttachPt({ proc: a.proc, fd: pci.fd, ptId: a.ioasId }));
      const md = cdevBind(k, b, m.vdev);
      const second = md.bind.ok ? deviceAttachPt({ proc: b.proc, fd: md.fd, ptId: b.ioasId }) : md.bind;
      return { k, b, md, second };
    }

    it('separate-virtual-group: both assignments succeed and the checker reports the split group and the P2P', () => {
      const { k, second } = scenario('separate-virtual-group');
      expect(errno(second)).toBe('ok');
      const kinds = new Set(checkIsolation(k).breaches.map((x) => x.kind));
      expect(kinds.has('split-group') && kinds.has('p2p')).toBe(true);
    });

    it('inherit-parent-group: BIND is EPERM; nothing to report', () => {
      const { k, second } = scenario('inherit-parent-group');
      expect(errno(second)).toBe('EPERM');
      expect(checkIsolation(k).breaches).toEqual([]);
    });

    it('attach-time-ebusy: ATTACH is EBUSY; once B closes the device, nothing to report', () => {
      const { k, b, md, second } = scenario('attach-time-ebusy');
      expect(errno(second)).toBe('EBUSY');
      value(b.proc.fds.close(md.fd));
      expect(checkIsolation(k).breaches).toEqual([]);
    });
  });
});
