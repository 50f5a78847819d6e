// read(2)/write(2)/pread(2)/pwrite(2) on the files that have them here: a VFIO device fd (region offsets;
// EINVAL until a cdev fd is bound) and an eventfd (8-byte counter; not seekable, so pread/pwrite are
// ESPIPE), and an iommufd FAULT fd (40-byte page-request records out, 8-byte responses in; its own
// offset rules), and an iommufd vEVENTQ fd (read only). Other files: EINVAL, as a file without read/write
// ops answers.

import { fail, type Result } from '../kernel/errno.ts';
import type { Process } from '../kernel/process/process.ts';
import { VfioDeviceFile } from '../kernel/vfio/device-file.ts';
import { EventFd } from '../kernel/vfs/eventfd.ts';
import { FaultFile } from '../kernel/iommufd/fault-fd.ts';
import { VeventqFile } from '../kernel/iommufd/veventq-fd.ts';

/** pread(fd, buf, count, offset); `offset` null is read(2) (a VFIO device fd reads at offset 0). */
export function sysPread(proc: Process, fd: number, userBuf: number, count: number, offset: number | null): Result<number> {
  const open = proc.fds.lookup(fd);
  if (open === undefined) return proc.fds.badFd(fd);
  const file = open.file;
  // The fault fd first: it is read once per page fault (the file classes are unrelated, so the order of
  // the tests decides nothing).
  if (file instanceof FaultFile) return file.read(proc, userBuf, count, offset ?? 0);
  if (file instanceof VfioDeviceFile) return file.read(proc, userBuf, count, offset ?? 0);
  if (file instanceof EventFd) return offset !== null ? fail('ESPIPE', 'an eventfd is not seekable') : file.read(proc, userBuf, count);
  if (file instanceof VeventqFile) return file.read(proc, userBuf, count, offset ?? 0);
  return fail('EINVAL', `a ${file.kind} cannot be read`);
}

/** pwrite(fd, buf, count, offset); `offset` null is write(2). */
export function sysPwrite(proc: Process, fd: number, userBuf: number, count: number, offset: number | null): Result<number> {
  const open = proc.fds.lookup(fd);
  if (open === undefined) return proc.fds.badFd(fd);
  const file = open.file;
  if (file instanceof FaultFile) return file.write(proc, userBuf, count, offset ?? 0);
  if (file instanceof VfioDeviceFile) return file.write(proc, userBuf, count, offset ?? 0);
  if (file instanceof EventFd) return offset !== null ? fail('ESPIPE', 'an eventfd is not seekable') : file.write(proc, userBuf, count);
  return fail('EINVAL', `a ${file.kind} cannot be written`);
}
