import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { bootHost } from '../../src/pci/boot.ts';
import { BUILTIN_HOSTS, builtinHostPath, loadBuiltinHost, UnknownBuiltinHostError } from '../../src/pci/builtin-hosts.ts';
import type { PciDev } from '../../src/pci/dev.ts';
import { buildHost } from '../../src/pci/host.ts';
import { acsQuirkVerdict } from '../../src/pci/quirks/acs-quirks.ts';
import {
  PCI_ACS_CR, PCI_ACS_RR, PCI_ACS_SV, PCI_ACS_UF, PCI_EXT_CAP_ID_ATS, PCI_EXT_CAP_ID_PASID, PCI_EXT_CAP_ID_PRI,
  PCI_EXT_CAP_ID_SRIOV, PCI_SRIOV_NUM_VF, PcieType, REQ_ACS_FLAGS,
} from '../../src/pci/regs.ts';
import { barsOf, layoutProblems } from '../support/bar-layout.ts';

const REDIRECT = PCI_ACS_RR | PCI_ACS_CR | PCI_ACS_UF;
const isType = (d: PciDev, t: PcieType): boolean => d.isPcie() && d.pcieType() === t;

describe('built-in hosts', () => {
  it.each(BUILTIN_HOSTS.map((h) => h.name))('%s loads, builds and boots cleanly', (name) => {
    const spec = loadBuiltinHost(name);
    expect(spec.name).toBe(name);
    expect(spec.description).toBe(BUILTIN_HOSTS.find((h) => h.name === name)?.description);
    const booted = bootHost(spec);
    expect(booted.host.topology.warnings).toEqual([]);
    expect(booted.host.topology.size).toBeGreaterThanOrEqual(spec.functions.length);
    for (const fn of spec.functions) expect(fn.name, fn.address).toBeTruthy();
  });

  it.each(BUILTIN_HOSTS.map((h) => h.name))('%s: BARs aligned and disjoint, bridge windows hold only their subtree', (name) => {
    const host = buildHost(loadBuiltinHost(name));
    expect(layoutProblems(host.topology)).toEqual([]);
  });

  it('the layout check notices a BAR moved into a sibling bridge window', () => {
    const spec = loadBuiltinHost('default');
    const mei = spec.functions.find((f) => f.address === '00:16.0');
    const bar = mei?.bars[0];
    if (bar === undefined) throw new Error('00:16.0 has no BAR');
    bar.base = 0x951f0000; // free space, but inside 00:1c.0's window: the bridge would claim it
    expect(layoutProblems(buildHost(spec).topology)).toEqual(['00:1c.0 mem window 0x95000000-0x951fffff takes in 00:16.0 BAR 0, which is not below it']);
  });

  it('resolves files relative to the module, and refuses unknown names listing the known ones', () => {
    expect(builtinHostPath('small')).toMatch(/hosts[/\\]small\.yaml$/);
    expect(() => loadBuiltinHost('nope')).toThrow(UnknownBuiltinHostError);
    expect(() => loadBuiltinHost('nope')).toThrow(/unknown built-in host "nope"; known: default, small/);
  });

  it('hands out a fresh copy each time', () => {
    const a = loadBuiltinHost('small');
    a.functions.pop();
    expect(loadBuiltinHost('small').functions).toHaveLength(5);
  });

  it('every host file is commented YAML', () => {
    for (const h of BUILTIN_HOSTS) {
      const text = readFileSync(builtinHostPath(h.name), 'utf8');
      expect(text.split('\n').filter((l) => l.trimStart().startsWith('#')).length).toBeGreaterThan(5);
      expect(parse(text)).toHaveProperty('functions');
    }
  });
});

describe('the default host has every situation it promises', () => {
  const booted = bootHost(loadBuiltinHost('default'));
  const topo = booted.host.topology;
  const all = topo.devices();
  const dev = (bdf: string): PciDev => {
    const d = topo.get(bdf);
    if (d === undefined) throw new Error(`${bdf} missing`);
    return d;
  };
  const rootPorts = all.filter((d) => isType(d, PcieType.RootPort));
  const noQuirk = (d: PciDev): boolean => acsQuirkVerdict(d, REQ_ACS_FLAGS, { amdIvrs: false, override: null }) === null;

  it('is a realistic size, on an Intel IOMMU with an include-all DMAR unit last', () => {
    expect(all.length).toBeGreaterThanOrEqual(30);
    expect(all.length).toBeLessThanOrEqual(60);
    expect(booted.host.platform.iommu).toBe('intel');
    const units = booted.host.platform.dmarUnits ?? [];
    expect(units.length).toBeGreaterThanOrEqual(2);
    expect(units.at(-1)?.includeAll).toBe(true);
    expect(units.slice(0, -1).every((u) => !u.includeAll && u.scope.length > 0)).toBe(true);
  });

  it('has a root port whose ACS capability the kernel enabled', () => {
    const withAcs = rootPorts.filter((d) => d.acsCap !== 0 && (d.acsCapReg() & REDIRECT) === REDIRECT);
    expect(withAcs.length).toBeGreaterThan(0);
    for (const d of withAcs) expect(d.acsCtrlReg() & (PCI_ACS_SV | REDIRECT)).toBe(PCI_ACS_SV | REDIRECT);
  });

  it('has an Intel PCH root port without ACS that no quirk rescues', () => {
    const bare = rootPorts.filter((d) => d.vendor === 0x8086 && d.acsCap === 0);
    expect(bare.length).toBeGreaterThan(0);
    for (const d of bare) expect(noQuirk(d), d.shortBdf).toBe(true);
  });

  it('has a CPU root port with RR/CR/UF hard-wired (not implemented)', () => {
    const partial = rootPorts.filter((d) => d.acsCap !== 0 && (d.acsCapReg() & REDIRECT) !== REDIRECT);
    expect(partial.map((d) => d.shortBdf)).toContain('26:05.0');
    expect(dev('26:05.0').acsCtrlReg() & PCI_ACS_SV).toBe(PCI_ACS_SV);
  });

  it('has a switch with mixed-ACS downstream ports and devices behind them', () => {
    const usp = all.find((d) => isType(d, PcieType.UpstreamPort));
    const dsps = usp?.subordinate?.devices ?? [];
    expect(dsps.length).toBeGreaterThanOrEqual(3);
    expect(dsps.every((d) => isType(d, PcieType.DownstreamPort))).toBe(true);
    const withAcs = dsps.filter((d) => d.acsCap !== 0);
    const without = dsps.filter((d) => d.acsCap === 0);
    expect(withAcs.length).toBeGreaterThanOrEqual(2);
    expect(without.length).toBeGreaterThanOrEqual(1);
    for (const d of without) expect(d.subordinate?.devices.length, d.shortBdf).toBeGreaterThan(0);
    expect(withAcs.filter((d) => (d.subordinate?.devices.length ?? 0) > 0).length).toBeGreaterThanOrEqual(1);
  });

  it('has a GPU and its HDMI audio as two functions of one slot without ACS', () => {
    const gpu = dev('16:00.0');
    const audio = dev('16:00.1');
    expect(gpu.classCode >> 16).toBe(0x03);
    expect(audio.baseSubClass()).toBe(0x0403);
    expect(gpu.multifunction && audio.multifunction).toBe(true);
    expect(gpu.acsCap + audio.acsCap).toBe(0);
    expect(noQuirk(gpu) && noQuirk(audio)).toBe(true);
  });

  it('has a multi-port SR-IOV NIC with VFs enabled', () => {
    const pfs = all.filter((d) => d.config.findExtCapability(PCI_EXT_CAP_ID_SRIOV) !== 0 && d.baseSubClass() === 0x0200);
    expect(pfs.length).toBeGreaterThanOrEqual(2);
    expect(new Set(pfs.map((d) => `${d.busNumber}:${d.slot}`)).size).toBe(1);
    for (const pf of pfs) {
      const numVfs = pf.config.read16(pf.config.findExtCapability(PCI_EXT_CAP_ID_SRIOV) + PCI_SRIOV_NUM_VF);
      expect(numVfs).toBeGreaterThan(0);
      const vfs = all.filter((d) => d.physfn === pf);
      expect(vfs).toHaveLength(numVfs);
      expect(vfs.every((v) => v.isVirtfn())).toBe(true);
    }
  });

  it('has several NVMe drives, one of them the boot drive', () => {
    const nvme = all.filter((d) => d.baseSubClass() === 0x0108);
    expect(nvme.length).toBeGreaterThanOrEqual(2);
    expect(nvme.filter((d) => /boot/i.test(d.info.name ?? ''))).toHaveLength(1);
    expect(nvme.every((d) => d.info.driver === 'nvme')).toBe(true);
  });

  it('has a PCIe-to-PCI bridge with two conventional PCI devices behind it', () => {
    const bridges = all.filter((d) => isType(d, PcieType.PcieToPciBridge));
    const legacy = bridges.find((b) => (b.subordinate?.devices ?? []).filter((d) => !d.isPcie()).length >= 2);
    expect(legacy).toBeDefined();
  });

  it('has conventional chipset functions 00:1f.0/.2/.3/.4 in one multifunction slot', () => {
    const expected: Array<[string, number]> = [['00:1f.0', 0x0601], ['00:1f.2', 0x0106], ['00:1f.3', 0x0403], ['00:1f.4', 0x0c05]];
    for (const [bdf, cls] of expected) {
      const d = dev(bdf);
      expect(d.baseSubClass(), bdf).toBe(cls);
      expect(d.isPcie(), bdf).toBe(false);
      expect(d.multifunction, bdf).toBe(true);
      expect(d.bus.isRoot(), bdf).toBe(true);
    }
  });

  it('has an accelerator with ATS, PRI and PASID', () => {
    const accel = all.filter((d) => d.config.findExtCapability(PCI_EXT_CAP_ID_PASID) !== 0);
    expect(accel.length).toBeGreaterThan(0);
    for (const d of accel) {
      expect(d.config.findExtCapability(PCI_EXT_CAP_ID_PRI)).not.toBe(0);
      expect(d.config.findExtCapability(PCI_EXT_CAP_ID_ATS)).not.toBe(0);
    }
    expect(isType(dev('6a:01.0'), PcieType.RcIntegratedEndpoint)).toBe(true);
    expect(dev('6a:01.0').config.findExtCapability(0x1b)).not.toBe(0);
  });

  it('has an onboard BMC VGA as the console and a management NIC the host uses', () => {
    const vga = all.filter((d) => d.baseSubClass() === 0x0300 && (d.vendor === 0x1a03 || d.vendor === 0x102b));
    expect(vga).toHaveLength(1);
    expect(vga[0]?.info.name).toMatch(/console/i);
    const mgmt = all.filter((d) => d.classCode >> 16 === 0x02 && /management/i.test(d.info.name ?? ''));
    expect(mgmt).toHaveLength(1);
    expect(mgmt[0]?.info.driver).toBe('igb');
  });

  it('gives drivers to the functions a kernel binds, and BARs to every endpoint', () => {
    const physical = all.filter((d) => !d.isVirtfn());
    const driverless = physical.filter((d) => d.info.driver === undefined).map((d) => d.shortBdf);
    // CPU registers with no driver, the LPC bridge and the two PCIe-to-PCI bridges.
    expect(driverless.sort()).toEqual(['00:00.0', '00:00.1', '00:00.2', '00:1f.0', '02:00.0', '98:00.0']);
    const endpoints = physical.filter((d) => !d.isBridge() && d.info.driver !== undefined && d.info.driver !== 'pcieport');
    for (const d of endpoints) expect(barsOf(d).length, d.shortBdf).toBeGreaterThan(0);
  });
});

describe('the small host', () => {
  const topo = bootHost(loadBuiltinHost('small')).host.topology;

  it('has a root port with ACS over one endpoint, and a bare root port over a two-function device', () => {
    expect(topo.size).toBe(5);
    const ports = topo.devices().filter((d) => isType(d, PcieType.RootPort));
    const [withAcs, bare] = [ports.filter((d) => d.acsCap !== 0), ports.filter((d) => d.acsCap === 0)];
    expect(withAcs).toHaveLength(1);
    expect(bare).toHaveLength(1);
    expect(withAcs[0]?.subordinate?.devices).toHaveLength(1);
    const below = bare[0]?.subordinate?.devices ?? [];
    expect(below).toHaveLength(2);
    expect(below.every((d) => d.multifunction && d.slot === below[0]?.slot)).toBe(true);
    expect(acsQuirkVerdict(bare[0]!, REQ_ACS_FLAGS, { amdIvrs: false, override: null })).toBeNull();
  });
});
