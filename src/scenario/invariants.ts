// Invariants checked after every step of a scenario, each a one-line breach when violated:
//  * DMA confinement (dma-confinement.ts, reported by the DMA steps): every page a user-owned device
//    reached through the IOMMU is a pinned frame;
//  * pins balanced: every long-term pin of a user frame is charged to some process's mm->pinned_vm
//    (iommufd charges every pin-once page there, whatever its accounting mode), and no more;
//  * no group used by two owners: a group owned for user-space DMA has no device bound to a host driver
//    that uses the kernel's DMA API (only driver_managed_dma drivers, or none);
//  * isolation (kernel/isolation): no IOMMU group split between owners, no requester ID or PASID entry
//    pointing at another owner's domain, no untranslated peer-to-peer route into another owner's BAR.

import { checkIsolation } from '../kernel/isolation/check.ts';
import type { Kernel } from '../kernel/kernel.ts';
import { VfioContainer } from '../kernel/vfio/container.ts';
import { Type1Iommu } from '../kernel/vfio/type1/iommu.ts';

/** Pins VFIO type1 containers hold (charged to mm->locked_vm, not pinned_vm): each set container once. */
export function type1Pins(k: Kernel): number {
  const seen = new Set<object>();
  let n = 0;
  for (const g of k.vfio.groupList()) {
    const c = g.container;
    if (!(c instanceof VfioContainer) || seen.has(c)) continue;
    seen.add(c);
    const b = c.backend;
    if (!(b instanceof Type1Iommu)) continue;
    for (const d of b.dmas) {
      n += d.iommuPfns?.length ?? 0;
      for (const e of d.external.values()) n += e.refs;
    }
  }
  return n;
}

export interface InvariantOptions {
  /** Pins held by something that charges locked_vm only (VFIO type1), counted separately. */
  readonly extraPins?: () => number;
}

export function checkInvariants(k: Kernel, processes: Iterable<{ readonly proc: { readonly mm: { readonly pinnedVm: number } } }>, opts: InvariantOptions & { readonly isolation?: boolean } = {}): string[] {
  const out: string[] = [];
  let pinned = 0;
  k.frames.forEachAllocated((pfn) => { pinned += k.memory.pinCount(pfn); });
  let charged = opts.extraPins?.() ?? 0;
  for (const p of processes) charged += p.proc.mm.pinnedVm;
  if (pinned !== charged) out.push(`pins unbalanced: ${pinned} user frame pin(s) held, ${charged} charged to processes`);
  for (const g of k.core.groups) {
    if (g.owner === null) continue;
    for (const dev of g.devices) {
      // Hot-plugged devices (the selftest's mock bus) are not PCI functions of the host: no driver core.
      if (k.core.isHotplugged(dev)) continue;
      const drv = k.drivers.boundDriver(dev);
      if (drv !== null && !drv.driverManagedDma) {
        out.push(`group ${g.id} is owned for user-space DMA but ${dev.bdf} is bound to host driver ${drv.name}`);
      }
    }
  }
  if (opts.isolation !== false) for (const b of checkIsolation(k).breaches) out.push(`isolation: ${b.reason}`);
  return out;
}
