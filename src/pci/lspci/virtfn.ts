import { addressKey } from '../address.ts';
import type { RawFunction } from './raw.ts';
import type { Warnings } from './warnings.ts';

/** A physical function's SR-IOV routing, complete enough to place its VFs. */
export interface SriovPf {
  readonly fn: RawFunction;
  readonly totalVfs: number;
  /** VFs enabled: NumVFs while VF Enable is set; adjusted here when the routing cannot hold them. */
  numVfs: number;
  readonly vfOffset: number;
  readonly vfStride: number;
  readonly vfDevice: number;
}

/**
 * Find the functions of the dump that are SR-IOV virtual functions. Linux places VF i of a PF at
 * routing ID = PF RID + First VF Offset + i * VF Stride (pci_iov_virtfn_bus/devfn), RID = bus << 8 | devfn;
 * a function sitting there with the PF's vendor and the VF Device ID is that VF. VFs the dump lacks are
 * left for buildHost to generate. Returns each VF's PF.
 */
export function linkVirtualFunctions(pfs: readonly SriovPf[], byKey: ReadonlyMap<number, RawFunction>, warnings: Warnings): Map<RawFunction, RawFunction> {
  const pfOf = new Map<RawFunction, RawFunction>();
  const claimed = new Set<number>();
  for (const pf of pfs) {
    const a = pf.fn.header.address;
    const where = `line ${pf.fn.sriov?.line ?? pf.fn.line}: ${pf.fn.address}`;
    sanitizeCount(pf, where, warnings);
    const pfRid = (a.bus << 8) | a.devfn;
    const rids: number[] = [];
    for (let i = 0; i < pf.numVfs; i++) rids.push(pfRid + pf.vfOffset + i * pf.vfStride);
    if (rids.some((rid) => rid > 0xffff || rid === pfRid || claimed.has(rid))) {
      warnings.add(`${where}: its ${pf.numVfs} VFs (offset ${pf.vfOffset}, stride ${pf.vfStride}) fall beyond bus ff, on itself or on another PF's VFs; imported with SR-IOV disabled`);
      pf.numVfs = 0;
      continue;
    }
    let missing = 0;
    for (const rid of rids) {
      claimed.add(rid);
      const vf = byKey.get(addressKey({ domain: a.domain, bus: rid >> 8, devfn: rid & 0xff }));
      if (vf === undefined) {
        missing++;
      } else if (vf.header.vendor !== pf.fn.header.vendor || vf.header.device !== pf.vfDevice || vf.sriov !== undefined) {
        warnings.add(`${where}: ${vf.address} sits where one of its VFs belongs but is not one (IDs differ); kept as a physical function`);
      } else {
        pfOf.set(vf, pf.fn);
      }
    }
    if (missing > 0) {
      warnings.add(`${where}: ${missing} of its ${pf.numVfs} enabled VFs are not in the dump; they are generated from its SR-IOV capability`);
    }
  }
  return pfOf;
}

function sanitizeCount(pf: SriovPf, where: string, warnings: Warnings): void {
  if (pf.numVfs > pf.totalVfs) {
    warnings.add(`${where}: NumVFs ${pf.numVfs} exceeds TotalVFs ${pf.totalVfs}; using ${pf.totalVfs}`);
    pf.numVfs = pf.totalVfs;
  }
  // PCIe: a VF Stride of 0 is only allowed while at most one VF exists.
  if (pf.vfStride === 0 && pf.numVfs > 1) {
    warnings.add(`${where}: VF stride 0 with ${pf.numVfs} VFs enabled; only the first VF is imported`);
    pf.numVfs = 1;
  }
}
