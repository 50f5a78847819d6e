// Who owns each PCI function of a Kernel, mechanically: a host (kernel) driver doing DMA through the DMA
// API, or a user (a process, through an iommufd context or a legacy VFIO container) given the function
// through VFIO, iommufd or an IOMMU-backed mdev. PASID-backed mdevs are users at a PASID of their
// parent, not of its RID, and emulated mdevs do no device DMA at all: both are listed separately.

import type { PciDev } from '../../pci/dev.ts';
import type { IommuDomain } from '../iommu/domain.ts';
import { IommufdCtx } from '../iommufd/context.ts';
import { deviceOf } from '../iommufd/device.ts';
import { HwptPaging } from '../iommufd/hw-pagetable.ts';
import { HwptNested } from '../iommufd/hwpt-nested.ts';
import type { Kernel } from '../kernel.ts';
import type { MdevDevice } from '../mdev/types.ts';

export type Owner =
  | { readonly kind: 'host'; readonly driver: string }
  /** `key`: the process of an iommufd context, or the container object (legacy VFIO). */
  | { readonly kind: 'user'; readonly key: object; readonly label: string };

/** One function assigned to one owner, and how. */
export interface Assignment {
  readonly dev: PciDev;
  readonly owner: Owner;
  /** "host driver nvme", "iommufd DEVICE 3", "vfio 0000:16:00.0", "mdev <uuid>". */
  readonly via: string;
}

export interface Ownership {
  /** Functions owned at their requester ID. */
  readonly assignments: readonly Assignment[];
  /** PASID-backed mdevs with their owner (null: no user yet). */
  readonly pasidMdevs: readonly { readonly mdev: MdevDevice; readonly owner: Owner | null }[];
  /** The owner of each user paging domain (from the HWPTs of every iommufd context found). */
  readonly domainOwner: ReadonlyMap<IommuDomain, Owner>;
}

/** The owner an iommufd context stands for: its opening process. */
export function ctxOwner(ctx: IommufdCtx): Owner {
  return { kind: 'user', key: ctx.opener, label: `pid ${ctx.opener.pid}` };
}

export const sameOwner = (a: Owner, b: Owner): boolean =>
  a.kind === 'host' ? b.kind === 'host' && a.driver === b.driver : b.kind === 'user' && a.key === b.key;

export const ownerName = (o: Owner): string => (o.kind === 'host' ? `host driver ${o.driver}` : o.label);

/** Gather the ownership of every function of `kernel`. */
export function ownership(kernel: Kernel): Ownership {
  const assignments: Assignment[] = [];
  const ctxs = new Set<IommufdCtx>();
  const seen = new Set<string>();
  const add = (dev: PciDev, owner: Owner, via: string): void => {
    const k = `${dev.bdf}|${ownerName(owner)}`;
    if (seen.has(k)) return;
    seen.add(k);
    assignments.push({ dev, owner, via });
  };
  // Host drivers that use the DMA API (not driver_managed_dma).
  for (const dev of kernel.drivers.devices) {
    const d = kernel.drivers.boundDriver(dev);
    if (d !== null && !d.driverManagedDma) add(dev, { kind: 'host', driver: d.name }, `host driver ${d.name}`);
  }
  // Groups owned through iommufd: every function bound as a DEVICE of the owner.
  for (const g of kernel.core.groups) {
    if (!(g.owner instanceof IommufdCtx)) continue;
    ctxs.add(g.owner);
    for (const dev of g.devices) {
      const idev = deviceOf(g.owner, dev);
      if (idev !== undefined) add(dev, ctxOwner(g.owner), `iommufd DEVICE ${idev.id}`);
    }
  }
  const pasidMdevs: { mdev: MdevDevice; owner: Owner | null }[] = [];
  for (const m of kernel.mdev.devices()) {
    if (m.user !== null) ctxs.add(m.user);
    const owner = m.user === null ? null : ctxOwner(m.user);
    if (m.parent.driver.kind === 'pasid-backed') pasidMdevs.push({ mdev: m, owner });
    else if (m.parent.driver.kind === 'iommu-backed' && owner !== null) add(m.parent.dev, owner, `mdev ${m.uuid}`);
  }
  // Physical VFIO devices bound to an iommufd or in a group set to a container.
  for (const v of kernel.vfio.deviceList()) {
    if (v.pci === null || kernel.mdev.device(v.name) !== undefined) continue;
    if (v.iommufd !== null) {
      ctxs.add(v.iommufd);
      add(v.pci, ctxOwner(v.iommufd), `vfio ${v.name}`);
    } else if (v.group?.container != null && v.openCount > 0) {
      add(v.pci, { kind: 'user', key: v.group.container, label: `VFIO container of group ${v.group.id}` }, `vfio ${v.name}`);
    }
  }
  const domainOwner = new Map<IommuDomain, Owner>();
  for (const ctx of ctxs) {
    for (const o of ctx.objects.live()) if (o instanceof HwptPaging || o instanceof HwptNested) domainOwner.set(o.domain, ctxOwner(ctx));
  }
  return { assignments, pasidMdevs, domainOwner };
}
