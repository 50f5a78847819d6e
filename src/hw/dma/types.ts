import type { Route } from '../fabric/fabric.ts';
import {
  FaultReason, type PageRequestMessage, type PageResponseCode, type TranslationRequest, type TranslationResult,
} from '../iommu/types.ts';

/**
 * What a DMA engine needs of the IOMMU unit its requests reach (IommuUnit implements it; tests may fake
 * it). processCommands is optional: the machine calls it when present.
 */
export interface IommuPort {
  translate(req: TranslationRequest, out: TranslationResult): boolean;
  pageRequest(msg: PageRequestMessage): void;
  /**
   * True when pageRequest() keeps no reference to its message (it copies what it needs): the engine then
   * hands it the same object, rewritten, for every message rather than a new one per page request.
   */
  readonly borrowsPageRequests?: boolean;
  processCommands?(): void;
}

export type DmaOp = 'read' | 'write';

/** One transfer a function's DMA engine performs. */
export interface DmaRequest {
  readonly op: DmaOp;
  /** Bus address the device emits (an IOVA, when the IOMMU translates for it). */
  readonly address: number;
  readonly length: number;
  /** PASID to tag the request with (needs the PASID capability enabled); absent: no PASID. */
  readonly pasid?: number;
  /** write: the bytes to write (at least `length`); read: an optional buffer to fill (at least `length`). */
  readonly data?: Uint8Array;
  /** Privileged-mode request (PASID-tagged only; needs Privileged Mode Enable). */
  readonly priv?: boolean;
  /** Execute request (PASID-tagged only; needs Execute Permission Enable). */
  readonly exec?: boolean;
  /** Private data carried by this transfer's page requests and echoed in the response. */
  readonly privateData?: readonly [number, number];
}

/**
 * ok: done through the IOMMU (or untranslated where nothing translates); fault: the IOMMU refused a page;
 * p2p: delivered to a peer's BAR, untranslated; msi: an interrupt message; blocked: ACS blocked it, or
 * nothing claimed it below a bridge; pending: waiting for a page response (or for page-request credits);
 * aborted: the device gave up (INVALID/FAILURE response, PRI reset, malformed request); ur: Unsupported
 * Request at the root complex (a translated address outside memory, a read of the MSI window).
 */
export type DmaStatus = 'ok' | 'fault' | 'p2p' | 'msi' | 'blocked' | 'pending' | 'aborted' | 'ur';

export interface DmaFault {
  /** The address (IOVA) that could not be translated. */
  readonly iova: number;
  readonly reason: FaultReason;
  /** "PTE_NOT_PRESENT" */
  readonly reasonName: string;
  readonly stage: 0 | 1 | 2;
  readonly faultGpa: number;
  readonly write: boolean;
  /** The IOMMU wrote a record to its fault queue. */
  readonly recorded: boolean;
  /** The page-response code that ended the transfer, when a page request was answered. */
  readonly response: PageResponseCode | null;
}

/** An interrupt message: a dword write to the x86 interrupt window (compatibility format decoded). */
export interface MsiMessage {
  /** Sequence number over the machine's life (the log keeps the last ones only). */
  readonly seq: number;
  /** The function that wrote it. */
  readonly device: string;
  readonly rid: number;
  readonly domain: number;
  readonly address: number;
  readonly data: number;
  /** Destination APIC ID (address bits 19:12) and vector (data bits 7:0), compatibility format. */
  readonly destination: number;
  readonly vector: number;
}

/** The outcome of a transfer. A pending one is updated in place when it completes (`settled`). */
export interface DmaResult {
  readonly id: number;
  /** Short BDF of the function that issued it. */
  readonly device: string;
  readonly op: DmaOp;
  readonly address: number;
  readonly length: number;
  /** The PASID, or NO_PASID (-1). */
  readonly pasid: number;
  readonly status: DmaStatus;
  /** Bytes transferred (a prefix of the transfer). */
  readonly bytesDone: number;
  readonly route: Route;
  /** One line on the outcome. */
  readonly why: string;
  /** Reads: the buffer read into (its first bytesDone bytes are valid); writes: null. */
  readonly data: Uint8Array | null;
  readonly fault: DmaFault | null;
  readonly msi: MsiMessage | null;
  /** Page request messages sent for this transfer. */
  readonly pageRequests: number;
  /** Times it resumed after a SUCCESS page response. */
  readonly retries: number;
  /** False while pending. */
  readonly settled: boolean;
}

export type MutableDmaResult = { -readonly [K in keyof DmaResult]: DmaResult[K] };

const REASON_NAMES = new Map<number, string>(
  Object.entries(FaultReason).map(([name, value]) => [value, name.replace(/([a-z])([A-Z])/g, '$1_$2').toUpperCase()]),
);

/** "PTE_NOT_PRESENT" for FaultReason.PteNotPresent. */
export function faultReasonName(reason: number): string {
  return REASON_NAMES.get(reason) ?? `REASON_${reason}`;
}

/** Half-open [base, base + size). */
export interface AddressRange {
  readonly base: number;
  readonly size: number;
}

export function inRange(r: AddressRange, address: number): boolean {
  return address >= r.base && address < r.base + r.size;
}
