// IOMMU_GET_HW_INFO (drivers/iommu/iommufd/device.c iommufd_get_hw_info, and intel_iommu_hw_info), uAPI
// reference §6.11: for a bound device, the driver's data (struct iommu_hw_info_vtd, out_data_type
// INTEL_VTD), copied as min(data_len, kernel length) with the rest of the user buffer zero-filled and the
// kernel's length returned in data_len; out_capabilities (DIRTY_TRACKING from the IOMMU; PCI_ATS_NOT_SUPPORTED,
// a negative-sense bit, when the device cannot use ATS: no ATS capability or a unit without a device TLB,
// IOMMU_CAP_PCI_ATS_SUPPORTED; PCI_PASID_EXEC/PRIV from the PASID control register) and
// out_max_pasid_log2 = ilog2(max_pasids), 0 without PASIDs.
//
// The data comes from the device's driver (ops->hw_info, driver-ops.ts): the ioasis driver's is VT-d's
// (iommu/vtd-hw-info.ts), the selftest mock's is struct iommu_test_hw_info.

import { PCI_PASID_CTRL_EXEC, PCI_PASID_CTRL_PRIV } from '../../hw/dma/pri.ts';
import type { PciDev } from '../../pci/dev.ts';
import { PCI_EXT_CAP_ID_PASID, PCI_PASID_CTRL } from '../../pci/regs.ts';
import { fail, ok } from '../errno.ts';
import type { IommufdDevice } from './device.ts';
import { handler } from './ioas-ioctls.ts';

export { HW_INFO_VTD_SIZE, hwInfoVtd, IOMMU_HW_INFO_TYPE_INTEL_VTD, vtdCapReg, vtdEcapReg } from '../iommu/vtd-hw-info.ts';

export const IOMMU_HW_INFO_FLAG_INPUT_TYPE = 1 << 0;
export const IOMMU_HW_INFO_TYPE_DEFAULT = 0;
export const IOMMU_HW_CAP_DIRTY_TRACKING = 1n << 0n;
export const IOMMU_HW_CAP_PCI_PASID_EXEC = 1n << 1n;
export const IOMMU_HW_CAP_PCI_PASID_PRIV = 1n << 2n;
export const IOMMU_HW_CAP_PCI_ATS_NOT_SUPPORTED = 1n << 3n;
/** pci_pasid_status(): the PASID control register (a VF's PF's); 0 without the capability. */
function pasidStatus(dev: PciDev): number {
  const owner = dev.physfn ?? dev;
  const cap = owner.config.findExtCapability(PCI_EXT_CAP_ID_PASID);
  return cap === 0 ? 0 : owner.config.read16(cap + PCI_PASID_CTRL);
}

export interface HwInfoCmd {
  size: number; flags: number; dev_id: number; data_len: number; data_uptr: bigint;
  out_data_type: number; out_max_pasid_log2: number; __reserved: Uint8Array; out_capabilities: bigint;
}

export const iommufdGetHwInfo = handler<HwInfoCmd>((ctx, proc, cmd) => {
  if ((cmd.flags & ~IOMMU_HW_INFO_FLAG_INPUT_TYPE) !== 0) return fail('EOPNOTSUPP', `unknown GET_HW_INFO flags 0x${(cmd.flags >>> 0).toString(16)}`);
  const inType = (cmd.flags & IOMMU_HW_INFO_FLAG_INPUT_TYPE) !== 0 ? cmd.out_data_type : IOMMU_HW_INFO_TYPE_DEFAULT;
  if (cmd.__reserved.some((x) => x !== 0)) return fail('EOPNOTSUPP', '__reserved is not zero');
  const idev = ctx.objects.get<IommufdDevice>(cmd.dev_id, 'device');
  if (!idev.ok) return idev;
  const dev = idev.value.dev;
  const driver = ctx.core.driverOf(dev);
  if (driver === undefined) return fail('ENODEV', `${dev.shortBdf} has no IOMMU`);
  const info = ctx.core.hwInfo(dev, inType);
  if (!info.ok) return info;
  const data = info.value.data;
  const copyLen = Math.min(cmd.data_len, data.length);
  if (cmd.data_len > 0) {
    const end = cmd.data_uptr + BigInt(cmd.data_len);
    if (end > BigInt(Number.MAX_SAFE_INTEGER)) return fail('EFAULT', 'data_uptr + data_len is not a user address');
    const out = new Uint8Array(cmd.data_len);
    out.set(data.subarray(0, copyLen));
    if (!proc.mm.write(Number(cmd.data_uptr), out).ok) return fail('EFAULT', 'cannot write the hardware information to data_uptr');
  }
  let caps = ctx.core.deviceCapable(dev, 'dirty-tracking') ? IOMMU_HW_CAP_DIRTY_TRACKING : 0n;
  if (!ctx.core.pciAtsSupported(dev)) caps |= IOMMU_HW_CAP_PCI_ATS_NOT_SUPPORTED;
  const max = ctx.core.maxPasids(dev);
  let log2 = 0;
  if (max > 0) {
    log2 = Math.floor(Math.log2(max));
    const ctrl = pasidStatus(dev);
    if ((ctrl & PCI_PASID_CTRL_EXEC) !== 0) caps |= IOMMU_HW_CAP_PCI_PASID_EXEC;
    if ((ctrl & PCI_PASID_CTRL_PRIV) !== 0) caps |= IOMMU_HW_CAP_PCI_PASID_PRIV;
  }
  return ok({ out_data_type: info.value.type, data_len: data.length, out_capabilities: caps, out_max_pasid_log2: log2 });
});
