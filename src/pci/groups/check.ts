import { bootHost } from '../boot.ts';
import type { PciDev } from '../dev.ts';
import type { HostSpec } from '../spec.ts';
import { computeGroups, type GroupingRun } from './compute.ts';
import type { PciSort, ProbeUnit } from './probe-order.ts';
import type { Algorithm, IommuGroup } from './types.ts';

/** One observed group that the model formed differently. */
export interface GroupMismatch {
  readonly observedId: number;
  readonly observed: readonly PciDev[];
  /** The model's groups holding those devices (and whatever else they hold). */
  readonly computed: readonly IommuGroup[];
}

export interface CheckReport {
  readonly run: GroupingRun;
  /** Devices with an `IOMMU group:` line. */
  readonly observedDevices: number;
  readonly partitionAgrees: boolean;
  readonly numberingAgrees: boolean;
  readonly mismatches: readonly GroupMismatch[];
  /** Devices the model covers but the dump shows without a group, or the other way round. */
  readonly coverageMismatches: ReadonlyArray<{ device: PciDev; observed: boolean; reason: string }>;
  /** Group IDs the model numbered differently: [device, observed, computed]. */
  readonly numberingMismatches: ReadonlyArray<[PciDev, number, number]>;
  /** How numbering was reproduced or why it could not be, when the dump cannot tell (Intel DMAR units). */
  readonly numberingNote?: string;
  /** The numbering disagreed as computed, but facts the dump cannot show (numberingNote) reproduce it. */
  readonly numberingReproduced: boolean;
  /** A kernel option the dump does not record that makes the observed groups come out exactly. */
  readonly explainingCmdline?: string;
  /** The check repeated under explainingCmdline: its numbering is the one that counts. */
  readonly explained?: CheckReport;
}

/** Options a dump cannot show but that change groups; tried in order when the partition disagrees. */
const CANDIDATE_CMDLINES = [
  'pcie_acs_override=downstream,multifunction',
  'pcie_acs_override=downstream',
  'pcie_acs_override=multifunction',
];

/**
 * Compare the groups the model forms for a dumped host with the groups its kernel reported. The
 * partition must agree; numbering must agree too, except where it depends on facts outside the dump.
 */
export function checkObservedGroups(spec: HostSpec, cmdline = '', algorithm: Algorithm = 'linux'): CheckReport {
  const base = compare(computeGroups(bootHost(spec, cmdline), algorithm));
  if (!base.partitionAgrees && cmdline === '') {
    for (const candidate of CANDIDATE_CMDLINES) {
      const alt = compare(computeGroups(bootHost(spec, candidate), algorithm));
      if (alt.partitionAgrees && alt.coverageMismatches.length === 0) {
        return { ...base, explainingCmdline: candidate, explained: withNumbering(alt, spec, candidate, algorithm) };
      }
    }
  }
  return withNumbering(base, spec, cmdline, algorithm);
}

function withNumbering(report: CheckReport, spec: HostSpec, cmdline: string, algorithm: Algorithm): CheckReport {
  if (!report.partitionAgrees || report.numberingAgrees) return report;
  // Numbering follows the device list order (pci=bfsort or not, decided by DMI) and, on Intel, the
  // DMAR unit registration order: neither is in a dump. Try the other list order, then units inferred
  // from the observed numbering, and say what reproduces it.
  const cmd = cmdline;
  const current = report.run.plan.sort;
  const orders: Array<PciSort['order']> = [current.order, current.order === 'depth-first' ? 'breadth-first' : 'depth-first'];
  const inferUnits = spec.platform.iommu === 'intel' && spec.platform.dmarUnits === undefined;
  for (const order of orders) {
    const flipped = order !== current.order;
    const sortText = flipped ? `with the device list ${order === 'breadth-first' ? 'sorted by address (pci=bfsort, set by DMI on some servers)' : 'in scan order (no pci=bfsort)'}` : '';
    const plain = compare(computeGroups(bootHost(spec, cmd), algorithm, undefined, order));
    if (plain.numberingAgrees) {
      return { ...report, numberingReproduced: true, numberingNote: `numbering depends on the PCI device list order, which the dump does not show; it is reproduced exactly ${sortText}` };
    }
    if (!inferUnits) continue;
    const units = inferUnitsFromObserved(plain.run);
    const again = compare(computeGroups(bootHost(spec, cmd), algorithm, units, order));
    if (again.numberingAgrees) {
      const unitText = units.filter((u) => !u.includeAll).map((u) => `{${u.scope.join(', ')}}`).join(', ');
      const parts = [`DMAR units covering ${unitText} register before the include-all unit`];
      if (flipped) parts.push(sortText);
      else parts.push(`the device list is ${order === 'breadth-first' ? 'sorted by address (' + current.why + ')' : 'in scan order'}`);
      return { ...report, numberingReproduced: true, numberingNote: `numbering depends on facts the dump does not show; it is reproduced exactly when ${parts.join(' and ')}` };
    }
  }
  return { ...report, numberingNote: 'numbering depends on the DMAR units and the device list order, which the dump does not show; no order inferred from the dump reproduces it' };
}

function compare(run: GroupingRun): CheckReport {
  const devices = run.booted.host.topology.devices();
  const observedById = new Map<number, PciDev[]>();
  const coverageMismatches: Array<{ device: PciDev; observed: boolean; reason: string }> = [];
  const anyObserved = devices.some((d) => d.info.observedGroup !== undefined);
  const uncovered = new Map(run.uncovered.map((u) => [u.device, u.reason]));
  for (const dev of devices) {
    const id = dev.info.observedGroup;
    const mine = run.groupOf(dev);
    if (id === undefined) {
      if (anyObserved && mine !== undefined) coverageMismatches.push({ device: dev, observed: false, reason: 'the dump shows no group for it, the model gives it one' });
      continue;
    }
    if (mine === undefined) coverageMismatches.push({ device: dev, observed: true, reason: `the model gives it no group: ${uncovered.get(dev) ?? 'not probed'}` });
    let list = observedById.get(id);
    if (list === undefined) observedById.set(id, (list = []));
    list.push(dev);
  }
  const mismatches: GroupMismatch[] = [];
  const numberingMismatches: Array<[PciDev, number, number]> = [];
  for (const [id, members] of [...observedById].sort((a, b) => a[0] - b[0])) {
    const computed = [...new Set(members.map((d) => run.groupOf(d)).filter((g): g is IommuGroup => g !== undefined))];
    const first = computed[0];
    const same = computed.length === 1 && first !== undefined && first.devices.length === members.length;
    if (!same) mismatches.push({ observedId: id, observed: members, computed });
    for (const d of members) {
      const g = run.groupOf(d);
      if (g !== undefined && g.id !== id) numberingMismatches.push([d, id, g.id]);
    }
  }
  return {
    run, observedDevices: [...observedById.values()].reduce((n, l) => n + l.length, 0),
    partitionAgrees: mismatches.length === 0 && coverageMismatches.length === 0,
    numberingAgrees: numberingMismatches.length === 0 && mismatches.length === 0 && coverageMismatches.length === 0,
    mismatches, coverageMismatches, numberingMismatches, numberingReproduced: false,
  };
}

/**
 * Read DMAR units off an observed numbering: groups were allocated unit by unit, each unit's devices in
 * registration order, so every place where the observed order steps back in registration order starts a
 * new unit. The last run is the include-all unit.
 */
export function inferUnitsFromObserved(run: GroupingRun): ProbeUnit[] {
  // Positions in the device list as this run ordered it (scan order or sorted), before any unit split.
  const regIndex = new Map(run.plan.order.map((d, i) => [d, i]));
  const firstOf = (g: IommuGroup): PciDev | undefined => g.devices[0];
  const observedOrder = [...run.groups]
    .filter((g) => firstOf(g)?.info.observedGroup !== undefined)
    .sort((a, b) => (firstOf(a)?.info.observedGroup ?? 0) - (firstOf(b)?.info.observedGroup ?? 0));
  const runs: IommuGroup[][] = [];
  let prev = -1;
  for (const g of observedOrder) {
    const idx = Math.min(...g.devices.map((d) => regIndex.get(d) ?? 0));
    if (idx < prev || runs.length === 0) runs.push([]);
    runs[runs.length - 1]?.push(g);
    prev = idx;
  }
  const specific = runs.slice(0, -1).map((r, i) => ({
    name: `inferred unit ${i}`, includeAll: false,
    scope: r.flatMap((g) => g.devices.map((d) => d.shortBdf)),
  }));
  return [...specific, { name: 'include-all', includeAll: true, scope: [] }];
}
