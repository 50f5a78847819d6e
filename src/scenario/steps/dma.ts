// Device steps: a function's DMA engine moves bytes through the IOMMU (or faults), and the kernel's
// IOMMU interrupt handler runs afterwards (page requests reach the io-pgfault layer and fault queues).

import { z } from 'zod';
import { commonFields, stepKind } from '../step-kind.ts';
import { StepError } from '../run-state.ts';
import { hex, numberLike } from '../values.ts';
import { preview } from './process.ts';
import { dmaConfinementBreaches } from '../dma-confinement.ts';

export const dma = stepKind({
  name: 'dma',
  summary: 'the device reads or writes at a bus address (an IOVA), optionally PASID-tagged',
  fields: {
    device: z.string().min(1),
    write: z.union([z.string(), z.array(z.number().int().min(0).max(255))]).optional(),
    read: numberLike.optional(),
    iova: numberLike,
    pasid: numberLike.optional(),
    /** Private data (two 32-bit words) the transfer's page requests carry; the response must echo it. */
    privateData: z.tuple([z.number().int().min(0).max(0xffffffff), z.number().int().min(0).max(0xffffffff)]).optional(),
    ...commonFields,
  },
  run(s, st) {
    const dev = s.device(st.device);
    if ((st.write === undefined) === (st.read === undefined)) throw new StepError('a dma step has exactly one of write: (data) and read: (length)');
    const address = s.num(st.iova);
    const pasid = st.pasid === undefined ? undefined : s.num(st.pasid);
    if (pasid !== undefined && pasid > 0xfffff) throw new StepError(`PASID ${pasid} is wider than 20 bits`);
    const data = st.write === undefined ? undefined : typeof st.write === 'string' ? new TextEncoder().encode(st.write) : Uint8Array.from(st.write);
    const length = data?.length ?? s.num(st.read ?? 0);
    if (length <= 0 || length > 1 << 20) throw new StepError('a dma step moves 1 byte to 1 MiB');
    const r = s.kernel.machine.dma(dev, {
      op: data === undefined ? 'read' : 'write', address, length, ...(data !== undefined ? { data } : {}),
      ...(pasid !== undefined ? { pasid } : {}),
      ...(st.privateData !== undefined ? { privateData: st.privateData } : {}),
    });
    // The IOMMU's interrupt: fault and page-request queues are drained into the kernel.
    s.kernel.core.poll();
    const what = `${dev.shortBdf} DMA ${data === undefined ? 'read' : 'write'} of ${length} bytes at ${hex(address)}${pasid !== undefined ? ` PASID ${pasid}` : ''}`;
    const done = r.status === 'ok' || r.status === 'p2p';
    const readBack = r.data === null ? undefined : r.data.subarray(0, r.bytesDone);
    const confined = dmaConfinementBreaches(s.kernel, dev, r, pasid);
    return {
      ok: done,
      status: r.status,
      ...(confined.length > 0 ? { breaches: confined } : {}),
      summary: `${what}: ${r.status}${r.status === 'ok' && readBack !== undefined ? ` ${preview(readBack)}` : ''} (${r.why})`,
      ...(readBack !== undefined ? { data: readBack } : {}),
      ...(r.fault !== null ? { details: [`IOMMU fault: ${r.fault.reasonName} at ${hex(r.fault.iova)}${r.fault.stage === 2 && r.fault.faultGpa !== 0 ? ` (stage 2 of a nested walk, GPA ${hex(r.fault.faultGpa)})` : ''}${r.fault.recorded ? ', recorded in the fault queue' : ''}`] } : {}),
    };
  },
});
