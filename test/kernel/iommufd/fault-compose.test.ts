// The fault fd composes each group's records into one reused buffer: the bytes must equal those of a
// fresh buffer whatever the reused one held before (reserved fields included).
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { NO_PASID } from '../../../src/hw/iommu/types.ts';
import type { IommuCore } from '../../../src/kernel/iommu/core.ts';
import { IommufdFault } from '../../../src/kernel/iommufd/fault.ts';
import type { IopfGroup } from '../../../src/kernel/iommu/io-pgfault.ts';
import type { PciDev } from '../../../src/pci/dev.ts';

describe('IommufdFault.compose into a reused buffer', () => {
  const rec = fc.record({
    pasid: fc.oneof(fc.constant(NO_PASID), fc.integer({ min: 0, max: 0xfffff })),
    prgi: fc.integer({ min: 0, max: 511 }),
    read: fc.boolean(), write: fc.boolean(), exec: fc.boolean(), priv: fc.boolean(), lastInGroup: fc.boolean(),
    address: fc.oneof(fc.nat({ max: 2 ** 40 }).map((p) => p * 4096), fc.constant(2 ** 60)),
  });

  it('equals composing into a fresh buffer', () => {
    const dev = {} as PciDev;
    // compose() needs only the dev-id lookup, not the IOMMU core.
    const fault = new IommufdFault({} as IommuCore, (d) => (d === dev ? 7 : 0));
    fc.assert(fc.property(fc.array(rec, { minLength: 1, maxLength: 4 }), fc.nat({ max: 0xffff_ffff }), fc.integer({ min: 0, max: 255 }), (recs, cookie, junk) => {
      const group = { dev, faults: recs.map((r) => ({ ...r, rid: 0x6a08, privateData: null })) } as unknown as IopfGroup;
      const fresh = fault.compose(group, cookie);
      const reused = new Uint8Array(fresh.length).fill(junk);
      expect(fault.compose(group, cookie, reused)).toBe(reused);
      expect(reused).toEqual(fresh);
      // A buffer of another size is not used.
      const other = new Uint8Array(fresh.length + 40);
      expect(fault.compose(group, cookie, other)).not.toBe(other);
    }));
  });
});
