// The legacy container (/dev/vfio/vfio, container.c) through the byte-level dispatch: the node, the
// container ioctls before and after VFIO_SET_IOMMU (§4.2), group attach/detach with DMA ownership and
// the no-IOMMU rules (§9 container rows, §13), and CONFIG_IOMMUFD_VFIO_CONTAINER.

import { describe, expect, it } from 'vitest';
import { IommufdCtx } from '../../../src/kernel/iommufd/context.ts';
import { VfioContainer } from '../../../src/kernel/vfio/container.ts';
import { Type1Iommu } from '../../../src/kernel/vfio/type1/iommu.ts';
import { VfioDevice } from '../../../src/kernel/vfio/vfio-device.ts';
import { VfioGroup } from '../../../src/kernel/vfio/vfio-group.ts';
import {
  VFIO_CHECK_EXTENSION, VFIO_GET_API_VERSION, VFIO_IOMMU_DIRTY_PAGES, VFIO_IOMMU_GET_INFO, VFIO_IOMMU_MAP_DMA,
  VFIO_IOMMU_UNMAP_DMA, VFIO_SET_IOMMU,
} from '../../../src/uapi/ioctl.ts';
import * as K from '../../../src/uapi/vfio-consts.ts';
import { vfio_iommu_type1_dma_map, vfio_iommu_type1_dma_unmap, vfio_iommu_type1_info } from '../../../src/uapi/vfio-structs.ts';
import { boot, client, DSA, errno, NVME, PAGE, SIB0, value, vfioGroupOf } from './legacy-helpers.ts';

const RW = K.VFIO_DMA_MAP_FLAG_READ | K.VFIO_DMA_MAP_FLAG_WRITE;

describe('/dev/vfio/vfio', () => {
  it('is misc 10:196, mode 0666: an unprivileged user opens a new container each time', () => {
    const k = boot();
    expect(k.devfs.stat('/dev/vfio/vfio')).toMatchObject({ mode: 0o666, major: 10, minor: 196 });
    const a = client(k, { uid: 1000 });
    const b = client(k, { uid: 1001 });
    expect(a.container()).toBeInstanceOf(VfioContainer);
    expect(a.container()).not.toBe(b.container());
  });

  it('CONFIG_IOMMUFD_VFIO_CONTAINER: the node opens an iommufd in MM accounting mode', () => {
    const k = boot({ vfio: { iommufdContainer: true } });
    const c = client(k);
    const ctx = c.iommufd();
    expect(ctx).toBeInstanceOf(IommufdCtx);
    expect(ctx.accountMode).toBe('mm');
    expect(c.io(VFIO_GET_API_VERSION)).toEqual({ ok: true, value: 0 });
    expect(c.io(VFIO_CHECK_EXTENSION, K.VFIO_TYPE1v2_IOMMU)).toEqual({ ok: true, value: 1 });
    expect(errno(c.io(VFIO_SET_IOMMU, K.VFIO_TYPE1v2_IOMMU))).toBe('ENODEV');
  });
});

describe('container ioctls (§4.2)', () => {
  it('GET_API_VERSION is 0; CHECK_EXTENSION polls every backend before SET_IOMMU', () => {
    const k = boot();
    const c = client(k);
    expect(c.io(VFIO_GET_API_VERSION)).toEqual({ ok: true, value: 0 });
    const ext = (n: number): number => value(c.io(VFIO_CHECK_EXTENSION, n));
    expect([K.VFIO_TYPE1_IOMMU, K.VFIO_TYPE1v2_IOMMU, K.VFIO_UNMAP_ALL].map(ext)).toEqual([1, 1, 1]);
    // UPDATE_VADDR and DMA_CC need a container; sPAPR, nesting, no-IOMMU (mode off) are not offered.
    expect([K.VFIO_UPDATE_VADDR, K.VFIO_DMA_CC_IOMMU, K.VFIO_SPAPR_TCE_IOMMU, K.__VFIO_RESERVED_TYPE1_NESTING, K.VFIO_NOIOMMU_IOMMU, 99].map(ext)).toEqual([0, 0, 0, 0, 0, 0]);
    expect(ext(K.VFIO_NOIOMMU_IOMMU)).toBe(0);
    const n = client(boot({ vfio: { enableUnsafeNoiommuMode: true } }));
    expect(value(n.io(VFIO_CHECK_EXTENSION, K.VFIO_NOIOMMU_IOMMU))).toBe(1);
  });

  it('SET_IOMMU: EINVAL without a group; other ioctls EINVAL before a backend', () => {
    const k = boot();
    const c = client(k);
    expect(errno(c.io(VFIO_SET_IOMMU, K.VFIO_TYPE1v2_IOMMU))).toBe('EINVAL');
    expect(c.call(VFIO_IOMMU_GET_INFO, vfio_iommu_type1_info, {}).e).toBe('EINVAL');
    expect(c.call(VFIO_IOMMU_MAP_DMA, vfio_iommu_type1_dma_map, { flags: RW, size: BigInt(PAGE) }).e).toBe('EINVAL');
    expect(c.call(VFIO_IOMMU_UNMAP_DMA, vfio_iommu_type1_dma_unmap, {}).e).toBe('EINVAL');
    expect(errno(c.io(VFIO_IOMMU_DIRTY_PAGES))).toBe('EINVAL');
  });

  it('SET_IOMMU: ENODEV when no backend takes the type, EINVAL once set; the backend answers CHECK_EXTENSION', () => {
    const k = boot();
    const c = client(k);
    value(c.container().attachGroup(vfioGroupOf(k, NVME), c.proc));
    expect(c.container().iommuSet).toBe(false);
    expect(errno(c.io(VFIO_SET_IOMMU, K.VFIO_SPAPR_TCE_IOMMU))).toBe('ENODEV');
    expect(errno(c.io(VFIO_SET_IOMMU, K.VFIO_NOIOMMU_IOMMU))).toBe('ENODEV');
    expect(c.io(VFIO_SET_IOMMU, K.VFIO_TYPE1v2_IOMMU)).toEqual({ ok: true, value: 0 });
    expect(c.container().iommuSet).toBe(true);
    expect(c.container().backend).toBeInstanceOf(Type1Iommu);
    expect(errno(c.io(VFIO_SET_IOMMU, K.VFIO_TYPE1v2_IOMMU))).toBe('EINVAL');
    expect(errno(c.io(VFIO_SET_IOMMU, K.VFIO_TYPE1_IOMMU))).toBe('EINVAL');
    expect(value(c.io(VFIO_CHECK_EXTENSION, K.VFIO_UPDATE_VADDR))).toBe(1);
    expect(value(c.io(VFIO_CHECK_EXTENSION, K.VFIO_DMA_CC_IOMMU))).toBe(1);
    // type1 answers unknown numbers ENOTTY (the dirty-page ioctl is not modelled).
    expect(errno(c.io(VFIO_IOMMU_DIRTY_PAGES))).toBe('ENOTTY');
  });
});

describe('groups in a container (§4.3 SET_CONTAINER, §9)', () => {
  it('claims DMA ownership: the IOMMU group is blocked until SET_IOMMU attaches the type1 domain', () => {
    const k = boot();
    const c = client(k);
    const g = vfioGroupOf(k, NVME);
    const ig = g.iommuGroup!;
    value(c.container().attachGroup(g, c.proc));
    expect(g.container).toBe(c.container());
    expect(ig.owner).toBe(g);
    expect(ig.domain).toBe(ig.blockingDomain);
    value(c.io(VFIO_SET_IOMMU, K.VFIO_TYPE1v2_IOMMU));
    const t1 = c.container().backend as Type1Iommu;
    expect(ig.domain).toBe(t1.domains[0]?.domain);
    c.container().detachGroup(g);
    expect(g.container).toBeNull();
    expect(ig.owner).toBeNull();
    expect(ig.domain).toBe(ig.defaultDomain);
    // The last group took the backend with it.
    expect(c.container().iommuSet).toBe(false);
  });

  it('EPERM when a function of the group is still bound to a host driver, or another owner claimed it', () => {
    const k = boot();
    const c = client(k);
    const dev = k.device(SIB0)!;
    const ig = k.core.groupOf(dev)!;
    // Register the GPU but leave its HDA sibling on snd_hda_intel.
    value(k.drivers.unbind(dev));
    const vdev = new VfioDevice(dev.bdf, 'iommu', { name: 'vfio-pci' }, dev);
    value(k.vfio.registerGroupDev(vdev));
    expect(errno(c.container().attachGroup(vdev.group!, c.proc))).toBe('EPERM');
    expect(ig.ownerCnt).toBe(1);
    // Another owner (an iommufd binding a device of the group) makes the claim EPERM too.
    const dsa = vfioGroupOf(k, DSA);
    value(k.core.deviceClaimDmaOwner(k.device(DSA)!, { iommufd: true }));
    expect(errno(c.container().attachGroup(dsa, c.proc))).toBe('EPERM');
    // A group already in a container: EINVAL (VFIO_GROUP_SET_CONTAINER's own check).
    const g = vfioGroupOf(k, NVME);
    value(c.container().attachGroup(g, c.proc));
    const other = client(k);
    expect(errno(other.container().attachGroup(g, other.proc))).toBe('EINVAL');
  });

  it('a later group joins the set backend: same IOMMU driver → same domain, another driver → its own domain', () => {
    const k = boot();
    const c = client(k);
    value(c.container().attachGroup(vfioGroupOf(k, NVME), c.proc));
    value(c.io(VFIO_SET_IOMMU, K.VFIO_TYPE1v2_IOMMU));
    const t1 = c.container().backend as Type1Iommu;
    value(c.container().attachGroup(vfioGroupOf(k, '29:00.0'), c.proc));
    expect(t1.domains).toHaveLength(1);
    expect(t1.domains[0]?.groups).toHaveLength(2);
    value(c.container().attachGroup(vfioGroupOf(k, DSA), c.proc));
    expect(t1.domains).toHaveLength(2);
  });

  it('no-IOMMU groups: CAP_SYS_RAWIO, no mixing with IOMMU groups, only the no-IOMMU backend (EPERM without RAWIO)', () => {
    const k = boot({ vfio: { enableUnsafeNoiommuMode: true } });
    const user = client(k, { caps: [] });
    const noiommu = new VfioGroup(100, 'no-iommu', null);
    expect(errno(user.container().attachGroup(noiommu, user.proc))).toBe('EPERM');
    const root = client(k, { uid: 0, caps: ['CAP_SYS_RAWIO'] });
    value(root.container().attachGroup(noiommu, root.proc));
    expect(errno(root.container().attachGroup(vfioGroupOf(k, NVME), root.proc))).toBe('EPERM');
    expect(value(root.io(VFIO_CHECK_EXTENSION, K.VFIO_TYPE1v2_IOMMU))).toBe(0);
    expect(value(root.io(VFIO_CHECK_EXTENSION, K.VFIO_NOIOMMU_IOMMU))).toBe(1);
    expect(errno(root.io(VFIO_SET_IOMMU, K.VFIO_TYPE1v2_IOMMU))).toBe('ENODEV');
    root.proc.dropCapability('CAP_SYS_RAWIO');
    expect(errno(root.io(VFIO_SET_IOMMU, K.VFIO_NOIOMMU_IOMMU))).toBe('EPERM');
    root.proc.grantCapability('CAP_SYS_RAWIO');
    value(root.io(VFIO_SET_IOMMU, K.VFIO_NOIOMMU_IOMMU));
    expect(root.container().iommuSet).toBe(true);
    expect(root.call(VFIO_IOMMU_GET_INFO, vfio_iommu_type1_info, {}).e).toBe('ENOTTY');
    // An IOMMU container cannot take a no-IOMMU group either.
    const mixed = client(k, { uid: 0, caps: ['CAP_SYS_RAWIO'] });
    value(mixed.container().attachGroup(vfioGroupOf(k, DSA), mixed.proc));
    expect(errno(mixed.container().attachGroup(new VfioGroup(101, 'no-iommu', null), mixed.proc))).toBe('EPERM');
  });

  it('the container outlives its fd while a group holds it; closing the fd keeps the mappings', () => {
    const k = boot();
    const c = client(k);
    const g = vfioGroupOf(k, NVME);
    const container = c.container();
    value(container.attachGroup(g, c.proc));
    value(c.io(VFIO_SET_IOMMU, K.VFIO_TYPE1v2_IOMMU));
    const va = c.anon(4);
    expect(c.call(VFIO_IOMMU_MAP_DMA, vfio_iommu_type1_dma_map, { flags: RW, vaddr: BigInt(va), iova: 0x10_0000n, size: BigInt(4 * PAGE) }).e).toBe('ok');
    expect(c.proc.status().VmLck).toBe(16);
    value(c.proc.fds.close(c.fd));
    expect(container.isOpen).toBe(false);
    expect(c.proc.status().VmLck).toBe(16);
    container.detachGroup(g);
    expect(c.proc.status().VmLck).toBe(0);
  });
});
