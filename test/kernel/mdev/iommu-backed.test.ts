import { describe, expect, it } from 'vitest';
import { checkIsolation } from '../../../src/kernel/isolation/check.ts';
import { iommufdDeviceAttach, iommufdDeviceBind } from '../../../src/kernel/iommufd/device.ts';
import { IommuBackedParentDriver, type MdevGroupPolicy } from '../../../src/kernel/mdev/iommu-backed-parent.ts';
import { attach, boot, closeDev, dev, errno, openAndBind, PAGE, user, UUID1, UUID2, value } from './helpers.ts';

// Kind (b), seed 001: the 2019 vfio-mdev-pci sample wraps a whole PCI function as an mdev. The default
// host's GPU 16:00.0 and its HDA function 16:00.1 are one multifunction device without ACS: one IOMMU
// group, and each function reaches the other's BAR peer-to-peer, untranslated. With the 2019 separate
// virtual group two processes each take one function and the checker reports the breach; with either
// fix the second assignment fails (inherit: EPERM at bind; attach-time-ebusy: EBUSY at attach).

const F0 = '16:00.0';
const F1 = '16:00.1';

function setup(policy: MdevGroupPolicy) {
  const k = boot();
  const drv = new IommuBackedParentDriver({ core: k.core, vfio: k.vfio, mdev: k.mdev }, policy);
  k.drivers.registerDriver(drv.pciDriver);
  for (const bdf of [F0, F1]) {
    value(k.drivers.unbind(dev(k, bdf)));
    value(k.drivers.setDriverOverride(dev(k, bdf), 'vfio-mdev-pci'));
    value(k.drivers.bind(dev(k, bdf), 'vfio-mdev-pci'));
  }
  const m0 = value(k.mdev.create(dev(k, F0), 'vfio-mdev-pci-1', UUID1));
  const m1 = value(k.mdev.create(dev(k, F1), 'vfio-mdev-pci-1', UUID2));
  const a = user(k, 1000, { fill: 0xaa });
  const b = user(k, 1001, { fill: 0xbb });
  return { k, drv, m0, m1, a, b };
}

describe('IOMMU-backed mdev (vfio-mdev-pci, seed 001)', () => {
  it('the two functions share one IOMMU group and reach each other peer-to-peer', () => {
    const { k } = setup('separate-virtual-group');
    expect(k.core.groupOf(dev(k, F0))).toBe(k.core.groupOf(dev(k, F1)));
    const bar = k.machine.fabric.map.bars(dev(k, F0))[0];
    expect(bar !== undefined && k.machine.route(dev(k, F1), bar.start).kind).toBe('p2p');
  });

  it('one instance per function (core-counted: EUSERS for a second)', () => {
    const { k } = setup('separate-virtual-group');
    expect(errno(k.mdev.create(dev(k, F0), 'vfio-mdev-pci-1', '83b8f4f2-509f-382f-3c1e-e6bfe0fa10ff'))).toBe('EUSERS');
  });

  it('separate-virtual-group (2019): each mdev has a fake group; two processes take one group; the checker reports it', () => {
    const { k, m0, m1, a, b } = setup('separate-virtual-group');
    expect(k.mdev.view(UUID1)?.iommu_group).not.toBe(k.core.groupOf(dev(k, F0))?.id);
    expect(m0.vdev?.group).not.toBe(m1.vdev?.group);
    value(openAndBind(m0.vdev, a.ctx));
    value(attach(m0.vdev, a.ioasId));
    value(openAndBind(m1.vdev, b.ctx));
    value(attach(m1.vdev, b.ioasId));
    // Each function's DMA goes through its own process's IOAS...
    const w = k.machine.dma(dev(k, F1), { op: 'write', address: Number(b.iova), length: 4, data: Uint8Array.of(1, 2, 3, 4) });
    expect(w.status).toBe('ok');
    expect(b.read(0, 4)).toEqual(Uint8Array.of(1, 2, 3, 4));
    // ...but B's function reaches A's function's BAR untranslated.
    const bar = k.machine.fabric.map.bars(dev(k, F0))[0];
    if (bar === undefined) throw new Error('no BAR');
    expect(k.machine.dma(dev(k, F1), { op: 'write', address: bar.start, length: 4, data: Uint8Array.of(9, 9, 9, 9) }).status).toBe('p2p');
    const report = checkIsolation(k);
    const kinds = report.breaches.map((x) => x.kind);
    expect(kinds).toContain('split-group');
    expect(kinds).toContain('p2p');
    const p2p = report.breaches.find((x) => x.kind === 'p2p')?.reason ?? '';
    expect(p2p).toMatch(/multifunction/);
    expect(report.breaches.find((x) => x.kind === 'split-group')?.reason).toMatch(/pid .* and .*pid/);
  });

  it('inherit-parent-group: the mdev is in the parent\'s group; the second owner\'s bind is EPERM; nothing to report', () => {
    const { k, m0, m1, a, b } = setup('inherit-parent-group');
    const g = k.core.groupOf(dev(k, F0));
    expect(k.mdev.view(UUID1)?.iommu_group).toBe(g?.id);
    expect(m0.vdev?.group).toBe(m1.vdev?.group);
    const id = value(openAndBind(m0.vdev, a.ctx));
    expect(value(a.ctx.objects.get(id)).type).toBe('device');
    value(attach(m0.vdev, a.ioasId));
    expect(errno(openAndBind(m1.vdev, b.ctx))).toBe('EPERM');
    expect(checkIsolation(k).breaches).toEqual([]);
    // The same process may take both (owner_cnt++), still clean.
    value(openAndBind(m1.vdev, a.ctx));
    value(attach(m1.vdev, a.ioasId));
    expect(checkIsolation(k).breaches).toEqual([]);
    const w = k.machine.dma(dev(k, F1), { op: 'write', address: Number(a.iova) + PAGE, length: 2, data: Uint8Array.of(5, 6) });
    expect(w.status).toBe('ok');
    expect(a.read(PAGE, 2)).toEqual(Uint8Array.of(5, 6));
  });

  it('attach-time-ebusy: the second owner\'s attach is EBUSY; once it gives up, nothing to report', () => {
    const { k, m0, m1, a, b } = setup('attach-time-ebusy');
    value(openAndBind(m0.vdev, a.ctx));
    value(attach(m0.vdev, a.ioasId));
    expect(k.core.groupOf(dev(k, F0))?.owner).toBe(a.ctx);
    value(openAndBind(m1.vdev, b.ctx));
    expect(errno(attach(m1.vdev, b.ioasId))).toBe('EBUSY');
    // On the cdev path the bind precedes the attach: until B closes, it holds a device whose function
    // sits in A's group (seed 001's fix was made for type1, where the attach came first). The checker sees it.
    expect(checkIsolation(k).breaches.map((x) => x.kind)).toContain('split-group');
    closeDev(m1.vdev);
    expect(checkIsolation(k).breaches).toEqual([]);
    // A detaches and closes: the group is free again, B can have it.
    closeDev(m0.vdev);
    expect(k.core.groupOf(dev(k, F0))?.ownerCnt).toBe(0);
    value(openAndBind(m1.vdev, b.ctx));
    value(attach(m1.vdev, b.ioasId));
    expect(checkIsolation(k).breaches).toEqual([]);
  });

  it('a sibling taken directly through iommufd: separate lets the mdev in (breach), the fixes refuse', () => {
    for (const [policy, expected] of [['separate-virtual-group', 'ok'], ['inherit-parent-group', 'EPERM'], ['attach-time-ebusy', 'EBUSY']] as const) {
      const { k, m1, a, b } = setup(policy);
      // A takes 16:00.0 as vfio-pci would: bind the function itself to its iommufd and attach.
      value(k.drivers.unbind(dev(k, F0)));
      const idev = value(iommufdDeviceBind(a.ctx, dev(k, F0)));
      value(iommufdDeviceAttach(idev, a.ioasId));
      const bound = openAndBind(m1.vdev, b.ctx);
      const r = bound.ok ? attach(m1.vdev, b.ioasId) : bound;
      expect(errno(r), policy).toBe(expected);
      if (!r.ok && bound.ok) closeDev(m1.vdev);
      const breaches = checkIsolation(k).breaches;
      if (expected === 'ok') expect(breaches.length, policy).toBeGreaterThan(0);
      else expect(breaches, policy).toEqual([]);
    }
  });
});
