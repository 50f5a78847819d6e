// Platform and IOMMU-unit properties iommufd and VFIO type1 act on, through the byte-level dispatch:
// isolated MSIs at bind / group attach (allow_unsafe_interrupts), cache coherency enforcement (HWPT
// allocation, attach, VFIO_DMA_CC_IOMMU on type1 and on the iommufd compat path) and GET_HW_INFO's
// PCI_ATS_NOT_SUPPORTED.

import { describe, expect, it } from 'vitest';
import type { HwptPaging } from '../../../src/kernel/iommufd/hw-pagetable.ts';
import * as HW from '../../../src/kernel/iommufd/hw-info.ts';
import type { IommufdCtx } from '../../../src/kernel/iommufd/context.ts';
import { Kernel, type KernelBootOptions } from '../../../src/kernel/kernel.ts';
import { loadBuiltinHost } from '../../../src/pci/builtin-hosts.ts';
import { interruptRemappingOf, type HostSpecInput } from '../../../src/pci/spec.ts';
import { getHwInfo, hwptAlloc, ioasAlloc } from '../../../src/uapi/api.ts';
import { dispatch } from '../../../src/uapi/dispatch.ts';
import * as C from '../../../src/uapi/iommufd-consts.ts';
import { VFIO_CHECK_EXTENSION, VFIO_SET_IOMMU } from '../../../src/uapi/ioctl.ts';
import * as K from '../../../src/uapi/vfio-consts.ts';
import { deviceAttachPt, deviceBindIommufd, groupSetContainer } from '../../../src/uapi/vfio-api.ts';
import { errno, spawn, toVfio, value } from '../vfio/vfio-helpers.ts';

const NIC = '38:00.0';
const NVME = '39:00.0';
const DSA = '6a:01.0';

type Platform = NonNullable<HostSpecInput['platform']>;

/** The default host with its platform edited. */
function bootWith(platform: Partial<Platform>, opts: KernelBootOptions = {}): Kernel {
  const spec = loadBuiltinHost('default');
  return Kernel.boot({ ...spec, platform: { ...spec.platform, ...platform } }, opts);
}

/** The default host with DRHD0 (the DSA's unit) lacking snoop control and a device TLB. */
function bootNoSnoopDrhd0(opts: KernelBootOptions = {}): Kernel {
  const spec = loadBuiltinHost('default');
  const units = (spec.platform.dmarUnits ?? []).map((u, i) => (i === 0 ? { ...u, snoopControl: false, deviceTlb: false } : u));
  return Kernel.boot({ ...spec, platform: { ...spec.platform, dmarUnits: units } }, opts);
}

/** A root process with /dev/iommu and the device's cdev open. */
function cdevClient(k: Kernel, bdfs: readonly string[]) {
  const proc = spawn(k);
  const iommufd = value(k.devfs.open(proc, '/dev/iommu'));
  const cdevs = bdfs.map((b) => value(k.devfs.open(proc, `/dev/vfio/devices/vfio${toVfio(k, b).index}`)));
  const ctx = value(proc.fds.get(iommufd)).file as IommufdCtx;
  return { proc, iommufd, cdevs, ctx };
}

/** A container (/dev/vfio/vfio: type1, or iommufd with iommufdContainer) with bdf's group set on it. */
function containerWith(k: Kernel, bdfs: readonly string[]) {
  const proc = spawn(k);
  const container = value(k.devfs.open(proc, '/dev/vfio/vfio'));
  for (const bdf of bdfs) {
    toVfio(k, bdf);
    const g = k.core.groupOf(k.device(bdf)!)!;
    const gfd = value(k.devfs.open(proc, `/dev/vfio/${g.id}`));
    value(groupSetContainer({ proc, fd: gfd, containerFd: container }));
  }
  /** A by-value container ioctl (SET_IOMMU, CHECK_EXTENSION) through the dispatch. */
  const io = (cmd: number, arg: number) => dispatch(proc, container, cmd, arg);
  return { proc, container, io };
}

describe('isolated MSIs (interrupt remapping)', () => {
  it('the platform default: on for intel, amd and arm-smmu, off for virtio and none; a host file decides', () => {
    expect(['intel', 'amd', 'arm-smmu', 'virtio', 'none'].map((iommu) => interruptRemappingOf({ iommu: iommu as Platform['iommu'] & string })))
      .toEqual([true, true, true, false, false]);
    expect(interruptRemappingOf({ iommu: 'intel', interruptRemapping: false })).toBe(false);
  });

  it('iommufd_device_bind: EPERM without interrupt remapping unless iommufd.allow_unsafe_interrupts', () => {
    const k = bootWith({ interruptRemapping: false });
    const c = cdevClient(k, [NVME]);
    const r = deviceBindIommufd({ proc: c.proc, fd: c.cdevs[0]!, iommufd: c.iommufd });
    expect(errno(r)).toBe('EPERM');
    // Nothing was claimed: the group is not owned.
    expect(k.core.groupOf(k.device(NVME)!)!.ownerCnt).toBe(0);

    for (const opts of [{ iommufd: { allowUnsafeInterrupts: true } }, { vfio: { allowUnsafeInterrupts: true } }] as const) {
      const k2 = bootWith({ interruptRemapping: false }, opts);
      const c2 = cdevClient(k2, [NVME]);
      expect(value(deviceBindIommufd({ proc: c2.proc, fd: c2.cdevs[0]!, iommufd: c2.iommufd }))).toBeGreaterThan(0);
      expect(k2.core.log.some((l) => l.includes('MSI interrupts are not secure'))).toBe(true);
    }
    // The iommufd parameter wins over VFIO's.
    const k3 = bootWith({ interruptRemapping: false }, { vfio: { allowUnsafeInterrupts: true }, iommufd: { allowUnsafeInterrupts: false } });
    const c3 = cdevClient(k3, [NVME]);
    expect(errno(deviceBindIommufd({ proc: c3.proc, fd: c3.cdevs[0]!, iommufd: c3.iommufd }))).toBe('EPERM');
  });

  it('with interrupt remapping (the default host) the bind succeeds without the parameter', () => {
    const k = Kernel.boot(loadBuiltinHost('default'));
    const c = cdevClient(k, [NVME]);
    expect(errno(deviceBindIommufd({ proc: c.proc, fd: c.cdevs[0]!, iommufd: c.iommufd }))).toBe('ok');
  });

  it('vfio_iommu_type1 group attach (VFIO_SET_IOMMU): EPERM unless allow_unsafe_interrupts; the group goes back to blocking', () => {
    const k = bootWith({ interruptRemapping: false });
    const c = containerWith(k, [NVME]);
    expect(errno(c.io(VFIO_SET_IOMMU, K.VFIO_TYPE1v2_IOMMU))).toBe('EPERM');
    const g = k.core.groupOf(k.device(NVME)!)!;
    expect(g.domain).toBe(g.blockingDomain);

    const k2 = bootWith({ interruptRemapping: false }, { vfio: { allowUnsafeInterrupts: true } });
    const c2 = containerWith(k2, [NVME]);
    expect(errno(c2.io(VFIO_SET_IOMMU, K.VFIO_TYPE1v2_IOMMU))).toBe('ok');
  });
});

describe('cache coherency enforcement', () => {
  it('HWPT_PAGING enforces it when the device\'s IOMMU can; a device without snoop control cannot join it (EINVAL)', () => {
    const k = bootNoSnoopDrhd0();
    const c = cdevClient(k, [NIC, DSA]);
    const [nicFd, dsaFd] = c.cdevs as [number, number];
    const nic = value(deviceBindIommufd({ proc: c.proc, fd: nicFd, iommufd: c.iommufd }));
    const dsa = value(deviceBindIommufd({ proc: c.proc, fd: dsaFd, iommufd: c.iommufd }));
    const ioas = value(ioasAlloc({ proc: c.proc, fd: c.iommufd }));
    const ccHwpt = value(hwptAlloc({ proc: c.proc, fd: c.iommufd, devId: nic, ptId: ioas }));
    const plainHwpt = value(hwptAlloc({ proc: c.proc, fd: c.iommufd, devId: dsa, ptId: ioas }));
    const get = (id: number) => value(c.ctx.objects.get<HwptPaging>(id, 'hwpt_paging'));
    expect(get(ccHwpt).enforceCacheCoherency).toBe(true);
    expect(get(ccHwpt).domain.forceSnooping).toBe(true);
    expect(get(plainHwpt).enforceCacheCoherency).toBe(false);

    // The DSA's unit has no snoop control: the coherent domain refuses it.
    const r = deviceAttachPt({ proc: c.proc, fd: dsaFd, ptId: ccHwpt });
    expect(errno(r)).toBe('EINVAL');
    expect(r.ok ? '' : r.reason).toMatch(/snoop control/);
    // A coherent-capable device cannot upgrade a HWPT whose IOMMU has no snoop control.
    const up = deviceAttachPt({ proc: c.proc, fd: nicFd, ptId: plainHwpt });
    expect(errno(up)).toBe('EINVAL');
    expect(get(plainHwpt).enforceCacheCoherency).toBe(false);
    // Each device on its own kind of HWPT works.
    expect(value(deviceAttachPt({ proc: c.proc, fd: nicFd, ptId: ccHwpt }))).toBe(ccHwpt);
    expect(value(deviceAttachPt({ proc: c.proc, fd: dsaFd, ptId: plainHwpt }))).toBe(plainHwpt);
  });

  it('VFIO_DMA_CC_IOMMU on a type1 container: 1 while every domain enforces it, 0 with a domain that cannot', () => {
    const k = bootNoSnoopDrhd0();
    const good = containerWith(k, [NVME]);
    value(good.io(VFIO_SET_IOMMU, K.VFIO_TYPE1v2_IOMMU));
    expect(value(good.io(VFIO_CHECK_EXTENSION, K.VFIO_DMA_CC_IOMMU))).toBe(1);
    const mixed = containerWith(k, [DSA]);
    value(mixed.io(VFIO_SET_IOMMU, K.VFIO_TYPE1v2_IOMMU));
    expect(value(mixed.io(VFIO_CHECK_EXTENSION, K.VFIO_DMA_CC_IOMMU))).toBe(0);
  });

  it('VFIO_DMA_CC_IOMMU on the iommufd compat path: from the compat IOAS\'s HWPTs', () => {
    const k = bootNoSnoopDrhd0({ vfio: { iommufdContainer: true } });
    const good = containerWith(k, [NVME]);
    value(good.io(VFIO_SET_IOMMU, K.VFIO_TYPE1v2_IOMMU));
    const ctx = value(good.proc.fds.get(good.container)).file as IommufdCtx;
    const ioasId = ctx.vfioIoasId;
    expect(value(good.io(VFIO_CHECK_EXTENSION, K.VFIO_DMA_CC_IOMMU))).toBe(1);
    // A HWPT of the DSA's unit (no snoop control) in the compat IOAS: no longer every one enforces it.
    const dsaFd = value(k.devfs.open(good.proc, `/dev/vfio/devices/vfio${toVfio(k, DSA).index}`));
    const dsa = value(deviceBindIommufd({ proc: good.proc, fd: dsaFd, iommufd: good.container }));
    value(hwptAlloc({ proc: good.proc, fd: good.container, devId: dsa, ptId: ioasId }));
    expect(value(good.io(VFIO_CHECK_EXTENSION, K.VFIO_DMA_CC_IOMMU))).toBe(0);
  });
});

describe('IOMMU_GET_HW_INFO: PCI_ATS_NOT_SUPPORTED', () => {
  it('the uapi constant is bit 3', () => {
    expect(HW.IOMMU_HW_CAP_PCI_ATS_NOT_SUPPORTED).toBe(C.IOMMU_HW_CAP_PCI_ATS_NOT_SUPPORTED);
    expect(C.IOMMU_HW_CAP_PCI_ATS_NOT_SUPPORTED).toBe(8n);
  });

  it('set for a function without ATS, or whose unit has no device TLB; clear when both can', () => {
    const caps = (k: Kernel, bdf: string): bigint => {
      const c = cdevClient(k, [bdf]);
      const id = value(deviceBindIommufd({ proc: c.proc, fd: c.cdevs[0]!, iommufd: c.iommufd }));
      return value(getHwInfo({ proc: c.proc, fd: c.iommufd, devId: id })).capabilities;
    };
    const ats = (v: bigint) => (v & C.IOMMU_HW_CAP_PCI_ATS_NOT_SUPPORTED) !== 0n;
    const normal = Kernel.boot(loadBuiltinHost('default'));
    expect(ats(caps(normal, DSA))).toBe(false); // the DSA has ATS, its unit a device TLB
    expect(ats(caps(normal, NVME))).toBe(true); // the NVMe has no ATS capability
    expect(ats(caps(bootNoSnoopDrhd0(), DSA))).toBe(true); // DRHD0 without ECAP.DT
  });

  it('the VT-d ECAP reports DT (bit 2) and SC (bit 7) from the unit', () => {
    const k = bootNoSnoopDrhd0();
    const bit = (bdf: string, n: bigint) => (HW.vtdEcapReg(k.core.ioasisDriverOf(k.device(bdf)!)!.caps) >> n) & 1n;
    expect([bit(DSA, 2n), bit(DSA, 7n), bit(NVME, 2n), bit(NVME, 7n)]).toEqual([0n, 0n, 1n, 1n]);
  });
});
