// The IOMMU core with a second kind of driver: devices added after boot (addDevice, the selftest's mock
// bus) get singleton groups on their driver's blocking domain, follow the same ownership, attach and
// PASID rules as host devices, and leave only when idle (removeDevice).

import { describe, expect, it } from 'vitest';
import { MockBus } from '../../../src/kernel/iommufd/selftest/mock-device.ts';
import { MockIommuDriver } from '../../../src/kernel/iommufd/selftest/mock-iommu-driver.ts';
import { MockViommuDriver } from '../../../src/kernel/iommufd/selftest/mock-viommu.ts';
import { IOMMU_TEST_PASID_RESERVED, MOCK_FLAGS_DEVICE_PASID } from '../../../src/kernel/iommufd/selftest/constants.ts';
import { bench, errno, value } from './helpers.ts';

function setup() {
  const b = bench();
  const driver = new MockIommuDriver(new MockViommuDriver(b.core.machine.memory, 2 ** 32));
  const bus = new MockBus(b.core, driver);
  return { b, core: b.core, driver, bus };
}

describe('IommuCore.addDevice / removeDevice', () => {
  it('a hot-plugged device is alone in a new group with the lowest free ID, on the blocking domain, no PASIDs without the capability', () => {
    const { core, bus, driver } = setup();
    const ids = new Set(core.groups.map((g) => g.id));
    const m = value(bus.create(0));
    const g = core.groupOf(m.dev);
    if (g === undefined) throw new Error('no group');
    expect(ids.has(g.id)).toBe(false);
    let lowest = 0;
    while (ids.has(lowest)) lowest++;
    expect(g.id).toBe(lowest);
    expect(g.devices).toEqual([m.dev]);
    expect(g.domain).toBe(driver.blockedDomain);
    expect(g.defaultDomain).toBe(driver.blockedDomain);
    expect(core.driverOf(m.dev)).toBe(driver);
    expect(core.ioasisDriverOf(m.dev)).toBeUndefined();
    expect(core.maxPasids(m.dev)).toBe(0);
    expect(core.resvRegions(m.dev)).toEqual([]);
    expect(core.groupHasIsolatedMsi(g)).toBe(true);
    expect(errno(core.addDevice(m.dev, driver))).toBe('EEXIST');
    const p = value(bus.create(MOCK_FLAGS_DEVICE_PASID));
    expect(core.maxPasids(p.dev)).toBe(2 ** 20);
  });

  it('ownership, attach and PASID attach work as for host devices; removal waits until the group is idle', () => {
    const { core, bus } = setup();
    const m = value(bus.create(MOCK_FLAGS_DEVICE_PASID));
    const g = core.groupOf(m.dev);
    if (g === undefined) throw new Error('no group');
    const owner = {};
    value(core.deviceClaimDmaOwner(m.dev, owner));
    const d = value(core.allocPagingDomain(m.dev));
    const d2 = value(core.allocPagingDomain(m.dev));
    value(core.attachGroup(d, g));
    expect(errno(bus.destroy(m))).toBe('EBUSY');
    value(core.attachDevicePasid(d, m.dev, IOMMU_TEST_PASID_RESERVED));
    // The mock's PASID 1024 rule: the next non-blocking set fails and the core keeps the old domain.
    expect(errno(core.replaceDevicePasid(d2, m.dev, IOMMU_TEST_PASID_RESERVED))).toBe('ENOMEM');
    expect(core.domainAtPasid(m.dev, IOMMU_TEST_PASID_RESERVED)).toBe(d);
    core.removeDevicePasid(m.dev, IOMMU_TEST_PASID_RESERVED);
    core.detachGroup(g);
    core.deviceReleaseDmaOwner(m.dev);
    value(bus.destroy(m));
    expect(core.groupOf(m.dev)).toBeUndefined();
    expect(core.groups.includes(g)).toBe(false);
    expect(errno(core.removeDevice(m.dev))).toBe('ENODEV');
  });

  it('a host device cannot be removed as if hot-plugged', () => {
    const { b, core } = setup();
    expect(errno(core.removeDevice(b.dev('39:00.0')))).toBe('ENODEV');
  });
});
