// Mock devices (selftest.c mock_dev_create/mock_dev_destroy). In Linux they are platform devices named
// iommufd_mock<N> on the iommufd_mock bus, whose IOMMU is the mock driver; a PASID-capable one carries
// the fwnode property pasid-num-bits = 20.
//
// Carrier (a modelling choice): the IOMMU core and iommufd speak PciDev, so a mock device is a synthetic
// PCI function on a private bus in PCI domain 0xffff that no host topology contains: nothing enumerates
// it (it never appears under /sys/bus/pci), its requester ID is the mock index (bus = N >> 8, devfn =
// N & 0xff) and only the mock driver ever sees that RID. pasid-num-bits is expressed as a PASID
// extended capability of width 20, which is where the core reads a device's PASID width from; a
// device without MOCK_FLAGS_DEVICE_PASID has no PASID capability (max_pasids 0).

import { PciBus } from '../../../pci/bus.ts';
import { PciDev } from '../../../pci/dev.ts';
import { functionSpecSchema } from '../../../pci/spec.ts';
import { synthesizeConfig } from '../../../pci/synth.ts';
import { fail, ok, type Result } from '../../errno.ts';
import type { IommuCore } from '../../iommu/core.ts';
import { MOCK_FLAGS_DEVICE_NO_DIRTY, MOCK_FLAGS_DEVICE_PASID, MOCK_PASID_WIDTH } from './constants.ts';
import type { MockIommuDriver } from './mock-iommu-driver.ts';

/** The PCI domain of the mock bus: outside every host file's. */
export const MOCK_PCI_DOMAIN = 0xffff;
const MOCK_FLAGS_VALID = MOCK_FLAGS_DEVICE_NO_DIRTY | MOCK_FLAGS_DEVICE_PASID;
const MAX_MOCK_DEVICES = 0x10000;

export interface MockDevice {
  /** N of iommufd_mock<N>. */
  readonly index: number;
  readonly name: string;
  readonly flags: number;
  readonly dev: PciDev;
}

/** The mock devices of one kernel and their names (mock_dev_ida). */
export class MockBus {
  private readonly used = new Map<number, MockDevice>();

  constructor(private readonly core: IommuCore, private readonly driver: MockIommuDriver) {}

  /** mock_dev_create(): EINVAL for flags outside NO_DIRTY|PASID; probed into its own group. */
  create(flags: number): Result<MockDevice> {
    if ((flags & ~MOCK_FLAGS_VALID) !== 0) return fail('EINVAL', `unknown mock device flags 0x${(flags >>> 0).toString(16)}`);
    let index = 0;
    while (this.used.has(index)) index++;
    if (index >= MAX_MOCK_DEVICES) return fail('ENOSPC', 'no free mock device number');
    const name = `iommufd_mock${index}`;
    const bus = new PciBus(MOCK_PCI_DOMAIN, index >> 8, null, null);
    const spec = functionSpecSchema.parse({
      address: `${MOCK_PCI_DOMAIN.toString(16)}:${(index >> 8).toString(16).padStart(2, '0')}:${((index & 0xff) >> 3).toString(16).padStart(2, '0')}.${index & 7}`,
      id: '1234:0000', class: '0880', name, express: { type: 'endpoint' },
      ...((flags & MOCK_FLAGS_DEVICE_PASID) !== 0 ? { pasid: { width: MOCK_PASID_WIDTH } } : {}),
    });
    const dev = new PciDev(bus, index & 0xff, synthesizeConfig(spec, bus.number, false), { name });
    this.driver.registerDevice(dev.rid, flags, dev);
    const added = this.core.addDevice(dev, this.driver);
    if (!added.ok) { this.driver.releaseDevice(dev.rid); return added; }
    const m: MockDevice = { index, name, flags, dev };
    this.used.set(index, m);
    return ok(m);
  }

  /** mock_dev_destroy(): the device leaves the core (its group must be idle) and frees its number. */
  destroy(m: MockDevice): Result {
    const r = this.core.removeDevice(m.dev);
    if (!r.ok) return r;
    this.used.delete(m.index);
    return ok();
  }

  /** The mock device carried by `dev`, if any. */
  byDev(dev: PciDev): MockDevice | undefined {
    for (const m of this.used.values()) if (m.dev === dev) return m;
    return undefined;
  }

  get devices(): MockDevice[] { return [...this.used.values()]; }
}
