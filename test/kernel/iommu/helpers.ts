import { expect } from 'vitest';
import { PCI_PASID_CTRL_ENABLE, PCI_PASID_CTRL_PRIV, PCI_PRI_CTRL_ENABLE } from '../../../src/hw/dma/pri.ts';
import type { IommuCaps } from '../../../src/hw/iommu/types.ts';
import { Machine } from '../../../src/hw/machine.ts';
import { PhysicalMemory } from '../../../src/hw/memory/physical-memory.ts';
import type { Result } from '../../../src/kernel/errno.ts';
import { IommuCore, type IommuCoreOptions } from '../../../src/kernel/iommu/core.ts';
import type { IommuDomain, IoPageTableDomain, PagingDomain } from '../../../src/kernel/iommu/domain.ts';
import type { IommuGroup } from '../../../src/kernel/iommu/group.ts';
import type { IoasisIommuDriver } from '../../../src/kernel/iommu/ioasis-iommu-driver.ts';
import { loadBuiltinHost } from '../../../src/pci/builtin-hosts.ts';
import { bootHost } from '../../../src/pci/boot.ts';
import type { PciDev } from '../../../src/pci/dev.ts';
import { computeGroups } from '../../../src/pci/groups/compute.ts';
import { PCI_EXT_CAP_ID_PASID, PCI_EXT_CAP_ID_PRI, PCI_PASID_CTRL, PCI_PRI_ALLOC_REQ, PCI_PRI_CTRL } from '../../../src/pci/regs.ts';
import type { HostSpec, HostSpecInput } from '../../../src/pci/spec.ts';

export const PAGE = 4096;

export interface BenchOptions extends IommuCoreOptions {
  readonly spec?: HostSpec | HostSpecInput;
  readonly cmdline?: string;
  readonly iommuCaps?: IommuCaps;
}

/** A booted host (the built-in default unless given), its machine, its groups and the IOMMU core over them. */
export function bench(o: BenchOptions = {}) {
  const booted = bootHost(o.spec ?? loadBuiltinHost('default'), o.cmdline);
  const machine = new Machine(booted, { memory: new PhysicalMemory({ size: 8 * 2 ** 30 }), ...(o.iommuCaps === undefined ? {} : { iommuCaps: o.iommuCaps }) });
  const run = computeGroups(booted);
  const core = new IommuCore(machine, run, o);
  const dev = (bdf: string): PciDev => {
    const d = machine.device(bdf);
    if (d === undefined) throw new Error(`no ${bdf}`);
    return d;
  };
  const group = (bdf: string): IommuGroup => {
    const g = core.groupOf(dev(bdf));
    if (g === undefined) throw new Error(`${bdf} has no group`);
    return g;
  };
  const unmanaged = (bdf: string): PagingDomain => value(core.allocPagingDomain(dev(bdf), 'unmanaged'));
  return { booted, machine, run, core, dev, group, unmanaged };
}

export function value<T>(r: Result<T>): T {
  if (!r.ok) throw new Error(`${r.errno}: ${r.reason}`);
  return r.value;
}

export function errno(r: Result<unknown>): string {
  return r.ok ? 'ok' : r.errno;
}

export const pattern = (n: number, seed = 7): Uint8Array => Uint8Array.from({ length: n }, (_, i) => (i * 13 + seed) & 0xff);

/** What Linux's pci_enable_pri()/pci_enable_pasid() write into config space. */
export function enablePriPasid(dev: PciDev, allocation = 32): void {
  const pri = dev.config.findExtCapability(PCI_EXT_CAP_ID_PRI);
  dev.config.write32(pri + PCI_PRI_ALLOC_REQ, allocation);
  dev.config.write16(pri + PCI_PRI_CTRL, PCI_PRI_CTRL_ENABLE);
  const pasid = dev.config.findExtCapability(PCI_EXT_CAP_ID_PASID);
  dev.config.write16(pasid + PCI_PASID_CTRL, PCI_PASID_CTRL_ENABLE | PCI_PASID_CTRL_PRIV);
}

/** The hardware context of every device of `g` agrees with the group's current domain. */
export function expectHwMatches(core: IommuCore, g: IommuGroup): void {
  for (const d of g.devices) for (const rid of core.ridsOf(d)) expect(hwDomainMatches(core, g, rid, g.domain)).toBe(true);
}

export function hwDomainMatches(core: IommuCore, g: IommuGroup, rid: number, domain: IommuDomain): boolean {
  const driver = g.driver as IoasisIommuDriver;
  const hw = driver.readRid(rid);
  switch (domain.type) {
    case 'blocked':
      return g.pasidArray.size === 0 ? hw.contextMode === 'blocked' : hw.contextMode === 'translate' && hw.ridPasidEntry === null;
    case 'identity':
      return hw.contextMode === 'translate' && hw.ridPasidEntry?.pgtt === 4;
    default: {
      const root = (domain as IoPageTableDomain).table.root;
      return hw.contextMode === 'translate' && hw.ridPasidEntry?.pgtt === 2 && hw.ridPasidEntry.ssRoot === root
        && hw.ridPasidEntry.did === driver.didOf(domain);
    }
  }
}
