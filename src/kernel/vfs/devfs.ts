// /dev as the model has it: character-device nodes registered by drivers (misc devices such as /dev/iommu
// and /dev/vfio/vfio, VFIO's group and device cdevs) and open(2) on a path. A node carries what fstat()
// shows (mode, owner, major:minor), so a shim can answer S_ISCHR and st_rdev checks as a real kernel
// would. Opening runs the driver's open (chrdev_open -> fops->open) and installs the file on the lowest
// free fd; the permission check is the DAC one (owner or other bits, CAP_DAC_OVERRIDE bypasses).

import { fail, ok, type Result } from '../errno.ts';
import type { KernelFile } from '../process/file.ts';
import type { Process } from '../process/process.ts';

export const O_RDONLY = 0;
export const O_WRONLY = 1;
export const O_RDWR = 2;
export const O_ACCMODE = 3;
export const O_NONBLOCK = 0o4000;
export const O_CLOEXEC = 0o2000000;

export interface DevNodeInfo {
  /** Permission bits (0o666 for /dev/vfio/vfio and /dev/iommu, 0o600 for VFIO group nodes). */
  mode: number;
  uid: number;
  gid: number;
  readonly major: number;
  readonly minor: number;
}

/** The driver's open: a new file, or the errno open(2) returns (EBUSY, ENODEV, EPERM, ...). */
export type DevOpener = (proc: Process, flags: number) => Result<KernelFile>;

interface DevNode {
  readonly info: DevNodeInfo;
  readonly open: DevOpener;
}

export class DevFs {
  private readonly nodes = new Map<string, DevNode>();

  /** device_create() + cdev_add(): the node appears. A path registered twice is a kernel bug. */
  register(path: string, info: DevNodeInfo, open: DevOpener): void {
    const p = normalise(path);
    if (this.nodes.has(p)) throw new Error(`${p} is already registered`);
    this.nodes.set(p, { info, open });
  }

  /** device_destroy(): the node disappears; open files stay valid. */
  unregister(path: string): void { this.nodes.delete(normalise(path)); }

  exists(path: string): boolean { return this.nodes.has(normalise(path)); }
  stat(path: string): DevNodeInfo | undefined { return this.nodes.get(normalise(path))?.info; }
  /** Every node, sorted by path (ls -R /dev). */
  list(): { path: string; info: DevNodeInfo }[] {
    return [...this.nodes].map(([path, n]) => ({ path, info: n.info })).sort((a, b) => a.path.localeCompare(b.path));
  }

  /** chown/chmod, as udev rules or an administrator would (`chown qemu /dev/vfio/12`). */
  chown(path: string, uid: number, gid: number, mode?: number): Result {
    const n = this.nodes.get(normalise(path));
    if (n === undefined) return fail('ENOENT', `${path} does not exist`);
    n.info.uid = uid;
    n.info.gid = gid;
    if (mode !== undefined) n.info.mode = mode & 0o7777;
    return ok();
  }

  /** open(2): ENOENT for a missing node, EACCES without permission, else the driver's open; the new fd. */
  open(proc: Process, path: string, flags: number = O_RDWR): Result<number> {
    const p = normalise(path);
    const n = this.nodes.get(p);
    if (n === undefined) return fail('ENOENT', `${p} does not exist`);
    if (!mayOpen(proc, n.info, flags)) {
      return fail('EACCES', `${p} is mode ${n.info.mode.toString(8).padStart(4, '0')} owned by uid ${n.info.uid}: uid ${proc.euid} may not open it ${accessName(flags)}`);
    }
    const f = n.open(proc, flags);
    if (!f.ok) return f;
    return proc.fds.install(f.value);
  }
}

function normalise(path: string): string {
  return path.replace(/\/+/g, '/').replace(/\/$/, '');
}

function accessName(flags: number): string {
  switch (flags & O_ACCMODE) {
    case O_RDONLY: return 'for reading';
    case O_WRONLY: return 'for writing';
    default: return 'for reading and writing';
  }
}

// generic_permission() for a char device: owner bits for the owner, else other bits (groups are not
// modelled); CAP_DAC_OVERRIDE opens anything.
function mayOpen(proc: Process, info: DevNodeInfo, flags: number): boolean {
  if (proc.capable('CAP_DAC_OVERRIDE')) return true;
  const bits = proc.euid === info.uid ? (info.mode >> 6) & 7 : info.mode & 7;
  const acc = flags & O_ACCMODE;
  const need = acc === O_RDONLY ? 4 : acc === O_WRONLY ? 2 : 6;
  return (bits & need) === need;
}
