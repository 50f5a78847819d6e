// A bench for device models: the default host's machine with every IOMMU unit translating and its queues
// on, helpers that give a function a context (RID_PASID on a second-stage table, more PASIDs on
// first-stage tables), map IOVAs onto fresh frames and let software write/read through those mappings.

import type { PasidEntrySpec } from '../../../src/hw/iommu/device-table.ts';
import { IoPageTable } from '../../../src/hw/iommu/pgtable/builder.ts';
import {
  allocPasidDirectory, allocQueue, allocRootTable, enableTranslation, postCommand, readFaultRecords, readPageRequests, setupQueue,
  writeContext, writePasidEntry,
} from '../../../src/hw/iommu/setup.ts';
import type { PageResponseCode } from '../../../src/hw/iommu/types.ts';
import type { IommuUnit } from '../../../src/hw/iommu/unit.ts';
import { Machine } from '../../../src/hw/machine.ts';
import { PhysicalMemory } from '../../../src/hw/memory/physical-memory.ts';
import { bootHost } from '../../../src/pci/boot.ts';
import { loadBuiltinHost } from '../../../src/pci/builtin-hosts.ts';
import type { PciDev } from '../../../src/pci/dev.ts';
import { PCI_EXT_CAP_ID_PASID, PCI_EXT_CAP_ID_PRI, PCI_PASID_CTRL, PCI_PRI_ALLOC_REQ, PCI_PRI_CTRL } from '../../../src/pci/regs.ts';
import { PCI_PASID_CTRL_ENABLE, PCI_PASID_CTRL_PRIV, PCI_PRI_CTRL_ENABLE } from '../../../src/hw/dma/pri.ts';
import { tableAllocator } from '../../support/hw-bench.ts';

export const PAGE = 4096;
export const pattern = (n: number, seed = 7): Uint8Array => Uint8Array.from({ length: n }, (_, i) => (i * 13 + seed) & 0xff);

export function deviceBench() {
  const m = new Machine(bootHost(loadBuiltinHost('default')), { memory: new PhysicalMemory({ size: 4 * 2 ** 30 }) });
  const mem = m.memory;
  const alloc = tableAllocator(mem, 0x1000_0000, 0x1000_0000);
  const roots = new Map<IommuUnit, number>();
  for (const u of m.units) {
    const root = allocRootTable(alloc);
    enableTranslation(u.port, root);
    for (const q of ['command', 'fault', 'page-request'] as const) setupQueue(u.port, q, allocQueue(alloc, 5), 5);
    roots.set(u.port, root);
  }
  const fn = (bdf: string): PciDev => {
    const d = m.device(bdf);
    if (d === undefined) throw new Error(`no ${bdf}`);
    return d;
  };
  const unit = (d: PciDev): IommuUnit => {
    const u = m.iommuFor(d);
    if (u === null) throw new Error(`no IOMMU for ${d.shortBdf}`);
    return u.port;
  };
  const dirs = new Map<PciDev, number>();
  /** A translate-mode context for `d` (PRI allowed), RID_PASID (entry 0) on a new second-stage table. */
  const context = (d: PciDev): IoPageTable => {
    const dir = allocPasidDirectory(alloc, 4);
    dirs.set(d, dir);
    writeContext(mem, alloc, roots.get(unit(d))!, d.rid, { mode: 'translate', pri: true, pasidEnable: true, pdts: 4, pasidDir: dir });
    const ss = new IoPageTable(mem, alloc, { format: 'second', levels: 4 });
    writePasidEntry(mem, alloc, dir, 0, { pgtt: 'second', did: 1, ssRoot: ss.root });
    return ss;
  };
  let did = 10;
  /** PASID `pasid` of `d` on a new first-stage table. */
  const pasid = (d: PciDev, pasid: number, extra: Partial<PasidEntrySpec> = {}): IoPageTable => {
    const fs = new IoPageTable(mem, alloc, { format: 'first', levels: 4 });
    writePasidEntry(mem, alloc, dirs.get(d)!, pasid, { pgtt: 'first', did: did++, fsRoot: fs.root, ...extra });
    return fs;
  };
  let nextFrame = 0x4000_0000;
  /** Software's view of IOVA -> PA, per table. */
  const pas = new Map<IoPageTable, Map<number, number>>();
  /** Map `bytes` from `iova` on fresh frames in `t`; returns the first frame. */
  const map = (t: IoPageTable, iova: number, bytes: number): number => {
    const first = nextFrame;
    let per = pas.get(t);
    if (per === undefined) pas.set(t, (per = new Map<number, number>()));
    for (let off = 0; off < bytes; off += PAGE) {
      t.map(iova + off, nextFrame, PAGE, { read: true, write: true, user: true });
      per.set((iova + off) / PAGE, nextFrame);
      nextFrame += PAGE;
    }
    return first;
  };
  const pa = (t: IoPageTable, iova: number): number => {
    const frame = pas.get(t)?.get(Math.floor(iova / PAGE));
    if (frame === undefined) throw new Error(`0x${iova.toString(16)} not mapped`);
    return frame + (iova % PAGE);
  };
  /** Software writes/reads memory through its mapping of an IOVA (within one page). */
  const poke = (t: IoPageTable, iova: number, data: Uint8Array): void => { mem.write(pa(t, iova), data); };
  const peek = (t: IoPageTable, iova: number, n: number): Uint8Array => {
    const out = new Uint8Array(n);
    mem.read(pa(t, iova), out);
    return out;
  };
  /** Enable PASID (with privileged mode) and, if asked, PRI with `allocation` credits, as Linux's pci_enable_* would. */
  const enablePasidPri = (d: PciDev, pri: boolean, allocation = 32): void => {
    const pc = d.config.findExtCapability(PCI_EXT_CAP_ID_PASID);
    d.config.write16(pc + PCI_PASID_CTRL, PCI_PASID_CTRL_ENABLE | PCI_PASID_CTRL_PRIV);
    if (!pri) return;
    const pr = d.config.findExtCapability(PCI_EXT_CAP_ID_PRI);
    d.config.write32(pr + PCI_PRI_ALLOC_REQ, allocation);
    d.config.write16(pr + PCI_PRI_CTRL, PCI_PRI_CTRL_ENABLE);
  };
  const respond = (d: PciDev, pasidValue: number, prgi: number, code: PageResponseCode): void => {
    if (!postCommand(unit(d), mem, { op: 'page-response', rid: d.rid, pasid: pasidValue, prgi, code, privateData: null })) throw new Error('queue full');
    m.processCommands();
  };
  return {
    m, mem, fn, unit, context, pasid, map, pa, poke, peek, enablePasidPri, respond,
    faults: (d: PciDev) => readFaultRecords(unit(d), mem),
    pageRequests: (d: PciDev) => readPageRequests(unit(d), mem),
  };
}

export type DeviceBench = ReturnType<typeof deviceBench>;
