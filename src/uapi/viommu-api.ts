// The typed API of vIOMMU objects (api.ts): VIOMMU_ALLOC, VDEVICE_ALLOC, VEVENTQ_ALLOC with reads of its
// fd, HW_QUEUE_ALLOC and mmap() of an iommufd, through the byte-level dispatch.

import { fail, ok, type Result } from '../kernel/errno.ts';
import { VeventqFile } from '../kernel/iommufd/veventq-fd.ts';
import { MAP_SHARED, PROT_READ, PROT_WRITE } from '../kernel/mm/mman.ts';
import type { Process } from '../kernel/process/process.ts';
import { sysPread } from './rw.ts';
import { IOMMU_VIOMMU_ALLOC, IOMMU_VDEVICE_ALLOC, IOMMU_VEVENTQ_ALLOC, IOMMU_HW_QUEUE_ALLOC } from './ioctl.ts';
import { IOMMU_VEVENTQ_FLAG_LOST_EVENTS } from './iommufd-consts.ts';
import * as S from './iommufd-structs.ts';
import { big, get, ioctl, put, scratch, type FdArgs } from './api-ioctl.ts';

/** IOMMU_VIOMMU_ALLOC of `type` on NEST_PARENT HWPT `hwptId` for `devId`; `data` is the driver's struct (written back). */
export function viommuAlloc(a: FdArgs & {
  readonly devId: number; readonly hwptId: number; readonly type: number; readonly flags?: number; readonly data?: Uint8Array;
}): Result<{ viommuId: number; data: Uint8Array | null }> {
  const len = a.data?.length ?? 0;
  const r = ioctl(a.proc, a.fd, IOMMU_VIOMMU_ALLOC, S.iommu_viommu_alloc, {
    flags: a.flags ?? 0, type: a.type, dev_id: a.devId, hwpt_id: a.hwptId, data_len: len,
  }, {
    bytes: len,
    fill: (base) => {
      if (a.data === undefined) return { data_uptr: 0n };
      const at = base + S.iommu_viommu_alloc.sizeof;
      put(a.proc, at, a.data);
      return { data_uptr: big(at) };
    },
  });
  if (!r.ok) return r;
  if (len === 0) return ok({ viommuId: r.value.out.out_viommu_id, data: null });
  const back = get(a.proc, r.value.base + S.iommu_viommu_alloc.sizeof, len);
  return back.ok ? ok({ viommuId: r.value.out.out_viommu_id, data: back.value }) : back;
}

/** IOMMU_VDEVICE_ALLOC: `devId`'s virtual ID `virtId` on vIOMMU `viommuId`; the new vDEVICE id. */
export function vdeviceAlloc(a: FdArgs & { readonly viommuId: number; readonly devId: number; readonly virtId: number | bigint }): Result<number> {
  const r = ioctl(a.proc, a.fd, IOMMU_VDEVICE_ALLOC, S.iommu_vdevice_alloc, { viommu_id: a.viommuId, dev_id: a.devId, virt_id: big(a.virtId) });
  return r.ok ? ok(r.value.out.out_vdevice_id) : r;
}

/** IOMMU_VEVENTQ_ALLOC: the vEVENTQ id and its fd. */
export function veventqAlloc(a: FdArgs & { readonly viommuId: number; readonly type: number; readonly depth: number }): Result<{ veventqId: number; veventqFd: number }> {
  const r = ioctl(a.proc, a.fd, IOMMU_VEVENTQ_ALLOC, S.iommu_veventq_alloc, { viommu_id: a.viommuId, type: a.type, veventq_depth: a.depth });
  return r.ok ? ok({ veventqId: r.value.out.out_veventq_id, veventqFd: r.value.out.out_veventq_fd }) : r;
}

/** IOMMU_HW_QUEUE_ALLOC: queue `index` of `type` at `iova` (nesting parent IOVA), `length` bytes; the new id. */
export function hwQueueAlloc(a: FdArgs & {
  readonly viommuId: number; readonly type: number; readonly index: number; readonly iova: number | bigint; readonly length: number | bigint;
}): Result<number> {
  const r = ioctl(a.proc, a.fd, IOMMU_HW_QUEUE_ALLOC, S.iommu_hw_queue_alloc, {
    viommu_id: a.viommuId, type: a.type, index: a.index, nesting_parent_iova: big(a.iova), length: big(a.length),
  });
  return r.ok ? ok(r.value.out.out_hw_queue_id) : r;
}

/** One vEVENTQ record: the header's LOST_EVENTS flag and sequence, and the event's data (empty for LOST_EVENTS). */
export interface Vevent { readonly flags: number; readonly sequence: number; readonly data: Uint8Array }

/**
 * read(2) of a vEVENTQ fd into a `bytes`-byte buffer (default 4096), split into records whose data is
 * `dataLen` bytes (the event type's struct size; a LOST_EVENTS header has none).
 */
export function veventqRead(a: { readonly proc: Process; readonly veventqFd: number; readonly dataLen: number; readonly bytes?: number }): Result<Vevent[]> {
  const f = a.proc.fds.get(a.veventqFd);
  if (!f.ok) return f;
  if (!(f.value.file instanceof VeventqFile)) return fail('EINVAL', `fd ${a.veventqFd} is a ${f.value.file.kind}, not a vEVENTQ fd`);
  const count = a.bytes ?? 4096;
  const buf = scratch(a.proc, count);
  if (!buf.ok) return buf;
  const n = sysPread(a.proc, a.veventqFd, buf.value, count, null);
  if (!n.ok) return n;
  const bytes = get(a.proc, buf.value, n.value);
  if (!bytes.ok) return bytes;
  const out: Vevent[] = [];
  const hdr = S.iommufd_vevent_header.sizeof;
  for (let at = 0; at < n.value;) {
    const h = S.iommufd_vevent_header.decode(bytes.value.subarray(at, at + hdr));
    const len = (h.flags & IOMMU_VEVENTQ_FLAG_LOST_EVENTS) !== 0 ? 0 : a.dataLen;
    out.push({ flags: h.flags, sequence: h.sequence, data: bytes.value.slice(at + hdr, at + hdr + len) });
    at += hdr + len;
  }
  return ok(out);
}

/** mmap(NULL, length, prot (default read/write), MAP_SHARED (default), iommufd, offset): the address. */
export function iommufdMmap(a: FdArgs & { readonly offset: number; readonly length: number; readonly prot?: number; readonly flags?: number }): Result<number> {
  return a.proc.mmap(0, a.length, a.prot ?? PROT_READ | PROT_WRITE, a.flags ?? MAP_SHARED, a.fd, a.offset);
}

