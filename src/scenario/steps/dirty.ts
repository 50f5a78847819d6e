// Dirty-tracking steps (uAPI reference §10): IOMMU_HWPT_SET_DIRTY_TRACKING and IOMMU_HWPT_GET_DIRTY_BITMAP
// through the typed API, i.e. the byte-level dispatch. The bits come from the D bits the simulated IOMMU
// sets when a device writes through a HWPT with tracking on.

import { z } from 'zod';
import * as api from '../../uapi/api.ts';
import { commonFields, stepKind } from '../step-kind.ts';
import type { RunState, ScenarioProcess } from '../run-state.ts';
import { formatSize, hex, numberLike } from '../values.ts';
import { failed, fromResult } from './outcome.ts';

const onFd = { process: z.string().min(1), fd: z.union([z.string(), z.number().int()]).default('iommufd') };

function args(s: RunState, st: { process: string; fd: string | number }): { p: ScenarioProcess; a: api.FdArgs } {
  const p = s.process(st.process);
  return { p, a: { proc: p.proc, fd: s.fd(p, st.fd) } };
}

export const dirtyTracking = stepKind({
  name: 'dirty-tracking',
  summary: 'IOMMU_HWPT_SET_DIRTY_TRACKING: turn dirty tracking of a HWPT on (clearing old dirty bits) or off',
  fields: { ...onFd, hwpt: numberLike, enabled: z.boolean().default(true), ...commonFields },
  run(s, st) {
    const { p, a } = args(s, st);
    const hwptId = s.num(st.hwpt, p);
    const what = `${p.name}: IOMMU_HWPT_SET_DIRTY_TRACKING ${st.enabled ? 'on' : 'off'} for HWPT ${hwptId}`;
    return fromResult(api.setDirtyTracking({ ...a, hwptId, enabled: st.enabled }), what, () => what);
  },
});

export const dirtyRead = stepKind({
  name: 'dirty-read',
  summary: 'IOMMU_HWPT_GET_DIRTY_BITMAP over [iova, iova+length) at pageSize granules (NO_CLEAR with noClear); `dirty` lists the granule IOVAs expected dirty, exactly; the value is how many are',
  fields: {
    ...onFd, hwpt: numberLike, iova: numberLike, length: numberLike, pageSize: numberLike.default(4096),
    noClear: z.boolean().default(false), dirty: z.array(numberLike).optional(), ...commonFields,
  },
  run(s, st) {
    const { p, a } = args(s, st);
    const iova = s.value(st.iova, p);
    const length = s.value(st.length, p);
    const pageSize = s.value(st.pageSize, p);
    const what = `${p.name}: IOMMU_HWPT_GET_DIRTY_BITMAP of ${formatSize(length)} at ${hex(iova)}`;
    const r = api.getDirtyBitmap({ ...a, hwptId: s.num(st.hwpt, p), iova, length, pageSize, noClear: st.noClear });
    if (!r.ok) return failed(r, what);
    const got: bigint[] = [];
    const bits = length / pageSize;
    r.value.forEach((byte, i) => {
      for (let k = 0; k < 8; k++) {
        const bit = BigInt(i * 8 + k);
        if ((byte & (1 << k)) !== 0 && bit < bits) got.push(iova + bit * pageSize);
      }
    });
    const summary = `${what}${st.noClear ? ' (NO_CLEAR)' : ''} → ${got.length} dirty ${formatSize(pageSize)} granule${got.length === 1 ? '' : 's'}`;
    const details = got.length === 0 ? [] : [got.map((g) => hex(g)).join(' ')];
    if (st.dirty !== undefined) {
      const want = new Set(st.dirty.map((d) => s.value(d, p)));
      const missing = [...want].filter((w) => !got.includes(w));
      const extra = got.filter((g) => !want.has(g));
      if (missing.length > 0 || extra.length > 0) {
        return {
          ok: false, value: BigInt(got.length), details,
          summary: `${summary}; expected dirty ${[...want].map((w) => hex(w)).join(' ') || 'none'}${missing.length > 0 ? `, missing ${missing.map((m) => hex(m)).join(' ')}` : ''}${extra.length > 0 ? `, not expected ${extra.map((m) => hex(m)).join(' ')}` : ''}`,
        };
      }
    }
    return { ok: true, value: BigInt(got.length), summary, details };
  },
});
