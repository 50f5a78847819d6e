import { describe, expect, it } from 'vitest';
import { EventFd } from '../../../src/kernel/vfs/eventfd.ts';
import { VFIO_DEVICE_GET_REGION_INFO } from '../../../src/uapi/ioctl.ts';
import { sysPread, sysPwrite } from '../../../src/uapi/rw.ts';
import { deviceBindIommufd } from '../../../src/uapi/vfio-api.ts';
import * as V from '../../../src/uapi/vfio-structs.ts';
import { anon, boot, dev, errno, raw, spawn, toVfio, value } from './vfio-helpers.ts';

describe('the vfio-pci driver', () => {
  it('binds by new_id (autoprobing unbound matches; EEXIST twice) and refuses bridges (EINVAL)', () => {
    const k = boot();
    const port0 = dev(k, '38:00.0');
    const port1 = dev(k, '38:00.1');
    value(k.drivers.unbind(port0));
    value(k.vfioPci.newId(k.drivers, '8086 1572'));
    expect(k.drivers.boundDriver(port0)?.name).toBe('vfio-pci');
    expect(k.drivers.boundDriver(port1)?.name).toBe('i40e');
    expect(errno(k.vfioPci.newId(k.drivers, '8086 1572'))).toBe('EEXIST');
    expect(errno(k.vfioPci.newId(k.drivers, 'zz'))).toBe('EINVAL');
    const bridge = k.drivers.devicesOf('pcieport').find((d) => d.hdrType === 1);
    if (bridge === undefined) throw new Error('no bridge');
    value(k.drivers.unbind(bridge));
    value(k.drivers.setDriverOverride(bridge, 'vfio-pci'));
    expect(errno(k.drivers.bind(bridge, 'vfio-pci'))).toBe('EINVAL');
  });

  it('matches ids= (vendor:device, ffff for any) once the host driver lets go', () => {
    const k = boot({ vfioPci: { ids: '10de:ffff' } });
    const audio = dev(k, '16:00.1');
    expect(k.vfioPci.matches(audio)).toBe(true);
    expect(k.vfioPci.matches(dev(k, '38:00.0'))).toBe(false);
    value(k.drivers.unbind(audio));
    value(k.drivers.bind(audio, 'vfio-pci'));
    expect(k.vfioPci.vfioDevice(audio)?.name).toBe('0000:16:00.1');
  });

  it('remove: EBUSY while open (the REQ interrupt asks the user), then the nodes go; a cdev fd opened before is ENODEV at BIND', () => {
    const k = boot();
    const vdev = toVfio(k, '38:00.0');
    const group = vdev.group;
    const p = spawn(k);
    const path = `/dev/vfio/devices/vfio${vdev.index}`;
    const early = value(k.devfs.open(p, path));
    const fd = value(k.devfs.open(p, path));
    value(deviceBindIommufd({ proc: p, fd, iommufd: value(k.devfs.open(p, '/dev/iommu')) }));
    expect(errno(k.drivers.unbind(dev(k, '38:00.0')))).toBe('EBUSY');
    value(p.fds.close(fd));
    value(k.drivers.unbind(dev(k, '38:00.0')));
    expect(k.devfs.exists(path)).toBe(false);
    expect(k.devfs.exists(group?.devPath ?? '')).toBe(false);
    expect(k.vfio.groupList()).not.toContain(group);
    expect(errno(deviceBindIommufd({ proc: p, fd: early, iommufd: value(k.devfs.open(p, '/dev/iommu')) }))).toBe('ENODEV');
  });

  it('a group file left open after its last device goes is forgotten on release', () => {
    const k = boot();
    const vdev = toVfio(k, '38:00.0');
    const group = vdev.group;
    const p = spawn(k);
    const gfd = value(k.devfs.open(p, group?.devPath ?? ''));
    value(k.drivers.unbind(dev(k, '38:00.0')));
    expect(k.vfio.groupList()).toContain(group);
    value(p.fds.close(gfd));
    expect(k.vfio.groupList()).not.toContain(group);
  });

  it('GET_REGION_INFO of the BAR holding the MSI-X table carries MSIX_MAPPABLE (argsz grows to hold it)', () => {
    const k = boot({ patch: (get) => {
      const c = get('38:00.0').config;
      c.write8(0x49, 0xb8);
      c.write8(0xb8, 0x11); c.write8(0xb9, 0); c.write16(0xba, 15); c.write32(0xbc, 3); c.write32(0xc0, 0x1000 | 3);
    } });
    const vdev = toVfio(k, '38:00.0');
    const p = spawn(k);
    const fd = value(k.devfs.open(p, `/dev/vfio/devices/vfio${vdev.index}`));
    value(deviceBindIommufd({ proc: p, fd, iommufd: value(k.devfs.open(p, '/dev/iommu')) }));
    const S = V.vfio_region_info;
    const small = raw(p, fd, VFIO_DEVICE_GET_REGION_INFO, S, { index: 3 });
    expect(small.out).toMatchObject({ argsz: 40, flags: 7 | 8, cap_offset: 0 });
    const at = anon(p, 1);
    value(p.mm.write(at, S.encode({ argsz: 40, flags: 0, index: 3, cap_offset: 0, size: 0n, offset: 0n })));
    const r = raw(p, fd, VFIO_DEVICE_GET_REGION_INFO, S, { argsz: 40, index: 3 });
    expect(r.out).toMatchObject({ argsz: 40, flags: 15, cap_offset: 32 });
    const b0 = raw(p, fd, VFIO_DEVICE_GET_REGION_INFO, S, { index: 0 });
    expect(b0.out).toMatchObject({ argsz: 32, flags: 7, cap_offset: 0 });
  });
});

describe('eventfd', () => {
  it('reads and writes 8-byte values: EINVAL for short buffers, EAGAIN at 0 and on overflow; semaphore mode reads 1', () => {
    const e = new EventFd(3);
    expect(e.readValue()).toMatchObject({ ok: true, value: 3n });
    expect(e.readValue()).toMatchObject({ ok: false, errno: 'EAGAIN' });
    expect(e.writeValue((1n << 64n) - 1n)).toMatchObject({ ok: false, errno: 'EINVAL' });
    expect(e.writeValue((1n << 64n) - 2n)).toMatchObject({ ok: true });
    expect(e.writeValue(1n)).toMatchObject({ ok: false, errno: 'EAGAIN' });
    const s = new EventFd(2, 1);
    expect(s.readValue()).toMatchObject({ ok: true, value: 1n });
    expect(s.count).toBe(1n);
    const k = boot();
    const p = spawn(k);
    const fd = value(p.fds.install(new EventFd()));
    const buf = anon(p, 1);
    expect(errno(sysPread(p, fd, buf, 4, null))).toBe('EINVAL');
    expect(errno(sysPread(p, fd, buf, 8, 0))).toBe('ESPIPE');
    const v = new Uint8Array(8);
    v[0] = 5;
    value(p.mm.write(buf, v));
    expect(value(sysPwrite(p, fd, buf, 8, null))).toBe(8);
    value(p.mm.write(buf, new Uint8Array(8)));
    expect(value(sysPread(p, fd, buf, 8, null))).toBe(8);
    value(p.mm.read(buf, v));
    expect(v[0]).toBe(5);
  });
});
