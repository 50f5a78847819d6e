// An unmap's IOTLB flush (the driver's flushRange): one range invalidation per PASID the domain is
// attached at, behind one FENCE, and every cached translation of the range is gone afterwards.

import { describe, expect, it } from 'vitest';
import type { IoasisIommuDriver } from '../../../src/kernel/iommu/ioasis-iommu-driver.ts';
import { bench, enablePriPasid, PAGE, pattern, value } from './helpers.ts';

const DSA = '6a:01.0';
const BUF = 0x1000_0000;

describe('flushRange', () => {
  it('invalidates the range at the RID and at each attached PASID, one FENCE for all', () => {
    const b = bench();
    const dsa = b.dev(DSA);
    enablePriPasid(dsa);
    value(b.core.deviceClaimDmaOwner(dsa, 'ictx'));
    const d = b.unmanaged(DSA);
    value(d.map(0x8000_0000, BUF, 4 * PAGE, { read: true, write: true }));
    value(b.core.attachGroup(d, b.group(DSA)));
    value(b.core.attachDevicePasid(d, dsa, 7));
    value(b.core.attachDevicePasid(d, dsa, 9));
    // Fill the IOTLB at every PASID (and the RID).
    for (const pasid of [undefined, 7, 9]) {
      const r = b.machine.dma(dsa, { op: 'write', address: 0x8000_1000, length: 8, data: pattern(8), ...(pasid === undefined ? {} : { pasid }) });
      expect(r.status).toBe('ok');
    }
    const driver = b.group(DSA).driver as IoasisIommuDriver;
    const before = { ...driver.stats };
    expect(d.unmap(0x8000_0000, 4 * PAGE)).toBe(4 * PAGE);
    expect(driver.stats.invalidations - before.invalidations).toBe(3);
    expect(driver.stats.commands - before.commands).toBe(4);
    expect(driver.stats.fences - before.fences).toBe(1);
    for (const pasid of [undefined, 7, 9]) {
      const r = b.machine.dma(dsa, { op: 'read', address: 0x8000_1000, length: 8, ...(pasid === undefined ? {} : { pasid }) });
      expect(r.status).not.toBe('ok');
    }
  });
});
