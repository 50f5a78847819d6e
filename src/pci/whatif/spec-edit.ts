import { addressKey, formatShortAddress, parseAddress, type PciAddress } from '../address.ts';
import type { FunctionSpec, HostSpec } from '../spec.ts';
import { WhatIfError } from './types.ts';

// Small helpers the what-if editors share: addresses in a spec, and words of a kernel command line.

export function addressOf(fn: FunctionSpec): PciAddress {
  const a = parseAddress(fn.address);
  if (a === undefined) throw new WhatIfError(`the host lists a function at '${fn.address}', which is not a PCI address`);
  return a;
}

/** The function at `bdf`, or a WhatIfError naming what the host does have nearby. */
export function functionAt(spec: HostSpec, bdf: string, what: string): FunctionSpec {
  const a = parseAddress(bdf);
  if (a === undefined) throw new WhatIfError(`${what}: '${bdf}' is not a PCI address`);
  const key = addressKey(a);
  const fn = spec.functions.find((f) => addressKey(addressOf(f)) === key);
  if (fn !== undefined) return fn;
  const sameBus = spec.functions.filter((f) => { const b = addressOf(f); return b.domain === a.domain && b.bus === a.bus; });
  const hint = sameBus.length > 0 ? `; bus ${formatShortAddress(a).slice(0, -5)} has ${sameBus.map((f) => formatShortAddress(addressOf(f))).join(' ')}` : '';
  throw new WhatIfError(`${what}: the host has no function ${formatShortAddress(a)}${hint}`);
}

const PORT_WORDS: Readonly<Record<string, string>> = {
  'root-port': 'root port', 'downstream-port': 'downstream port', 'upstream-port': 'upstream port',
  'pcie-to-pci-bridge': 'PCIe-to-PCI bridge', 'pci-to-pcie-bridge': 'PCI-to-PCIe bridge',
};

/** "root port 00:01.0", "endpoint 01:00.0", "PCI bridge 00:1e.0": for sentences about spec functions. */
export function describeFunction(fn: FunctionSpec): string {
  const where = formatShortAddress(addressOf(fn));
  const t = fn.express?.type;
  if (t !== undefined) return `${PORT_WORDS[t] ?? t.replace(/-/g, ' ')} ${where}`;
  return `${fn.bridge !== undefined ? 'PCI bridge' : 'PCI device'} ${where}`;
}

export function splitWords(cmdline: string): string[] {
  return cmdline.trim().split(/\s+/).filter((w) => w.length > 0);
}

export function appendOptions(cmdline: string, options: string): string {
  return [...splitWords(cmdline), ...splitWords(options)].join(' ');
}

/** The command line without the words `drop` selects. */
export function removeOptions(cmdline: string, drop: (word: string) => boolean): { cmdline: string; removed: string[] } {
  const words = splitWords(cmdline);
  return { cmdline: words.filter((w) => !drop(w)).join(' '), removed: words.filter(drop) };
}

/** Words that turn the IOMMU off, as parseKernelCmdline reads them. */
export function isIommuOffWord(word: string): boolean {
  const eq = word.indexOf('=');
  const key = eq < 0 ? word : word.slice(0, eq);
  const value = eq < 0 ? '' : word.slice(eq + 1);
  if (key === 'intel_iommu' || key === 'amd_iommu') return value.split(',').includes('off');
  return key === 'iommu' && value === 'off';
}

export function isAcsOverrideWord(word: string): boolean {
  return word.startsWith('pcie_acs_override=');
}
