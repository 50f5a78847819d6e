import { GCProfiler } from 'node:v8';
import { describe, expect, it } from 'vitest';
import { newTranslationResult, type TranslationRequest, type TranslationResult } from '../../src/hw/iommu/types.ts';
import type { IommuUnit } from '../../src/hw/iommu/unit.ts';
import { GiB, iommuBench, rid } from './iommu-fixture.ts';

function loop(unit: IommuUnit, req: TranslationRequest, out: TranslationResult, n: number): number {
  let ok = 0;
  for (let i = 0; i < n; i++) {
    req.iova = 0x4000_0000 + (i & 15) * 4096 + ((i << 3) & 0xff8);
    if (unit.translate(req, out)) ok++;
  }
  return ok;
}

describe('IOTLB-hit path', () => {
  it('allocates nothing: millions of hits cause no garbage collection', () => {
    const b = iommuBench();
    const dev = rid(1, 0, 0);
    b.context(dev);
    const pt = b.table('second');
    pt.map(GiB, 5 * GiB, 16 * 4096, { read: true, write: true }); // PAs above 2^31: doubles, not small integers
    b.pasid(dev, 0, { pgtt: 'second', did: 1, ssRoot: pt.root });
    const req = b.req(dev, GiB);
    const out = newTranslationResult();
    loop(b.unit, req, out, 2_000_000); // warm up: JIT, caches
    const walks = b.unit.stats.walks;
    const n = 5_000_000;
    const profiler = new GCProfiler();
    profiler.start();
    const ok = loop(b.unit, req, out, n);
    const gcs = profiler.stop()?.statistics.length ?? 0;
    expect(ok).toBe(n);
    expect(b.unit.stats.walks).toBe(walks);
    // 16 bytes a translation would be 80 MB: several scavenges. Allow one from elsewhere in the process.
    expect(gcs).toBeLessThanOrEqual(1);
  });
});
