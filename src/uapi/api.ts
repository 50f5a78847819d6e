// A typed, plain-function API over /dev/iommu (in the isomorphic-git style): every function takes one
// object of named arguments `{ proc, fd, ... }`, encodes the C struct into the process's own memory (a
// scratch buffer the process mmaps once and reuses), issues ioctl() through the same byte-level
// dispatch() a C caller reaches, decodes the struct the kernel wrote back and returns a typed Result
// (errno + reason on failure). Both paths therefore run exactly the same kernel code.

import { fail, ok, type Result } from '../kernel/errno.ts';
import type { IommuCore } from '../kernel/iommu/core.ts';
import { FaultFile } from '../kernel/iommufd/fault-fd.ts';
import { VeventqFile } from '../kernel/iommufd/veventq-fd.ts';
import { MAP_ANONYMOUS, MAP_PRIVATE, MAP_SHARED, PROT_READ, PROT_WRITE } from '../kernel/mm/mman.ts';
import type { Process } from '../kernel/process/process.ts';
import { dispatch } from './dispatch.ts';
import { sysPread, sysPwrite } from './rw.ts';
import {
  IOMMU_DESTROY, IOMMU_FAULT_QUEUE_ALLOC, IOMMU_GET_HW_INFO, IOMMU_HWPT_ALLOC, IOMMU_HWPT_GET_DIRTY_BITMAP,
  IOMMU_HWPT_INVALIDATE, IOMMU_HWPT_SET_DIRTY_TRACKING, IOMMU_IOAS_ALLOC,
  IOMMU_IOAS_ALLOW_IOVAS, IOMMU_IOAS_COPY, IOMMU_IOAS_IOVA_RANGES, IOMMU_IOAS_MAP, IOMMU_IOAS_MAP_FILE,
  IOMMU_IOAS_UNMAP, IOMMU_OPTION, IOMMU_VFIO_IOAS, IOMMU_VIOMMU_ALLOC, IOMMU_VDEVICE_ALLOC, IOMMU_VEVENTQ_ALLOC,
  IOMMU_HW_QUEUE_ALLOC,
} from './ioctl.ts';
import {
  IOMMU_HWPT_DIRTY_TRACKING_ENABLE, IOMMU_HWPT_FAULT_ID_VALID, IOMMU_HWPT_DATA_NONE, IOMMU_HWPT_DATA_VTD_S1,
  IOMMU_HWPT_GET_DIRTY_BITMAP_NO_CLEAR, IOMMU_HWPT_INVALIDATE_DATA_VTD_S1, IOMMU_IOAS_MAP_FIXED_IOVA, IOMMU_IOAS_MAP_READABLE,
  IOMMU_IOAS_MAP_WRITEABLE, IOMMU_OPTION_OP_GET, IOMMU_OPTION_OP_SET, IOMMU_VEVENTQ_FLAG_LOST_EVENTS,
} from './iommufd-consts.ts';
import * as S from './iommufd-structs.ts';
import { openDevIommu } from './open.ts';
import type { FieldMap, StructDef, StructValue } from './struct.ts';

const PAGE = 4096;
const pageAlign = (n: number): number => Math.ceil(n / PAGE) * PAGE;

/** The fields every call takes: the process and its iommufd. */
export interface FdArgs { readonly proc: Process; readonly fd: number }

// ---------------------------------------------------------------------------------------------------
// Scratch memory: one anonymous mapping per process (Process.apiScratch), grown (remapped) when a call
// needs more.

/** A user buffer of at least `bytes` in `proc` (reused between calls; contents are not kept). */
function scratch(proc: Process, bytes: number): Result<number> {
  const have = proc.apiScratch;
  if (have !== null && have.size >= bytes) return ok(have.addr);
  const size = Math.max(pageAlign(bytes), 4 * PAGE);
  const addr = proc.mmap(0, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (!addr.ok) return addr;
  if (have !== null) proc.mm.munmap(have.addr, have.size);
  proc.apiScratch = { addr: addr.value, size };
  return ok(addr.value);
}

/** Copy `data` to a user pointer (for payloads that follow the struct in the scratch buffer). */
function put(proc: Process, at: number, data: Uint8Array): Result {
  return proc.mm.write(at, data);
}

function get(proc: Process, at: number, len: number): Result<Uint8Array> {
  const b = new Uint8Array(len);
  const r = proc.mm.read(at, b);
  return r.ok ? ok(b) : r;
}

/** The result of one ioctl: the errno and the struct as the kernel left it (written back or not). */
interface Raw<F extends FieldMap> { readonly r: Result<number>; readonly out: StructValue<F> }

/**
 * Encode `fields` at the start of the scratch buffer (followed by `payload` at `payloadOffset`), call
 * dispatch(), and decode the struct from user memory afterwards.
 */
function ioctlRaw<F extends FieldMap>(
  proc: Process, fd: number, cmd: number, struct: StructDef<F>, fields: Partial<StructValue<F>>,
  extra: { bytes?: number; fill?: (base: number) => Partial<StructValue<F>> } = {},
): Result<Raw<F> & { base: number }> {
  const base = scratch(proc, struct.sizeof + (extra.bytes ?? 0));
  if (!base.ok) return base;
  // The encoding of { ...fields, ...fill(base), size: sizeof }, field groups written in that order.
  const b = struct.encode(fields);
  if (extra.fill !== undefined) struct.encode(extra.fill(base.value), b);
  const w = put(proc, base.value, struct.encode({ size: struct.sizeof } as Partial<StructValue<F>>, b));
  if (!w.ok) return w;
  const r = dispatch(proc, fd, cmd, base.value);
  // Read the struct back into the encoding buffer (sizeof bytes, ours alone) rather than a fresh one.
  const back = proc.mm.read(base.value, b);
  if (!back.ok) return back;
  return ok({ r, out: struct.decode(b), base: base.value });
}

/** ioctlRaw, with the errno surfaced as the Result. */
function ioctl<F extends FieldMap>(
  proc: Process, fd: number, cmd: number, struct: StructDef<F>, fields: Partial<StructValue<F>>,
  extra: { bytes?: number; fill?: (base: number) => Partial<StructValue<F>> } = {},
): Result<Raw<F> & { base: number }> {
  const raw = ioctlRaw(proc, fd, cmd, struct, fields, extra);
  if (!raw.ok) return raw;
  if (!raw.value.r.ok) return raw.value.r;
  return raw;
}

const big = (n: number | bigint): bigint => BigInt(n);

function mapFlags(o: { readonly iova?: number | bigint; readonly readable?: boolean; readonly writeable?: boolean }): number {
  return (o.iova === undefined ? 0 : IOMMU_IOAS_MAP_FIXED_IOVA) |
    (o.readable === false ? 0 : IOMMU_IOAS_MAP_READABLE) | (o.writeable === false ? 0 : IOMMU_IOAS_MAP_WRITEABLE);
}

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
  const r = ioctl(a.proc, a.fd, IOMMU_IOAS_ALLOC, S.iommu_ioas_alloc, { flags: 0 });
  return r.ok ? ok(r.value.out.out_ioas_id) : r;
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
  let userVa: bigint;
  let length: bigint;
  if ('data' in a) {
    if (a.data.length === 0) return fail('EINVAL', 'ioasMap: empty data');
    const va = a.proc.mmap(0, pageAlign(a.data.length), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (!va.ok) return va;
    const w = put(a.proc, va.value, a.data);
    if (!w.ok) return w;
    userVa = big(va.value);
    length = big(a.data.length);
  } else {
    userVa = big(a.userVa);
    length = big(a.length);
  }
  const r = ioctl(a.proc, a.fd, IOMMU_IOAS_MAP, S.iommu_ioas_map, {
    flags: mapFlags(a), ioas_id: a.ioasId, user_va: userVa, length, iova: a.iova === undefined ? 0n : big(a.iova),
  });
  return r.ok ? ok({ iova: r.value.out.iova, userVa, length }) : r;
}

/** IOMMU_IOAS_MAP_FILE of [start, start + length) of memfd `file`: the IOVA used. */
export function ioasMapFile(a: MapCommon & { readonly file: number; readonly start: number | bigint; readonly length: number | bigint }): Result<bigint> {
  const r = ioctl(a.proc, a.fd, IOMMU_IOAS_MAP_FILE, S.iommu_ioas_map_file, {
    flags: mapFlags(a), ioas_id: a.ioasId, fd: a.file, start: big(a.start), length: big(a.length), iova: a.iova === undefined ? 0n : big(a.iova),
  });
  return r.ok ? ok(r.value.out.iova) : r;
}

/** IOMMU_IOAS_UNMAP of [iova, iova + length) (iova 0 + length 2^64-1: everything): the bytes unmapped. */
export function ioasUnmap(a: FdArgs & { readonly ioasId: number; readonly iova: number | bigint; readonly length: number | bigint }): Result<bigint> {
  const r = ioctl(a.proc, a.fd, IOMMU_IOAS_UNMAP, S.iommu_ioas_unmap, { ioas_id: a.ioasId, iova: big(a.iova), length: big(a.length) });
  return r.ok ? ok(r.value.out.length) : r;
}

/** IOMMU_IOAS_COPY of [srcIova, srcIova + length) of srcIoasId into dstIoasId: the destination IOVA. */
export function ioasCopy(a: FdArgs & {
  readonly srcIoasId: number; readonly dstIoasId: number; readonly srcIova: number | bigint; readonly length: number | bigint;
  readonly dstIova?: number | bigint; readonly readable?: boolean; readonly writeable?: boolean;
}): Result<bigint> {
  const r = ioctl(a.proc, a.fd, IOMMU_IOAS_COPY, S.iommu_ioas_copy, {
    flags: mapFlags({ ...a, ...(a.dstIova === undefined ? {} : { iova: a.dstIova }) }),
    dst_ioas_id: a.dstIoasId, src_ioas_id: a.srcIoasId, length: big(a.length), src_iova: big(a.srcIova),
    dst_iova: a.dstIova === undefined ? 0n : big(a.dstIova),
  });
  return r.ok ? ok(r.value.out.dst_iova) : r;
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
  const r = ioctl(a.proc, a.fd, IOMMU_OPTION, S.iommu_option, {
    option_id: a.optionId, op: a.op === 'get' ? IOMMU_OPTION_OP_GET : IOMMU_OPTION_OP_SET, object_id: a.objectId ?? 0,
    val64: a.op === 'set' ? big(a.value) : 0n,
  });
  return r.ok ? ok(r.value.out.val64) : r;
}

/** IOMMU_VFIO_IOAS: op GET/SET/CLEAR (IOMMU_VFIO_IOAS_*) of the compat IOAS; returns ioas_id as written back. */
export function vfioIoas(a: FdArgs & { readonly op: number; readonly ioasId?: number }): Result<number> {
  const r = ioctl(a.proc, a.fd, IOMMU_VFIO_IOAS, S.iommu_vfio_ioas, { op: a.op, ioas_id: a.ioasId ?? 0 });
  return r.ok ? ok(r.value.out.ioas_id) : r;
}

/** IOMMU_HWPT_ALLOC on `ptId` for device `devId`: the new HWPT id. `faultId` sets IOMMU_HWPT_FAULT_ID_VALID. */
export function hwptAlloc(a: FdArgs & {
  readonly devId: number; readonly ptId: number; readonly flags?: number; readonly faultId?: number;
  readonly data?: { readonly type: number; readonly bytes: Uint8Array };
}): Result<number> {
  const len = a.data?.bytes.length ?? 0;
  const r = ioctl(a.proc, a.fd, IOMMU_HWPT_ALLOC, S.iommu_hwpt_alloc, {
    flags: (a.flags ?? 0) | (a.faultId === undefined ? 0 : IOMMU_HWPT_FAULT_ID_VALID), dev_id: a.devId, pt_id: a.ptId,
    data_type: a.data?.type ?? IOMMU_HWPT_DATA_NONE, data_len: len, fault_id: a.faultId ?? 0,
  }, {
    bytes: len,
    fill: (base) => {
      if (a.data === undefined) return { data_uptr: 0n };
      const at = base + S.iommu_hwpt_alloc.sizeof;
      put(a.proc, at, a.data.bytes);
      return { data_uptr: big(at) };
    },
  });
  return r.ok ? ok(r.value.out.out_hwpt_id) : r;
}

/** struct iommu_hwpt_vtd_s1: the guest's stage-1 table for a nested HWPT. */
export interface VtdS1 {
  /** IOMMU_VTD_S1_* (default 0). */
  readonly flags?: number | bigint;
  /** GPA of the first-stage root. */
  readonly pgtblAddr: number | bigint;
  /** 48 or 57 (default 48). */
  readonly addrWidth?: number;
}

/** IOMMU_HWPT_ALLOC of a nested HWPT on the NEST_PARENT HWPT `parentId` with VT-d stage-1 data: the new id. */
export function hwptAllocNested(a: FdArgs & {
  readonly devId: number; readonly parentId: number; readonly s1: VtdS1; readonly flags?: number; readonly faultId?: number;
}): Result<number> {
  const bytes = S.iommu_hwpt_vtd_s1.encode({ flags: big(a.s1.flags ?? 0), pgtbl_addr: big(a.s1.pgtblAddr), addr_width: a.s1.addrWidth ?? 48 });
  return hwptAlloc({
    proc: a.proc, fd: a.fd, devId: a.devId, ptId: a.parentId, data: { type: IOMMU_HWPT_DATA_VTD_S1, bytes },
    ...(a.flags === undefined ? {} : { flags: a.flags }), ...(a.faultId === undefined ? {} : { faultId: a.faultId }),
  });
}

/** One struct iommu_hwpt_vtd_s1_invalidate entry. */
export interface VtdS1Invalidation {
  readonly addr: number | bigint;
  /** 4 KiB pages; 2^64 - 1 (with addr 0): everything. */
  readonly npages: number | bigint;
  /** IOMMU_VTD_INV_FLAGS_LEAF (default 0). */
  readonly flags?: number;
}

/**
 * IOMMU_HWPT_INVALIDATE of a nested HWPT with VT-d stage-1 entries: the number handled. On failure the
 * error carries the reason; `handled` (entry_num as written back) is in the returned object either way.
 */
export function hwptInvalidate(a: FdArgs & { readonly hwptId: number; readonly entries: readonly VtdS1Invalidation[] }): { readonly result: Result<number>; readonly handled: number } {
  const n = a.entries.length;
  const len = S.iommu_hwpt_vtd_s1_invalidate.sizeof;
  const raw = ioctlRaw(a.proc, a.fd, IOMMU_HWPT_INVALIDATE, S.iommu_hwpt_invalidate, {
    data_type: IOMMU_HWPT_INVALIDATE_DATA_VTD_S1, entry_len: len, entry_num: n,
  }, {
    bytes: n * len,
    fill: (base) => {
      const at = base + S.iommu_hwpt_invalidate.sizeof;
      const arr = new Uint8Array(n * len);
      a.entries.forEach((e, i) => S.iommu_hwpt_vtd_s1_invalidate.encode({ addr: big(e.addr), npages: big(e.npages), flags: e.flags ?? 0 }, arr.subarray(i * len, (i + 1) * len)));
      if (n > 0) put(a.proc, at, arr);
      return { hwpt_id: a.hwptId, data_uptr: n > 0 ? big(at) : 0n };
    },
  });
  if (!raw.ok) return { result: raw, handled: 0 };
  const handled = raw.value.out.entry_num;
  return { result: raw.value.r.ok ? ok(handled) : raw.value.r, handled };
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

function faultFile(proc: Process, faultFd: number): Result<FaultFile> {
  const f = proc.fds.get(faultFd);
  if (!f.ok) return f;
  if (!(f.value.file instanceof FaultFile)) return fail('EINVAL', `fd ${faultFd} is a ${f.value.file.kind}, not a fault fd`);
  return ok(f.value.file);
}

/** read(2) of up to `max` page request records (default 64) from a fault fd; [] when none is queued. */
export function faultRead(a: { readonly proc: Process; readonly faultFd: number; readonly max?: number }): Result<PageFault[]> {
  const file = faultFile(a.proc, a.faultFd);
  if (!file.ok) return file;
  const count = (a.max ?? 64) * PGFAULT;
  const buf = scratch(a.proc, count);
  if (!buf.ok) return buf;
  // read(2) through the same entry a C program (or the shim) reaches.
  const n = sysPread(a.proc, a.faultFd, buf.value, count, null);
  if (!n.ok) return n;
  const bytes = get(a.proc, buf.value, n.value);
  if (!bytes.ok) return bytes;
  const out: PageFault[] = [];
  for (let at = 0; at < n.value; at += PGFAULT) out.push(S.iommu_hwpt_pgfault.decodeAt(bytes.value, at));
  return ok(out);
}

/** write(2) of page responses to a fault fd: the number of responses the kernel took. */
export function faultRespond(a: { readonly proc: Process; readonly faultFd: number; readonly responses: readonly { readonly cookie: number; readonly code: number }[] }): Result<number> {
  const file = faultFile(a.proc, a.faultFd);
  if (!file.ok) return file;
  const bytes = new Uint8Array(a.responses.length * RESPONSE);
  for (let i = 0; i < a.responses.length; i++) {
    const x = a.responses[i] as { readonly cookie: number; readonly code: number };
    S.iommu_hwpt_page_response.encodeAt({ cookie: x.cookie, code: x.code }, bytes, i * RESPONSE);
  }
  const buf = scratch(a.proc, bytes.length);
  if (!buf.ok) return buf;
  const w = put(a.proc, buf.value, bytes);
  if (!w.ok) return w;
  const n = sysPwrite(a.proc, a.faultFd, buf.value, bytes.length, null);
  return n.ok ? ok(n.value / RESPONSE) : n;
}

// ---------------------------------------------------------------------------------------------------
// vIOMMU objects (uAPI reference §6.16, §6.17, §6.19, §6.20, §3).

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

/** IOMMU_HWPT_SET_DIRTY_TRACKING: turn hardware dirty tracking of HWPT `hwptId` on or off. */
export function setDirtyTracking(a: FdArgs & { readonly hwptId: number; readonly enabled: boolean }): Result {
  const r = ioctl(a.proc, a.fd, IOMMU_HWPT_SET_DIRTY_TRACKING, S.iommu_hwpt_set_dirty_tracking, {
    flags: a.enabled ? IOMMU_HWPT_DIRTY_TRACKING_ENABLE : 0, hwpt_id: a.hwptId,
  });
  return r.ok ? ok() : r;
}

/**
 * IOMMU_HWPT_GET_DIRTY_BITMAP over [iova, iova + length) at `pageSize` granules (default 4 KiB). The
 * bitmap is a fresh zeroed buffer in the process's scratch memory, after the struct; returns its bytes
 * (bit n, LSB first, is the granule at iova + n * pageSize). `noClear` leaves the dirty bits set.
 */
export function getDirtyBitmap(a: FdArgs & {
  readonly hwptId: number; readonly iova: number | bigint; readonly length: number | bigint;
  readonly pageSize?: number | bigint; readonly noClear?: boolean;
}): Result<Uint8Array> {
  const pageSize = big(a.pageSize ?? PAGE);
  // Whole u64 words, as the kernel's bitmap is an array of them. A zero page size or length gets one
  // word: the kernel refuses those itself.
  const bits = pageSize > 0n && big(a.length) > 0n ? (big(a.length) + pageSize - 1n) / pageSize : 1n;
  if (bits > 2n ** 33n) return fail('ENOMEM', `a bitmap of ${bits} bits is more than the typed API will allocate`);
  const bytes = Number(((bits + 63n) / 64n) * 8n);
  const at = S.iommu_hwpt_get_dirty_bitmap.sizeof;
  const r = ioctl(a.proc, a.fd, IOMMU_HWPT_GET_DIRTY_BITMAP, S.iommu_hwpt_get_dirty_bitmap, {
    hwpt_id: a.hwptId, flags: a.noClear === true ? IOMMU_HWPT_GET_DIRTY_BITMAP_NO_CLEAR : 0,
    iova: big(a.iova), length: big(a.length), page_size: pageSize,
  }, {
    bytes,
    fill: (base) => {
      put(a.proc, base + at, new Uint8Array(bytes));
      return { data: big(base + at) };
    },
  });
  if (!r.ok) return r;
  return get(a.proc, r.value.base + at, bytes);
}
