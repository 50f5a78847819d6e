import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { PciDev } from '../../../src/pci/dev.ts';
import type { IommuGroup } from '../../../src/kernel/iommu/group.ts';
import { bench, expectHwMatches } from './helpers.ts';

// Random claim/release/attach/detach/replace/host-driver/PASID sequences over the default host's groups:
// no group ever has two owners (a claim by a second owner never succeeds while the first holds it), and
// every device's hardware context always matches its group's current domain.

const OWNERS = ['ictx-A', 'ictx-B', 'container'] as const;

type Op =
  | { kind: 'claimDev' | 'claimGroup'; at: number; owner: number }
  | { kind: 'release' | 'use' | 'unuse' | 'attach' | 'replace' | 'detach' | 'pasid' | 'unpasid'; at: number };

const opArb: fc.Arbitrary<Op> = fc.oneof(
  fc.record({ kind: fc.constantFrom('claimDev' as const, 'claimGroup' as const), at: fc.nat(200), owner: fc.nat(OWNERS.length - 1) }),
  fc.record({ kind: fc.constantFrom('release' as const, 'use' as const, 'unuse' as const, 'attach' as const, 'replace' as const, 'detach' as const, 'pasid' as const, 'unpasid' as const), at: fc.nat(200) }),
);

describe('ownership and domains (property)', () => {
  it('never two owners; hardware contexts always match the group domain', () => {
    const b = bench();
    const groups = b.core.groups;
    const devices = groups.flatMap((g) => g.devices);
    // Only the groups' state changes between runs; every run starts from a fresh core.
    fc.assert(fc.property(fc.array(opArb, { minLength: 1, maxLength: 40 }), (ops) => {
      const c = bench();
      const claims = new Map<IommuGroup, { owner: string; devs: PciDev[]; group: boolean }>();
      const hostUsers = new Map<PciDev, number>();
      for (const op of ops) {
        const dev = c.dev((devices[op.at % devices.length] as PciDev).shortBdf);
        const g = c.core.groupOf(dev) as IommuGroup;
        const cur = claims.get(g);
        switch (op.kind) {
          case 'claimDev':
          case 'claimGroup': {
            const owner = OWNERS[op.owner] as string;
            const r = op.kind === 'claimDev' ? c.core.deviceClaimDmaOwner(dev, owner) : c.core.groupClaimDmaOwner(g, owner);
            if (r.ok) {
              // A second owner never gets in.
              expect(cur === undefined || cur.owner === owner).toBe(true);
              if (cur === undefined) claims.set(g, { owner, devs: op.kind === 'claimDev' ? [dev] : [], group: op.kind === 'claimGroup' });
              else cur.devs.push(dev);
            } else if (cur !== undefined && cur.owner !== owner) {
              expect(r.errno).toBe('EPERM');
            }
            break;
          }
          case 'release':
            if (cur === undefined) break;
            if (cur.devs.length > 0) c.core.deviceReleaseDmaOwner(cur.devs.pop() as PciDev);
            else c.core.groupReleaseDmaOwner(g);
            if (g.ownerCnt === 0) claims.delete(g);
            break;
          case 'use': {
            const r = c.core.deviceUseDefaultDomain(dev);
            if (cur !== undefined) expect(r.ok).toBe(false);
            if (r.ok) hostUsers.set(dev, (hostUsers.get(dev) ?? 0) + 1);
            break;
          }
          case 'unuse':
            if ((hostUsers.get(dev) ?? 0) > 0 && cur === undefined) {
              c.core.deviceUnuseDefaultDomain(dev);
              hostUsers.set(dev, (hostUsers.get(dev) ?? 0) - 1);
            }
            break;
          case 'attach':
          case 'replace': {
            if (cur === undefined) break;
            const d = c.core.allocPagingDomain(dev, 'unmanaged');
            if (!d.ok) break;
            if (op.kind === 'attach') c.core.attachGroup(d.value, g);
            else c.core.replaceGroupHandle(g, d.value);
            break;
          }
          case 'detach':
            if (cur !== undefined) c.core.detachGroup(g);
            break;
          case 'pasid': {
            if (cur === undefined || c.core.maxPasids(dev) === 0) break;
            const d = c.core.allocPagingDomain(dev, 'unmanaged');
            if (d.ok) c.core.attachDevicePasid(d.value, dev, 1 + (op.at % 3));
            break;
          }
          case 'unpasid':
            c.core.removeDevicePasid(dev, 1 + (op.at % 3));
            break;
        }
        for (const grp of c.core.groups) {
          expect(grp.ownerCnt).toBeGreaterThanOrEqual(0);
          if (grp.owner !== null) expect(grp.ownerCnt).toBeGreaterThan(0);
          expect(grp.owner).toBe(claims.get(grp)?.owner ?? null);
          expectHwMatches(c.core, grp);
        }
      }
    }), { numRuns: 15 });
    expect(groups.length).toBeGreaterThan(30);
  });
});
