import { fileURLToPath } from 'node:url';
import { loadHostFile } from './host-file.ts';
import type { HostSpec } from './spec.ts';

/** A host description that ships with ioasis (hosts/NAME.yaml at the repository root). */
export interface BuiltinHostInfo {
  readonly name: string;
  /** One line for `--list` and pickers; the file's own `description` says the same. */
  readonly description: string;
}

export const BUILTIN_HOSTS: readonly BuiltinHostInfo[] = [
  {
    name: 'default',
    description: 'Two-socket Xeon (Sapphire Rapids) server with a GPU, SR-IOV NIC, NVMe drives, a PCIe switch, DSA/IAX and legacy PCI',
  },
  {
    name: 'small',
    description: 'Desktop with an NVMe drive on an ACS root port and a two-function GPU on a root port without ACS',
  },
];

/** Asked for a built-in host that does not exist. */
export class UnknownBuiltinHostError extends Error {}

/** Where a built-in host's file is: resolved from this module, so it works from any working directory. */
export function builtinHostPath(name: string): string {
  if (!BUILTIN_HOSTS.some((h) => h.name === name)) {
    const known = BUILTIN_HOSTS.map((h) => h.name).join(', ');
    throw new UnknownBuiltinHostError(`unknown built-in host "${name}"; known: ${known}`);
  }
  return fileURLToPath(new URL(`../../hosts/${name}.yaml`, import.meta.url));
}

/** Load and validate a built-in host; a fresh copy each time, so callers may change it. */
export function loadBuiltinHost(name: string): HostSpec {
  return loadHostFile(builtinHostPath(name));
}
