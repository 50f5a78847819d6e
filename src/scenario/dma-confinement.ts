// The DMA-confinement invariant, checked on every transfer a scenario makes a user-owned device do: each
// page it reached through the IOMMU must be a frame some pin holds (user memory the owner mapped with
// IOAS_MAP or MAP_DMA, pinned for as long as it is mapped). A translated DMA reaching any other frame (a
// stale IOTLB entry after an unmap, a domain that maps memory nobody pinned) is reported. Pins of a large
// folio are counted on its head frame (FrameAllocator.pinCount looks there). A nested domain is checked
// through both stages: the guest table picks the GPA, the parent's pinned memory must hold it.

import type { DmaResult } from '../hw/dma/types.ts';
import { NestedDomain } from '../kernel/iommu/nested-domain.ts';
import type { Kernel } from '../kernel/kernel.ts';
import type { PciDev } from '../pci/dev.ts';

const PAGE = 4096;

export function dmaConfinementBreaches(k: Kernel, dev: PciDev, r: DmaResult, pasid?: number): string[] {
  if (r.bytesDone === 0 || r.route.kind !== 'upstream') return [];
  const group = k.core.groupOf(dev);
  // Host-owned functions use the kernel's own DMA domain; only user-space DMA is confined to pins.
  if (group === undefined || (group.owner === null && pasid === undefined)) return [];
  const domain = pasid === undefined ? k.core.domainOf(dev) : k.core.domainAtPasid(dev, pasid);
  // A nested domain translates through the guest's table and then its parent; other kinds map nothing.
  const target = domain instanceof NestedDomain ? domain : domain !== null && domain.isPaging() ? domain : null;
  if (target === null) return [];
  const out: string[] = [];
  const first = Math.floor(r.address / PAGE);
  const last = Math.floor((r.address + r.bytesDone - 1) / PAGE);
  for (let page = first; page <= last; page++) {
    const pa = target.iovaToPhys(page * PAGE);
    if (pa === null) continue; // translated through a stale IOTLB entry: the IOMMU's own concern, reported as a fault elsewhere
    const pfn = Math.floor(pa / PAGE);
    if (!k.frames.owns(pfn) || k.frames.pinCount(pfn) === 0) {
      out.push(`DMA by ${dev.shortBdf} at IOVA 0x${(page * PAGE).toString(16)} reached frame 0x${pfn.toString(16)}, which no pin holds: outside what user space mapped`);
    }
  }
  return out;
}
