// Set-up for the legacy container tests: the default host booted as a Kernel, test VFIO devices
// registered by hand (the group file is another branch's), a process with /dev/vfio/vfio open, and a
// C-like caller that builds VFIO argument structs in the process's memory and issues ioctl() through
// the byte-level dispatch().

import type { Result } from '../../../src/kernel/errno.ts';
import type { IommufdCtx } from '../../../src/kernel/iommufd/context.ts';
import { Kernel, type KernelBootOptions } from '../../../src/kernel/kernel.ts';
import { MAP_ANONYMOUS, MAP_PRIVATE, PROT_READ, PROT_WRITE } from '../../../src/kernel/mm/mman.ts';
import type { Capability } from '../../../src/kernel/process/cred.ts';
import type { Process } from '../../../src/kernel/process/process.ts';
import type { VfioContainer } from '../../../src/kernel/vfio/container.ts';
import { VfioDevice, type VfioDeviceOps } from '../../../src/kernel/vfio/vfio-device.ts';
import type { VfioGroup } from '../../../src/kernel/vfio/vfio-group.ts';
import { loadBuiltinHost } from '../../../src/pci/builtin-hosts.ts';
import type { Type1Iommu } from '../../../src/kernel/vfio/type1/iommu.ts';
import { dispatch } from '../../../src/uapi/dispatch.ts';
import { VFIO_IOMMU_MAP_DMA, VFIO_IOMMU_UNMAP_DMA, VFIO_SET_IOMMU } from '../../../src/uapi/ioctl.ts';
import * as K from '../../../src/uapi/vfio-consts.ts';
import { vfio_iommu_type1_dma_map, vfio_iommu_type1_dma_unmap } from '../../../src/uapi/vfio-structs.ts';
import type { FieldMap, StructDef } from '../../../src/uapi/struct.ts';

export const PAGE = 4096;
export const NVME = '39:00.0';
export const DSA = '6a:01.0';
export const SIB0 = '16:00.0';
export const SIB1 = '16:00.1';

export function value<T>(r: Result<T>): T {
  if (!r.ok) throw new Error(`${r.errno}: ${r.reason}`);
  return r.value;
}
export const errno = (r: Result<unknown>): string => (r.ok ? 'ok' : r.errno);

export function boot(opts: KernelBootOptions = {}): Kernel {
  return Kernel.boot(loadBuiltinHost('default'), opts);
}

/** Unbind the host drivers of every function of bdf's IOMMU group, then register bdf as a vfio-pci device. */
export function vfioGroupOf(k: Kernel, bdf: string): VfioGroup {
  const dev = k.device(bdf);
  if (dev === undefined) throw new Error(`no ${bdf}`);
  const ig = k.core.groupOf(dev);
  for (const d of ig?.devices ?? []) if (k.drivers.boundDriver(d) !== null) value(k.drivers.unbind(d));
  const vdev = new VfioDevice(dev.bdf, 'iommu', { name: 'vfio-pci' }, dev);
  value(k.vfio.registerGroupDev(vdev));
  const g = vdev.group;
  if (g === null) throw new Error('no group');
  return g;
}

/** An emulated (mdev-style) device in its own fake group, with a dma_unmap callback. */
export function emulatedDevice(k: Kernel, name: string, ops: Partial<VfioDeviceOps> = {}): VfioDevice {
  const parent = k.device(NVME) ?? null;
  const vdev = new VfioDevice(name, 'emulated-iommu', { name: 'mtty', ...ops }, parent);
  value(k.vfio.registerEmulatedIommuDev(vdev));
  return vdev;
}

export interface ClientOptions { memlockPages?: number; uid?: number; caps?: Capability[] }

/** A process with /dev/vfio/vfio open and a scratch buffer for argument structs. */
export function client(k: Kernel, opts: ClientOptions = {}) {
  const memlock = (opts.memlockPages ?? 4096) * PAGE;
  const proc = k.processes.spawn({
    uid: opts.uid ?? 1000, rlimits: { RLIMIT_MEMLOCK: { soft: memlock, hard: memlock } },
    ...(opts.caps === undefined ? {} : { caps: opts.caps }),
  });
  const fd = value(k.devfs.open(proc, '/dev/vfio/vfio'));
  return caller(proc, fd);
}

export function caller(proc: Process, fd: number) {
  const scratch = value(proc.mmap(0, 4 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  /** ioctl with a by-value argument (GET_API_VERSION, CHECK_EXTENSION, SET_IOMMU). */
  const io = (cmd: number, arg = 0): Result<number> => dispatch(proc, fd, cmd, arg);
  /** ioctl with a struct (argsz defaults to sizeof); `canary` fills 0xAA from argsz on, as ioctl_check_buf(). */
  const call = <F extends FieldMap>(cmd: number, s: StructDef<F>, fields: Record<string, unknown>, canary = false) => {
    const argsz = typeof fields.argsz === 'number' ? fields.argsz : s.sizeof;
    value(proc.mm.write(scratch, new Uint8Array(2 * PAGE)));
    value(proc.mm.write(scratch, s.encode({ argsz, ...fields } as never)));
    if (canary) value(proc.mm.write(scratch + argsz, new Uint8Array(2 * PAGE - argsz).fill(0xaa)));
    const r = dispatch(proc, fd, cmd, scratch);
    const back = new Uint8Array(2 * PAGE);
    value(proc.mm.read(scratch, back));
    return { r, e: errno(r), out: s.decode(back.subarray(0, s.sizeof)), raw: back, argsz };
  };
  const anon = (npages: number): number => value(proc.mmap(0, npages * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  const file = <T>(): T => value(proc.fds.get(fd)).file as T;
  return { proc, fd, scratch, io, call, anon, container: (): VfioContainer => file<VfioContainer>(), iommufd: (): IommufdCtx => file<IommufdCtx>() };
}
export type Caller = ReturnType<typeof caller>;

const RW = K.VFIO_DMA_MAP_FLAG_READ | K.VFIO_DMA_MAP_FLAG_WRITE;
const P = BigInt(PAGE);

/** A type1 container (v2 or v1) with the NVMe's group, and map/unmap callers. */
export function type1(v2 = true, opts: KernelBootOptions = {}, copts: ClientOptions = {}) {
  const k = boot(opts);
  const c = client(k, copts);
  const g = vfioGroupOf(k, NVME);
  value(c.container().attachGroup(g, c.proc));
  value(c.io(VFIO_SET_IOMMU, v2 ? K.VFIO_TYPE1v2_IOMMU : K.VFIO_TYPE1_IOMMU));
  const iommu = c.container().backend as Type1Iommu;
  const map = (iova: bigint, npages: number, flags = RW, va?: number) => {
    const at = va ?? c.anon(npages);
    return { ...c.call(VFIO_IOMMU_MAP_DMA, vfio_iommu_type1_dma_map, { flags, vaddr: BigInt(at), iova, size: BigInt(npages) * P }), va: at };
  };
  const unmap = (iova: bigint, size: bigint, flags = 0) => {
    const r = c.call(VFIO_IOMMU_UNMAP_DMA, vfio_iommu_type1_dma_unmap, { flags, iova, size });
    return { e: r.e, size: r.out.size };
  };
  const domain = () => iommu.domains[0]!.domain;
  return { k, c, g, iommu, map, unmap, domain };
}
