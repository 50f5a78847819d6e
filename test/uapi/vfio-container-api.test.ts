// The typed VFIO container API: the canonical legacy flow (§4.1) and the same calls on /dev/vfio/vfio
// served by iommufd, through the same dispatch a C program reaches.

import { describe, expect, it } from 'vitest';
import { compatIoasCreate } from '../../src/kernel/iommufd/vfio-compat.ts';
import { MAP_ANONYMOUS, MAP_PRIVATE, PROT_READ, PROT_WRITE } from '../../src/kernel/mm/mman.ts';
import type { IommufdCtx } from '../../src/kernel/iommufd/context.ts';
import type { VfioContainer } from '../../src/kernel/vfio/container.ts';
import {
  openVfioContainer, vfioCheckExtension, vfioGetApiVersion, vfioIommuGetInfo, vfioIommuMapDma, vfioIommuUnmapDma,
  vfioSetIommu,
} from '../../src/uapi/vfio-container-api.ts';
import * as K from '../../src/uapi/vfio-consts.ts';
import { boot, NVME, value, vfioGroupOf } from '../kernel/vfio/legacy-helpers.ts';

describe('typed VFIO container API', () => {
  it('the legacy flow: version, extension, group, SET_IOMMU, GET_INFO (argsz-grow), map, unmap', () => {
    const k = boot();
    const proc = k.processes.spawn({ uid: 1000, rlimits: { RLIMIT_MEMLOCK: { soft: 2 ** 24, hard: 2 ** 24 } } });
    const fd = value(openVfioContainer(k.devfs, proc));
    const a = { proc, fd };
    expect(value(vfioGetApiVersion(a))).toBe(0);
    expect(value(vfioCheckExtension({ ...a, extension: K.VFIO_TYPE1v2_IOMMU }))).toBe(1);
    const container = value(proc.fds.get(fd)).file as VfioContainer;
    value(container.attachGroup(vfioGroupOf(k, NVME), proc));
    value(vfioSetIommu({ ...a, type: K.VFIO_TYPE1v2_IOMMU }));
    const info = value(vfioIommuGetInfo(a));
    expect(info.capIds).toEqual([2, 3, 1]);
    expect(info.dmaAvail).toBe(65535);
    expect(info.iovaRanges?.[0]).toEqual({ start: 0n, end: 0xfedf_ffffn });
    expect(info.migrationPgsizes).toBe(4096n);
    const va = value(proc.mmap(0, 8192, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
    value(vfioIommuMapDma({ ...a, vaddr: BigInt(va), iova: 0x10_0000n, size: 8192n }));
    expect(proc.status().VmLck).toBe(8);
    expect(vfioIommuMapDma({ ...a, vaddr: BigInt(va), iova: 0x10_0000n, size: 8192n })).toMatchObject({ errno: 'EEXIST' });
    expect(value(vfioIommuUnmapDma({ ...a, all: true }))).toBe(8192n);
    expect(proc.status().VmLck).toBe(0);
  });

  it('the same calls on an iommufd-served /dev/vfio/vfio', () => {
    const k = boot({ vfio: { iommufdContainer: true } });
    const proc = k.processes.spawn({ uid: 1000 });
    const fd = value(openVfioContainer(k.devfs, proc));
    const a = { proc, fd };
    expect(vfioSetIommu({ ...a, type: K.VFIO_TYPE1v2_IOMMU })).toMatchObject({ errno: 'ENODEV' });
    value(compatIoasCreate(value(proc.fds.get(fd)).file as IommufdCtx));
    value(vfioSetIommu({ ...a, type: K.VFIO_TYPE1v2_IOMMU }));
    const info = value(vfioIommuGetInfo(a));
    expect(info.capIds).toEqual([3, 1]);
    expect(info.dmaAvail).toBe(0xffff_ffff);
    expect(info.iovaRanges).toEqual([{ start: 0n, end: (1n << 64n) - 1n }]);
    expect(value(vfioIommuUnmapDma({ ...a, iova: 0n, size: 4096n }))).toBe(0n);
  });
});
