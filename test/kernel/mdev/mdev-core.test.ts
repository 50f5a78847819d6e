import { describe, expect, it } from 'vitest';
import { EmulatedParentDriver } from '../../../src/kernel/mdev/emulated-parent.ts';
import { parseUuid } from '../../../src/kernel/mdev/mdev-core.ts';
import type { MdevParentDriver } from '../../../src/kernel/mdev/types.ts';
import { ok } from '../../../src/kernel/errno.ts';
import { boot, dev, errno, UUID1, UUID2, UUID3, value } from './helpers.ts';

// The mdev core's sysfs ABI (VFIO reference §11.1; mdev_core.c / mdev_sysfs.c errnos).

const GPU = '16:00.0';

describe('mdev core', () => {
  it('parses UUIDs as create_store does: 36 characters plus an optional newline, else EINVAL', () => {
    expect(value(parseUuid(`${UUID1.toUpperCase()}\n`))).toBe(UUID1);
    expect(errno(parseUuid('83b8f4f2-509f-382f-3c1e'))).toBe('EINVAL');
    expect(errno(parseUuid(`${UUID1}xx`))).toBe('EINVAL');
    expect(errno(parseUuid('83b8f4f2-509f-382f-3c1e-e6bfe0fa10zz'))).toBe('EINVAL');
  });

  it('shows mdev_supported_types with name, description, device_api and parent-computed available_instances', () => {
    const k = boot();
    const drv = new EmulatedParentDriver({ vfio: k.vfio, memory: k.memory }, { slices: 4 });
    value(k.mdev.registerParent(dev(k, GPU), drv, [...drv.types()]));
    expect(errno(k.mdev.registerParent(dev(k, GPU), drv, [...drv.types()]))).toBe('EEXIST');
    const types = k.mdev.supportedTypes(dev(k, GPU));
    expect(types.map((t) => [t.dir.split('/').pop(), t.device_api, t.available_instances])).toEqual([
      ['vgpu-lite-1', 'vfio-pci', 4], ['vgpu-lite-2', 'vfio-pci', 2],
    ]);
    value(k.mdev.create(dev(k, GPU), 'vgpu-lite-2', UUID1));
    expect(k.mdev.supportedTypes(dev(k, GPU)).map((t) => t.available_instances)).toEqual([2, 1]);
    expect(k.mdev.supportedTypes(dev(k, GPU))[1]?.devices).toEqual([UUID1]);
  });

  it('EEXIST for a UUID in use, EINVAL for a malformed one, ENOSPC from the driver when the parent is full', () => {
    const k = boot();
    const drv = new EmulatedParentDriver({ vfio: k.vfio, memory: k.memory }, { slices: 2 });
    value(k.mdev.registerParent(dev(k, GPU), drv, [...drv.types()]));
    value(k.mdev.create(dev(k, GPU), 'vgpu-lite-1', UUID1));
    expect(errno(k.mdev.create(dev(k, GPU), 'vgpu-lite-1', UUID1))).toBe('EEXIST');
    expect(errno(k.mdev.create(dev(k, GPU), 'vgpu-lite-1', 'not-a-uuid'))).toBe('EINVAL');
    expect(errno(k.mdev.create(dev(k, GPU), 'vgpu-lite-2', UUID2))).toBe('ENOSPC');
    expect(errno(k.mdev.create(dev(k, GPU), 'vgpu-lite-9', UUID2))).toBe('ENOENT');
    expect(k.mdev.devices().map((m) => m.uuid)).toEqual([UUID1]);
  });

  it('core-counted types (no get_available) refuse with EUSERS, and give the instance back on remove', () => {
    const k = boot();
    const drv: MdevParentDriver = { name: 'fixed', kind: 'emulated', probe: () => ok(), remove: () => ok() };
    value(k.mdev.registerParent(dev(k, GPU), drv, [{ id: 'a', name: 'a', description: '', deviceApi: 'vfio-pci', maxInstances: 1 }]));
    value(k.mdev.create(dev(k, GPU), 'fixed-a', UUID1));
    expect(errno(k.mdev.create(dev(k, GPU), 'fixed-a', UUID2))).toBe('EUSERS');
    value(k.mdev.remove(UUID1));
    value(k.mdev.create(dev(k, GPU), 'fixed-a', UUID3));
  });

  it('renders /sys/bus/mdev/devices/UUID; remove is EBUSY while the VFIO device is open', () => {
    const k = boot();
    const drv = new EmulatedParentDriver({ vfio: k.vfio, memory: k.memory });
    value(k.mdev.registerParent(dev(k, GPU), drv, [...drv.types()]));
    const m = value(k.mdev.create(dev(k, GPU), 'vgpu-lite-1', UUID1));
    const view = k.mdev.view(UUID1);
    expect(view?.mdev_type).toBe('/sys/bus/pci/devices/0000:16:00.0/mdev_supported_types/vgpu-lite-1');
    expect(view?.parent).toBe('/sys/bus/pci/devices/0000:16:00.0');
    expect(view?.subsystem).toBe('/sys/bus/mdev');
    // A private fake group: not the GPU's IOMMU group.
    expect(view?.iommu_group).toBe(m.vdev?.group?.id);
    expect(view?.iommu_group).not.toBe(k.core.groupOf(dev(k, GPU))?.id);
    expect(m.vdev?.group?.type).toBe('emulated-iommu');
    const vdev = m.vdev;
    if (vdev === null) throw new Error('no vdev');
    vdev.openCount = 1;
    expect(errno(k.mdev.remove(UUID1))).toBe('EBUSY');
    vdev.openCount = 0;
    value(k.mdev.remove(UUID1));
    expect(k.mdev.view(UUID1)).toBeUndefined();
    expect(k.vfio.deviceByName(UUID1)).toBeUndefined();
  });
});
