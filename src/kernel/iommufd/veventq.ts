// The VEVENTQ object (drivers/iommu/iommufd/eventq.c, driver.c iommufd_viommu_report_event): where a
// vIOMMU's events of one type wait for user space. uAPI reference §11.3:
//
//  * Each event is a record: struct iommufd_vevent_header {u32 flags, u32 sequence} then the driver's
//    data. `sequence` counts every record queued and wraps from INT_MAX to 0, so user space sees a gap
//    when something was lost.
//  * At most `depth` events wait: a report while `depth` are pending queues the one LOST_EVENTS header
//    (no data) instead. That header is always last: queueing anything after it (another lost report, or
//    an event once the reader made room) takes it off the tail first, so it only stays where the loss
//    was the last thing to happen. Reading it does not count as reading an event.
//  * `users`: the table's reference and the fd's; the queue holds the vIOMMU's.
//
// The read side (whole records, ESPIPE for an offset) is the fd (veventq-fd.ts).

import type { IommufdCtx } from './context.ts';
import type { IommufdObject } from './object.ts';
import type { VeventqEntry, Viommu } from './viommu.ts';

/** sizeof(struct iommufd_vevent_header). */
export const VEVENT_HEADER_SIZE = 8;
/** IOMMU_VEVENTQ_FLAG_LOST_EVENTS (kernel copy; tests check it against the uapi constant). */
export const IOMMU_VEVENTQ_FLAG_LOST_EVENTS = 1 << 0;
const INT_MAX = 0x7fff_ffff;

/** A queued record: an event with data, or the LOST_EVENTS header (data null). */
export interface Vevent {
  readonly data: Uint8Array | null;
  sequence: number;
}

export class Veventq implements IommufdObject, VeventqEntry {
  readonly type = 'veventq' as const;
  id = 0;
  users = 0;
  /** Events queued and not read (the LOST_EVENTS header does not count). */
  numEvents = 0;
  private readonly deliver: Vevent[] = [];
  /** The one LOST_EVENTS header (veventq->lost_events_header). */
  private readonly lost: Vevent = { data: null, sequence: 0 };
  private sequence = 0;
  private destroyed = false;

  constructor(readonly ctx: IommufdCtx, readonly viommu: Viommu, readonly veventqType: number, readonly depth: number) {
    ctx.objects.ref(viommu);
    viommu.veventqs.set(veventqType, this);
  }

  /** Records waiting to be read (the LOST_EVENTS header included). */
  get queued(): number { return this.deliver.length; }

  /** iommufd_viommu_report_event() for this queue: the event, or LOST_EVENTS when `depth` are pending. */
  report(data: Uint8Array): void {
    if (this.destroyed) return;
    if (this.numEvents === this.depth) {
      this.enqueue(this.lost);
      return;
    }
    this.numEvents++;
    this.enqueue({ data: data.slice(), sequence: 0 });
  }

  // iommufd_vevent_handler(): the LOST_EVENTS header leaves the tail, the record goes there with the next sequence.
  private enqueue(v: Vevent): void {
    if (this.deliver[this.deliver.length - 1] === this.lost) this.deliver.pop();
    this.deliver.push(v);
    v.sequence = this.sequence;
    this.sequence = (this.sequence + 1) & INT_MAX;
  }

  /** The oldest record (taken off the queue), or undefined. */
  fetch(): Vevent | undefined {
    const v = this.deliver.shift();
    // The reader gets a copy of the LOST_EVENTS header, so a later loss can queue the header again.
    return v === this.lost ? { data: null, sequence: v.sequence } : v;
  }

  /** Put a fetched record back first in line (it did not fit, or the copy faulted). */
  restore(v: Vevent): void {
    this.deliver.unshift(v.data === null ? this.lost : v);
  }

  /** A fetched record was copied to user space. */
  consumed(v: Vevent): void {
    if (v.data !== null) this.numEvents--;
  }

  static headerOf(v: Vevent): Uint8Array {
    const b = new Uint8Array(VEVENT_HEADER_SIZE);
    const dv = new DataView(b.buffer);
    dv.setUint32(0, v.data === null ? IOMMU_VEVENTQ_FLAG_LOST_EVENTS : 0, true);
    dv.setUint32(4, v.sequence, true);
    return b;
  }

  fdGet(): void { this.ctx.objects.ref(this); }
  fdPut(): void { this.ctx.objects.unref(this); }

  /** iommufd_veventq_destroy()/abort(): events dropped, out of the vIOMMU's list, its reference dropped. */
  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    this.deliver.length = 0;
    this.numEvents = 0;
    if (this.viommu.veventqs.get(this.veventqType) === this) this.viommu.veventqs.delete(this.veventqType);
    this.ctx.objects.unref(this.viommu);
  }
}
