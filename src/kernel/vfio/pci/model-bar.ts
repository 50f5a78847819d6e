// A BAR region served by a device model: pread/pwrite of the region become MMIO loads and stores on the
// machine's bus, cut as a CPU would issue them (aligned dwords, bytes at ragged edges; a 64-byte aligned
// 64-byte write as one block store, which is how MOVDIR64B/ENQCMD reach a work-queue portal).

import type { MmioBus } from '../../../hw/devices/mmio.ts';
import type { PciDev } from '../../../pci/dev.ts';
import type { BarHandler } from './regions.ts';

export class ModelBarHandler implements BarHandler {
  constructor(private readonly bus: MmioBus, private readonly dev: PciDev, private readonly bar: number) {}

  read(offset: number, dest: Uint8Array): void {
    let at = 0;
    while (at < dest.length) {
      const off = offset + at;
      if (off % 4 === 0 && dest.length - at >= 4) {
        const v = this.bus.read(this.dev, this.bar, off, 4);
        dest[at] = v & 0xff; dest[at + 1] = (v >>> 8) & 0xff; dest[at + 2] = (v >>> 16) & 0xff; dest[at + 3] = (v >>> 24) & 0xff;
        at += 4;
      } else {
        dest[at] = this.bus.read(this.dev, this.bar, off, 1) & 0xff;
        at += 1;
      }
    }
  }

  write(offset: number, src: Uint8Array): void {
    if (src.length === 64 && offset % 64 === 0 && this.bus.writeBlock(this.dev, this.bar, offset, src)) return;
    let at = 0;
    while (at < src.length) {
      const off = offset + at;
      if (off % 4 === 0 && src.length - at >= 4) {
        const v = ((src[at] as number) | ((src[at + 1] as number) << 8) | ((src[at + 2] as number) << 16) | ((src[at + 3] as number) << 24)) >>> 0;
        this.bus.write(this.dev, this.bar, off, 4, v);
        at += 4;
      } else {
        this.bus.write(this.dev, this.bar, off, 1, src[at] as number);
        at += 1;
      }
    }
  }

  /** Function-level reset: the model's registers go back to their power-on values. */
  reset(): void { this.bus.modelFor(this.dev, this.bar)?.reset(); }
}
