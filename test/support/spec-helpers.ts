import type { FunctionSpecInput, HostSpecInput } from '../../src/pci/spec.ts';
import { bootHost } from '../../src/pci/boot.ts';
import { computeGroups } from '../../src/pci/groups/compute.ts';
import type { Algorithm } from '../../src/pci/groups/types.ts';

// Terse builders for synthetic topologies in tests.

type Extra = Partial<FunctionSpecInput>;
const ALL = ['SV', 'RR', 'CR', 'UF'] as const;

export const rootPort = (address: string, sec: number, sub: number, acs: 'full' | 'none' | 'off' | Extra['acs'] = 'full', extra: Extra = {}): FunctionSpecInput => ({
  address, id: '8086:2f04', class: '0604', bridge: { secondary: sec, subordinate: sub }, express: { type: 'root-port' },
  ...(acs === 'none' ? {} : acs === 'full' ? { acs: { cap: [...ALL], ctl: [...ALL] } } : acs === 'off' ? { acs: { cap: [...ALL], ctl: [] } } : { acs }),
  ...extra,
});

export const downstreamPort = (address: string, sec: number, sub: number, acs: 'full' | 'none' | 'off' = 'full', extra: Extra = {}): FunctionSpecInput =>
  rootPort(address, sec, sub, acs, { id: '10b5:8747', express: { type: 'downstream-port' }, ...extra });

export const upstreamPort = (address: string, sec: number, sub: number, extra: Extra = {}): FunctionSpecInput => ({
  address, id: '10b5:8747', class: '0604', bridge: { secondary: sec, subordinate: sub }, express: { type: 'upstream-port' }, ...extra,
});

export const endpoint = (address: string, extra: Extra = {}): FunctionSpecInput => ({
  address, id: '1af4:1041', class: '0200', express: { type: 'endpoint' }, ...extra,
});

export const pciDevice = (address: string, extra: Extra = {}): FunctionSpecInput => ({
  address, id: '1000:0030', class: '0100', ...extra,
});

export const host = (functions: FunctionSpecInput[], extra: Partial<HostSpecInput> = {}): HostSpecInput => ({ name: 'test', functions, ...extra });

/** Group members as short BDF lists, by group ID. */
export function groupsOf(spec: HostSpecInput, cmdline = '', algorithm: Algorithm = 'linux'): string[][] {
  const run = computeGroups(bootHost(spec, cmdline), algorithm);
  return run.groups.map((g) => g.devices.map((d) => d.shortBdf));
}

/** The partition as sorted member lists, sorted: for order-insensitive comparisons. */
export function partitionOf(spec: HostSpecInput, cmdline = '', algorithm: Algorithm = 'linux'): string[][] {
  return groupsOf(spec, cmdline, algorithm).map((g) => [...g].sort()).sort((a, b) => (a[0] ?? '').localeCompare(b[0] ?? ''));
}
