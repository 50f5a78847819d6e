// eventfd(2) (fs/eventfd.c): a 64-bit counter behind a file. User space reads and writes 8-byte values;
// the kernel side signals it (eventfd_signal()), which is how VFIO delivers a device's interrupts.
//
//  * read: a buffer under 8 bytes → EINVAL; counter 0 → EAGAIN (the model never blocks, as O_NONBLOCK);
//    otherwise the counter (or 1 with EFD_SEMAPHORE) is returned and subtracted.
//  * write: under 8 bytes → EINVAL; the value 0xffffffffffffffff → EINVAL; a sum that would reach
//    0xffffffffffffffff → EAGAIN (would block); otherwise added.
//  * eventfd_signal(): adds 1, saturating below the maximum (Linux WARNs and drops the overflow).

import { fail, ok, type Result } from '../errno.ts';
import type { KernelFile } from '../process/file.ts';
import type { Process } from '../process/process.ts';

export const EFD_SEMAPHORE = 1;
export const EFD_CLOEXEC = 0o2000000;
export const EFD_NONBLOCK = 0o4000;
const ULLONG_MAX = (1n << 64n) - 1n;

export class EventFd implements KernelFile {
  readonly kind = 'eventfd';
  private counter: bigint;
  /** How many times the kernel side signalled it (for tests and traces). */
  signals = 0;
  private closed = false;

  constructor(initval = 0, readonly flags = 0) {
    this.counter = BigInt(initval >>> 0);
  }

  get count(): bigint { return this.counter; }
  get isReleased(): boolean { return this.closed; }

  /** eventfd_signal(): the kernel adds 1. */
  signal(n = 1n): void {
    this.signals++;
    this.counter = this.counter + n >= ULLONG_MAX ? ULLONG_MAX - 1n : this.counter + n;
  }

  /** eventfd_read into a kernel value. */
  readValue(): Result<bigint> {
    if (this.counter === 0n) return fail('EAGAIN', 'the eventfd counter is 0');
    const v = (this.flags & EFD_SEMAPHORE) !== 0 ? 1n : this.counter;
    this.counter -= v;
    return ok(v);
  }

  /** eventfd_write of a kernel value. */
  writeValue(v: bigint): Result {
    if (v === ULLONG_MAX) return fail('EINVAL', 'an eventfd cannot be written 0xffffffffffffffff');
    if (ULLONG_MAX - this.counter <= v) return fail('EAGAIN', 'the eventfd counter would overflow');
    this.counter += v;
    return ok();
  }

  /** read(2) on the fd: 8 bytes to `userBuf`. */
  read(proc: Process, userBuf: number, count: number): Result<number> {
    if (count < 8) return fail('EINVAL', `an eventfd read needs 8 bytes, got ${count}`);
    const v = this.readValue();
    if (!v.ok) return v;
    const b = new Uint8Array(8);
    new DataView(b.buffer).setBigUint64(0, v.value, true);
    const w = proc.mm.write(userBuf, b);
    if (!w.ok) {
      this.counter += v.value;
      return fail('EFAULT', 'cannot write the eventfd value');
    }
    return ok(8);
  }

  /** write(2) on the fd: 8 bytes from `userBuf`. */
  write(proc: Process, userBuf: number, count: number): Result<number> {
    if (count < 8) return fail('EINVAL', `an eventfd write needs 8 bytes, got ${count}`);
    const b = new Uint8Array(8);
    if (!proc.mm.read(userBuf, b).ok) return fail('EFAULT', 'cannot read the eventfd value');
    const r = this.writeValue(new DataView(b.buffer).getBigUint64(0, true));
    return r.ok ? ok(8) : r;
  }

  release(): void { this.closed = true; }
}

/** eventfd2(initval, flags): a new eventfd on the lowest free fd. */
export function eventfd(proc: Process, initval = 0, flags = 0): Result<number> {
  if ((flags & ~(EFD_SEMAPHORE | EFD_CLOEXEC | EFD_NONBLOCK)) !== 0) return fail('EINVAL', `eventfd flags 0x${flags.toString(16)}`);
  return proc.fds.install(new EventFd(initval, flags));
}

/** eventfd_ctx_fdget(): EBADF for a closed fd, EINVAL for a file that is not an eventfd. */
export function eventfdGet(proc: Process, fd: number): Result<EventFd> {
  const f = proc.fds.get(fd);
  if (!f.ok) return f;
  const file = f.value.file;
  if (!(file instanceof EventFd)) return fail('EINVAL', `fd ${fd} is a ${file.kind}, not an eventfd`);
  return ok(file);
}
