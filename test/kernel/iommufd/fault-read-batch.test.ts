// The fault fd's read composes every group that fits and copies the records out at once; only when that
// copy fails does it go group by group. Checked here against a read that copies each group as it is
// fetched (the way Linux's iommufd_fault_fops_read goes), on twin set-ups: the same return value, the same
// bytes in user memory, the same groups left queued, the same cookies handed out.

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { fail, ok, type Result } from '../../../src/kernel/errno.ts';
import { IommufdCtx } from '../../../src/kernel/iommufd/context.ts';
import { iommufdFaultAlloc, type FaultFile } from '../../../src/kernel/iommufd/fault-fd.ts';
import type { IommufdFault } from '../../../src/kernel/iommufd/fault.ts';
import { FrameAllocator } from '../../../src/kernel/mm/frame-allocator.ts';
import { MAP_ANONYMOUS, MAP_FIXED, MAP_PRIVATE, PROT_READ, PROT_WRITE } from '../../../src/kernel/mm/mman.ts';
import { ProcessTable } from '../../../src/kernel/process/process-table.ts';
import type { Process } from '../../../src/kernel/process/process.ts';
import { bench, enablePriPasid, PAGE, value } from '../iommu/helpers.ts';

const DSA = '6a:01.0';
const PASID = 5;
const REC = 40;

function setup(groups: readonly number[]) {
  const b = bench();
  const dev = b.dev(DSA);
  enablePriPasid(dev);
  value(b.core.deviceClaimDmaOwner(dev, 'ictx'));
  const frames = new FrameAllocator(b.machine.memory, { firstPfn: 0x8_0000, count: 4096 });
  const proc = new ProcessTable({ frames }).spawn({});
  const ctx = new IommufdCtx(b.core, proc);
  value(proc.fds.install(ctx));
  const out = value(iommufdFaultAlloc(ctx, proc, { size: 16, flags: 0, out_fault_id: 0, out_fault_fd: 0 }, { devIdOf: () => 7 }));
  const fault = value(ctx.objects.get<IommufdFault>(out.out_fault_id, 'fault'));
  const file = value(proc.fds.get(out.out_fault_fd)).file as FaultFile;
  const domain = b.unmanaged(DSA);
  domain.iopfHandler = fault.iopfHandler;
  fault.hwptGet();
  value(b.core.attachDevicePasid(domain, dev, PASID));
  fault.attachHwpt(dev, PASID, domain);
  // Four pages of user buffer; the test unmaps one of them.
  const ubuf = value(proc.mmap(0, 4 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  // One DMA per group, `pages` pages long: a page request group of that many records.
  groups.forEach((pages, i) => {
    b.machine.dma(dev, { op: 'read', address: 0x40_0000 + i * 0x10_0000, length: pages * PAGE, pasid: PASID });
    b.core.poll();
  });
  return { proc, fault, file, ubuf };
}

/** The read as a copy per group (what FaultFile.read did before it copied once). */
function referenceRead(fault: IommufdFault, proc: Process, userBuf: number, count: number): Result<number> {
  let done = 0;
  let err: Result<number> | null = null;
  for (;;) {
    const got = fault.fetch(count - done);
    if (got === null) break;
    const bytes = fault.compose(got.group, got.cookie);
    if (!proc.mm.write(userBuf + done, bytes).ok) {
      fault.restore(got.cookie);
      err = fail('EFAULT', `cannot copy ${bytes.length} bytes of page request records to 0x${(userBuf + done).toString(16)}`);
      break;
    }
    done += bytes.length;
  }
  return done === 0 && err !== null ? err : ok(done);
}

function userBytes(proc: Process, at: number, n: number): number[] {
  const out: number[] = [];
  const b = new Uint8Array(1);
  for (let i = 0; i < n; i++) out.push(proc.mm.read(at + i, b).ok ? (b[0] as number) : -1);
  return out;
}

describe('fault fd read: one copy for the whole read', () => {
  it('matches a copy per group, holes in the buffer included', () => {
    fc.assert(fc.property(
      fc.array(fc.integer({ min: 1, max: 3 }), { minLength: 1, maxLength: 6 }),
      fc.integer({ min: 0, max: 4 }),
      fc.integer({ min: 0, max: 12 }),
      fc.integer({ min: 0, max: 14 }),
      (groups, hole, startRecs, countRecs) => {
        const a = setup(groups);
        const b = setup(groups);
        // Page `hole` of the buffer is unmapped (4: none is); the read starts `startRecs` records before page 2.
        for (const s of [a, b]) if (hole < 4) value(s.proc.mm.munmap(s.ubuf + hole * PAGE, PAGE));
        const at = a.ubuf + 2 * PAGE - startRecs * REC;
        const count = countRecs * REC;
        const got = a.file.read(a.proc, at, count, 0);
        const want = referenceRead(b.fault, b.proc, b.ubuf + 2 * PAGE - startRecs * REC, count);
        expect(got).toEqual(want);
        expect(userBytes(a.proc, at, count)).toEqual(userBytes(b.proc, b.ubuf + 2 * PAGE - startRecs * REC, count));
        expect(a.fault.queued).toBe(b.fault.queued);
        expect(a.fault.cookies()).toEqual(b.fault.cookies());
        expect(a.fault.stats).toEqual(b.fault.stats);
        // What is left reads the same too (cookies included).
        if (hole < 4) for (const s of [a, b]) value(s.proc.mmap(s.ubuf + hole * PAGE, PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0));
        const restA = value(a.file.read(a.proc, a.ubuf, 100 * REC, 0));
        const restB = value(referenceRead(b.fault, b.proc, b.ubuf, 100 * REC));
        expect(restA).toBe(restB);
        expect(userBytes(a.proc, a.ubuf, restA)).toEqual(userBytes(b.proc, b.ubuf, restB));
        expect(a.fault.queued + b.fault.queued).toBe(0);
      },
    ), { numRuns: 40 });
  });
});
