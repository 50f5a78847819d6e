import type { GroupingRun } from '../../pci/groups/compute.ts';

// The --json document. Every address is in full dddd:bb:dd.f form, so it can be matched against sysfs.

export interface StepJson {
  readonly device: string;
  readonly rule: string;
  readonly via: string | null;
  readonly text: string;
}

export interface GroupJson {
  readonly id: number;
  readonly devices: string[];
  readonly steps: StepJson[];
}

export interface GroupsJson {
  readonly host: string;
  readonly algorithm: string;
  readonly cmdline: string;
  readonly groups: GroupJson[];
  readonly uncovered: Array<{ device: string; reason: string }>;
  readonly notes: string[];
  readonly whatIf?: unknown;
}

export function groupsJson(run: GroupingRun, notes: readonly string[]): GroupsJson {
  return {
    host: run.booted.host.name,
    algorithm: run.algorithm,
    cmdline: run.booted.options.cmdline,
    groups: run.groups.map((g) => ({
      id: g.id,
      devices: g.devices.map((d) => d.bdf),
      steps: g.steps.map((s) => ({ device: s.device.bdf, rule: s.rule, via: s.via?.bdf ?? null, text: s.text })),
    })),
    uncovered: run.uncovered.map((u) => ({ device: u.device.bdf, reason: u.reason })),
    notes: [...notes],
  };
}

/** Pretty JSON with a trailing newline. */
export function jsonText(value: unknown): string {
  return `${JSON.stringify(value, null, 2)}\n`;
}
