// The selftest's constants exist twice, as Linux has them in iommufd_test.h for both sides: the kernel's
// copy (the mock driver cannot import the uapi layer) and the uapi copy a C-like caller uses. They must agree.
import { describe, expect, it } from 'vitest';
import * as K from '../../src/kernel/iommufd/selftest/constants.ts';
import * as U from '../../src/uapi/iommufd-test-structs.ts';

describe('selftest constants', () => {
  it('every number both copies name is the same', () => {
    const kernel = K as Record<string, unknown>;
    const uapi = U as Record<string, unknown>;
    const shared = Object.keys(kernel).filter((k) => typeof kernel[k] === 'number' && typeof uapi[k] === 'number');
    expect(shared.length).toBeGreaterThan(15);
    for (const k of shared) expect([k, uapi[k]]).toEqual([k, kernel[k]]);
  });
});
