import { PCI_ACS_CR, PCI_ACS_EC, PCI_ACS_RR } from './regs.ts';

/** Which devices a `pci=config_acs=`/`disable_acs_redir=` entry names (Linux's pci_dev_str_match). */
export type PciDevSelector =
  /** "[dddd:]bb:dd.f[/dd.f]*": a path from a root-bus device down through bridges. */
  | { readonly kind: 'path'; readonly domain: number; readonly bus: number; readonly path: ReadonlyArray<{ slot: number; fn: number }>; readonly text: string }
  /** "pci:vvvv:dddd[:ssss:ssss]": IDs, where 0 matches anything. */
  | { readonly kind: 'ids'; readonly vendor: number; readonly device: number; readonly subvendor: number; readonly subdevice: number; readonly text: string };

export interface ConfigAcsEntry {
  /** Bits the entry sets or clears; the rest keep the firmware value. */
  readonly mask: number;
  readonly flags: number;
  readonly selector: PciDevSelector;
}

/** The out-of-tree pcie_acs_override= patch (Proxmox, zen, ...). */
export interface AcsOverride {
  readonly downstream: boolean;
  readonly multifunction: boolean;
  readonly ids: ReadonlyArray<{ vendor: number; device: number }>;
}

/** The kernel command-line options that change IOMMU groups. */
export interface KernelOptions {
  /** False with intel_iommu=off, amd_iommu=off or iommu=off: no groups at all, no ACS enabling. */
  readonly iommu: boolean;
  readonly acsOverride: AcsOverride | null;
  readonly configAcs: readonly ConfigAcsEntry[];
  readonly disableAcsRedir: readonly PciDevSelector[];
  /** pci=noats: the kernel also enables ACS Translation Blocking. */
  readonly noats: boolean;
  /** pci=bfsort / pci=nobfsort: force the device list order (x86); null leaves it to the platform. */
  readonly pciSort: 'depth-first' | 'breadth-first' | null;
  /** The command line as given. */
  readonly cmdline: string;
  /** Options on the line that do not affect groups, kept so a person sees they were read. */
  readonly ignored: readonly string[];
}

export class CmdlineError extends Error {}

export const DEFAULT_KERNEL_OPTIONS: KernelOptions = {
  iommu: true, acsOverride: null, configAcs: [], disableAcsRedir: [], noats: false, pciSort: null, cmdline: '', ignored: [],
};

/** disable_acs_redir clears these bits on the named devices (mask RR|CR|EC, value 0). */
export const DISABLE_ACS_REDIR_MASK = PCI_ACS_RR | PCI_ACS_CR | PCI_ACS_EC;

/**
 * Parse a kernel command line for the options that change groups. Unknown options are ignored, as the
 * kernel ignores them; malformed values of the options we model are errors, not silent no-ops.
 */
export function parseKernelCmdline(cmdline: string): KernelOptions {
  let iommu = true;
  let acsOverride: AcsOverride | null = null;
  const configAcs: ConfigAcsEntry[] = [];
  const disableAcsRedir: PciDevSelector[] = [];
  let noats = false;
  let pciSort: KernelOptions['pciSort'] = null;
  const ignored: string[] = [];
  for (const word of cmdline.trim().split(/\s+/).filter((w) => w.length > 0)) {
    const eq = word.indexOf('=');
    const key = eq < 0 ? word : word.slice(0, eq);
    const value = eq < 0 ? '' : word.slice(eq + 1);
    switch (key) {
      case 'intel_iommu':
      case 'amd_iommu':
        if (value.split(',').includes('off')) iommu = false;
        else ignored.push(word);
        break;
      case 'iommu':
        if (value === 'off') iommu = false;
        else ignored.push(word); // iommu=pt changes default domains, not groups
        break;
      case 'pcie_acs_override':
        acsOverride = parseAcsOverride(value);
        break;
      case 'pci':
        for (const opt of splitPciOptions(value)) {
          if (opt === 'noats') noats = true;
          else if (opt === 'bfsort') pciSort = 'breadth-first';
          else if (opt === 'nobfsort') pciSort = 'depth-first';
          else if (opt.startsWith('config_acs=')) configAcs.push(...parseConfigAcs(opt.slice('config_acs='.length)));
          else if (opt.startsWith('disable_acs_redir=')) disableAcsRedir.push(...parseSelectors(opt.slice('disable_acs_redir='.length)));
          else ignored.push(`pci=${opt}`);
        }
        break;
      default:
        ignored.push(word);
    }
  }
  return { iommu, acsOverride, configAcs, disableAcsRedir, noats, pciSort, cmdline: cmdline.trim(), ignored };
}

// pci= takes comma-separated options, but config_acs/disable_acs_redir values contain ';' and '@' only.
function splitPciOptions(value: string): string[] {
  return value.split(',').filter((s) => s.length > 0);
}

function parseAcsOverride(value: string): AcsOverride {
  let downstream = false;
  let multifunction = false;
  const ids: Array<{ vendor: number; device: number }> = [];
  for (const part of value.split(',').filter((p) => p.length > 0)) {
    if (part === 'downstream') downstream = true;
    else if (part === 'multifunction') multifunction = true;
    else if (/^id:[0-9a-fA-F]{4}:[0-9a-fA-F]{4}$/.test(part)) {
      // The patch declares room for 16 IDs but stops at 15 (its bound check is off by one).
      if (ids.length >= 15) throw new CmdlineError(`pcie_acs_override: at most 15 id: entries are honoured; '${part}' is one too many`);
      ids.push({ vendor: parseInt(part.slice(3, 7), 16), device: parseInt(part.slice(8, 12), 16) });
    } else {
      throw new CmdlineError(`pcie_acs_override: '${part}' is not downstream, multifunction or id:VVVV:DDDD`);
    }
  }
  return { downstream, multifunction, ids };
}

/** "bits@dev[;bits@dev...]", bits written most significant first: 0 off, 1 on, x keep. */
function parseConfigAcs(value: string): ConfigAcsEntry[] {
  const out: ConfigAcsEntry[] = [];
  for (const item of value.split(';').filter((s) => s.length > 0)) {
    const at = item.indexOf('@');
    if (at < 0) throw new CmdlineError(`pci=config_acs: '${item}' lacks '@device'`);
    const bits = item.slice(0, at);
    if (!/^[01x]{1,7}$/.test(bits)) throw new CmdlineError(`pci=config_acs: '${bits}' must be 1 to 7 characters of 0, 1 or x (bit 0, SV, is the rightmost)`);
    let mask = 0;
    let flags = 0;
    for (let i = 0; i < bits.length; i++) {
      const bit = 1 << (bits.length - 1 - i);
      const c = bits[i];
      if (c === 'x') continue;
      mask |= bit;
      if (c === '1') flags |= bit;
    }
    out.push({ mask, flags, selector: parseSelector(item.slice(at + 1)) });
  }
  return out;
}

function parseSelectors(value: string): PciDevSelector[] {
  return value.split(';').filter((s) => s.length > 0).map(parseSelector);
}

/** "[dddd:]bb:dd.f[/dd.f]*" or "pci:vvvv:dddd[:ssss:ssss]". */
export function parseSelector(text: string): PciDevSelector {
  if (text.startsWith('pci:')) {
    const parts = text.slice(4).split(':');
    if ((parts.length !== 2 && parts.length !== 4) || !parts.every((p) => /^[0-9a-fA-F]{1,4}$/.test(p))) {
      throw new CmdlineError(`'${text}' must be pci:vvvv:dddd or pci:vvvv:dddd:ssss:ssss`);
    }
    const [vendor = 0, device = 0, subvendor = 0, subdevice = 0] = parts.map((p) => parseInt(p, 16));
    return { kind: 'ids', vendor, device, subvendor, subdevice, text };
  }
  const m = /^(?:([0-9a-fA-F]{1,4}):)?([0-9a-fA-F]{1,2}):([0-9a-fA-F]{1,2})\.([0-7])((?:\/[0-9a-fA-F]{1,2}\.[0-7])*)$/.exec(text);
  if (m === null) throw new CmdlineError(`'${text}' is neither a device path [dddd:]bb:dd.f[/dd.f]* nor pci:vvvv:dddd`);
  const path = [{ slot: parseInt(m[3] ?? '0', 16), fn: parseInt(m[4] ?? '0', 10) }];
  for (const hop of (m[5] ?? '').split('/').filter((h) => h.length > 0)) {
    const [slot = '0', fn = '0'] = hop.split('.');
    path.push({ slot: parseInt(slot, 16), fn: parseInt(fn, 10) });
  }
  if (path.some((p) => p.slot > 0x1f)) throw new CmdlineError(`'${text}': a device number is at most 1f`);
  return { kind: 'path', domain: m[1] === undefined ? 0 : parseInt(m[1], 16), bus: parseInt(m[2] ?? '0', 16), path, text };
}
