import { describe, expect, it } from 'vitest';
import { NicReg, NIC_CTRL_ENABLE, NIC_CTRL_LOOPBACK, NIC_DESC_DD, NIC_STATUS_DMA_ERROR } from '../../../src/hw/devices/simple-nic.ts';
import { MAP_ANONYMOUS, MAP_PRIVATE, PROT_READ, PROT_WRITE } from '../../../src/kernel/mm/mman.ts';
import * as iommufd from '../../../src/uapi/api.ts';
import { deviceAttachPt, deviceBindIommufd, regionRead, regionWrite } from '../../../src/uapi/vfio-api.ts';
import { boot, dev } from './vfio-helpers.ts';

// A NIC model behind 38:00.0's BAR 0: the VMM programs it through the VFIO region (pwrite at index 0 <<
// 40), and the NIC's own DMA goes through the IOMMU into the VMM's memory, or faults.

const BAR0 = 0;
const u32 = (v: number): Uint8Array => Uint8Array.of(v & 0xff, (v >>> 8) & 0xff, (v >>> 16) & 0xff, (v >>> 24) & 0xff);
const must = <T>(r: { ok: true; value: T } | { ok: false; errno: string; reason: string }): T => {
  if (!r.ok) throw new Error(`${r.errno}: ${r.reason}`);
  return r.value;
};

function setup() {
  const k = boot();
  const nic = dev(k, '38:00.0');
  expect(k.models.get(nic)).toBe('simple-nic');
  must(k.drivers.unbind(nic));
  must(k.drivers.setDriverOverride(nic, 'vfio-pci'));
  must(k.drivers.bind(nic, 'vfio-pci'));
  const p = k.processes.spawn({ rlimits: { RLIMIT_MEMLOCK: { soft: 2 ** 30, hard: 2 ** 30 } } });
  const ram = must(p.mmap(0, 1 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  const ifd = must(k.devfs.open(p, '/dev/iommu'));
  const ioasId = must(iommufd.ioasAlloc({ proc: p, fd: ifd }));
  const fd = must(k.devfs.open(p, `/dev/vfio/devices/vfio${k.vfioPci.vfioDevice(nic)?.index ?? -1}`));
  must(deviceBindIommufd({ proc: p, fd, iommufd: ifd }));
  must(deviceAttachPt({ proc: p, fd, ptId: ioasId }));
  must(iommufd.ioasMap({ proc: p, fd: ifd, ioasId, userVa: ram, length: 1 << 20, iova: 0x10_0000 }));
  // PCI_COMMAND: memory decoding on, bus mastering on.
  must(regionWrite({ proc: p, fd, offset: 7 * 2 ** 40 + 4, data: Uint8Array.of(0x06, 0) }));
  const reg = (off: number, v: number): void => { must(regionWrite({ proc: p, fd, offset: BAR0 + off, data: u32(v) })); };
  const rd = (off: number): number => {
    const b = must(regionRead({ proc: p, fd, offset: BAR0 + off, length: 4 }));
    return ((b[0] ?? 0) | ((b[1] ?? 0) << 8) | ((b[2] ?? 0) << 16) | ((b[3] ?? 0) << 24)) >>> 0;
  };
  return { k, p, ram, reg, rd };
}

function desc(iova: number, len: number, flags = 0): Uint8Array {
  const d = new Uint8Array(16);
  new DataView(d.buffer).setBigUint64(0, BigInt(iova), true);
  new DataView(d.buffer).setUint16(8, len, true);
  new DataView(d.buffer).setUint16(10, flags, true);
  return d;
}

describe('a device model behind a VFIO region', () => {
  it('the VMM programs the NIC through BAR 0; loopback moves a packet through the IOMMU into its memory', () => {
    const { p, ram, reg, rd } = setup();
    const IOVA = 0x10_0000;
    // TX ring at +0x0, RX ring at +0x100, TX buffer at +0x1000, RX buffer at +0x2000 (all IOVA = ram + off).
    must(p.mm.write(ram, desc(IOVA + 0x1000, 11)));
    must(p.mm.write(ram + 0x100, desc(IOVA + 0x2000, 64)));
    must(p.mm.write(ram + 0x1000, new TextEncoder().encode('hello wire!')));
    reg(NicReg.TX_BASE_LO, IOVA); reg(NicReg.TX_SIZE, 4);
    reg(NicReg.RX_BASE_LO, IOVA + 0x100); reg(NicReg.RX_SIZE, 4); reg(NicReg.RX_TAIL, 1);
    reg(NicReg.CTRL, NIC_CTRL_ENABLE | NIC_CTRL_LOOPBACK);
    reg(NicReg.TX_TAIL, 1);
    const got = new Uint8Array(11);
    must(p.mm.read(ram + 0x2000, got));
    expect(new TextDecoder().decode(got)).toBe('hello wire!');
    expect(rd(NicReg.RX_PACKETS)).toBe(1);
    const txDesc = new Uint8Array(16);
    must(p.mm.read(ram, txDesc));
    expect(new DataView(txDesc.buffer).getUint16(10, true) & NIC_DESC_DD).toBe(NIC_DESC_DD);
  });

  it('a descriptor pointing outside the IOAS makes the NIC fault: DMA_ERROR with the IOVA in FAULT_LO', () => {
    const { p, ram, reg, rd } = setup();
    must(p.mm.write(ram, desc(0x4000_0000, 8)));
    reg(NicReg.TX_BASE_LO, 0x10_0000); reg(NicReg.TX_SIZE, 4);
    reg(NicReg.CTRL, NIC_CTRL_ENABLE);
    reg(NicReg.TX_TAIL, 1);
    expect(rd(NicReg.STATUS) & NIC_STATUS_DMA_ERROR).toBe(NIC_STATUS_DMA_ERROR);
    expect(rd(NicReg.FAULT_LO)).toBe(0x4000_0000);
  });
});
