// ACCESS objects (uAPI reference §14, VFIO §12): create/destroy as a driver-owned object, attach/replace/
// detach to an IOAS with the unmap(0, ULONG_MAX) shoot-down, pin/unpin errnos and pin-once sharing with a
// domain, the unmap contract (callback, retries, EDEADLOCK), CPU rw through the IOAS, and teardown.

import { describe, expect, it } from 'vitest';
import {
  iommufdAccessAttach, iommufdAccessDestroy, iommufdAccessDetach, iommufdAccessPinPages, iommufdAccessReplace,
  iommufdAccessRw, iommufdAccessUnpinPages,
} from '../../../src/kernel/iommufd/access.ts';
import { iommufdDeviceAttach, iommufdDeviceBind, iommufdDeviceDetach, iommufdDeviceUnbind } from '../../../src/kernel/iommufd/device.ts';
import { ULONG_MAX } from '../../../src/kernel/iommufd/iova-intervals.ts';
import { MAP_SHARED } from '../../../src/kernel/mm/mman.ts';
import * as api from '../../../src/uapi/api.ts';
import { errno, RW, value, world } from '../../uapi/dispatch-helpers.ts';
import { FakeDriver, P, setup } from './access-helpers.ts';

const BASE = 0x10_0000n;
const NVME = '39:00.0';

const warnings = (s: ReturnType<typeof setup>): string[] => s.w.core.log.filter((l) => l.startsWith('WARNING:'));

describe('create and destroy', () => {
  it('is a driver-owned ACCESS object: IOMMU_DESTROY is EBUSY; destroy removes it and frees the ID', () => {
    const s = setup();
    const d = new FakeDriver(s.ctx);
    expect(d.id).toBe(2);
    expect(d.access.id).toBe(2);
    expect(d.access.type).toBe('access');
    expect(value(s.ctx.objects.get(d.id, 'access'))).toBe(d.access);
    expect(errno(api.destroy({ proc: s.proc, fd: s.fd, id: d.id }))).toBe('EBUSY');
    iommufdAccessDestroy(d.access);
    expect(errno(s.ctx.objects.get(d.id))).toBe('ENOENT');
    expect(new FakeDriver(s.ctx).id).toBe(2);
  });

  it('needs_pin_pages sets the alignment to PAGE_SIZE, otherwise 1', () => {
    const s = setup();
    expect(new FakeDriver(s.ctx).access.iovaAlignment).toBe(P);
    expect(new FakeDriver(s.ctx, { needsPinPages: false }).access.iovaAlignment).toBe(1n);
    expect(new FakeDriver(s.ctx, { needsPinPages: false, internal: true }).access.iovaAlignment).toBe(P);
  });

  it('holds the iommufd file when given one; a closed context is EBADF', () => {
    const s = setup();
    const d = new FakeDriver(s.ctx, { file: s.file });
    value(iommufdAccessAttach(d.access, s.ioasId));
    value(s.proc.fds.close(s.fd));
    expect(s.ctx.isClosed).toBe(false);
    iommufdAccessDestroy(d.access);
    expect(s.ctx.isClosed).toBe(true);
    expect(() => new FakeDriver(s.ctx)).toThrow(/EBADF/);
  });
});

describe('attach / replace / detach', () => {
  it('only an IOAS: ENOENT for a missing ID or another type; attach twice EINVAL with a WARN', () => {
    const s = setup();
    const d = new FakeDriver(s.ctx);
    expect(errno(iommufdAccessAttach(d.access, 99))).toBe('ENOENT');
    expect(errno(iommufdAccessAttach(d.access, d.id))).toBe('ENOENT');
    value(iommufdAccessAttach(d.access, s.ioasId));
    expect(d.access.ioas).toBe(s.ioas);
    expect(s.ioas.accessList.has(d.access)).toBe(true);
    expect(errno(iommufdAccessAttach(d.access, s.ioasId))).toBe('EINVAL');
    expect(warnings(s).some((l) => l.includes('attach while attached'))).toBe(true);
    // The IOAS is referenced while an access is attached.
    expect(errno(api.destroy({ proc: s.proc, fd: s.fd, id: s.ioasId }))).toBe('EBUSY');
    iommufdAccessDetach(d.access);
    expect(d.access.ioas).toBeNull();
    expect(s.ioas.accessList.size).toBe(0);
    value(api.destroy({ proc: s.proc, fd: s.fd, id: s.ioasId }));
  });

  it('replace when not attached is ENOENT; detach when not attached only WARNs', () => {
    const s = setup();
    const d = new FakeDriver(s.ctx);
    expect(errno(iommufdAccessReplace(d.access, s.ioasId))).toBe('ENOENT');
    const before = warnings(s).length;
    iommufdAccessDetach(d.access);
    expect(warnings(s).length).toBe(before + 1);
    expect(d.unmapCalls).toEqual([]);
  });

  it('raises the IOAS alignment; EADDRINUSE when an area is not page aligned', () => {
    const s = setup();
    expect(s.ioas.iopt.iovaAlignment).toBe(1n);
    const va = s.c.anon(1);
    value(api.ioasMap({ proc: s.proc, fd: s.fd, ioasId: s.ioasId, userVa: va + 0x800, length: 0x800, iova: BASE + 0x800n }));
    const d = new FakeDriver(s.ctx);
    expect(errno(iommufdAccessAttach(d.access, s.ioasId))).toBe('EADDRINUSE');
    expect(d.access.ioas).toBeNull();
    const rw = new FakeDriver(s.ctx, { needsPinPages: false });
    value(iommufdAccessAttach(rw.access, s.ioasId));
    value(s.unmap(0n, (1n << 64n) - 1n));
    value(iommufdAccessAttach(d.access, s.ioasId));
    expect(s.ioas.iopt.iovaAlignment).toBe(P);
    iommufdAccessDetach(d.access);
    expect(s.ioas.iopt.iovaAlignment).toBe(1n);
  });

  it('detach and replace call unmap(0, ULONG_MAX) first; the driver unpins; the new IOAS takes the pins', () => {
    const s = setup();
    const ioas2 = value(api.ioasAlloc({ proc: s.proc, fd: s.fd }));
    s.map(BASE, 4);
    s.map(BASE, 2, { id: ioas2 });
    const d = new FakeDriver(s.ctx);
    value(iommufdAccessAttach(d.access, s.ioasId));
    value(d.pin(BASE, 2n * P));
    expect(s.pinnedVm()).toBe(2);
    // Inside the callback, pins are refused (access->ioas is NULL) and unpins reach the old IOAS.
    let pinInside = '';
    d.onUnmap = () => { pinInside = errno(iommufdAccessPinPages(d.access, BASE, P)); };
    value(iommufdAccessReplace(d.access, ioas2));
    expect(d.unmapCalls).toEqual([[0n, ULONG_MAX]]);
    expect(pinInside).toBe('ENOENT');
    expect(s.pinnedVm()).toBe(0);
    expect(d.access.ioas).toBe(s.ioasOf(ioas2));
    expect(s.ioas.accessList.size).toBe(0);
    d.onUnmap = null;
    value(d.pin(BASE, P));
    expect(s.ioasOf(ioas2).pagesList()[0]!.pinnedPages).toBe(1);
    // Replacing with the same IOAS changes nothing.
    value(iommufdAccessReplace(d.access, ioas2));
    expect(d.unmapCalls.length).toBe(1);
    iommufdAccessDetach(d.access);
    expect(d.unmapCalls).toEqual([[0n, ULONG_MAX], [0n, ULONG_MAX]]);
    expect(s.pinnedVm()).toBe(0);
    expect(d.access.ioas).toBeNull();
  });

  it('a driver that keeps pins past unmap(0, ULONG_MAX): WARN, and the model releases them', () => {
    const s = setup();
    s.map(BASE, 2);
    const d = new FakeDriver(s.ctx);
    value(iommufdAccessAttach(d.access, s.ioasId));
    value(d.pin(BASE, 2n * P));
    d.unpinOnUnmap = false;
    iommufdAccessDetach(d.access);
    expect(warnings(s).some((l) => l.includes('left after unmap'))).toBe(true);
    expect(s.pinnedVm()).toBe(0);
    expect(d.access.pinCount).toBe(0);
    value(s.unmap(BASE, 2n * P));
  });
});

describe('pin / unpin', () => {
  it('errnos: length 0 EINVAL, wrap EOVERFLOW, not attached ENOENT, hole ENOENT, unaligned EINVAL, read-only EPERM', () => {
    const s = setup();
    const d = new FakeDriver(s.ctx);
    expect(errno(d.pin(BASE, P))).toBe('ENOENT');
    value(iommufdAccessAttach(d.access, s.ioasId));
    s.map(BASE, 4);
    s.map(BASE + 8n * P, 2, { writeable: false });
    s.map(BASE + 16n * P, 2, { readable: false });
    expect(errno(d.pin(BASE, 0n))).toBe('EINVAL');
    expect(errno(d.pin(ULONG_MAX, 2n))).toBe('EOVERFLOW');
    expect(errno(d.pin(BASE - P, 2n * P))).toBe('ENOENT');
    expect(errno(d.pin(BASE + 3n * P, 2n * P))).toBe('ENOENT');
    expect(errno(d.pin(BASE + 0x10n, P))).toBe('EINVAL');
    expect(errno(d.pin(BASE + 8n * P, P, true))).toBe('EPERM');
    expect(errno(d.pin(BASE + 16n * P, P))).toBe('EPERM');
    expect(value(d.pin(BASE + 8n * P, P)).length).toBe(1);
    expect(value(d.pin(BASE + 16n * P, P, true)).length).toBe(1);
    // The length need not be page aligned: it covers the pages it touches.
    expect(value(d.pin(BASE, 100n)).length).toBe(1);
    expect(value(d.pin(BASE + P, P + 1n)).length).toBe(2);
    expect(s.pinnedVm()).toBe(5);
    // Failed pins leave nothing pinned.
    expect(s.ioas.iopt.areaAt(BASE)!.numAccesses).toBe(2);
    const rwOnly = new FakeDriver(s.ctx, { needsPinPages: false });
    value(iommufdAccessAttach(rwOnly.access, s.ioasId));
    expect(errno(rwOnly.pin(BASE, P))).toBe('EINVAL');
    for (const p of [...d.pins]) d.unpin(p.iova, p.length);
    expect(s.pinnedVm()).toBe(0);
  });

  it('pins across adjacent areas; the unpin must match exactly, anything else WARNs and changes nothing', () => {
    const s = setup();
    const d = new FakeDriver(s.ctx);
    value(iommufdAccessAttach(d.access, s.ioasId));
    s.map(BASE, 2);
    s.map(BASE + 2n * P, 2);
    const pfns = value(d.pin(BASE + P, 2n * P, true));
    expect(pfns.length).toBe(2);
    const [a0, a1] = [s.ioas.iopt.areaAt(BASE)!, s.ioas.iopt.areaAt(BASE + 2n * P)!];
    expect(pfns[0]).toBe(a0.storage.pfnAt(a0.indexAt(BASE + P)));
    expect(pfns[1]).toBe(a1.storage.pfnAt(a1.indexAt(BASE + 2n * P)));
    expect([a0.numAccesses, a1.numAccesses]).toEqual([1, 1]);
    const before = warnings(s).length;
    iommufdAccessUnpinPages(d.access, BASE + P, P);
    iommufdAccessUnpinPages(d.access, BASE, 4n * P);
    iommufdAccessUnpinPages(d.access, BASE + P, 0n);
    iommufdAccessUnpinPages(d.access, BASE + 9n * P, P);
    expect(warnings(s).length).toBe(before + 4);
    expect(s.pinnedVm()).toBe(2);
    // Same pages, different byte length: the same pin.
    iommufdAccessUnpinPages(d.access, BASE + P, 2n * P - 7n);
    expect(s.pinnedVm()).toBe(0);
    expect([a0.numAccesses, a1.numAccesses]).toEqual([0, 0]);
  });

  it('a page shared with a domain fill is pinned once; pinned_vm and locked_vm count it once', () => {
    const w = world();
    const s = setup(w);
    const idev = value(iommufdDeviceBind(s.ctx, w.dev(NVME), { file: s.file }));
    const d = new FakeDriver(s.ctx);
    value(iommufdAccessAttach(d.access, s.ioasId));
    s.map(BASE, 4);
    const pages = s.ioas.pagesList()[0]!;
    // The access pins first: 2 pages.
    value(d.pin(BASE, 2n * P));
    expect([pages.pinnedPages, s.pinnedVm(), s.lockedVm()]).toEqual([2, 2, 2]);
    // The domain fill reuses them and pins the other 2.
    value(iommufdDeviceAttach(idev, s.ioasId));
    expect([pages.pinnedPages, s.pinnedVm(), s.lockedVm()]).toEqual([4, 4, 4]);
    expect(pages.userCount(0)).toBe(2);
    const again = value(d.pin(BASE, 2n * P));
    const domain = s.ioas.domains()[0]!;
    expect(domain.iovaToPhys(Number(BASE))).toBe(again[0]! * 4096);
    expect([pages.pinnedPages, s.pinnedVm()]).toEqual([4, 4]);
    d.unpin(BASE, 2n * P);
    d.unpin(BASE, 2n * P);
    expect([pages.pinnedPages, s.pinnedVm(), s.lockedVm()]).toEqual([4, 4, 4]);
    value(d.pin(BASE + 3n * P, P));
    iommufdDeviceDetach(idev);
    expect([pages.pinnedPages, s.pinnedVm(), s.lockedVm()]).toEqual([1, 1, 1]);
    iommufdDeviceUnbind(idev);
    iommufdAccessDestroy(d.access);
    expect([pages.pinnedPages, s.pinnedVm(), s.lockedVm()]).toEqual([0, 0, 0]);
  });

  it('pinning errors pass through (ENOMEM at RLIMIT_MEMLOCK) and leave nothing pinned', () => {
    const s = setup(world(), { memlockPages: 3 });
    const d = new FakeDriver(s.ctx);
    value(iommufdAccessAttach(d.access, s.ioasId));
    s.map(BASE, 2);
    s.map(BASE + 2n * P, 2);
    expect(errno(d.pin(BASE, 4n * P))).toBe('ENOMEM');
    expect([s.pinnedVm(), s.lockedVm(), d.access.pinCount]).toEqual([0, 0, 0]);
    expect(s.ioas.iopt.areaAt(BASE)!.numAccesses).toBe(0);
  });
});

describe('the unmap contract', () => {
  it('IOMMU_IOAS_UNMAP over a pinned area calls ops.unmap with the area; the driver unpins; the unmap succeeds', () => {
    const s = setup();
    const d = new FakeDriver(s.ctx);
    const other = new FakeDriver(s.ctx);
    value(iommufdAccessAttach(d.access, s.ioasId));
    value(iommufdAccessAttach(other.access, s.ioasId));
    s.map(BASE, 4);
    s.map(BASE + 8n * P, 2);
    value(d.pin(BASE + P, P));
    // An area without pins is unmapped without notification.
    expect(value(s.unmap(BASE + 8n * P, 2n * P))).toBe(2n * P);
    expect(d.unmapCalls).toEqual([]);
    expect(value(s.unmap(BASE, 4n * P))).toBe(4n * P);
    // Every access on the IOAS is told, pins or not, once per round.
    expect(d.unmapCalls).toEqual([[BASE, 4n * P]]);
    expect(other.unmapCalls).toEqual([[BASE, 4n * P]]);
    expect(s.ioas.iopt.areaCount).toBe(0);
    expect(s.pinnedVm()).toBe(0);
  });

  it('a callback that never unpins: EDEADLOCK after 100 retries, the mapping stays, prevent_access blocks new pins', () => {
    const s = setup();
    const d = new FakeDriver(s.ctx);
    value(iommufdAccessAttach(d.access, s.ioasId));
    const va = s.map(BASE, 2);
    value(d.pin(BASE, P));
    d.unpinOnUnmap = false;
    expect(errno(s.unmap(BASE, 2n * P))).toBe('EDEADLOCK');
    expect(d.unmapCalls.length).toBe(101);
    expect(warnings(s).some((l) => l.includes('accesses still pin'))).toBe(true);
    const area = s.ioas.iopt.areaAt(BASE)!;
    expect(area.pages).not.toBeNull();
    expect(area.preventAccess).toBe(true);
    expect(s.pinnedVm()).toBe(2 - 1);
    expect(errno(d.pin(BASE + P, P))).toBe('EINVAL');
    expect(errno(iommufdAccessRw(d.access, BASE, new Uint8Array(4)))).toBe('EINVAL');
    // The device DMA path (the pinned PFN) still reaches the user page.
    value(s.proc.mm.write(va, new Uint8Array([7, 7])));
    d.unpinOnUnmap = true;
    expect(value(s.unmap(BASE, 2n * P))).toBe(2n * P);
    expect(s.pinnedVm()).toBe(0);
  });

  it('a pin attempted from inside the callback is EINVAL (the area is being unmapped)', () => {
    const s = setup();
    const d = new FakeDriver(s.ctx);
    value(iommufdAccessAttach(d.access, s.ioasId));
    s.map(BASE, 2);
    value(d.pin(BASE, P));
    let inside = '';
    d.onUnmap = () => { inside = errno(iommufdAccessPinPages(d.access, BASE + P, P)); };
    value(s.unmap(0n, (1n << 64n) - 1n));
    expect(inside).toBe('EINVAL');
  });

  it('internal accesses are not notified', () => {
    const s = setup();
    const d = new FakeDriver(s.ctx);
    const internal = new FakeDriver(s.ctx, { internal: true });
    value(iommufdAccessAttach(d.access, s.ioasId));
    value(iommufdAccessAttach(internal.access, s.ioasId));
    s.map(BASE, 1);
    value(d.pin(BASE, P));
    value(s.unmap(BASE, P));
    expect(d.unmapCalls.length).toBe(1);
    expect(internal.unmapCalls).toEqual([]);
  });
});

describe('rw', () => {
  it('copies real bytes to and from the process memory, across areas and at any offset', () => {
    const s = setup();
    const d = new FakeDriver(s.ctx, { needsPinPages: false });
    value(iommufdAccessAttach(d.access, s.ioasId));
    const va0 = s.map(BASE, 2);
    const va1 = s.map(BASE + 2n * P, 2);
    const msg = new Uint8Array(6000).map((_, i) => (i * 7 + 3) & 0xff);
    value(iommufdAccessRw(d.access, BASE + 2n * P - 1000n, msg, { write: true }));
    const back0 = new Uint8Array(1000);
    const back1 = new Uint8Array(5000);
    value(s.proc.mm.read(va0 + 2 * 4096 - 1000, back0));
    value(s.proc.mm.read(va1, back1));
    expect([...back0, ...back1]).toEqual([...msg]);
    value(s.proc.mm.write(va1 + 5, new Uint8Array([1, 2, 3])));
    const got = new Uint8Array(3);
    value(iommufdAccessRw(d.access, BASE + 2n * P + 5n, got, { kthread: true }));
    expect([...got]).toEqual([1, 2, 3]);
    // rw takes no lasting pins.
    expect(s.pinnedVm()).toBe(0);
  });

  it('errnos: length 0 EINVAL, wrap EOVERFLOW, not attached ENOENT, hole ENOENT, read-only write EPERM', () => {
    const s = setup();
    const d = new FakeDriver(s.ctx);
    const buf = new Uint8Array(16);
    expect(errno(iommufdAccessRw(d.access, BASE, buf))).toBe('ENOENT');
    value(iommufdAccessAttach(d.access, s.ioasId));
    s.map(BASE, 1);
    s.map(BASE + 4n * P, 1, { writeable: false });
    expect(errno(iommufdAccessRw(d.access, BASE, new Uint8Array(0)))).toBe('EINVAL');
    expect(errno(iommufdAccessRw(d.access, ULONG_MAX - 3n, buf))).toBe('EOVERFLOW');
    expect(errno(iommufdAccessRw(d.access, BASE + P - 8n, buf))).toBe('ENOENT');
    expect(errno(iommufdAccessRw(d.access, BASE + 4n * P, buf, { write: true }))).toBe('EPERM');
    value(iommufdAccessRw(d.access, BASE + 4n * P, buf));
  });

  it('memfd-backed areas are copied through their frames', () => {
    const s = setup();
    const d = new FakeDriver(s.ctx);
    value(iommufdAccessAttach(d.access, s.ioasId));
    const memfd = value(s.proc.memfdCreate('buf'));
    value(s.proc.ftruncate(memfd, 2 * 4096));
    const va = value(s.proc.mmap(0, 2 * 4096, RW, MAP_SHARED, memfd, 0));
    value(api.ioasMapFile({ proc: s.proc, fd: s.fd, ioasId: s.ioasId, file: memfd, start: 0, length: 2 * 4096, iova: BASE }));
    value(iommufdAccessRw(d.access, BASE + 4090n, new Uint8Array([9, 8, 7, 6, 5, 4, 3, 2, 1]), { write: true }));
    const back = new Uint8Array(9);
    value(s.proc.mm.read(va + 4090, back));
    expect([...back]).toEqual([9, 8, 7, 6, 5, 4, 3, 2, 1]);
    expect(s.ioas.pagesList()[0]!.pinnedPages).toBe(0);
  });
});

describe('teardown', () => {
  it('destroy with pins outstanding: unmap(0, ULONG_MAX), the driver unpins, everything is released', () => {
    const s = setup();
    const d = new FakeDriver(s.ctx);
    value(iommufdAccessAttach(d.access, s.ioasId));
    s.map(BASE, 4);
    value(d.pin(BASE, 3n * P));
    value(d.pin(BASE + P, P));
    iommufdAccessDestroy(d.access);
    expect(d.unmapCalls).toEqual([[0n, ULONG_MAX]]);
    expect([s.pinnedVm(), s.lockedVm()]).toEqual([0, 0]);
    expect(s.ioas.users).toBe(1);
    expect(warnings(s)).toEqual([]);
    value(s.proc.fds.close(s.fd));
    expect(s.ctx.objects.size).toBe(0);
  });

  it('closing the iommufd with an access still there (no file held) destroys it before its IOAS', () => {
    const s = setup();
    const d = new FakeDriver(s.ctx);
    value(iommufdAccessAttach(d.access, s.ioasId));
    s.map(BASE, 2);
    value(d.pin(BASE, 2n * P));
    value(s.proc.fds.close(s.fd));
    expect(s.ctx.isClosed).toBe(true);
    expect(d.access.isDestroyed).toBe(true);
    expect(d.unmapCalls).toEqual([[0n, ULONG_MAX]]);
    expect([s.pinnedVm(), s.lockedVm()]).toEqual([0, 0]);
    iommufdAccessDestroy(d.access);
  });
});
