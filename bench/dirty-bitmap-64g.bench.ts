// dirty-bitmap-64g: IOMMU_HWPT_GET_DIRTY_BITMAP (read and clear) over 64 GiB of IOVA mapped with 4 KiB
// leaves (16 Mi PTEs, 128 MiB of table frames), after device DMA wrote 1% of the pages, through the
// byte-level dispatch.
//
// Set-up goes entirely through the iommufd path (about 5-10 s, well under a minute): an IOAS with
// IOMMU_OPTION_HUGE_PAGES = 0 (so the domain maps 4 KiB leaves only), a HWPT allocated with
// IOMMU_HWPT_ALLOC_DIRTY_TRACKING with the NVMe function attached, one IOAS_MAP of a 64 MiB buffer and
// 1023 IOAS_COPYs of it back to back, giving 64 GiB of contiguous IOVA over the same 16 Ki user pages
// (pinned once). The aliasing keeps the memory the DMA writes populate at 64 MiB instead of 640 MiB on a
// shared machine; the page table, which is what the read walks, is the full 16 Mi leaves either way.
// Each sample re-dirties the same 1% of pages (spread over the whole range) with DMA writes, untimed, and
// times one GET_DIRTY_BITMAP ioctl (CPU time, process.cpuUsage(): the machine is shared), checking the
// bitmap afterwards.

import { Machine } from '../src/hw/machine.ts';
import { PhysicalMemory } from '../src/hw/memory/physical-memory.ts';
import type { Result } from '../src/kernel/errno.ts';
import { IommuCore } from '../src/kernel/iommu/core.ts';
import { IoPageTableDomain } from '../src/kernel/iommu/domain.ts';
import type { IommufdCtx } from '../src/kernel/iommufd/context.ts';
import { iommufdDeviceAttach, iommufdDeviceBind } from '../src/kernel/iommufd/device.ts';
import type { HwptPaging } from '../src/kernel/iommufd/hw-pagetable.ts';
import { FrameAllocator } from '../src/kernel/mm/frame-allocator.ts';
import { MAP_ANONYMOUS, MAP_PRIVATE, PROT_READ, PROT_WRITE } from '../src/kernel/mm/mman.ts';
import { ProcessTable } from '../src/kernel/process/process-table.ts';
import { loadBuiltinHost } from '../src/pci/builtin-hosts.ts';
import { bootHost } from '../src/pci/boot.ts';
import { computeGroups } from '../src/pci/groups/compute.ts';
import * as api from '../src/uapi/api.ts';
import { dispatch } from '../src/uapi/dispatch.ts';
import { IOMMU_HWPT_GET_DIRTY_BITMAP } from '../src/uapi/ioctl.ts';
import { IOMMU_HWPT_ALLOC_DIRTY_TRACKING, IOMMU_OPTION_HUGE_PAGES } from '../src/uapi/iommufd-consts.ts';
import * as S from '../src/uapi/iommufd-structs.ts';
import type { BenchDef } from './harness.ts';

const PAGE = 4096;
const MiB = 2 ** 20;
const GiB = 2 ** 30;
const TOTAL = 64 * GiB;
const CHUNK = 64 * MiB;
const BASE = 64 * GiB;
const PAGES = TOTAL / PAGE;
/** 1% of the pages: one in every 100, at a varying position inside each run of 100. */
const STRIDE = 100;
const DIRTY = Math.floor(PAGES / STRIDE);
const BITMAP_BYTES = PAGES / 8;

function must<T>(r: Result<T>): T {
  if (!r.ok) throw new Error(`${r.errno}: ${r.reason}`);
  return r.value;
}

export const benches: BenchDef[] = [
  {
    name: 'dirty-bitmap-64g',
    unit: 'ms',
    description: `CPU milliseconds (process.cpuUsage(), as the machine is shared) for one IOMMU_HWPT_GET_DIRTY_BITMAP (read and clear, 4 KiB granules) over 64 GiB mapped with 4 KiB leaves (16 Mi PTEs) through the byte-level dispatch, after DMA writes to 1% of the pages spread over the range (${DIRTY} pages); set up through iommufd (HUGE_PAGES=0, a DIRTY_TRACKING HWPT, a 64 MiB buffer mapped then IOAS_COPY'd 1023 times); target < 50`,
    samples: 7,
    // Each sample is one long call: the scan loop reaches its optimised tier only after a few of them.
    warmup: 3,
    setup: () => {
      const booted = bootHost(loadBuiltinHost('default'));
      // The upper half of memory is the IOMMU driver's (page tables: 128 MiB here); the process gets 256 MiB.
      const memory = new PhysicalMemory({ size: 8 * GiB });
      const machine = new Machine(booted, { memory });
      const core = new IommuCore(machine, computeGroups(booted));
      const proc = new ProcessTable({ frames: new FrameAllocator(memory, { firstPfn: 16, count: 65536 }) }).spawn();
      const fd = must(api.openIommufd({ proc, core }));
      const file = must(proc.fds.get(fd));
      const ctx = file.file as IommufdCtx;
      const dev = machine.device('39:00.0');
      if (dev === undefined) throw new Error('no 39:00.0');
      const idev = must(iommufdDeviceBind(ctx, dev, { file }));
      const ioasId = must(api.ioasAlloc({ proc, fd }));
      must(api.option({ proc, fd, optionId: IOMMU_OPTION_HUGE_PAGES, objectId: ioasId, op: 'set', value: 0 }));
      const hwptId = must(api.hwptAlloc({ proc, fd, devId: idev.id, ptId: ioasId, flags: IOMMU_HWPT_ALLOC_DIRTY_TRACKING }));
      must(iommufdDeviceAttach(idev, hwptId));
      const raw = must(proc.mmap(0, CHUNK + 2 * MiB, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
      const buf = Math.ceil(raw / (2 * MiB)) * 2 * MiB;
      must(api.ioasMap({ proc, fd, ioasId, userVa: buf, length: CHUNK, iova: BASE }));
      for (let at = CHUNK; at < TOTAL; at += CHUNK) {
        must(api.ioasCopy({ proc, fd, srcIoasId: ioasId, dstIoasId: ioasId, srcIova: BASE, length: CHUNK, dstIova: BASE + at }));
      }
      const domain = must(ctx.objects.get<HwptPaging>(hwptId, 'hwpt_paging')).domain;
      if (!(domain instanceof IoPageTableDomain)) throw new Error('expected an IoPageTable domain');
      if (domain.table.lookup(BASE)?.pageSize !== PAGE || domain.table.lookup(BASE + TOTAL - PAGE)?.pageSize !== PAGE) {
        throw new Error('dirty-bitmap-64g: expected 4 KiB leaves over the whole range');
      }
      must(api.setDirtyTracking({ proc, fd, hwptId, enabled: true }));

      // The argument struct and the bitmap in the process's memory, as a C caller lays them out.
      const arg = must(proc.mmap(0, BITMAP_BYTES + 2 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
      const bitmap = arg + PAGE;
      const struct = S.iommu_hwpt_get_dirty_bitmap.encode({
        size: S.iommu_hwpt_get_dirty_bitmap.sizeof, hwpt_id: hwptId, flags: 0, iova: BigInt(BASE), length: BigInt(TOTAL),
        page_size: BigInt(PAGE), data: BigInt(bitmap),
      });
      const zeros = new Uint8Array(BITMAP_BYTES);
      const back = new Uint8Array(BITMAP_BYTES);
      const data = new Uint8Array(8).fill(0x5a);
      const pageOf = (i: number): number => i * STRIDE + ((i * 37) % STRIDE);
      return () => {
        // Untimed: dirty 1% of the pages, reset the struct and the bitmap.
        for (let i = 0; i < DIRTY; i++) {
          const r = machine.dma(dev, { op: 'write', address: BASE + pageOf(i) * PAGE, length: 8, data });
          if (r.status !== 'ok') throw new Error(`DMA ${i}: ${r.status}`);
        }
        must(proc.mm.write(arg, struct));
        must(proc.mm.write(bitmap, zeros));
        // CPU time, as the other large benches here: the machine is shared and wall time swings with load.
        const t0 = process.cpuUsage();
        const result = dispatch(proc, fd, IOMMU_HWPT_GET_DIRTY_BITMAP, arg);
        const t = process.cpuUsage(t0);
        must(result);
        // Untimed: the bitmap holds exactly the pages written.
        must(proc.mm.read(bitmap, back));
        let set = 0;
        for (let i = 0; i < back.length; i++) {
          let b = back[i] as number;
          while (b !== 0) { b &= b - 1; set++; }
        }
        for (let i = 0; i < DIRTY; i += 997) {
          const p = pageOf(i);
          if (((back[p >> 3] as number) & (1 << (p & 7))) === 0) throw new Error(`page ${p} is missing from the bitmap`);
        }
        if (set !== DIRTY) throw new Error(`dirty-bitmap-64g: ${set} bits set, expected ${DIRTY}`);
        return (t.user + t.system) / 1000;
      };
    },
  },
];
