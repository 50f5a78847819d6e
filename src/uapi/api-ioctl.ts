// The plumbing of the typed iommufd API (api.ts and its parts): the per-process scratch buffer the structs
// are encoded into, and ioctl through the byte-level dispatch() with the struct read back afterwards.

import { ok, type Result } from '../kernel/errno.ts';
import { MAP_ANONYMOUS, MAP_PRIVATE, PROT_READ, PROT_WRITE } from '../kernel/mm/mman.ts';
import type { Process } from '../kernel/process/process.ts';
import { dispatch } from './dispatch.ts';
import { IOMMU_IOAS_MAP_FIXED_IOVA, IOMMU_IOAS_MAP_READABLE, IOMMU_IOAS_MAP_WRITEABLE } from './iommufd-consts.ts';
import type { FieldMap, StructDef, StructValue } from './struct.ts';

const PAGE = 4096;
const pageAlign = (n: number): number => Math.ceil(n / PAGE) * PAGE;

/** The fields every call takes: the process and its iommufd. */
export interface FdArgs { readonly proc: Process; readonly fd: number }

// ---------------------------------------------------------------------------------------------------
// Scratch memory: one anonymous mapping per process (Process.apiScratch), grown (remapped) when a call
// needs more.

/** A user buffer of at least `bytes` in `proc` (reused between calls; contents are not kept). */
export function scratch(proc: Process, bytes: number): Result<number> {
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
export function put(proc: Process, at: number, data: Uint8Array): Result {
  return proc.mm.write(at, data);
}

export function get(proc: Process, at: number, len: number): Result<Uint8Array> {
  const b = new Uint8Array(len);
  const r = proc.mm.read(at, b);
  return r.ok ? ok(b) : r;
}

/** The result of one ioctl: the errno and the struct as the kernel left it (written back or not). */
export interface Raw<F extends FieldMap> { readonly r: Result<number>; readonly out: StructValue<F> }

/**
 * Encode `fields` at the start of the scratch buffer (followed by `payload` at `payloadOffset`), call
 * dispatch(), and decode the struct from user memory afterwards.
 */
export function ioctlRaw<F extends FieldMap>(
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
export function ioctl<F extends FieldMap>(
  proc: Process, fd: number, cmd: number, struct: StructDef<F>, fields: Partial<StructValue<F>>,
  extra: { bytes?: number; fill?: (base: number) => Partial<StructValue<F>> } = {},
): Result<Raw<F> & { base: number }> {
  const raw = ioctlRaw(proc, fd, cmd, struct, fields, extra);
  if (!raw.ok) return raw;
  if (!raw.value.r.ok) return raw.value.r;
  return raw;
}

export const big = (n: number | bigint): bigint => BigInt(n);

export function mapFlags(o: { readonly iova?: number | bigint; readonly readable?: boolean; readonly writeable?: boolean }): number {
  return (o.iova === undefined ? 0 : IOMMU_IOAS_MAP_FIXED_IOVA) |
    (o.readable === false ? 0 : IOMMU_IOAS_MAP_READABLE) | (o.writeable === false ? 0 : IOMMU_IOAS_MAP_WRITEABLE);
}

