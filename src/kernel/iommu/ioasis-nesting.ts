// The ioasis driver's nesting rules, as intel-iommu has them (drivers/iommu/intel/nested.c and
// intel_pasid_setup_nested in pasid.c): what a nested allocation accepts, what an attach checks of the
// guest's stage-1 data, and the PASID entry it becomes (PGTT nested). The driver (ioasis-iommu-driver.ts)
// owns the DIDs and the invalidations; these are the parts that need none of its state.

import type { PasidEntrySpec } from '../../hw/iommu/device-table.ts';
import type { IommuCaps } from '../../hw/iommu/types.ts';
import { fail, ok, type Result } from '../errno.ts';
import { IoPageTableDomain, type IommuDomain } from './domain.ts';
import {
  decodeVtdS1, IOMMU_HWPT_DATA_VTD_S1, IOMMU_VTD_S1_EAFE, IOMMU_VTD_S1_SRE, IOMMU_VTD_S1_WPE, VTD_S1_SIZE,
  type NestedDomain, type VtdS1Config,
} from './nested-domain.ts';
import { copyStructFromUser, type IommuUserData } from './user-data.ts';

/** IOMMU_HWPT_ALLOC_PASID: the only flag a nested domain takes (FAULT_ID_VALID stays in iommufd). */
const ALLOC_PASID = 1 << 3;

/**
 * intel_iommu_domain_alloc_nested()'s checks, in its order: no nesting, or flags other than ALLOC_PASID →
 * EOPNOTSUPP; data not VTD_S1 → EOPNOTSUPP; a parent that is not `owner`'s NEST_PARENT paging domain →
 * EINVAL; then the struct is copied (short or long → EINVAL, unreadable → EFAULT). Like intel, the
 * stage-1 fields themselves are not looked at here but at attach.
 */
export function checkNestedAlloc(
  caps: IommuCaps, name: string, owner: unknown, parent: IommuDomain, flags: number, data: IommuUserData,
): Result<{ parent: IoPageTableDomain; config: VtdS1Config }> {
  if (!caps.nesting || !caps.firstStage || !caps.secondStage) return fail('EOPNOTSUPP', `${name} has no nested translation`);
  if ((flags & ~ALLOC_PASID) !== 0) return fail('EOPNOTSUPP', `flags 0x${flags.toString(16)}: a nested domain takes only IOMMU_HWPT_ALLOC_PASID`);
  if (data.type !== IOMMU_HWPT_DATA_VTD_S1) return fail('EOPNOTSUPP', `data_type ${data.type}: ${name} nests only IOMMU_HWPT_DATA_VTD_S1`);
  if (!(parent instanceof IoPageTableDomain) || parent.owner !== owner || !parent.nestParent) {
    return fail('EINVAL', `the parent is not a NEST_PARENT paging domain of ${name}`);
  }
  const b = copyStructFromUser(data, IOMMU_HWPT_DATA_VTD_S1, VTD_S1_SIZE, VTD_S1_SIZE);
  if (!b.ok) return b;
  return ok({ parent, config: decodeVtdS1(b.value) });
}

/**
 * intel_pasid_setup_nested()'s checks, at attach: the address width 48 or 57 (57 needs five-level
 * support), else EINVAL. The unit has no extended-access (EAFE) or write-protect (WPE) bit, so those are
 * refused as intel refuses EAFE without ECAP.EAFS; SRE is supported. The root must fit the entry's PA
 * field (intel would write the high bits into reserved ones and the walk would fault; ioasis refuses).
 */
export function nestedAttachChecks(caps: IommuCaps, name: string, d: NestedDomain): Result {
  const s1 = d.s1;
  if (s1.addrWidth !== 48 && !(s1.addrWidth === 57 && caps.fiveLevel)) {
    return fail('EINVAL', `stage-1 address width ${s1.addrWidth} is not one ${name} walks (48${caps.fiveLevel ? ' or 57' : ''})`);
  }
  if ((s1.flags & BigInt(IOMMU_VTD_S1_EAFE)) !== 0n) return fail('EINVAL', `${name} has no extended access flag support (EAFE)`);
  if ((s1.flags & BigInt(IOMMU_VTD_S1_WPE)) !== 0n) return fail('EINVAL', `${name} has no write-protect enable (WPE)`);
  if (s1.pgtblAddr >= 1n << 52n) return fail('EINVAL', `stage-1 root 0x${s1.pgtblAddr.toString(16)} is beyond the 52-bit PASID-entry address field`);
  return ok();
}

/**
 * PGTT nested: the guest root (its low 12 bits dropped, as pasid_set_flptr does), the parent's table as
 * the second stage with SSADE when the parent tracks dirty pages, SRE from the stage-1 flags, own DID.
 */
export function nestedPasidEntry(d: NestedDomain, did: number): PasidEntrySpec {
  return {
    pgtt: 'nested', did, fsRoot: Number(d.s1.pgtblAddr & ~0xfffn), fsLevels: d.fsLevels,
    ssRoot: d.parent.table.root, ssLevels: d.parent.levels, ssade: d.parent.dirtyTrackingEnabled,
    sre: (d.s1.flags & BigInt(IOMMU_VTD_S1_SRE)) !== 0n,
  };
}
