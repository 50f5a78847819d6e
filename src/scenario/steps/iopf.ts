// IO page fault steps on the kernel side: a driver removes its device's fault handler
// (iopf_queue_remove_device; in 2019, iommu_unregister_device_fault_handler), and what the device saw.

import { z } from 'zod';
import { commonFields, stepKind } from '../step-kind.ts';
import { fromResult } from './outcome.ts';

export const iopfDisable = stepKind({
  name: 'iopf-disable',
  summary: 'the driver unregisters the device\'s IO page fault handler: pending groups are answered INVALID (Linux) or it is EBUSY (2019 option)',
  fields: { device: z.string().min(1), ...commonFields },
  run(s, st) {
    const dev = s.device(st.device);
    const pending = s.kernel.core.iopf.pending(dev).length;
    const r = s.kernel.core.disableIopf(dev);
    s.kernel.machine.deliverMessages();
    return fromResult(r, `${dev.bdf}: unregister the fault handler`,
      () => `${dev.bdf}: fault handler unregistered${pending > 0 ? `; ${pending} pending page request group${pending === 1 ? '' : 's'} answered INVALID` : ''}`);
  },
});

export const deviceLog = stepKind({
  name: 'device-log',
  summary: 'what a function\'s DMA engine logged (page requests, the responses it got and their private data); value: the lines that contain `match`',
  fields: { device: z.string().min(1), match: z.string().default(''), ...commonFields },
  run(s, st) {
    const dev = s.device(st.device);
    const lines = s.kernel.machine.engine(dev).log.filter((l) => l.includes(st.match));
    return {
      ok: true, value: BigInt(lines.length), details: [...lines],
      summary: `${dev.bdf}'s DMA engine: ${lines.length} line${lines.length === 1 ? '' : 's'}${st.match !== '' ? ` containing "${st.match}"` : ''}`,
    };
  },
});
