// ioctl(fd, cmd, arg) on a VFIO group fd or device fd, from bytes. VFIO numbers collide across fd kinds
// (VFIO_IOMMU_MAP_DMA == VFIO_DEVICE_PCI_HOT_RESET, ...), so dispatch.ts routes by the file's kind and
// each kind has its own table here, as each has its own file_operations in Linux.
//
// Group fd (group.c): GET_STATUS, SET_CONTAINER (an `int *`), UNSET_CONTAINER, GET_DEVICE_FD (a string,
// strndup_user with a page limit: EFAULT, EINVAL without a NUL); anything else ENOTTY.
// Device fd (vfio_main.c, device_cdev.c, vfio_pci_core.c): BIND_IOMMUFD first (cdev only), then until
// access is granted every ioctl is EINVAL; ATTACH/DETACH_IOMMUFD_PT on cdev fds only (a group-path fd
// passes them to the driver: ENOTTY); GET_INFO, GET_REGION_INFO, GET_IRQ_INFO, SET_IRQS, RESET through
// the driver's ops with the argsz rules of vfio-argsz.ts; anything else ENOTTY.

import { fail, ok, type Result } from '../kernel/errno.ts';
import type { KernelFile, OpenFile } from '../kernel/process/file.ts';
import type { Process } from '../kernel/process/process.ts';
import { cdevAttach, cdevBind, cdevDetach, cdevPasidSupported } from '../kernel/vfio/device-cdev.ts';
import { VfioDeviceFile } from '../kernel/vfio/device-file.ts';
import { VfioGroupFile } from '../kernel/vfio/group-file.ts';
import {
  VFIO_DEVICE_ATTACH_IOMMUFD_PT, VFIO_DEVICE_BIND_IOMMUFD, VFIO_DEVICE_DETACH_IOMMUFD_PT, VFIO_GROUP_GET_DEVICE_FD,
  VFIO_GROUP_GET_STATUS, VFIO_GROUP_SET_CONTAINER, VFIO_GROUP_UNSET_CONTAINER,
} from './ioctl.ts';
import { copyArgszFromUser, copyArgszToUser } from './vfio-argsz.ts';
import { VFIO_DEVICE_ATTACH_PASID, VFIO_DEVICE_BIND_FLAG_TOKEN, VFIO_DEVICE_DETACH_PASID } from './vfio-consts.ts';
import { deviceDriverIoctl } from './vfio-device-ioctls.ts';
import * as V from './vfio-structs.ts';

export type VfioFileKind = 'group' | 'device';

/** Which VFIO fd kind a file is (null: not a VFIO group or device file). */
export function vfioFileKind(f: KernelFile): VfioFileKind | null {
  if (f instanceof VfioGroupFile) return 'group';
  if (f instanceof VfioDeviceFile) return 'device';
  return null;
}

const PAGE = 4096;
const hex = (n: number): string => `0x${(n >>> 0).toString(16)}`;

/** ioctl(2) on a VFIO group or device fd. */
export function vfioDispatch(proc: Process, open: OpenFile, cmd: number, arg: number): Result<number> {
  const f = open.file;
  if (f instanceof VfioGroupFile) return groupIoctl(proc, open, f, cmd >>> 0, arg);
  if (f instanceof VfioDeviceFile) return deviceIoctl(proc, f, cmd >>> 0, arg);
  return fail('ENOTTY', `a ${f.kind} is not a VFIO file`);
}

// ---- group fd ---------------------------------------------------------------------------------------

function groupIoctl(proc: Process, open: OpenFile, g: VfioGroupFile, cmd: number, arg: number): Result<number> {
  switch (cmd) {
    case VFIO_GROUP_GET_STATUS: {
      const minsz = V.vfio_group_status.offsetofend('flags');
      const c = copyArgszFromUser(proc.mm, arg, V.vfio_group_status, minsz);
      if (!c.ok) return c;
      const s = g.status();
      if (!s.ok) return s;
      const w = copyArgszToUser(proc.mm, arg, V.vfio_group_status, { ...c.value.value, flags: s.value }, minsz);
      return w.ok ? ok(0) : w;
    }
    case VFIO_GROUP_SET_CONTAINER: {
      const b = new Uint8Array(4);
      if (!proc.mm.read(arg, b).ok) return fail('EFAULT', 'cannot read the container fd');
      const r = g.setContainer(proc, new DataView(b.buffer).getInt32(0, true));
      return r.ok ? ok(0) : r;
    }
    case VFIO_GROUP_UNSET_CONTAINER: {
      const r = g.unsetContainer();
      return r.ok ? ok(0) : r;
    }
    case VFIO_GROUP_GET_DEVICE_FD: {
      const name = strndupUser(proc, arg, PAGE);
      if (!name.ok) return name;
      return g.getDeviceFd(proc, open, name.value);
    }
    default:
      return fail('ENOTTY', `${hex(cmd)} is not a VFIO group ioctl`);
  }
}

/** strndup_user(): a NUL-terminated string of at most `max` bytes (EFAULT; EINVAL when too long). */
function strndupUser(proc: Process, addr: number, max: number): Result<string> {
  const bytes: number[] = [];
  const one = new Uint8Array(1);
  for (let i = 0; i < max; i++) {
    if (!proc.mm.read(addr + i, one).ok) return fail('EFAULT', `cannot read the device name at ${hex(addr + i)}`);
    if (one[0] === 0) return ok(new TextDecoder().decode(new Uint8Array(bytes)));
    bytes.push(one[0] ?? 0);
  }
  return fail('EINVAL', `the device name is not NUL-terminated within ${max} bytes`);
}

// ---- device fd ----------------------------------------------------------------------------------------

function deviceIoctl(proc: Process, df: VfioDeviceFile, cmd: number, arg: number): Result<number> {
  if (cmd === VFIO_DEVICE_BIND_IOMMUFD) return bindIoctl(proc, df, arg);
  const g = df.granted();
  if (!g.ok) return g;
  if (df.group === null) {
    if (cmd === VFIO_DEVICE_ATTACH_IOMMUFD_PT) return attachIoctl(proc, df, arg);
    if (cmd === VFIO_DEVICE_DETACH_IOMMUFD_PT) return detachIoctl(proc, df, arg);
  }
  return deviceDriverIoctl(proc, g.value, cmd, arg);
}

function bindIoctl(proc: Process, df: VfioDeviceFile, arg: number): Result<number> {
  const S = V.vfio_device_bind_iommufd;
  const minsz = S.offsetofend('out_devid');
  const c = copyArgszFromUser(proc.mm, arg, S, minsz);
  if (!c.ok) return c;
  const b = c.value.value;
  if ((b.flags & ~VFIO_DEVICE_BIND_FLAG_TOKEN) !== 0 || b.iommufd < 0) {
    return fail('EINVAL', `BIND_IOMMUFD flags ${hex(b.flags)}, iommufd ${b.iommufd}`);
  }
  if ((b.flags & VFIO_DEVICE_BIND_FLAG_TOKEN) !== 0) {
    // The VF token: read (EFAULT) and accepted; no PF in the model sets one to compare with.
    if (c.value.argsz < S.offsetofend('token_uuid_ptr')) return fail('EINVAL', 'BIND_FLAG_TOKEN needs token_uuid_ptr within argsz');
    const t = new Uint8Array(S.sizeof);
    if (!proc.mm.read(arg, t).ok) return fail('EFAULT', 'cannot read token_uuid_ptr');
    const ptr = S.decode(t).token_uuid_ptr;
    if (ptr > BigInt(Number.MAX_SAFE_INTEGER) || !proc.mm.read(Number(ptr), new Uint8Array(16)).ok) return fail('EFAULT', 'cannot read the VF token UUID');
  }
  const r = cdevBind(df, proc, b.iommufd);
  if (!r.ok) return r;
  const out = new Uint8Array(4);
  new DataView(out.buffer).setUint32(0, r.value, true);
  if (!proc.mm.write(arg + S.offsetof('out_devid'), out).ok) {
    // out_close_device: the bind is undone.
    df.accessGranted = false;
    df.close();
    df.iommufdFile?.put();
    df.iommufdFile = null;
    if (df.vdev.group !== null) df.vdev.group.cdevDeviceOpenCnt--;
    return fail('EFAULT', 'cannot write out_devid');
  }
  return ok(0);
}

function attachIoctl(proc: Process, df: VfioDeviceFile, arg: number): Result<number> {
  const S = V.vfio_device_attach_iommufd_pt;
  const c = copyArgszFromUser(proc.mm, arg, S, S.offsetofend('pt_id'));
  if (!c.ok) return c;
  const a = c.value.value;
  if ((a.flags & ~VFIO_DEVICE_ATTACH_PASID) !== 0) return fail('EINVAL', `ATTACH_IOMMUFD_PT flags ${hex(a.flags)}`);
  let pasid: number | null = null;
  if ((a.flags & VFIO_DEVICE_ATTACH_PASID) !== 0) {
    if (!cdevPasidSupported(df, false)) return fail('EOPNOTSUPP', `${df.vdev.ops.name} does not attach PASIDs`);
    const p = readPasid(proc, arg, c.value.argsz, S.offsetof('pasid'));
    if (!p.ok) return p;
    pasid = p.value;
  }
  const r = cdevAttach(df, a.pt_id, pasid);
  if (!r.ok) return r;
  const out = new Uint8Array(4);
  new DataView(out.buffer).setUint32(0, r.value, true);
  if (!proc.mm.write(arg + S.offsetof('pt_id'), out).ok) {
    void cdevDetach(df, pasid);
    return fail('EFAULT', 'cannot write pt_id back');
  }
  return ok(0);
}

function detachIoctl(proc: Process, df: VfioDeviceFile, arg: number): Result<number> {
  const S = V.vfio_device_detach_iommufd_pt;
  const c = copyArgszFromUser(proc.mm, arg, S, S.offsetofend('flags'));
  if (!c.ok) return c;
  const d = c.value.value;
  if ((d.flags & ~VFIO_DEVICE_DETACH_PASID) !== 0) return fail('EINVAL', `DETACH_IOMMUFD_PT flags ${hex(d.flags)}`);
  let pasid: number | null = null;
  if ((d.flags & VFIO_DEVICE_DETACH_PASID) !== 0) {
    if (!cdevPasidSupported(df, true)) return fail('EOPNOTSUPP', `${df.vdev.ops.name} does not detach PASIDs`);
    const p = readPasid(proc, arg, c.value.argsz, S.offsetof('pasid'));
    if (!p.ok) return p;
    pasid = p.value;
  }
  const r = cdevDetach(df, pasid);
  return r.ok ? ok(0) : r;
}

/** The `pasid` field, which only the PASID flag makes mandatory: argsz must reach its end. */
function readPasid(proc: Process, arg: number, argsz: number, at: number): Result<number> {
  if (argsz < at + 4) return fail('EINVAL', `argsz ${argsz} does not reach the end of pasid (${at + 4})`);
  const b = new Uint8Array(4);
  if (!proc.mm.read(arg + at, b).ok) return fail('EFAULT', 'cannot read pasid');
  return ok(new DataView(b.buffer).getUint32(0, true));
}
