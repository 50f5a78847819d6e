import { NO_PASID } from '../iommu/types.ts';
import type { DmaTransfer } from './transfer.ts';

// A DMA engine's bookkeeping of its transfers and page request groups, shaped so that a device fault
// allocates nothing here: the unsettled transfers are a list through the jobs themselves, a group is one
// object per index reused with its page array, and answered pages are a number until there are two.

/** A transfer the engine carries out. */
export interface Job {
  readonly result: DmaTransfer;
  readonly write: boolean;
  readonly priv: boolean;
  readonly exec: boolean;
  readonly buf: Uint8Array;
  readonly privateData: readonly [number, number] | null;
  /**
   * Pages (4 KiB-aligned IOVAs) whose page request was answered SUCCESS: the first one (-1: none yet),
   * and the others in a set made when a second one is answered (most transfers fault on one page).
   */
  answeredPage: number;
  answered: Set<number> | null;
  stalled: boolean;
  /** Links of PendingJobs (on it when prev is non-null or it is the head). */
  prev: Job | null;
  next: Job | null;
}

export function isAnswered(job: Job, page: number): boolean {
  return job.answeredPage === page || (job.answered !== null && job.answered.has(page));
}

/** Note that `page` was answered SUCCESS. */
export function noteAnswered(job: Job, page: number): void {
  if (job.answeredPage < 0) job.answeredPage = page;
  else if (page !== job.answeredPage) (job.answered ??= new Set()).add(page);
}

/** Unsettled transfers in the order they first became pending, as a Set keeps them (a Set cost an allocation per fault). */
export class PendingJobs {
  private head: Job | null = null;
  private tail: Job | null = null;

  /** Add `job` at the end unless it is listed already. */
  add(job: Job): void {
    if (job.prev !== null || this.head === job) return;
    job.prev = this.tail;
    job.next = null;
    if (this.tail === null) this.head = job; else this.tail.next = job;
    this.tail = job;
  }

  delete(job: Job): void {
    if (job.prev === null && this.head !== job) return;
    if (job.prev === null) this.head = job.next; else job.prev.next = job.next;
    if (job.next === null) this.tail = job.prev; else job.next.prev = job.prev;
    job.prev = null;
    job.next = null;
  }

  toArray(): Job[] {
    const out: Job[] = [];
    for (let j = this.head; j !== null; j = j.next) out.push(j);
    return out;
  }
}

/**
 * An outstanding page request group (job non-null), or a free index (job null). One object per index,
 * reused with its page array when the index is: a group per fault was most of the engine's garbage.
 */
export class Group {
  job: Job | null = null;
  pasid = NO_PASID;
  /** pages[0 .. count): the group's page addresses (the array is never shortened: that would drop its storage). */
  readonly pages: number[] = [];
  count = 0;
  constructor(readonly prgi: number) {}
}
