// The plumbing of the typed iommufd API (api.ts and its parts): the per-process scratch buffer the structs
// are encoded into, and ioctl through the byte-level dispatch() with the struct read back afterwards.

import { ok, type KernelError, type Result } from '../kernel/errno.ts';
import { MAP_ANONYMOUS, MAP_PRIVATE, PROT_READ, PROT_WRITE } from '../kernel/mm/mman.ts';
import { CopyBuffer } from '../kernel/mm/uaccess.ts';
import type { Process } from '../kernel/process/process.ts';
import { dispatch } from './dispatch.ts';
import { IOMMU_IOAS_MAP_FIXED_IOVA, IOMMU_IOAS_MAP_READABLE, IOMMU_IOAS_MAP_WRITEABLE } from './iommufd-consts.ts';
import { u64Big } from './le-scalars.ts';
import { u32, type FieldMap, type FieldValue, type StructDef, type StructValue } from './struct.ts';

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

/** scratch() as the address itself, or the error: the calls on the fault path make no Result for it. */
export function scratchAddr(proc: Process, bytes: number): number | KernelError {
  const have = proc.apiScratch;
  if (have !== null && have.size >= bytes) return have.addr;
  const r = scratch(proc, bytes);
  return r.ok ? r.value : r;
}

/** The least a reused API argument buffer holds (every iommufd struct and a few fault records fit). */
const ARG_BUF = 256;

/**
 * Take the process's reused encoding buffer (Process.apiArgBuf), at least `bytes` long, instead of a new
 * array per call; give it back with giveArgBuf(). Its contents are whatever the last call left.
 */
export function takeArgBuf(proc: Process, bytes: number): CopyBuffer {
  const b = proc.apiArgBuf;
  proc.apiArgBuf = null;
  return b !== null && b.bytes.length >= bytes ? b : new CopyBuffer(Math.max(ARG_BUF, bytes));
}

export function giveArgBuf(proc: Process, b: CopyBuffer): void {
  proc.apiArgBuf = b;
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

/** The leading u32 size of an argument struct, little-endian, in place. */
function putLe32(b: Uint8Array, v: number): void {
  b[0] = v & 0xff;
  b[1] = (v >>> 8) & 0xff;
  b[2] = (v >>> 16) & 0xff;
  b[3] = (v >>> 24) & 0xff;
}

/** What ioctlRaw() and ioctlField() add to the struct: payload bytes after it, and fields that need its address. */
export interface IoctlExtra<F extends FieldMap> {
  readonly bytes?: number;
  readonly fill?: (base: number) => Partial<StructValue<F>>;
}

/**
 * Encode { ...fields, ...fill(base), size: sizeof } in the first sizeof bytes of `b` (zeroed first): the
 * scratch address the struct is for (scratch() comes first, as fill() needs it).
 */
function encodeArg<F extends FieldMap>(
  proc: Process, struct: StructDef<F>, fields: Partial<StructValue<F>>, extra: IoctlExtra<F> | undefined, buf: CopyBuffer,
): number | KernelError {
  const b = buf.bytes;
  const base = scratchAddr(proc, struct.sizeof + (extra?.bytes ?? 0));
  if (typeof base !== 'number') return base;
  // One buffer, each field group written over the one before.
  const n = struct.sizeof;
  for (let i = 0; i < n; i++) b[i] = 0;
  struct.encodeAt(fields, b, 0);
  if (extra?.fill !== undefined) struct.encodeAt(extra.fill(base), b, 0);
  const first = struct.fields[0];
  if (first !== undefined && first.name === 'size' && first.type === u32 && first.offset === 0) putLe32(b, n);
  else struct.encodeAt({ size: n } as Partial<StructValue<F>>, b, 0);
  return base;
}

/**
 * Encode `fields` at the start of the scratch buffer (followed by `payload` at `payloadOffset`), call
 * dispatch(), and decode the struct from user memory afterwards.
 */
export function ioctlRaw<F extends FieldMap>(
  proc: Process, fd: number, cmd: number, struct: StructDef<F>, fields: Partial<StructValue<F>>, extra?: IoctlExtra<F>,
): Result<Raw<F> & { base: number }> {
  const b = takeArgBuf(proc, struct.sizeof);
  const base = encodeArg(proc, struct, fields, extra, b);
  const w = typeof base === 'number' ? proc.mm.writeFrom(base, b.bytes, struct.sizeof, b.words) : base;
  if (!w.ok) {
    giveArgBuf(proc, b);
    return w;
  }
  const r = dispatch(proc, fd, cmd, base as number);
  const back = proc.mm.readTo(base as number, b.bytes, struct.sizeof, b.words);
  const out = back.ok ? struct.decode(b.bytes) : null;
  giveArgBuf(proc, b);
  if (out === null) return back as KernelError;
  return ok({ r, out, base: base as number });
}

/**
 * ioctl() for a call that wants one field of the struct the kernel left: reads back and decodes that
 * field alone. The scratch buffer is page-aligned, so a struct no larger than a page lies in one page and
 * the field reads exactly when the whole struct would (ioctlRaw's read-back); a larger one is read whole.
 */
export function ioctlField<F extends FieldMap, K extends keyof F & string>(
  proc: Process, fd: number, cmd: number, struct: StructDef<F>, fields: Partial<StructValue<F>>, name: K, extra?: IoctlExtra<F>,
): Result<FieldValue<F[K]>> {
  if (struct.sizeof > PAGE) {
    const raw = ioctl(proc, fd, cmd, struct, fields, extra);
    return raw.ok ? ok(raw.value.out[name]) : raw;
  }
  const b = takeArgBuf(proc, struct.sizeof);
  const base = encodeArg(proc, struct, fields, extra, b);
  if (typeof base !== 'number') {
    giveArgBuf(proc, b);
    return base;
  }
  return ioctlFieldEncoded(proc, fd, cmd, struct, name, b, base);
}

/**
 * The rest of ioctlField() for a struct (at most a page) already encoded in the first sizeof bytes of `b`
 * (taken with takeArgBuf(); given back here), for scratch address `base`: copy it there, ioctl, read back
 * and decode field `name`.
 */
export function ioctlFieldEncoded<F extends FieldMap, K extends keyof F & string>(
  proc: Process, fd: number, cmd: number, struct: StructDef<F>, name: K, b: CopyBuffer, base: number,
): Result<FieldValue<F[K]>> {
  const w = proc.mm.writeFrom(base, b.bytes, struct.sizeof, b.words);
  if (!w.ok) {
    giveArgBuf(proc, b);
    return w;
  }
  const r = dispatch(proc, fd, cmd, base);
  const f = struct.field(name);
  const back = proc.mm.readTo(base + f.offset, b.bytes, f.size, b.words);
  // decodeField reads the field's bytes from the start of the (longer) buffer.
  const v = back.ok && r.ok ? struct.decodeField(name, b.bytes) : undefined;
  giveArgBuf(proc, b);
  if (!back.ok) return back;
  if (!r.ok) return r;
  return ok(v as FieldValue<F[K]>);
}

/** ioctlRaw, with the errno surfaced as the Result. */
export function ioctl<F extends FieldMap>(
  proc: Process, fd: number, cmd: number, struct: StructDef<F>, fields: Partial<StructValue<F>>, extra?: IoctlExtra<F>,
): Result<Raw<F> & { base: number }> {
  const raw = ioctlRaw(proc, fd, cmd, struct, fields, extra);
  if (!raw.ok) return raw;
  if (!raw.value.r.ok) return raw.value.r;
  return raw;
}

/** BigInt(n) (a bigint as it is; a number through u64Big's memo). */
export const big = (n: number | bigint): bigint => typeof n === 'bigint' ? n : u64Big(n);

export function mapFlags(o: { readonly iova?: number | bigint; readonly readable?: boolean; readonly writeable?: boolean }): number {
  return (o.iova === undefined ? 0 : IOMMU_IOAS_MAP_FIXED_IOVA) |
    (o.readable === false ? 0 : IOMMU_IOAS_MAP_READABLE) | (o.writeable === false ? 0 : IOMMU_IOAS_MAP_WRITEABLE);
}

