import { describe, expect, it } from 'vitest';
import { EmulatedParentDriver } from '../../../src/kernel/mdev/emulated-parent.ts';
import { VFIO_PIN_PAGES_MAX_ENTRIES } from '../../../src/kernel/vfio/pin.ts';
import type { Kernel } from '../../../src/kernel/kernel.ts';
import { attach, boot, closeDev, dev, errno, openAndBind, PAGE, user, UUID1, value } from './helpers.ts';

// Kind (a): an emulated mdev (VFIO reference §11.2-§11.3, §12). out_devid is the ACCESS ID, attach
// takes only an IOAS, the device moves data with vfio_pin_pages/vfio_dma_rw, and dma_unmap is the
// unmap contract (honoured: IOAS_UNMAP of pinned pages succeeds; ignored: EDEADLOCK).

const GPU = '16:00.0';
const P = BigInt(PAGE);

function setup(k: Kernel = boot(), honourUnmap = true) {
  const drv = new EmulatedParentDriver({ vfio: k.vfio, memory: k.memory }, { honourUnmap });
  value(k.mdev.registerParent(dev(k, GPU), drv, drv.types()));
  const m = value(k.mdev.create(dev(k, GPU), 'vgpu-lite-1', UUID1));
  const u = user(k, 1000, { pages: 4 });
  return { k, drv, m, u };
}

describe('emulated mdev (vgpu-lite)', () => {
  it('bind creates an ACCESS: out_devid is its ID; attach takes an IOAS only', () => {
    const { drv, m, u } = setup();
    const id = value(openAndBind(m.vdev, u.ctx));
    expect(value(u.ctx.objects.get(id)).type).toBe('access');
    expect(drv.stateOf(m).accessId).toBe(id);
    expect(m.user).toBe(u.ctx);
    expect(errno(attach(m.vdev, id))).toBe('ENOENT'); // the ACCESS itself is not an IOAS
    expect(value(attach(m.vdev, u.ioasId))).toBe(u.ioasId);
    closeDev(m.vdev);
    expect(errno(u.ctx.objects.get(id))).toBe('ENOENT');
  });

  it('vfio_pin_pages: EINVAL for zero pages or a closed device, ENOENT for a hole (the 512 cap is the container path\'s)', () => {
    const { drv, m, u } = setup();
    value(openAndBind(m.vdev, u.ctx));
    value(attach(m.vdev, u.ioasId));
    expect(errno(drv.pin(m, u.iova, 0))).toBe('EINVAL');
    // vfio_main.c checks VFIO_PIN_PAGES_MAX_ENTRIES only before the container backend: here the
    // request goes to iommufd_access_pin_pages whole, and the IOAS has 4 pages mapped.
    expect(errno(drv.pin(m, u.iova, VFIO_PIN_PAGES_MAX_ENTRIES + 1))).toBe('ENOENT');
    expect(errno(drv.pin(m, u.iova + 64n * P, 1))).toBe('ENOENT');
    const pfns = value(drv.pin(m, u.iova + 1n * P, 2));
    expect(pfns.length).toBe(2);
    drv.unpin(m, u.iova + 1n * P, 2);
    expect(drv.stateOf(m).access?.pinCount).toBe(0);
    closeDev(m.vdev);
    expect(errno(drv.pin(m, u.iova, 1))).toBe('EINVAL'); // not open
  });

  it('the device\'s CPU DMA (blit through pinned frames, vfio_dma_rw) lands in the process\'s memory', () => {
    const { drv, m, u } = setup();
    value(openAndBind(m.vdev, u.ctx));
    value(attach(m.vdev, u.ioasId));
    const data = Uint8Array.from({ length: 6000 }, (_, i) => (i * 7) & 0xff);
    value(drv.blit(m, u.iova + 100n, data));
    expect(u.read(100, 6000)).toEqual(data);
    expect(drv.stateOf(m).access?.pinCount).toBe(0);
    value(drv.dmaRw(m, u.iova + 3n * P, Uint8Array.of(1, 2, 3), true));
    expect(u.read(3 * PAGE, 3)).toEqual(Uint8Array.of(1, 2, 3));
    const back = new Uint8Array(3);
    value(drv.dmaRw(m, u.iova + 3n * P, back, false));
    expect(back).toEqual(Uint8Array.of(1, 2, 3));
  });

  it('IOAS_UNMAP of a pinned range: dma_unmap unpins, the unmap is retried and succeeds', () => {
    const { drv, m, u } = setup();
    value(openAndBind(m.vdev, u.ctx));
    value(attach(m.vdev, u.ioasId));
    value(drv.pin(m, u.iova, 2));
    value(drv.pin(m, u.iova + 3n * P, 1));
    expect(value(u.unmap(u.iova, 4n * P))).toBe(4n * P);
    const st = drv.stateOf(m);
    expect(st.unmapCalls.length).toBeGreaterThan(0);
    expect(st.pins).toEqual([]);
    expect(st.access?.pinCount).toBe(0);
  });

  it('a driver that ignores dma_unmap makes IOAS_UNMAP fail with EDEADLOCK', () => {
    const { drv, m, u } = setup(boot(), false);
    value(openAndBind(m.vdev, u.ctx));
    value(attach(m.vdev, u.ioasId));
    value(drv.pin(m, u.iova, 1));
    expect(errno(u.unmap(u.iova, 4n * P))).toBe('EDEADLOCK');
    expect(drv.stateOf(m).unmapCalls.length).toBeGreaterThan(1);
  });

  it('detach (unmap(0, ULONG_MAX)) drops every pin; re-attach works', () => {
    const { drv, m, u } = setup();
    value(openAndBind(m.vdev, u.ctx));
    value(attach(m.vdev, u.ioasId));
    value(drv.pin(m, u.iova, 2));
    m.vdev?.ops.detachIoas?.(m.vdev);
    expect(drv.stateOf(m).pins).toEqual([]);
    expect(errno(drv.pin(m, u.iova, 1))).toBe('ENOENT');
    value(attach(m.vdev, u.ioasId));
    value(drv.pin(m, u.iova, 1));
  });
});
