// A dma-buf mapped into a real device's IOAS (IOMMU_IOAS_MAP_FILE does not depend on the driver): a NIC
// bound to vfio-pci, attached through its cdev, does DMA through the simulated IOMMU into the selftest
// exporter's pages; a revoke makes that DMA fault; a new map of the restored buffer works again.

import { describe, expect, it } from 'vitest';
import { DmaBuf } from '../../../src/kernel/dma-buf/dma-buf.ts';
import { MockDmaBufExporter } from '../../../src/kernel/iommufd/selftest/mock-dmabuf.ts';
import { ioasAlloc, ioasMapFile, ioasUnmap } from '../../../src/uapi/api.ts';
import { SelftestApi } from '../../../src/uapi/selftest-api.ts';
import { deviceAttachPt, deviceBindIommufd } from '../../../src/uapi/vfio-api.ts';
import { boot, dev, spawn, toVfio, value } from '../vfio/vfio-helpers.ts';
import { errno } from './selftest-helpers.ts';

const PAGE = 4096;

describe('dma-buf areas on the hardware DMA path', () => {
  it('device DMA reaches the exporter\'s pages, faults after a revoke, and works again on a new map', () => {
    const k = boot({ iommufdTest: true });
    const nic = dev(k, '38:00.0');
    const vdev = toVfio(k, '38:00.0');
    const p = spawn(k);
    const iommufd = value(k.devfs.open(p, '/dev/iommu'));
    const cdev = value(k.devfs.open(p, `/dev/vfio/devices/vfio${vdev.index}`));
    value(deviceBindIommufd({ proc: p, fd: cdev, iommufd }));
    const ioasId = value(ioasAlloc({ proc: p, fd: iommufd }));
    value(deviceAttachPt({ proc: p, fd: cdev, ptId: ioasId }));

    const t = new SelftestApi(p, iommufd);
    const dfd = value(t.getDmabuf(4 * PAGE));
    const buf = value(p.fds.get(dfd)).file;
    if (!(buf instanceof DmaBuf) || !(buf.exporter instanceof MockDmaBufExporter)) throw new Error('not a selftest dma-buf');
    const exporter = buf.exporter;
    const a = { proc: p, fd: iommufd, ioasId };
    const iova = value(ioasMapFile({ ...a, file: dfd, start: 0, length: 4 * PAGE, iova: 0x10_0000 }));
    expect(iova).toBe(0x10_0000n);

    // A read sees the zeroed pages; a write lands in the exporter's page 1, found by physical address.
    const rd = k.machine.dma(nic, { op: 'read', address: 0x10_0000 + 3 * PAGE, length: 8 });
    expect(rd.status).toBe('ok');
    expect([...(rd.data ?? [])]).toEqual([0, 0, 0, 0, 0, 0, 0, 0]);
    const data = Uint8Array.of(9, 8, 7, 6, 5, 4, 3, 2);
    expect(k.machine.dma(nic, { op: 'write', address: 0x10_0000 + PAGE + 16, length: 8, data }).status).toBe('ok');
    const got = new Uint8Array(8);
    k.memory.read(exporter.pageToPhys(1) + 16, got);
    expect([...got]).toEqual([...data]);
    // dma-buf pages are not pinned user memory: nothing is charged.
    expect(p.status().VmPin).toBe(0);

    // Revoke: the IOMMU mapping is gone (and its IOTLB entries with it), so the same DMA faults.
    value(t.revokeDmabuf(dfd, true));
    expect(k.machine.dma(nic, { op: 'write', address: 0x10_0000 + PAGE + 16, length: 8, data }).status).toBe('fault');
    expect(errno(ioasMapFile({ ...a, file: dfd, start: 0, length: PAGE }))).toBe('ENODEV');
    // Restored: the old area stays dead, a new map works.
    value(t.revokeDmabuf(dfd, false));
    expect(k.machine.dma(nic, { op: 'read', address: 0x10_0000, length: 8 }).status).toBe('fault');
    const iova2 = value(ioasMapFile({ ...a, file: dfd, start: PAGE, length: PAGE, iova: 0x20_0000 }));
    const back = k.machine.dma(nic, { op: 'read', address: Number(iova2) + 16, length: 8 });
    expect(back.status).toBe('ok');
    expect([...(back.data ?? [])]).toEqual([...data]);

    value(ioasUnmap({ ...a, iova, length: 4 * PAGE }));
    value(ioasUnmap({ ...a, iova: iova2, length: PAGE }));
    expect(k.machine.dma(nic, { op: 'read', address: Number(iova2), length: 8 }).status).toBe('fault');
    value(p.fds.close(dfd));
    expect(buf.released).toBe(true);
    value(p.fds.close(cdev));
    value(p.fds.close(iommufd));
  });
});
