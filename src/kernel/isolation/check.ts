// The isolation checker: a mechanical invariant check over a Kernel. From who owns each function
// (owners.ts) it reports every breach, each with a one-line reason:
//  (i)   one IOMMU group whose functions belong to two owners, one of them a user (the group is the unit
//        of isolation: VFIO's viability rule, VFIO reference §8);
//  (ii)  a function of owner X that can reach memory of owner Y: its requester ID is programmed (in the
//        IOMMU driver's tables, not the core's bookkeeping) with a domain of Y, it shares a requester ID
//        (alias) with a function of Y, or the fabric routes its untranslated request for a BAR of Y's
//        function peer-to-peer, past the IOMMU;
//  (iii) a PASID-backed mdev whose PASID entry points at a domain of another owner (seed 003).
// Host drivers are one trust domain: breaches need a user on at least one side.

import type { Kernel } from '../kernel.ts';
import { ownerName, ownership, sameOwner, type Assignment, type Owner } from './owners.ts';

export type BreachKind = 'split-group' | 'foreign-domain' | 'shared-rid' | 'p2p' | 'pasid-entry';

export interface Breach {
  readonly kind: BreachKind;
  /** One line a human can act on. */
  readonly reason: string;
}

export interface IsolationReport {
  readonly assignments: readonly Assignment[];
  readonly breaches: readonly Breach[];
}

const who = (a: Assignment): string => `${a.dev.shortBdf} (${ownerName(a.owner)}${a.via === ownerName(a.owner) ? '' : `, ${a.via}`})`;
const involvesUser = (a: Owner, b: Owner): boolean => a.kind === 'user' || b.kind === 'user';

/** Check every isolation invariant of `kernel`. */
export function checkIsolation(kernel: Kernel): IsolationReport {
  const own = ownership(kernel);
  const as = own.assignments;
  const breaches: Breach[] = [];
  const core = kernel.core;

  // (i) one group, two owners.
  for (const g of core.groups) {
    const inGroup = as.filter((a) => g.devices.includes(a.dev));
    const done = new Set<string>();
    for (const a of inGroup) {
      for (const b of inGroup) {
        if (sameOwner(a.owner, b.owner) || !involvesUser(a.owner, b.owner)) continue;
        const key = [ownerName(a.owner), ownerName(b.owner)].sort().join('|');
        if (done.has(key)) continue;
        done.add(key);
        breaches.push({ kind: 'split-group', reason: `IOMMU group ${g.id} is split: ${who(a)} and ${who(b)} have different owners` });
      }
    }
  }

  // (ii) reach: a foreign domain at the RID, a shared requester ID, peer-to-peer to a foreign BAR.
  for (const a of as) {
    const driver = core.driverOf(a.dev);
    if (driver === undefined) continue;
    for (const rid of core.ridsOf(a.dev)) {
      const d = driver.domainAt(rid);
      const o = d === null ? undefined : own.domainOwner.get(d);
      if (o !== undefined && !sameOwner(o, a.owner)) {
        breaches.push({ kind: 'foreign-domain', reason: `${who(a)} translates through a domain of ${ownerName(o)}: it can reach that owner's memory` });
        break;
      }
    }
  }
  const fabric = kernel.machine.fabric;
  for (const a of as) {
    for (const b of as) {
      if (a.dev === b.dev || sameOwner(a.owner, b.owner) || !involvesUser(a.owner, b.owner)) continue;
      if (core.driverOf(a.dev) === core.driverOf(b.dev) && core.ridsOf(a.dev).some((r) => core.ridsOf(b.dev).includes(r)) && a.dev.bdf < b.dev.bdf) {
        breaches.push({ kind: 'shared-rid', reason: `${who(a)} and ${who(b)} share a requester ID: the IOMMU cannot tell their DMA apart` });
      }
      for (const bar of fabric.map.bars(b.dev)) {
        const r = fabric.route(a.dev, bar.start);
        if (r.kind !== 'p2p' || r.target !== b.dev) continue;
        breaches.push({ kind: 'p2p', reason: `${who(a)} reaches BAR ${bar.index} of ${who(b)} peer-to-peer (${r.mechanism}), untranslated: ${r.why}` });
        break;
      }
    }
  }

  // (iii) PASID entries of PASID-backed mdevs.
  for (const { mdev, owner } of own.pasidMdevs) {
    if (mdev.pasid === null) continue;
    const driver = core.driverOf(mdev.parent.dev);
    if (driver === undefined) continue;
    for (const rid of core.ridsOf(mdev.parent.dev)) {
      const d = driver.domainAt(rid, mdev.pasid);
      const o = d === null ? undefined : own.domainOwner.get(d);
      if (o === undefined) continue;
      if (owner === null || !sameOwner(o, owner)) {
        breaches.push({
          kind: 'pasid-entry',
          reason: `mdev ${mdev.uuid} (${owner === null ? 'no user' : ownerName(owner)}): PASID ${mdev.pasid} of ${mdev.parent.dev.shortBdf} points at a domain of ${ownerName(o)}`,
        });
        break;
      }
    }
  }
  return { assignments: as, breaches };
}
