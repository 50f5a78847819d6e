import type { PciDev } from '../dev.ts';
import { describeKind } from '../groups/acs.ts';
import type { GroupingRun } from '../groups/compute.ts';
import type { IommuGroup } from '../groups/types.ts';
import { groupsWithoutOverride } from '../whatif/hardware.ts';
import { isDmaManagedDriver, isPciePort, isVfioDriver } from './drivers.ts';
import { hostCriticalOf, isHostDisplay } from './host-critical.ts';
import { driverctlLine, libvirtHostdev, vfioPciIdsOption } from './outputs.ts';
import { resolveTarget } from './target.ts';
import type { AssignmentPlan, HostCritical, PlanMember } from './types.ts';

const CLASS_AUDIO = 0x0403;
const CLASS_USB = 0x0c03;
const CLASS_SERIAL_BUS_OTHER = 0x0c80;

/**
 * Plan assigning `target` to a VM. VFIO claims whole groups, and since Linux 5.19 a group is viable
 * when every member is unbound, on a VFIO driver, or on a driver_managed_dma driver (pcieport,
 * pci-stub): so every endpoint must go to vfio-pci, while bridges may stay. The plan lists both, the
 * host devices the group would capture, and the configuration that binds the endpoints.
 */
export function planAssignment(run: GroupingRun, target: string): AssignmentPlan {
  const { target: dev, alsoMatched } = resolveTarget(run, target);
  const group = run.groupOf(dev) ?? null;
  const warnings: string[] = [];
  if (alsoMatched.length > 0) {
    warnings.push(`'${target}' also matches ${alsoMatched.map((d) => d.shortBdf).join(', ')}, in the same group: this plan covers them too`);
  }
  if (group === null) {
    const why = run.uncovered.find((u) => u.device === dev)?.reason ?? 'no IOMMU group';
    warnings.push(`${dev.shortBdf} has no IOMMU group (${why}): vfio-pci cannot assign it, except in the unsafe no-IOMMU mode. Boot with the IOMMU on (what-if iommu:on) to plan an assignment`);
    return {
      target: dev, alsoMatched, group: null, members: [], mustMove: [], mayStay: [], hostCritical: [], warnings,
      recommended: null, vfioPciIds: '', driverctl: [], libvirt: [],
    };
  }
  if (dev.isBridge()) {
    warnings.push(`${dev.shortBdf} is a bridge: bridges stay with the host; name an endpoint below it to assign`);
  }

  const members = group.devices.map((d) => member(d, dev, group));
  const mustMove = members.filter((m) => m.action === 'vfio-pci');
  const mayStay = members.filter((m) => m.action === 'stay');
  for (const m of mayStay) {
    if (m.driver !== undefined && !isDmaManagedDriver(m.driver)) {
      warnings.push(`bridge ${m.bdf} is bound to ${m.driver}, which does not set driver_managed_dma: unbind it, or the group is not viable`);
    }
  }
  const otherDisplay = run.booted.host.topology.devices().some((d) => d !== dev && isHostDisplay(d));
  const hostCritical = members.map((m) => hostCriticalOf(m.device, dev, otherDisplay)).filter((h): h is HostCritical => h !== null);

  // vfio-pci.ids binds every device with the ID, in any group: only safe when the IDs are unique.
  const moving = new Set(mustMove.map((m) => m.device));
  const clashes = run.booted.host.topology.devices().filter((d) => !moving.has(d) && mustMove.some((m) => m.ids === d.ids));
  for (const d of clashes) {
    warnings.push(`vfio-pci.ids would also claim ${d.shortBdf} [${d.ids}]${d.info.name === undefined ? '' : ` ${d.info.name}`}, outside this group, since it binds by vendor:device: bind by address with driverctl instead`);
  }
  warnings.push(...uncoveredNearby(run, group), ...overrideWarning(run, dev, group));

  const devices = mustMove.map((m) => m.device);
  return {
    target: dev, alsoMatched, group, members, mustMove, mayStay, hostCritical, warnings,
    recommended: devices.length === 0 ? null : clashes.length > 0 ? 'driverctl' : 'vfio-pci.ids',
    vfioPciIds: vfioPciIdsOption(devices),
    driverctl: devices.map(driverctlLine),
    libvirt: devices.map(libvirtHostdev),
  };
}

function member(d: PciDev, target: PciDev, group: IommuGroup): PlanMember {
  const reason = group.steps.find((s) => s.device === d)?.text ?? '';
  const base = { device: d, bdf: d.shortBdf, ids: d.ids, name: d.info.name, driver: d.info.driver, reason };
  if (d.isBridge()) {
    const why = isPciePort(d)
      ? `${describeKind(d)}: may stay on pcieport, which sets driver_managed_dma (allowed in a VFIO group since Linux 5.19)`
      : `${describeKind(d)}: no port driver binds it, and an unbound member keeps the group viable`;
    return { ...base, action: 'stay', why };
  }
  return { ...base, action: 'vfio-pci', why: moveReason(d, target) + driverNote(d.info.driver) };
}

function moveReason(d: PciDev, target: PciDev): string {
  if (d === target) return 'the device to assign';
  const sameCard = d.domain === target.domain && d.busNumber === target.busNumber && d.slot === target.slot;
  if (sameCard) {
    const sub = d.baseSubClass();
    const what = sub === CLASS_AUDIO ? 'its HDMI/DP audio function'
      : sub === CLASS_USB ? 'its USB controller function'
        : sub === CLASS_SERIAL_BUS_OTHER ? 'its USB-C (UCSI) controller function'
          : 'another function of the same card';
    return `${what}: it shares the group, so it must leave its host driver too`;
  }
  return 'shares the IOMMU group: every endpoint of a group must leave its host driver for the group to be viable';
}

function driverNote(driver: string | undefined): string {
  if (driver === undefined) return '';
  if (isVfioDriver(driver)) return ` (already on ${driver})`;
  if (driver === 'pci-stub') return ' (on pci-stub, which keeps the group viable; bind vfio-pci to give it to the VM)';
  return ` (now on ${driver})`;
}

/** Devices the IOMMU does not cover that sit in a member's slot or below a member bridge: untranslated DMA next door. */
function uncoveredNearby(run: GroupingRun, group: IommuGroup): string[] {
  const inGroup = new Set(group.devices);
  const out: string[] = [];
  for (const u of run.uncovered) {
    const d = u.device;
    const sibling = group.devices.find((m) => m.domain === d.domain && m.busNumber === d.busNumber && m.slot === d.slot);
    let above: PciDev | null = d.bus.self;
    while (above !== null && !inGroup.has(above)) above = above.bus.self;
    const near = sibling ?? above;
    if (near === undefined || near === null) continue;
    const where = near === sibling ? `in the same slot as ${near.shortBdf}` : `below ${near.shortBdf}`;
    out.push(`${d.shortBdf} has no IOMMU group (${u.reason}) but sits ${where}, in this group: its DMA is not translated, and nothing stops it reaching the assigned devices`);
  }
  return out;
}

/** With pcie_acs_override in effect, who can still reach the target by P2P in the real hardware. */
function overrideWarning(run: GroupingRun, target: PciDev, group: IommuGroup): string[] {
  const hw = groupsWithoutOverride(run);
  if (hw === null) return [];
  const real = hw.groups.find((g) => g.devices.some((d) => d.bdf === target.bdf));
  const mine = new Set(group.devices.map((d) => d.bdf));
  const extra = (real?.devices ?? []).filter((d) => !mine.has(d.bdf));
  if (extra.length === 0) return [];
  return [`this group is separate only because of pcie_acs_override: in the hardware ${extra.map((d) => d.shortBdf).join(', ')} can still reach ${target.shortBdf} by P2P that the IOMMU never sees`];
}
