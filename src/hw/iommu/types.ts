// The contract between the IOMMU unit, the PCIe fabric that feeds it requests, and the devices it answers.
// docs/hw-iommu.md is the programming model these types implement.

export interface IommuCaps {
  /** IOVA bits: 48 (4-level tables) or 57 (5-level). */
  readonly inputAddressWidth: 48 | 57;
  /** Bits of physical address a PTE may hold; higher bits are reserved. */
  readonly physAddressWidth: number;
  readonly fiveLevel: boolean;
  readonly pageSize2M: boolean;
  readonly pageSize1G: boolean;
  /** PASID bits, 0 to 20 (0: no PASID support). */
  readonly pasidWidth: number;
  readonly pri: boolean;
  readonly nesting: boolean;
  readonly dirtyTracking: boolean;
  readonly coherent: boolean;
  readonly firstStage: boolean;
  readonly secondStage: boolean;
  readonly passThrough: boolean;
  /**
   * Snoop control (VT-d ECAP.SC): the unit can force snooping on a domain's DMA, so no-snoop requests
   * cannot bypass the CPU caches (Linux's IOMMU_CAP_ENFORCE_CACHE_COHERENCY). Recorded, not enforced on DMA.
   */
  readonly snoopControl: boolean;
  /** Device-TLB support (VT-d ECAP.DT): the unit answers ATS translation requests (IOMMU_CAP_PCI_ATS_SUPPORTED). */
  readonly deviceTlb: boolean;
}

export const DEFAULT_IOMMU_CAPS: IommuCaps = {
  inputAddressWidth: 57, physAddressWidth: 46, fiveLevel: true, pageSize2M: true, pageSize1G: true,
  pasidWidth: 20, pri: true, nesting: true, dirtyTracking: true, coherent: true,
  firstStage: true, secondStage: true, passThrough: true, snoopControl: true, deviceTlb: true,
};

/** Why a request could not be translated (the REASON field of a fault record). */
export const FaultReason = {
  None: 0,
  RootNotPresent: 1,
  ContextNotPresent: 2,
  ContextInvalid: 3,
  Blocked: 4,
  PasidDisallowed: 5,
  PasidOutOfRange: 6,
  PasidDirNotPresent: 7,
  PasidNotPresent: 8,
  PasidEntryInvalid: 9,
  AddressBeyondWidth: 10,
  PteNotPresent: 11,
  PteReserved: 12,
  WriteDenied: 13,
  ReadDenied: 14,
  ExecDenied: 15,
  PrivDenied: 16,
  TableReadError: 17,
  TableWriteError: 18,
} as const;
export type FaultReason = (typeof FaultReason)[keyof typeof FaultReason];

/** No PASID on the request. */
export const NO_PASID = -1;

/** One upstream memory request as it reaches the IOMMU, after the fabric fixed its requester ID. */
export interface TranslationRequest {
  /** Requester ID as the IOMMU sees it: bus << 8 | devfn (after any bridge rewrote it). */
  rid: number;
  /** PASID, or NO_PASID. */
  pasid: number;
  iova: number;
  write: boolean;
  exec: boolean;
  priv: boolean;
  /** An ATS translation request from a device that will ask for missing pages: no fault record. */
  ats: boolean;
}

/** What a page walk produced: a translation, or the fault and the stage that raised it. */
export interface WalkOut {
  /** Physical address of `iova` (valid on success). */
  pa: number;
  /** Bytes covered by the translation that produced `pa` (4 KiB, 2 MiB, 1 GiB; the whole space when untranslated). */
  pageSize: number;
  /** Permissions of that translation: 1 read, 2 write, 4 execute. */
  perms: number;
  reason: FaultReason;
  /** 0 none, 1 first stage, 2 second stage. */
  stage: 0 | 1 | 2;
  /** Guest physical address being translated when a nested second-stage fault happened. */
  faultGpa: number;
}

/** Filled in by translate(); preallocate one and reuse it on hot paths. */
export interface TranslationResult extends WalkOut {
  ok: boolean;
  /** The request went through untranslated (TE off, pass-through context or PASID entry). */
  untranslated: boolean;
  /** Whether the fault (if any) was written to the fault queue. */
  recorded: boolean;
}

export function newTranslationResult(): TranslationResult {
  return { ok: false, pa: 0, pageSize: 0, perms: 0, reason: FaultReason.None, stage: 0, faultGpa: 0, untranslated: false, recorded: false };
}

export const PageResponseCode = { Success: 0, Invalid: 1, Failure: 15 } as const;
export type PageResponseCode = (typeof PageResponseCode)[keyof typeof PageResponseCode];

/** A PCIe Page Request message from a PRI-capable function. */
export interface PageRequestMessage {
  readonly rid: number;
  readonly pasid: number;
  /** 4 KiB-aligned page address. */
  readonly address: number;
  readonly read: boolean;
  readonly write: boolean;
  readonly exec: boolean;
  readonly priv: boolean;
  /** Last page in group: the device waits for the group's response after this one. */
  readonly lastInGroup: boolean;
  /** Page request group index, 9 bits. */
  readonly prgi: number;
  /** Private data (lo, hi), or null when the request carries none. */
  readonly privateData: readonly [number, number] | null;
}

/** A PRG Response message from the IOMMU to a function. */
export interface PageResponseMessage {
  readonly rid: number;
  readonly pasid: number;
  readonly prgi: number;
  readonly code: PageResponseCode;
  readonly privateData: readonly [number, number] | null;
}

/** How the unit reaches devices: page responses go out through it (the fabric routes them by RID). */
export type DeviceMessageSink = (msg: PageResponseMessage) => void;
