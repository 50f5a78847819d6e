import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ACS_BIT_NAMES } from '../../src/pci/spec.ts';
import { applyWhatIf } from '../../src/pci/whatif/apply.ts';
import { diffGroupings, formatGroupDiff } from '../../src/pci/whatif/diff.ts';
import { formatWhatIf, parseWhatIf } from '../../src/pci/whatif/parse.ts';
import { securityNotes } from '../../src/pci/whatif/security.ts';
import { WhatIfError, type WhatIfChange } from '../../src/pci/whatif/types.ts';
import { downstreamPort, endpoint, host, rootPort, upstreamPort } from '../support/spec-helpers.ts';
import { membersOf, proposedAvailable, runOf, specOf, whatIf } from '../support/whatif-helpers.ts';

// A GPU with its HDA audio function below an ACS root port: one group, as functions without ACS.
const gpuHost = () => host([
  rootPort('00:01.0', 1, 1), endpoint('01:00.0', { id: '10de:1b80', class: '0300' }), endpoint('01:00.1', { id: '10de:10f0', class: '0403' }),
  rootPort('00:02.0', 2, 2), endpoint('02:00.0'),
]);

// An X570-style chipset switch: one downstream port with ACS, one without; a spare ACS root port.
const switchHost = () => host([
  rootPort('00:01.0', 1, 4), rootPort('00:02.0', 5, 5),
  upstreamPort('01:00.0', 2, 4),
  downstreamPort('02:01.0', 3, 3, 'full'), downstreamPort('02:02.0', 4, 4, 'none'),
  endpoint('03:00.0', { multifunction: false }), endpoint('04:00.0', { multifunction: false }),
]);

describe('parseWhatIf', () => {
  it('parses every kind', () => {
    expect(parseWhatIf('acs:0000:00:01.0:+RR,-CR')).toEqual({ kind: 'acs', device: '00:01.0', edit: { mode: 'bits', set: 0x04, clear: 0x08 } });
    expect(parseWhatIf('acs:00:01.0:off')).toEqual({ kind: 'acs', device: '00:01.0', edit: { mode: 'off' } });
    expect(parseWhatIf('bios-acs:on')).toEqual({ kind: 'bios-acs', enabled: true });
    expect(parseWhatIf('cmdline:"pcie_acs_override=downstream iommu=pt"')).toEqual({ kind: 'cmdline', options: 'pcie_acs_override=downstream iommu=pt' });
    expect(parseWhatIf('cmdline:pcie_acs_override=downstream')).toEqual({ kind: 'cmdline', options: 'pcie_acs_override=downstream' });
    expect(parseWhatIf('move:0000:04:00.0:00:02.0')).toEqual({ kind: 'move', device: '04:00.0', bridge: '00:02.0' });
    expect(parseWhatIf('algorithm:proposed-2025')).toEqual({ kind: 'algorithm', algorithm: 'proposed-2025' });
    expect(parseWhatIf('iommu:off')).toEqual({ kind: 'iommu', enabled: false });
  });

  it.each([
    ['frobnicate', /not a what-if/],
    ['colour:blue', /unknown what-if 'colour'/],
    ['acs:00:01.0:RR', /needs a sign: \+RR/],
    ['acs:00:01.0:+XX', /'XX' is not an ACS bit; the names are SV TB RR CR UF EC DT/],
    ['acs:00:01.0:+RR,-RR', /RR is both set and cleared/],
    ['acs:00:01.0:', /say which bits/],
    ['acs:zz:01.0:on', /expected acs:BDF/],
    ['bios-acs:maybe', /expected 'on' or 'off'/],
    ['cmdline:', /no kernel options given/],
    ['cmdline:"pcie_acs_override=downstream', /never closed/],
    ['cmdline:pcie_acs_override=sideways', /'sideways' is not downstream, multifunction or id:VVVV:DDDD/],
    ['cmdline:pci=config_acs=2@00:01.0', /must be 1 to 7 characters/],
    ['move:04:00.0', /expected move:BDF:BRIDGE/],
    ['algorithm:windows', /'linux' or 'proposed-2025'/],
    ['iommu:sometimes', /expected 'on' or 'off'/],
  ])('rejects %s clearly', (text, message) => {
    expect(() => parseWhatIf(text)).toThrow(WhatIfError);
    expect(() => parseWhatIf(text)).toThrow(message);
  });

  it('round-trips through formatWhatIf', () => {
    const bdf = fc.tuple(fc.integer({ min: 0, max: 0xff }), fc.integer({ min: 0, max: 0x1f }), fc.integer({ min: 0, max: 7 }))
      .map(([b, d, f]) => `${b.toString(16).padStart(2, '0')}:${d.toString(16).padStart(2, '0')}.${f}`);
    const bits = Object.values(ACS_BIT_NAMES);
    const acsBits = fc.tuple(fc.subarray(bits), fc.subarray(bits)).filter(([s, c]) => s.length + c.length > 0 && s.every((b) => !c.includes(b)))
      .map(([s, c]) => ({ mode: 'bits' as const, set: s.reduce((a, b) => a | b, 0), clear: c.reduce((a, b) => a | b, 0) }));
    const change: fc.Arbitrary<WhatIfChange> = fc.oneof(
      fc.record({ kind: fc.constant('acs' as const), device: bdf, edit: fc.oneof(acsBits, fc.constant({ mode: 'on' as const }), fc.constant({ mode: 'off' as const })) }),
      fc.record({ kind: fc.constant('bios-acs' as const), enabled: fc.boolean() }),
      fc.record({ kind: fc.constant('iommu' as const), enabled: fc.boolean() }),
      fc.record({ kind: fc.constant('move' as const), device: bdf, bridge: bdf }),
      fc.record({ kind: fc.constant('algorithm' as const), algorithm: fc.constantFrom('linux' as const, 'proposed-2025' as const) }),
      fc.record({ kind: fc.constant('cmdline' as const), options: fc.constantFrom('iommu=pt', 'pcie_acs_override=downstream,multifunction', 'pci=noats intel_iommu=on') }),
    );
    fc.assert(fc.property(change, (c) => { expect(parseWhatIf(formatWhatIf(c))).toEqual(c); }));
  });
});

describe('applyWhatIf', () => {
  it('never mutates the input spec', () => {
    const spec = specOf(switchHost());
    const frozen = JSON.stringify(spec);
    applyWhatIf({ spec, cmdline: '', algorithm: 'linux' }, ['acs:00:01.0:off', 'bios-acs:off', 'move:04:00.0:00:02.0', 'iommu:off'].map(parseWhatIf));
    expect(JSON.stringify(spec)).toBe(frozen);
  });

  it('cmdline: pcie_acs_override splits a GPU from its audio, and the note says the hardware disagrees', () => {
    const o = whatIf(gpuHost(), ['cmdline:pcie_acs_override=multifunction']);
    expect(o.result.cmdline).toBe('pcie_acs_override=multifunction');
    expect(o.result.applied[0]).toMatch(/changes what Linux believes, not what the hardware routes/);
    expect(o.diff.split).toEqual([{ from: { id: 2, members: ['01:00.0', '01:00.1'] }, into: [{ id: 2, members: ['01:00.0'] }, { id: 3, members: ['01:00.1'] }] }]);
    expect(o.notes).toEqual([expect.stringContaining('pcie_acs_override makes 01:00.0 and 01:00.1 look isolated while the hardware still allows P2P between them: Linux now believes it, the hardware does not')]);
  });

  it('cmdline: config_acs and disable_acs_redir widen groups, and the note says P2P is now allowed', () => {
    const spec = host([rootPort('00:01.0', 1, 1), endpoint('01:00.0'), rootPort('00:02.0', 2, 2), endpoint('02:00.0')]);
    const cfg = whatIf(spec, ['cmdline:pci=config_acs=0000@00:01.0']);
    expect(membersOf(cfg.after)).toEqual([['00:01.0', '01:00.0'], ['00:02.0'], ['02:00.0']]);
    expect(cfg.diff.merged).toEqual([{ from: [{ id: 0, members: ['00:01.0'] }, { id: 2, members: ['01:00.0'] }], into: { id: 0, members: ['00:01.0', '01:00.0'] } }]);
    expect(cfg.notes).toEqual([expect.stringMatching(/^pci=config_acs=0000@00:01.0 clears SV RR CR on root port 00:01.0: P2P is now allowed, and the groups widen to match/)]);
    const redir = whatIf(spec, ['cmdline:pci=disable_acs_redir=00:02.0']);
    expect(redir.notes).toEqual([expect.stringMatching(/^pci=disable_acs_redir=00:02.0 clears RR CR on root port 00:02.0: P2P is now allowed, and the groups widen to match/)]);
  });

  it('acs: an edit Linux undoes at boot says so and offers the config_acs that keeps it', () => {
    const o = whatIf(host([rootPort('00:01.0', 1, 1), endpoint('01:00.0')]), ['acs:00:01.0:-RR']);
    expect(o.result.spec.functions[0]?.acs?.ctl).toBe(0x19);
    expect(o.result.applied[0]).toBe('ACS Control of root port 00:01.0: SV RR CR UF -> SV CR UF (the firmware value, before Linux enables ACS at boot)');
    expect(o.result.applied[1]).toMatch(/turn RR back on wherever implemented, so the groups do not see this edit\. To keep it at boot, use cmdline:pci=config_acs=0011001@00:01.0$/);
    expect(o.diff.samePartition).toBe(true);
    // Following the advice does widen the group.
    const kept = whatIf(host([rootPort('00:01.0', 1, 1), endpoint('01:00.0')]), ['cmdline:pci=config_acs=0011001@00:01.0']);
    expect(membersOf(kept.after)).toEqual([['00:01.0', '01:00.0']]);
  });

  it('acs: bits Linux leaves alone stick; post-boot hosts say the dump value is edited', () => {
    const spec = host([rootPort('00:01.0', 1, 1, { cap: ['SV', 'RR', 'CR', 'UF', 'EC'], ctl: ['SV', 'RR', 'CR', 'UF'] }), endpoint('01:00.0')], { acsCtl: 'post-boot' });
    const o = whatIf(spec, ['acs:00:01.0:+EC']);
    expect(o.result.applied).toEqual(['ACS Control of root port 00:01.0: SV RR CR UF -> SV RR CR UF EC (the value the lspci dump shows, read after the source kernel enabled ACS; the firmware value is not in a dump)']);
    expect(whatIf(spec, ['acs:00:01.0:on']).result.spec.functions[0]?.acs?.ctl).toBe(0x3d);
  });

  it('acs: refuses functions without ACS and bits the function does not implement', () => {
    const spec = specOf(host([rootPort('00:01.0', 1, 1, { cap: ['SV', 'RR', 'CR', 'UF'], ctl: [] }), endpoint('01:00.0')]));
    const apply = (t: string) => () => applyWhatIf({ spec, cmdline: '', algorithm: 'linux' }, [parseWhatIf(t)]);
    expect(apply('acs:01:00.0:on')).toThrow(/endpoint 01:00.0 has no ACS capability/);
    expect(apply('acs:00:01.0:+TB')).toThrow(/does not implement TB \(its ACSCap has SV RR CR UF\)/);
    expect(apply('acs:00:09.0:on')).toThrow(/the host has no function 00:09.0; bus 00 has 00:01.0/);
  });

  it('bios-acs: clears every ACS Control, and explains that Linux re-enables it when the IOMMU is on', () => {
    const o = whatIf(switchHost(), ['bios-acs:off']);
    expect(o.result.spec.functions.filter((f) => f.acs !== undefined).map((f) => f.acs?.ctl)).toEqual([0, 0, 0]);
    expect(o.result.applied[0]).toMatch(/^BIOS ACS disabled: ACS Control cleared on 3 functions \(00:01.0 00:02.0 02:01.0\)/);
    expect(o.result.applied[1]).toMatch(/does not change the groups/);
    expect(o.diff.samePartition).toBe(true);
    const on = whatIf(host([rootPort('00:01.0', 1, 1, 'off'), endpoint('01:00.0')]), ['bios-acs:on']);
    expect(on.result.spec.functions[0]?.acs?.ctl).toBe(0x1d);
  });

  it('iommu: off removes every group; on takes the off switch out again', () => {
    const o = whatIf(gpuHost(), ['iommu:off']);
    expect(o.result.cmdline).toBe('intel_iommu=off');
    expect(o.after.groups).toEqual([]);
    expect(o.diff.ungrouped.map((u) => u.device)).toEqual(['00:01.0', '00:02.0', '01:00.0', '01:00.1', '02:00.0']);
    expect(o.notes[0]).toMatch(/^With the IOMMU off no device has a group/);
    const back = whatIf(gpuHost(), ['iommu:on'], 'quiet intel_iommu=off');
    expect(back.result.cmdline).toBe('quiet intel_iommu=on');
    expect(back.after.groups.length).toBe(4);
    const none = whatIf(host([{ address: '00:00.0', id: '1022:1480', class: '0600' }, rootPort('00:01.1', 1, 1), endpoint('01:00.0')], { platform: { iommu: 'none' } }), ['iommu:on']);
    expect(none.result.spec.platform.iommu).toBe('amd');
    expect(none.after.groups.length).toBe(2);
  });

  it('algorithm: switches the grouping algorithm', () => {
    const spec = specOf(gpuHost());
    const r = applyWhatIf({ spec, cmdline: '', algorithm: 'linux' }, [parseWhatIf('algorithm:proposed-2025')]);
    expect(r.algorithm).toBe('proposed-2025');
    expect(r.applied[0]).toMatch(/not in mainline/);
  });

  it.skipIf(!proposedAvailable())('algorithm: the proposed 2025 rework widens a switch whose DSPs lack ACS: a bug fixed', () => {
    const o = whatIf(host([
      rootPort('00:01.0', 1, 4), upstreamPort('01:00.0', 2, 4),
      downstreamPort('02:01.0', 3, 3, 'none'), downstreamPort('02:02.0', 4, 4, 'none'),
      endpoint('03:00.0', { multifunction: false }), endpoint('04:00.0', { multifunction: false }),
    ]), ['algorithm:proposed-2025']);
    expect(o.notes.some((n) => n.includes('because the old result was too narrow: a real isolation bug fixed'))).toBe(true);
  });

  it('move: a device moved from behind a non-ACS switch port to an ACS root port becomes isolated', () => {
    const o = whatIf(switchHost(), ['move:04:00.0:00:02.0']);
    expect(o.result.renamed).toEqual(new Map([['04:00.0', '05:00.0']]));
    expect(o.result.applied).toEqual(['moved 04:00.0 to bus 05 below root port 00:02.0 (now 05:00.x)']);
    expect(membersOf(o.after)).toContainEqual(['05:00.0']);
    expect(o.diff.split).toEqual([{ from: { id: 4, members: ['02:02.0', '04:00.0→05:00.0'] }, into: [{ id: 4, members: ['02:02.0'] }, { id: 6, members: ['04:00.0→05:00.0'] }] }]);
    expect(o.notes).toEqual(['04:00.0→05:00.0 moved from behind downstream port 02:02.0 to behind root port 00:02.0: before, downstream port 02:02.0 (no ACS capability) is not isolated; now root port 00:02.0 has ACS SV RR CR UF enabled, so its peer traffic goes up through the IOMMU and it is isolated for real. It no longer shares a group with 02:02.0.']);
  });

  it('move: takes a switch with its subtree, renumbering buses to fit the new window', () => {
    const spec = host([
      rootPort('00:01.0', 1, 4), rootPort('00:02.0', 0x10, 0x14),
      upstreamPort('01:00.0', 2, 4), downstreamPort('02:01.0', 3, 3), downstreamPort('02:02.0', 4, 4),
      endpoint('03:00.0'), endpoint('03:00.1'), endpoint('04:00.0', { multifunction: false }),
    ]);
    const o = whatIf(spec, ['move:01:00.0:00:02.0']);
    expect(o.result.applied).toEqual(['moved 01:00.0 and the 5 functions below it to bus 10 below root port 00:02.0 (now 10:00.x); buses 02-04 below it renumbered 11-13']);
    expect([...o.result.renamed]).toEqual([['01:00.0', '10:00.0'], ['02:01.0', '11:01.0'], ['02:02.0', '11:02.0'], ['03:00.0', '12:00.0'], ['03:00.1', '12:00.1'], ['04:00.0', '13:00.0']]);
    const usp = o.result.spec.functions.find((f) => f.address === '10:00.0');
    expect(usp?.bridge).toMatchObject({ secondary: 0x11, subordinate: 0x13 });
    expect(o.diff.samePartition).toBe(true);
    expect(o.diff.merged.length + o.diff.split.length + o.diff.moved.length).toBe(0);
  });

  it('move: chained moves compose, and an ACS edit follows its device', () => {
    const there = whatIf(switchHost(), ['move:04:00.0:00:02.0', 'move:05:00.0:02:02.0']);
    expect(there.result.renamed.size).toBe(0);
    expect(there.diff.samePartition).toBe(true);
    const spec = host([
      rootPort('00:01.0', 1, 4), rootPort('00:02.0', 5, 6),
      upstreamPort('01:00.0', 2, 4), downstreamPort('02:01.0', 3, 3), downstreamPort('02:02.0', 4, 4),
      endpoint('03:00.0', { multifunction: false }),
    ]);
    const o = whatIf(spec, ['acs:02:01.0:-RR', 'move:02:01.0:00:02.0']);
    expect([...o.result.renamed]).toEqual([['02:01.0', '05:00.0'], ['03:00.0', '06:00.0']]);
    expect(o.result.applied[2]).toMatch(/^acs:02:01.0:-RR: at boot Linux runs 05:00.0 with ACS Control SV RR CR UF, not SV CR UF: .*cmdline:pci=config_acs=0011001@05:00.0$/);
  });

  it('move: fails clearly on an occupied bus, a small window, a non-bridge, or a move below itself', () => {
    const spec = specOf(host([
      rootPort('00:01.0', 1, 4), rootPort('00:02.0', 5, 6), rootPort('00:03.0', 7, 7),
      upstreamPort('01:00.0', 2, 4), downstreamPort('02:01.0', 3, 3), downstreamPort('02:02.0', 4, 4),
      endpoint('03:00.0'), endpoint('07:00.0'),
    ]));
    const apply = (t: string) => () => applyWhatIf({ spec, cmdline: '', algorithm: 'linux' }, [parseWhatIf(t)]);
    expect(apply('move:03:00.0:00:03.0')).toThrow(/bus 07 below root port 00:03.0 is occupied by 07:00.0/);
    expect(apply('move:01:00.0:00:02.0')).toThrow(/subtree uses buses 02-04 \(3 buses\), but root port 00:02.0's window 05-06 has only 1 below its secondary bus/);
    expect(apply('move:07:00.0:03:00.0')).toThrow(/endpoint 03:00.0 is not a bridge/);
    expect(apply('move:01:00.0:02:02.0')).toThrow(/downstream port 02:02.0 is part of what moves/);
    expect(apply('move:09:00.0:00:02.0')).toThrow(/no function 09:00.0/);
  });
});

describe('diffGroupings', () => {
  it('tells renumbering from real change', () => {
    const spec = host([rootPort('00:01.0', 1, 1), rootPort('00:02.0', 2, 2), rootPort('00:03.0', 3, 3), endpoint('01:00.0'), endpoint('02:00.0')]);
    const o = whatIf(spec, ['move:01:00.0:00:03.0']);
    expect(o.diff.samePartition).toBe(true);
    expect(o.diff.unchanged.map((g) => g.id)).toEqual([0, 1, 2]);
    expect(o.diff.renumbered).toEqual([{ from: 3, to: 4, members: ['01:00.0→03:00.0'] }, { from: 4, to: 3, members: ['02:00.0'] }]);
    expect(formatGroupDiff(o.diff)[0]).toBe('the same groups; only their numbers change');
    expect(o.notes).toEqual(['No device changes company: isolation is unchanged.']);
  });

  it('reports a device that leaves one shared group for another as moved', () => {
    const spec = host([rootPort('00:01.0', 1, 1, 'none'), rootPort('00:02.0', 2, 2, 'none'), endpoint('01:00.0'), endpoint('01:01.0')]);
    const o = whatIf(spec, ['move:01:01.0:00:02.0']);
    expect(o.diff.moved).toEqual([{ device: '01:01.0→02:00.0', from: { id: 0, members: ['00:01.0', '01:00.0', '01:01.0→02:00.0'] }, to: { id: 1, members: ['00:02.0', '01:01.0→02:00.0'] } }]);
    expect(formatGroupDiff(o.diff)).toContain('moved: 01:01.0→02:00.0 from group 0 {00:01.0 01:00.0 01:01.0→02:00.0} to group 1 {00:02.0 01:01.0→02:00.0}');
    expect(o.notes).toContain('01:01.0→02:00.0 moved to behind root port 00:02.0, where root port 00:02.0 (no ACS capability) is not isolated: it can now reach 00:02.0 by P2P without the IOMMU seeing it, so they share a group.');
  });

  it('is empty between two runs of the same host', () => {
    const a = runOf(switchHost());
    const d = diffGroupings(a, runOf(switchHost()));
    expect(d.samePartition).toBe(true);
    expect(d.renumbered).toEqual([]);
    expect(formatGroupDiff(d)).toEqual(['no change in the groups', 'unchanged: 6 groups']);
    expect(securityNotes(a, a)).toEqual(['No device changes company: isolation is unchanged.']);
  });
});
