import { PCI_SLOT } from '../address.ts';
import type { PciDev } from '../dev.ts';
import { REQ_ACS_FLAGS } from '../regs.ts';
import { acsEnabled, acsPathBlocker, acsVerdictReason, describeKind, type AcsContext } from './acs.ts';
import { devsAreDmaAliases, forEachDmaAlias, type DmaAlias } from './dma-alias.ts';
import type { GroupTable } from './group-table.ts';
import type { GroupStep, IommuGroup } from './types.ts';

// Mainline pci_device_group() (drivers/iommu/iommu.c, unchanged from v3.x to v6.17), step by step, with
// each step recording the rule that decided, so a person can read why a device shares its group.

/** A group found by the same-bus searches: who holds it, and the relations that led there. */
interface Found { group: IommuGroup; holder: PciDev; rule: 'same-bus-alias' | 'multifunction'; relations: string[] }

export function pciDeviceGroupLinux(dev: PciDev, table: GroupTable, ctx: AcsContext): IommuGroup {
  const found = findGroup(dev, table, ctx);
  if (found.group !== null) {
    table.join(found.group, found.step);
    return found.group;
  }
  return table.alloc(found.step);
}

function findGroup(dev: PciDev, table: GroupTable, ctx: AcsContext): { group: IommuGroup | null; step: GroupStep } {
  // 1. Topology aliases: the device as seen through every bridge that rewrites its requester ID.
  let last: DmaAlias | undefined;
  let hit: IommuGroup | undefined;
  forEachDmaAlias(dev, (alias) => {
    last = alias;
    hit = table.groupOf(alias.dev);
    return hit !== undefined;
  });
  if (hit !== undefined && last !== undefined) {
    return { group: hit, step: { rule: 'dma-alias', device: dev, via: last.dev, text: aliasText(dev, last) } };
  }
  // The pivot is the topmost device whose requester ID this device's DMA may carry.
  let pivot = last?.dev ?? dev;
  const pivotNote = pivot === dev ? '' : ` (grouped as ${pivot.shortBdf}, whose requester ID its DMA carries)`;

  // 2. Climb while the path from the bus's bridge to the root is not ACS-isolated.
  for (let bus = pivot.bus; !bus.isRoot(); bus = bus.parent ?? bus) {
    const bridge = bus.self;
    if (bridge === null) continue;
    const blocker = acsPathBlocker(bridge, REQ_ACS_FLAGS, ctx);
    if (blocker === null) break;
    pivot = bridge;
    const g = table.groupOf(bridge);
    if (g !== undefined) {
      const because = acsVerdictReason(blocker, REQ_ACS_FLAGS, ctx);
      const where = blocker === bridge ? because : `the path above it is not isolated: ${because}`;
      return { group: g, step: { rule: 'upstream-not-isolated', device: dev, via: bridge, text: `${dev.shortBdf} joins ${bridge.shortBdf}${pivotNote}: ${where}` } };
    }
  }

  // 3. Same-bus DMA aliases of the pivot, and 4. its non-isolated sibling functions.
  const visited = new Uint32Array(8);
  const found = aliasGroup(pivot, visited, table, ctx) ?? functionAliasGroup(pivot, visited, table, ctx);
  if (found !== null) {
    const as = pivot === dev ? '' : ` (as ${pivot.shortBdf})`;
    const text = `${dev.shortBdf}${as} joins ${found.holder.shortBdf}: ${found.relations.join('; ')}`;
    return { group: found.group, step: { rule: found.rule, device: dev, via: found.holder, text } };
  }

  // 5. Nothing to share with: a new group.
  return { group: null, step: { rule: 'new-group', device: dev, via: pivot === dev ? undefined : pivot, text: newGroupText(dev, pivot, ctx) } };
}

function testAndSet(bits: Uint32Array, devfn: number): boolean {
  const word = devfn >> 5;
  const bit = 1 << (devfn & 31);
  const was = ((bits[word] ?? 0) & bit) !== 0;
  bits[word] = (bits[word] ?? 0) | bit;
  return was;
}

/** get_pci_alias_group(): the group of `pdev` or of any same-bus device aliased with it (depth-first). */
function aliasGroup(pdev: PciDev, visited: Uint32Array, table: GroupTable, ctx: AcsContext): Found | null {
  if (testAndSet(visited, pdev.devfn)) return null;
  const own = table.groupOf(pdev);
  if (own !== undefined) return { group: own, holder: pdev, rule: 'same-bus-alias', relations: [] };
  for (const tmp of pdev.bus.devices) {
    if (tmp === pdev || !devsAreDmaAliases(pdev, tmp)) continue;
    const g = aliasGroup(tmp, visited, table, ctx) ?? functionAliasGroup(tmp, visited, table, ctx);
    if (g !== null) return { ...g, rule: 'same-bus-alias', relations: [`${aliasSource(pdev, tmp)} (DMA alias)`, ...g.relations] };
  }
  return null;
}

/** get_pci_function_alias_group(): a non-isolated function of the same multifunction slot. */
function functionAliasGroup(pdev: PciDev, visited: Uint32Array, table: GroupTable, ctx: AcsContext): Found | null {
  if (!pdev.multifunction || acsEnabled(pdev, REQ_ACS_FLAGS, ctx)) return null;
  for (const tmp of pdev.bus.devices) {
    if (tmp === pdev || PCI_SLOT(tmp.devfn) !== PCI_SLOT(pdev.devfn) || acsEnabled(tmp, REQ_ACS_FLAGS, ctx)) continue;
    const g = aliasGroup(tmp, visited, table, ctx);
    if (g === null) continue;
    const relation = `${pdev.shortBdf} and ${tmp.shortBdf} are functions of one multifunction slot without ACS isolation (${acsVerdictReason(pdev, REQ_ACS_FLAGS, ctx)})`;
    return { ...g, rule: 'multifunction', relations: [relation, ...g.relations] };
  }
  return null;
}

function aliasText(dev: PciDev, alias: DmaAlias): string {
  const b = alias.dev;
  switch (alias.why) {
    case 'pcie-to-pci-bridge':
    case 'pcie-bridge-alias':
      return `${dev.shortBdf} joins ${b.shortBdf}: its DMA reaches the IOMMU as ${ridText(alias.rid)}, the requester ID of ${describeKind(b)} ${b.shortBdf} (conventional PCI behind it cannot be told apart)`;
    case 'pci-bridge':
    case 'pci-to-pcie-bridge':
      return `${dev.shortBdf} joins ${b.shortBdf}: its DMA reaches the IOMMU carrying ${describeKind(b)} ${b.shortBdf}'s own requester ID`;
    default:
      return `${dev.shortBdf} joins ${b.shortBdf}: they share a requester ID`;
  }
}

function aliasSource(a: PciDev, b: PciDev): string {
  if (a.hasDmaAlias(b.devfn)) return `${a.shortBdf} issues DMA as ${b.shortBdf}`;
  if (b.hasDmaAlias(a.devfn)) return `${b.shortBdf} issues DMA as ${a.shortBdf}`;
  return 'one issues DMA as the other';
}

function ridText(rid: number): string {
  const bus = (rid >> 8).toString(16).padStart(2, '0');
  const slot = ((rid >> 3) & 0x1f).toString(16).padStart(2, '0');
  return `${bus}:${slot}.${rid & 7}`;
}

function newGroupText(dev: PciDev, pivot: PciDev, ctx: AcsContext): string {
  if (pivot !== dev) {
    const blocker = acsPathBlocker(pivot, REQ_ACS_FLAGS, ctx);
    const why = blocker === null ? 'its requester ID' : acsVerdictReason(blocker, REQ_ACS_FLAGS, ctx);
    return `${dev.shortBdf} starts a new group for ${pivot.shortBdf}'s subtree: ${why}`;
  }
  const up = dev.bus.self;
  const pathWhy = up === null
    ? 'it sits on a root bus'
    : `the path above it is ACS-isolated (${acsVerdictReason(up, REQ_ACS_FLAGS, ctx)})`;
  if (dev.multifunction && !acsEnabled(dev, REQ_ACS_FLAGS, ctx)) {
    return `${dev.shortBdf} starts a new group: ${pathWhy}; its slot's non-isolated functions join it`;
  }
  const self = dev.multifunction ? `; ${acsVerdictReason(dev, REQ_ACS_FLAGS, ctx)}` : '';
  return `${dev.shortBdf} gets its own group: ${pathWhy}${self}`;
}
