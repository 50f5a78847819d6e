// The 2021 /dev/ioasid proposal's PASID allocation (IOASID_ALLOC), for scenarios run with
// options.pasidAllocation: global. Linux never shipped this uAPI, so the step calls the model's
// system-wide allocator directly, on behalf of the process's iommufd.

import { z } from 'zod';
import { IommufdCtx } from '../../kernel/iommufd/context.ts';
import { commonFields, stepKind } from '../step-kind.ts';
import { StepError } from '../run-state.ts';
import { fromResult } from './outcome.ts';

export const pasidAlloc = stepKind({
  name: 'pasid-alloc',
  summary: 'allocate a PASID from the system-wide space for an iommufd (the 2021 design; `as` stores it)',
  fields: { process: z.string().min(1), iommufd: z.union([z.string(), z.number().int()]).default('iommufd'), as: z.string().optional(), ...commonFields },
  run(s, st) {
    const p = s.process(st.process);
    const f = p.proc.fds.get(s.fd(p, st.iommufd));
    if (!f.ok || !(f.value.file instanceof IommufdCtx)) throw new StepError(`${p.name}: fd ${String(st.iommufd)} is not an iommufd`);
    const ctx = f.value.file;
    return fromResult(s.kernel.core.globalPasids.alloc(ctx), `${p.name}: allocate a PASID`, (pasid) => {
      s.set(st.as, pasid);
      return `${p.name} allocates PASID ${pasid} from the system-wide space (${s.kernel.core.globalPasids.policy} policy)`;
    }, (pasid) => ({ value: BigInt(pasid) }));
  },
});
