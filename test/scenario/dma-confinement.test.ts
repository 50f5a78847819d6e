import { describe, expect, it } from 'vitest';
import { Kernel } from '../../src/kernel/kernel.ts';
import { loadBuiltinHost } from '../../src/pci/builtin-hosts.ts';
import { dmaConfinementBreaches } from '../../src/scenario/dma-confinement.ts';

describe('DMA confinement invariant', () => {
  it('a user-owned device whose domain maps a frame nobody pinned is reported; a pinned one is not', () => {
    const k = Kernel.boot(loadBuiltinHost('default'));
    const nvme = k.device('39:00.0');
    if (nvme === undefined) throw new Error('no 39:00.0');
    const g = k.core.groupOf(nvme);
    if (g === undefined) throw new Error('no group');
    expect(k.drivers.unbind(nvme).ok).toBe(true);
    const owner = {};
    expect(k.core.groupClaimDmaOwner(g, owner).ok).toBe(true);
    const domain = k.core.allocPagingDomain(nvme);
    if (!domain.ok) throw new Error(domain.reason);
    expect(k.core.attachGroup(domain.value, g).ok).toBe(true);
    const unpinned = k.frames.alloc();
    expect(domain.value.map(0x10000, unpinned * 4096, 4096, { read: true, write: true }).ok).toBe(true);
    const r = k.machine.dma(nvme, { op: 'write', address: 0x10000, length: 8, data: new Uint8Array(8) });
    expect(r.status).toBe('ok');
    expect(dmaConfinementBreaches(k, nvme, r)).toEqual([`DMA by 39:00.0 at IOVA 0x10000 reached frame 0x${unpinned.toString(16)}, which no pin holds: outside what user space mapped`]);
    k.frames.pin(unpinned);
    expect(dmaConfinementBreaches(k, nvme, r)).toEqual([]);
  });
});
