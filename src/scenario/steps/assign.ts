// Path-neutral device assignment, the way a VMM does it, by the scenario's `options.vfioApi`:
//  * cdev (Linux's device-centric API, the default): open /dev/vfio/devices/vfioN, VFIO_DEVICE_BIND_IOMMUFD,
//    VFIO_DEVICE_ATTACH_IOMMUFD_PT to the IOAS;
//  * group (the legacy group-centric API on an iommufd, as QEMU does with iommufd compat): IOMMU_VFIO_IOAS
//    SET of the IOAS, open /dev/vfio/N (once per process and group), VFIO_GROUP_SET_CONTAINER with the
//    iommufd (once), VFIO_GROUP_GET_DEVICE_FD, which binds the device and attaches it to that IOAS.
// Either way the device fd is named `as`; the same scenario can then run under both designs (seed 002).

import { z } from 'zod';
import * as api from '../../uapi/api.ts';
import { IOMMU_VFIO_IOAS_SET } from '../../uapi/iommufd-consts.ts';
import * as vfio from '../../uapi/vfio-api.ts';
import { O_RDWR } from '../../kernel/vfs/devfs.ts';
import { commonFields, stepKind, type StepOutcome } from '../step-kind.ts';
import { StepError } from '../run-state.ts';
import { numberLike } from '../values.ts';
import { failed } from './outcome.ts';

export const assign = stepKind({
  name: 'assign',
  summary: 'assign a device to the process\'s IOAS through the cdev or the group API (options.vfioApi); `as` names the device fd',
  fields: {
    process: z.string().min(1), device: z.string().min(1), iommufd: z.union([z.string(), z.number().int()]).default('iommufd'),
    ioas: numberLike, as: z.string().min(1), ...commonFields,
  },
  run(s, st): StepOutcome {
    const p = s.process(st.process);
    const ifd = s.fd(p, st.iommufd);
    const ioasId = s.num(st.ioas, p);
    const vdev = s.vfioDevice(st.device);
    const steps: string[] = [];
    if (s.vfioApi === 'cdev') {
      const path = `/dev/vfio/devices/vfio${vdev.index}`;
      const fd = s.kernel.devfs.open(p.proc, path, O_RDWR);
      if (!fd.ok) return failed(fd, `${p.name}: open ${path}`);
      p.fds.set(st.as, fd.value);
      steps.push(`open ${path}`);
      const bind = vfio.deviceBindIommufd({ proc: p.proc, fd: fd.value, iommufd: ifd });
      if (!bind.ok) return failed(bind, `${p.name}: ${steps.join(', ')}, VFIO_DEVICE_BIND_IOMMUFD`);
      steps.push(`BIND_IOMMUFD (dev_id ${bind.value})`);
      const att = vfio.deviceAttachPt({ proc: p.proc, fd: fd.value, ptId: ioasId });
      if (!att.ok) return failed(att, `${p.name}: ${steps.join(', ')}, ATTACH_IOMMUFD_PT ${ioasId}`);
      steps.push(`ATTACH_IOMMUFD_PT ${ioasId} (HWPT ${att.value})`);
      return { ok: true, summary: `${p.name} assigns ${vdev.name} through its cdev: ${steps.join(', ')}` };
    }
    const group = vdev.group;
    if (group === null) throw new StepError(`${st.device} has no VFIO group`);
    const set = api.vfioIoas({ proc: p.proc, fd: ifd, op: IOMMU_VFIO_IOAS_SET, ioasId });
    if (!set.ok) return failed(set, `${p.name}: IOMMU_VFIO_IOAS SET ${ioasId}`);
    steps.push(`IOMMU_VFIO_IOAS SET ${ioasId}`);
    const groupName = `group${group.id}`;
    let gfd = p.fds.get(groupName);
    if (gfd === undefined) {
      const g = s.kernel.devfs.open(p.proc, group.devPath, O_RDWR);
      if (!g.ok) return failed(g, `${p.name}: ${steps.join(', ')}, open ${group.devPath}`);
      gfd = g.value;
      p.fds.set(groupName, gfd);
      steps.push(`open ${group.devPath}`);
      const c = vfio.groupSetContainer({ proc: p.proc, fd: gfd, containerFd: ifd });
      if (!c.ok) return failed(c, `${p.name}: ${steps.join(', ')}, VFIO_GROUP_SET_CONTAINER`);
      steps.push('SET_CONTAINER (the iommufd)');
    }
    const dfd = vfio.groupGetDeviceFd({ proc: p.proc, fd: gfd, name: vdev.name });
    if (!dfd.ok) return failed(dfd, `${p.name}: ${steps.join(', ')}, VFIO_GROUP_GET_DEVICE_FD ${vdev.name}`);
    p.fds.set(st.as, dfd.value);
    steps.push(`GET_DEVICE_FD ${vdev.name}`);
    return { ok: true, summary: `${p.name} assigns ${vdev.name} through its group: ${steps.join(', ')}` };
  },
});
