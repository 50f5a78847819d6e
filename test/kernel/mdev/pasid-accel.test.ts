import { describe, expect, it } from 'vitest';
import {
  ACCEL_GENCTRL_ENABLE, AccelOp, AccelReg, AccelStatus, DESC_BYTES, DESC_FLAG_RCR, PORTAL_STRIDE, WorkQueueAccel,
  WQ_CFG_DEDICATED, WQ_CFG_ENABLE, WQ_CFG_PASID_EN, WQ_STRIDE, WqReg,
} from '../../../src/hw/devices/work-queue-accel.ts';
import { checkIsolation } from '../../../src/kernel/isolation/check.ts';
import { PasidBackedParentDriver } from '../../../src/kernel/mdev/pasid-backed-parent.ts';
import type { MdevDevice } from '../../../src/kernel/mdev/types.ts';
import { attach, boot, dev, openAndBind, PAGE, user, UUID1, UUID2, value } from './helpers.ts';

// Seed 003 with the DSA-like device model behind 6a:01.0: the host driver gives each PASID-backed mdev a
// dedicated work queue tagged with the mdev's default PASID; descriptors its user submits move data
// inside that user's IOAS and cannot touch the other mdev's.

const DSA = '6a:01.0';
const IOVA_A = 0x10_0000n;
const IOVA_B = 0x40_0000n;

function desc(op: number, src: bigint, dst: bigint, size: number, comp: bigint): Uint8Array {
  const b = new Uint8Array(DESC_BYTES);
  const v = new DataView(b.buffer);
  v.setUint32(4, ((op << 24) | DESC_FLAG_RCR) >>> 0, true);
  v.setBigUint64(0x08, comp, true);
  v.setBigUint64(0x10, src, true);
  v.setBigUint64(0x18, dst, true);
  v.setUint32(0x20, size, true);
  return b;
}

describe('PASID-backed mdevs on the work-queue accelerator model', () => {
  it('each mdev\'s dedicated WQ moves data within its own IOAS only', () => {
    const k = boot();
    const dsa = dev(k, DSA);
    const drv = new PasidBackedParentDriver({ core: k.core, vfio: k.vfio, mdev: k.mdev, machine: k.machine }, 2);
    value(drv.registerParent(dsa));
    const accel = new WorkQueueAccel({ dma: k.machine.dmaPort(dsa) });
    k.machine.attachModel(dsa, accel);
    const w = (off: number, v: number): void => k.machine.mmio.write(dsa, 0, off, 4, v);
    w(AccelReg.GENCTRL, ACCEL_GENCTRL_ENABLE);
    const ms: MdevDevice[] = [value(k.mdev.create(dsa, 'idxd-siov-wq', UUID1)), value(k.mdev.create(dsa, 'idxd-siov-wq', UUID2))];
    // The host driver (idxd) dedicates WQ n to mdev n, tagged with its default PASID.
    ms.forEach((m, n) => {
      const at = AccelReg.WQ_BASE + n * WQ_STRIDE;
      w(at + WqReg.SIZE, 8);
      w(at + WqReg.PASID, m.pasid ?? 0);
      w(at + WqReg.CFG, WQ_CFG_ENABLE | WQ_CFG_DEDICATED | WQ_CFG_PASID_EN);
    });
    const a = user(k, 1000, { iova: IOVA_A, fill: 0x11 });
    const b = user(k, 1001, { iova: IOVA_B, fill: 0x22 });
    value(openAndBind(ms[0]?.vdev ?? null, a.ctx));
    value(attach(ms[0]?.vdev ?? null, a.ioasId));
    value(openAndBind(ms[1]?.vdev ?? null, b.ctx));
    value(attach(ms[1]?.vdev ?? null, b.ioasId));
    const submit = (n: number, d: Uint8Array): boolean => k.machine.mmio.writeBlock(dsa, 2, n * PORTAL_STRIDE, d);

    // A's MEMMOVE page 0 → page 1 of its buffer; completion record in page 3.
    expect(submit(0, desc(AccelOp.MEMMOVE, IOVA_A, IOVA_A + BigInt(PAGE), 64, IOVA_A + 3n * BigInt(PAGE)))).toBe(true);
    expect(a.read(PAGE, 64)).toEqual(new Uint8Array(64).fill(0x11));
    expect(a.read(3 * PAGE, 1)[0]).toBe(AccelStatus.SUCCESS);

    // B's WQ aims at A's IOVAs: its PASID's page table does not map them.
    expect(submit(1, desc(AccelOp.MEMMOVE, IOVA_A, IOVA_B, 64, IOVA_B + 3n * BigInt(PAGE)))).toBe(true);
    expect(b.read(0, 64)).toEqual(new Uint8Array(64).fill(0x22));
    expect(b.read(3 * PAGE, 1)[0]).toBe(AccelStatus.PAGE_FAULT);
    expect(checkIsolation(k).breaches).toEqual([]);
  });
});
