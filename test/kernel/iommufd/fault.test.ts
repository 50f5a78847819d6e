// The FAULT object and its fd end to end (uAPI reference §6.14, §12): the default host's DSA (6a:01.0:
// ATS, PRI, PASID) faults on an UNMANAGED domain whose iopf_handler is the fault object's; the group is
// read from the fault fd as struct iommu_hwpt_pgfault records and answered with struct
// iommu_hwpt_page_response; the device retries or aborts accordingly.

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { NO_PASID } from '../../../src/hw/iommu/types.ts';
import { FrameAllocator } from '../../../src/kernel/mm/frame-allocator.ts';
import { MAP_ANONYMOUS, MAP_PRIVATE, PROT_READ, PROT_WRITE } from '../../../src/kernel/mm/mman.ts';
import { ProcessTable } from '../../../src/kernel/process/process-table.ts';
import type { Process } from '../../../src/kernel/process/process.ts';
import { IommufdCtx } from '../../../src/kernel/iommufd/context.ts';
import { EPOLLIN, EPOLLOUT, EPOLLRDNORM, iommufdFaultAlloc, type FaultFile } from '../../../src/kernel/iommufd/fault-fd.ts';
import * as K from '../../../src/kernel/iommufd/fault.ts';
import type { IommufdFault } from '../../../src/kernel/iommufd/fault.ts';
import * as C from '../../../src/uapi/iommufd-consts.ts';
import { iommu_hwpt_page_response, iommu_hwpt_pgfault } from '../../../src/uapi/iommufd-structs.ts';
import { bench, enablePriPasid, errno, PAGE, pattern, value, type BenchOptions } from '../iommu/helpers.ts';

const DSA = '6a:01.0';
const PASID = 5;
const DEV_ID = 7;
const BUF = 0x20_0000;
const REC = 40;

function setup(o: BenchOptions & { pasid?: number } = {}) {
  const b = bench(o);
  const dev = b.dev(DSA);
  enablePriPasid(dev);
  value(b.core.deviceClaimDmaOwner(dev, 'ictx'));
  // Processes get their own frames, well away from the DMA buffer and the IOMMU's tables (upper half).
  const frames = new FrameAllocator(b.machine.memory, { firstPfn: 0x8_0000, count: 4096 });
  const proc = new ProcessTable({ frames }).spawn({});
  const ctx = new IommufdCtx(b.core, proc);
  const ctxFd = value(proc.fds.install(ctx));
  const out = value(iommufdFaultAlloc(ctx, proc, { size: 16, flags: 0, out_fault_id: 0, out_fault_fd: 0 }, {
    devIdOf: (d) => (d === dev ? DEV_ID : 0),
  }));
  const fault = value(ctx.objects.get<IommufdFault>(out.out_fault_id, 'fault'));
  const file = value(proc.fds.get(out.out_fault_fd)).file as FaultFile;
  // What the HWPT code will do for IOMMU_HWPT_ALLOC with FAULT_ID_VALID and an attach of it.
  const domain = b.unmanaged(DSA);
  domain.iopfHandler = fault.iopfHandler;
  fault.hwptGet();
  const pasid = o.pasid ?? PASID;
  if (pasid === NO_PASID) value(b.core.attachGroup(domain, b.group(DSA)));
  else value(b.core.attachDevicePasid(domain, dev, pasid));
  const handle = fault.attachHwpt(dev, pasid, domain);
  const ubuf = value(proc.mmap(0, 4 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  const engine = b.machine.engine(dev);
  /** The device DMAs `pages` pages at `iova` and the IOMMU core drains the page-request queue. */
  const dma = (iova: number, pages = 1, op: 'read' | 'write' = 'read', extra: { priv?: boolean } = {}) => {
    const r = b.machine.dma(dev, {
      op, address: iova, length: pages * PAGE, ...(op === 'write' ? { data: pattern(pages * PAGE) } : {}),
      ...(pasid === NO_PASID ? {} : { pasid }), ...extra,
    });
    b.core.poll();
    return r;
  };
  const readRecords = (count: number, at = ubuf) => {
    const n = value(file.read(proc, at, count, 0));
    return { n, recs: decodeRecords(proc, at, n) };
  };
  const respond = (pairs: ReadonlyArray<readonly [number, number]>, at = ubuf + 2 * PAGE) => {
    const bytes = new Uint8Array(pairs.length * 8);
    pairs.forEach(([cookie, code], i) => iommu_hwpt_page_response.encode({ cookie, code }, bytes.subarray(i * 8)));
    value(proc.mm.write(at, bytes));
    return file.write(proc, at, bytes.length, 0);
  };
  return { ...b, dev, proc, ctx, ctxFd, out, fault, file, domain, handle, ubuf, engine, dma, readRecords, respond, pasid };
}

function decodeRecords(proc: Process, at: number, n: number) {
  const bytes = new Uint8Array(n);
  value(proc.mm.read(at, bytes));
  return Array.from({ length: n / REC }, (_, i) => iommu_hwpt_pgfault.decode(bytes.subarray(i * REC)));
}

describe('record layout', () => {
  it('the kernel-side constants agree with the uapi ones', () => {
    expect(K.PGFAULT_RECORD_SIZE).toBe(iommu_hwpt_pgfault.sizeof);
    expect(K.PAGE_RESPONSE_SIZE).toBe(iommu_hwpt_page_response.sizeof);
    expect([K.IOMMU_PGFAULT_FLAGS_PASID_VALID, K.IOMMU_PGFAULT_FLAGS_LAST_PAGE]).toEqual([C.IOMMU_PGFAULT_FLAGS_PASID_VALID, C.IOMMU_PGFAULT_FLAGS_LAST_PAGE]);
    expect([K.IOMMU_PGFAULT_PERM_READ, K.IOMMU_PGFAULT_PERM_WRITE, K.IOMMU_PGFAULT_PERM_EXEC, K.IOMMU_PGFAULT_PERM_PRIV])
      .toEqual([C.IOMMU_PGFAULT_PERM_READ, C.IOMMU_PGFAULT_PERM_WRITE, C.IOMMU_PGFAULT_PERM_EXEC, C.IOMMU_PGFAULT_PERM_PRIV]);
    expect([K.IOMMUFD_PAGE_RESP_SUCCESS, K.IOMMUFD_PAGE_RESP_INVALID]).toEqual([C.IOMMUFD_PAGE_RESP_SUCCESS, C.IOMMUFD_PAGE_RESP_INVALID]);
  });
});

describe('IOMMU_FAULT_QUEUE_ALLOC', () => {
  it('creates the object and an fd holding it; flags ≠ 0 → EOPNOTSUPP', () => {
    const s = setup();
    expect(s.out.out_fault_id).toBe(1);
    expect(s.out.out_fault_fd).toBe(s.ctxFd + 1);
    expect(s.file.kind).toBe('iommufd-pgfault');
    // The table's reference, the fd's, the HWPT's and the attach's.
    expect(s.fault.users).toBe(4);
    const before = s.ctx.objects.size;
    expect(errno(iommufdFaultAlloc(s.ctx, s.proc, { size: 16, flags: 1, out_fault_id: 0, out_fault_fd: 0 }))).toBe('EOPNOTSUPP');
    expect(s.ctx.objects.size).toBe(before);
  });

  it('EMFILE past RLIMIT_NOFILE: the object is aborted and its ID freed', () => {
    const s = setup();
    value(s.proc.setrlimit('RLIMIT_NOFILE', { soft: s.proc.fds.count, hard: 1024 }));
    const before = s.ctx.objects.size;
    const ctxFile = value(s.proc.fds.get(s.ctxFd));
    const refs = ctxFile.refCount;
    expect(errno(iommufdFaultAlloc(s.ctx, s.proc, { size: 16, flags: 0, out_fault_id: 0, out_fault_fd: 0 }))).toBe('EMFILE');
    expect(s.ctx.objects.size).toBe(before);
    expect(ctxFile.refCount).toBe(refs);
  });
});

describe('fault fd: a page request group end to end', () => {
  it('DMA fault → group → read records → map + SUCCESS → the device retries and completes', () => {
    const s = setup();
    const r = s.dma(0x40_0000, 2, 'write');
    expect(r.status).toBe('pending');
    expect(s.fault.queued).toBe(1);
    expect(s.file.poll()).toBe(EPOLLOUT | EPOLLIN | EPOLLRDNORM);
    const { n, recs } = s.readRecords(4 * REC);
    expect(n).toBe(2 * REC);
    const grpid = recs[0]!.grpid;
    expect(recs).toEqual([
      { flags: C.IOMMU_PGFAULT_FLAGS_PASID_VALID, dev_id: DEV_ID, pasid: PASID, grpid, perm: C.IOMMU_PGFAULT_PERM_WRITE, __reserved: 0, addr: 0x40_0000n, length: 0, cookie: 1 },
      { flags: C.IOMMU_PGFAULT_FLAGS_PASID_VALID | C.IOMMU_PGFAULT_FLAGS_LAST_PAGE, dev_id: DEV_ID, pasid: PASID, grpid, perm: C.IOMMU_PGFAULT_PERM_WRITE, __reserved: 0, addr: 0x40_1000n, length: 0, cookie: 1 },
    ]);
    expect(s.core.iopf.pending(s.dev)[0]?.prgi).toBe(grpid);
    expect(s.file.poll()).toBe(EPOLLOUT);
    expect(s.fault.cookies()).toEqual([1]);
    value(s.domain.map(0x40_0000, BUF, 2 * PAGE, { read: true, write: true }));
    expect(value(s.respond([[1, C.IOMMUFD_PAGE_RESP_SUCCESS]]))).toBe(8);
    expect(r.status).toBe('ok');
    expect(r.retries).toBe(1);
    const got = new Uint8Array(2 * PAGE);
    s.machine.memory.read(BUF, got);
    expect(got).toEqual(pattern(2 * PAGE));
    expect(s.core.iopf.pending(s.dev)).toHaveLength(0);
    expect(s.fault.awaitingResponse).toBe(0);
    expect(s.engine.stats.spuriousResponses).toBe(0);
  });

  it('records byte by byte: READ|PRIV with a PASID; no PASID on the RID: PASID_VALID clear, pasid 0', () => {
    const s = setup();
    s.dma(0x50_0000, 1, 'read', { priv: true });
    const { recs } = s.readRecords(REC);
    expect(recs[0]).toMatchObject({
      flags: C.IOMMU_PGFAULT_FLAGS_PASID_VALID | C.IOMMU_PGFAULT_FLAGS_LAST_PAGE, pasid: PASID,
      perm: C.IOMMU_PGFAULT_PERM_READ | C.IOMMU_PGFAULT_PERM_PRIV, addr: 0x50_0000n, cookie: 1, length: 0, __reserved: 0,
    });
    const raw = new Uint8Array(REC);
    value(s.proc.mm.read(s.ubuf, raw));
    expect(iommu_hwpt_pgfault.encode(recs[0]!)).toEqual(raw);

    const t = setup({ pasid: NO_PASID });
    const r = t.dma(0x60_0000, 1, 'read');
    const rid = t.readRecords(REC).recs;
    expect(rid).toEqual([{ flags: C.IOMMU_PGFAULT_FLAGS_LAST_PAGE, dev_id: DEV_ID, pasid: 0, grpid: rid[0]!.grpid, perm: C.IOMMU_PGFAULT_PERM_READ, __reserved: 0, addr: 0x60_0000n, length: 0, cookie: 1 }]);
    value(t.domain.map(0x60_0000, BUF, PAGE, { read: true, write: true }));
    value(t.respond([[1, C.IOMMUFD_PAGE_RESP_SUCCESS]]));
    expect(r.status).toBe('ok');
  });

  it('exec permission and a large address are composed as the uapi has them', () => {
    const s = setup();
    s.dma(0x70_0000);
    const [held] = s.core.iopf.pending(s.dev);
    const f = held!.faults[0]!;
    const bytes = s.fault.compose({ ...held!, faults: [{ ...f, exec: true, write: true, address: 2 ** 52 + 0x3000 }] }, 0xfffffffe);
    expect(iommu_hwpt_pgfault.decode(bytes)).toMatchObject({
      perm: C.IOMMU_PGFAULT_PERM_READ | C.IOMMU_PGFAULT_PERM_WRITE | C.IOMMU_PGFAULT_PERM_EXEC, addr: BigInt(2 ** 52 + 0x3000), cookie: 0xfffffffe,
    });
  });
});

describe('fault fd: read', () => {
  it('ESPIPE for ppos ≠ 0 or a count that is not a multiple of 40; nothing is consumed', () => {
    const s = setup();
    s.dma(0x40_0000);
    expect(errno(s.file.read(s.proc, s.ubuf, REC, 40))).toBe('ESPIPE');
    expect(errno(s.file.read(s.proc, s.ubuf, REC - 1, 0))).toBe('ESPIPE');
    expect(errno(s.file.read(s.proc, s.ubuf, REC + 8, 0))).toBe('ESPIPE');
    expect(s.fault.queued).toBe(1);
    expect(errno(s.file.write(s.proc, s.ubuf, 8, 8))).toBe('ESPIPE');
    expect(errno(s.file.write(s.proc, s.ubuf, 12, 0))).toBe('ESPIPE');
  });

  it('returns 0 when nothing is queued (no blocking); count 0 reads nothing', () => {
    const s = setup();
    expect(s.file.read(s.proc, s.ubuf, 2 * REC, 0)).toEqual({ ok: true, value: 0 });
    expect(s.file.poll()).toBe(EPOLLOUT);
    s.dma(0x40_0000);
    expect(s.file.read(s.proc, s.ubuf, 0, 0)).toEqual({ ok: true, value: 0 });
    expect(s.fault.queued).toBe(1);
  });

  it('whole groups only: a 2-fault group does not fit in 40 bytes and stays queued, first in line', () => {
    const s = setup();
    s.dma(0x40_0000, 2);
    s.dma(0x80_0000, 1);
    expect(s.fault.queued).toBe(2);
    expect(s.file.read(s.proc, s.ubuf, REC, 0)).toEqual({ ok: true, value: 0 });
    expect(s.fault.queued).toBe(2);
    // 120 bytes: the 2-fault group, then the 1-fault group.
    const { n, recs } = s.readRecords(3 * REC);
    expect(n).toBe(3 * REC);
    expect(recs.map((x) => [Number(x.addr), x.cookie])).toEqual([[0x40_0000, 1], [0x40_1000, 1], [0x80_0000, 2]]);
  });

  it('a group that does not fit stops the read: the bytes of the groups before it', () => {
    const s = setup();
    s.dma(0x40_0000, 1);
    s.dma(0x80_0000, 2);
    const { n, recs } = s.readRecords(2 * REC);
    expect(n).toBe(REC);
    expect(recs.map((x) => x.cookie)).toEqual([1]);
    expect(s.fault.queued).toBe(1);
  });

  it('cookies start at 1, one per group, and a freed cookie is reused lowest first', () => {
    const s = setup();
    s.dma(0x40_0000);
    s.dma(0x50_0000);
    s.dma(0x60_0000);
    expect(s.readRecords(3 * REC).recs.map((x) => x.cookie)).toEqual([1, 2, 3]);
    value(s.respond([[2, C.IOMMUFD_PAGE_RESP_INVALID]]));
    s.dma(0x70_0000);
    expect(s.readRecords(REC).recs.map((x) => x.cookie)).toEqual([2]);
    expect(s.fault.cookies()).toEqual([1, 2, 3]);
  });

  it('EFAULT on an unmapped buffer: the group is requeued and its cookie freed; a later read gets it', () => {
    const s = setup();
    const r = s.dma(0x40_0000);
    value(s.proc.mm.munmap(s.ubuf + 3 * PAGE, PAGE));
    expect(errno(s.file.read(s.proc, s.ubuf + 3 * PAGE, REC, 0))).toBe('EFAULT');
    expect(s.fault.queued).toBe(1);
    expect(s.fault.awaitingResponse).toBe(0);
    // Straddling the hole: the first group fits below it, the second faults and waits.
    s.dma(0x50_0000);
    const n = value(s.file.read(s.proc, s.ubuf + 3 * PAGE - REC, 2 * REC, 0));
    expect(n).toBe(REC);
    expect(decodeRecords(s.proc, s.ubuf + 3 * PAGE - REC, REC).map((x) => [Number(x.addr), x.cookie])).toEqual([[0x40_0000, 1]]);
    expect(s.fault.queued).toBe(1);
    expect(s.readRecords(REC).recs.map((x) => [Number(x.addr), x.cookie])).toEqual([[0x50_0000, 2]]);
    value(s.domain.map(0x40_0000, BUF, PAGE, { read: true, write: true }));
    value(s.respond([[1, C.IOMMUFD_PAGE_RESP_SUCCESS]]));
    expect(r.status).toBe('ok');
  });
});

describe('fault fd: write', () => {
  it('INVALID aborts the transfer; the bytes consumed are returned', () => {
    const s = setup();
    const r = s.dma(0x40_0000);
    s.readRecords(REC);
    expect(s.respond([[1, C.IOMMUFD_PAGE_RESP_INVALID]])).toEqual({ ok: true, value: 8 });
    expect(r.status).toBe('aborted');
  });

  it('a bad code is EINVAL (FAILURE = 2 cannot be chosen) and leaves the group waiting', () => {
    const s = setup();
    const r = s.dma(0x40_0000);
    s.readRecords(REC);
    expect(errno(s.respond([[1, 2]]))).toBe('EINVAL');
    expect(errno(s.respond([[1, 0xffffffff]]))).toBe('EINVAL');
    expect(s.fault.cookies()).toEqual([1]);
    expect(r.status).toBe('pending');
  });

  it('responses are consumed until one fails: the bytes before it, the error when none', () => {
    const s = setup();
    const r1 = s.dma(0x40_0000);
    const r2 = s.dma(0x50_0000);
    s.readRecords(2 * REC);
    expect(s.respond([[1, C.IOMMUFD_PAGE_RESP_INVALID], [9, C.IOMMUFD_PAGE_RESP_INVALID], [2, C.IOMMUFD_PAGE_RESP_INVALID]])).toEqual({ ok: true, value: 8 });
    expect(r1.status).toBe('aborted');
    expect(r2.status).toBe('pending');
    expect(errno(s.respond([[9, 0], [2, 1]]))).toBe('EINVAL');
    expect(r2.status).toBe('pending');
    expect(s.respond([[2, 1]])).toEqual({ ok: true, value: 8 });
    expect(r2.status).toBe('aborted');
  });

  it('EFAULT for an unreadable response; count 0 writes nothing', () => {
    const s = setup();
    value(s.proc.mm.munmap(s.ubuf + 3 * PAGE, PAGE));
    expect(errno(s.file.write(s.proc, s.ubuf + 3 * PAGE, 8, 0))).toBe('EFAULT');
    expect(s.file.write(s.proc, s.ubuf, 0, 0)).toEqual({ ok: true, value: 0 });
  });

  it('seed 004: a group is answered once; a stale or spurious response is EINVAL and reaches no device', () => {
    const s = setup();
    const r = s.dma(0x40_0000);
    expect(errno(s.respond([[1, 0]]))).toBe('EINVAL'); // queued but not read: no cookie yet
    s.readRecords(REC);
    value(s.domain.map(0x40_0000, BUF, PAGE, { read: true, write: true }));
    value(s.respond([[1, C.IOMMUFD_PAGE_RESP_SUCCESS]]));
    expect(r.status).toBe('ok');
    expect(errno(s.respond([[1, C.IOMMUFD_PAGE_RESP_SUCCESS]]))).toBe('EINVAL'); // stale
    expect(errno(s.respond([[0, C.IOMMUFD_PAGE_RESP_SUCCESS]]))).toBe('EINVAL'); // never a cookie
    expect(errno(s.respond([[0x1234, C.IOMMUFD_PAGE_RESP_INVALID]]))).toBe('EINVAL'); // spurious
    expect(s.engine.stats.spuriousResponses).toBe(0);
    expect(s.engine.stats.responses).toBe(1);
    expect(s.core.iopf.stats.responses).toBe(1);
    expect(s.core.iopf.stats.rejectedResponses).toBe(0);
  });

  it('seed 004 with the private-data cookie option: the response still finds the group', () => {
    const s = setup({ iopf: { privateDataCookie: true } });
    const r = s.dma(0x40_0000);
    s.readRecords(REC);
    value(s.domain.map(0x40_0000, BUF, PAGE, { read: true, write: true }));
    value(s.respond([[1, C.IOMMUFD_PAGE_RESP_SUCCESS]]));
    expect(r.status).toBe('ok');
    expect(s.core.iopf.stats.rejectedResponses).toBe(0);
  });
});

describe('auto-response', () => {
  it('detach answers INVALID every group of the attach, queued or read; the device aborts; a late response is EINVAL', () => {
    const s = setup();
    const read = s.dma(0x40_0000);
    s.readRecords(REC);
    const queued = s.dma(0x50_0000);
    expect([s.fault.queued, s.fault.awaitingResponse]).toEqual([1, 1]);
    const users = s.fault.users;
    // The fault object answers first (as iommufd would if it ran before the core's own cleanup).
    expect(s.fault.detachHwpt(s.handle)).toBe(2);
    expect(s.handle.live).toBe(false);
    expect([read.status, queued.status]).toEqual(['aborted', 'aborted']);
    expect([s.fault.queued, s.fault.awaitingResponse]).toEqual([0, 0]);
    expect(s.fault.users).toBe(users - 1);
    s.core.removeDevicePasid(s.dev, PASID);
    expect(s.core.iopf.stats.autoResponses).toBe(0); // nothing left for the core to answer
    expect(errno(s.respond([[1, C.IOMMUFD_PAGE_RESP_SUCCESS]]))).toBe('EINVAL');
    expect(s.engine.stats.spuriousResponses).toBe(0);
  });

  it('read groups are answered in ascending cookie order, as xa_for_each walks the response xarray', () => {
    const s = setup();
    const first = [s.dma(0x40_0000), s.dma(0x50_0000), s.dma(0x60_0000)];
    const a = s.readRecords(3 * REC).recs;
    expect(a.map((r) => r.cookie)).toEqual([1, 2, 3]);
    // Cookie 1 is answered and freed; the next group read gets it back (lowest free), after 2 and 3.
    value(s.respond([[1, C.IOMMUFD_PAGE_RESP_INVALID]]));
    expect(first[0]!.status).toBe('aborted');
    s.dma(0x70_0000);
    const b = s.readRecords(REC).recs;
    expect(b.map((r) => r.cookie)).toEqual([1]);
    const prgiOf = new Map([[1, b[0]!.grpid], [2, a[1]!.grpid], [3, a[2]!.grpid]]);
    const before = s.engine.log.length;
    expect(s.fault.detachHwpt(s.handle)).toBe(3);
    const answered = s.engine.log.slice(before).map((l) => Number(/group (\d+) answered INVALID/.exec(l)?.[1]));
    expect(answered).toEqual([prgiOf.get(1), prgiOf.get(2), prgiOf.get(3)]);
  });

  it('core detach first, then detachHwpt: each group is answered exactly once', () => {
    const s = setup();
    const read = s.dma(0x40_0000);
    s.readRecords(REC);
    const queued = s.dma(0x50_0000);
    s.core.removeDevicePasid(s.dev, PASID);
    expect([read.status, queued.status]).toEqual(['aborted', 'aborted']);
    expect(s.fault.detachHwpt(s.handle)).toBe(2);
    expect(s.core.iopf.stats.rejectedResponses).toBe(0);
    expect(s.engine.stats.spuriousResponses).toBe(0);
    expect(s.file.poll()).toBe(EPOLLOUT);
  });

  it('detach of one attach leaves the groups of another attach alone', () => {
    const s = setup();
    const d2 = s.unmanaged(DSA);
    d2.iopfHandler = s.fault.iopfHandler;
    value(s.core.attachDevicePasid(d2, s.dev, PASID + 1));
    const h2 = s.fault.attachHwpt(s.dev, PASID + 1, d2);
    const r1 = s.dma(0x40_0000);
    const r2 = s.machine.dma(s.dev, { op: 'read', address: 0x40_0000, length: 8, pasid: PASID + 1 });
    s.core.poll();
    expect(s.fault.queued).toBe(2);
    expect(s.fault.detachHwpt(h2)).toBe(1);
    expect([r1.status, r2.status]).toEqual(['pending', 'aborted']);
    expect(s.readRecords(2 * REC).recs.map((x) => x.pasid)).toEqual([PASID]);
    expect(() => s.fault.detachHwpt(h2)).toThrow();
  });

  it('destroy: EBUSY while a HWPT or the fd holds it; after both are gone, destroy answers INVALID all groups', () => {
    const s = setup();
    // Groups at PASID 6 reach the handler through a domain whose attach the fault object was not told
    // about, so only destroy can answer them.
    const d2 = s.unmanaged(DSA);
    d2.iopfHandler = s.fault.iopfHandler;
    value(s.core.attachDevicePasid(d2, s.dev, PASID + 1));
    const at = (iova: number) => { const r = s.machine.dma(s.dev, { op: 'read', address: iova, length: 8, pasid: PASID + 1 }); s.core.poll(); return r; };
    const read = at(0x40_0000);
    s.readRecords(REC);
    const queued = at(0x50_0000);
    const id = s.out.out_fault_id;
    expect(errno(s.ctx.objects.destroyUser(id))).toBe('EBUSY');
    expect(s.fault.detachHwpt(s.handle)).toBe(0);
    s.fault.hwptPut();
    expect(s.fault.users).toBe(2);
    expect(errno(s.ctx.objects.destroyUser(id))).toBe('EBUSY'); // the fd still holds it
    expect([read.status, queued.status]).toEqual(['pending', 'pending']);
    value(s.proc.fds.close(s.out.out_fault_fd));
    expect(s.fault.users).toBe(1);
    value(s.ctx.objects.destroyUser(id));
    expect([read.status, queued.status]).toEqual(['aborted', 'aborted']);
    expect(s.fault.stats.autoResponses).toBe(2);
    expect(errno(s.ctx.objects.get(id))).toBe('ENOENT');
    // A group reported after destroy (a domain still pointing at the handler) is answered at once.
    expect(at(0x60_0000).status).toBe('aborted');
    expect(s.engine.stats.spuriousResponses).toBe(0);
  });

  it('the fault fd keeps the iommufd context alive; the last close destroys the object and answers its groups', () => {
    const s = setup();
    s.fault.detachHwpt(s.handle);
    s.fault.hwptPut();
    const r = s.dma(0x40_0000);
    expect(s.fault.queued).toBe(1);
    value(s.proc.fds.close(s.ctxFd));
    expect(s.ctx.isClosed).toBe(false);
    expect(s.file.poll()).toBe(EPOLLOUT | EPOLLIN | EPOLLRDNORM);
    value(s.proc.fds.close(s.out.out_fault_fd));
    expect(s.ctx.isClosed).toBe(true);
    expect(r.status).toBe('aborted');
    expect(s.ctx.objects.size).toBe(0);
  });
});

type Op =
  | { readonly t: 'dma'; readonly pages: number; readonly write: boolean }
  | { readonly t: 'read'; readonly records: number }
  | { readonly t: 'respond'; readonly pick: number; readonly code: number; readonly stale: boolean };

const opArb: fc.Arbitrary<Op> = fc.oneof(
  fc.record({ t: fc.constant('dma' as const), pages: fc.integer({ min: 1, max: 3 }), write: fc.boolean() }),
  fc.record({ t: fc.constant('read' as const), records: fc.nat(4) }),
  fc.record({ t: fc.constant('respond' as const), pick: fc.nat(16), code: fc.constantFrom(0, 1, 1, 2), stale: fc.boolean() }),
);

describe('fault fd: random reads and responses (property)', () => {
  it('the fault object and the core agree on what is pending; every group is answered exactly once', () => {
    fc.assert(fc.property(fc.array(opArb, { minLength: 1, maxLength: 30 }), (ops) => {
      const s = setup();
      const transfers: ReturnType<typeof s.dma>[] = [];
      const answered = new Set<number>();
      const addrsOf = new Map<number, bigint[]>();
      let nextIova = 0x100_0000;
      for (const op of ops) {
        if (op.t === 'dma' && transfers.length < 8) {
          transfers.push(s.dma(nextIova, op.pages, op.write ? 'write' : 'read'));
          nextIova += 0x10_0000;
        } else if (op.t === 'read') {
          const before = s.fault.queued;
          const { n, recs } = s.readRecords(op.records * REC);
          expect(n % REC).toBe(0);
          // Whole groups: the last record read closes its group, and records of one group share a cookie.
          if (recs.length > 0) expect(recs.at(-1)!.flags & C.IOMMU_PGFAULT_FLAGS_LAST_PAGE).not.toBe(0);
          for (const rec of recs) {
            expect(rec.cookie).toBeGreaterThanOrEqual(1);
            expect(answered.has(rec.cookie) && !s.fault.cookies().includes(rec.cookie)).toBe(false);
            addrsOf.set(rec.cookie, [...(addrsOf.get(rec.cookie) ?? []), rec.addr]);
          }
          expect(s.fault.queued).toBeLessThanOrEqual(before);
        } else if (op.t === 'respond') {
          const live = s.fault.cookies();
          const cookie = op.stale || live.length === 0 ? 1000 + op.pick : live[op.pick % live.length]!;
          const valid = live.includes(cookie) && op.code <= 1;
          if (valid && op.code === 0) {
            for (const a of addrsOf.get(cookie) ?? []) value(s.domain.map(Number(a), BUF, PAGE, { read: true, write: true }));
          }
          const r = s.respond([[cookie, op.code]]);
          expect(r.ok).toBe(valid);
          if (valid) { addrsOf.delete(cookie); answered.add(cookie); }
        }
        expect(s.fault.queued + s.fault.awaitingResponse).toBe(s.core.iopf.pending(s.dev).length);
        expect(s.file.poll()).toBe(EPOLLOUT | (s.fault.queued > 0 ? EPOLLIN | EPOLLRDNORM : 0));
      }
      // Detach: whatever is left is answered INVALID; nothing is left pending anywhere.
      s.fault.detachHwpt(s.handle);
      s.core.removeDevicePasid(s.dev, PASID);
      expect(s.core.iopf.pending(s.dev)).toHaveLength(0);
      for (const t of transfers) expect(['ok', 'aborted']).toContain(t.status);
      expect(s.engine.stats.spuriousResponses).toBe(0);
      expect(s.core.iopf.stats.rejectedResponses).toBe(0);
      expect(s.core.iopf.stats.autoResponses).toBe(0);
    }), { numRuns: 25 });
  });
});
