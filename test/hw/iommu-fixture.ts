// A test bench for the IOMMU unit: memory, a table allocator, the unit with translation enabled and its
// three queues on, a device sink that records page responses, and short helpers over setup.ts.

import type { ContextEntrySpec, PasidEntrySpec } from '../../src/hw/iommu/device-table.ts';
import type { Command } from '../../src/hw/iommu/commands.ts';
import { IoPageTable, type PageTableOptions } from '../../src/hw/iommu/pgtable/builder.ts';
import {
  allocPasidDirectory, allocQueue, allocRootTable, enableTranslation, postCommand, readFaultRecords, readPageRequests,
  setupQueue, writeContext, writePasidEntry,
} from '../../src/hw/iommu/setup.ts';
import { DEFAULT_IOMMU_CAPS, NO_PASID, newTranslationResult, type IommuCaps, type PageRequestMessage, type PageResponseMessage, type TranslationRequest, type TranslationResult } from '../../src/hw/iommu/types.ts';
import { IommuUnit, type IommuUnitOptions } from '../../src/hw/iommu/unit.ts';
import { newMemory, tableAllocator } from '../support/hw-bench.ts';

export const KiB = 1024;
export const MiB = 2 ** 20;
export const GiB = 2 ** 30;

export interface BenchOptions extends Omit<IommuUnitOptions, 'sendToDevice'> {
  readonly caps?: Partial<IommuCaps>;
  /** log2 of each queue's entries (default 6). */
  readonly cqLog2?: number;
  readonly fqLog2?: number;
  readonly pqLog2?: number;
}

export interface ReqOptions { pasid?: number; write?: boolean; exec?: boolean; priv?: boolean; ats?: boolean }

export function rid(bus: number, dev: number, fn: number): number { return (bus << 8) | (dev << 3) | fn; }

export function iommuBench(opts: BenchOptions = {}) {
  const mem = newMemory();
  const alloc = tableAllocator(mem);
  const caps: IommuCaps = { ...DEFAULT_IOMMU_CAPS, ...opts.caps };
  const sent: PageResponseMessage[] = [];
  const unit = new IommuUnit(mem, caps, { ...opts, sendToDevice: (m) => sent.push(m) });
  const root = allocRootTable(alloc);
  enableTranslation(unit, root);
  const queues = {
    command: allocQueue(alloc, opts.cqLog2 ?? 6),
    fault: allocQueue(alloc, opts.fqLog2 ?? 6),
    pageRequest: allocQueue(alloc, opts.pqLog2 ?? 6),
  };
  setupQueue(unit, 'command', queues.command, opts.cqLog2 ?? 6);
  setupQueue(unit, 'fault', queues.fault, opts.fqLog2 ?? 6);
  setupQueue(unit, 'page-request', queues.pageRequest, opts.pqLog2 ?? 6);
  const out: TranslationResult = newTranslationResult();
  const dirs = new Map<number, number>();

  const bench = {
    mem, alloc, caps, unit, root, sent, queues, out,
    /** Write a context for `r` (translate mode by default, PASID directory allocated with 2^pdts entries). */
    context(r: number, spec: Partial<ContextEntrySpec> = {}): number {
      const pdts = spec.pdts ?? 2;
      let dir = dirs.get(r);
      if (dir === undefined) { dir = allocPasidDirectory(alloc, pdts); dirs.set(r, dir); }
      return writeContext(mem, alloc, root, r, { mode: 'translate', pasidEnable: true, pdts, pasidDir: dir, ...spec });
    },
    pasidDir(r: number): number { return dirs.get(r) ?? -1; },
    /** Write the PASID entry `pasid` of `r`'s directory. */
    pasid(r: number, pasid: number, spec: PasidEntrySpec): number {
      const dir = dirs.get(r);
      if (dir === undefined) throw new Error(`no context for ${r}`);
      return writePasidEntry(mem, alloc, dir, pasid, spec);
    },
    table(format: 'first' | 'second', extra: Partial<PageTableOptions> = {}): IoPageTable {
      return new IoPageTable(mem, alloc, { format, levels: 4, pageSize2M: true, pageSize1G: true, ...extra });
    },
    req(r: number, iova: number, o: ReqOptions = {}): TranslationRequest {
      return { rid: r, pasid: o.pasid ?? NO_PASID, iova, write: o.write ?? false, exec: o.exec ?? false, priv: o.priv ?? false, ats: o.ats ?? false };
    },
    /** Translate and return a copy of the result. */
    translate(r: number, iova: number, o: ReqOptions = {}): TranslationResult {
      unit.translate(bench.req(r, iova, o), out);
      return { ...out };
    },
    /** Post the commands and process the queue; returns the count processed. */
    submit(...cmds: Command[]): number {
      for (const c of cmds) if (!postCommand(unit, mem, c)) throw new Error('command queue full');
      return unit.processCommands();
    },
    faults: () => readFaultRecords(unit, mem),
    pageRequests: () => readPageRequests(unit, mem),
    pageRequest(m: Partial<PageRequestMessage> & { rid: number }): void {
      unit.pageRequest({ pasid: NO_PASID, address: 0, read: true, write: false, exec: false, priv: false, lastInGroup: true, prgi: 0, privateData: null, ...m });
    },
  };
  return bench;
}

export type IommuBench = ReturnType<typeof iommuBench>;
