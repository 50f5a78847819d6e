// More iommufd figures, all through the byte-level dispatch (the typed API in src/uapi/api.ts encodes the
// structs into the process's memory and calls dispatch()): a 64 GiB IOAS_MAP, the IO page fault round
// trip through a FAULT object's fd, and metadata per mapped page with the domain's page tables counted.
import { Machine } from '../src/hw/machine.ts';
import { PhysicalMemory } from '../src/hw/memory/physical-memory.ts';
import type { DmaResult } from '../src/hw/dma/types.ts';
import { PCI_PASID_CTRL_ENABLE, PCI_PASID_CTRL_PRIV, PCI_PRI_CTRL_ENABLE } from '../src/hw/dma/pri.ts';
import type { Result } from '../src/kernel/errno.ts';
import { IoPageTableDomain } from '../src/kernel/iommu/domain.ts';
import { IommuCore } from '../src/kernel/iommu/core.ts';
import type { IommufdCtx } from '../src/kernel/iommufd/context.ts';
import { iommufdDeviceAttach, iommufdDeviceBind } from '../src/kernel/iommufd/device.ts';
import type { Ioas } from '../src/kernel/iommufd/ioas.ts';
import { FrameAllocator } from '../src/kernel/mm/frame-allocator.ts';
import { MADV_HUGEPAGE, MAP_ANONYMOUS, MAP_PRIVATE, PROT_READ, PROT_WRITE } from '../src/kernel/mm/mman.ts';
import type { Process } from '../src/kernel/process/process.ts';
import { ProcessTable } from '../src/kernel/process/process-table.ts';
import { loadBuiltinHost } from '../src/pci/builtin-hosts.ts';
import { bootHost } from '../src/pci/boot.ts';
import { computeGroups } from '../src/pci/groups/compute.ts';
import { PCI_EXT_CAP_ID_PASID, PCI_EXT_CAP_ID_PRI, PCI_PASID_CTRL, PCI_PRI_ALLOC_REQ, PCI_PRI_CTRL } from '../src/pci/regs.ts';
import * as api from '../src/uapi/api.ts';
import { IOMMUFD_PAGE_RESP_SUCCESS } from '../src/uapi/iommufd-consts.ts';
import type { BenchDef } from './harness.ts';

const PAGE = 4096;
const MiB = 2 ** 20;
const GiB = 2 ** 30;
const U64_MAX = (1n << 64n) - 1n;

function must<T>(r: Result<T>): T {
  if (!r.ok) throw new Error(`${r.errno}: ${r.reason}`);
  return r.value;
}

/** A default-host machine of `memSize` bytes, its IOMMU core and a root process over `frames` frames. */
function machine(memSize: number, frames: number) {
  const booted = bootHost(loadBuiltinHost('default'));
  const memory = new PhysicalMemory({ size: memSize });
  const m = new Machine(booted, { memory });
  const core = new IommuCore(m, computeGroups(booted));
  const alloc = new FrameAllocator(memory, { firstPfn: 16, count: frames });
  const proc = new ProcessTable({ frames: alloc }).spawn();
  const fd = must(api.openIommufd({ proc, core }));
  const ctx = must(proc.fds.get(fd)).file as IommufdCtx;
  const dev = (bdf: string) => {
    const d = m.device(bdf);
    if (d === undefined) throw new Error(`no ${bdf}`);
    return d;
  };
  return { memory, machine: m, core, proc, fd, ctx, dev };
}

/** An anonymous mapping of `size` bytes starting on an `align` boundary. */
function alignedAnon(proc: Process, size: number, align: number): number {
  const raw = must(proc.mmap(0, size + align, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  return Math.ceil(raw / align) * align;
}

/**
 * The IO page fault benches' setup: the default host's DSA with PRI (an Outstanding Page Request
 * Allocation of IOPF_DEPTH) and PASID enabled, bound to an iommufd, attached to a HWPT of an empty IOAS
 * with a FAULT object, and a user buffer of IOPF_PAGES pages to map from.
 */
function iopfFixture() {
  const s = machine(8 * GiB, 2 * IOPF_PAGES + 4096);
  const dsa = s.dev('6a:01.0');
  const pri = dsa.config.findExtCapability(PCI_EXT_CAP_ID_PRI);
  dsa.config.write32(pri + PCI_PRI_ALLOC_REQ, IOPF_DEPTH);
  dsa.config.write16(pri + PCI_PRI_CTRL, PCI_PRI_CTRL_ENABLE);
  const pasidCap = dsa.config.findExtCapability(PCI_EXT_CAP_ID_PASID);
  dsa.config.write16(pasidCap + PCI_PASID_CTRL, PCI_PASID_CTRL_ENABLE | PCI_PASID_CTRL_PRIV);
  const idev = must(iommufdDeviceBind(s.ctx, dsa, { file: must(s.proc.fds.get(s.fd)) }));
  const ioasId = must(api.ioasAlloc(s));
  const { faultId, faultFd } = must(api.faultQueueAlloc(s));
  const hwpt = must(api.hwptAlloc({ ...s, devId: idev.id, ptId: ioasId, faultId, flags: 0 }));
  must(iommufdDeviceAttach(idev, hwpt));
  const buf = must(s.proc.mmap(0, IOPF_PAGES * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  // The call arguments name their fields (no spread of the whole setup object per call).
  return { s, proc: s.proc, fd: s.fd, ioasId, faultFd, dsa, buf, BASE: 0x4000_0000, data: new Uint8Array(8).fill(0x5a) };
}

const SIZE_64G = 64 * GiB;
const META_SIZE = 256 * MiB;
const IOPF_PAGES = 4096;
/** Page requests in flight in iopf-throughput: the DSA's Outstanding Page Request Allocation. */
const IOPF_DEPTH = 32;

export const benches: BenchDef[] = [
  {
    name: 'map-64g-2m',
    unit: 'ms',
    description: 'CPU milliseconds (process.cpuUsage(), as the machine is shared) for one IOMMU_IOAS_MAP of 64 GiB of 2 MiB-aligned anonymous user memory advised MADV_HUGEPAGE as QEMU does for guest RAM, with one paging domain attached, through the byte-level dispatch. Each sample faults the THPs in as it pins them (a fresh mapping each time; the frames of the previous one are free again), pins a folio at a time, stores one PFN run and maps 2 MiB leaves; IOAS_UNMAP between samples is not timed; target < 50',
    samples: 5,
    setup: () => {
      // 64 GiB of frames for the process plus room for the page tables; PhysicalMemory is sparse.
      const s = machine(SIZE_64G + 4 * GiB, SIZE_64G / PAGE + 4096);
      const ioasId = must(api.ioasAlloc(s));
      must(must(s.ctx.objects.get<Ioas>(ioasId, 'ioas')).addDomain(must(s.core.allocPagingDomain(s.dev('39:00.0'), 'unmanaged')), {}));
      // QEMU advises its guest RAM blocks MADV_HUGEPAGE (qemu_madvise(QEMU_MADV_HUGEPAGE)); with THP in
      // 'always' (the default) it changes nothing, with 'madvise' it is what enables THP.
      const fresh = (): { raw: number; va: number } => {
        const raw = must(s.proc.mmap(0, SIZE_64G + 2 * MiB, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
        const va = Math.ceil(raw / (2 * MiB)) * 2 * MiB;
        must(s.proc.mm.madvise(va, SIZE_64G, MADV_HUGEPAGE));
        return { raw, va };
      };
      let buf = fresh();
      return () => {
        const t0 = process.cpuUsage();
        must(api.ioasMap({ ...s, ioasId, userVa: buf.va, length: SIZE_64G, iova: GiB }));
        const t = process.cpuUsage(t0);
        // Untimed: unmap, and give the memory back so that the next sample faults it in again.
        must(api.ioasUnmap({ ...s, ioasId, iova: 0, length: U64_MAX }));
        must(s.proc.mm.munmap(buf.raw, SIZE_64G + 2 * MiB));
        buf = fresh();
        return (t.user + t.system) / 1000;
      };
    },
  },
  {
    name: 'iopf-roundtrip',
    unit: 'faults/s',
    description: `IO page requests per second from device fault to retry: the default host's DSA (PRI) DMAs one unmapped page on a HWPT with a FAULT object; the handler reads the record from the fault fd, IOAS_MAPs a user page at the faulting IOVA and writes SUCCESS; the device retries and completes (${IOPF_PAGES} faults per sample, all through dispatch and the fault fd; the loop names each call's arguments rather than spreading the setup object into them); target >= 200,000`,
    // The first samples run while V8 still tiers the path up (a fraction of the final rate).
    warmup: 3,
    samples: 7,
    setup: () => {
      const { s, proc, fd, ioasId, faultFd, dsa, buf, BASE, data } = iopfFixture();
      // One fault, device to retry, as a function of its own: a handler runs per event, and V8 compiles
      // it as such rather than as an on-stack replacement of the sampling loop (whose untimed tail
      // deoptimizes it every sample, leaving the loop's code to chance).
      const oneFault = (i: number): void => {
        const r = s.machine.dma(dsa, { op: 'write', address: BASE + i * PAGE, length: data.length, data });
        s.core.poll();
        const recs = must(api.faultRead({ proc, faultFd, max: 4 }));
        for (const rec of recs) {
          must(api.ioasMap({ proc, fd, ioasId, userVa: buf + i * PAGE, length: PAGE, iova: rec.addr }));
        }
        const cookie = recs[0]?.cookie;
        if (cookie === undefined) throw new Error(`no page request for DMA ${i} (${r.status})`);
        must(api.faultRespond({ proc, faultFd, responses: [{ cookie, code: IOMMUFD_PAGE_RESP_SUCCESS }] }));
        if (r.status !== 'ok') throw new Error(`DMA ${i} ended ${r.status}`);
      };
      return () => {
        const t0 = process.hrtime.bigint();
        for (let i = 0; i < IOPF_PAGES; i++) oneFault(i);
        const s_ = Number(process.hrtime.bigint() - t0) / 1e9;
        must(api.ioasUnmap({ ...s, ioasId, iova: 0, length: U64_MAX }));
        return IOPF_PAGES / s_;
      };
    },
  },
  {
    name: 'iopf-throughput',
    unit: 'faults/s',
    description: `IO page requests per second with ${IOPF_DEPTH} in flight, as a PRI device with that Outstanding Page Request Allocation issues them: the DSA starts ${IOPF_DEPTH} transfers to unmapped pages (each a one-page page request group), the handler polls once, reads the ${IOPF_DEPTH} records with one read of the fault fd, IOAS_MAPs each page (one ioctl per fault) and answers all of them with one write; every device retry completes (${IOPF_PAGES} faults per sample, all through dispatch and the fault fd). iopf-roundtrip is the same with one request in flight`,
    // The first samples run while V8 still tiers the path up (a fraction of the final rate).
    warmup: 3,
    samples: 7,
    setup: () => {
      const f = iopfFixture();
      const { s, proc, fd, ioasId, faultFd, dsa, buf, BASE, data } = f;
      const results: DmaResult[] = [];
      const responses: { cookie: number; code: number }[] = [];
      // One batch as a function of its own (see iopf-roundtrip).
      const oneBatch = (i: number): void => {
        results.length = 0;
        for (let k = 0; k < IOPF_DEPTH; k++) results.push(s.machine.dma(dsa, { op: 'write', address: BASE + (i + k) * PAGE, length: data.length, data }));
        s.core.poll();
        const recs = must(api.faultRead({ proc, faultFd, max: IOPF_DEPTH }));
        if (recs.length !== IOPF_DEPTH) throw new Error(`read ${recs.length} page requests, expected ${IOPF_DEPTH}`);
        responses.length = 0;
        for (const rec of recs) {
          must(api.ioasMap({ proc, fd, ioasId, userVa: buf + Number(rec.addr) - BASE, length: PAGE, iova: rec.addr }));
          responses.push({ cookie: rec.cookie, code: IOMMUFD_PAGE_RESP_SUCCESS });
        }
        must(api.faultRespond({ proc, faultFd, responses }));
        for (const r of results) if (r.status !== 'ok') throw new Error(`DMA ${r.address} ended ${r.status}: ${r.why}`);
      };
      return () => {
        const t0 = process.hrtime.bigint();
        for (let i = 0; i < IOPF_PAGES; i += IOPF_DEPTH) oneBatch(i);
        const s_ = Number(process.hrtime.bigint() - t0) / 1e9;
        must(api.ioasUnmap({ proc, fd, ioasId, iova: 0, length: U64_MAX }));
        return IOPF_PAGES / s_;
      };
    },
  },
  {
    name: 'meta-per-4k-with-tables',
    unit: 'B/page',
    description: 'bytes of metadata per mapped 4 KiB page for one 256 MiB IOAS_MAP (through dispatch) with one paging domain attached: the IoptPages PFN runs and user-count segments (THP at its default, always), the area index, and the domain\'s second-stage page-table pages (tableBytes); target <= 16',
    samples: 1,
    setup: () => {
      const s = machine(8 * GiB, META_SIZE / PAGE + 4096);
      const ioasId = must(api.ioasAlloc(s));
      const ioas = must(s.ctx.objects.get<Ioas>(ioasId, 'ioas'));
      const domain = must(s.core.allocPagingDomain(s.dev('39:00.0'), 'unmanaged'));
      must(ioas.addDomain(domain, {}));
      if (!(domain instanceof IoPageTableDomain)) throw new Error('not an IoPageTableDomain');
      const va = alignedAnon(s.proc, META_SIZE, 2 * MiB);
      must(api.ioasMap({ ...s, ioasId, userVa: va, length: META_SIZE, iova: GiB }));
      return () => {
        let bytes = ioas.iopt.indexBytes + domain.table.tableBytes;
        for (const area of ioas.iopt.areaList()) bytes += area.pages?.metadataBytes ?? 0;
        return bytes / (META_SIZE / PAGE);
      };
    },
  },
];
