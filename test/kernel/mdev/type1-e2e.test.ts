import { describe, expect, it } from 'vitest';
import { EmulatedParentDriver } from '../../../src/kernel/mdev/emulated-parent.ts';
import { MAP_ANONYMOUS, MAP_PRIVATE, PROT_READ, PROT_WRITE } from '../../../src/kernel/mm/mman.ts';
import { KernelBug } from '../../../src/kernel/vfio/type1/map-unmap.ts';
import { groupGetDeviceFd, groupGetStatus, groupSetContainer } from '../../../src/uapi/vfio-api.ts';
import * as K from '../../../src/uapi/vfio-consts.ts';
import { openVfioContainer, vfioIommuMapDma, vfioIommuUnmapDma, vfioSetIommu } from '../../../src/uapi/vfio-container-api.ts';
import { boot, dev, errno, PAGE, UUID1, value } from './helpers.ts';

// An emulated mdev (vgpu-lite) used through the legacy API: its private fake group set to a type1
// container, its "DMA" through the one vfio_pin_pages/vfio_dma_rw (vfio_main.c picks the container's
// backend), type1's lazy pinning, and the unmap notification with type1's retry rule. All through the
// byte-level dispatch.

const P = BigInt(PAGE);
const IOVA = 0x4000_0000n;

function setup(honourUnmap = true) {
  const k = boot();
  const drv = new EmulatedParentDriver({ vfio: k.vfio, memory: k.memory }, { honourUnmap });
  value(k.mdev.registerParent(dev(k, '16:00.0'), drv, drv.types()));
  const m = value(k.mdev.create(dev(k, '16:00.0'), 'vgpu-lite-1', UUID1));
  const vdev = m.vdev;
  if (vdev === null || vdev.group === null) throw new Error('no VFIO device');
  const memlock = 1024 * PAGE;
  const proc = k.processes.spawn({ uid: 1000, rlimits: { RLIMIT_MEMLOCK: { soft: memlock, hard: memlock } } });
  // The emulated group's node is root's by default; the administrator hands it to the user.
  value(k.devfs.chown(vdev.group.devPath, 1000, 1000));
  const container = value(openVfioContainer(k.devfs, proc));
  const group = value(k.devfs.open(proc, vdev.group.devPath));
  expect(value(groupGetStatus({ proc, fd: group })) & K.VFIO_GROUP_FLAGS_VIABLE).toBe(K.VFIO_GROUP_FLAGS_VIABLE);
  value(groupSetContainer({ proc, fd: group, containerFd: container }));
  value(vfioSetIommu({ proc, fd: container, type: K.VFIO_TYPE1v2_IOMMU }));
  const va = value(proc.mmap(0, 8 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  value(vfioIommuMapDma({ proc, fd: container, vaddr: BigInt(va), iova: IOVA, size: 8n * P }));
  const device = value(groupGetDeviceFd({ proc, fd: group, name: UUID1 }));
  const read = (off: number, n: number): Uint8Array => {
    const b = new Uint8Array(n);
    value(proc.mm.read(va + off, b));
    return b;
  };
  const unmap = (iova: bigint, size: bigint) => vfioIommuUnmapDma({ proc, fd: container, iova, size });
  return { k, drv, m, proc, container, group, device, va, read, unmap, vmlck: () => proc.status().VmLck };
}

describe('an emulated mdev in a type1 container', () => {
  it('MAP_DMA pins nothing; the device blits into the process and reads back with vfio_dma_rw', () => {
    const t = setup();
    expect(t.vmlck()).toBe(0);
    const data = Uint8Array.from({ length: 5000 }, (_, i) => (i * 13) & 0xff);
    value(t.drv.blit(t.m, IOVA + 50n, data));
    expect(t.read(50, 5000)).toEqual(data);
    expect(t.vmlck()).toBe(0); // blit unpinned what it pinned
    value(t.drv.dmaRw(t.m, IOVA + 7n * P, Uint8Array.of(9, 8, 7), true));
    expect(t.read(7 * PAGE, 3)).toEqual(Uint8Array.of(9, 8, 7));
    const back = new Uint8Array(3);
    value(t.drv.dmaRw(t.m, IOVA + 7n * P, back, false));
    expect(back).toEqual(Uint8Array.of(9, 8, 7));
    expect(errno(t.drv.dmaRw(t.m, IOVA + 8n * P, back, false))).toBe('EINVAL'); // not mapped
  });

  it('pins are lazy and charged per page; the 512-page cap applies on this path (E2BIG)', () => {
    const t = setup();
    const pfns = value(t.drv.pin(t.m, IOVA + P, 2));
    expect(pfns.length).toBe(2);
    expect(t.vmlck()).toBe(8);
    expect(errno(t.drv.pin(t.m, IOVA, 513))).toBe('E2BIG');
    expect(errno(t.drv.pin(t.m, IOVA + 8n * P, 1))).toBe('EINVAL');
    t.drv.unpin(t.m, IOVA + P, 2);
    expect(t.vmlck()).toBe(0);
  });

  it('VFIO_IOMMU_UNMAP_DMA over pinned pages: dma_unmap is called, the driver unpins, the unmap completes', () => {
    const t = setup();
    value(t.drv.pin(t.m, IOVA, 2));
    value(t.drv.pin(t.m, IOVA + 5n * P, 1));
    expect(t.vmlck()).toBe(12);
    expect(value(t.unmap(IOVA, 8n * P))).toBe(8n * P);
    const st = t.drv.stateOf(t.m);
    expect(st.unmapCalls).toEqual([[IOVA, 8n * P]]);
    expect(st.pins).toEqual([]);
    expect(t.vmlck()).toBe(0);
    expect(errno(t.drv.pin(t.m, IOVA, 1))).toBe('EINVAL'); // nothing mapped any more
  });

  it('a driver that ignores dma_unmap: type1 retries, then BUGs (thrown as KernelBug)', () => {
    const t = setup(false);
    value(t.drv.pin(t.m, IOVA, 1));
    expect(() => t.unmap(IOVA, 8n * P)).toThrow(KernelBug);
    expect(t.drv.stateOf(t.m).unmapCalls).toHaveLength(11);
  });

  it('closing the device, group and container drops every pin and mapping', () => {
    const t = setup();
    value(t.drv.pin(t.m, IOVA, 3));
    expect(t.vmlck()).toBe(12);
    value(t.proc.fds.close(t.device));
    expect(errno(t.drv.pin(t.m, IOVA, 1))).toBe('EINVAL'); // closed
    value(t.proc.fds.close(t.group));
    value(t.proc.fds.close(t.container));
    expect(t.vmlck()).toBe(0);
    expect(t.m.vdev?.group?.container).toBeNull();
  });
});
