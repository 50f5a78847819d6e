import { describe, expect, it } from 'vitest';
import { checkIsolation } from '../../../src/kernel/isolation/check.ts';
import { ownership } from '../../../src/kernel/isolation/owners.ts';
import { iommufdDeviceAttach, iommufdDeviceBind } from '../../../src/kernel/iommufd/device.ts';
import type { HwptPaging } from '../../../src/kernel/iommufd/hw-pagetable.ts';
import type { Kernel } from '../../../src/kernel/kernel.ts';
import { IommuBackedParentDriver } from '../../../src/kernel/mdev/iommu-backed-parent.ts';
import { attach, boot, dev, openAndBind, user, UUID1, UUID2, value, type User } from '../mdev/helpers.ts';

// The isolation checker over whole Kernels: who owns what, and every way one owner's function can reach
// another owner's memory (split groups, foreign domains, shared requester IDs, untranslated P2P, PASID
// entries: the last is in test/kernel/mdev/pasid-backed.test.ts).

/** Take a function for `u` the way vfio-pci + iommufd would: unbind its host driver, bind, attach. */
function take(k: Kernel, u: User, bdf: string): HwptPaging {
  const d = dev(k, bdf);
  if (k.drivers.boundDriver(d) !== null) value(k.drivers.unbind(d));
  const idev = value(iommufdDeviceBind(u.ctx, d));
  const id = value(iommufdDeviceAttach(idev, u.ioasId));
  return value(u.ctx.objects.get<HwptPaging>(id, 'hwpt_paging'));
}

describe('isolation checker', () => {
  it('a freshly booted host: host drivers own their functions, nothing to report', () => {
    const k = boot();
    const r = checkIsolation(k);
    expect(r.breaches).toEqual([]);
    const nvme = r.assignments.find((a) => a.dev.shortBdf === '39:00.0');
    expect(nvme?.owner).toEqual({ kind: 'host', driver: 'nvme' });
  });

  it('two processes with functions of separate, ACS-isolated groups: nothing to report', () => {
    const k = boot();
    const a = user(k, 1000);
    const b = user(k, 1001);
    take(k, a, '39:00.0');
    take(k, b, '6a:01.0');
    const own = ownership(k);
    expect(own.assignments.filter((x) => x.owner.kind === 'user').map((x) => x.dev.shortBdf).sort()).toEqual(['39:00.0', '6a:01.0']);
    expect(checkIsolation(k).breaches).toEqual([]);
  });

  it('P2P that mainline groups miss: 2b:00.0 and 29:00.0 sit in separate groups behind a switch port without ACS', () => {
    const k = boot();
    expect(k.core.groupOf(dev(k, '2b:00.0'))).not.toBe(k.core.groupOf(dev(k, '29:00.0')));
    const a = user(k, 1000);
    const b = user(k, 1001);
    take(k, a, '2b:00.0');
    take(k, b, '29:00.0');
    const br = checkIsolation(k).breaches;
    expect(br.map((x) => x.kind)).toEqual(['p2p', 'p2p']);
    // A's function reaches B's, and the host's mpt3sas (2a:00.0) too; 27:00.0 is a bridge on pcieport.
    expect(br.map((x) => x.reason).find((x) => x.includes('29:00.0'))).toMatch(/^2b:00\.0 \(pid \d+, iommufd DEVICE \d+\) reaches BAR 0 of 29:00\.0 \(pid \d+, .*\(switch\), untranslated: switch downstream port 28:10\.0 has no ACS/);
    expect(br.map((x) => x.reason).find((x) => x.includes('2a:00.0'))).toMatch(/^2b:00\.0 .* reaches BAR 1 of 2a:00\.0 \(host driver mpt3sas\)/);
  });

  it('a requester ID programmed with another owner\'s domain is a foreign-domain breach', () => {
    const k = boot();
    const a = user(k, 1000);
    const b = user(k, 1001);
    take(k, a, '39:00.0');
    const hb = take(k, b, '2d:00.0');
    // A buggy driver writes B's domain into A's function's context entry.
    const nvme = dev(k, '39:00.0');
    const driver = k.core.driverOf(nvme);
    for (const rid of k.core.ridsOf(nvme)) value(driver?.attachDev(rid, hb.domain) ?? { ok: false, errno: 'ENODEV', code: 19, reason: '' });
    const br = checkIsolation(k).breaches;
    expect(br.map((x) => x.kind)).toEqual(['foreign-domain']);
    expect(br[0]?.reason).toMatch(/^39:00\.0 .* translates through a domain of pid/);
  });

  it('functions behind a PCI bridge share its requester ID: split by the 2019 mdev sample, the checker says so', () => {
    const k = boot();
    const f0 = dev(k, '99:04.0');
    const f1 = dev(k, '99:05.0');
    expect(k.core.ridsOf(f0).some((r) => k.core.ridsOf(f1).includes(r))).toBe(true);
    const drv = new IommuBackedParentDriver({ core: k.core, vfio: k.vfio, mdev: k.mdev }, 'separate-virtual-group');
    k.drivers.registerDriver(drv.pciDriver);
    const ms = [f0, f1].map((d, i) => {
      if (k.drivers.boundDriver(d) !== null) value(k.drivers.unbind(d));
      value(k.drivers.setDriverOverride(d, 'vfio-mdev-pci'));
      value(k.drivers.bind(d, 'vfio-mdev-pci'));
      return value(k.mdev.create(d, 'vfio-mdev-pci-1', i === 0 ? UUID1 : UUID2));
    });
    const a = user(k, 1000);
    const b = user(k, 1001);
    value(openAndBind(ms[0]?.vdev ?? null, a.ctx));
    value(attach(ms[0]?.vdev ?? null, a.ioasId));
    value(openAndBind(ms[1]?.vdev ?? null, b.ctx));
    value(attach(ms[1]?.vdev ?? null, b.ioasId));
    const kinds = new Set(checkIsolation(k).breaches.map((x) => x.kind));
    expect([...kinds].sort()).toEqual(['foreign-domain', 'p2p', 'shared-rid', 'split-group']);
  });
});
