// The IOMMU_GET_HW_INFO data of the ioasis driver (intel_iommu_hw_info): struct iommu_hw_info_vtd. The
// simulated unit's own CAP register is not VT-d's, so cap_reg/ecap_reg are composed from its capabilities
// at the VT-d bit positions. The kernel layer may not import src/uapi: the struct (24 bytes) and the
// constants are written out here and checked against the codecs in tests.

import type { IommuCaps } from '../../hw/iommu/types.ts';

export const IOMMU_HW_INFO_TYPE_INTEL_VTD = 1;
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
