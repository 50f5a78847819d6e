// VFIO steps: the group path (/dev/vfio/N, a container or an iommufd) and the cdev path
// (/dev/vfio/devices/vfioN bound to an iommufd), each one ioctl through the typed VFIO API.

import { z } from 'zod';
import * as vfio from '../../uapi/vfio-api.ts';
import { commonFields, stepKind } from '../step-kind.ts';
import type { RunState, ScenarioProcess } from '../run-state.ts';
import { numberLike } from '../values.ts';
import { fromResult } from './outcome.ts';

const onFd = { process: z.string().min(1), fd: z.union([z.string(), z.number().int()]) };

function args(s: RunState, st: { process: string; fd: string | number }): { p: ScenarioProcess; a: vfio.VfioFdArgs } {
  const p = s.process(st.process);
  return { p, a: { proc: p.proc, fd: s.fd(p, st.fd) } };
}

const GROUP_FLAGS = (f: number): string => [f & 1 ? 'VIABLE' : '', f & 2 ? 'CONTAINER_SET' : ''].filter((x) => x !== '').join('|') || 'none';

export const groupStatus = stepKind({
  name: 'group-status',
  summary: 'VFIO_GROUP_GET_STATUS: VIABLE (every device of the group is free for user space) and CONTAINER_SET',
  fields: { ...onFd, ...commonFields },
  run(s, st) {
    const { p, a } = args(s, st);
    return fromResult(vfio.groupGetStatus(a), `${p.name}: VFIO_GROUP_GET_STATUS`, (f) => `${p.name}: VFIO_GROUP_GET_STATUS → ${GROUP_FLAGS(f)}`, (f) => ({ value: BigInt(f) }));
  },
});

export const groupSetContainer = stepKind({
  name: 'group-set-container',
  summary: 'VFIO_GROUP_SET_CONTAINER with a container fd or an iommufd',
  fields: { ...onFd, container: z.union([z.string(), z.number().int()]), ...commonFields },
  run(s, st) {
    const { p, a } = args(s, st);
    const c = s.fd(p, st.container);
    return fromResult(vfio.groupSetContainer({ ...a, containerFd: c }), `${p.name}: VFIO_GROUP_SET_CONTAINER`, () => `${p.name}: VFIO_GROUP_SET_CONTAINER (fd ${c})`);
  },
});

export const groupGetDeviceFd = stepKind({
  name: 'group-get-device-fd',
  summary: 'VFIO_GROUP_GET_DEVICE_FD by device name; `as` names the new device fd',
  fields: { ...onFd, device: z.string().min(1), as: z.string().min(1).optional(), ...commonFields },
  run(s, st) {
    const { p, a } = args(s, st);
    const name = s.kernel.device(st.device)?.bdf ?? st.device;
    return fromResult(vfio.groupGetDeviceFd({ ...a, name }), `${p.name}: VFIO_GROUP_GET_DEVICE_FD ${name}`, (fd) => {
      if (st.as !== undefined) p.fds.set(st.as, fd);
      return `${p.name}: VFIO_GROUP_GET_DEVICE_FD ${name} → fd ${fd}`;
    }, (fd) => ({ value: BigInt(fd) }));
  },
});

export const deviceBind = stepKind({
  name: 'device-bind',
  summary: 'VFIO_DEVICE_BIND_IOMMUFD on a cdev fd; `as` stores the returned dev_id',
  fields: { ...onFd, iommufd: z.union([z.string(), z.number().int()]).default('iommufd'), as: z.string().optional(), ...commonFields },
  run(s, st) {
    const { p, a } = args(s, st);
    return fromResult(vfio.deviceBindIommufd({ ...a, iommufd: s.fd(p, st.iommufd) }), `${p.name}: VFIO_DEVICE_BIND_IOMMUFD`, (id) => {
      s.set(st.as, id);
      return `${p.name}: VFIO_DEVICE_BIND_IOMMUFD → dev_id ${id}`;
    }, (id) => ({ value: BigInt(id) }));
  },
});

export const deviceAttach = stepKind({
  name: 'device-attach',
  summary: 'VFIO_DEVICE_ATTACH_IOMMUFD_PT to an IOAS or HWPT (optionally at a PASID); `as` stores the attached HWPT id',
  fields: { ...onFd, pt: numberLike, pasid: numberLike.optional(), as: z.string().optional(), ...commonFields },
  run(s, st) {
    const { p, a } = args(s, st);
    const pt = s.num(st.pt, p);
    const pasid = st.pasid === undefined ? undefined : s.num(st.pasid, p);
    const r = vfio.deviceAttachPt({ ...a, ptId: pt, ...(pasid !== undefined ? { pasid } : {}) });
    const at = pasid !== undefined ? ` at PASID ${pasid}` : '';
    return fromResult(r, `${p.name}: VFIO_DEVICE_ATTACH_IOMMUFD_PT ${pt}${at}`, (hwpt) => {
      s.set(st.as, hwpt);
      return `${p.name}: VFIO_DEVICE_ATTACH_IOMMUFD_PT ${pt}${at} → HWPT ${hwpt}`;
    }, (hwpt) => ({ value: BigInt(hwpt) }));
  },
});

export const deviceDetach = stepKind({
  name: 'device-detach',
  summary: 'VFIO_DEVICE_DETACH_IOMMUFD_PT (optionally of one PASID): that RID or PASID is blocked again',
  fields: { ...onFd, pasid: numberLike.optional(), ...commonFields },
  run(s, st) {
    const { p, a } = args(s, st);
    const pasid = st.pasid === undefined ? undefined : s.num(st.pasid, p);
    const at = pasid !== undefined ? ` PASID ${pasid}` : '';
    return fromResult(vfio.deviceDetachPt({ ...a, ...(pasid !== undefined ? { pasid } : {}) }), `${p.name}: VFIO_DEVICE_DETACH_IOMMUFD_PT${at}`, () => `${p.name}: VFIO_DEVICE_DETACH_IOMMUFD_PT${at}`);
  },
});

export const deviceReset = stepKind({
  name: 'device-reset',
  summary: 'VFIO_DEVICE_RESET (function-level reset)',
  fields: { ...onFd, ...commonFields },
  run(s, st) {
    const { p, a } = args(s, st);
    return fromResult(vfio.deviceReset(a), `${p.name}: VFIO_DEVICE_RESET`, () => `${p.name}: VFIO_DEVICE_RESET`);
  },
});
