// mmap() of an iommufd (uAPI reference §3, §11.1; selftest oracle §4.7 viommu_alloc_with_data): the
// vIOMMU's registered region only, MAP_SHARED, never executable; the driver's pages in place; the owning
// vIOMMU held by every mapping (split and forked copies too) until munmap.

import { describe, expect, it } from 'vitest';
import { iommufdDeviceUnbind } from '../../src/kernel/iommufd/device.ts';
import { MAP_PRIVATE, MAP_SHARED, PROT_EXEC, PROT_READ } from '../../src/kernel/mm/mman.ts';
import * as api from '../../src/uapi/api.ts';
import { PAGE, READ, RW, value, WRITE } from './dispatch-helpers.ts';
import { setup, viommuWithData } from './viommu-helpers.ts';

describe('mmap() of an iommufd', () => {
  it('maps the registered region: the driver page reads back in_data, writes reach it', () => {
    const s = setup();
    const v = viommuWithData(s, 0x5a5aa5a5);
    const addr = value(s.c.proc.mmap(0, v.length, RW, MAP_SHARED, s.c.fd, v.offset));
    const word = new Uint8Array(4);
    value(s.c.proc.mm.read(addr, word));
    expect(new DataView(word.buffer).getUint32(0, true)).toBe(0x5a5aa5a5);
    value(s.c.proc.mm.write(addr + PAGE + 8, new Uint8Array([1, 2, 3])));
    const pa = s.drv.viommus[0]?.pa ?? 0;
    const seen = new Uint8Array(3);
    s.w.memory.read(pa + PAGE + 8, seen);
    expect([...seen]).toEqual([1, 2, 3]);
    // Driver pages cannot be pinned (VM_PFNMAP): IOAS_MAP of them is EFAULT.
    expect(s.c.call('IOMMU_IOAS_MAP', { ioas_id: s.ioasId, flags: READ | WRITE, user_va: BigInt(addr), length: BigInt(PAGE) }).e).toBe('EFAULT');
  });

  it('errnos: private → EINVAL, PROT_EXEC → EPERM, anything but exactly a region → ENXIO', () => {
    const s = setup();
    const v = viommuWithData(s, 1);
    const mmap = (len: number, prot: number, flags: number, off: number) => s.c.proc.mmap(0, len, prot, flags, s.c.fd, off);
    const e = (r: { ok: boolean; errno?: string }) => (r.ok ? 'ok' : r.errno);
    expect(e(mmap(v.length, RW, MAP_PRIVATE, v.offset))).toBe('EINVAL');
    expect(e(mmap(v.length, PROT_READ | PROT_EXEC, MAP_SHARED, v.offset))).toBe('EPERM');
    expect(e(mmap(v.length, RW, MAP_SHARED, 0))).toBe('ENXIO');
    expect(e(mmap(v.length, RW, MAP_SHARED, v.offset + PAGE))).toBe('ENXIO');
    expect(e(mmap(PAGE, RW, MAP_SHARED, v.offset))).toBe('ENXIO');
    expect(e(mmap(3 * PAGE, RW, MAP_SHARED, v.offset))).toBe('ENXIO');
    expect(e(mmap(v.length, RW, MAP_SHARED, 64 * PAGE))).toBe('ENXIO');
    // mmap() rounds the length up to pages before the iommufd sees it (do_mmap), as in Linux.
    expect(e(mmap(v.length - 1, RW, MAP_SHARED, v.offset))).toBe('ok');
    // Nothing was left mapped by the failures: only the one success holds the vIOMMU.
    expect(value(s.ctx.objects.get(v.id, 'viommu')).users).toBe(2);
  });

  it('destroying the owning vIOMMU is EBUSY while any mapping (split or forked copies too) remains', () => {
    const s = setup();
    const v = viommuWithData(s, 1);
    const addr = value(api.iommufdMmap({ proc: s.c.proc, fd: s.c.fd, offset: v.offset, length: v.length }));
    const destroy = () => s.c.call('IOMMU_DESTROY', { id: v.id }).e;
    expect(destroy()).toBe('EBUSY');
    const child = value(s.c.proc.fork());
    // munmap of one page splits the VMA: the other page still holds the vIOMMU.
    value(s.c.proc.mm.munmap(addr, PAGE));
    expect(destroy()).toBe('EBUSY');
    value(s.c.proc.mm.munmap(addr + PAGE, PAGE));
    expect(destroy()).toBe('EBUSY');
    const word = new Uint8Array(4);
    value(child.mm.read(addr, word));
    expect(new DataView(word.buffer).getUint32(0, true)).toBe(1);
    value(child.mm.munmap(addr, 2 * PAGE));
    expect(destroy()).toBe('ok');
  });

  it('a mapping keeps the iommufd open after close(fd); the last munmap releases it', () => {
    const s = setup();
    const v = viommuWithData(s, 1);
    const addr = value(api.iommufdMmap({ proc: s.c.proc, fd: s.c.fd, offset: v.offset, length: v.length }));
    for (const d of [s.nvme, s.usb, s.dsa]) iommufdDeviceUnbind(d);
    value(s.c.proc.fds.close(s.c.fd));
    expect(s.ctx.isClosed).toBe(false);
    value(s.c.proc.mm.munmap(addr, v.length));
    expect(s.ctx.isClosed).toBe(true);
    expect(s.drv.viommus[0]?.destroyed).toBe(true);
  });
});

