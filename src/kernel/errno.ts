// Linux errno values (include/uapi/asm-generic/errno-base.h, errno.h) and the result type kernel code
// returns instead of throwing: a user's mistake is a value, as a syscall's -errno is. Exceptions are left
// for bugs in ioasis itself (the WARN_ON/BUG_ON cases).

export const ERRNO = {
  EPERM: { code: 1, message: 'Operation not permitted' },
  ENOENT: { code: 2, message: 'No such file or directory' },
  ESRCH: { code: 3, message: 'No such process' },
  EIO: { code: 5, message: 'Input/output error' },
  ENXIO: { code: 6, message: 'No such device or address' },
  E2BIG: { code: 7, message: 'Argument list too long' },
  EBADF: { code: 9, message: 'Bad file descriptor' },
  EAGAIN: { code: 11, message: 'Resource temporarily unavailable' },
  ENOMEM: { code: 12, message: 'Cannot allocate memory' },
  EACCES: { code: 13, message: 'Permission denied' },
  EFAULT: { code: 14, message: 'Bad address' },
  EBUSY: { code: 16, message: 'Device or resource busy' },
  EEXIST: { code: 17, message: 'File exists' },
  ENODEV: { code: 19, message: 'No such device' },
  ENOTDIR: { code: 20, message: 'Not a directory' },
  EISDIR: { code: 21, message: 'Is a directory' },
  EINVAL: { code: 22, message: 'Invalid argument' },
  EMFILE: { code: 24, message: 'Too many open files' },
  ENOTTY: { code: 25, message: 'Inappropriate ioctl for device' },
  EFBIG: { code: 27, message: 'File too large' },
  ENOSPC: { code: 28, message: 'No space left on device' },
  ESPIPE: { code: 29, message: 'Illegal seek' },
  ERANGE: { code: 34, message: 'Numerical result out of range' },
  EDEADLOCK: { code: 35, message: 'Resource deadlock avoided' },
  ELOOP: { code: 40, message: 'Too many levels of symbolic links' },
  EBADE: { code: 52, message: 'Invalid exchange' },
  EOVERFLOW: { code: 75, message: 'Value too large for defined data type' },
  EBADFD: { code: 77, message: 'File descriptor in bad state' },
  EUSERS: { code: 87, message: 'Too many users' },
  EMSGSIZE: { code: 90, message: 'Message too long' },
  EOPNOTSUPP: { code: 95, message: 'Operation not supported' },
  EADDRINUSE: { code: 98, message: 'Address already in use' },
} as const;

export type ErrnoName = keyof typeof ERRNO;

/** A failed kernel operation: the errno user space would see, and why, in one sentence. */
export interface KernelError {
  readonly ok: false;
  readonly errno: ErrnoName;
  /** The positive Linux errno value (the syscall returns its negation). */
  readonly code: number;
  readonly reason: string;
}

export interface KernelOk<T> {
  readonly ok: true;
  readonly value: T;
}

export type Result<T = undefined> = KernelOk<T> | KernelError;

export function fail(errno: ErrnoName, reason?: string): KernelError {
  const e = ERRNO[errno];
  return { ok: false, errno, code: e.code, reason: reason ?? e.message };
}

/** The success without a value: results are immutable, so one object serves every call of ok(). */
const OK_VOID: KernelOk<undefined> = { ok: true, value: undefined };

export function ok(): KernelOk<undefined>;
export function ok<T>(value: T): KernelOk<T>;
export function ok<T>(value?: T): KernelOk<T | undefined> {
  return value === undefined ? OK_VOID : { ok: true, value };
}

/** The errno name for a numeric value (for decoding a -errno), or undefined. */
export function errnoName(code: number): ErrnoName | undefined {
  for (const [name, e] of Object.entries(ERRNO)) if (e.code === code) return name as ErrnoName;
  return undefined;
}
