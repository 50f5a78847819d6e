import type { Algorithm } from '../groups/types.ts';
import type { HostSpec } from '../spec.ts';

/** A what-if string the parser rejects, or a change that cannot be applied to the host at hand. */
export class WhatIfError extends Error {}

/** How an `acs:` change edits one function's ACS Control: named bits, or every bit it implements. */
export type AcsEdit =
  | { readonly mode: 'bits'; readonly set: number; readonly clear: number }
  | { readonly mode: 'on' }
  | { readonly mode: 'off' };

/** One hypothetical change to a host, its kernel command line or the grouping algorithm. */
export type WhatIfChange =
  /** Set or clear ACS Control bits of the function at `device` (a short or full BDF). */
  | { readonly kind: 'acs'; readonly device: string; readonly edit: AcsEdit }
  /** The firmware "ACS enable" setting: every ACS Control cleared, or set to the SV RR CR UF it implements. */
  | { readonly kind: 'bios-acs'; readonly enabled: boolean }
  /** Kernel options appended to the command line. */
  | { readonly kind: 'cmdline'; readonly options: string }
  /** The card in `device`'s slot (and its subtree) re-seated on `bridge`'s empty secondary bus. */
  | { readonly kind: 'move'; readonly device: string; readonly bridge: string }
  | { readonly kind: 'algorithm'; readonly algorithm: Algorithm }
  | { readonly kind: 'iommu'; readonly enabled: boolean };

/** What a what-if starts from: a host, the command line it boots with, and the grouping algorithm. */
export interface WhatIfBase {
  readonly spec: HostSpec;
  readonly cmdline: string;
  readonly algorithm: Algorithm;
}

export interface WhatIfResult extends WhatIfBase {
  /** One line per change: what was done, and what it means for how Linux will see the host. */
  readonly applied: readonly string[];
  /** Old short BDF -> new short BDF for every function a `move:` relocated (chained moves composed). */
  readonly renamed: ReadonlyMap<string, string>;
}
