// A typed API over VFIO group and device fds, in the style of api.ts: each call takes one object of named
// arguments, lays the C struct out in the process's own memory (a scratch mapping made for the call and
// unmapped after it), goes through the same byte-level dispatch() a C caller reaches, and decodes what the
// kernel wrote back.

import { fail, ok, type Result } from '../kernel/errno.ts';
import { MAP_ANONYMOUS, MAP_PRIVATE, PROT_READ, PROT_WRITE } from '../kernel/mm/mman.ts';
import type { Process } from '../kernel/process/process.ts';
import { dispatch } from './dispatch.ts';
import {
  VFIO_DEVICE_ATTACH_IOMMUFD_PT, VFIO_DEVICE_BIND_IOMMUFD, VFIO_DEVICE_DETACH_IOMMUFD_PT, VFIO_DEVICE_GET_INFO,
  VFIO_DEVICE_GET_IRQ_INFO, VFIO_DEVICE_GET_REGION_INFO, VFIO_DEVICE_RESET, VFIO_DEVICE_SET_IRQS,
  VFIO_GROUP_GET_DEVICE_FD, VFIO_GROUP_GET_STATUS, VFIO_GROUP_SET_CONTAINER, VFIO_GROUP_UNSET_CONTAINER,
} from './ioctl.ts';
import { sysPread, sysPwrite } from './rw.ts';
import {
  VFIO_DEVICE_ATTACH_PASID, VFIO_DEVICE_DETACH_PASID, VFIO_IRQ_SET_ACTION_TRIGGER, VFIO_IRQ_SET_DATA_EVENTFD,
} from './vfio-consts.ts';
import type { FieldMap, StructDef, StructValue } from './struct.ts';
import * as V from './vfio-structs.ts';

/** Every call: the process and the VFIO fd. */
export interface VfioFdArgs { readonly proc: Process; readonly fd: number }

const PAGE = 4096;

/** Run `fn` with a scratch user buffer of `bytes` (rounded up to pages), unmapped afterwards. */
function withScratch<T>(proc: Process, bytes: number, fn: (addr: number) => Result<T>): Result<T> {
  const size = Math.max(PAGE, Math.ceil(bytes / PAGE) * PAGE);
  const addr = proc.mmap(0, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (!addr.ok) return addr;
  try { return fn(addr.value); } finally { proc.mm.munmap(addr.value, size); }
}

/** Encode `fields` (argsz = sizeof unless given), issue the ioctl, decode the struct back. */
function call<F extends FieldMap>(
  a: VfioFdArgs, cmd: number, struct: StructDef<F>, fields: Partial<StructValue<F>>, tail?: Uint8Array,
): Result<StructValue<F>> {
  return withScratch(a.proc, struct.sizeof + (tail?.length ?? 0), (at) => {
    const w = a.proc.mm.write(at, struct.encode({ argsz: struct.sizeof + (tail?.length ?? 0), ...fields }));
    if (!w.ok) return w;
    if (tail !== undefined && !a.proc.mm.write(at + struct.sizeof, tail).ok) return fail('EFAULT', 'scratch');
    const r = dispatch(a.proc, a.fd, cmd, at);
    if (!r.ok) return r;
    const back = new Uint8Array(struct.sizeof);
    const rd = a.proc.mm.read(at, back);
    return rd.ok ? ok(struct.decode(back)) : rd;
  });
}

function bare(a: VfioFdArgs, cmd: number, arg = 0): Result {
  const r = dispatch(a.proc, a.fd, cmd, arg);
  return r.ok ? ok() : r;
}

// ---- group ----

/** VFIO_GROUP_GET_STATUS: the flags (VIABLE = 1, CONTAINER_SET = 2). */
export function groupGetStatus(a: VfioFdArgs): Result<number> {
  const r = call(a, VFIO_GROUP_GET_STATUS, V.vfio_group_status, { flags: 0 });
  return r.ok ? ok(r.value.flags) : r;
}

/** VFIO_GROUP_SET_CONTAINER with a container fd or an iommufd. */
export function groupSetContainer(a: VfioFdArgs & { readonly containerFd: number }): Result {
  return withScratch(a.proc, 4, (at) => {
    const b = new Uint8Array(4);
    new DataView(b.buffer).setInt32(0, a.containerFd, true);
    const w = a.proc.mm.write(at, b);
    return w.ok ? bare(a, VFIO_GROUP_SET_CONTAINER, at) : w;
  });
}

export function groupUnsetContainer(a: VfioFdArgs): Result { return bare(a, VFIO_GROUP_UNSET_CONTAINER); }

/** VFIO_GROUP_GET_DEVICE_FD: the new device fd. */
export function groupGetDeviceFd(a: VfioFdArgs & { readonly name: string }): Result<number> {
  const bytes = new TextEncoder().encode(`${a.name}\0`);
  return withScratch(a.proc, bytes.length, (at) => {
    const w = a.proc.mm.write(at, bytes);
    return w.ok ? dispatch(a.proc, a.fd, VFIO_GROUP_GET_DEVICE_FD, at) : w;
  });
}

// ---- device: cdev ----

/** VFIO_DEVICE_BIND_IOMMUFD: the DEVICE ID (out_devid). */
export function deviceBindIommufd(a: VfioFdArgs & { readonly iommufd: number }): Result<number> {
  const r = call(a, VFIO_DEVICE_BIND_IOMMUFD, V.vfio_device_bind_iommufd, { flags: 0, iommufd: a.iommufd, out_devid: 0, token_uuid_ptr: 0n });
  return r.ok ? ok(r.value.out_devid) : r;
}

/** VFIO_DEVICE_ATTACH_IOMMUFD_PT: the attached HWPT ID. */
export function deviceAttachPt(a: VfioFdArgs & { readonly ptId: number; readonly pasid?: number }): Result<number> {
  const flags = a.pasid === undefined ? 0 : VFIO_DEVICE_ATTACH_PASID;
  const r = call(a, VFIO_DEVICE_ATTACH_IOMMUFD_PT, V.vfio_device_attach_iommufd_pt, { flags, pt_id: a.ptId, pasid: a.pasid ?? 0 });
  return r.ok ? ok(r.value.pt_id) : r;
}

export function deviceDetachPt(a: VfioFdArgs & { readonly pasid?: number }): Result {
  const flags = a.pasid === undefined ? 0 : VFIO_DEVICE_DETACH_PASID;
  const r = call(a, VFIO_DEVICE_DETACH_IOMMUFD_PT, V.vfio_device_detach_iommufd_pt, { flags, pasid: a.pasid ?? 0 });
  return r.ok ? ok() : r;
}

// ---- device: info, IRQs, reset, regions ----

export function deviceGetInfo(a: VfioFdArgs): Result<{ flags: number; numRegions: number; numIrqs: number; capOffset: number }> {
  const r = call(a, VFIO_DEVICE_GET_INFO, V.vfio_device_info, {});
  return r.ok ? ok({ flags: r.value.flags, numRegions: r.value.num_regions, numIrqs: r.value.num_irqs, capOffset: r.value.cap_offset }) : r;
}

export function deviceGetRegionInfo(a: VfioFdArgs & { readonly index: number }): Result<{ flags: number; size: bigint; offset: bigint }> {
  const r = call(a, VFIO_DEVICE_GET_REGION_INFO, V.vfio_region_info, { index: a.index });
  return r.ok ? ok({ flags: r.value.flags, size: r.value.size, offset: r.value.offset }) : r;
}

export function deviceGetIrqInfo(a: VfioFdArgs & { readonly index: number }): Result<{ flags: number; count: number }> {
  const r = call(a, VFIO_DEVICE_GET_IRQ_INFO, V.vfio_irq_info, { index: a.index });
  return r.ok ? ok({ flags: r.value.flags, count: r.value.count }) : r;
}

/** VFIO_DEVICE_SET_IRQS with raw flags and payload. */
export function deviceSetIrqs(a: VfioFdArgs & { readonly flags: number; readonly index: number; readonly start: number; readonly count: number; readonly data?: Uint8Array }): Result {
  const r = call(a, VFIO_DEVICE_SET_IRQS, V.vfio_irq_set, { flags: a.flags, index: a.index, start: a.start, count: a.count }, a.data);
  return r.ok ? ok() : r;
}

/** SET_IRQS DATA_EVENTFD | ACTION_TRIGGER: vectors start.. get these eventfds (-1 unassigns). */
export function deviceSetIrqEventfds(a: VfioFdArgs & { readonly index: number; readonly start?: number; readonly eventfds: readonly number[] }): Result {
  const data = new Uint8Array(a.eventfds.length * 4);
  a.eventfds.forEach((fd, i) => new DataView(data.buffer).setInt32(i * 4, fd, true));
  return deviceSetIrqs({ ...a, flags: VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER, start: a.start ?? 0, count: a.eventfds.length, data });
}

export function deviceReset(a: VfioFdArgs): Result { return bare(a, VFIO_DEVICE_RESET); }

/** pread() of `length` bytes at a region file offset. */
export function regionRead(a: VfioFdArgs & { readonly offset: number | bigint; readonly length: number }): Result<Uint8Array> {
  return withScratch(a.proc, a.length, (at) => {
    const n = sysPread(a.proc, a.fd, at, a.length, Number(a.offset));
    if (!n.ok) return n;
    const b = new Uint8Array(n.value);
    const r = a.proc.mm.read(at, b);
    return r.ok ? ok(b) : r;
  });
}

/** pwrite() of `data` at a region file offset: the bytes written. */
export function regionWrite(a: VfioFdArgs & { readonly offset: number | bigint; readonly data: Uint8Array }): Result<number> {
  return withScratch(a.proc, a.data.length, (at) => {
    const w = a.proc.mm.write(at, a.data);
    return w.ok ? sysPwrite(a.proc, a.fd, at, a.data.length, Number(a.offset)) : w;
  });
}
