import type { Route } from '../fabric/fabric.ts';
import type { DmaFault, DmaOp, DmaResult, DmaStatus, MsiMessage } from './types.ts';

/**
 * The DmaResult a transfer updates in place as it runs. Its one-line `why` may be given as a function
 * that is called when the line is first read: every page request and completion would otherwise format
 * addresses and counts that hardly anyone reads, on the path every device fault takes.
 */
export class DmaTransfer implements DmaResult {
  status: DmaStatus = 'pending';
  bytesDone = 0;
  data: Uint8Array | null = null;
  fault: DmaFault | null = null;
  msi: MsiMessage | null = null;
  pageRequests = 0;
  retries = 0;
  settled = false;
  private whyText = '';
  private whyFn: (() => string) | null = null;

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
    if (this.whyFn !== null) {
      this.whyText = this.whyFn();
      this.whyFn = null;
    }
    return this.whyText;
  }

  set why(text: string) {
    this.whyText = text;
    this.whyFn = null;
  }

  /** Set `why` to what `line` returns, called when `why` is first read (it must capture its inputs now). */
  explain(line: () => string): void {
    this.whyFn = line;
  }
}
