// The vfio-pci device fd through the byte-level dispatch: GET_INFO, GET_REGION_INFO, GET_IRQ_INFO, config
// space reads and writes with vfio-pci's virtualisation, BAR access, SET_IRQS with eventfds, RESET.

import { describe, expect, it } from 'vitest';
import type { Kernel } from '../../../src/kernel/kernel.ts';
import type { Process } from '../../../src/kernel/process/process.ts';
import { EventFd, eventfd } from '../../../src/kernel/vfs/eventfd.ts';
import type { PciDev } from '../../../src/pci/dev.ts';
import { dispatch } from '../../../src/uapi/dispatch.ts';
import {
  IOMMU_IOAS_ALLOC, VFIO_DEVICE_GET_INFO, VFIO_DEVICE_GET_IRQ_INFO, VFIO_DEVICE_GET_REGION_INFO,
  VFIO_DEVICE_PCI_HOT_RESET, VFIO_DEVICE_SET_IRQS, VFIO_GROUP_GET_STATUS, VFIO_IOMMU_MAP_DMA,
} from '../../../src/uapi/ioctl.ts';
import { sysPread } from '../../../src/uapi/rw.ts';
import {
  deviceBindIommufd, deviceGetInfo, deviceGetIrqInfo, deviceGetRegionInfo, deviceReset, deviceSetIrqEventfds,
  deviceSetIrqs, regionRead, regionWrite,
} from '../../../src/uapi/vfio-api.ts';
import * as V from '../../../src/uapi/vfio-structs.ts';
import { anon, boot, dev, errno, raw, spawn, toVfio, value } from './vfio-helpers.ts';

const CFG = 7 * 2 ** 40;
const BAR = (i: number): number => i * 2 ** 40;
const NONE_TRIGGER = 1 | 32;

/** The NIC with what the synthesiser does not lay out: MSI (8 vectors), MSI-X (16), a hidden SSVID cap, INTx pin, FLR. */
function patchNic(get: (bdf: string) => PciDev): void {
  const c = get('38:00.0').config;
  c.write8(0x49, 0xa0); // EXP (0x48) → MSI
  c.write8(0xa0, 0x05); c.write8(0xa1, 0xb8); c.write16(0xa2, 0x0080 | (3 << 1));
  c.write8(0xb8, 0x11); c.write8(0xb9, 0xc8); c.write16(0xba, 15); c.write32(0xbc, 3); c.write32(0xc0, 0x1000 | 3);
  c.write8(0xc8, 0x0d); c.write8(0xc9, 0); c.write32(0xcc, 0x12345678);
  c.write8(0x3d, 1); c.write8(0x3c, 0x0b);
  c.write32(0x4c, c.read32(0x4c) | 0x10000000);
}

/** A bound cdev fd for `bdf` in a fresh process. */
function open(k: Kernel, bdf: string): { p: Process; fd: number } {
  // The GPU shares its group with its audio function: the sibling leaves snd_hda_intel first.
  if (bdf === '16:00.0') value(k.drivers.unbind(dev(k, '16:00.1')));
  const vdev = toVfio(k, bdf);
  const p = spawn(k);
  const fd = value(k.devfs.open(p, `/dev/vfio/devices/vfio${vdev.index}`));
  value(deviceBindIommufd({ proc: p, fd, iommufd: value(k.devfs.open(p, '/dev/iommu')) }));
  return { p, fd };
}

const cfgRead = (p: Process, fd: number, off: number, len: number): number => {
  const b = value(regionRead({ proc: p, fd, offset: CFG + off, length: len }));
  return b.reduceRight((acc, x) => acc * 256 + x, 0);
};
const cfgWrite = (p: Process, fd: number, off: number, v: number, len: number): void => {
  const b = new Uint8Array(len);
  for (let i = 0; i < len; i++) b[i] = Math.floor(v / 256 ** i) & 0xff;
  value(regionWrite({ proc: p, fd, offset: CFG + off, data: b }));
};

describe('VFIO_DEVICE_GET_INFO / GET_REGION_INFO / GET_IRQ_INFO', () => {
  it('GET_INFO: PCI | RESET, 9 regions, 5 IRQs; argsz below minsz EINVAL; nothing written past argsz', () => {
    const k = boot({ patch: patchNic });
    const { p, fd } = open(k, '38:00.0');
    expect(value(deviceGetInfo({ proc: p, fd }))).toEqual({ flags: 3, numRegions: 9, numIrqs: 5, capOffset: 0 });
    expect(raw(p, fd, VFIO_DEVICE_GET_INFO, V.vfio_device_info, { argsz: 15 }).e).toBe('EINVAL');
    const at = anon(p, 1);
    value(p.mm.write(at, new Uint8Array(32).fill(0xaa)));
    value(p.mm.write(at, new Uint8Array([16, 0, 0, 0])));
    expect(dispatch(p, fd, VFIO_DEVICE_GET_INFO, at).ok).toBe(true);
    const b = new Uint8Array(24);
    value(p.mm.read(at, b));
    expect([...b.subarray(4, 16)]).toEqual([3, 0, 0, 0, 9, 0, 0, 0, 5, 0, 0, 0]);
    expect([...b.subarray(16)]).toEqual(new Array<number>(8).fill(0xaa));
    // argsz past sizeof (24, with the trailing pad): min(argsz, sizeof) is written, zeros for cap_offset and pad.
    value(p.mm.write(at, new Uint8Array(40).fill(0xaa)));
    value(p.mm.write(at, new Uint8Array([32, 0, 0, 0])));
    expect(dispatch(p, fd, VFIO_DEVICE_GET_INFO, at).ok).toBe(true);
    const c = new Uint8Array(40);
    value(p.mm.read(at, c));
    expect([...c.subarray(0, 4)]).toEqual([32, 0, 0, 0]);
    expect([...c.subarray(16, 24)]).toEqual(new Array<number>(8).fill(0));
    expect([...c.subarray(24, 40)]).toEqual(new Array<number>(16).fill(0xaa));
  });

  it('GET_REGION_INFO: BAR sizes from the function, 64-bit upper halves empty, I/O BAR not mappable, config, VGA for VGA only', () => {
    const k = boot();
    const { p, fd } = open(k, '16:00.0');
    const ri = (index: number) => value(deviceGetRegionInfo({ proc: p, fd, index }));
    expect(ri(0)).toEqual({ flags: 7, size: 16n << 20n, offset: 0n });
    expect(ri(1)).toEqual({ flags: 7, size: 256n << 20n, offset: 1n << 40n });
    expect(ri(2)).toEqual({ flags: 0, size: 0n, offset: 2n << 40n });
    expect(ri(3)).toEqual({ flags: 7, size: 32n << 20n, offset: 3n << 40n });
    expect(ri(5)).toEqual({ flags: 3, size: 128n, offset: 5n << 40n });
    expect(ri(6)).toEqual({ flags: 0, size: 0n, offset: 6n << 40n });
    expect(ri(7)).toEqual({ flags: 3, size: 4096n, offset: 7n << 40n });
    expect(ri(8)).toEqual({ flags: 3, size: 0xc0000n, offset: 8n << 40n });
    expect(errno(deviceGetRegionInfo({ proc: p, fd, index: 9 }))).toBe('EINVAL');
    expect(raw(p, fd, VFIO_DEVICE_GET_REGION_INFO, V.vfio_region_info, { argsz: 31 }).e).toBe('EINVAL');
    const nic = open(k, '38:00.0');
    expect(errno(deviceGetRegionInfo({ proc: nic.p, fd: nic.fd, index: 8 }))).toBe('EINVAL');
  });

  it('GET_IRQ_INFO: counts from the pin and the MSI/MSI-X capabilities, flags per index', () => {
    const k = boot({ patch: patchNic });
    const { p, fd } = open(k, '38:00.0');
    const ii = (index: number) => value(deviceGetIrqInfo({ proc: p, fd, index }));
    expect(ii(0)).toEqual({ flags: 7, count: 1 });
    expect(ii(1)).toEqual({ flags: 9, count: 8 });
    expect(ii(2)).toEqual({ flags: 1, count: 16 });
    expect(ii(3)).toEqual({ flags: 9, count: 1 });
    expect(ii(4)).toEqual({ flags: 9, count: 1 });
    expect(errno(deviceGetIrqInfo({ proc: p, fd, index: 5 }))).toBe('EINVAL');
    expect(raw(p, fd, VFIO_DEVICE_GET_IRQ_INFO, V.vfio_irq_info, { argsz: 15 }).e).toBe('EINVAL');
    const gpu = open(k, '16:00.0');
    expect(value(deviceGetIrqInfo({ proc: gpu.p, fd: gpu.fd, index: 0 })).count).toBe(0);
  });
});

describe('config space through the CONFIG region', () => {
  it('reads the function\'s bytes except what vfio-pci virtualises (a hidden capability is unlinked)', () => {
    const k = boot({ patch: patchNic });
    const { p, fd } = open(k, '38:00.0');
    const hw = dev(k, '38:00.0').config.bytes;
    const got = value(regionRead({ proc: p, fd, offset: CFG, length: 4096 }));
    const diffs = [...got.keys()].filter((i) => got[i] !== hw[i]);
    expect(diffs).toEqual([0xb9]); // MSI-X's next pointer skips the SSVID capability
    expect(got[0xb9]).toBe(0);
    expect(errno(sysPread(p, fd, anon(p, 1), 8, CFG + 4092))).toBe('EFAULT');
  });

  it('hides the PASID extended capability (vfio-pci has no length for it) by relinking PRI\'s next pointer', () => {
    const k = boot();
    const { p, fd } = open(k, '6a:01.0');
    const hw = dev(k, '6a:01.0').config;
    expect(hw.read32(0x108) >>> 20).toBe(0x118);
    expect(cfgRead(p, fd, 0x108, 4) >>> 20).toBe(0);
    expect(cfgRead(p, fd, 0x108, 2)).toBe(0x13);
  });

  it('BAR sizing through config writes: the shadow reads back the size mask, the device\'s BARs never move', () => {
    const k = boot({ patch: patchNic });
    const { p, fd } = open(k, '38:00.0');
    const hw = dev(k, '38:00.0').config;
    const orig = [hw.read32(0x10), hw.read32(0x14)];
    expect(cfgRead(p, fd, 0x10, 4)).toBe(orig[0]);
    cfgWrite(p, fd, 0x10, 0xffffffff, 4);
    cfgWrite(p, fd, 0x14, 0xffffffff, 4);
    expect(cfgRead(p, fd, 0x10, 4)).toBe(0xff80000c); // 8 MiB, 64-bit prefetchable
    expect(cfgRead(p, fd, 0x14, 4)).toBe(0xffffffff);
    expect([hw.read32(0x10), hw.read32(0x14)]).toEqual(orig);
    cfgWrite(p, fd, 0x10, orig[0] ?? 0, 4);
    cfgWrite(p, fd, 0x14, orig[1] ?? 0, 4);
    expect(cfgRead(p, fd, 0x10, 4)).toBe(orig[0]);
    cfgWrite(p, fd, 0x30, 0xffffffff, 4);
    expect(cfgRead(p, fd, 0x30, 4)).toBe(0); // no ROM
    const gpu = open(k, '16:00.0');
    cfgWrite(gpu.p, gpu.fd, 0x24, 0xffffffff, 4);
    expect(cfgRead(gpu.p, gpu.fd, 0x24, 4)).toBe(0xffffff81); // 128-byte I/O BAR
  });

  it('virtualises COMMAND memory/IO/INTx-disable, INTERRUPT_LINE/PIN and MSI control; MSI-X control writes are dropped', () => {
    const k = boot({ patch: patchNic });
    const { p, fd } = open(k, '38:00.0');
    const hw = dev(k, '38:00.0').config;
    cfgWrite(p, fd, 0x04, 0x0406, 2);
    expect(cfgRead(p, fd, 0x04, 2)).toBe(0x0406);
    expect(hw.read16(0x04)).toBe(0x0004); // only bus master reached the device
    cfgWrite(p, fd, 0x3c, 0x55, 1);
    cfgWrite(p, fd, 0x3d, 0x04, 1);
    expect([cfgRead(p, fd, 0x3c, 1), cfgRead(p, fd, 0x3d, 1)]).toEqual([0x55, 1]);
    expect(hw.read8(0x3c)).toBe(0x0b);
    cfgWrite(p, fd, 0xa2, 0x0081, 2);
    expect(cfgRead(p, fd, 0xa2, 2) & 1).toBe(1);
    expect(hw.read16(0xa2) & 1).toBe(0);
    cfgWrite(p, fd, 0xba, 0x800f, 2);
    expect(cfgRead(p, fd, 0xba, 2)).toBe(15);
  });
});

describe('BAR regions', () => {
  it('need memory decoding on (EIO), stop at the BAR end, and reach the Machine\'s BAR memory (no device model)', () => {
    const k = boot({ patch: patchNic, deviceModels: false });
    const { p, fd } = open(k, '38:00.0');
    expect(errno(regionRead({ proc: p, fd, offset: BAR(0), length: 4 }))).toBe('EIO');
    cfgWrite(p, fd, 0x04, 0x0002, 2);
    value(regionWrite({ proc: p, fd, offset: BAR(0) + 0x100, data: new Uint8Array([1, 2, 3, 4]) }));
    const mem = k.machine.barMemory(dev(k, '38:00.0'), 0);
    const b = new Uint8Array(4);
    mem?.read(0x100, b);
    expect([...b]).toEqual([1, 2, 3, 4]);
    expect(value(regionRead({ proc: p, fd, offset: BAR(3) + 32 * 1024 - 2, length: 8 })).length).toBe(2);
    expect(errno(regionRead({ proc: p, fd, offset: BAR(3) + 32 * 1024, length: 4 }))).toBe('EINVAL');
    // RESET (FLR) clears the device's state.
    value(deviceReset({ proc: p, fd }));
    expect([...value(regionRead({ proc: p, fd, offset: BAR(0) + 0x100, length: 4 }))]).toEqual([0, 0, 0, 0]);
  });
});

describe('VFIO_DEVICE_SET_IRQS', () => {
  it('MSI vectors signal their eventfds (device interrupts and loopback); one type at a time', () => {
    const k = boot({ patch: patchNic });
    const { p, fd } = open(k, '38:00.0');
    const hw = dev(k, '38:00.0').config;
    const e0 = value(eventfd(p));
    const e1 = value(eventfd(p));
    value(deviceSetIrqEventfds({ proc: p, fd, index: 1, eventfds: [e0, e1] }));
    expect(hw.read16(0xa2) & 1).toBe(1); // MSI enabled in the device
    value(deviceSetIrqs({ proc: p, fd, flags: NONE_TRIGGER, index: 1, start: 1, count: 1 }));
    k.vfioPci.core(dev(k, '38:00.0'))?.raise(1, 0);
    const buf = anon(p, 1);
    expect(value(sysPread(p, e0, buf, 8, null))).toBe(8);
    expect(value(sysPread(p, e1, buf, 8, null))).toBe(8);
    const v = new Uint8Array(8);
    value(p.mm.read(buf, v));
    expect(v[0]).toBe(1);
    expect(errno(sysPread(p, e1, buf, 8, null))).toBe('EAGAIN');
    expect(errno(deviceSetIrqEventfds({ proc: p, fd, index: 0, eventfds: [e0] }))).toBe('EINVAL'); // INTx while MSI on
    expect(errno(deviceSetIrqs({ proc: p, fd, flags: 1 | 8, index: 1, start: 0, count: 1 }))).toBe('ENOTTY'); // MSI mask
    value(deviceSetIrqs({ proc: p, fd, flags: NONE_TRIGGER, index: 1, start: 0, count: 0 }));
    expect(hw.read16(0xa2) & 1).toBe(0);
  });

  it('INTx is automasked: a second interrupt waits for UNMASK; INTX_DISABLE suppresses the signal', () => {
    const k = boot({ patch: patchNic });
    const { p, fd } = open(k, '38:00.0');
    const efd = value(eventfd(p));
    const f = p.fds.get(efd);
    if (!f.ok || !(f.value.file instanceof EventFd)) throw new Error('not an eventfd');
    const e = f.value.file;
    value(deviceSetIrqEventfds({ proc: p, fd, index: 0, eventfds: [efd] }));
    const core = k.vfioPci.core(dev(k, '38:00.0'));
    core?.raise(0);
    core?.raise(0);
    expect(e.signals).toBe(1);
    value(deviceSetIrqs({ proc: p, fd, flags: 1 | 16, index: 0, start: 0, count: 1 }));
    expect(e.signals).toBe(2);
    value(deviceSetIrqs({ proc: p, fd, flags: 1 | 16, index: 0, start: 0, count: 1 }));
    cfgWrite(p, fd, 0x04, 0x0400, 2);
    value(deviceSetIrqs({ proc: p, fd, flags: NONE_TRIGGER, index: 0, start: 0, count: 1 }));
    expect(e.signals).toBe(2);
  });

  it('validation: data types, ranges, payload within argsz, fds that are not eventfds', () => {
    const k = boot({ patch: patchNic });
    const { p, fd } = open(k, '38:00.0');
    const S = V.vfio_irq_set;
    const four = (n: number) => { const b = new Uint8Array(4); new DataView(b.buffer).setInt32(0, n, true); return b; };
    expect(raw(p, fd, VFIO_DEVICE_SET_IRQS, S, { argsz: 19, flags: NONE_TRIGGER, index: 4, count: 1 }).e).toBe('EINVAL');
    expect(raw(p, fd, VFIO_DEVICE_SET_IRQS, S, { flags: 1 | 2 | 32, index: 4, count: 1 }).e).toBe('EINVAL');
    expect(raw(p, fd, VFIO_DEVICE_SET_IRQS, S, { flags: 64 | 32, index: 4, count: 1 }).e).toBe('EINVAL');
    expect(raw(p, fd, VFIO_DEVICE_SET_IRQS, S, { flags: NONE_TRIGGER, index: 1, start: 7, count: 2 }).e).toBe('EINVAL');
    expect(raw(p, fd, VFIO_DEVICE_SET_IRQS, S, { flags: 4 | 32, index: 4, count: 1 }).e).toBe('EINVAL'); // no payload in argsz
    expect(raw(p, fd, VFIO_DEVICE_SET_IRQS, S, { argsz: 24, flags: 4 | 32, index: 4, count: 1 }, four(999)).e).toBe('EBADF');
    expect(raw(p, fd, VFIO_DEVICE_SET_IRQS, S, { argsz: 24, flags: 4 | 32, index: 4, count: 1 }, four(fd)).e).toBe('EINVAL');
    const req = value(eventfd(p));
    expect(raw(p, fd, VFIO_DEVICE_SET_IRQS, S, { argsz: 24, flags: 4 | 32, index: 4, count: 1 }, four(req)).e).toBe('ok');
    // vfio-pci signals REQ when asked to give the device back (an unbind while open is refused: EBUSY).
    expect(errno(k.drivers.unbind(dev(k, '38:00.0')))).toBe('EBUSY');
    expect(errno(sysPread(p, req, anon(p, 1), 8, null))).toBe('ok');
  });
});

describe('RESET and dispatch by fd kind', () => {
  it('RESET is EINVAL without a working reset method (no FLR, PM No_Soft_Reset), and GET_INFO drops the flag', () => {
    const k = boot({ patch: (get) => { const c = get('16:00.0').config; c.write16(0x44, c.read16(0x44) | 0x8); } });
    const { p, fd } = open(k, '16:00.0');
    expect(value(deviceGetInfo({ proc: p, fd })).flags).toBe(2);
    expect(errno(deviceReset({ proc: p, fd }))).toBe('EINVAL');
    const nic = open(k, '38:00.0');
    const core = k.vfioPci.core(dev(k, '38:00.0'));
    value(deviceReset({ proc: nic.p, fd: nic.fd }));
    expect(core?.resets).toBe(1);
  });

  it('an FLR written to Device Control resets a function that supports FLR', () => {
    const k = boot({ patch: patchNic });
    const { p, fd } = open(k, '38:00.0');
    cfgWrite(p, fd, 0x48 + 8, 0x8000, 2);
    expect(k.vfioPci.core(dev(k, '38:00.0'))?.resets).toBe(1);
    expect(cfgRead(p, fd, 0x48 + 8, 2) & 0x8000).toBe(0);
  });

  it('numbers are dispatched by fd kind: the same number is a different ioctl (or ENOTTY) on each', () => {
    const k = boot();
    const { p, fd } = open(k, '38:00.0');
    const ifd = value(k.devfs.open(p, '/dev/iommu'));
    expect(VFIO_DEVICE_PCI_HOT_RESET).toBe(VFIO_IOMMU_MAP_DMA);
    const at = anon(p, 1);
    value(p.mm.write(at, new Uint8Array([32, 0, 0, 0])));
    expect(errno(dispatch(p, fd, VFIO_DEVICE_PCI_HOT_RESET, at))).toBe('ENOTTY');
    expect(errno(dispatch(p, fd, VFIO_GROUP_GET_STATUS, at))).toBe('ENOTTY');
    expect(errno(dispatch(p, fd, IOMMU_IOAS_ALLOC, at))).toBe('ENOTTY');
    expect(errno(dispatch(p, ifd, VFIO_DEVICE_GET_INFO, at))).toBe('ENOTTY');
    expect(raw(p, fd, VFIO_DEVICE_GET_INFO, V.vfio_device_info, {}).e).toBe('ok');
  });
});
