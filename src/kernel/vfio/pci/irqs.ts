// vfio-pci's interrupts (vfio_pci_intrs.c and the IRQ ioctls of vfio_pci_core.c, modelled): five indexes
// (INTx, MSI, MSI-X, ERR, REQ), each signalled to user space through eventfds set with SET_IRQS.
//
//  * Counts: INTx 1 when the function has an interrupt pin (never for a VF); MSI from the capability's
//    Multiple Message Capable field; MSI-X from its table size; ERR 1 on PCI Express only; REQ 1.
//  * GET_IRQ_INFO: index ≥ 5, or ERR on conventional PCI → EINVAL. Flags EVENTFD; INTx also MASKABLE
//    and AUTOMASKED; MSI NORESIZE (MSI-X can grow: dynamic MSI-X allocation).
//  * SET_IRQS validation (vfio_set_irqs_validate_and_prepare): unknown flag bits, index ≥ 5, a range
//    outside [0, count), or a data type that is not exactly one of NONE/BOOL/EVENTFD → EINVAL; the
//    payload (count bytes or count s32 fds) must fit in argsz. An index/action pair with no handler
//    (MSI mask, ERR/REQ mask) → ENOTTY.
//  * One interrupt type at a time: enabling INTx while MSI is on (or the reverse) → EINVAL; DATA_NONE
//    with count 0 on the active type disables it. DATA_NONE / DATA_BOOL on an enabled type signal the
//    eventfds (loopback). An eventfd of -1 unassigns; another non-eventfd fd → EINVAL, a closed one EBADF.
//  * INTx is automasked: the device's interrupt masks it and signals; UNMASK re-arms (a pending one fires
//    again). The user's COMMAND.INTX_DISABLE suppresses the signal.

import type { PciDev } from '../../../pci/dev.ts';
import { PCI_CAP_ID_MSI, PCI_CAP_ID_MSIX, PCI_INTERRUPT_PIN } from '../../../pci/regs.ts';
import { fail, ok, type Result } from '../../errno.ts';
import type { Process } from '../../process/process.ts';
import { eventfdGet, type EventFd } from '../../vfs/eventfd.ts';
import {
  PCI_MSI_FLAGS, PCI_MSI_FLAGS_ENABLE, PCI_MSI_FLAGS_QMASK, PCI_MSIX_FLAGS, PCI_MSIX_FLAGS_ENABLE, PCI_MSIX_FLAGS_QSIZE,
} from './pci-consts.ts';

export const INTX = 0;
export const MSI = 1;
export const MSIX = 2;
export const ERR = 3;
export const REQ = 4;
export const NUM_IRQS = 5;

export const IRQ_INFO_EVENTFD = 1;
export const IRQ_INFO_MASKABLE = 2;
export const IRQ_INFO_AUTOMASKED = 4;
export const IRQ_INFO_NORESIZE = 8;

export const SET_DATA_NONE = 1;
export const SET_DATA_BOOL = 2;
export const SET_DATA_EVENTFD = 4;
export const SET_ACTION_MASK = 8;
export const SET_ACTION_UNMASK = 16;
export const SET_ACTION_TRIGGER = 32;
const DATA_MASK = SET_DATA_NONE | SET_DATA_BOOL | SET_DATA_EVENTFD;
const ACTION_MASK = SET_ACTION_MASK | SET_ACTION_UNMASK | SET_ACTION_TRIGGER;

/** The decoded header of struct vfio_irq_set. */
export interface IrqSetHdr { readonly flags: number; readonly index: number; readonly start: number; readonly count: number }

type IrqType = 'none' | 'intx' | 'msi' | 'msix';

export class VfioPciIrqs {
  type: IrqType = 'none';
  intxTrigger: EventFd | null = null;
  intxUnmask: EventFd | null = null;
  /** ctx->masked: INTx fired and was automasked, or the user masked it. */
  intxMasked = false;
  private intxPending = false;
  /** MSI/MSI-X vector → eventfd. */
  readonly vectors = new Map<number, EventFd>();
  errTrigger: EventFd | null = null;
  reqTrigger: EventFd | null = null;

  /** `virqDisabled` reads the user's COMMAND.INTX_DISABLE. */
  constructor(readonly dev: PciDev, private readonly virqDisabled: () => boolean) {}

  /** vfio_pci_get_irq_count(). */
  count(index: number): number {
    const cfg = this.dev.config;
    switch (index) {
      case INTX: return this.dev.physfn === null && cfg.read8(PCI_INTERRUPT_PIN) !== 0 ? 1 : 0;
      case MSI: {
        const at = cfg.findCapability(PCI_CAP_ID_MSI);
        return at === 0 ? 0 : 1 << ((cfg.read16(at + PCI_MSI_FLAGS) & PCI_MSI_FLAGS_QMASK) >> 1);
      }
      case MSIX: {
        const at = cfg.findCapability(PCI_CAP_ID_MSIX);
        return at === 0 ? 0 : (cfg.read16(at + PCI_MSIX_FLAGS) & PCI_MSIX_FLAGS_QSIZE) + 1;
      }
      case ERR: return this.dev.pcieCap !== 0 ? 1 : 0;
      case REQ: return 1;
      default: return 0;
    }
  }

  /** VFIO_DEVICE_GET_IRQ_INFO. */
  info(index: number): Result<{ flags: number; count: number }> {
    if (index >= NUM_IRQS || (index === ERR && this.dev.pcieCap === 0)) return fail('EINVAL', `no IRQ index ${index} on ${this.dev.bdf}`);
    let flags = IRQ_INFO_EVENTFD;
    if (index === INTX) flags |= IRQ_INFO_MASKABLE | IRQ_INFO_AUTOMASKED;
    else if (index !== MSIX) flags |= IRQ_INFO_NORESIZE;
    return ok({ flags, count: this.count(index) });
  }

  /** The payload size SET_IRQS needs after the header (validation per vfio_set_irqs_validate_and_prepare). */
  validate(h: IrqSetHdr, payload: number): Result<number> {
    if (h.index >= NUM_IRQS || h.count >= 0xffffffff - h.start || (h.flags & ~(DATA_MASK | ACTION_MASK)) !== 0) {
      return fail('EINVAL', `bad SET_IRQS header (index ${h.index}, start ${h.start}, count ${h.count}, flags 0x${h.flags.toString(16)})`);
    }
    const n = this.count(h.index);
    if (h.start >= n || h.start + h.count > n) return fail('EINVAL', `IRQs [${h.start}, ${h.start + h.count}) are outside the ${n} of index ${h.index}`);
    const size = { [SET_DATA_NONE]: 0, [SET_DATA_BOOL]: 1, [SET_DATA_EVENTFD]: 4 }[h.flags & DATA_MASK];
    if (size === undefined) return fail('EINVAL', 'SET_IRQS needs exactly one DATA_ type');
    if (payload < h.count * size) return fail('EINVAL', `argsz leaves ${payload} bytes for ${h.count} entries of ${size}`);
    return ok(h.count * size);
  }

  /** vfio_pci_set_irqs_ioctl() after validation; `data` holds the payload. */
  set(proc: Process, h: IrqSetHdr, data: Uint8Array): Result {
    const action = h.flags & ACTION_MASK;
    if (h.index === INTX) {
      if (action === SET_ACTION_MASK) return this.intxMask(h, data);
      if (action === SET_ACTION_UNMASK) return this.intxUnmaskSet(proc, h, data);
      if (action === SET_ACTION_TRIGGER) return this.intxTriggerSet(proc, h, data);
    } else if ((h.index === MSI || h.index === MSIX) && action === SET_ACTION_TRIGGER) {
      return this.msiTrigger(proc, h, data);
    } else if ((h.index === ERR || h.index === REQ) && action === SET_ACTION_TRIGGER) {
      if (h.start !== 0 || h.count > 1) return fail('EINVAL', 'ERR/REQ have one vector');
      const slot = h.index === ERR ? 'errTrigger' : 'reqTrigger';
      return this.single(proc, h, data, slot);
    }
    return fail('ENOTTY', `no handler for action 0x${action.toString(16)} on IRQ index ${h.index}`);
  }

  /** The device raised vector `vector` of `index` (the kernel's interrupt handler). */
  raise(index: number, vector = 0): void {
    if (index === INTX) {
      if (this.type !== 'intx') return;
      if (this.intxMasked) { this.intxPending = true; return; }
      this.intxMasked = true;
      if (!this.virqDisabled()) this.intxTrigger?.signal();
      return;
    }
    if ((index === MSI && this.type === 'msi') || (index === MSIX && this.type === 'msix')) this.vectors.get(vector)?.signal();
    else if (index === ERR) this.errTrigger?.signal();
    else if (index === REQ) this.reqTrigger?.signal();
  }

  /** vfio_pci_core_disable(): every interrupt off, every eventfd dropped. */
  disableAll(): void {
    if (this.type === 'msi' || this.type === 'msix') this.msiDisable();
    this.intxTrigger = null;
    this.intxUnmask = null;
    this.intxMasked = false;
    this.intxPending = false;
    this.errTrigger = null;
    this.reqTrigger = null;
    this.type = 'none';
  }

  private fds(proc: Process, data: Uint8Array, n: number): Result<(EventFd | null)[]> {
    const dv = new DataView(data.buffer, data.byteOffset, data.byteLength);
    const out: (EventFd | null)[] = [];
    for (let i = 0; i < n; i++) {
      const fd = dv.getInt32(i * 4, true);
      if (fd < -1) return fail('EINVAL', `eventfd ${fd}`);
      if (fd === -1) { out.push(null); continue; }
      const e = eventfdGet(proc, fd);
      if (!e.ok) return e;
      out.push(e.value);
    }
    return ok(out);
  }

  private intxMask(h: IrqSetHdr, data: Uint8Array): Result {
    if (this.type !== 'intx' || h.start !== 0 || h.count !== 1) return fail('EINVAL', 'INTx is not enabled (or start/count is not 0/1)');
    if ((h.flags & SET_DATA_EVENTFD) !== 0) return fail('ENOTTY', 'masking INTx through an eventfd is not implemented by vfio-pci');
    if ((h.flags & SET_DATA_NONE) !== 0 || data[0] !== 0) this.intxMasked = true;
    return ok();
  }

  private intxUnmaskSet(proc: Process, h: IrqSetHdr, data: Uint8Array): Result {
    if (this.type !== 'intx' || h.start !== 0 || h.count !== 1) return fail('EINVAL', 'INTx is not enabled (or start/count is not 0/1)');
    if ((h.flags & SET_DATA_EVENTFD) !== 0) {
      const f = this.fds(proc, data, 1);
      if (!f.ok) return f;
      this.intxUnmask = f.value[0] ?? null;
      return ok();
    }
    if ((h.flags & SET_DATA_NONE) !== 0 || data[0] !== 0) {
      this.intxMasked = false;
      if (this.intxPending) { this.intxPending = false; this.raise(INTX); }
    }
    return ok();
  }

  private intxTriggerSet(proc: Process, h: IrqSetHdr, data: Uint8Array): Result {
    if (this.type === 'intx' && h.count === 0 && (h.flags & SET_DATA_NONE) !== 0) { this.disableAll(); return ok(); }
    if ((this.type !== 'intx' && this.type !== 'none') || h.start !== 0 || h.count !== 1) {
      return fail('EINVAL', `INTx cannot be set while ${this.type} is enabled (or start/count is not 0/1)`);
    }
    if ((h.flags & SET_DATA_EVENTFD) !== 0) {
      const f = this.fds(proc, data, 1);
      if (!f.ok) return f;
      if (this.type === 'none') { this.type = 'intx'; this.intxMasked = this.virqDisabled(); }
      this.intxTrigger = f.value[0] ?? null;
      return ok();
    }
    if (this.type !== 'intx') return fail('EINVAL', 'INTx is not enabled');
    if (((h.flags & SET_DATA_NONE) !== 0 || data[0] !== 0) && !this.virqDisabled()) this.intxTrigger?.signal();
    return ok();
  }

  private msiTrigger(proc: Process, h: IrqSetHdr, data: Uint8Array): Result {
    const want: IrqType = h.index === MSI ? 'msi' : 'msix';
    if (this.type === want && h.count === 0 && (h.flags & SET_DATA_NONE) !== 0) { this.msiDisable(); return ok(); }
    if (this.type !== want && this.type !== 'none') return fail('EINVAL', `${want} cannot be set while ${this.type} is enabled`);
    if ((h.flags & SET_DATA_EVENTFD) !== 0) {
      const f = this.fds(proc, data, h.count);
      if (!f.ok) return f;
      if (this.type === 'none') this.msiEnable(want);
      f.value.forEach((e, j) => {
        if (e === null) this.vectors.delete(h.start + j);
        else this.vectors.set(h.start + j, e);
      });
      return ok();
    }
    if (this.type !== want) return fail('EINVAL', `${want} is not enabled`);
    for (let i = 0; i < h.count; i++) {
      if ((h.flags & SET_DATA_NONE) !== 0 || data[i] !== 0) this.vectors.get(h.start + i)?.signal();
    }
    return ok();
  }

  private single(proc: Process, h: IrqSetHdr, data: Uint8Array, slot: 'errTrigger' | 'reqTrigger'): Result {
    if ((h.flags & SET_DATA_NONE) !== 0) {
      if (h.count > 0) this[slot]?.signal();
      else this[slot] = null;
      return ok();
    }
    if (h.count === 0) return fail('EINVAL', 'count 0 with BOOL or EVENTFD data');
    if ((h.flags & SET_DATA_BOOL) !== 0) {
      if (data[0] !== 0) this[slot]?.signal();
      return ok();
    }
    const f = this.fds(proc, data, 1);
    if (!f.ok) return f;
    this[slot] = f.value[0] ?? null;
    return ok();
  }

  // vfio_msi_enable()/disable(): the capability's enable bit in the device follows.
  private msiEnable(t: 'msi' | 'msix'): void {
    this.type = t;
    this.setCapEnable(t, true);
  }

  private msiDisable(): void {
    if (this.type === 'msi' || this.type === 'msix') this.setCapEnable(this.type, false);
    this.vectors.clear();
    this.type = 'none';
  }

  private setCapEnable(t: 'msi' | 'msix', on: boolean): void {
    const cfg = this.dev.config;
    const at = cfg.findCapability(t === 'msi' ? PCI_CAP_ID_MSI : PCI_CAP_ID_MSIX);
    if (at === 0) return;
    const off = at + (t === 'msi' ? PCI_MSI_FLAGS : PCI_MSIX_FLAGS);
    const bit = t === 'msi' ? PCI_MSI_FLAGS_ENABLE : PCI_MSIX_FLAGS_ENABLE;
    cfg.write16(off, on ? cfg.read16(off) | bit : cfg.read16(off) & ~bit);
  }
}
