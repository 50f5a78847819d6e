// IOMMU_GET_HW_INFO (drivers/iommu/iommufd/device.c iommufd_get_hw_info, and intel_iommu_hw_info), uAPI
// reference §6.11: for a bound device, the driver's data (struct iommu_hw_info_vtd, out_data_type
// INTEL_VTD), copied as min(data_len, kernel length) with the rest of the user buffer zero-filled and the
// kernel's length returned in data_len; out_capabilities (DIRTY_TRACKING from the IOMMU; PCI_ATS_NOT_SUPPORTED,
// a negative-sense bit, when the device cannot use ATS: no ATS capability or a unit without a device TLB,
// IOMMU_CAP_PCI_ATS_SUPPORTED; PCI_PASID_EXEC/PRIV from the PASID control register) and
// out_max_pasid_log2 = ilog2(max_pasids), 0 without PASIDs.
//
// The simulated unit's own CAP register is not VT-d's, so cap_reg/ecap_reg are composed from its
// capabilities at the VT-d bit positions (see vtdCapReg/vtdEcapReg). This layer may not import src/uapi:
// the struct (24 bytes) and the constants are written out here and checked against the codecs in tests.

import { PCI_PASID_CTRL_EXEC, PCI_PASID_CTRL_PRIV } from '../../hw/dma/pri.ts';
import type { IommuCaps } from '../../hw/iommu/types.ts';
import type { PciDev } from '../../pci/dev.ts';
import { PCI_EXT_CAP_ID_PASID, PCI_PASID_CTRL } from '../../pci/regs.ts';
import { fail, ok } from '../errno.ts';
import type { IommufdDevice } from './device.ts';
import { handler } from './ioas-ioctls.ts';

export const IOMMU_HW_INFO_FLAG_INPUT_TYPE = 1 << 0;
export const IOMMU_HW_INFO_TYPE_DEFAULT = 0;
export const IOMMU_HW_INFO_TYPE_INTEL_VTD = 1;
export const IOMMU_HW_CAP_DIRTY_TRACKING = 1n << 0n;
export const IOMMU_HW_CAP_PCI_PASID_EXEC = 1n << 1n;
export const IOMMU_HW_CAP_PCI_PASID_PRIV = 1n << 2n;
export const IOMMU_HW_CAP_PCI_ATS_NOT_SUPPORTED = 1n << 3n;
/** sizeof(struct iommu_hw_info_vtd). */
export const HW_INFO_VTD_SIZE = 24;

const bit = (n: number, on: boolean): bigint => (on ? 1n << BigInt(n) : 0n);

/** VT-d CAP_REG: SAGAW (4/5-level), MGAW, SLLPS (2M/1G), FL1GP, FL5LP. */
export function vtdCapReg(c: IommuCaps): bigint {
  const sagaw = (1n << 2n) | (c.fiveLevel ? 1n << 3n : 0n);
  return (sagaw << 8n) | (BigInt(c.inputAddressWidth - 1) << 16n)
    | bit(34, c.pageSize2M) | bit(35, c.pageSize1G)
    | bit(56, c.firstStage && c.pageSize1G) | bit(60, c.firstStage && c.fiveLevel);
}

/** VT-d ECAP_REG: C, QI, DT, PT, SC, NEST, PRS, PSS, PASID, SMTS, SLADS, SLTS, FLTS, SMPWC. */
export function vtdEcapReg(c: IommuCaps): bigint {
  return bit(0, c.coherent) | bit(1, true) | bit(2, c.deviceTlb) | bit(6, c.passThrough) | bit(7, c.snoopControl) | bit(26, c.nesting) | bit(29, c.pri)
    | (c.pasidWidth > 0 ? BigInt(c.pasidWidth - 1) << 35n : 0n) | bit(40, c.pasidWidth > 0)
    | bit(43, true) | bit(45, c.dirtyTracking) | bit(46, c.secondStage) | bit(47, c.firstStage) | bit(48, c.coherent);
}

/** struct iommu_hw_info_vtd { u32 flags; u32 __reserved; u64 cap_reg; u64 ecap_reg; }. */
export function hwInfoVtd(c: IommuCaps): Uint8Array {
  const b = new Uint8Array(HW_INFO_VTD_SIZE);
  const v = new DataView(b.buffer);
  v.setBigUint64(8, vtdCapReg(c), true);
  v.setBigUint64(16, vtdEcapReg(c), true);
  return b;
}

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
  if (inType !== IOMMU_HW_INFO_TYPE_DEFAULT && inType !== IOMMU_HW_INFO_TYPE_INTEL_VTD) {
    return fail('EOPNOTSUPP', `the IOMMU driver reports INTEL_VTD data, not type ${inType}`);
  }
  const data = hwInfoVtd(driver.caps);
  const copyLen = Math.min(cmd.data_len, data.length);
  if (cmd.data_len > 0) {
    const end = cmd.data_uptr + BigInt(cmd.data_len);
    if (end > BigInt(Number.MAX_SAFE_INTEGER)) return fail('EFAULT', 'data_uptr + data_len is not a user address');
    const out = new Uint8Array(cmd.data_len);
    out.set(data.subarray(0, copyLen));
    if (!proc.mm.write(Number(cmd.data_uptr), out).ok) return fail('EFAULT', 'cannot write the hardware information to data_uptr');
  }
  let caps = driver.caps.dirtyTracking ? IOMMU_HW_CAP_DIRTY_TRACKING : 0n;
  if (!ctx.core.pciAtsSupported(dev)) caps |= IOMMU_HW_CAP_PCI_ATS_NOT_SUPPORTED;
  const max = ctx.core.maxPasids(dev);
  let log2 = 0;
  if (max > 0) {
    log2 = Math.floor(Math.log2(max));
    const ctrl = pasidStatus(dev);
    if ((ctrl & PCI_PASID_CTRL_EXEC) !== 0) caps |= IOMMU_HW_CAP_PCI_PASID_EXEC;
    if ((ctrl & PCI_PASID_CTRL_PRIV) !== 0) caps |= IOMMU_HW_CAP_PCI_PASID_PRIV;
  }
  return ok({ out_data_type: IOMMU_HW_INFO_TYPE_INTEL_VTD, data_len: data.length, out_capabilities: caps, out_max_pasid_log2: log2 });
});
