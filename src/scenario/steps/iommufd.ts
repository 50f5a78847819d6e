// iommufd steps, each one ioctl through the typed API (which encodes the C struct in the process's
// memory and goes through the byte-level dispatch a C program reaches).

import { z } from 'zod';
import * as api from '../../uapi/api.ts';
import { IOMMUFD_PAGE_RESP_INVALID, IOMMUFD_PAGE_RESP_SUCCESS } from '../../uapi/iommufd-consts.ts';
import { commonFields, stepKind } from '../step-kind.ts';
import type { RunState, ScenarioProcess } from '../run-state.ts';
import { formatSize, hex, numberLike } from '../values.ts';
import { failed, fromResult } from './outcome.ts';

const onFd = { process: z.string().min(1), fd: z.union([z.string(), z.number().int()]).default('iommufd') };

function args(s: RunState, st: { process: string; fd: string | number }): { p: ScenarioProcess; a: api.FdArgs } {
  const p = s.process(st.process);
  return { p, a: { proc: p.proc, fd: s.fd(p, st.fd) } };
}

export const ioasAlloc = stepKind({
  name: 'ioas-alloc',
  summary: 'IOMMU_IOAS_ALLOC: a new IO address space; `as` stores its ID',
  fields: { ...onFd, as: z.string().optional(), ...commonFields },
  run(s, st) {
    const { p, a } = args(s, st);
    return fromResult(api.ioasAlloc(a), `${p.name}: IOMMU_IOAS_ALLOC`, (id) => {
      s.set(st.as, id);
      return `${p.name}: IOMMU_IOAS_ALLOC → IOAS ${id}`;
    }, (id) => ({ value: BigInt(id) }));
  },
});

export const ioasMap = stepKind({
  name: 'ioas-map',
  summary: 'IOMMU_IOAS_MAP of user memory (va: a region name or address) at a fixed or chosen IOVA',
  fields: {
    ...onFd, ioas: numberLike, va: numberLike, length: numberLike, iova: numberLike.optional(),
    readable: z.boolean().default(true), writeable: z.boolean().default(true), as: z.string().optional(), ...commonFields,
  },
  run(s, st) {
    const { p, a } = args(s, st);
    const length = s.value(st.length, p);
    const r = api.ioasMap({
      ...a, ioasId: s.num(st.ioas, p), userVa: s.value(st.va, p), length, readable: st.readable, writeable: st.writeable,
      ...(st.iova !== undefined ? { iova: s.value(st.iova, p) } : {}),
    });
    return fromResult(r, `${p.name}: IOMMU_IOAS_MAP`, (m) => {
      s.set(st.as, m.iova);
      return `${p.name}: IOMMU_IOAS_MAP ${formatSize(length)} of ${hex(m.userVa)} at IOVA ${hex(m.iova)}`;
    }, (m) => ({ value: m.iova }));
  },
});

export const ioasUnmap = stepKind({
  name: 'ioas-unmap',
  summary: 'IOMMU_IOAS_UNMAP of [iova, iova+length) (whole areas only)',
  fields: { ...onFd, ioas: numberLike, iova: numberLike, length: numberLike, ...commonFields },
  run(s, st) {
    const { p, a } = args(s, st);
    const iova = s.value(st.iova, p);
    const r = api.ioasUnmap({ ...a, ioasId: s.num(st.ioas, p), iova, length: s.value(st.length, p) });
    return fromResult(r, `${p.name}: IOMMU_IOAS_UNMAP at ${hex(iova)}`, (n) => `${p.name}: IOMMU_IOAS_UNMAP at ${hex(iova)} → ${formatSize(n)} unmapped`, (n) => ({ value: n }));
  },
});

export const destroy = stepKind({
  name: 'destroy',
  summary: 'IOMMU_DESTROY of an object ID',
  fields: { ...onFd, id: numberLike, ...commonFields },
  run(s, st) {
    const { p, a } = args(s, st);
    const id = s.num(st.id, p);
    return fromResult(api.destroy({ ...a, id }), `${p.name}: IOMMU_DESTROY ${id}`, () => `${p.name}: IOMMU_DESTROY ${id}`);
  },
});

export const faultQueueAlloc = stepKind({
  name: 'fault-queue-alloc',
  summary: 'IOMMU_FAULT_QUEUE_ALLOC: a FAULT object and its fd (`as` names the fd, `id` stores the object ID)',
  fields: { ...onFd, as: z.string().min(1), id: z.string().optional(), ...commonFields },
  run(s, st) {
    const { p, a } = args(s, st);
    return fromResult(api.faultQueueAlloc(a), `${p.name}: IOMMU_FAULT_QUEUE_ALLOC`, (f) => {
      p.fds.set(st.as, f.faultFd);
      s.set(st.id, f.faultId);
      return `${p.name}: IOMMU_FAULT_QUEUE_ALLOC → FAULT ${f.faultId}, fd ${f.faultFd}`;
    }, (f) => ({ value: BigInt(f.faultId) }));
  },
});

export const hwptAlloc = stepKind({
  name: 'hwpt-alloc',
  summary: 'IOMMU_HWPT_ALLOC of a paging HWPT for a device on an IOAS (or, with s1:, of a nested HWPT on a NEST_PARENT HWPT pt), optionally with a FAULT object',
  fields: {
    ...onFd, device: numberLike, pt: numberLike, fault: numberLike.optional(), flags: z.number().int().default(0),
    /** struct iommu_hwpt_vtd_s1: the guest's first-stage table (root GPA, 48 or 57 bits, IOMMU_VTD_S1_* flags). */
    s1: z.object({ pgtbl: numberLike, addrWidth: z.number().int().default(48), flags: z.number().int().min(0).default(0) }).strict().optional(),
    as: z.string().optional(), ...commonFields,
  },
  run(s, st) {
    const { p, a } = args(s, st);
    const common = { ...a, devId: s.num(st.device, p), flags: st.flags, ...(st.fault !== undefined ? { faultId: s.num(st.fault, p) } : {}) };
    const r = st.s1 === undefined
      ? api.hwptAlloc({ ...common, ptId: s.num(st.pt, p) })
      : api.hwptAllocNested({ ...common, parentId: s.num(st.pt, p), s1: { pgtblAddr: s.value(st.s1.pgtbl, p), addrWidth: st.s1.addrWidth, flags: st.s1.flags } });
    return fromResult(r, `${p.name}: IOMMU_HWPT_ALLOC`, (id) => {
      s.set(st.as, id);
      const kind = st.s1 === undefined ? '' : ` (nested on HWPT ${s.num(st.pt, p)}, stage-1 root GPA ${hex(s.value(st.s1.pgtbl, p))})`;
      return `${p.name}: IOMMU_HWPT_ALLOC → HWPT ${id}${kind}${st.fault !== undefined ? ' (IO page faults go to the FAULT object)' : ''}`;
    }, (id) => ({ value: BigInt(id) }));
  },
});

export const faultRead = stepKind({
  name: 'fault-read',
  summary: 'read(2) page-request records from a fault fd; `as` stores the first record\'s cookie, `addr` its address',
  fields: { process: z.string().min(1), fd: z.union([z.string(), z.number().int()]), as: z.string().optional(), addr: z.string().optional(), ...commonFields },
  run(s, st) {
    const p = s.process(st.process);
    const r = api.faultRead({ proc: p.proc, faultFd: s.fd(p, st.fd) });
    if (!r.ok) return failed(r, `${p.name}: read fault fd`);
    const first = r.value[0];
    if (first !== undefined) {
      s.set(st.as, first.cookie);
      s.set(st.addr, first.addr);
    }
    return {
      ok: true, value: BigInt(r.value.length),
      summary: `${p.name} reads ${r.value.length} page request${r.value.length === 1 ? '' : 's'} from the fault fd`,
      details: r.value.map((f) => `dev_id ${f.dev_id} pasid ${f.pasid} grpid ${f.grpid} addr ${hex(f.addr)} cookie ${f.cookie}${f.flags & 1 ? ' (PASID valid)' : ''}`),
    };
  },
});

// enum iommufd_page_response_code has SUCCESS and INVALID only; a number writes any code (to see EINVAL).
const CODES = { success: IOMMUFD_PAGE_RESP_SUCCESS, invalid: IOMMUFD_PAGE_RESP_INVALID } as const;

export const faultRespond = stepKind({
  name: 'fault-respond',
  summary: 'write(2) a page response (success, invalid, or a raw code) for a cookie to a fault fd',
  fields: { process: z.string().min(1), fd: z.union([z.string(), z.number().int()]), cookie: numberLike, code: z.union([z.enum(['success', 'invalid']), z.number().int().min(0)]).default('success'), ...commonFields },
  run(s, st) {
    const p = s.process(st.process);
    const cookie = s.num(st.cookie, p);
    const r = api.faultRespond({ proc: p.proc, faultFd: s.fd(p, st.fd), responses: [{ cookie, code: typeof st.code === 'number' ? st.code : CODES[st.code] }] });
    return fromResult(r, `${p.name}: page response for cookie ${cookie}`, () => `${p.name} answers cookie ${cookie} with ${typeof st.code === 'number' ? `code ${st.code}` : st.code.toUpperCase()}`);
  },
});
