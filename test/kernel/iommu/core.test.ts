import { describe, expect, it } from 'vitest';
import { FaultReason } from '../../../src/hw/iommu/types.ts';
import type { IoasisIommuDriver } from '../../../src/kernel/iommu/ioasis-iommu-driver.ts';
import { bench, enablePriPasid, errno, expectHwMatches, PAGE, pattern, value } from './helpers.ts';

// The IOMMU core on the built-in default host: default domains at boot, the DMA-ownership API of
// iommu.c, group attach/detach/replace, and what the hardware does with each domain.

const NVME = '39:00.0';
const BUF = 0x10_0000;

describe('boot', () => {
  it('every group gets a DMA default domain that maps nothing: a DMA faults and the fault lands in the driver log', () => {
    const b = bench();
    const nvme = b.dev(NVME);
    const g = b.group(NVME);
    expect(g.domain).toBe(g.defaultDomain);
    expect(g.domain.type).toBe('dma');
    expectHwMatches(b.core, g);
    const r = b.machine.dma(nvme, { op: 'write', address: 0x1000, length: 64, data: pattern(64) });
    expect(r.status).toBe('fault');
    b.core.poll();
    const faults = b.core.faultsOf(nvme);
    expect(faults).toHaveLength(1);
    expect(faults[0]?.reason).toBe(FaultReason.PteNotPresent);
    expect(faults[0]?.iova).toBe(0x1000);
  });

  it('a buffer the kernel maps into the default domain is where the device DMA lands', () => {
    const b = bench();
    const nvme = b.dev(NVME);
    const def = b.group(NVME).defaultDomain;
    if (!def.isPaging()) throw new Error('not paging');
    value(def.map(0x20_0000, BUF, 2 * PAGE, { read: true, write: true }));
    expect(def.iovaToPhys(0x20_0000 + 5)).toBe(BUF + 5);
    const r = b.machine.dma(nvme, { op: 'write', address: 0x20_0000 + 100, length: 6000, data: pattern(6000) });
    expect(r.status).toBe('ok');
    const got = new Uint8Array(6000);
    b.machine.memory.read(BUF + 100, got);
    expect(got).toEqual(pattern(6000));
  });

  it('iommu=pt: default domains are IDENTITY and DMA passes untranslated', () => {
    const b = bench({ cmdline: 'iommu=pt' });
    const g = b.group(NVME);
    expect(g.domain.type).toBe('identity');
    expectHwMatches(b.core, g);
    const r = b.machine.dma(b.dev(NVME), { op: 'write', address: BUF, length: 32, data: pattern(32) });
    expect(r.status).toBe('ok');
    const got = new Uint8Array(32);
    b.machine.memory.read(BUF, got);
    expect(got).toEqual(pattern(32));
  });

  it('a group behind a PCIe-to-PCI bridge shares the bridge requester ID and one domain', () => {
    const b = bench();
    const g = b.group('99:04.0');
    expect(g.devices.map((d) => d.shortBdf)).toEqual(['98:00.0', '99:04.0', '99:05.0']);
    expectHwMatches(b.core, g);
  });

  it('reserved regions: the x86 MSI window, and no direct regions', () => {
    const b = bench();
    const regions = b.core.resvRegions(b.dev(NVME));
    expect(regions).toEqual([{ start: 0xfee0_0000, length: 0x10_0000, type: 'msi', prot: { read: false, write: true } }]);
    expect(regions.some((r) => r.type === 'direct' || r.type === 'direct-relaxable')).toBe(false);
  });
});

describe('DMA ownership (reference §8, §9)', () => {
  it('a host driver cannot probe a device of an owned group: EBUSY', () => {
    const b = bench();
    const g = b.group('16:00.0');
    value(b.core.deviceClaimDmaOwner(b.dev('16:00.0'), 'ictx-A'));
    expect(errno(b.core.deviceUseDefaultDomain(b.dev('16:00.1')))).toBe('EBUSY');
    expect(b.core.dmaOwnerClaimed(g)).toBe(true);
  });

  it('host drivers share the default domain; a user claim then fails EPERM (the group is not viable)', () => {
    const b = bench();
    const g = b.group('16:00.0');
    value(b.core.deviceUseDefaultDomain(b.dev('16:00.1')));
    expect(g.ownerCnt).toBe(1);
    expect(b.core.dmaOwnerClaimed(g)).toBe(true);
    expect(errno(b.core.deviceClaimDmaOwner(b.dev('16:00.0'), 'ictx-A'))).toBe('EPERM');
    expect(errno(b.core.groupClaimDmaOwner(g, 'container'))).toBe('EPERM');
    b.core.deviceUnuseDefaultDomain(b.dev('16:00.1'));
    expect(b.core.dmaOwnerClaimed(g)).toBe(false);
    value(b.core.deviceClaimDmaOwner(b.dev('16:00.0'), 'ictx-A'));
  });

  it('claim with a different owner is EPERM; the same owner increments owner_cnt; null owner is EINVAL', () => {
    const b = bench();
    const g = b.group('16:00.0');
    expect(errno(b.core.deviceClaimDmaOwner(b.dev('16:00.0'), null))).toBe('EINVAL');
    expect(errno(b.core.groupClaimDmaOwner(g, null))).toBe('EINVAL');
    value(b.core.deviceClaimDmaOwner(b.dev('16:00.0'), 'ictx-A'));
    expect(errno(b.core.deviceClaimDmaOwner(b.dev('16:00.1'), 'ictx-B'))).toBe('EPERM');
    value(b.core.deviceClaimDmaOwner(b.dev('16:00.1'), 'ictx-A'));
    expect(g.ownerCnt).toBe(2);
    expect(errno(b.core.groupClaimDmaOwner(g, 'ictx-A'))).toBe('EPERM');
    b.core.deviceReleaseDmaOwner(b.dev('16:00.1'));
    expect(g.ownerCnt).toBe(1);
    expect(g.owner).toBe('ictx-A');
  });

  it('taking ownership attaches the blocking domain: the device DMA faults BLOCKED', () => {
    const b = bench();
    const nvme = b.dev(NVME);
    const g = b.group(NVME);
    const def = g.defaultDomain;
    if (!def.isPaging()) throw new Error('not paging');
    value(def.map(0, BUF, PAGE, { read: true, write: true }));
    expect(b.machine.dma(nvme, { op: 'read', address: 0, length: 8 }).status).toBe('ok');
    value(b.core.groupClaimDmaOwner(g, 'container'));
    expect(g.domain).toBe(g.blockingDomain);
    expectHwMatches(b.core, g);
    const r = b.machine.dma(nvme, { op: 'read', address: 0, length: 8 });
    expect(r.status).toBe('fault');
    expect(r.fault?.reason).toBe(FaultReason.Blocked);
  });

  it('release restores the default domain and the hardware context', () => {
    const b = bench();
    const nvme = b.dev(NVME);
    const g = b.group(NVME);
    const def = g.defaultDomain;
    if (!def.isPaging()) throw new Error('not paging');
    value(def.map(0, BUF, PAGE, { read: true, write: true }));
    value(b.core.deviceClaimDmaOwner(nvme, 'ictx'));
    const user = b.unmanaged(NVME);
    value(b.core.attachGroup(user, g));
    b.core.deviceReleaseDmaOwner(nvme);
    expect(g.domain).toBe(def);
    expect(g.owner).toBeNull();
    expect(g.ownerCnt).toBe(0);
    expectHwMatches(b.core, g);
    expect(b.machine.dma(nvme, { op: 'read', address: 0, length: 8 }).status).toBe('ok');
    value(b.core.deviceUseDefaultDomain(nvme));
  });

  it('ownership cannot be taken while the group is on a non-default domain: EBUSY', () => {
    const b = bench();
    const g = b.group(NVME);
    value(b.core.attachGroup(b.unmanaged(NVME), g));
    expect(errno(b.core.groupClaimDmaOwner(g, 'container'))).toBe('EBUSY');
    expect(g.ownerCnt).toBe(0);
  });
});

describe('group attach, replace, detach', () => {
  it('UNMANAGED map: the device DMA lands at the mapped PA; unmap invalidates, the next DMA faults', () => {
    const b = bench();
    const nvme = b.dev(NVME);
    const g = b.group(NVME);
    value(b.core.deviceClaimDmaOwner(nvme, 'ictx'));
    const d = b.unmanaged(NVME);
    value(b.core.attachGroup(d, g));
    expectHwMatches(b.core, g);
    value(d.map(0x8000_0000, BUF + 0x4000, 4 * PAGE, { read: true, write: true }));
    const w = b.machine.dma(nvme, { op: 'write', address: 0x8000_1000, length: 16, data: pattern(16, 3) });
    expect(w.status).toBe('ok');
    const got = new Uint8Array(16);
    b.machine.memory.read(BUF + 0x5000, got);
    expect(got).toEqual(pattern(16, 3));
    // The translation is now in the IOTLB; unmap must invalidate it.
    const driver = g.driver as IoasisIommuDriver;
    const before = driver.stats.invalidations;
    expect(d.unmap(0x8000_0000, 4 * PAGE)).toBe(4 * PAGE);
    expect(driver.stats.invalidations).toBeGreaterThan(before);
    const again = b.machine.dma(nvme, { op: 'write', address: 0x8000_1000, length: 16, data: pattern(16, 4) });
    expect(again.status).toBe('fault');
    expect(again.fault?.reason).toBe(FaultReason.PteNotPresent);
  });

  it('map rules: unaligned or outside the aperture EINVAL, an existing mapping EEXIST', () => {
    const b = bench();
    const d = b.unmanaged(NVME);
    expect(d.aperture).toEqual({ start: 0, last: 2 ** 57 - 1 });
    expect(d.pgsizeBitmap).toBe(0x1000 | 0x20_0000 | 0x4000_0000);
    expect(errno(d.map(0x100, BUF, PAGE, { read: true, write: false }))).toBe('EINVAL');
    expect(errno(d.map(2 ** 57, BUF, PAGE, { read: true, write: false }))).toBe('EINVAL');
    value(d.map(0, BUF, 2 * PAGE, { read: true, write: false }));
    expect(errno(d.map(PAGE, BUF, PAGE, { read: true, write: false }))).toBe('EEXIST');
  });

  it('attach while another domain is attached is EBUSY; replace moves; detach goes to blocking while owned', () => {
    const b = bench();
    const g = b.group(NVME);
    value(b.core.groupClaimDmaOwner(g, 'container'));
    const d1 = b.unmanaged(NVME);
    const d2 = b.unmanaged(NVME);
    value(b.core.attachGroup(d1, g));
    expect(errno(b.core.attachGroup(d2, g))).toBe('EBUSY');
    value(b.core.replaceGroupHandle(g, d2));
    expect(g.domain).toBe(d2);
    expectHwMatches(b.core, g);
    b.core.detachGroup(g);
    expect(g.domain).toBe(g.blockingDomain);
    expectHwMatches(b.core, g);
  });

  it('a domain of another IOMMU unit cannot be attached: EINVAL', () => {
    const b = bench();
    const other = b.unmanaged('6a:01.0');
    expect(errno(b.core.attachGroup(other, b.group(NVME)))).toBe('EINVAL');
  });
});

describe('dirty tracking', () => {
  it('SSADE: a device write sets the dirty bit; read-and-clear invalidates so the next write sets it again', () => {
    const b = bench();
    const nvme = b.dev(NVME);
    const g = b.group(NVME);
    value(b.core.groupClaimDmaOwner(g, 'container'));
    const d = value(b.core.allocPagingDomain(nvme, 'unmanaged', { dirtyTracking: true }));
    expect(d.dirtyTracking).toBe(true);
    value(b.core.attachGroup(d, g));
    // Allocated for dirty tracking, but tracking starts off (Linux: dmar_domain->dirty_tracking = false).
    const driver = g.driver as IoasisIommuDriver;
    expect(driver.readRid(nvme.rid).ridPasidEntry?.ssade).toBe(false);
    value(d.map(0, BUF, PAGE, { read: true, write: true }));
    expect(b.machine.dma(nvme, { op: 'write', address: 8, length: 8, data: pattern(8) }).status).toBe('ok');
    expect(d.readAndClearDirty(0)).toBe(false);
    const ops = d.dirtyOps;
    if (ops === null) throw new Error('a domain allocated for dirty tracking has dirty ops');
    value(ops.setDirtyTracking(d, true));
    expect(driver.readRid(nvme.rid).ridPasidEntry?.ssade).toBe(true);
    // An attach while tracking is on programs SSADE from the start.
    b.core.detachGroup(g);
    expect(driver.readRid(nvme.rid).ridPasidEntry?.ssade).not.toBe(true);
    value(b.core.attachGroup(d, g));
    expect(driver.readRid(nvme.rid).ridPasidEntry?.ssade).toBe(true);
    expect(d.readAndClearDirty(0)).toBe(false);
    expect(b.machine.dma(nvme, { op: 'write', address: 8, length: 8, data: pattern(8) }).status).toBe('ok');
    expect(d.readAndClearDirty(0)).toBe(true);
    expect(d.readAndClearDirty(0)).toBe(false);
    expect(b.machine.dma(nvme, { op: 'write', address: 8, length: 8, data: pattern(8) }).status).toBe('ok');
    expect(d.readAndClearDirty(0)).toBe(true);
    // Off again: SSADE cleared, and later writes leave D alone.
    value(ops.setDirtyTracking(d, false));
    expect(driver.readRid(nvme.rid).ridPasidEntry?.ssade).toBe(false);
    expect(b.machine.dma(nvme, { op: 'write', address: 8, length: 8, data: pattern(8) }).status).toBe('ok');
    expect(d.readAndClearDirty(0)).toBe(false);
  });

  it('SSADE follows set_dirty_tracking in PASID entries too, and the IOTLB does not hide writes after a read', () => {
    const b = bench();
    const dsa = b.dev('6a:01.0');
    enablePriPasid(dsa);
    value(b.core.deviceClaimDmaOwner(dsa, 'ictx'));
    const d = value(b.core.allocPagingDomain(dsa, 'unmanaged', { dirtyTracking: true }));
    const ops = d.dirtyOps;
    if (ops === null) throw new Error('a domain allocated for dirty tracking has dirty ops');
    value(d.map(0x1_0000, BUF, PAGE, { read: true, write: true }));
    value(b.core.attachDevicePasid(d, dsa, 7));
    const dirtyPages = (): number[] => {
      const got: number[] = [];
      value(ops.readAndClearDirty(d, 0x1_0000, PAGE, false, (iova) => { got.push(iova); }));
      return got;
    };
    // A read first: the IOTLB caches a translation without write rights from before tracking.
    expect(b.machine.dma(dsa, { op: 'read', address: 0x1_0000, length: 8, pasid: 7 }).status).toBe('ok');
    expect(errno(ops.readAndClearDirty(d, 0x1_0000, PAGE, false, () => undefined))).toBe('EINVAL');
    value(ops.setDirtyTracking(d, true));
    expect(b.machine.dma(dsa, { op: 'read', address: 0x1_0000, length: 8, pasid: 7 }).status).toBe('ok');
    expect(dirtyPages()).toEqual([]);
    expect(b.machine.dma(dsa, { op: 'write', address: 0x1_0008, length: 8, data: pattern(8), pasid: 7 }).status).toBe('ok');
    expect(dirtyPages()).toEqual([0x1_0000]);
    expect(dirtyPages()).toEqual([]);
    value(ops.setDirtyTracking(d, false));
    expect(b.machine.dma(dsa, { op: 'write', address: 0x1_0008, length: 8, data: pattern(8), pasid: 7 }).status).toBe('ok');
    value(ops.setDirtyTracking(d, true));
    expect(dirtyPages()).toEqual([]);
  });

  it('only domains allocated for dirty tracking have dirty ops', () => {
    const b = bench();
    const plain = b.unmanaged(NVME);
    expect(plain.dirtyOps).toBeNull();
    const tracked = value(b.core.allocPagingDomain(b.dev(NVME), 'unmanaged', { dirtyTracking: true }));
    expect(tracked.dirtyOps).not.toBeNull();
  });
});
