import { describe, expect, it } from 'vitest';
import { Kernel } from '../../../src/kernel/kernel.ts';
import { loadBuiltinHost } from '../../../src/pci/builtin-hosts.ts';

const boot = (): Kernel => Kernel.boot(loadBuiltinHost('default'));

describe('sysfs', () => {
  it('links each device to its IOMMU group, as clients readlink() it', () => {
    const k = boot();
    const gpu = k.device('16:00.0');
    const g = gpu === undefined ? undefined : k.core.groupOf(gpu);
    expect(g).toBeDefined();
    const link = k.sysfs.readlink('/sys/bus/pci/devices/0000:16:00.0/iommu_group');
    expect(link.ok && link.value.split('/').pop()).toBe(String(g?.id));
    expect(k.sysfs.realpath('/sys/bus/pci/devices/0000:16:00.0/iommu_group')).toMatchObject({ ok: true, value: `/sys/kernel/iommu_groups/${g?.id}` });
    const members = k.sysfs.list(`/sys/kernel/iommu_groups/${g?.id}/devices`);
    expect(members).toMatchObject({ ok: true, value: ['0000:16:00.0', '0000:16:00.1'] });
    expect(k.sysfs.read(`/sys/kernel/iommu_groups/${g?.id}/reserved_regions`)).toMatchObject({ ok: true, value: '0x00000000fee00000 0x00000000feefffff msi\n' });
    expect(k.sysfs.read(`/sys/kernel/iommu_groups/${g?.id}/type`)).toMatchObject({ ok: true, value: 'DMA-FQ\n' });
  });

  it('device attributes and the driver link follow the driver core', () => {
    const k = boot();
    const p = '/sys/bus/pci/devices/0000:16:00.1';
    expect(k.sysfs.read(`${p}/vendor`)).toMatchObject({ ok: true, value: '0x10de\n' });
    expect(k.sysfs.read(`${p}/class`)).toMatchObject({ ok: true, value: '0x040300\n' });
    expect(k.sysfs.readlink(`${p}/driver`)).toMatchObject({ ok: true });
    expect(k.sysfs.realpath(`${p}/driver`)).toMatchObject({ ok: true, value: '/sys/bus/pci/drivers/snd_hda_intel' });
    expect(k.sysfs.read(`${p}/driver_override`)).toMatchObject({ ok: true, value: '(null)\n' });
    // The administrator's sequence: unbind, driver_override, drivers_probe.
    expect(k.sysfs.write(`${p}/driver/unbind`, '0000:16:00.1\n').ok).toBe(true);
    expect(k.sysfs.readlink(`${p}/driver`)).toMatchObject({ ok: false, errno: 'ENOENT' });
    expect(k.sysfs.write(`${p}/driver_override`, 'snd_hda_intel\n').ok).toBe(true);
    expect(k.sysfs.read(`${p}/driver_override`)).toMatchObject({ ok: true, value: 'snd_hda_intel\n' });
    expect(k.sysfs.write('/sys/bus/pci/drivers_probe', '0000:16:00.1').ok).toBe(true);
    expect(k.sysfs.realpath(`${p}/driver`)).toMatchObject({ ok: true, value: '/sys/bus/pci/drivers/snd_hda_intel' });
    expect(k.sysfs.write(`${p}/vendor`, '0x1234')).toMatchObject({ ok: false, errno: 'EACCES' });
    expect(k.sysfs.read('/sys/bus/pci/devices')).toMatchObject({ ok: false, errno: 'EISDIR' });
    expect(k.sysfs.read('/sys/nope')).toMatchObject({ ok: false, errno: 'ENOENT' });
  });

  it('new_id adds a dynamic id and binds unbound matching devices', () => {
    const k = boot();
    const audio = k.device('16:00.1');
    if (audio === undefined) throw new Error('no audio');
    expect(k.sysfs.write('/sys/bus/pci/drivers/snd_hda_intel/unbind', '0000:16:00.1').ok).toBe(true);
    expect(k.sysfs.write('/sys/bus/pci/drivers/igb/new_id', 'zz')).toMatchObject({ ok: false, errno: 'EINVAL' });
    expect(k.sysfs.write('/sys/bus/pci/drivers/igb/new_id', audio.ids.replace(':', ' '))).toMatchObject({ ok: true });
    expect(k.drivers.boundDriver(audio)?.name).toBe('igb');
    expect(k.sysfs.write('/sys/bus/pci/drivers/igb/new_id', audio.ids.replace(':', ' '))).toMatchObject({ ok: false, errno: 'EEXIST' });
    const entries = k.sysfs.list('/sys/bus/pci/drivers/igb');
    expect(entries.ok && ['0000:16:00.1', 'bind', 'unbind', 'new_id'].every((e) => entries.value.includes(e))).toBe(true);
  });

  it('renders a tree with links', () => {
    const k = boot();
    const lines = k.sysfs.render('/sys/kernel/iommu_groups', 3);
    expect(lines.ok).toBe(true);
    if (!lines.ok) return;
    expect(lines.value[0]).toBe('/sys/kernel/iommu_groups');
    expect(lines.value.some((l) => /0000:16:00\.0 -> (\.\.\/)+devices\/pci0000:/.test(l))).toBe(true);
  });
});
