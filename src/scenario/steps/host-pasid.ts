// The host driver's own use of a PASID (idxd's kernel work queues, in-kernel SVA): it attaches a kernel
// paging domain at (its device's RID, PASID) with iommu_attach_device_pasid, and detaches it again.
// A scenario uses it to see the IOMMU core refuse a second attach of an occupied RID+PASID (seed 000).

import { z } from 'zod';
import type { PagingDomain } from '../../kernel/iommu/domain.ts';
import { commonFields, stepKind } from '../step-kind.ts';
import type { RunState } from '../run-state.ts';
import { fromResult } from './outcome.ts';

/** The kernel domains host drivers attached, per run, by "BDF/PASID". */
const hostDomains = new WeakMap<RunState, Map<string, PagingDomain>>();

/** iommu_domain_free() (the ioasis driver's domains free their page table). */
function freeDomain(d: PagingDomain): void {
  const f = (d as PagingDomain & { free?: () => void }).free;
  if (typeof f === 'function') f.call(d);
}

function domainsOf(s: RunState): Map<string, PagingDomain> {
  let m = hostDomains.get(s);
  if (m === undefined) hostDomains.set(s, (m = new Map<string, PagingDomain>()));
  return m;
}

const fields = { device: z.string().min(1), pasid: z.number().int().min(1).max(0xfffff), ...commonFields };

export const hostPasidAttach = stepKind({
  name: 'host-pasid-attach',
  summary: 'the host driver attaches a kernel DMA domain at a PASID of its device (iommu_attach_device_pasid)',
  fields,
  run(s, st) {
    const dev = s.device(st.device);
    const core = s.kernel.core;
    const d = core.allocPagingDomain(dev, 'dma');
    if (!d.ok) return fromResult(d, `${dev.bdf}: domain_alloc_paging`, () => '');
    const r = core.attachDevicePasid(d.value, dev, st.pasid);
    if (!r.ok) freeDomain(d.value);
    else domainsOf(s).set(`${dev.bdf}/${st.pasid}`, d.value);
    return fromResult(r, `${dev.bdf}: iommu_attach_device_pasid(PASID ${st.pasid})`,
      () => `${dev.bdf}'s host driver attaches a kernel DMA domain at PASID ${st.pasid}`);
  },
});

export const hostPasidDetach = stepKind({
  name: 'host-pasid-detach',
  summary: 'the host driver detaches its kernel domain from a PASID (iommu_detach_device_pasid)',
  fields,
  run(s, st) {
    const dev = s.device(st.device);
    const key = `${dev.bdf}/${st.pasid}`;
    const d = domainsOf(s).get(key);
    if (d === undefined) return { ok: false, errno: 'EINVAL', summary: `${dev.bdf}: no host domain at PASID ${st.pasid}` };
    s.kernel.core.removeDevicePasid(dev, st.pasid);
    freeDomain(d);
    domainsOf(s).delete(key);
    return { ok: true, summary: `${dev.bdf}'s host driver detaches PASID ${st.pasid}` };
  },
});
