import type { PcieTypeKey } from '../spec.ts';
import type { DeviceHeader } from './header.ts';

// What one device record of a dump says, before it becomes a FunctionSpec: fields still undecided
// (an ACS capability whose registers were not printed, ...) are undefined here.

export interface RawBar {
  readonly line: number;
  readonly index: number;
  readonly type: 'mem32' | 'mem64' | 'io';
  readonly prefetchable: boolean;
  readonly base: number;
  readonly size: number;
}

export interface RawExpress {
  readonly offset: number;
  readonly type: PcieTypeKey;
  readonly version: number;
  readonly slot: boolean;
  /** DevCtl2 ARIFwd+: Linux enabled ARI forwarding on this port (pci_enable_ari). */
  ariForwarding: boolean;
}

export interface RawAcs {
  readonly offset: number;
  readonly line: number;
  cap: number | undefined;
  ctl: number | undefined;
}

export interface RawSriov {
  readonly offset: number;
  readonly line: number;
  /** IOVCtl VF Enable; undefined when the line was not printed. */
  enabled: boolean | undefined;
  totalVfs: number | undefined;
  numVfs: number | undefined;
  vfOffset: number | undefined;
  vfStride: number | undefined;
  vfDevice: number | undefined;
}

export interface RawFunction {
  /** Line of the device header. */
  readonly line: number;
  readonly header: DeviceHeader;
  /** "bb:dd.f", or "dddd:bb:dd.f" off domain 0. */
  readonly address: string;
  /** Detail lines under the header. */
  bodyLines: number;
  subsystem?: string;
  driver?: string;
  group?: number;
  bus?: { primary: number; secondary: number; subordinate: number };
  express?: RawExpress;
  acs?: RawAcs;
  ari?: { offset: number; nextFunction: number };
  ats?: { offset: number; queueDepth: number };
  pri?: { offset: number; enabled: boolean; outstanding: number | undefined };
  pasid?: { offset: number; width: number | undefined; exec: boolean; privileged: boolean; enabled: boolean };
  sriov?: RawSriov;
  readonly bars: RawBar[];
}
