// IOMMU_GET_HW_INFO (what the 2021 RFC called IOMMU_DEVICE_GET_INFO): the IOMMU behind a bound device.

import { z } from 'zod';
import * as api from '../../uapi/api.ts';
import { commonFields, stepKind } from '../step-kind.ts';
import { hex, numberLike } from '../values.ts';
import { fromResult } from './outcome.ts';

const TYPES: Record<number, string> = { 0: 'NONE', 1: 'INTEL_VTD', 2: 'ARM_SMMUV3', 3: 'TEGRA241_CMDQV' };

export const hwInfo = stepKind({
  name: 'hw-info',
  summary: 'IOMMU_GET_HW_INFO for a dev_id; value: the field named by `report` (data-type, max-pasid-log2, capabilities)',
  fields: {
    process: z.string().min(1), fd: z.union([z.string(), z.number().int()]).default('iommufd'), device: numberLike,
    report: z.enum(['data-type', 'max-pasid-log2', 'capabilities']).default('data-type'), ...commonFields,
  },
  run(s, st) {
    const p = s.process(st.process);
    const devId = s.num(st.device, p);
    return fromResult(api.getHwInfo({ proc: p.proc, fd: s.fd(p, st.fd), devId }), `${p.name}: IOMMU_GET_HW_INFO dev_id ${devId}`,
      (h) => `${p.name}: IOMMU_GET_HW_INFO dev_id ${devId} → ${TYPES[h.dataType] ?? h.dataType}, max_pasid_log2 ${h.maxPasidLog2}, capabilities ${hex(h.capabilities)}, ${h.dataLen} bytes of driver data`,
      (h) => ({ value: st.report === 'data-type' ? BigInt(h.dataType) : st.report === 'max-pasid-log2' ? BigInt(h.maxPasidLog2) : h.capabilities }));
  },
});
