// A typed, plain-function API over /dev/iommu (in the isomorphic-git style): every function takes one
// object of named arguments `{ proc, fd, ... }`, encodes the C struct into the process's own memory (a
// scratch buffer the process mmaps once and reuses), issues ioctl() through the same byte-level
// dispatch() a C caller reaches, decodes the struct the kernel wrote back and returns a typed Result
// (errno + reason on failure). Both paths therefore run exactly the same kernel code. The HWPT calls are
// in hwpt-api.ts, the vIOMMU ones in viommu-api.ts, the plumbing in api-ioctl.ts; all are exported here.

import { fail, ok, type KernelError, type Result } from '../kernel/errno.ts';
import type { IommuCore } from '../kernel/iommu/core.ts';
import { FaultFile } from '../kernel/iommufd/fault-fd.ts';
import { MAP_ANONYMOUS, MAP_PRIVATE, PROT_READ, PROT_WRITE } from '../kernel/mm/mman.ts';
import type { Process } from '../kernel/process/process.ts';
import { sysPread, sysPwrite } from './rw.ts';
import {
  IOMMU_DESTROY, IOMMU_FAULT_QUEUE_ALLOC, IOMMU_GET_HW_INFO, IOMMU_IOAS_ALLOC, IOMMU_IOAS_ALLOW_IOVAS, IOMMU_IOAS_COPY,
  IOMMU_IOAS_IOVA_RANGES, IOMMU_IOAS_MAP, IOMMU_IOAS_MAP_FILE, IOMMU_IOAS_UNMAP, IOMMU_OPTION, IOMMU_VFIO_IOAS,
} from './ioctl.ts';
import { IOMMU_OPTION_OP_GET, IOMMU_OPTION_OP_SET } from './iommufd-consts.ts';
import * as S from './iommufd-structs.ts';
import { ioasMapPlain } from './ioas-map-arg.ts';
import { openDevIommu } from './open.ts';
import { big, get, giveArgBuf, ioctl, ioctlField, ioctlRaw, mapFlags, put, scratchAddr, takeArgBuf, type FdArgs } from './api-ioctl.ts';

const PAGE = 4096;
const pageAlign = (n: number): number => Math.ceil(n / PAGE) * PAGE;

export type { FdArgs } from './api-ioctl.ts';
export * from './hwpt-api.ts';
export * from './viommu-api.ts';

// ---------------------------------------------------------------------------------------------------
// The calls.

/** open("/dev/iommu"): the new fd. */
export function openIommufd(a: { readonly proc: Process; readonly core: IommuCore }): Result<number> {
  return openDevIommu(a.proc, a.core);
}

/** IOMMU_DESTROY of object `id`. */
export function destroy(a: FdArgs & { readonly id: number }): Result {
  const r = ioctl(a.proc, a.fd, IOMMU_DESTROY, S.iommu_destroy, { id: a.id });
  return r.ok ? ok() : r;
}

/** IOMMU_IOAS_ALLOC: the new IOAS id. */
export function ioasAlloc(a: FdArgs): Result<number> {
  return ioctlField(a.proc, a.fd, IOMMU_IOAS_ALLOC, S.iommu_ioas_alloc, { flags: 0 }, 'out_ioas_id');
}

export interface MapCommon extends FdArgs {
  readonly ioasId: number;
  /** A fixed IOVA (IOMMU_IOAS_MAP_FIXED_IOVA); omitted: the kernel chooses one. */
  readonly iova?: number | bigint;
  /** Default true each. */
  readonly readable?: boolean;
  readonly writeable?: boolean;
}

/**
 * IOMMU_IOAS_MAP of user memory: either `userVa` + `length`, or `data`, which is copied into a fresh
 * anonymous mapping of the process first (returned as userVa). Returns the IOVA used.
 */
export function ioasMap(a: MapCommon & ({ readonly userVa: number | bigint; readonly length: number | bigint } | { readonly data: Uint8Array })):
  Result<{ iova: bigint; userVa: bigint; length: bigint }> {
  // The struct is written from these (numbers when the caller gave numbers); userVa and length are the
  // bigints the result reports.
  let va: number | bigint;
  let len: number | bigint;
  if ('data' in a) {
    if (a.data.length === 0) return fail('EINVAL', 'ioasMap: empty data');
    const mapped = a.proc.mmap(0, pageAlign(a.data.length), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (!mapped.ok) return mapped;
    const w = put(a.proc, mapped.value, a.data);
    if (!w.ok) return w;
    va = mapped.value;
    len = a.data.length;
  } else {
    va = a.userVa;
    len = a.length;
  }
  const userVa = big(va);
  const length = big(len);
  const flags = mapFlags(a);
  const iova = ioasMapPlain(a.proc, a.fd, flags, a.ioasId, va, len, a.iova) ?? ioctlField(a.proc, a.fd, IOMMU_IOAS_MAP, S.iommu_ioas_map, {
    flags, ioas_id: a.ioasId, user_va: userVa, length, iova: a.iova === undefined ? 0n : big(a.iova),
  }, 'iova');
  return iova.ok ? ok({ iova: iova.value, userVa, length }) : iova;
}

/** IOMMU_IOAS_MAP_FILE of [start, start + length) of memfd `file`: the IOVA used. */
export function ioasMapFile(a: MapCommon & { readonly file: number; readonly start: number | bigint; readonly length: number | bigint }): Result<bigint> {
  return ioctlField(a.proc, a.fd, IOMMU_IOAS_MAP_FILE, S.iommu_ioas_map_file, {
    flags: mapFlags(a), ioas_id: a.ioasId, fd: a.file, start: big(a.start), length: big(a.length), iova: a.iova === undefined ? 0n : big(a.iova),
  }, 'iova');
}

/** IOMMU_IOAS_UNMAP of [iova, iova + length) (iova 0 + length 2^64-1: everything): the bytes unmapped. */
export function ioasUnmap(a: FdArgs & { readonly ioasId: number; readonly iova: number | bigint; readonly length: number | bigint }): Result<bigint> {
  return ioctlField(a.proc, a.fd, IOMMU_IOAS_UNMAP, S.iommu_ioas_unmap, { ioas_id: a.ioasId, iova: big(a.iova), length: big(a.length) }, 'length');
}

/** IOMMU_IOAS_COPY of [srcIova, srcIova + length) of srcIoasId into dstIoasId: the destination IOVA. */
export function ioasCopy(a: FdArgs & {
  readonly srcIoasId: number; readonly dstIoasId: number; readonly srcIova: number | bigint; readonly length: number | bigint;
  readonly dstIova?: number | bigint; readonly readable?: boolean; readonly writeable?: boolean;
}): Result<bigint> {
  return ioctlField(a.proc, a.fd, IOMMU_IOAS_COPY, S.iommu_ioas_copy, {
    flags: mapFlags({ ...a, ...(a.dstIova === undefined ? {} : { iova: a.dstIova }) }),
    dst_ioas_id: a.dstIoasId, src_ioas_id: a.srcIoasId, length: big(a.length), src_iova: big(a.srcIova),
    dst_iova: a.dstIova === undefined ? 0n : big(a.dstIova),
  }, 'dst_iova');
}

export interface IovaRange { readonly start: bigint; readonly last: bigint }

const RANGE = S.iommu_iova_range.sizeof;

/**
 * IOMMU_IOAS_IOVA_RANGES: the usable IOVA ranges and the alignment. Asks with an empty array first; on
 * EMSGSIZE (the kernel wrote back how many there are) asks again with an array that large. Repeats if the
 * number grew in between.
 */
export function ioasIovaRanges(a: FdArgs & { readonly ioasId: number }): Result<{ ranges: IovaRange[]; alignment: bigint }> {
  let capacity = 0;
  for (let attempt = 0; attempt < 8; attempt++) {
    const raw = ioctlRaw(a.proc, a.fd, IOMMU_IOAS_IOVA_RANGES, S.iommu_ioas_iova_ranges, { ioas_id: a.ioasId, num_iovas: capacity }, {
      bytes: capacity * RANGE,
      fill: (base) => ({ allowed_iovas: capacity === 0 ? 0n : big(base + S.iommu_ioas_iova_ranges.sizeof) }),
    });
    if (!raw.ok) return raw;
    const { r, out, base } = raw.value;
    if (!r.ok) {
      if (r.errno === 'EMSGSIZE' && out.num_iovas > capacity) { capacity = out.num_iovas; continue; }
      return r;
    }
    const arr = get(a.proc, base + S.iommu_ioas_iova_ranges.sizeof, out.num_iovas * RANGE);
    if (!arr.ok) return arr;
    const ranges: IovaRange[] = [];
    for (let i = 0; i < out.num_iovas; i++) {
      const v = S.iommu_iova_range.decode(arr.value.subarray(i * RANGE, (i + 1) * RANGE));
      ranges.push({ start: v.start, last: v.last });
    }
    return ok({ ranges, alignment: out.out_iova_alignment });
  }
  return fail('EAGAIN', 'ioasIovaRanges: the number of ranges kept changing');
}

/** IOMMU_IOAS_ALLOW_IOVAS: restrict allocation to `ranges` (inclusive; empty: no restriction). */
export function ioasAllowIovas(a: FdArgs & { readonly ioasId: number; readonly ranges: readonly { readonly start: number | bigint; readonly last: number | bigint }[] }): Result {
  const n = a.ranges.length;
  const r = ioctl(a.proc, a.fd, IOMMU_IOAS_ALLOW_IOVAS, S.iommu_ioas_allow_iovas, { ioas_id: a.ioasId, num_iovas: n }, {
    bytes: n * RANGE,
    fill: (base) => {
      const at = base + S.iommu_ioas_allow_iovas.sizeof;
      const arr = new Uint8Array(n * RANGE);
      a.ranges.forEach((x, i) => S.iommu_iova_range.encode({ start: big(x.start), last: big(x.last) }, arr.subarray(i * RANGE, (i + 1) * RANGE)));
      if (n > 0) put(a.proc, at, arr);
      return { allowed_iovas: n === 0 ? 0n : big(at) };
    },
  });
  return r.ok ? ok() : r;
}

/** IOMMU_OPTION: SET `value` (returns it) or GET (returns the current value) of option `optionId`. */
export function option(a: FdArgs & { readonly optionId: number; readonly objectId?: number } & ({ readonly op: 'get' } | { readonly op: 'set'; readonly value: number | bigint })): Result<bigint> {
  return ioctlField(a.proc, a.fd, IOMMU_OPTION, S.iommu_option, {
    option_id: a.optionId, op: a.op === 'get' ? IOMMU_OPTION_OP_GET : IOMMU_OPTION_OP_SET, object_id: a.objectId ?? 0,
    val64: a.op === 'set' ? big(a.value) : 0n,
  }, 'val64');
}

/** IOMMU_VFIO_IOAS: op GET/SET/CLEAR (IOMMU_VFIO_IOAS_*) of the compat IOAS; returns ioas_id as written back. */
export function vfioIoas(a: FdArgs & { readonly op: number; readonly ioasId?: number }): Result<number> {
  const r = ioctl(a.proc, a.fd, IOMMU_VFIO_IOAS, S.iommu_vfio_ioas, { op: a.op, ioas_id: a.ioasId ?? 0 });
  return r.ok ? ok(r.value.out.ioas_id) : r;
}

export interface HwInfo {
  readonly dataType: number;
  readonly maxPasidLog2: number;
  readonly capabilities: bigint;
  /** The driver's info struct as written (at most `dataLen` bytes; the kernel's length in dataLen). */
  readonly data: Uint8Array;
  readonly dataLen: number;
}

/** IOMMU_GET_HW_INFO for `devId` with a `dataLen`-byte buffer (default 256). */
export function getHwInfo(a: FdArgs & { readonly devId: number; readonly dataLen?: number; readonly flags?: number; readonly inDataType?: number }): Result<HwInfo> {
  const cap = a.dataLen ?? 256;
  const r = ioctl(a.proc, a.fd, IOMMU_GET_HW_INFO, S.iommu_hw_info, {
    flags: a.flags ?? 0, dev_id: a.devId, data_len: cap, out_data_type: a.inDataType ?? 0,
  }, {
    bytes: cap,
    fill: (base) => {
      if (cap > 0) put(a.proc, base + S.iommu_hw_info.sizeof, new Uint8Array(cap));
      return { data_uptr: cap === 0 ? 0n : big(base + S.iommu_hw_info.sizeof) };
    },
  });
  if (!r.ok) return r;
  const { out, base } = r.value;
  const data = get(a.proc, base + S.iommu_hw_info.sizeof, Math.min(cap, out.data_len));
  if (!data.ok) return data;
  return ok({ dataType: out.out_data_type, maxPasidLog2: out.out_max_pasid_log2, capabilities: out.out_capabilities, data: data.value, dataLen: out.data_len });
}

/** IOMMU_FAULT_QUEUE_ALLOC: the FAULT object id and its fd. */
export function faultQueueAlloc(a: FdArgs): Result<{ faultId: number; faultFd: number }> {
  const r = ioctl(a.proc, a.fd, IOMMU_FAULT_QUEUE_ALLOC, S.iommu_fault_alloc, { flags: 0 });
  return r.ok ? ok({ faultId: r.value.out.out_fault_id, faultFd: r.value.out.out_fault_fd }) : r;
}

export type PageFault = ReturnType<typeof S.iommu_hwpt_pgfault.decode>;
const PGFAULT = S.iommu_hwpt_pgfault.sizeof;
const RESPONSE = S.iommu_hwpt_page_response.sizeof;

/** The fault fd's file, or why `faultFd` is not one (EBADF, EINVAL): no Result per call on the fault path. */
function faultFile(proc: Process, faultFd: number): FaultFile | KernelError {
  const open = proc.fds.lookup(faultFd);
  if (open === undefined) return proc.fds.badFd(faultFd);
  return open.file instanceof FaultFile ? open.file : fail('EINVAL', `fd ${faultFd} is a ${open.file.kind}, not a fault fd`);
}

/** read(2) of up to `max` page request records (default 64) from a fault fd; [] when none is queued. */
export function faultRead(a: { readonly proc: Process; readonly faultFd: number; readonly max?: number }): Result<PageFault[]> {
  const file = faultFile(a.proc, a.faultFd);
  if (!(file instanceof FaultFile)) return file;
  const count = (a.max ?? 64) * PGFAULT;
  const base = scratchAddr(a.proc, count);
  if (typeof base !== 'number') return base;
  // read(2) through the same entry a C program (or the shim) reaches.
  const n = sysPread(a.proc, a.faultFd, base, count, null);
  if (!n.ok) return n;
  // The records are copied back into the reused buffer and decoded from it; one record (the usual read)
  // makes a one-element array.
  const len = n.value;
  const buf = takeArgBuf(a.proc, len);
  const b = buf.bytes;
  const back = a.proc.mm.readTo(base, b, len, buf.words);
  let out: PageFault[] | null = null;
  if (back.ok) {
    out = len === 0 ? [] : [S.iommu_hwpt_pgfault.decodeAt(b, 0)];
    for (let at = PGFAULT; at < len; at += PGFAULT) out.push(S.iommu_hwpt_pgfault.decodeAt(b, at));
  }
  giveArgBuf(a.proc, buf);
  return out === null ? back as KernelError : ok(out);
}

/** write(2) of page responses to a fault fd: the number of responses the kernel took. */
export function faultRespond(a: { readonly proc: Process; readonly faultFd: number; readonly responses: readonly { readonly cookie: number; readonly code: number }[] }): Result<number> {
  const file = faultFile(a.proc, a.faultFd);
  if (!(file instanceof FaultFile)) return file;
  const len = a.responses.length * RESPONSE;
  const buf = takeArgBuf(a.proc, len);
  const b = buf.bytes;
  for (let i = 0; i < len; i++) b[i] = 0;
  // The struct's fields are cookie and code: encoding a response reads just those (no copy of it needed).
  for (let i = 0; i < a.responses.length; i++) S.iommu_hwpt_page_response.encodeAt(a.responses[i] as { readonly cookie: number; readonly code: number }, b, i * RESPONSE);
  const base = scratchAddr(a.proc, len);
  const w = typeof base === 'number' ? a.proc.mm.writeFrom(base, b, len, buf.words) : base;
  giveArgBuf(a.proc, buf);
  if (!w.ok) return w;
  const n = sysPwrite(a.proc, a.faultFd, base as number, len, null);
  if (!n.ok) return n;
  const taken = n.value / RESPONSE;
  return taken < TAKEN.length ? TAKEN[taken] as Result<number> : ok(taken);
}

// Results are never mutated: the usual counts of responses taken are made once.
const TAKEN: readonly Result<number>[] = Array.from({ length: 8 }, (_, i) => ok(i));
