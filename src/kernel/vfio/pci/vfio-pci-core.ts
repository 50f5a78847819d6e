// One function driven by vfio-pci (struct vfio_pci_core_device): the VFIO device ops for a physical PCI
// function. Binding makes an iommufd DEVICE (DMA ownership claimed for the iommufd), the RID and PASIDs
// attach to IO page tables, and the device fd serves info, regions, interrupts and reset.
//
//  * attach_ioas: a second attach while attached is a replace. PASIDs are tracked as vfio-pci's IDA does:
//    attaching a PASID already attached replaces it; detaching a PASID not attached does nothing; unbind
//    detaches every PASID, then the RID, then unbinds.
//  * open_device (vfio_pci_core_enable): the shadow config space and interrupt state are built afresh;
//    close_device turns every interrupt off.
//  * GET_INFO: flags PCI, plus RESET when a reset method works; 9 regions, 5 IRQ indexes, no capabilities.
//  * RESET (and an FLR written to Device Control): EINVAL when not resettable. The PCI core saves config
//    space, resets and restores it (pci_reset_function), so the function's config reads the same after;
//    what the reset clears is the device's own state, through the BAR handlers' reset.

import { NO_PASID } from '../../../hw/iommu/types.ts';
import type { PhysicalMemory } from '../../../hw/memory/physical-memory.ts';
import type { PciDev } from '../../../pci/dev.ts';
import { fail, ok, type Result } from '../../errno.ts';
import type { IommufdCtx } from '../../iommufd/context.ts';
import {
  iommufdDeviceAttach, iommufdDeviceBind, iommufdDeviceDetach, iommufdDeviceReplace, iommufdDeviceUnbind,
  type IommufdDevice,
} from '../../iommufd/device.ts';
import type { Process } from '../../process/process.ts';
import type { VfioDeviceInfo, VfioIrqSetHdr } from '../device-fd-ops.ts';
import type { VfioDevice, VfioDeviceOps } from '../vfio-device.ts';
import { VfioPciConfig } from './config.ts';
import { NUM_IRQS, VfioPciIrqs } from './irqs.ts';
import { PCI_COMMAND_INTX_DISABLE, PCI_COMMAND_MEMORY } from './pci-consts.ts';
import {
  barInfo, BAR_REGIONS, CONFIG_REGION, MemoryBarHandler, NUM_REGIONS, PortBarHandler, regionInfo, ROM_REGION,
  VFIO_PCI_OFFSET_SHIFT, VGA_REGION, type BarHandler, type RegionInfo,
} from './regions.ts';
import { resetMethod } from './reset.ts';

export const VFIO_DEVICE_FLAGS_RESET = 1;
export const VFIO_DEVICE_FLAGS_PCI = 2;

/** Where a BAR's default handler finds memory (Machine.barMemory). */
export type BarMemorySource = (dev: PciDev, bar: number) => PhysicalMemory | undefined;
/** A device model's handler for a BAR, when the machine has one attached there (undefined: plain memory). */
export type BarModelSource = (dev: PciDev, bar: number) => BarHandler | undefined;

export class VfioPciCore implements VfioDeviceOps {
  readonly name = 'vfio-pci';
  /** The iommufd DEVICE while bound. */
  idev: IommufdDevice | null = null;
  /** vdev->iommufd_attached: the RID is attached. */
  ridAttached = false;
  /** vdev->pasids. */
  readonly pasids = new Set<number>();
  /** Shadow config space, while the device is open. */
  config: VfioPciConfig | null = null;
  irqs: VfioPciIrqs | null = null;
  /** Completed resets (VFIO_DEVICE_RESET or an FLR through config space). */
  resets = 0;
  private readonly handlers = new Map<number, BarHandler>();
  private readonly vga = new Uint8Array(0x20000);

  constructor(readonly dev: PciDev, private readonly barMemory: BarMemorySource, private readonly barModel: BarModelSource = () => undefined) {}

  /** Plug a device model into BAR `bar` (reads and writes of its region go there). */
  setBarHandler(bar: number, handler: BarHandler): void { this.handlers.set(bar, handler); }

  /** The handler serving BAR `bar` (the default one is made on first use), or undefined without the BAR. */
  barHandler(bar: number): BarHandler | undefined {
    const have = this.handlers.get(bar);
    if (have !== undefined) return have;
    const b = barInfo(this.dev, bar);
    if (b.size === 0) return undefined;
    let h: BarHandler;
    const model = this.barModel(this.dev, bar);
    if (model !== undefined) h = model;
    else if (b.io) h = new PortBarHandler(b.size);
    else {
      const mem = this.barMemory(this.dev, bar);
      if (mem === undefined) return undefined;
      h = new MemoryBarHandler(mem, b.size);
    }
    this.handlers.set(bar, h);
    return h;
  }

  // ---- open / close --------------------------------------------------------------------------------

  openDevice(): Result {
    const config = new VfioPciConfig(this.dev);
    this.config = config;
    this.irqs = new VfioPciIrqs(this.dev, () => (config.command & PCI_COMMAND_INTX_DISABLE) !== 0);
    return ok();
  }

  closeDevice(): void {
    this.irqs?.disableAll();
    this.irqs = null;
    this.config = null;
  }

  // ---- iommufd (vfio_iommufd_physical_*) -----------------------------------------------------------

  bindIommufd(_vdev: VfioDevice, ctx: IommufdCtx): Result<number> {
    const r = iommufdDeviceBind(ctx, this.dev);
    if (!r.ok) return r;
    this.idev = r.value;
    return ok(r.value.id);
  }

  unbindIommufd(): void {
    const idev = this.idev;
    if (idev === null) return;
    for (const p of this.pasids) iommufdDeviceDetach(idev, p);
    this.pasids.clear();
    if (this.ridAttached) iommufdDeviceDetach(idev, NO_PASID);
    this.ridAttached = false;
    iommufdDeviceUnbind(idev);
    this.idev = null;
  }

  attachIoas(_vdev: VfioDevice, ptId: number): Result<number> {
    if (this.idev === null) return fail('EINVAL', `${this.dev.bdf} is not bound to an iommufd`);
    const r = this.ridAttached ? iommufdDeviceReplace(this.idev, ptId) : iommufdDeviceAttach(this.idev, ptId);
    if (r.ok) this.ridAttached = true;
    return r;
  }

  detachIoas(): void {
    if (this.idev === null || !this.ridAttached) return;
    iommufdDeviceDetach(this.idev, NO_PASID);
    this.ridAttached = false;
  }

  pasidAttachIoas(_vdev: VfioDevice, pasid: number, ptId: number): Result<number> {
    if (this.idev === null) return fail('EINVAL', `${this.dev.bdf} is not bound to an iommufd`);
    // The 2021 system-wide PASID design (an option): only a PASID this iommufd allocated.
    const allowed = this.idev.ctx.core.globalPasids.checkUserPasid(pasid, this.idev.ctx);
    if (!allowed.ok) return allowed;
    if (this.pasids.has(pasid)) return iommufdDeviceReplace(this.idev, ptId, pasid);
    const r = iommufdDeviceAttach(this.idev, ptId, pasid);
    if (r.ok) this.pasids.add(pasid);
    return r;
  }

  pasidDetachIoas(_vdev: VfioDevice, pasid: number): void {
    if (this.idev === null || !this.pasids.has(pasid)) return;
    iommufdDeviceDetach(this.idev, pasid);
    this.pasids.delete(pasid);
  }

  // ---- device fd ioctls ------------------------------------------------------------------------------

  deviceInfo(): VfioDeviceInfo {
    return { flags: VFIO_DEVICE_FLAGS_PCI | (resetMethod(this.dev) !== null ? VFIO_DEVICE_FLAGS_RESET : 0), numRegions: NUM_REGIONS, numIrqs: NUM_IRQS };
  }

  regionInfo(index: number): Result<RegionInfo> {
    return regionInfo(this.dev, this.openConfig().size, index);
  }

  irqInfo(index: number): Result<{ flags: number; count: number }> { return this.openIrqs().info(index); }
  irqSetValidate(hdr: VfioIrqSetHdr, payload: number): Result<number> { return this.openIrqs().validate(hdr, payload); }
  setIrqs(proc: Process, hdr: VfioIrqSetHdr, data: Uint8Array): Result { return this.openIrqs().set(proc, hdr, data); }

  reset(): Result {
    if (resetMethod(this.dev) === null) return fail('EINVAL', `${this.dev.bdf} has no working reset method (no FLR, PM No_Soft_Reset set)`);
    for (let bar = 0; bar < BAR_REGIONS; bar++) this.barHandler(bar)?.reset?.();
    this.resets++;
    return ok();
  }

  /** The device raised an interrupt (MSI/MSI-X vector, INTx, ERR, REQ). */
  raise(index: number, vector = 0): void { this.irqs?.raise(index, vector); }

  // ---- read / write (vfio_pci_rw) ---------------------------------------------------------------------

  regionRead(offset: number, count: number): Result<Uint8Array> {
    return this.rw(offset, count, null);
  }

  regionWrite(offset: number, data: Uint8Array): Result<number> {
    const r = this.rw(offset, data.length, data);
    return r.ok ? ok(r.value.length) : r;
  }

  private rw(offset: number, count: number, data: Uint8Array | null): Result<Uint8Array> {
    const index = Math.floor(offset / 2 ** VFIO_PCI_OFFSET_SHIFT);
    const pos = offset - index * 2 ** VFIO_PCI_OFFSET_SHIFT;
    const cfg = this.openConfig();
    if (index === CONFIG_REGION) {
      if (pos >= cfg.size || pos + count > cfg.size) return fail('EFAULT', `config access [${pos}, ${pos + count}) is past the ${cfg.size}-byte config space`);
      if (data === null) return ok(cfg.readBytes(pos, count));
      const effects = cfg.writeBytes(pos, data);
      if (effects.intxDisable !== undefined && this.irqs !== null && this.irqs.type === 'intx') this.irqs.intxMasked = effects.intxDisable;
      if (effects.flr === true && resetMethod(this.dev) === 'flr') void this.reset();
      return ok(data);
    }
    if (index < BAR_REGIONS) {
      const b = barInfo(this.dev, index);
      if (pos >= b.size) return fail('EINVAL', `offset ${pos} is past BAR${index} (${b.size} bytes)`);
      if (!b.io && (cfg.command & PCI_COMMAND_MEMORY) === 0) return fail('EIO', `memory decoding is off in ${this.dev.bdf}'s COMMAND register`);
      const h = this.barHandler(index);
      if (h === undefined) return fail('EINVAL', `BAR${index} has no backing`);
      const n = Math.min(count, b.size - pos);
      if (data === null) {
        const out = new Uint8Array(n);
        h.read(pos, out);
        return ok(out);
      }
      h.write(pos, data.subarray(0, n));
      return ok(data.subarray(0, n));
    }
    if (index === VGA_REGION) {
      const info = regionInfo(this.dev, cfg.size, index);
      if (!info.ok) return info;
      if (pos < 0xa0000 || pos + count > 0xc0000) return fail('EINVAL', `VGA access at 0x${pos.toString(16)} is outside the legacy ranges modelled (0xa0000-0xbffff)`);
      const at = pos - 0xa0000;
      if (data === null) return ok(this.vga.slice(at, at + count));
      this.vga.set(data, at);
      return ok(data);
    }
    if (index === ROM_REGION) return fail('EINVAL', `${this.dev.bdf} has no expansion ROM`);
    return fail('EINVAL', `region index ${index} does not exist`);
  }

  private openConfig(): VfioPciConfig {
    if (this.config === null) throw new Error(`${this.dev.bdf}: device fd op on a device that is not open`);
    return this.config;
  }

  private openIrqs(): VfioPciIrqs {
    if (this.irqs === null) throw new Error(`${this.dev.bdf}: device fd op on a device that is not open`);
    return this.irqs;
  }
}
