import { PageResponseCode } from '../iommu/types.ts';
import { faultReasonName } from './types.ts';

// A DMA engine's log: a ring of its newest `size` lines. The two lines every device fault writes (a page
// request group sent, a group answered) are stored as numbers in typed arrays and formatted when the log is
// read; rarer lines are stored as text. Keeping a string or a closure per fault alive for hundreds of
// faults cost more in garbage collection than the fault path itself.

const TEXT = 0;
const REQUEST = 1;
const ANSWER = 2;
/** Numbers per entry. */
const W = 6;

const hex = (n: number): string => `0x${n.toString(16)}`;

/** Page response codes as the log names them (anything but SUCCESS and INVALID acts as FAILURE). */
function codeName(code: number): string {
  return code === PageResponseCode.Success ? 'SUCCESS' : code === PageResponseCode.Invalid ? 'INVALID' : 'FAILURE';
}

export class EngineLog {
  private readonly kind: Uint8Array;
  private readonly nums: Float64Array;
  private readonly texts: Array<string | null>;
  /** Index of the oldest entry, and how many are held. */
  private first = 0;
  private count = 0;

  constructor(private readonly bdf: string, readonly size: number) {
    const n = Math.max(1, size);
    this.kind = new Uint8Array(n);
    this.nums = new Float64Array(n * W);
    this.texts = new Array<string | null>(n).fill(null);
  }

  /** A line as it is. */
  text(line: string): void {
    const i = this.slot();
    this.kind[i] = TEXT;
    this.texts[i] = line;
  }

  /** "bdf: page request group P [PASID x]: n page(s) from 0x… (REASON, write|read)". */
  request(prgi: number, pasid: number, pages: number, first: number, reason: number, write: boolean): void {
    const i = this.slot();
    this.kind[i] = REQUEST;
    this.texts[i] = null;
    const o = i * W;
    this.nums[o] = prgi;
    this.nums[o + 1] = pasid;
    this.nums[o + 2] = pages;
    this.nums[o + 3] = first;
    this.nums[o + 4] = reason;
    this.nums[o + 5] = write ? 1 : 0;
  }

  /** "bdf: page request group P answered CODE [with private data 0x… 0x…]" (privateData null: none). */
  answer(prgi: number, code: number, privateData: readonly [number, number] | null): void {
    const i = this.slot();
    this.kind[i] = ANSWER;
    this.texts[i] = null;
    const o = i * W;
    this.nums[o] = prgi;
    this.nums[o + 1] = code;
    this.nums[o + 2] = privateData === null ? 0 : 1;
    this.nums[o + 3] = privateData === null ? 0 : privateData[0];
    this.nums[o + 4] = privateData === null ? 0 : privateData[1];
  }

  /** The lines, oldest first. */
  lines(): string[] {
    const out: string[] = [];
    if (this.size <= 0) return out;
    for (let k = 0; k < this.count; k++) out.push(this.format((this.first + k) % this.kind.length));
    return out;
  }

  // Wrapped by a comparison, not `%`: an integer division, twice per device fault.
  private slot(): number {
    const cap = this.kind.length;
    if (this.count < cap) {
      const i = this.first + this.count++;
      return i >= cap ? i - cap : i;
    }
    const i = this.first;
    this.first = i + 1 === cap ? 0 : i + 1;
    return i;
  }

  private format(i: number): string {
    const o = i * W;
    const n = this.nums;
    switch (this.kind[i]) {
      case REQUEST: {
        const pasid = n[o + 1] as number;
        return `${this.bdf}: page request group ${n[o] as number}${pasid < 0 ? '' : ` PASID ${pasid}`}: ${n[o + 2] as number} page(s) from ${hex(n[o + 3] as number)} (${faultReasonName(n[o + 4] as number)}, ${n[o + 5] === 1 ? 'write' : 'read'})`;
      }
      case ANSWER:
        return `${this.bdf}: page request group ${n[o] as number} answered ${codeName(n[o + 1] as number)}${n[o + 2] === 1 ? ` with private data ${hex(n[o + 3] as number)} ${hex(n[o + 4] as number)}` : ''}`;
      default:
        return this.texts[i] ?? '';
    }
  }
}
