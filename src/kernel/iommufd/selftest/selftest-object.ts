// The IOMMUFD_OBJ_SELFTEST object of MOCK_DOMAIN ("stdev"): a mock device bound to the context as a
// DEVICE and attached at its RID. IOMMU_DESTROY of it (or the context's close) detaches the RID, unbinds
// the DEVICE (which detaches every PASID first) and removes the mock device from the IOMMU core.

import { NO_PASID } from '../../../hw/iommu/types.ts';
import type { IommufdCtx } from '../context.ts';
import { iommufdDeviceDetach, iommufdDeviceUnbind, type IommufdDevice } from '../device.ts';
import type { IommufdObject } from '../object.ts';
import type { MockDevice } from './mock-device.ts';
import type { IommufdSelftest } from './selftest.ts';

export class SelftestDevObject implements IommufdObject {
  readonly type = 'selftest' as const;
  id = 0;
  users = 0;
  /** The DEVICE, once bound (null while MOCK_DOMAIN is still building it). */
  idev: IommufdDevice | null = null;
  private gone = false;

  constructor(readonly ctx: IommufdCtx, readonly st: IommufdSelftest, readonly mock: MockDevice) {}

  /** iommufd_selftest_destroy(), TYPE_IDEV. */
  destroy(): void {
    if (this.gone) return;
    this.gone = true;
    const idev = this.idev;
    this.idev = null;
    if (idev !== null) {
      iommufdDeviceDetach(idev, NO_PASID);
      iommufdDeviceUnbind(idev);
    }
    const r = this.st.bus.destroy(this.mock);
    if (!r.ok) this.ctx.core.warn(`${this.mock.name}: destroy failed: ${r.reason}`);
  }

  abort(): void { this.destroy(); }
}
