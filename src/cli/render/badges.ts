import type { PciDev } from '../../pci/dev.ts';
import { acsBitNames } from '../../pci/groups/acs-names.ts';
import { acsEnabledByPortType, acsFlagsEnabled, type AcsContext } from '../../pci/groups/acs.ts';
import { forEachDmaAlias } from '../../pci/groups/dma-alias.ts';
import { acsQuirkVerdict } from '../../pci/quirks/acs-quirks.ts';
import { PcieType, REQ_ACS_FLAGS } from '../../pci/regs.ts';
import { ridText } from './device.ts';

// The short annotations the tree puts after a function: its ACS state, quirks, DMA aliases.

export type BadgeKind = 'acs-ok' | 'acs-weak' | 'quirk' | 'alias' | 'uncovered' | 'not-isolated';

export interface Badge {
  readonly kind: BadgeKind;
  readonly text: string;
}

function isPort(dev: PciDev): boolean {
  if (!dev.isPcie()) return false;
  const t = dev.pcieType();
  return t === PcieType.RootPort || t === PcieType.DownstreamPort;
}

/**
 * The ACS badge: on ports (where ACS decides isolation) always, on multifunction devices when they have
 * the capability. "ACS: SV RR CR UF" lists the enabled controls, "ACS off" a capability with none of
 * them enabled, "no ACS" a port without the capability.
 */
export function acsBadge(dev: PciDev): Badge | null {
  if (dev.acsCap === 0) return isPort(dev) ? { kind: 'acs-weak', text: 'no ACS' } : null;
  // ACS does not apply to a single-function endpoint: its capability would only be noise.
  if (!isPort(dev) && !dev.multifunction) return null;
  const cap = dev.acsCapReg();
  const ctl = dev.acsCtrlReg();
  const on = ctl & cap & REQ_ACS_FLAGS;
  const missing = cap & REQ_ACS_FLAGS & ~ctl;
  // Controls the port does not implement count as enabled (pci_acs_flags_enabled).
  const hardwired = REQ_ACS_FLAGS & ~cap;
  const hw = hardwired === 0 ? '' : ` (${acsBitNames(hardwired)} hard-wired)`;
  if (on === 0 && missing !== 0) return { kind: 'acs-weak', text: 'ACS off' };
  if (on === 0) return { kind: 'acs-ok', text: 'ACS: all hard-wired' };
  return missing === 0
    ? { kind: 'acs-ok', text: `ACS: ${acsBitNames(on)}${hw}` }
    : { kind: 'acs-weak', text: `ACS: ${acsBitNames(on)} (${acsBitNames(missing)} off)` };
}

/** pci_acs_enabled() without the quirk table: what the registers and port type alone say. */
export function standardAcsVerdict(dev: PciDev): boolean {
  return acsEnabledByPortType(dev, (d) => acsFlagsEnabled(d, REQ_ACS_FLAGS));
}

/**
 * A quirk (or the override) that answers the ACS question for this function differently from its
 * registers: the badge says why the function is (not) isolated. Quirks that agree with the registers
 * change nothing and get no badge.
 */
export function quirkBadge(dev: PciDev, ctx: AcsContext): Badge | null {
  const q = acsQuirkVerdict(dev, REQ_ACS_FLAGS, ctx);
  if (q === null || q.verdict === standardAcsVerdict(dev)) return null;
  const name = q.quirk.name === 'pcie_acs_overrides' ? 'ACS override' : `quirk ${q.quirk.name.replace(/^pci_quirk_/, '')}`;
  return { kind: 'quirk', text: q.verdict ? name : `${name}: not isolated` };
}

/** "alias→02:00.0": the requester IDs other than its own that this function's DMA may carry. */
export function aliasBadge(dev: PciDev): Badge | null {
  const rids: string[] = [];
  forEachDmaAlias(dev, (alias) => {
    if (alias.why !== 'self' && alias.rid !== dev.rid) {
      const text = ridText(alias.rid);
      if (!rids.includes(text)) rids.push(text);
    }
    return false;
  });
  return rids.length === 0 ? null : { kind: 'alias', text: `alias→${rids.join(',')}` };
}

/** All badges of a function, in display order. */
export function badgesOf(dev: PciDev, ctx: AcsContext, covered: boolean): Badge[] {
  const out: Badge[] = [];
  const acs = acsBadge(dev);
  if (acs !== null) out.push(acs);
  const quirk = quirkBadge(dev, ctx);
  if (quirk !== null) out.push(quirk);
  const alias = aliasBadge(dev);
  if (alias !== null) out.push(alias);
  if (!covered) out.push({ kind: 'uncovered', text: 'not covered' });
  return out;
}
