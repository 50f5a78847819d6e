import { describe, expect, it } from 'vitest';
import { NO_PASID, PageResponseCode } from '../../../src/hw/iommu/types.ts';
import type { IopfGroup } from '../../../src/kernel/iommu/io-pgfault.ts';
import type { IoasisIommuDriver } from '../../../src/kernel/iommu/ioasis-iommu-driver.ts';
import { bench, enablePriPasid, errno, expectHwMatches, PAGE, pattern, value, type BenchOptions } from './helpers.ts';

// PASID attach rules (iommu_attach_device_pasid and friends, seed 000) and IO page faults end to end with
// the default host's DSA (6a:01.0: ATS, PRI, 20-bit PASID), including the two options of seed 004.

const DSA = '6a:01.0';
const NVME = '39:00.0';
const PASID = 5;
const BUF = 0x20_0000;

describe('PASID attach', () => {
  it('max_pasids is min(IOMMU, PCI PASID capability); a device without the capability has 0', () => {
    const b = bench();
    expect(b.core.maxPasids(b.dev(DSA))).toBe(2 ** 20);
    expect(b.core.maxPasids(b.dev(NVME))).toBe(0);
  });

  it('EINVAL for PASID 0, for PASIDs at or above max_pasids, and for a device without PASIDs', () => {
    const b = bench();
    const d = b.unmanaged(DSA);
    expect(errno(b.core.attachDevicePasid(d, b.dev(DSA), 0))).toBe('EINVAL');
    expect(errno(b.core.attachDevicePasid(d, b.dev(DSA), 2 ** 20))).toBe('EINVAL');
    expect(errno(b.core.attachDevicePasid(b.unmanaged(NVME), b.dev(NVME), 1))).toBe('EINVAL');
  });

  it('seed 000: the same RID+PASID twice is EBUSY; replace is the way to change it', () => {
    const b = bench();
    const dev = b.dev(DSA);
    value(b.core.deviceClaimDmaOwner(dev, 'ictx'));
    const d1 = b.unmanaged(DSA);
    const d2 = b.unmanaged(DSA);
    value(b.core.attachDevicePasid(d1, dev, PASID));
    expect(errno(b.core.attachDevicePasid(d1, dev, PASID))).toBe('EBUSY');
    expect(errno(b.core.attachDevicePasid(d2, dev, PASID))).toBe('EBUSY');
    value(b.core.replaceDevicePasid(d2, dev, PASID));
    expect(b.core.domainAtPasid(dev, PASID)).toBe(d2);
    expect(errno(b.core.replaceDevicePasid(d2, dev, PASID + 1))).toBe('EINVAL');
    b.core.removeDevicePasid(dev, PASID + 1); // not attached: silent
    b.core.removeDevicePasid(dev, PASID);
    expect(b.core.domainAtPasid(dev, PASID)).toBeNull();
    value(b.core.attachDevicePasid(d1, dev, PASID));
  });

  it('a PASID attached by a kernel user keeps user space from taking the group: EBUSY', () => {
    const b = bench();
    const dev = b.dev(DSA);
    const g = b.group(DSA);
    value(b.core.attachDevicePasid(b.unmanaged(DSA), dev, PASID));
    expect(errno(b.core.deviceClaimDmaOwner(dev, 'ictx'))).toBe('EBUSY');
    expect(g.ownerCnt).toBe(0);
    b.core.removeDevicePasid(dev, PASID);
    value(b.core.deviceClaimDmaOwner(dev, 'ictx'));
  });

  it('DMA with a PASID goes through the PASID domain while the RID is blocked; removal faults it', () => {
    const b = bench();
    const dev = b.dev(DSA);
    enablePriPasid(dev);
    const g = b.group(DSA);
    value(b.core.deviceClaimDmaOwner(dev, 'ictx'));
    const d = b.unmanaged(DSA);
    value(d.map(0x1_0000, BUF, PAGE, { read: true, write: true }));
    value(b.core.attachDevicePasid(d, dev, PASID));
    expectHwMatches(b.core, g); // RID blocked with a PASID attached: translate, RID_PASID entry absent
    const w = b.machine.dma(dev, { op: 'write', address: 0x1_0000, length: 32, data: pattern(32), pasid: PASID });
    expect(w.status).toBe('ok');
    const got = new Uint8Array(32);
    b.machine.memory.read(BUF, got);
    expect(got).toEqual(pattern(32));
    expect(b.machine.dma(dev, { op: 'read', address: 0x1_0000, length: 8 }).status).toBe('fault');
    b.core.removeDevicePasid(dev, PASID);
    expect(b.machine.dma(dev, { op: 'read', address: 0x1_0000, length: 8, pasid: PASID }).status).not.toBe('ok');
    expectHwMatches(b.core, g);
  });
});

/** The DSA, owned, with an UNMANAGED domain at PASID 5 whose fault handler records groups. */
function iopfBench(o: BenchOptions = {}) {
  const b = bench(o);
  const dev = b.dev(DSA);
  enablePriPasid(dev);
  value(b.core.deviceClaimDmaOwner(dev, 'ictx'));
  const d = b.unmanaged(DSA);
  const groups: IopfGroup[] = [];
  d.iopfHandler = (g) => { groups.push(g); };
  value(b.core.attachDevicePasid(d, dev, PASID));
  const engine = b.machine.engine(dev);
  return { ...b, device: dev, domain: d, groups, engine };
}

describe('IO page faults', () => {
  it('device fault → PRQ → group to the handler → map + SUCCESS → the device retries and completes', () => {
    const b = iopfBench();
    const r = b.machine.dma(b.device, { op: 'write', address: 0x40_0000, length: 2 * PAGE, data: pattern(2 * PAGE), pasid: PASID });
    expect(r.status).toBe('pending');
    expect(b.core.iopf.enabled(b.device)).toBe(true);
    b.core.poll();
    expect(b.groups).toHaveLength(1);
    const grp = b.groups[0] as IopfGroup;
    expect(grp.pasid).toBe(PASID);
    expect(grp.faults.map((f) => f.address)).toEqual([0x40_0000, 0x40_1000]);
    expect(grp.faults.map((f) => f.lastInGroup)).toEqual([false, true]);
    expect(b.core.iopf.pending(b.device)).toHaveLength(1);
    value(b.domain.map(0x40_0000, BUF, 2 * PAGE, { read: true, write: true }));
    value(b.core.respondGroup(grp, 'success'));
    expect(r.status).toBe('ok');
    expect(r.retries).toBe(1);
    const got = new Uint8Array(2 * PAGE);
    b.machine.memory.read(BUF, got);
    expect(got).toEqual(pattern(2 * PAGE));
    expect(b.core.iopf.pending(b.device)).toHaveLength(0);
  });

  it('a request without a PASID goes to the RID domain; the response carries no PASID', () => {
    const b = bench();
    const dev = b.dev(DSA);
    enablePriPasid(dev);
    const g = b.group(DSA);
    value(b.core.groupClaimDmaOwner(g, 'container'));
    const d = b.unmanaged(DSA);
    const seen: IopfGroup[] = [];
    d.iopfHandler = (grp) => {
      seen.push(grp);
      value(d.map(0x30_0000, BUF, PAGE, { read: true, write: true }));
      value(b.core.respondGroup(grp, 'success')); // answered from inside the handler
    };
    value(b.core.attachGroup(d, g));
    expect(b.core.iopf.enabled(dev)).toBe(true);
    const r = b.machine.dma(dev, { op: 'write', address: 0x30_0000, length: 64, data: pattern(64) });
    expect(r.status).toBe('pending');
    b.core.poll();
    expect(seen.map((x) => x.pasid)).toEqual([NO_PASID]);
    expect(r.status).toBe('ok');
    expect(b.core.iopf.partials(dev)).toHaveLength(0);
    b.core.detachGroup(g);
    expect(b.core.iopf.enabled(dev)).toBe(false);
    expect((g.driver as IoasisIommuDriver).readRid(dev.rid).pri).toBe(false);
  });

  it('a spurious or stale response is EINVAL and reaches no device', () => {
    const b = iopfBench();
    const r = b.machine.dma(b.device, { op: 'read', address: 0x50_0000, length: 8, pasid: PASID });
    b.core.poll();
    const grp = b.groups[0] as IopfGroup;
    expect(errno(b.core.pageResponse(b.device, PASID, (grp.prgi + 1) % 512, 'success'))).toBe('EINVAL');
    expect(errno(b.core.pageResponse(b.device, PASID + 1, grp.prgi, 'success'))).toBe('EINVAL');
    expect(errno(b.core.pageResponse(b.device, NO_PASID, grp.prgi, 'success'))).toBe('EINVAL');
    expect(b.engine.stats.spuriousResponses).toBe(0);
    expect(r.status).toBe('pending');
    value(b.core.respondGroup(grp, 'invalid'));
    expect(r.status).toBe('aborted');
    expect(errno(b.core.respondGroup(grp, 'success'))).toBe('EINVAL');
    expect(b.engine.stats.spuriousResponses).toBe(0);
  });

  it('detach with pending faults answers them INVALID; the device aborts', () => {
    const b = iopfBench();
    const r = b.machine.dma(b.device, { op: 'read', address: 0x60_0000, length: 8, pasid: PASID });
    b.core.poll();
    expect(b.core.iopf.pending(b.device)).toHaveLength(1);
    b.core.removeDevicePasid(b.device, PASID);
    expect(r.status).toBe('aborted');
    expect(r.fault?.response).toBe(PageResponseCode.Invalid);
    expect(b.core.iopf.enabled(b.device)).toBe(false);
    expect(b.core.iopf.stats.autoResponses).toBe(1);
  });

  it('replace with pending faults answers the old attach INVALID', () => {
    const b = iopfBench();
    const r = b.machine.dma(b.device, { op: 'read', address: 0x60_0000, length: 8, pasid: PASID });
    b.core.poll();
    const d2 = b.unmanaged(DSA);
    d2.iopfHandler = () => undefined;
    value(b.core.replaceDevicePasid(d2, b.device, PASID));
    expect(r.status).toBe('aborted');
    expect(b.core.iopf.enabled(b.device)).toBe(true);
  });

  it('a page request at a PASID with no fault handler is discarded and answered INVALID', () => {
    const b = iopfBench();
    const plain = b.unmanaged(DSA);
    value(b.core.attachDevicePasid(plain, b.device, PASID + 1));
    const r = b.machine.dma(b.device, { op: 'read', address: 0x70_0000, length: 8, pasid: PASID + 1 });
    expect(r.status).toBe('pending');
    b.core.poll();
    expect(r.status).toBe('aborted');
    expect(b.groups).toHaveLength(0);
    expect(b.core.iopf.stats.discarded).toBe(1);
  });

  it('private data is echoed from the request by default', () => {
    const b = iopfBench();
    const r = b.machine.dma(b.device, { op: 'read', address: 0x80_0000, length: 8, pasid: PASID, privateData: [0xabc, 7] });
    b.core.poll();
    const grp = b.groups[0] as IopfGroup;
    expect(grp.privateData).toEqual([0xabc, 7]);
    value(b.domain.map(0x80_0000, BUF, PAGE, { read: true, write: false }));
    value(b.core.pageResponse(b.device, PASID, grp.prgi, 'success'));
    expect(r.status).toBe('ok');
  });
});

describe('seed 004 options', () => {
  it('privateDataCookie: the group carries a sequence number; a wrong one is EINVAL; the right one sends the real private data', () => {
    const b = iopfBench({ iopf: { privateDataCookie: true } });
    const r = b.machine.dma(b.device, { op: 'read', address: 0x80_0000, length: 8, pasid: PASID, privateData: [0xabc, 7] });
    b.core.poll();
    const grp = b.groups[0] as IopfGroup;
    expect(grp.privateData).toEqual([grp.seq, 0]);
    expect(grp.privateData).not.toEqual([0xabc, 7]);
    value(b.domain.map(0x80_0000, BUF, PAGE, { read: true, write: false }));
    expect(errno(b.core.pageResponse(b.device, PASID, grp.prgi, 'success', [grp.seq + 1, 0]))).toBe('EINVAL');
    expect(errno(b.core.pageResponse(b.device, PASID, grp.prgi, 'success'))).toBe('EINVAL');
    expect(r.status).toBe('pending');
    value(b.core.pageResponse(b.device, PASID, grp.prgi, 'success', [grp.seq, 0]));
    expect(r.status).toBe('ok');
    expect(b.engine.stats.spuriousResponses).toBe(0);
  });

  it("unregisterWithPendingFaults 'ebusy': removing the handler with pending faults is EBUSY (2019)", () => {
    const b = iopfBench({ iopf: { unregisterWithPendingFaults: 'ebusy' } });
    const r = b.machine.dma(b.device, { op: 'read', address: 0x90_0000, length: 8, pasid: PASID });
    b.core.poll();
    expect(errno(b.core.disableIopf(b.device))).toBe('EBUSY');
    expect(r.status).toBe('pending');
    value(b.core.respondGroup(b.groups[0] as IopfGroup, 'invalid'));
    value(b.core.disableIopf(b.device));
  });

  it('default: removing the handler with pending faults answers them INVALID', () => {
    const b = iopfBench();
    const r = b.machine.dma(b.device, { op: 'read', address: 0x90_0000, length: 8, pasid: PASID });
    b.core.poll();
    value(b.core.disableIopf(b.device));
    expect(r.status).toBe('aborted');
    expect(b.core.iopf.enabled(b.device)).toBe(false);
  });
});
