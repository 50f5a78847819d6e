import { describe, expect, it } from 'vitest';
import { DEFAULT_IOMMU_CAPS } from '../../../src/hw/iommu/types.ts';
import { endpoint, host, rootPort } from '../../support/spec-helpers.ts';
import { bench, errno, expectHwMatches, PAGE, pattern, value } from './helpers.ts';

// The core on small synthetic hosts: an IOMMU whose PASID width is below the device's, and a kernel with
// the IOMMU off.

const spec = host([
  { address: '00:02.0', id: '8086:0b25', class: '0880', express: { type: 'rc-integrated-endpoint' }, ats: {}, pri: { outstanding: 16 }, pasid: { width: 20 } },
  rootPort('00:1c.0', 1, 1),
  endpoint('01:00.0'),
]);

describe('small hosts', () => {
  it('max_pasids is the smaller of the IOMMU (8 bits here) and the device (20 bits)', () => {
    const b = bench({ spec, iommuCaps: { ...DEFAULT_IOMMU_CAPS, pasidWidth: 8 } });
    const dev = b.dev('00:02.0');
    expect(b.core.maxPasids(dev)).toBe(256);
    const d = b.unmanaged('00:02.0');
    expect(errno(b.core.attachDevicePasid(d, dev, 256))).toBe('EINVAL');
    value(b.core.attachDevicePasid(d, dev, 255));
    expectHwMatches(b.core, b.group('00:02.0'));
  });

  it('every covered device gets a group and a DMA default domain programmed in the hardware', () => {
    const b = bench({ spec });
    expect(b.core.groups.map((g) => g.devices.map((d) => d.shortBdf))).toEqual([['00:02.0'], ['00:1c.0'], ['01:00.0']]);
    for (const g of b.core.groups) {
      expect(g.domain.type).toBe('dma');
      expectHwMatches(b.core, g);
    }
  });

  it('intel_iommu=off: no groups, no driver, translation stays off (DMA reaches physical addresses)', () => {
    const b = bench({ spec, cmdline: 'intel_iommu=off' });
    expect(b.core.groups).toHaveLength(0);
    expect(b.core.drivers).toHaveLength(0);
    const r = b.machine.dma(b.dev('01:00.0'), { op: 'write', address: 0x10_0000, length: PAGE, data: pattern(PAGE) });
    expect(r.status).toBe('ok');
    expect(errno(b.core.deviceClaimDmaOwner(b.dev('01:00.0'), 'ictx'))).toBe('ENODEV');
  });
});
