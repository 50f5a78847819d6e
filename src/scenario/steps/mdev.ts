// Mediated-device steps: make a function an mdev parent of one of the three kinds, create mdevs by UUID,
// and have an mdev's device do DMA (CPU copies through pinned pages for an emulated mdev; PASID-tagged
// DMA on the parent for a PASID-backed one).

import { z } from 'zod';
import { commonFields, stepKind } from '../step-kind.ts';
import { StepError } from '../run-state.ts';
import { hex, numberLike } from '../values.ts';
import { fromResult } from './outcome.ts';
import { preview } from './process.ts';
import { dmaConfinementBreaches } from '../dma-confinement.ts';

export const mdevParent = stepKind({
  name: 'mdev-parent',
  summary: 'make a function an mdev parent: emulated (vgpu-lite), iommu-backed (vfio-mdev-pci, seed 001) or pasid-backed (Scalable IOV, seed 003)',
  fields: { device: z.string().min(1), kind: z.enum(['emulated', 'iommu-backed', 'pasid-backed']), ...commonFields },
  run(s, st) {
    const dev = s.device(st.device);
    const k = s.kernel;
    switch (st.kind) {
      case 'emulated': {
        const drv = s.emulatedDriver();
        return fromResult(k.mdev.registerParent(dev, drv, drv.types()), `${dev.bdf}: mdev parent`, () => `${dev.bdf} registers as an emulated mdev parent (types: ${drv.types().map((t) => t.name).join(', ')})`);
      }
      case 'iommu-backed': {
        const drv = s.iommuBackedDriver();
        const cur = k.drivers.boundDriver(dev);
        if (cur !== null) {
          const u = k.drivers.unbind(dev);
          if (!u.ok) return fromResult(u, `unbind ${dev.bdf}`, () => '');
        }
        const o = k.drivers.setDriverOverride(dev, drv.name);
        if (!o.ok) return fromResult(o, `driver_override ${dev.bdf}`, () => '');
        return fromResult(k.drivers.bind(dev, drv.name), `bind ${dev.bdf} to ${drv.name}`,
          () => `${dev.bdf} bound to vfio-mdev-pci (mdev group policy: ${drv.policy})`);
      }
      case 'pasid-backed': {
        const drv = s.pasidBackedDriver();
        return fromResult(drv.registerParent(dev), `${dev.bdf}: PASID-backed parent`, () => `${dev.bdf} stays on ${k.drivers.boundDriver(dev)?.name ?? 'no driver'} and offers PASID-backed work-queue mdevs`);
      }
    }
  },
});

export const mdevCreate = stepKind({
  name: 'mdev-create',
  summary: 'echo UUID > mdev_supported_types/TYPE/create; `as` stores a PASID-backed mdev\'s default PASID',
  fields: { device: z.string().min(1), type: z.string().min(1), uuid: z.string().min(1), as: z.string().optional(), ...commonFields },
  run(s, st) {
    const dev = s.device(st.device);
    // `as` and expect.value: the default PASID of a PASID-backed mdev.
    return fromResult(s.kernel.mdev.create(dev, st.type, st.uuid), `create mdev ${st.uuid}`, (m) => {
      if (m.pasid !== null) s.set(st.as, m.pasid);
      return `mdev ${m.uuid} (${st.type}) created on ${dev.bdf}${m.vdev !== null ? `: /dev/vfio/devices/vfio${m.vdev.index}, group ${m.vdev.group?.id ?? '?'}` : ''}${m.pasid !== null ? `, default PASID ${m.pasid}` : ''}`;
    }, (m) => (m.pasid !== null ? { value: BigInt(m.pasid) } : {}));
  },
});

export const mdevDma = stepKind({
  name: 'mdev-dma',
  summary: 'an mdev\'s device writes at an IOVA of its user\'s address space (and reads it back with read:)',
  fields: {
    mdev: z.string().min(1), iova: numberLike,
    write: z.union([z.string(), z.array(z.number().int().min(0).max(255))]),
    ...commonFields,
  },
  run(s, st) {
    const m = s.mdev(st.mdev);
    const data = typeof st.write === 'string' ? new TextEncoder().encode(st.write) : Uint8Array.from(st.write);
    const iova = s.value(st.iova);
    const kind = m.type.parent.driver;
    if (kind === s.emulatedDriver()) {
      const r = s.emulatedDriver().blit(m, iova, data);
      return fromResult(r, `mdev ${m.uuid}: blit at ${hex(iova)}`, () => `mdev ${m.uuid} (emulated) pins and writes ${preview(data)} at IOVA ${hex(iova)} by CPU`);
    }
    if (m.pasid !== null) {
      const r = s.pasidBackedDriver().dma(m, { op: 'write', address: Number(iova), length: data.length, data });
      s.kernel.core.poll();
      const confined = dmaConfinementBreaches(s.kernel, m.parent.dev, r, m.pasid);
      return {
        ok: r.status === 'ok', status: r.status,
        ...(confined.length > 0 ? { breaches: confined } : {}),
        summary: `mdev ${m.uuid} DMA write at ${hex(iova)} tagged PASID ${m.pasid}: ${r.status} (${r.why})`,
        ...(r.fault !== null ? { details: [`IOMMU fault: ${r.fault.reasonName} at ${hex(r.fault.iova)}`] } : {}),
      };
    }
    throw new StepError(`mdev ${m.uuid} is IOMMU-backed: use a dma step on its parent function ${m.parent.dev.bdf}`);
  },
});
