// Moving an extensible iommufd argument struct between user memory and the kernel, by main.c's rules:
// get_user(size); size < minimum → EINVAL; copy_struct_from_user() (bytes beyond the kernel's struct must
// be zero: E2BIG; a shorter struct is zero-extended); and on success copy_to_user(min(size, sizeof)).

import { fail, ok, type Result } from '../kernel/errno.ts';
import type { Mm } from '../kernel/mm/mm.ts';
import type { FieldMap, StructDef, StructValue } from './struct.ts';

/** The part of Mm this needs: user memory access returning EFAULT results. */
export type UserMemory = Pick<Mm, 'read' | 'write'>;
/** User memory access into and from part of a longer (reused) buffer. */
export type UserMemoryTo = Pick<Mm, 'readTo' | 'writeFrom'>;

export interface CopiedStruct<F extends FieldMap> {
  readonly value: StructValue<F>;
  /** The user's `size` field, as given. */
  readonly userSize: number;
  /** The kernel-sized bytes after zero extension (what value was decoded from). */
  readonly bytes: Uint8Array;
}

/** The chunk in which the zero check reads the tail (a u32 size can ask for up to 4 GiB). */
const TAIL_CHUNK = 4096;

/** check_zeroed_user(): ok(true) if [addr, addr + len) is all zero, ok(false) if not, EFAULT if unreadable. */
export function checkZeroedUser(mm: UserMemory, addr: number, len: number): Result<boolean> {
  const buf = new Uint8Array(Math.min(len, TAIL_CHUNK));
  for (let off = 0; off < len; off += TAIL_CHUNK) {
    const n = Math.min(TAIL_CHUNK, len - off);
    const chunk = n === buf.length ? buf : buf.subarray(0, n);
    const r = mm.read(addr + off, chunk);
    if (!r.ok) return r;
    if (chunk.some((b) => b !== 0)) return ok(false);
  }
  return ok(true);
}

/** Read the leading `u32 size` of an argument struct (get_user()). */
export function readUserSize(mm: UserMemory, userPtr: number): Result<number> {
  const b = new Uint8Array(4);
  const r = mm.read(userPtr, b);
  if (!r.ok) return fail('EFAULT', `cannot read the size field at 0x${userPtr.toString(16)}`);
  // Little-endian, from the bytes (a DataView would move the small array off the heap).
  return ok(((b[0] as number) | ((b[1] as number) << 8) | ((b[2] as number) << 16) | ((b[3] as number) << 24)) >>> 0);
}

/**
 * copy_struct_from_user() for an already-known user size: tail zero check (E2BIG/EFAULT), then copy
 * min(usize, sizeof) bytes (EFAULT) into a zeroed kernel buffer.
 */
export function copyStructBytes(mm: UserMemory, userPtr: number, ksize: number, usize: number): Result<Uint8Array> {
  const kbuf = new Uint8Array(ksize);
  if (usize > ksize) {
    const z = checkZeroedUser(mm, userPtr + ksize, usize - ksize);
    if (!z.ok) return fail('EFAULT', 'the bytes past the kernel struct are not readable');
    if (!z.value) return fail('E2BIG', `non-zero bytes past the kernel's ${ksize}-byte struct (user size ${usize})`);
  }
  // The common case, a user struct of the kernel's size, reads straight into the buffer (no view).
  const r = mm.read(userPtr, usize >= ksize ? kbuf : kbuf.subarray(0, usize));
  if (!r.ok) return fail('EFAULT', `cannot read the argument struct at 0x${userPtr.toString(16)}`);
  return ok(kbuf);
}

/**
 * The iommufd argument rules, in main.c's order (the ENOTTY check for the number is the dispatcher's).
 * `knownSize`: the size field as the caller already read it with readUserSize() (main.c reads it once).
 */
export function copyStructFromUser<F extends FieldMap>(
  mm: UserMemory, userPtr: number, struct: StructDef<F>, minSize: number, knownSize?: number,
): Result<CopiedStruct<F>> {
  let userSize: number;
  if (knownSize === undefined) {
    const size = readUserSize(mm, userPtr);
    if (!size.ok) return size;
    userSize = size.value;
  } else {
    userSize = knownSize;
  }
  if (userSize < minSize) return fail('EINVAL', `size ${userSize} < ${minSize}, the minimum for struct ${struct.name}`);
  const b = copyStructBytes(mm, userPtr, struct.sizeof, userSize);
  if (!b.ok) return b;
  return ok({ value: struct.decode(b.value), userSize, bytes: b.value });
}

const PAGE = 4096;

/**
 * get_user(size) and copy_struct_from_user() in one user copy, for the usual call: a struct that lies
 * inside one page and whose size field is the kernel's sizeof (no zero extension, no tail). Any other
 * case, an unreadable struct included, is null and the caller takes the general path (readUserSize, then
 * copyStructFromUser), which decides the errno. The one copy faults in only the page the general path's
 * size read faults in first, so taking it and falling back changes nothing. The struct's first field
 * must be its u32 size (every iommufd argument struct's is).
 */
export function copyExactStruct<F extends FieldMap>(mm: UserMemoryTo, userPtr: number, struct: StructDef<F>): CopiedStruct<F> | null {
  const kbuf = new Uint8Array(struct.sizeof);
  const value = copyExactStructTo(mm, userPtr, struct, kbuf);
  return value === null ? null : { value, userSize: struct.sizeof, bytes: kbuf };
}

/**
 * copyExactStruct() into the first sizeof bytes of `kbuf` (a reused buffer at least that long; `kwords`
 * its 32-bit view, see CopyBuffer): the decoded value, the bytes left in kbuf, or null (kbuf's contents
 * then undefined).
 */
export function copyExactStructTo<F extends FieldMap>(
  mm: UserMemoryTo, userPtr: number, struct: StructDef<F>, kbuf: Uint8Array, kwords?: Uint32Array,
): StructValue<F> | null {
  const ksize = struct.sizeof;
  if (!Number.isSafeInteger(userPtr) || userPtr < 0 || (userPtr % PAGE) + ksize > PAGE) return null;
  if (!mm.readTo(userPtr, kbuf, ksize, kwords).ok) return null;
  const usize = ((kbuf[0] as number) | ((kbuf[1] as number) << 8) | ((kbuf[2] as number) << 16) | ((kbuf[3] as number) << 24)) >>> 0;
  if (usize !== ksize) return null;
  return struct.decode(kbuf);
}

/** Write the struct back: min(userSize, sizeof) bytes (copy_to_user; EFAULT). */
export function copyStructToUser<F extends FieldMap>(
  mm: UserMemory, userPtr: number, struct: StructDef<F>, value: StructValue<F>, userSize: number,
): Result {
  return writeStructBytes(mm, userPtr, struct, struct.encode(value), userSize);
}

/** copyStructToUser() of an already encoded struct. */
export function writeStructBytes<F extends FieldMap>(mm: UserMemory, userPtr: number, struct: StructDef<F>, b: Uint8Array, userSize: number): Result {
  const r = mm.write(userPtr, userSize >= struct.sizeof ? b : b.subarray(0, userSize));
  if (!r.ok) return fail('EFAULT', `cannot write struct ${struct.name} back to 0x${userPtr.toString(16)}`);
  return r;
}

/** writeStructBytes() of the struct in the first sizeof bytes of `b` (a reused buffer at least that long; `words` its 32-bit view). */
export function writeStructFrom<F extends FieldMap>(
  mm: UserMemoryTo, userPtr: number, struct: StructDef<F>, b: Uint8Array, userSize: number, words?: Uint32Array,
): Result {
  const r = mm.writeFrom(userPtr, b, Math.min(userSize, struct.sizeof), words);
  if (!r.ok) return fail('EFAULT', `cannot write struct ${struct.name} back to 0x${userPtr.toString(16)}`);
  return r;
}
