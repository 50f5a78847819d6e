// The scenario file format (YAML or JSON), as a zod schema assembled from the step kinds. The same
// schema is published as JSON Schema (scenarios/scenario.schema.json) for editors.

import { z } from 'zod';
import { CAPABILITIES } from '../kernel/process/cred.ts';
import { STEP_KINDS } from './steps/index.ts';
import { numberLike } from './values.ts';

const regionSchema = z.object({
  size: numberLike,
  /** Touch every page now (MAP_POPULATE), as a VMM preallocating guest RAM does. */
  populate: z.boolean().default(false),
}).strict();

const processSchema = z.object({
  uid: z.number().int().min(0).default(0),
  /** Effective capabilities; default: all for uid 0, none otherwise. */
  caps: z.array(z.enum(CAPABILITIES)).optional(),
  /** RLIMIT_MEMLOCK (bytes, "64M"); default: the kernel's 8 MiB. */
  memlock: numberLike.optional(),
  comm: z.string().optional(),
  /** Named anonymous memory regions (guest RAM, buffers); steps use the names as addresses. */
  memory: z.record(z.string().regex(/^[A-Za-z_][\w-]*$/), regionSchema).default({}),
}).strict();

/** Design variants the seeds debate, and Linux's module parameters. */
const optionsSchema = z.object({
  /**
   * Seed 001: the VFIO group of an IOMMU-backed mdev. separate-virtual-group is the 2019 sample (its own
   * fake group: two owners can split an IOMMU group); inherit-parent-group (EPERM at bind) and
   * attach-time-ebusy (EBUSY at attach) are the fixes discussed.
   */
  mdevGroupPolicy: z.enum(['separate-virtual-group', 'inherit-parent-group', 'attach-time-ebusy']).default('inherit-parent-group'),
  /**
   * What an isolation breach after a step does: fail the run (enforce), or only show it (report), for
   * scenarios that demonstrate a hole and assert it with an isolation-check step.
   */
  isolation: z.enum(['enforce', 'report']).default('enforce'),
  /**
   * How the assign step reaches a device: cdev (the device-centric API Linux ships, the default) or group
   * (the legacy group-centric API, here on an iommufd as its container): seed 002's debate.
   */
  vfioApi: z.enum(['cdev', 'group']).default('cdev'),
  /**
   * PASIDs for user attaches: per-device (Linux: the VMM names any PASID) or global (the 2021 /dev/ioasid
   * proposal: a system-wide allocator; attach with a PASID the iommufd did not allocate is EPERM).
   */
  pasidAllocation: z.enum(['per-device', 'global']).default('per-device'),
  /** vfio_iommu_type1.dma_entry_limit and friends. */
  vfio: z.object({
    iommufdContainer: z.boolean().optional(),
    enableUnsafeNoiommuMode: z.boolean().optional(),
    dmaEntryLimit: z.number().int().min(0).optional(),
    allowUnsafeInterrupts: z.boolean().optional(),
  }).strict().default({}),
  /** Seed 004: the 2019 page-response variants. */
  iopf: z.object({
    /** The guest sees a sequence number instead of the real private data. */
    privateDataCookie: z.boolean().optional(),
    /** Unregistering a fault handler with pending faults: Linux answers them; 2019 returned EBUSY. */
    unregisterWithPendingFaults: z.enum(['auto-respond', 'ebusy']).optional(),
  }).strict().default({}),
}).strict();

const stepObject = (k: (typeof STEP_KINDS)[number]) => z.object({ do: z.literal(k.name), ...k.fields }).strict().describe(k.summary);
type StepObject = ReturnType<typeof stepObject>;

/** A variant's options: the same fields, none defaulted, so only what the variant names overrides. */
const variantOptionsSchema = z.object({
  mdevGroupPolicy: z.enum(['separate-virtual-group', 'inherit-parent-group', 'attach-time-ebusy']).optional(),
  isolation: z.enum(['enforce', 'report']).optional(),
  vfioApi: z.enum(['cdev', 'group']).optional(),
  pasidAllocation: z.enum(['per-device', 'global']).optional(),
  vfio: z.object({
    iommufdContainer: z.boolean().optional(),
    enableUnsafeNoiommuMode: z.boolean().optional(),
    dmaEntryLimit: z.number().int().min(0).optional(),
    allowUnsafeInterrupts: z.boolean().optional(),
  }).strict().optional(),
  iopf: z.object({
    privateDataCookie: z.boolean().optional(),
    unregisterWithPendingFaults: z.enum(['auto-respond', 'ebusy']).optional(),
  }).strict().optional(),
}).strict();

function stepSchemas(): [StepObject, StepObject, ...StepObject[]] {
  const [a, b, ...rest] = STEP_KINDS.map(stepObject);
  if (a === undefined || b === undefined) throw new Error('fewer than two step kinds');
  return [a, b, ...rest];
}

export const stepSchema = z.discriminatedUnion('do', stepSchemas());

export const scenarioSchema = z.object({
  /** A short name (the file's, by convention). */
  scenario: z.string().min(1),
  /** The question the scenario asks and what the run shows. */
  description: z.string().optional(),
  /** A built-in host name, or a host file / lspci dump path relative to the scenario file. */
  host: z.union([z.string().min(1), z.object({ file: z.string().min(1) }).strict()]).default('default'),
  /** The kernel command line (default: the host file's own). */
  cmdline: z.string().optional(),
  options: optionsSchema.default({ mdevGroupPolicy: 'inherit-parent-group', isolation: 'enforce', vfioApi: 'cdev', pasidAllocation: 'per-device', vfio: {}, iopf: {} }),
  /**
   * Design variants: the scenario runs once per variant, each with its options applied over `options`;
   * steps may expect differently per variant (expect: { by: { NAME: ... } }).
   */
  variants: z.array(z.object({
    name: z.string().regex(/^[A-Za-z0-9_][\w.-]*$/),
    description: z.string().optional(),
    options: variantOptionsSchema.default({}),
  }).strict()).optional(),
  processes: z.record(z.string().regex(/^[A-Za-z_][\w-]*$/), processSchema).default({}),
  steps: z.array(stepSchema).min(1),
}).strict();

export type Scenario = z.infer<typeof scenarioSchema>;
export type ScenarioStep = z.infer<typeof stepSchema>;
