import { describe, expect, it } from 'vitest';
import { checkIsolation } from '../../../src/kernel/isolation/check.ts';
import type { HwptPaging } from '../../../src/kernel/iommufd/hw-pagetable.ts';
import { PasidBackedParentDriver } from '../../../src/kernel/mdev/pasid-backed-parent.ts';
import * as api from '../../../src/uapi/api.ts';
import { attach, boot, closeDev, dev, errno, openAndBind, PAGE, user, UUID1, UUID2, UUID3, value } from './helpers.ts';

// Kind (c), seed 003: Scalable-IOV mdevs of the default host's DSA (6a:01.0, 20-bit PASIDs). The parent
// stays on idxd; each mdev's security context is its PASID entry (parent RID, default PASID).

const DSA = '6a:01.0';
const IOVA_A = 0x10_0000n;
const IOVA_B = 0x40_0000n;

function setup() {
  const k = boot();
  const drv = new PasidBackedParentDriver({ core: k.core, vfio: k.vfio, mdev: k.mdev, machine: k.machine }, 4);
  value(drv.registerParent(dev(k, DSA)));
  const m1 = value(k.mdev.create(dev(k, DSA), 'idxd-siov-wq', UUID1));
  const m2 = value(k.mdev.create(dev(k, DSA), 'idxd-siov-wq', UUID2));
  const a = user(k, 1000, { iova: IOVA_A });
  const b = user(k, 1001, { iova: IOVA_B });
  return { k, drv, m1, m2, a, b };
}

const bytes = (...b: number[]): Uint8Array => Uint8Array.from(b);

describe('PASID-backed mdev (SIOV, seed 003)', () => {
  it('the parent stays on idxd; each mdev has its own default PASID and a private fake group', () => {
    const { k, m1, m2 } = setup();
    expect(k.drivers.boundDriver(dev(k, DSA))?.name).toBe('idxd');
    expect([m1.pasid, m2.pasid]).toEqual([1, 2]);
    expect(m1.vdev?.group?.type).toBe('emulated-iommu');
    expect(k.mdev.supportedTypes(dev(k, DSA))[0]?.available_instances).toBe(2);
    expect(k.core.groupOf(dev(k, DSA))?.owner).toBeNull();
  });

  it('attach puts the user\'s page table at (parent RID, PASID): the mdev\'s DMA lands in its process\'s memory', () => {
    const { k, drv, m1, m2, a, b } = setup();
    value(openAndBind(m1.vdev, a.ctx));
    const hwptId = value(attach(m1.vdev, a.ioasId));
    const hwpt = value(a.ctx.objects.get<HwptPaging>(hwptId, 'hwpt_paging'));
    expect(hwpt.pasidCompat).toBe(true);
    expect(k.core.domainAtPasid(dev(k, DSA), 1)).toBe(hwpt.domain);
    value(openAndBind(m2.vdev, b.ctx));
    value(attach(m2.vdev, b.ioasId));
    expect(drv.dma(m1, { op: 'write', address: Number(IOVA_A) + 8, length: 3, data: bytes(1, 2, 3) }).status).toBe('ok');
    expect(a.read(8, 3)).toEqual(bytes(1, 2, 3));
    expect(drv.dma(m2, { op: 'write', address: Number(IOVA_B), length: 2, data: bytes(7, 7) }).status).toBe('ok');
    expect(b.read(0, 2)).toEqual(bytes(7, 7));
    // Neither reaches the other's IOVAs.
    expect(drv.dma(m2, { op: 'read', address: Number(IOVA_A), length: 8 }).status).toBe('fault');
    expect(drv.dma(m1, { op: 'write', address: Number(IOVA_B), length: 2, data: bytes(9, 9) }).status).toBe('fault');
    expect(b.read(0, 2)).toEqual(bytes(7, 7));
    expect(checkIsolation(k).breaches).toEqual([]);
  });

  it('cannot reach memory mapped only in the domain at the parent\'s RID (the host driver\'s DMA domain)', () => {
    const { k, drv, m1, a } = setup();
    value(openAndBind(m1.vdev, a.ctx));
    value(attach(m1.vdev, a.ioasId));
    const g = k.core.groupOf(dev(k, DSA));
    const def = g?.defaultDomain;
    if (def === undefined || !def.isPaging()) throw new Error('no DMA default domain');
    // idxd's dma_map of a kernel buffer at an IOVA the user's IOAS does not map.
    const kbuf = k.frames.alloc() * PAGE; // a kernel page (dma_alloc_coherent-like)
    k.memory.write(kbuf, bytes(0x5a, 0x5a));
    value(def.map(0x80_0000, kbuf, PAGE, { read: true, write: true }));
    expect(k.machine.dma(dev(k, DSA), { op: 'read', address: 0x80_0000, length: 2 }).status).toBe('ok');
    const r = drv.dma(m1, { op: 'read', address: 0x80_0000, length: 2 });
    expect(r.status).toBe('fault');
    expect(drv.dma(m1, { op: 'write', address: 0x80_0000, length: 2, data: bytes(0, 0) }).status).toBe('fault');
    const got = new Uint8Array(2);
    k.memory.read(kbuf, got);
    expect(got).toEqual(bytes(0x5a, 0x5a));
  });

  it('replace moves the PASID to another IOAS; detach removes the entry; unbind frees the auto HWPT', () => {
    const { k, drv, m1, a } = setup();
    const ioas2 = value(api.ioasAlloc({ proc: a.proc, fd: a.fd }));
    value(openAndBind(m1.vdev, a.ctx));
    const h1 = value(attach(m1.vdev, a.ioasId));
    const h2 = value(attach(m1.vdev, ioas2));
    expect(h2).not.toBe(h1);
    expect(errno(a.ctx.objects.get(h1))).toBe('ENOENT');
    expect(drv.dma(m1, { op: 'read', address: Number(IOVA_A), length: 4 }).status).toBe('fault');
    m1.vdev?.ops.detachIoas?.(m1.vdev);
    expect(k.core.pasidHandle(dev(k, DSA), 1)).toBeUndefined();
    closeDev(m1.vdev);
    expect(errno(a.ctx.objects.get(h2))).toBe('ENOENT');
  });

  it('a HWPT without IOMMU_HWPT_ALLOC_PASID is EINVAL; a PASID entry already in use makes the bind EBUSY', () => {
    const { k, m1, m2, a, b } = setup();
    const bindId = value(openAndBind(m1.vdev, a.ctx));
    const plain = value(api.hwptAlloc({ proc: a.proc, fd: a.fd, devId: bindId, ptId: a.ioasId }));
    expect(errno(attach(m1.vdev, plain))).toBe('EINVAL');
    const d = value(k.core.allocPagingDomain(dev(k, DSA)));
    value(k.core.attachDevicePasid(d, dev(k, DSA), m2.pasid ?? 0));
    expect(errno(openAndBind(m2.vdev, b.ctx))).toBe('EBUSY');
  });

  it('the checker reports a PASID entry pointing at another owner\'s domain', () => {
    const { k, m1, m2, a, b } = setup();
    value(openAndBind(m1.vdev, a.ctx));
    const h = value(a.ctx.objects.get<HwptPaging>(value(attach(m1.vdev, a.ioasId)), 'hwpt_paging'));
    value(openAndBind(m2.vdev, b.ctx));
    value(attach(m2.vdev, b.ioasId));
    // A buggy replace: m2's PASID now translates through A's page table.
    value(k.core.replaceDevicePasid(h.domain, dev(k, DSA), m2.pasid ?? 0));
    const br = checkIsolation(k).breaches;
    expect(br.map((x) => x.kind)).toEqual(['pasid-entry']);
    expect(br[0]?.reason).toMatch(/PASID 2 of 6a:01.0 points at a domain of pid/);
  });

  it('remove frees the PASID for the next mdev; removal is EBUSY while open', () => {
    const { k, m1, a } = setup();
    value(openAndBind(m1.vdev, a.ctx));
    expect(errno(k.mdev.remove(UUID1))).toBe('EBUSY');
    closeDev(m1.vdev);
    value(k.mdev.remove(UUID1));
    expect(value(k.mdev.create(dev(k, DSA), 'idxd-siov-wq', UUID3)).pasid).toBe(1);
  });
});
