// PASID allocation policy. Linux ships per-device PASIDs for user space: the VMM names any PASID below the
// device's max_pasids in VFIO_DEVICE_ATTACH_IOMMUFD_PT, and the kernel's own users (SVA, Scalable-IOV
// default PASIDs) draw from a system-wide IDA (iommu_alloc_global_pasid). The 2021 /dev/ioasid proposal
// (seeds 000 and 003: "the hypervisor should have a role in allocating the PASID") made every PASID come
// from one system-wide allocator, so user space had to ask for one before using it. That design is the
// named option 'global': user PASID attaches must use a PASID the caller's iommufd allocated (EPERM
// otherwise), and kernel default PASIDs come from the same space.

import { fail, ok, type Result } from '../errno.ts';

export type PasidAllocationPolicy = 'per-device' | 'global';

/** PASID 0 is IOMMU_NO_PASID; the space is 20 bits. */
const FIRST = 1;
const LIMIT = 1 << 20;

export class GlobalPasidAllocator {
  private readonly owners = new Map<number, object>();

  constructor(readonly policy: PasidAllocationPolicy = 'per-device') {}

  /** The lowest free PASID, now owned by `owner` (an iommufd context, or a kernel driver). ENOSPC when full. */
  alloc(owner: object): Result<number> {
    for (let p = FIRST; p < LIMIT; p++) {
      if (this.owners.has(p)) continue;
      this.owners.set(p, owner);
      return ok(p);
    }
    return fail('ENOSPC', 'no free PASID in the system-wide space');
  }

  /** Mark `pasid` used by `owner` (a kernel user that chose it). EBUSY when someone else holds it. */
  reserve(pasid: number, owner: object): Result {
    const cur = this.owners.get(pasid);
    if (cur !== undefined && cur !== owner) return fail('EBUSY', `PASID ${pasid} is allocated to another user`);
    this.owners.set(pasid, owner);
    return ok();
  }

  free(pasid: number, owner: object): void {
    if (this.owners.get(pasid) === owner) this.owners.delete(pasid);
  }

  /** Every PASID `owner` holds is released (its iommufd closed). */
  freeAll(owner: object): void {
    for (const [p, o] of [...this.owners]) if (o === owner) this.owners.delete(p);
  }

  ownerOf(pasid: number): object | undefined { return this.owners.get(pasid); }

  /**
   * Under 'global', may `user` attach at `pasid`? EPERM unless it allocated it. Under 'per-device' every
   * PASID is the device's own business (Linux).
   */
  checkUserPasid(pasid: number, user: object): Result {
    if (this.policy !== 'global') return ok();
    const o = this.owners.get(pasid);
    if (o === user) return ok();
    return fail('EPERM', o === undefined
      ? `PASID ${pasid} was not allocated: under the system-wide PASID design user space allocates PASIDs first`
      : `PASID ${pasid} is allocated to another user of the system-wide PASID space`);
  }
}
