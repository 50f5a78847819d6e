import { describe, expect, it } from 'vitest';
import { GlobalPasidAllocator } from '../../../src/kernel/iommu/global-pasid.ts';

describe('system-wide PASID space', () => {
  it('allocates the lowest free PASID from 1, frees per owner, and checks user attaches only under global', () => {
    const a = {};
    const b = {};
    const linux = new GlobalPasidAllocator();
    expect(linux.alloc(a)).toMatchObject({ ok: true, value: 1 });
    expect(linux.checkUserPasid(7, b).ok).toBe(true);
    const g = new GlobalPasidAllocator('global');
    expect(g.reserve(1, b).ok).toBe(true);
    expect(g.alloc(a)).toMatchObject({ ok: true, value: 2 });
    expect(g.checkUserPasid(2, a).ok).toBe(true);
    expect(g.checkUserPasid(1, a)).toMatchObject({ ok: false, errno: 'EPERM' });
    expect(g.checkUserPasid(9, a)).toMatchObject({ ok: false, errno: 'EPERM' });
    expect(g.reserve(2, b)).toMatchObject({ ok: false, errno: 'EBUSY' });
    g.freeAll(a);
    expect(g.alloc(b)).toMatchObject({ ok: true, value: 2 });
  });
});
