import { describe, expect, it } from 'vitest';
import { boot, dev, errno, spawn, toVfio, value } from './vfio-helpers.ts';

describe('no-IOMMU groups (intel_iommu=off)', () => {
  it('vfio-pci cannot register a function without an IOMMU group unless vfio.enable_unsafe_noiommu_mode is on', () => {
    const k = boot({ cmdline: 'intel_iommu=off' });
    const nic = dev(k, '38:00.0');
    value(k.drivers.unbind(nic));
    value(k.drivers.setDriverOverride(nic, 'vfio-pci'));
    expect(errno(k.drivers.bind(nic, 'vfio-pci'))).toBe('EINVAL');
  });

  it('with the unsafe mode, /dev/vfio/noiommu-N opens only with CAP_SYS_RAWIO (EPERM otherwise)', () => {
    const k = boot({ cmdline: 'intel_iommu=off', vfio: { enableUnsafeNoiommuMode: true } });
    const vdev = toVfio(k, '38:00.0');
    expect(vdev.type).toBe('no-iommu');
    const path = vdev.group?.devPath ?? '';
    expect(path).toMatch(/^\/dev\/vfio\/noiommu-\d+$/);
    expect(k.devfs.exists(path)).toBe(true);
    const noRawio = spawn(k, { caps: ['CAP_DAC_OVERRIDE'] });
    expect(errno(k.devfs.open(noRawio, path))).toBe('EPERM');
    value(k.devfs.open(spawn(k), path));
  });
});
