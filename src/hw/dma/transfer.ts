import type { Route } from '../fabric/fabric.ts';
import { PAGE_SIZE } from '../memory/physical-memory.ts';
import { faultReasonName, type DmaFault, type DmaOp, type DmaResult, type DmaStatus, type MsiMessage } from './types.ts';

/**
 * How `why` is made when first read: the text as is, a function, or one of the engine's frequent lines
 * (waiting for a page request group; done through the IOMMU; done untranslated).
 */
const WHY_TEXT = 0;
const WHY_FN = 1;
const WHY_WAITING = 2;
const WHY_DONE = 3;
const WHY_DONE_UNTRANSLATED = 4;

/** Flags of a noted fault: the DmaFault is still to be made; its `write` and `recorded`. */
const F_NOTED = 1;
const F_WRITE = 2;
const F_RECORDED = 4;

const hex = (n: number): string => `0x${n.toString(16)}`;

/**
 * The DmaResult a transfer updates in place as it runs. Its one-line `why` may be given as a function
 * that is called when the line is first read: every page request and completion would otherwise format
 * addresses and counts that hardly anyone reads, on the path every device fault takes. The two lines of
 * that path (waiting for a page request group, done) and the fault that sent the page request are kept
 * as a few numbers and made when first read: a device fault then allocates no closure and no DmaFault.
 * (Few fields: each one costs every transfer.)
 */
export class DmaTransfer implements DmaResult {
  status: DmaStatus = 'pending';
  bytesDone = 0;
  data: Uint8Array | null = null;
  msi: MsiMessage | null = null;
  pageRequests = 0;
  retries = 0;
  settled = false;
  /** The text (WHY_TEXT) or the function making it (WHY_FN). */
  private whyVal: string | (() => string) = '';
  private whyKind = WHY_TEXT;
  /** WHY_WAITING: the group's index and page count (its first page and reason are the noted fault's). */
  private wPrgi = 0;
  private wPages = 0;
  private faultObj: DmaFault | null = null;
  /** The noted fault: its IOVA as an offset from `address` (a small integer, where an IOVA may be a boxed double), reason, GPA, F_* flags. */
  private fOffset = 0;
  private fReason = 0;
  private fStage: 0 | 1 | 2 = 0;
  private fGpa = 0;
  private fFlags = 0;

  constructor(
    readonly id: number,
    readonly device: string,
    readonly op: DmaOp,
    readonly address: number,
    readonly length: number,
    readonly pasid: number,
    readonly route: Route,
  ) {}

  get why(): string {
    const v = this.whyVal;
    switch (this.whyKind) {
      case WHY_TEXT: return v as string;
      case WHY_FN: this.whyVal = (v as () => string)(); break;
      case WHY_WAITING: {
        const n = this.wPages;
        const iova = this.address + this.fOffset;
        this.whyVal = `waiting for the response to page request group ${this.wPrgi} (${n} page${n === 1 ? '' : 's'} from ${hex(iova - (iova % PAGE_SIZE))}, ${faultReasonName(this.fReason)})`;
        break;
      }
      default:
        this.whyVal = `${this.length} bytes ${this.op === 'write' ? 'written' : 'read'} ${this.whyKind === WHY_DONE ? 'through the IOMMU' : 'untranslated: no IOMMU translates for this function'}`;
    }
    this.whyKind = WHY_TEXT;
    return this.whyVal;
  }

  set why(text: string) {
    this.whyVal = text;
    this.whyKind = WHY_TEXT;
  }

  /** Set `why` to what `line` returns, called when `why` is first read (it must capture its inputs now). */
  explain(line: () => string): void {
    this.whyVal = line;
    this.whyKind = WHY_FN;
  }

  /**
   * `why`: waiting for page request group `prgi` of `pages` pages, from the page of the fault noted last
   * (noteFault, called for every page request group just before this).
   */
  explainWaiting(prgi: number, pages: number): void {
    this.wPrgi = prgi;
    this.wPages = pages;
    this.whyKind = WHY_WAITING;
  }

  /** `why`: the transfer completed, through the IOMMU or untranslated. */
  explainDone(translated: boolean): void {
    this.whyKind = translated ? WHY_DONE : WHY_DONE_UNTRANSLATED;
  }

  get fault(): DmaFault | null {
    const flags = this.fFlags;
    if ((flags & F_NOTED) !== 0) {
      this.fFlags = flags & ~F_NOTED;
      const reason = this.fReason;
      this.faultObj = {
        iova: this.address + this.fOffset, reason: reason as DmaFault['reason'], reasonName: faultReasonName(reason), stage: this.fStage,
        faultGpa: this.fGpa, write: (flags & F_WRITE) !== 0, recorded: (flags & F_RECORDED) !== 0, response: null,
      };
    }
    return this.faultObj;
  }

  set fault(f: DmaFault | null) {
    this.faultObj = f;
    this.fFlags &= ~F_NOTED;
  }

  /** Set `fault` to this translation fault at `address + offset` (response null), made into a DmaFault when first read. */
  noteFault(offset: number, reason: number, stage: 0 | 1 | 2, faultGpa: number, write: boolean, recorded: boolean): void {
    this.fOffset = offset;
    this.fReason = reason;
    this.fStage = stage;
    this.fGpa = faultGpa;
    this.fFlags = F_NOTED | (write ? F_WRITE : 0) | (recorded ? F_RECORDED : 0);
  }

  /** The reason of the fault noted last. */
  faultReason(): number { return this.fReason; }
}
