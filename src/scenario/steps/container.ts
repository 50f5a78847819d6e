// Legacy VFIO container steps (/dev/vfio/vfio with the type1 backend, or the same ioctls on an iommufd).

import { z } from 'zod';
import * as c from '../../uapi/vfio-container-api.ts';
import { VFIO_TYPE1_IOMMU, VFIO_TYPE1v2_IOMMU } from '../../uapi/vfio-consts.ts';
import { commonFields, stepKind } from '../step-kind.ts';
import type { RunState, ScenarioProcess } from '../run-state.ts';
import { formatSize, hex, numberLike } from '../values.ts';
import { fromResult } from './outcome.ts';

const onFd = { process: z.string().min(1), fd: z.union([z.string(), z.number().int()]).default('container') };

function args(s: RunState, st: { process: string; fd: string | number }): { p: ScenarioProcess; a: c.ContainerArgs } {
  const p = s.process(st.process);
  return { p, a: { proc: p.proc, fd: s.fd(p, st.fd) } };
}

export const setIommu = stepKind({
  name: 'set-iommu',
  summary: 'VFIO_SET_IOMMU on a container: type1v2 (the default) or type1 (v1 unmap semantics)',
  fields: { ...onFd, type: z.enum(['type1v2', 'type1']).default('type1v2'), ...commonFields },
  run(s, st) {
    const { p, a } = args(s, st);
    const type = st.type === 'type1' ? VFIO_TYPE1_IOMMU : VFIO_TYPE1v2_IOMMU;
    return fromResult(c.vfioSetIommu({ ...a, type }), `${p.name}: VFIO_SET_IOMMU(${st.type})`, () => `${p.name}: VFIO_SET_IOMMU(${st.type.toUpperCase()})`);
  },
});

export const mapDma = stepKind({
  name: 'map-dma',
  summary: 'VFIO_IOMMU_MAP_DMA of user memory (vaddr: a region name or address) at an IOVA',
  fields: { ...onFd, vaddr: numberLike, iova: numberLike, size: numberLike, write: z.boolean().default(true), ...commonFields },
  run(s, st) {
    const { p, a } = args(s, st);
    const size = s.value(st.size, p);
    const iova = s.value(st.iova, p);
    const vaddr = s.value(st.vaddr, p);
    return fromResult(c.vfioIommuMapDma({ ...a, vaddr, iova, size, read: true, write: st.write }), `${p.name}: VFIO_IOMMU_MAP_DMA`,
      () => `${p.name}: VFIO_IOMMU_MAP_DMA ${formatSize(size)} of ${hex(vaddr)} at IOVA ${hex(iova)}`);
  },
});

export const unmapDma = stepKind({
  name: 'unmap-dma',
  summary: 'VFIO_IOMMU_UNMAP_DMA of [iova, iova+size), or everything with all: true',
  fields: { ...onFd, iova: numberLike.optional(), size: numberLike.optional(), all: z.boolean().default(false), ...commonFields },
  run(s, st) {
    const { p, a } = args(s, st);
    const r = c.vfioIommuUnmapDma({
      ...a, all: st.all, ...(st.iova !== undefined ? { iova: s.value(st.iova, p) } : {}), ...(st.size !== undefined ? { size: s.value(st.size, p) } : {}),
    });
    return fromResult(r, `${p.name}: VFIO_IOMMU_UNMAP_DMA`, (n) => `${p.name}: VFIO_IOMMU_UNMAP_DMA → ${formatSize(n)} unmapped`, (n) => ({ value: n }));
  },
});
