import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { bootHost, type BootedHost } from '../../src/pci/boot.ts';
import type { PciDev } from '../../src/pci/dev.ts';
import { acsContextOf, computeGroups, type GroupingRun } from '../../src/pci/groups/compute.ts';
import { GroupTable } from '../../src/pci/groups/group-table.ts';
import { planProbe } from '../../src/pci/groups/probe-order.ts';
import { groupProposed2025 } from '../../src/pci/groups/proposed-2025.ts';
import { acsCtrlMask, PCI_ACS_DSP_MT_RR, PCI_ACS_USP_MT_RR } from '../../src/pci/groups/proposed-2025-acs.ts';
import { busIsolated, hasMmio } from '../../src/pci/groups/proposed-2025-bus.ts';
import type { FunctionSpecInput, HostSpecInput } from '../../src/pci/spec.ts';
import { downstreamPort, endpoint, host, partitionOf, pciDevice, rootPort, upstreamPort } from '../support/spec-helpers.ts';

// The proposed 2025 algorithm ("Fix incorrect iommu_groups with PCIe ACS" v3): every known-incorrect
// case of the reference's §8.4, the v3 semantic changes, and properties on random topologies.

const P = 'proposed-2025' as const;

/** Groups of one run as sorted BDF lists, sorted; with the nonIsolated flag when asked. */
function parts(run: GroupingRun): string[][] {
  return run.groups.map((g) => g.devices.map((d) => d.shortBdf).sort()).sort((a, b) => (a[0] ?? '').localeCompare(b[0] ?? ''));
}
function run(spec: HostSpecInput, cmdline = '', algorithm: 'linux' | typeof P = P): GroupingRun {
  return computeGroups(bootHost(spec, cmdline), algorithm);
}
function groupWith(r: GroupingRun, bdf: string) {
  const g = r.groups.find((x) => x.devices.some((d) => d.shortBdf === bdf));
  if (g === undefined) throw new Error(`${bdf} has no group`);
  return g;
}
function stepOf(r: GroupingRun, bdf: string) {
  return groupWith(r, bdf).steps.find((s) => s.device.shortBdf === bdf)!;
}

const ISO = ['SV', 'RR', 'CR', 'UF'] as const;
/** A PCIe-to-PCI bridge, with or without a memory BAR. */
const pcieToPci = (address: string, sec: number, sub: number, extra: Partial<FunctionSpecInput> = {}): FunctionSpecInput => ({
  address, id: '12d8:e111', class: '0604', bridge: { secondary: sec, subordinate: sub }, express: { type: 'pcie-to-pci-bridge' }, ...extra,
});
type DspAcs = 'full' | 'none' | 'off' | { cap: number; ctl: number };
const dsp = (address: string, sec: number, acs: DspAcs, id: string): FunctionSpecInput =>
  (typeof acs === 'string' ? downstreamPort(address, sec, sec, acs, { id }) : downstreamPort(address, sec, sec, 'full', { id, acs }));
/** Root port -> switch (USP 01:00.0) -> DSPs 02:01.0 and 02:02.0 -> one endpoint each (03:00.0, 04:00.0). */
const switchHost = (dsp1: DspAcs, dsp2: DspAcs): HostSpecInput => host([
  rootPort('00:01.0', 1, 4), upstreamPort('01:00.0', 2, 4),
  dsp('02:01.0', 3, dsp1, '10b5:8701'), dsp('02:02.0', 4, dsp2, '10b5:8702'),
  endpoint('03:00.0'), endpoint('04:00.0'),
]);

describe('proposed-2025: PCIe switches (§8.4 case 1)', () => {
  it('puts all DSPs and their endpoints in one non-isolated group when a DSP has ACS turned off; USP and RP stay apart', () => {
    const spec = switchHost('full', 'full');
    const cmd = 'pci=disable_acs_redir=pci:10b5:8702'; // asymmetric: 02:02.0 loses RR/CR, 02:01.0 keeps them
    const r = run(spec, cmd);
    // Group IDs follow probe order (each bus, then each bridge's bus); members are listed as they probe.
    expect(r.groups.map((g) => [g.id, g.devices.map((d) => d.shortBdf)])).toEqual([
      [0, ['00:01.0']], [1, ['01:00.0']], [2, ['02:01.0', '02:02.0', '03:00.0', '04:00.0']],
    ]);
    expect(groupWith(r, '02:01.0').nonIsolated).toBe(true);
    expect(groupWith(r, '01:00.0').nonIsolated).toBe(false);
    const s = stepOf(r, '03:00.0');
    expect(s.rule).toBe('bus-not-isolated');
    expect(s.text).toBe('03:00.0 joins 02:01.0\'s group: switch 01:00.0\'s downstream ports are not isolated from each other (DSP 02:02.0 has ACS but RR CR are not enabled), so everything below them shares one group');
    expect(stepOf(r, '02:01.0').rule).toBe('new-group');
    // Mainline gives the DSPs single groups and only the broken DSP's endpoint joins it: the security bug.
    expect(parts(run(spec, cmd, 'linux'))).toEqual([['00:01.0'], ['01:00.0'], ['02:01.0'], ['02:02.0', '04:00.0'], ['03:00.0']]);
  });

  it('groups the same way when both DSPs have ACS off', () => {
    const r = run(switchHost('full', 'full'), 'pci=disable_acs_redir=pci:10b5:8701;pci:10b5:8702');
    expect(parts(r)).toEqual([['00:01.0'], ['01:00.0'], ['02:01.0', '02:02.0', '03:00.0', '04:00.0']]);
  });

  it('takes the USP in too when a DSP has no ACS capability at all (it cannot redirect USP MMIO accesses either)', () => {
    const r = run(switchHost('full', 'none'));
    expect(parts(r)).toEqual([['00:01.0'], ['01:00.0', '02:01.0', '02:02.0', '03:00.0', '04:00.0']]);
    expect(groupWith(r, '01:00.0').nonIsolated).toBe(true);
    expect(stepOf(r, '02:01.0').text).toContain('DSP 02:02.0 lacks ACS');
    expect(parts(run(switchHost('full', 'none'), '', 'linux'))).toEqual([['00:01.0'], ['01:00.0'], ['02:01.0'], ['02:02.0', '04:00.0'], ['03:00.0']]);
  });

  it('gives every function its own group, as mainline does, when every DSP isolates', () => {
    const spec = switchHost('full', 'full');
    expect(parts(run(spec))).toEqual(partitionOf(spec));
    expect(run(spec).groups.every((g) => g.devices.length === 1 && !g.nonIsolated)).toBe(true);
  });

  it('finds the shared group of peer DSPs whatever the probe order (no narrower groups)', () => {
    // The DSP group exists before the second DSP probes; the endpoint below DSP 2 still joins it.
    const r = run(switchHost('full', 'full'), 'pci=disable_acs_redir=pci:10b5:8701');
    expect(groupWith(r, '04:00.0')).toBe(groupWith(r, '02:01.0'));
    expect(stepOf(r, '02:02.0').text).toMatch(/^02:02.0 joins 02:01.0's group: switch 01:00.0's downstream ports/);
  });

  it('treats a DSP with a DMA alias as non-isolating, switch USP included', () => {
    const spec = { ...switchHost('full', 'full'), platform: { iommu: 'amd' as const, firmwareAliases: [['02:02.0', '02:02.1']] as [string, string][] } };
    const r = run(spec);
    expect(parts(r)).toEqual([['00:01.0'], ['01:00.0', '02:01.0', '02:02.0', '03:00.0', '04:00.0']]);
    expect(stepOf(r, '02:01.0').text).toContain('issues DMA under other requester IDs');
  });

  it('counts DSPs isolated only by a classic-bits quirk as not isolated, as the v3 code does', () => {
    // pci_quirk_zhaoxin_pcie_ports_acs vouches for SV RR CR UF; asked for the memory-target bits too it
    // answers "no" (v3 dropped its quirk patches), so the whole switch shares the USP's group.
    const spec = host([
      rootPort('00:01.0', 1, 4), upstreamPort('01:00.0', 2, 4),
      downstreamPort('02:01.0', 3, 3, 'none', { id: '1d17:0710' }), downstreamPort('02:02.0', 4, 4, 'none', { id: '1d17:0711' }),
      endpoint('03:00.0'), endpoint('04:00.0'),
    ]);
    const r = run(spec);
    expect(parts(r)).toEqual([['00:01.0'], ['01:00.0', '02:01.0', '02:02.0', '03:00.0', '04:00.0']]);
    expect(stepOf(r, '02:01.0').text).toContain('counts as not isolated by quirk pci_quirk_zhaoxin_pcie_ports_acs (1d17:0710), which vouches only for the classic ACS bits, not USP_MT_RR');
    expect(parts(run(spec, '', 'linux')).every((g) => g.length === 1)).toBe(true);
  });

  it('honours pcie_acs_override for DSPs without an ACS capability (the override answers for any flags)', () => {
    expect(parts(run(switchHost('none', 'none'), 'pcie_acs_override=downstream')).every((g) => g.length === 1)).toBe(true);
  });
});

describe('proposed-2025: ACS Enhanced memory-target bits', () => {
  const ENH = 0x80;
  const SV_RR_CR_UF = 0x1d;
  it('masks DSP_MT_RR/USP_MT_RR out unless the capability advertises ACS Enhanced', () => {
    expect(acsCtrlMask(SV_RR_CR_UF) & (PCI_ACS_DSP_MT_RR | PCI_ACS_USP_MT_RR)).toBe(0);
    expect(acsCtrlMask(SV_RR_CR_UF | ENH) & (PCI_ACS_DSP_MT_RR | PCI_ACS_USP_MT_RR)).toBe(PCI_ACS_DSP_MT_RR | PCI_ACS_USP_MT_RR);
    // Bits 15:8 of ACS Capability are the egress vector size, not Enhanced bits: 0x0200 there is ignored.
    expect(acsCtrlMask(SV_RR_CR_UF | 0x0200) & PCI_ACS_DSP_MT_RR).toBe(0);
  });

  it('judges a root port with ACS Enhanced by DSP_MT_RR (its own MMIO)', () => {
    const rp = (cap: number, ctl: number) => host([rootPort('00:01.0', 1, 1, { cap, ctl }), endpoint('01:00.0')]);
    expect(parts(run(rp(SV_RR_CR_UF | ENH, SV_RR_CR_UF)))).toEqual([['00:01.0', '01:00.0']]);
    expect(parts(run(rp(SV_RR_CR_UF | ENH, SV_RR_CR_UF | PCI_ACS_DSP_MT_RR)))).toEqual([['00:01.0'], ['01:00.0']]);
    expect(parts(run(rp(SV_RR_CR_UF | 0x0200, SV_RR_CR_UF)))).toEqual([['00:01.0'], ['01:00.0']]);
    expect(stepOf(run(rp(SV_RR_CR_UF | ENH, SV_RR_CR_UF)), '01:00.0').text).toContain('DSP_MT_RR is not enabled');
    // Mainline never looks at the Enhanced bits.
    expect(parts(run(rp(SV_RR_CR_UF | ENH, SV_RR_CR_UF), '', 'linux'))).toEqual([['00:01.0'], ['01:00.0']]);
  });

  it('splits the switch verdict on USP_MT_RR: DSP peers only, or the USP as well', () => {
    const enhanced = (ctl: number) => switchHost('full', { cap: SV_RR_CR_UF | ENH, ctl });
    const dspOff = run(enhanced(SV_RR_CR_UF | PCI_ACS_USP_MT_RR));
    expect(parts(dspOff)).toEqual([['00:01.0'], ['01:00.0'], ['02:01.0', '02:02.0', '03:00.0', '04:00.0']]);
    expect(stepOf(dspOff, '02:02.0').text).toContain('DSP_MT_RR is not enabled');
    expect(parts(run(enhanced(SV_RR_CR_UF | PCI_ACS_DSP_MT_RR)))).toEqual([['00:01.0'], ['01:00.0', '02:01.0', '02:02.0', '03:00.0', '04:00.0']]);
    expect(parts(run(enhanced(SV_RR_CR_UF | PCI_ACS_DSP_MT_RR | PCI_ACS_USP_MT_RR))).every((g) => g.length === 1)).toBe(true);
  });
});

describe('proposed-2025: root ports', () => {
  it('assumes a root port without an ACS capability has no loopback: it and its devices get their own groups (v3 change)', () => {
    const spec = host([rootPort('00:01.0', 1, 1, 'none'), endpoint('01:00.0', { multifunction: false }), rootPort('00:02.0', 2, 2), endpoint('02:00.0')]);
    const r = run(spec);
    expect(parts(r)).toEqual([['00:01.0'], ['00:02.0'], ['01:00.0'], ['02:00.0']]);
    expect(stepOf(r, '01:00.0').text).toBe('01:00.0 gets its own group: root port 00:01.0 has no ACS capability, so it is assumed to have no internal loopback');
    expect(parts(run(spec, '', 'linux'))).toEqual([['00:01.0', '01:00.0'], ['00:02.0'], ['02:00.0']]);
  });

  it('pulls the whole subtree into the port\'s group when its ACS fails, as mainline does', () => {
    const spec = host([
      rootPort('00:01.0', 1, 4, 'full', { id: '1d1d:0ff0' }), upstreamPort('01:00.0', 2, 4),
      downstreamPort('02:01.0', 3, 3), downstreamPort('02:02.0', 4, 4), endpoint('03:00.0'), endpoint('04:00.0'),
    ]);
    const cmd = 'pci=disable_acs_redir=pci:1d1d:0ff0';
    const r = run(spec, cmd);
    expect(parts(r)).toEqual([['00:01.0', '01:00.0', '02:01.0', '02:02.0', '03:00.0', '04:00.0']]);
    expect(parts(run(spec, cmd, 'linux'))).toEqual(parts(r));
    expect(stepOf(r, '01:00.0').text).toBe('01:00.0 joins 00:01.0\'s group: root port 00:01.0 has ACS but RR CR are not enabled, so it does not isolate the devices below it');
    expect(stepOf(r, '03:00.0').text).toContain('everything below root port 00:01.0 shares its group');
    expect(groupWith(r, '00:01.0').nonIsolated).toBe(true);
  });
});

describe('proposed-2025: multifunction devices (§8.4 case 2 and the v3 loopback rule)', () => {
  // 00:1f.x: functions with an ACS capability; .0 and .2 get RR/CR turned off, .6 keeps them.
  const mfd = (extra: FunctionSpecInput[] = []) => host([
    endpoint('00:1f.0', { id: '1d1d:0ff0', acs: { cap: [...ISO], ctl: [...ISO] } }),
    endpoint('00:1f.2', { id: '1d1d:0ff0', acs: { cap: [...ISO], ctl: [...ISO] } }),
    endpoint('00:1f.6', { id: '1d1d:0006', acs: { cap: [...ISO], ctl: [...ISO] } }),
    ...extra,
  ]);
  const OFF = 'pci=disable_acs_redir=pci:1d1d:0ff0';

  it('groups every function of a device with asymmetric ACS: ACS is egress control', () => {
    const r = run(mfd(), OFF);
    expect(parts(r)).toEqual([['00:1f.0', '00:1f.2', '00:1f.6']]);
    expect(r.groups[0]?.nonIsolated).toBe(true);
    expect(stepOf(r, '00:1f.6').rule).toBe('function-group');
    expect(stepOf(r, '00:1f.6').text).toBe('00:1f.6 joins 00:1f.0\'s group: function 00:1f.0 has ACS but RR CR are not enabled, so it can reach the other functions of 00:1f');
    expect(parts(run(mfd(), OFF, 'linux'))).toEqual([['00:1f.0', '00:1f.2'], ['00:1f.6']]);
  });

  it('keeps functions whose ACS isolates apart', () => {
    expect(parts(run(mfd()))).toEqual([['00:1f.0'], ['00:1f.2'], ['00:1f.6']]);
  });

  it('propagates a function group below a function that is a bridge', () => {
    const spec = host([
      rootPort('00:1c.0', 1, 1, 'full', { id: '1d1d:0ff0' }), rootPort('00:1c.1', 2, 2, 'none'),
      endpoint('01:00.0'), endpoint('02:00.0'),
    ]);
    const r = run(spec, OFF);
    expect(parts(r)).toEqual([['00:1c.0', '00:1c.1', '01:00.0', '02:00.0']]);
    expect(stepOf(r, '02:00.0').text).toContain('everything below 00:1c.0, 00:1c.1 shares the group too');
    // Mainline: 00:1c.1 (no ACS) pulls its subtree in; the slot's non-isolated functions group.
    expect(parts(run(spec, OFF, 'linux'))).toEqual([['00:1c.0', '00:1c.1', '01:00.0', '02:00.0']]);
  });

  it('splits PCIe functions without an ACS capability (assumed to have no internal loopback; v3 change)', () => {
    const spec = host([rootPort('00:01.0', 1, 1), endpoint('01:00.0'), endpoint('01:00.1'), endpoint('01:00.2')]);
    const r = run(spec);
    expect(parts(r)).toEqual([['00:01.0'], ['01:00.0'], ['01:00.1'], ['01:00.2']]);
    expect(stepOf(r, '01:00.1').text).toContain('it lacks ACS, so it is assumed to have no internal loopback to its sibling functions');
    expect(parts(run(spec, '', 'linux'))).toEqual([['00:01.0'], ['01:00.0', '01:00.1', '01:00.2']]);
  });

  it('splits conventional PCI functions on the root bus too (they have no ACS capability)', () => {
    const spec = host([pciDevice('00:1f.0'), pciDevice('00:1f.3'), pciDevice('00:1f.4')]);
    expect(parts(run(spec))).toEqual([['00:1f.0'], ['00:1f.3'], ['00:1f.4']]);
    expect(parts(run(spec, '', 'linux'))).toEqual([['00:1f.0', '00:1f.3', '00:1f.4']]);
  });

  it('groups functions that disagree on the multifunction bit, to be safe', () => {
    const spec = host([rootPort('00:01.0', 1, 1), endpoint('01:00.0', { multifunction: true }), endpoint('01:00.1', { multifunction: false })]);
    const r = run(spec);
    expect(parts(r)).toEqual([['00:01.0'], ['01:00.0', '01:00.1']]);
    expect(stepOf(r, '01:00.1').text).toContain('disagree on being multifunction');
  });

  it('groups same-bus DMA aliases through the reachable set (rule dma-alias)', () => {
    const spec = { ...host([rootPort('00:01.0', 1, 1), endpoint('01:00.0'), endpoint('01:00.1'), endpoint('01:00.2')]), platform: { iommu: 'amd' as const, firmwareAliases: [['01:00.2', '01:00.0']] as [string, string][] } };
    const r = run(spec);
    expect(parts(r)).toEqual([['00:01.0'], ['01:00.0', '01:00.2'], ['01:00.1']]);
    expect(stepOf(r, '01:00.2').rule).toBe('dma-alias');
    expect(stepOf(r, '01:00.2').text).toBe('01:00.2 joins 01:00.0\'s group: 01:00.2 issues DMA as 01:00.0');
    expect(groupWith(r, '01:00.0').nonIsolated).toBe(true);
  });
});

describe('proposed-2025: PCIe-to-PCI bridges (§8.4 case 3)', () => {
  const behind = (bridgeExtra: Partial<FunctionSpecInput>) => host([
    rootPort('00:01.0', 1, 3), pcieToPci('01:00.0', 2, 3, bridgeExtra),
    pciDevice('02:01.0'), pciDevice('02:02.0'),
    { address: '02:03.0', id: '1d1d:0b0b', class: '0604', bridge: { secondary: 3, subordinate: 3 } }, pciDevice('03:04.0'),
  ]);

  it('leaves a bridge without an MMIO BAR out of the group of the conventional bus behind it', () => {
    const r = run(behind({}));
    expect(parts(r)).toEqual([['00:01.0'], ['01:00.0'], ['02:01.0', '02:02.0', '02:03.0', '03:04.0']]);
    expect(groupWith(r, '02:01.0').nonIsolated).toBe(true);
    expect(stepOf(r, '02:01.0').text).toContain('the bridge has no MMIO BAR and keeps its own requester ID');
    expect(stepOf(r, '03:04.0').text).toMatch(/^03:04.0 joins 02:03.0's group: conventional PCI bus 02 .*so everything on bus 02 and below shares one group$/);
    expect(parts(run(behind({}), '', 'linux'))).toEqual([['00:01.0'], ['01:00.0', '02:01.0', '02:02.0', '02:03.0', '03:04.0']]);
  });

  it('puts a bridge with an MMIO BAR in the group (its MMIO is reachable from below)', () => {
    for (const bar of [{ index: 0, size: '16K' }, { index: 0, type: 'mem64', size: '8G' }] as const) {
      const r = run(behind({ bars: [bar] }));
      expect(parts(r)).toEqual([['00:01.0'], ['01:00.0', '02:01.0', '02:02.0', '02:03.0', '03:04.0']]);
      expect(stepOf(r, '02:01.0').text).toContain('has an MMIO BAR');
    }
  });

  it('does not count an I/O BAR as MMIO', () => {
    const booted = bootHost(behind({ bars: [{ index: 1, type: 'io', size: 256 }] }));
    expect(hasMmio(booted.host.topology.get('01:00.0')!)).toBe(false);
    expect(parts(computeGroups(booted, P))).toEqual([['00:01.0'], ['01:00.0'], ['02:01.0', '02:02.0', '02:03.0', '03:04.0']]);
  });

  it('treats a conventional bridge that a quirk flags PCIE_BRIDGE_ALIAS like a PCIe-to-PCI bridge', () => {
    const under = (id: string) => host([rootPort('00:01.0', 1, 2), { address: '01:00.0', id, class: '0604', bridge: { secondary: 2, subordinate: 2 } }, pciDevice('02:01.0'), pciDevice('02:02.0')]);
    // ASMedia 1b21:1080 gets quirk_use_pcie_bridge_dma_alias: its bus aliases to 02:00.0, the bridge stays apart.
    expect(parts(run(under('1b21:1080')))).toEqual([['00:01.0'], ['01:00.0'], ['02:01.0', '02:02.0']]);
    expect(parts(run(under('1d1d:0b0b')))).toEqual([['00:01.0'], ['01:00.0', '02:01.0', '02:02.0']]);
  });

  it('groups a conventional PCI bridge with everything behind it, as mainline does', () => {
    const spec = host([{ address: '00:1e.0', id: '1d1d:0b0b', class: '0604', bridge: { secondary: 5, subordinate: 5 } }, pciDevice('05:00.0'), pciDevice('05:01.0')]);
    expect(parts(run(spec))).toEqual([['00:1e.0', '05:00.0', '05:01.0']]);
    expect(parts(run(spec, '', 'linux'))).toEqual(parts(run(spec)));
  });
});

describe('proposed-2025: SR-IOV virtual functions', () => {
  const sriov = (vfOffset: number, rpAcs: 'full' | 'none' = 'full', id = '1d1d:0001') => host([
    rootPort('00:01.0', 1, 2, rpAcs, { id }),
    endpoint('01:00.0', { acs: { cap: [...ISO], ctl: [...ISO] }, sriov: { totalVfs: 4, numVfs: 2, vfOffset, vfStride: 1, vfDevice: '10ca' } }),
  ]);

  it('gives VFs on the PF\'s bus their own groups', () => {
    const r = run(sriov(0x80));
    expect(parts(r)).toEqual([['00:01.0'], ['01:00.0'], ['01:10.0'], ['01:10.1']]);
  });

  it('judges VFs on a virtual bus by their PF\'s bus', () => {
    // vfOffset 0x100 puts the VFs on bus 02, which has no bridge: they are judged on bus 01.
    const r = run(sriov(0x100));
    expect(r.booted.host.topology.get('02:00.0')?.bus.self).toBeNull();
    expect(parts(r)).toEqual([['00:01.0'], ['01:00.0'], ['02:00.0'], ['02:00.1']]);
    const captured = run(sriov(0x100, 'full', '1d1d:0ff0'), 'pci=disable_acs_redir=pci:1d1d:0ff0');
    expect(parts(captured)).toEqual([['00:01.0', '01:00.0', '02:00.0', '02:00.1']]);
    expect(stepOf(captured, '02:00.1').text).toContain('as SR-IOV virtual function of 01:00.0, it is judged on its PF\'s bus 01');
  });

  it('never puts a VF in its PF\'s function group', () => {
    const spec = host([
      rootPort('00:01.0', 1, 1),
      endpoint('01:00.0', { id: '1d1d:0ff0', acs: { cap: [...ISO], ctl: [...ISO] }, sriov: { totalVfs: 2, numVfs: 2, vfOffset: 2, vfStride: 1, vfDevice: '10ca' } }),
      endpoint('01:00.1', { id: '1d1d:0ff0', acs: { cap: [...ISO], ctl: [...ISO] } }),
    ]);
    expect(parts(run(spec, 'pci=disable_acs_redir=pci:1d1d:0ff0'))).toEqual([['00:01.0'], ['01:00.0', '01:00.1'], ['01:00.2'], ['01:00.3']]);
  });
});

describe('proposed-2025: probe ordering (§8.4 case 4) and deferral', () => {
  // An Intel DMAR unit scoped to the endpoint alone registers first, so the endpoint probes before its root port.
  const early = (rpAcs: 'full' | 'none', uncovered?: string[]): HostSpecInput => ({
    ...host([rootPort('00:01.0', 1, 1, rpAcs, { id: '1d1d:0ff0' }), endpoint('01:00.0'), endpoint('00:02.0', { id: '1d1d:0002' })]),
    platform: { iommu: 'intel', dmarUnits: [{ scope: ['01:00.0'] }, { includeAll: true }], firmwareAliases: [], ...(uncovered === undefined ? {} : { uncovered }) },
  });

  it('defers a device probed before its upstream bridge and retries it after the pass', () => {
    const booted = bootHost(early('full'), 'pci=disable_acs_redir=pci:1d1d:0ff0');
    const plan = planProbe(booted);
    expect(plan.order.map((d) => d.shortBdf)).toEqual(['01:00.0', '00:01.0', '00:02.0']);
    const table = new GroupTable();
    const report = groupProposed2025(plan.order, table, acsContextOf(booted));
    expect(report.deferred.map((d) => [d.device.shortBdf, d.waitedFor.shortBdf, d.placedInRound])).toEqual([['01:00.0', '00:01.0', 1]]);
    expect(report.unresolved).toEqual([]);
    expect(table.groups().map((g) => [g.id, g.devices.map((d) => d.shortBdf)])).toEqual([[0, ['00:01.0', '01:00.0']], [1, ['00:02.0']]]);
    const step = table.groups()[0]?.steps[1];
    expect(step?.text).toMatch(/ \(probed late: it waited for 00:01.0, which had no group yet\)$/);
    // Mainline silently forms the narrower group: the endpoint probed first keeps a group of its own.
    expect(parts(computeGroups(booted, 'linux'))).toEqual([['00:01.0'], ['00:02.0'], ['01:00.0']]);
  });

  it('leaves a device without a group when its upstream bridge never gets one', () => {
    const booted = bootHost(early('full', ['00:01.0']));
    const plan = planProbe(booted);
    const table = new GroupTable();
    const report = groupProposed2025(plan.order, table, acsContextOf(booted));
    expect(report.unresolved.map((u) => u.device.shortBdf)).toEqual(['01:00.0']);
    expect(report.unresolved[0]?.reason).toContain('00:01.0 never got one');
    expect(parts(computeGroups(booted, P))).toEqual([['00:02.0']]);
  });
});

// --- Properties on random topologies -------------------------------------------------------------

/** ACS setups a port or function may have. 'off': capability present, RR/CR cleared by disable_acs_redir. */
type Acs = 'full' | 'off' | 'none' | 'enh-ok' | 'enh-no-dsp' | 'enh-no-usp';
type Node =
  | { kind: 'ep' }
  | { kind: 'mfd'; fns: Acs[] }
  | { kind: 'switch'; dsps: Array<{ acs: Acs; child: Node | null }> }
  | { kind: 'p2p'; mmio: boolean; n: number; pciBridge: boolean };
type RootItem = { kind: 'rp'; fns: Array<{ acs: Acs; child: Node | null }> } | { kind: 'mfd'; fns: Acs[] } | { kind: 'ep' } | { kind: 'pci' };

const acsArb = fc.constantFrom<Acs>('full', 'off', 'none', 'enh-ok', 'enh-no-dsp', 'enh-no-usp');
const nodeArb = (depth: number): fc.Arbitrary<Node> => {
  const leaves: fc.Arbitrary<Node>[] = [
    fc.constant<Node>({ kind: 'ep' }),
    fc.array(fc.constantFrom<Acs>('full', 'off', 'none'), { minLength: 2, maxLength: 3 }).map((fns): Node => ({ kind: 'mfd', fns })),
    fc.record({ mmio: fc.boolean(), n: fc.integer({ min: 1, max: 2 }), pciBridge: fc.boolean() }).map((r): Node => ({ kind: 'p2p', ...r })),
  ];
  if (depth <= 0) return fc.oneof(...leaves);
  const dsps = fc.array(fc.record({ acs: acsArb, child: fc.option(nodeArb(depth - 1), { nil: null }) }), { minLength: 1, maxLength: 3 });
  return fc.oneof(...leaves, dsps.map((d): Node => ({ kind: 'switch', dsps: d })));
};
const rootArb: fc.Arbitrary<RootItem[]> = fc.array(fc.oneof(
  fc.array(fc.record({ acs: acsArb, child: fc.option(nodeArb(2), { nil: null }) }), { minLength: 1, maxLength: 2 }).map((fns): RootItem => ({ kind: 'rp', fns })),
  fc.array(fc.constantFrom<Acs>('full', 'off', 'none'), { minLength: 2, maxLength: 3 }).map((fns): RootItem => ({ kind: 'mfd', fns })),
  fc.constant<RootItem>({ kind: 'ep' }),
  fc.constant<RootItem>({ kind: 'pci' }),
), { minLength: 1, maxLength: 4 });

const OFF_ID = '1d1d:0ff0';
/** ACS fields for a setup; `normalize` gives capability-less MFD functions and root ports an empty capability. */
function acsFields(acs: Acs, normalize: boolean): Partial<FunctionSpecInput> {
  switch (acs) {
    case 'full': return { acs: { cap: [...ISO], ctl: [...ISO] } };
    case 'off': return { id: OFF_ID, acs: { cap: [...ISO], ctl: [...ISO] } };
    case 'none': return normalize ? { acs: { cap: 0, ctl: 0 } } : {};
    case 'enh-ok': return { acs: { cap: 0x9d, ctl: 0xa1d } };
    case 'enh-no-dsp': return { acs: { cap: 0x9d, ctl: 0x81d } };
    case 'enh-no-usp': return { acs: { cap: 0x9d, ctl: 0x21d } };
  }
}

const hex2 = (n: number) => n.toString(16).padStart(2, '0');

/** Lay a random tree out as a host spec. `normalize` neutralises the documented v3 changes for mainline. */
function buildSpec(items: RootItem[], normalize: boolean): HostSpecInput {
  const fns: FunctionSpecInput[] = [];
  let nextBus = 1;
  const fn = (bus: number, slot: number, f: number) => `${hex2(bus)}:${hex2(slot)}.${f}`;
  const bridge = (sec: number, sub: number) => ({ secondary: sec, subordinate: sub });
  const ep = (address: string, extra: Partial<FunctionSpecInput> = {}): FunctionSpecInput => ({ address, id: '1d1d:0e00', class: '0200', express: { type: 'endpoint' }, ...extra });
  const placeNode = (node: Node | null, bus: number): void => {
    if (node === null) return;
    switch (node.kind) {
      case 'ep': fns.push(ep(fn(bus, 0, 0), { multifunction: false })); return;
      case 'mfd': node.fns.forEach((a, i) => fns.push(ep(fn(bus, 0, i), acsFields(a, normalize)))); return;
      case 'switch': {
        const usp = fns.push({ address: fn(bus, 0, 0), id: '1d1d:5000', class: '0604', bridge: bridge(0, 0), express: { type: 'upstream-port' } }) - 1;
        const internal = nextBus++;
        node.dsps.forEach((d, i) => {
          const at = fns.push({ address: fn(internal, i, 0), id: '1d1d:d500', class: '0604', bridge: bridge(0, 0), express: { type: 'downstream-port' }, ...acsFields(d.acs, false), multifunction: false }) - 1;
          const sec = nextBus++;
          placeNode(d.child, sec);
          fns[at] = { ...fns[at]!, bridge: bridge(sec, nextBus - 1) };
        });
        fns[usp] = { ...fns[usp]!, bridge: bridge(internal, nextBus - 1) };
        return;
      }
      case 'p2p': {
        const at = fns.push({ address: fn(bus, 0, 0), id: '1d1d:b200', class: '0604', bridge: bridge(0, 0), express: { type: 'pcie-to-pci-bridge' }, bars: node.mmio ? [{ index: 0, size: '4K' }] : [] }) - 1;
        const sec = nextBus++;
        for (let i = 1; i <= node.n; i++) fns.push({ address: fn(sec, i, 0), id: '1d1d:c000', class: '0100', multifunction: false });
        if (node.pciBridge) {
          const below = nextBus++;
          fns.push({ address: fn(sec, 8, 0), id: '1d1d:b100', class: '0604', bridge: bridge(below, below), multifunction: false });
          fns.push({ address: fn(below, 0, 0), id: '1d1d:c000', class: '0100', multifunction: false });
        }
        fns[at] = { ...fns[at]!, bridge: bridge(sec, nextBus - 1) };
        return;
      }
    }
  };
  items.forEach((item, i) => {
    const slot = i + 1;
    switch (item.kind) {
      case 'ep': fns.push(ep(fn(0, slot, 0), { multifunction: false })); break;
      case 'pci': fns.push({ address: fn(0, slot, 0), id: '1d1d:c000', class: '0100', multifunction: false }); break;
      case 'mfd': item.fns.forEach((a, f) => fns.push(ep(fn(0, slot, f), acsFields(a, normalize)))); break;
      case 'rp': item.fns.forEach((p, f) => {
        const at = fns.push({ address: fn(0, slot, f), id: '1d1d:7000', class: '0604', bridge: bridge(0, 0), express: { type: 'root-port' }, ...acsFields(p.acs, normalize) }) - 1;
        const sec = nextBus++;
        placeNode(p.child, sec);
        fns[at] = { ...fns[at]!, bridge: bridge(sec, nextBus - 1) };
      });
    }
  });
  return { name: 'random', platform: { iommu: 'arm-smmu', firmwareAliases: [] }, functions: fns };
}
const CMD = `pci=disable_acs_redir=pci:${OFF_ID}`;
const boot = (items: RootItem[], normalize: boolean): BootedHost => bootHost(buildSpec(items, normalize), CMD);
const byBdf = (r: GroupingRun) => new Map(r.groups.flatMap((g) => g.devices.map((d) => [d.shortBdf, g.id] as const)));

/** A PCIe-to-PCI bridge without MMIO and a device below it: the one place v3 separates what mainline joins by alias. */
function splitFromNoMmioBridge(r: GroupingRun, a: string, b: string): boolean {
  const topo = r.booted.host.topology;
  const below = (bridge: PciDev, d: PciDev) => d.busNumber >= bridge.secondaryBus() && d.busNumber <= bridge.subordinateBus();
  const isBare = (d: PciDev) => d.isPcie() && d.pcieType() === 0x7 && !hasMmio(d);
  const da = topo.get(a)!;
  const db = topo.get(b)!;
  return (isBare(da) && below(da, db)) || (isBare(db) && below(db, da));
}

describe('proposed-2025: properties on random topologies', () => {
  it('partitions the covered devices; non-isolated buses and flagged groups capture what is below them', () => {
    fc.assert(fc.property(rootArb, (items) => {
      const booted = boot(items, false);
      const r = computeGroups(booted, P);
      const all = booted.host.topology.devices().map((d) => d.shortBdf).sort();
      const members = r.groups.flatMap((g) => g.devices.map((d) => d.shortBdf)).sort();
      expect(members).toEqual(all); // every device exactly once
      const ctx = acsContextOf(booted);
      for (const d of booted.host.topology.devices()) {
        const bus = (d.physfn ?? d).bus;
        const up = bus.self;
        if (up === null) continue;
        const g = r.groupOf(d);
        // Below a group that captures its subtree, every device is in that group.
        if (r.groupOf(up)?.nonIsolated === true) expect(g).toBe(r.groupOf(up));
        // A non-isolated bus: its devices share one group (with the bridge, unless only peers are exposed).
        const kind = busIsolated(bus, ctx).kind;
        if (kind !== 'PCIE_ISOLATED') {
          for (const peer of bus.devices) expect(r.groupOf(peer)).toBe(g);
          if (kind === 'PCIE_NON_ISOLATED' || kind === 'PCI_BRIDGE_NON_ISOLATED') expect(g).toBe(r.groupOf(up));
          expect(g?.nonIsolated).toBe(true);
        }
      }
    }), { numRuns: 300 });
  });

  it('only ever widens mainline\'s groups, apart from the documented v3 changes', () => {
    // Documented changes: (1) an MFD function without an ACS capability has no loopback; (2) a root port
    // without one is isolated; (3) a PCIe-to-PCI bridge without MMIO is not grouped with its bus. (1) and
    // (2) are neutralised for mainline by giving those functions an empty ACS capability (nothing to
    // enable: mainline then calls them isolated, v3 already does); (3) is excepted pairwise.
    fc.assert(fc.property(rootArb, (items) => {
      const proposed = computeGroups(boot(items, false), P);
      const mainline = computeGroups(boot(items, true), 'linux');
      const pg = byBdf(proposed);
      for (const g of mainline.groups) {
        for (const a of g.devices) {
          for (const b of g.devices) {
            if (a === b || pg.get(a.shortBdf) === pg.get(b.shortBdf)) continue;
            expect(splitFromNoMmioBridge(proposed, a.shortBdf, b.shortBdf), `mainline groups ${a.shortBdf} with ${b.shortBdf}, proposed does not`).toBe(true);
          }
        }
      }
    }), { numRuns: 300 });
  });

  it('treats an empty ACS capability on MFD functions and root ports exactly like none (v3)', () => {
    fc.assert(fc.property(rootArb, (items) => {
      expect(parts(computeGroups(boot(items, true), P))).toEqual(parts(computeGroups(boot(items, false), P)));
    }), { numRuns: 200 });
  });
});
