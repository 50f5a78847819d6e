import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { checkIsolation } from '../../../src/kernel/isolation/check.ts';
import { IommuBackedParentDriver, type MdevGroupPolicy } from '../../../src/kernel/mdev/iommu-backed-parent.ts';
import type { MdevDevice } from '../../../src/kernel/mdev/types.ts';
import { attach, boot, closeDev, dev, errno, openAndBind, user, UUID1, UUID2, value, type User } from '../mdev/helpers.ts';

// Seed 001 as a property: two processes and the two vfio-mdev-pci mdevs of 16:00.0/16:00.1 (one IOMMU
// group, P2P between them) go through random bind / attach / detach / close sequences. The oracle is a
// model of who holds which mdev:
//  * inherit-parent-group: a bind while the sibling is held by the other process is EPERM; the checker
//    never reports anything.
//  * attach-time-ebusy: binds succeed; an attach while the sibling is attached by the other process is
//    EBUSY. The checker reports a breach exactly while the two mdevs are held by different processes:
//    on the cdev path the bind (device access) comes before the attach, so this fix leaves a window.
//  * separate-virtual-group (2019): everything succeeds; a breach exactly while held by two processes.

type Op = { k: 'bind' | 'attach' | 'detach' | 'close'; m: number; p: number };
const opArb: fc.Arbitrary<Op> = fc.record({
  k: fc.constantFrom('bind' as const, 'attach' as const, 'detach' as const, 'close' as const),
  m: fc.integer({ min: 0, max: 1 }),
  p: fc.integer({ min: 0, max: 1 }),
});

function run(policy: MdevGroupPolicy, ops: readonly Op[]): void {
  const k = boot();
  const drv = new IommuBackedParentDriver({ core: k.core, vfio: k.vfio, mdev: k.mdev }, policy);
  k.drivers.registerDriver(drv.pciDriver);
  const ms: MdevDevice[] = ['16:00.0', '16:00.1'].map((bdf, i) => {
    const d = dev(k, bdf);
    value(k.drivers.unbind(d));
    value(k.drivers.setDriverOverride(d, 'vfio-mdev-pci'));
    value(k.drivers.bind(d, 'vfio-mdev-pci'));
    return value(k.mdev.create(d, 'vfio-mdev-pci-1', i === 0 ? UUID1 : UUID2));
  });
  const users: User[] = [user(k, 1000), user(k, 1001)];
  const holder: (number | null)[] = [null, null];
  const attached = [false, false];
  for (const op of ops) {
    const m = ms[op.m] as MdevDevice;
    const other = 1 - op.m;
    const mine = holder[op.m] ?? null;
    switch (op.k) {
      case 'bind': {
        if (mine !== null) break;
        const foreign = holder[other] !== null && holder[other] !== op.p;
        const r = openAndBind(m.vdev, (users[op.p] as User).ctx);
        expect(errno(r)).toBe(policy === 'inherit-parent-group' && foreign ? 'EPERM' : 'ok');
        if (r.ok) holder[op.m] = op.p;
        break;
      }
      case 'attach': {
        if (mine === null) break;
        const foreign = attached[other] === true && holder[other] !== mine;
        const r = attach(m.vdev, (users[mine] as User).ioasId);
        expect(errno(r)).toBe(policy === 'attach-time-ebusy' && foreign ? 'EBUSY' : 'ok');
        if (r.ok) attached[op.m] = true;
        break;
      }
      case 'detach':
        if (mine === null) break;
        m.vdev?.ops.detachIoas?.(m.vdev);
        attached[op.m] = false;
        break;
      case 'close':
        if (mine === null) break;
        closeDev(m.vdev);
        holder[op.m] = null;
        attached[op.m] = false;
        break;
    }
    const split = holder[0] !== null && holder[1] !== null && holder[0] !== holder[1];
    const breaches = checkIsolation(k).breaches;
    expect(breaches.length > 0, `${policy} after ${JSON.stringify(op)}: ${breaches.map((b) => b.reason).join(' / ')}`).toBe(split);
  }
}

describe('seed 001 as a property over the three group policies', () => {
  for (const policy of ['inherit-parent-group', 'attach-time-ebusy', 'separate-virtual-group'] as const) {
    it(policy, () => {
      fc.assert(fc.property(fc.array(opArb, { minLength: 1, maxLength: 16 }), (ops) => { run(policy, ops); }), { numRuns: 12 });
    });
  }
});
