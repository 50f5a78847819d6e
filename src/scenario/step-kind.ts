// One kind of scenario step: its name (the `do:` value), the schema of its fields, and how it runs.
// Step kinds live one concern a file under steps/ and are listed in steps/index.ts; the schema of a
// scenario file is assembled from them, so a new kind needs no change anywhere else.

import { z } from 'zod';
import type { ErrnoName } from '../kernel/errno.ts';
import type { RunState } from './run-state.ts';

/** What a step may state about its outcome. */
const singleExpect = z.union([
  z.literal('ok'),
  z.string().regex(/^E[A-Z0-9]+$/, 'an errno name such as EBUSY'),
  z.object({
    errno: z.string().regex(/^E[A-Z0-9]+$/).optional(),
    /** Bytes read back (a string is its UTF-8 bytes; a list is bytes). */
    data: z.union([z.string(), z.array(z.number().int().min(0).max(255))]).optional(),
    /** A DMA's outcome: ok, fault (IOMMU fault), blocked (no translation allowed), page-request. */
    status: z.string().optional(),
    /** A number the step produced (e.g. the IOVA chosen, a count). */
    value: z.union([z.number(), z.string()]).optional(),
  }).strict(),
]);

/** An expectation, or one per design variant of the scenario (`by: { variant: expectation }`). */
export const expectSchema = z.union([singleExpect, z.object({ by: z.record(z.string(), singleExpect) }).strict()]);
export type SingleExpect = z.infer<typeof singleExpect>;
export type Expect = z.infer<typeof expectSchema>;

/** Fields every step may carry besides its own. */
export const commonFields = {
  /** A sentence for the narrative: why this step is here. */
  note: z.string().optional(),
  expect: expectSchema.optional(),
};

/** What running a step produced. */
export interface StepOutcome {
  readonly ok: boolean;
  readonly errno?: ErrnoName;
  /** One line: what happened ("IOAS 2 maps 2 MiB at 0x100000"), or why it failed. */
  readonly summary: string;
  /** Further lines for the narrative (a tree, records read). */
  readonly details?: readonly string[];
  /** Bytes the step read (compared with expect.data). */
  readonly data?: Uint8Array;
  /** A DMA status (compared with expect.status). */
  readonly status?: string;
  /** A number the step produced (compared with expect.value). */
  readonly value?: bigint;
  /** Invariant breaches the step itself observed (DMA confinement), added to the run's checks. */
  readonly breaches?: readonly string[];
}

export interface StepKind<S extends z.ZodRawShape = z.ZodRawShape> {
  readonly name: string;
  /** One line for `--help`-style listings and the JSON Schema description. */
  readonly summary: string;
  readonly fields: S;
  run(state: RunState, step: z.infer<z.ZodObject<S>>): StepOutcome;
}

/** A step kind with its field types checked. */
export function stepKind<S extends z.ZodRawShape>(k: StepKind<S>): StepKind<S> { return k; }
