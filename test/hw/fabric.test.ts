import { describe, expect, it } from 'vitest';
import { AddressMap, readMemBars } from '../../src/hw/fabric/address-map.ts';
import { Fabric, type Route } from '../../src/hw/fabric/fabric.ts';
import { requesterIdOf } from '../../src/hw/fabric/requester-id.ts';
import { bootHost } from '../../src/pci/boot.ts';
import { PCI_ACS_CTRL, PCI_ACS_EC, PCI_ACS_RR, PCI_ACS_UF } from '../../src/pci/regs.ts';
import type { FunctionSpecInput, HostSpecInput } from '../../src/pci/spec.ts';
import { downstreamPort, endpoint, host, pciDevice, rootPort, upstreamPort } from '../support/spec-helpers.ts';

// Routing of untranslated memory requests through the PCI hierarchy: ACS at switch ports and inside
// multifunction devices, conventional PCI buses, root ports, and the requester ID at the root complex.

const bar = (base: number, size = '16K', extra: object = {}): FunctionSpecInput['bars'] => [{ index: 0, type: 'mem32', base, size, ...extra }];

/** Root port 00:01.0 -> switch 01:00.0 -> DSPs 02:01.0 (bus 3) and 02:02.0 (bus 4), an endpoint below each. */
function switchHost(dsp1: 'full' | 'none' | 'off', dsp2: 'full' | 'none' | 'off' = 'full', extra: { usp?: Partial<FunctionSpecInput>; dsp1?: Partial<FunctionSpecInput> } = {}): HostSpecInput {
  return host([
    rootPort('00:01.0', 1, 4),
    upstreamPort('01:00.0', 2, 4, extra.usp ?? {}),
    downstreamPort('02:01.0', 3, 3, dsp1, extra.dsp1 ?? {}),
    downstreamPort('02:02.0', 4, 4, dsp2),
    endpoint('03:00.0', { bars: bar(0xa000_0000) }),
    endpoint('04:00.0', { bars: bar(0xa010_0000) }),
  ]);
}

function setup(spec: HostSpecInput, cmdline = '', mfdLoopbackWithoutAcs = true) {
  const booted = bootHost(spec, cmdline);
  const fabric = new Fabric(booted.host, { mfdLoopbackWithoutAcs });
  const dev = (bdf: string) => {
    const d = booted.host.topology.get(bdf);
    if (d === undefined) throw new Error(`no ${bdf}`);
    return d;
  };
  const route = (from: string, address: number): Route => fabric.route(dev(from), address);
  return { booted, fabric, dev, route };
}

describe('switch downstream ports', () => {
  it('ACS P2P Request Redirect on the ingress port sends a peer request upstream to the IOMMU', () => {
    const { route } = setup(switchHost('full'));
    const r = route('03:00.0', 0xa010_0010);
    expect(r.kind).toBe('upstream');
    if (r.kind !== 'upstream') return;
    expect(r.rid).toBe(0x0300);
    expect(r.rootPort?.shortBdf).toBe('00:01.0');
    expect(r.why).toContain('switch downstream port 02:01.0 has ACS with RR enabled, so the request for 04:00.0\'s BAR 0 is redirected upstream');
  });

  it('without ACS on the ingress port the request is routed inside the switch, untranslated', () => {
    const { route } = setup(switchHost('none'));
    const r = route('03:00.0', 0xa010_0010);
    expect(r).toMatchObject({ kind: 'p2p', bar: 0, offset: 0x10, mechanism: 'switch' });
    if (r.kind !== 'p2p') return;
    expect(r.target.shortBdf).toBe('04:00.0');
    expect(r.at.shortBdf).toBe('02:01.0');
    expect(r.why).toBe('switch downstream port 02:01.0 has no ACS: the request for 04:00.0\'s BAR 0 is routed inside the switch, untranslated');
    // The other direction enters through 02:02.0, which redirects: ACS is ingress control.
    expect(route('04:00.0', 0xa000_0000).kind).toBe('upstream');
  });

  it('reads ACS Control from config space as it is now, not as boot left it', () => {
    const { route, dev } = setup(switchHost('full'));
    expect(route('03:00.0', 0xa010_0000).kind).toBe('upstream');
    const dsp = dev('02:01.0');
    dsp.config.write16(dsp.acsCap + PCI_ACS_CTRL, dsp.acsCtrlReg() & ~PCI_ACS_RR);
    expect(route('03:00.0', 0xa010_0000)).toMatchObject({ kind: 'p2p', mechanism: 'switch' });
  });

  it('pci=disable_acs_redir leaves RR off after boot, so peers reach each other', () => {
    const { route } = setup(switchHost('full'), 'pci=disable_acs_redir=pci:10b5:8747');
    expect(route('03:00.0', 0xa010_0000)).toMatchObject({ kind: 'p2p', mechanism: 'switch' });
  });

  it('a capability that does not implement RR means no peer path (hard-wired, as Linux reads it)', () => {
    const spec = switchHost('full', 'full', { dsp1: { acs: { cap: ['SV'], ctl: ['SV'] } } });
    const { route } = setup(spec);
    expect(route('03:00.0', 0xa010_0000).kind).toBe('upstream');
  });

  it('Egress Control blocks a peer request; RR takes precedence over it', () => {
    const withEc = switchHost('full', 'full', { dsp1: { acs: { cap: ['SV', 'RR', 'CR', 'UF', 'EC'], ctl: ['EC'] } } });
    const { route, dev } = setup(withEc);
    const dsp = dev('02:01.0');
    // Boot enabled SV RR CR UF on top of the firmware's EC; software turns RR off again.
    expect(dsp.acsCtrlReg() & (PCI_ACS_RR | PCI_ACS_EC)).toBe(PCI_ACS_RR | PCI_ACS_EC);
    dsp.config.write16(dsp.acsCap + PCI_ACS_CTRL, dsp.acsCtrlReg() & ~PCI_ACS_RR);
    const blocked = route('03:00.0', 0xa010_0000);
    expect(blocked.kind).toBe('blocked');
    expect(blocked.why).toBe('switch downstream port 02:01.0 has ACS with RR not enabled, EC enabled: Egress Control blocks the request for 04:00.0\'s BAR 0');
    dsp.config.write16(dsp.acsCap + PCI_ACS_CTRL, PCI_ACS_RR | PCI_ACS_EC);
    expect(route('03:00.0', 0xa010_0000).kind).toBe('upstream');
    // Requests that leave the switch are not peer requests: EC does not touch them.
    expect(route('03:00.0', 0xb000_0000).kind).toBe('upstream');
  });

  it('EC is ignored where the capability does not implement it (config_acs cannot set a hard-wired 0)', () => {
    const { route, dev } = setup(switchHost('full'));
    const dsp = dev('02:01.0');
    dsp.config.write16(dsp.acsCap + PCI_ACS_CTRL, PCI_ACS_EC);
    expect(route('03:00.0', 0xa010_0000)).toMatchObject({ kind: 'p2p' });
  });

  it('the upstream port\'s own BAR is a peer target: reachable when RR is off, redirected when on', () => {
    const usp = { bars: bar(0x9f00_0000, '256K') };
    expect(setup(switchHost('none', 'full', { usp })).route('03:00.0', 0x9f00_0100)).toMatchObject({ kind: 'p2p', mechanism: 'switch', offset: 0x100 });
    expect(setup(switchHost('full', 'full', { usp })).route('03:00.0', 0x9f00_0100).kind).toBe('upstream');
  });

  it('a downstream port\'s own BAR is a peer target on the internal bus', () => {
    const spec = switchHost('none', 'full', {});
    const fns = spec.functions;
    fns[3] = { ...fns[3]!, bars: bar(0x9e00_0000) };
    const r = setup(spec).route('03:00.0', 0x9e00_0000);
    expect(r).toMatchObject({ kind: 'p2p', mechanism: 'switch' });
    if (r.kind === 'p2p') expect(r.target.shortBdf).toBe('02:02.0');
  });

  it('an address in another port\'s window that no BAR decodes ends as an Unsupported Request below it', () => {
    const spec = switchHost('none');
    spec.functions.push(endpoint('04:00.1', { bars: bar(0xa020_0000) }));
    const r = setup(spec).route('03:00.0', 0xa015_0000);
    expect(r.kind).toBe('blocked');
    expect(r.why).toContain('no function below 02:02.0 decodes 0xa0150000 (inside its window): Unsupported Request');
  });

  it('a request for an address below its own port turns back down without Upstream Forwarding, goes up with it', () => {
    // Two functions of one device below 02:01.0; fn 0 redirects (ACS RR) so its request leaves the device.
    const mfd = (acs: 'full' | 'none'): HostSpecInput => {
      const spec = switchHost(acs);
      spec.functions.splice(4, 1,
        endpoint('03:00.0', { bars: bar(0xa000_0000), acs: { cap: ['SV', 'RR', 'CR', 'UF'], ctl: ['SV', 'RR', 'CR', 'UF'] } }),
        endpoint('03:00.1', { bars: bar(0xa000_4000) }));
      return spec;
    };
    const loop = setup(mfd('none')).route('03:00.0', 0xa000_4000);
    expect(loop).toMatchObject({ kind: 'p2p', mechanism: 'port-loopback' });
    expect(loop.why).toContain('no Upstream Forwarding: the request for 03:00.1\'s BAR 0 is routed back down its link');
    const { route, dev } = setup(mfd('full'));
    expect(route('03:00.0', 0xa000_4000).kind).toBe('upstream');
    const dsp = dev('02:01.0');
    dsp.config.write16(dsp.acsCap + PCI_ACS_CTRL, dsp.acsCtrlReg() & ~PCI_ACS_UF);
    expect(route('03:00.0', 0xa000_4000)).toMatchObject({ kind: 'p2p', mechanism: 'port-loopback' });
  });

  it('a request redirected out of an inner switch turns around at an outer port without ACS', () => {
    const spec = host([
      rootPort('00:01.0', 1, 7),
      upstreamPort('01:00.0', 2, 7),
      downstreamPort('02:01.0', 3, 7, 'none'),
      upstreamPort('03:00.0', 4, 6),
      downstreamPort('04:01.0', 5, 5, 'full'),
      downstreamPort('04:02.0', 6, 6, 'full'),
      endpoint('05:00.0', { bars: bar(0xa000_0000) }),
      endpoint('06:00.0', { bars: bar(0xa010_0000) }),
    ]);
    const r = setup(spec).route('05:00.0', 0xa010_0000);
    expect(r).toMatchObject({ kind: 'p2p', mechanism: 'port-loopback' });
    if (r.kind === 'p2p') expect([r.at.shortBdf, r.target.shortBdf]).toEqual(['02:01.0', '06:00.0']);
  });
});

describe('multifunction devices', () => {
  const mfd = (fn0: FunctionSpecInput['acs'], fn1: FunctionSpecInput['acs']): HostSpecInput => host([
    rootPort('00:01.0', 1, 1),
    endpoint('01:00.0', { bars: bar(0xa000_0000), acs: fn0 }),
    endpoint('01:00.1', { bars: bar(0xa000_4000), acs: fn1 }),
  ]);
  const isolated = { cap: ['SV', 'RR', 'CR', 'UF'] as const, ctl: ['SV', 'RR', 'CR', 'UF'] as const };

  it('a function without ACS reaches its siblings inside the device, untranslated', () => {
    const r = setup(mfd(undefined, undefined)).route('01:00.0', 0xa000_4000);
    expect(r).toMatchObject({ kind: 'p2p', mechanism: 'multifunction' });
    expect(r.why).toBe('01:00.0 has no ACS: the request for 01:00.1\'s BAR 0 is routed inside the multifunction device, untranslated');
  });

  it('asymmetric ACS: the function without it reaches the isolated one, not the other way round', () => {
    const { route } = setup(mfd(undefined, { cap: [...isolated.cap], ctl: [] }));
    expect(route('01:00.0', 0xa000_4000).kind).toBe('p2p');
    expect(route('01:00.1', 0xa000_0000).kind).toBe('upstream');
  });

  it('RR on the requesting function sends the request out to the root port and the IOMMU', () => {
    const r = setup(mfd({ cap: [...isolated.cap], ctl: [] }, undefined)).route('01:00.0', 0xa000_4000);
    expect(r.kind).toBe('upstream');
    expect(r.why).toContain('01:00.0 has ACS with RR enabled, so the request for 01:00.1\'s BAR 0 leaves the device');
    expect(r.why).toContain('root port 00:01.0 passes it to the root complex\'s IOMMU');
  });

  it('with mfdLoopbackWithoutAcs off, a function without ACS is taken to have no internal path (the PCIe r6 reading)', () => {
    expect(setup(mfd(undefined, undefined), '', false).route('01:00.0', 0xa000_4000).kind).toBe('upstream');
  });

  it('vendor ACS quirks for multifunction endpoints count as a redirect (Intel I350 has no internal peer path)', () => {
    const spec = host([
      rootPort('00:01.0', 1, 1),
      endpoint('01:00.0', { id: '8086:1521', bars: bar(0xa000_0000) }),
      endpoint('01:00.1', { id: '8086:1521', bars: bar(0xa000_4000) }),
    ]);
    const r = setup(spec).route('01:00.0', 0xa000_4000);
    expect(r.kind).toBe('upstream');
    expect(r.why).toContain('pci_quirk_mf_endpoint_acs');
  });

  it('SR-IOV VFs are not functions of the multifunction step: VF to PF goes up the link', () => {
    const spec = host([
      rootPort('00:01.0', 1, 1, 'full', { express: { type: 'root-port', ariForwarding: true } }),
      endpoint('01:00.0', { id: '8086:1572', bars: bar(0xa000_0000), sriov: { totalVfs: 4, numVfs: 2, vfOffset: 8, vfStride: 1, vfDevice: 0x154c } }),
    ]);
    const { route, booted } = setup(spec);
    const vf = booted.host.topology.devices().find((d) => d.isVirtfn());
    expect(vf?.shortBdf).toBe('01:01.0');
    const r = route('01:01.0', 0xa000_0000);
    expect(r.kind).toBe('upstream');
    if (r.kind === 'upstream') expect(r.rid).toBe(0x0108);
  });
});

describe('root ports and root buses', () => {
  it('root ports never turn a request around: peers below two root ports reach each other only through the IOMMU', () => {
    const spec = host([
      rootPort('00:01.0', 1, 1, 'none'), rootPort('00:02.0', 2, 2, 'none'),
      endpoint('01:00.0', { bars: bar(0xa000_0000) }), endpoint('02:00.0', { bars: bar(0xa100_0000) }),
      endpoint('01:01.0', { bars: bar(0xa000_4000) }),
    ]);
    const { route } = setup(spec);
    expect(route('01:00.0', 0xa100_0000).kind).toBe('upstream');
    const below = route('01:00.0', 0xa000_4000);
    expect(below.kind).toBe('upstream');
    expect(below.why).toContain('root ports do not turn requests around');
  });

  it('functions on a root bus reach each other only through the IOMMU (other slots)', () => {
    const spec = host([
      endpoint('00:02.0', { express: { type: 'rc-integrated-endpoint' }, bars: bar(0xa000_0000) }),
      endpoint('00:03.0', { express: { type: 'rc-integrated-endpoint' }, bars: bar(0xa100_0000) }),
    ]);
    const r = setup(spec).route('00:02.0', 0xa100_0000);
    expect(r.kind).toBe('upstream');
    expect(r.why).toContain('00:02.0 is on root bus 00: the root complex hands the request for 00:03.0\'s BAR 0 to the IOMMU as 00:02.0');
  });
});

describe('conventional PCI', () => {
  const legacy = (bridge: Partial<FunctionSpecInput>, bridgeExtra: Partial<FunctionSpecInput> = {}): HostSpecInput => host([
    rootPort('00:01.0', 1, 2),
    { address: '01:00.0', id: '12d8:e111', class: '0604', bridge: { secondary: 2, subordinate: 2 }, express: { type: 'pcie-to-pci-bridge' }, ...bridge, ...bridgeExtra },
    pciDevice('02:04.0', { bars: bar(0xa000_0000) }),
    pciDevice('02:05.0', { id: '9710:9865', bars: bar(0xa000_4000) }),
  ]);

  it('everything on a shared bus sees everything: a sibling claims the request, untranslated', () => {
    const r = setup(legacy({})).route('02:04.0', 0xa000_4000);
    expect(r).toMatchObject({ kind: 'p2p', mechanism: 'conventional-bus' });
    expect(r.why).toBe('conventional PCI bus 02 is shared, with no ACS: the request for 02:05.0\'s BAR 0 is claimed on it, untranslated');
  });

  it('upstream requests carry (secondary bus, 00.0): the PCIe-to-PCI bridge takes ownership', () => {
    const r = setup(legacy({})).route('02:04.0', 0x1000);
    expect(r.kind).toBe('upstream');
    if (r.kind === 'upstream') expect(r.rid).toBe(0x0200);
    expect(r.why).toContain('as 02:00.0 (taken over by PCIe-to-PCI bridge 01:00.0 (secondary bus, devfn 0))');
  });

  it('the bridge\'s own BAR is claimed as the request crosses it', () => {
    const r = setup(legacy({ bars: bar(0x9f00_0000, '4K') })).route('02:04.0', 0x9f00_0010);
    expect(r).toMatchObject({ kind: 'p2p', mechanism: 'bridge-bar', offset: 0x10 });
  });
});

describe('requester IDs at the root complex', () => {
  const rid = (spec: HostSpecInput, bdf: string) => {
    const d = bootHost(spec).host.topology.get(bdf);
    if (d === undefined) throw new Error(bdf);
    return requesterIdOf(d);
  };

  it('PCIe ports forward the ID untouched', () => {
    expect(rid(switchHost('full'), '03:00.0')).toMatchObject({ rid: 0x0300, rewrittenBy: null, why: 'its own ID' });
  });

  it('Marvell 88SE9123 function 0 issues its DMA as function 1 (quirk_dma_func1_alias; all of it, in the model)', () => {
    const spec = host([rootPort('00:01.0', 1, 1), endpoint('01:00.0', { id: '1b4b:9123' })]);
    expect(rid(spec, '01:00.0')).toMatchObject({ rid: 0x0101, text: '01:00.1' });
  });

  it('Ricoh function 2 uses function 0; function 0 of a func0-alias part keeps its own', () => {
    const spec = host([rootPort('00:01.0', 1, 1), endpoint('01:00.0', { id: '1180:e832' }), endpoint('01:00.2', { id: '1180:e832' })]);
    expect(rid(spec, '01:00.2').rid).toBe(0x0100);
    expect(rid(spec, '01:00.0').rid).toBe(0x0100);
  });

  it('Adaptec\'s fixed alias applies only with the matching subsystem', () => {
    const ep = (subsystem: string) => host([rootPort('00:01.0', 1, 1), endpoint('01:00.0', { id: '9005:0285', subsystem })]);
    expect(rid(ep('9005:02bb'), '01:00.0').rid).toBe(0x0108);
    expect(rid(ep('9005:0200'), '01:00.0').rid).toBe(0x0100);
  });

  it('a bridge without a PCIe capability whose ID says PCIe-to-PCI (ASMedia ASM1083) takes ownership', () => {
    const spec = host([
      rootPort('00:01.0', 1, 2),
      { address: '01:00.0', id: '1b21:1080', class: '0604', bridge: { secondary: 2, subordinate: 2 } },
      pciDevice('02:04.0'),
    ]);
    expect(rid(spec, '02:04.0')).toMatchObject({ rid: 0x0200 });
  });

  it('a conventional PCI-to-PCI bridge forwards with its own ID; an outer PCIe-to-PCI bridge then takes over', () => {
    const inner = host([
      rootPort('00:01.0', 1, 2),
      { address: '01:00.0', id: '104c:ac28', class: '0604', bridge: { secondary: 2, subordinate: 2 } },
      pciDevice('02:04.0'),
    ]);
    expect(rid(inner, '02:04.0')).toMatchObject({ rid: 0x0100, text: '01:00.0' });
    const nested = host([
      rootPort('00:01.0', 1, 3),
      { address: '01:00.0', id: '12d8:e111', class: '0604', bridge: { secondary: 2, subordinate: 3 }, express: { type: 'pcie-to-pci-bridge' } },
      { address: '02:01.0', id: '104c:ac28', class: '0604', bridge: { secondary: 3, subordinate: 3 } },
      pciDevice('03:04.0'),
    ]);
    expect(rid(nested, '03:04.0')).toMatchObject({ rid: 0x0200, text: '02:00.0' });
  });
});

describe('address decoding', () => {
  it('reads BARs from config space (64-bit bases, unassigned BARs skipped) and derives bridge windows as spans', () => {
    const spec = host([
      rootPort('00:01.0', 1, 2),
      endpoint('01:00.0', { bars: [
        { index: 0, type: 'mem64', base: 0x20_0000_0000, size: '8M', prefetchable: true },
        { index: 2, type: 'mem32', base: 0xa000_0000, size: '16K' },
        { index: 3, type: 'mem32', base: 0, size: '4K' },
        { index: 4, type: 'io', base: 0x1000, size: 32 },
      ] }),
      endpoint('01:01.0', { bars: bar(0xa010_0000, '1M') }),
    ]);
    const booted = bootHost(spec);
    const map = new AddressMap(booted.host.topology);
    const ep = booted.host.topology.get('01:00.0')!;
    expect(readMemBars(ep).map((b) => [b.index, b.start, b.size, b.prefetchable])).toEqual([
      [0, 0x20_0000_0000, 8 * 2 ** 20, true], [2, 0xa000_0000, 0x4000, false],
    ]);
    const rp = booted.host.topology.get('00:01.0')!;
    expect(map.windows(rp).map((w) => [w.kind, w.start, w.end])).toEqual([
      ['mem', 0xa000_0000, 0xa01f_ffff], ['pref', 0x20_0000_0000, 0x20_007f_ffff],
    ]);
    expect(map.barAt(0x20_0000_1234)?.dev).toBe(ep);
    expect(map.barAt(0xa000_4000)).toBeUndefined();
  });
});
