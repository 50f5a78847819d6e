import { formatShortAddress, parseAddress } from '../address.ts';
import { CmdlineError, parseKernelCmdline } from '../kernel-options.ts';
import { ACS_BIT_NAMES, type AcsBitName } from '../spec.ts';
import { WhatIfError, type AcsEdit, type WhatIfChange } from './types.ts';

/**
 * What-if syntax, one change per string (the CLI prints this text):
 *
 *   acs:BDF:+RR,-CR        set (+) or clear (-) ACS Control bits of the function at BDF;
 *                          bit names SV TB RR CR UF EC DT
 *   acs:BDF:on|off         set or clear every ACS Control bit the function's ACS Capability implements
 *   bios-acs:off|on        the firmware "ACS enable" setting: every function's ACS Control cleared, or set
 *                          to the SV RR CR UF bits it implements
 *   cmdline:"OPTIONS"      append kernel options (quotes are needed only around spaces), e.g.
 *                          cmdline:pcie_acs_override=downstream  cmdline:"pci=disable_acs_redir=00:01.0 iommu=pt"
 *   move:BDF:BRIDGE        re-seat the card in BDF's slot (every function of the slot, and everything below
 *                          it if it is a bridge) on BRIDGE's empty secondary bus, as device 00; buses below
 *                          are renumbered to fit BRIDGE's bus window
 *   algorithm:linux|proposed-2025
 *                          mainline pci_device_group(), or the proposed 2025 rework
 *   iommu:off|on           boot with the IOMMU off (no groups) or on
 *
 * BDF is [dddd:]bb:dd.f. Changes apply in the order given.
 */
export const WHATIF_SYNTAX = `acs:BDF:+RR,-CR        set (+) or clear (-) ACS Control bits of a function (SV TB RR CR UF EC DT)
acs:BDF:on|off         set or clear every ACS Control bit the function implements
bios-acs:off|on        firmware "ACS enable": every ACS Control cleared, or set to the SV RR CR UF implemented
cmdline:"OPTIONS"      append kernel options, e.g. cmdline:pcie_acs_override=downstream
move:BDF:BRIDGE        re-seat the card in BDF's slot (with its subtree) on BRIDGE's empty secondary bus
algorithm:linux|proposed-2025
iommu:off|on
BDF is [dddd:]bb:dd.f; changes apply in the order given.`;

const BDF = '(?:[0-9a-fA-F]{1,8}:)?[0-9a-fA-F]{1,2}:[0-9a-fA-F]{1,2}\\.[0-7]';
const ACS_RE = new RegExp(`^(${BDF}):(.*)$`);
const MOVE_RE = new RegExp(`^(${BDF}):(${BDF})$`);

/** Parse one what-if string (syntax above); throws WhatIfError saying what is wrong and what was expected. */
export function parseWhatIf(text: string): WhatIfChange {
  const input = text.trim();
  const colon = input.indexOf(':');
  if (colon < 0) throw new WhatIfError(`'${input}' is not a what-if; expected one of:\n${WHATIF_SYNTAX}`);
  const kind = input.slice(0, colon).toLowerCase();
  const rest = input.slice(colon + 1);
  switch (kind) {
    case 'acs': return parseAcs(rest, input);
    case 'bios-acs': return { kind: 'bios-acs', enabled: onOff(rest, input) };
    case 'iommu': return { kind: 'iommu', enabled: onOff(rest, input) };
    case 'cmdline': return { kind: 'cmdline', options: parseCmdlineValue(rest, input) };
    case 'move': return parseMove(rest, input);
    case 'algorithm': {
      const a = rest.trim().toLowerCase();
      if (a === 'linux' || a === 'proposed-2025') return { kind: 'algorithm', algorithm: a };
      throw new WhatIfError(`'${input}': the algorithm is 'linux' or 'proposed-2025', not '${rest}'`);
    }
    default:
      throw new WhatIfError(`'${input}': unknown what-if '${kind}'; expected one of:\n${WHATIF_SYNTAX}`);
  }
}

/** The canonical string for a change; parseWhatIf(formatWhatIf(c)) gives c back. */
export function formatWhatIf(change: WhatIfChange): string {
  switch (change.kind) {
    case 'acs': {
      const e = change.edit;
      if (e.mode !== 'bits') return `acs:${change.device}:${e.mode}`;
      const names = Object.entries(ACS_BIT_NAMES);
      const set = names.filter(([, bit]) => (e.set & bit) !== 0).map(([n]) => `+${n}`);
      const clear = names.filter(([, bit]) => (e.clear & bit) !== 0).map(([n]) => `-${n}`);
      return `acs:${change.device}:${[...set, ...clear].join(',')}`;
    }
    case 'bios-acs': return `bios-acs:${change.enabled ? 'on' : 'off'}`;
    case 'iommu': return `iommu:${change.enabled ? 'on' : 'off'}`;
    case 'cmdline': return /\s/.test(change.options) ? `cmdline:"${change.options}"` : `cmdline:${change.options}`;
    case 'move': return `move:${change.device}:${change.bridge}`;
    case 'algorithm': return `algorithm:${change.algorithm}`;
  }
}

function onOff(value: string, input: string): boolean {
  const v = value.trim().toLowerCase();
  if (v === 'on') return true;
  if (v === 'off') return false;
  throw new WhatIfError(`'${input}': expected 'on' or 'off', not '${value}'`);
}

function canonicalBdf(text: string, input: string): string {
  const a = parseAddress(text);
  if (a === undefined) throw new WhatIfError(`'${input}': '${text}' is not a PCI address [dddd:]bb:dd.f`);
  return formatShortAddress(a);
}

function parseAcs(rest: string, input: string): WhatIfChange {
  const m = ACS_RE.exec(rest.trim());
  if (m === null) throw new WhatIfError(`'${input}': expected acs:BDF:+RR,-CR or acs:BDF:on|off (BDF is [dddd:]bb:dd.f)`);
  const device = canonicalBdf(m[1] ?? '', input);
  const spec = (m[2] ?? '').trim();
  if (spec.toLowerCase() === 'on' || spec.toLowerCase() === 'off') {
    return { kind: 'acs', device, edit: { mode: spec.toLowerCase() as 'on' | 'off' } };
  }
  if (spec === '') throw new WhatIfError(`'${input}': say which bits, e.g. +RR,-CR, or on/off`);
  let set = 0;
  let clear = 0;
  for (const item of spec.split(',').map((s) => s.trim())) {
    const sign = item[0];
    const name = item.slice(1).toUpperCase();
    if (sign !== '+' && sign !== '-') {
      throw new WhatIfError(`'${input}': '${item}' needs a sign: +${item.toUpperCase()} sets the bit, -${item.toUpperCase()} clears it`);
    }
    if (!(name in ACS_BIT_NAMES)) {
      throw new WhatIfError(`'${input}': '${item.slice(1)}' is not an ACS bit; the names are ${Object.keys(ACS_BIT_NAMES).join(' ')}`);
    }
    const bit = ACS_BIT_NAMES[name as AcsBitName];
    if (((sign === '+' ? clear : set) & bit) !== 0) throw new WhatIfError(`'${input}': ${name} is both set and cleared`);
    if (sign === '+') set |= bit;
    else clear |= bit;
  }
  const edit: AcsEdit = { mode: 'bits', set, clear };
  return { kind: 'acs', device, edit };
}

function parseCmdlineValue(rest: string, input: string): string {
  let value = rest.trim();
  const quote = value[0];
  if (quote === '"' || quote === '\'') {
    if (value.length < 2 || !value.endsWith(quote)) throw new WhatIfError(`'${input}': the opening ${quote} is never closed`);
    value = value.slice(1, -1).trim();
  }
  if (value === '') throw new WhatIfError(`'${input}': no kernel options given, e.g. cmdline:pcie_acs_override=downstream`);
  // Malformed values of the options that change groups are errors now, not surprises at apply time.
  try {
    parseKernelCmdline(value);
  } catch (e) {
    if (e instanceof CmdlineError) throw new WhatIfError(`'${input}': ${e.message}`);
    throw e;
  }
  return value;
}

function parseMove(rest: string, input: string): WhatIfChange {
  const m = MOVE_RE.exec(rest.trim());
  if (m === null) throw new WhatIfError(`'${input}': expected move:BDF:BRIDGE, two PCI addresses [dddd:]bb:dd.f`);
  return { kind: 'move', device: canonicalBdf(m[1] ?? '', input), bridge: canonicalBdf(m[2] ?? '', input) };
}
