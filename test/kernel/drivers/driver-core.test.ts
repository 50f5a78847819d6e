import { describe, expect, it } from 'vitest';
import { Kernel } from '../../../src/kernel/kernel.ts';
import { HostPciDriver } from '../../../src/kernel/drivers/pci-driver.ts';
import { iommufdDeviceBind, iommufdDeviceUnbind } from '../../../src/kernel/iommufd/device.ts';
import { IommufdCtx } from '../../../src/kernel/iommufd/context.ts';
import { loadBuiltinHost } from '../../../src/pci/builtin-hosts.ts';
import type { PciDev } from '../../../src/pci/dev.ts';

function boot(): Kernel { return Kernel.boot(loadBuiltinHost('default')); }
function dev(k: Kernel, bdf: string): PciDev {
  const d = k.device(bdf);
  if (d === undefined) throw new Error(`no ${bdf}`);
  return d;
}

describe('driver core', () => {
  it('binds every function to the driver the host file names, and pcieport manages its own DMA', () => {
    const k = boot();
    expect(k.drivers.boundDriver(dev(k, '16:00.0'))?.name).toBe('nvidia');
    expect(k.drivers.boundDriver(dev(k, '16:00.1'))?.name).toBe('snd_hda_intel');
    const gpuGroup = k.core.groupOf(dev(k, '16:00.0'));
    // Two host drivers without driver_managed_dma took the default domain.
    expect(gpuGroup?.ownerCnt).toBe(2);
    const port = k.drivers.devicesOf('pcieport')[0] as PciDev;
    expect(k.drivers.boundDriver(port)?.driverManagedDma).toBe(true);
  });

  it('bind and unbind follow bind_store/unbind_store errno', () => {
    const k = boot();
    const gpu = dev(k, '16:00.0');
    expect(k.drivers.bind(gpu, 'nvidia')).toMatchObject({ ok: false, errno: 'EBUSY' });
    expect(k.drivers.unbind(gpu, 'igb')).toMatchObject({ ok: false, errno: 'ENODEV' });
    expect(k.drivers.bind(gpu, 'no-such-driver')).toMatchObject({ ok: false, errno: 'ENOENT' });
    expect(k.drivers.unbind(gpu)).toMatchObject({ ok: true });
    expect(k.drivers.boundDriver(gpu)).toBeNull();
    expect(k.drivers.bind(gpu, 'igb')).toMatchObject({ ok: false, errno: 'ENODEV' });
    expect(k.drivers.setDriverOverride(gpu, 'igb\n')).toMatchObject({ ok: true });
    expect(k.drivers.bind(gpu, 'nvidia')).toMatchObject({ ok: false, errno: 'ENODEV' });
    expect(k.drivers.bind(gpu, 'igb')).toMatchObject({ ok: true });
    expect(k.drivers.unbind(gpu)).toMatchObject({ ok: true });
    expect(k.drivers.setDriverOverride(gpu, '')).toMatchObject({ ok: true });
    expect(k.drivers.driversProbe(gpu)).toMatchObject({ ok: true });
    expect(k.drivers.boundDriver(gpu)?.name).toBe('nvidia');
  });

  it('a host driver cannot probe a function whose group is owned for user-space DMA (EBUSY)', () => {
    const k = boot();
    const gpu = dev(k, '16:00.0');
    const audio = dev(k, '16:00.1');
    expect(k.drivers.unbind(gpu).ok).toBe(true);
    expect(k.drivers.unbind(audio).ok).toBe(true);
    const proc = k.processes.spawn();
    const fd = k.devfs.open(proc, '/dev/iommu');
    if (!fd.ok) throw new Error(fd.reason);
    const f = proc.fds.get(fd.value);
    if (!f.ok || !(f.value.file instanceof IommufdCtx)) throw new Error('not an iommufd');
    const ctx = f.value.file;
    const idev = iommufdDeviceBind(ctx, gpu);
    if (!idev.ok) throw new Error(idev.reason);
    const r = k.drivers.bind(audio, 'snd_hda_intel');
    expect(r).toMatchObject({ ok: false, errno: 'EBUSY' });
    expect(k.drivers.boundDriver(audio)).toBeNull();
    iommufdDeviceUnbind(idev.value);
    expect(k.drivers.bind(audio, 'snd_hda_intel')).toMatchObject({ ok: true });
  });

  it('a registered driver with dynamic ids autoprobes unbound matching functions', () => {
    const k = boot();
    const gpu = dev(k, '16:00.0');
    expect(k.drivers.unbind(gpu).ok).toBe(true);
    const stub = new HostPciDriver('pci-stub', new Set());
    stub.dynamicIds.add(gpu.ids);
    k.drivers.registerDriver(stub);
    expect(k.drivers.boundDriver(gpu)?.name).toBe('pci-stub');
    // pci-stub is driver_managed_dma: only the audio function's driver holds the group now.
    expect(k.core.groupOf(gpu)?.ownerCnt).toBe(1);
  });
});

describe('devfs', () => {
  it('opens /dev/iommu for root, refuses an unprivileged user (EACCES) and a missing node (ENOENT)', () => {
    const k = boot();
    const root = k.processes.spawn();
    expect(k.devfs.open(root, '/dev/iommu')).toMatchObject({ ok: true, value: 3 });
    const user = k.processes.spawn({ uid: 1000 });
    expect(k.devfs.open(user, '/dev/iommu')).toMatchObject({ ok: false, errno: 'EACCES' });
    expect(k.devfs.chown('/dev/iommu', 1000, 1000).ok).toBe(true);
    expect(k.devfs.open(user, '/dev/iommu')).toMatchObject({ ok: true });
    expect(k.devfs.open(root, '/dev/vfio/99')).toMatchObject({ ok: false, errno: 'ENOENT' });
    expect(k.devfs.stat('/dev/iommu')?.major).toBe(10);
  });
});
