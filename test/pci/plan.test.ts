import { describe, expect, it } from 'vitest';
import { formatPlan } from '../../src/pci/plan/format.ts';
import { planAssignment } from '../../src/pci/plan/plan.ts';
import { PlanError } from '../../src/pci/plan/types.ts';
import type { FunctionSpecInput } from '../../src/pci/spec.ts';
import { downstreamPort, endpoint, host, rootPort, upstreamPort } from '../support/spec-helpers.ts';
import { runOf } from '../support/whatif-helpers.ts';

const gpu = (address: string, extra: Partial<FunctionSpecInput> = {}): FunctionSpecInput =>
  endpoint(address, { id: '10de:1b80', class: '0300', name: 'NVIDIA GP104 [GeForce GTX 1080]', driver: 'nvidia', ...extra });
const audio = (address: string): FunctionSpecInput =>
  endpoint(address, { id: '10de:10f0', class: '0403', name: 'NVIDIA GP104 High Definition Audio Controller', driver: 'snd_hda_intel' });
const consoleVga = (): FunctionSpecInput =>
  ({ address: '00:02.0', id: '8086:3e92', class: '0300', name: 'Intel UHD Graphics 630', driver: 'i915', express: { type: 'rc-integrated-endpoint' } });

/** Well-formedness, no more: tags nest and close, attributes are name='value' or name="value", once each. */
function checkWellFormedXml(xml: string): void {
  const stack: string[] = [];
  const token = /<(\/?)([A-Za-z_][\w.-]*)((?:\s+[A-Za-z_][\w.-]*\s*=\s*(?:'[^'<]*'|"[^"<]*"))*)\s*(\/?)>|([^<]+)|(<)/gy;
  let m: RegExpExecArray | null;
  let pos = 0;
  while (pos < xml.length && (m = token.exec(xml)) !== null) {
    pos = token.lastIndex;
    if (m[6] !== undefined) throw new Error(`stray '<' at ${m.index}`);
    if (m[5] !== undefined) {
      if (/&(?!(amp|lt|gt|quot|apos);)/.test(m[5])) throw new Error('bare & in text');
      continue;
    }
    const [, close, name = '', attrs = '', selfClose] = m;
    const names = [...attrs.matchAll(/([A-Za-z_][\w.-]*)\s*=/g)].map((a) => a[1]);
    if (new Set(names).size !== names.length) throw new Error(`<${name}> repeats an attribute`);
    if (close === '/') {
      if (attrs !== '' || selfClose === '/') throw new Error(`malformed </${name}>`);
      if (stack.pop() !== name) throw new Error(`</${name}> closes the wrong element`);
    } else if (selfClose !== '/') {
      stack.push(name);
    }
  }
  if (pos !== xml.length) throw new Error(`unparsable at ${pos}`);
  if (stack.length > 0) throw new Error(`unclosed <${stack.join('>, <')}>`);
}

describe('planAssignment', () => {
  const gpuHost = () => host([
    consoleVga(), rootPort('00:01.0', 1, 1), gpu('01:00.0'), audio('01:00.1'),
  ]);

  it('moves a GPU and its audio function together, with config for both', () => {
    const plan = planAssignment(runOf(gpuHost()), '01:00.0');
    expect(plan.group?.id).toBe(2);
    expect(plan.mustMove.map((m) => [m.bdf, m.action])).toEqual([['01:00.0', 'vfio-pci'], ['01:00.1', 'vfio-pci']]);
    expect(plan.mustMove[1]?.why).toBe('its HDMI/DP audio function: it shares the group, so it must leave its host driver too (now on snd_hda_intel)');
    expect(plan.mustMove[1]?.reason).toMatch(/^01:00.1 joins 01:00.0: 01:00.1 and 01:00.0 are functions of one multifunction slot without ACS isolation/);
    expect(plan.mayStay).toEqual([]);
    expect(plan.hostCritical).toEqual([]);
    expect(plan.warnings).toEqual([]);
    expect(plan.recommended).toBe('vfio-pci.ids');
    expect(plan.vfioPciIds).toBe('vfio-pci.ids=10de:10f0,10de:1b80');
    expect(plan.driverctl).toEqual(['driverctl set-override 0000:01:00.0 vfio-pci', 'driverctl set-override 0000:01:00.1 vfio-pci']);
    expect(plan.libvirt[1]).toBe("<hostdev mode='subsystem' type='pci' managed='yes'><source><address domain='0x0000' bus='0x01' slot='0x00' function='0x1'/></source></hostdev>");
    for (const xml of plan.libvirt) checkWellFormedXml(xml);
    checkWellFormedXml(`<devices>${plan.libvirt.join('')}</devices>`);
    expect(formatPlan(plan)).toContain('  kernel command line: vfio-pci.ids=10de:10f0,10de:1b80');
  });

  it('the XML checker itself rejects malformed XML', () => {
    expect(() => checkWellFormedXml("<a><b></a></b>")).toThrow(/closes the wrong element/);
    expect(() => checkWellFormedXml("<a x='1' x='2'/>")).toThrow(/repeats an attribute/);
    expect(() => checkWellFormedXml("<a x=1/>")).toThrow();
    expect(() => checkWellFormedXml('<a>')).toThrow(/unclosed/);
  });

  it('finds the target by 0000: address, by vendor:device, and by part of its name', () => {
    const run = runOf(gpuHost());
    for (const t of ['0000:01:00.0', '10de:1b80', 'gtx 1080']) expect(planAssignment(run, t).target.shortBdf).toBe('01:00.0');
    expect(() => planAssignment(run, '05:00.0')).toThrow(/no function 05:00.0/);
    expect(() => planAssignment(run, 'radeon')).toThrow(/no function's name contains 'radeon'/);
    expect(() => planAssignment(run, 'abcd:0001')).toThrow(PlanError);
  });

  it('accepts several matches in one group, and says the plan covers them', () => {
    const nic = (a: string) => endpoint(a, { id: 'abcd:1234', class: '0200', name: 'Quad port NIC' });
    const plan = planAssignment(runOf(host([rootPort('00:01.0', 1, 1), nic('01:00.0'), nic('01:00.1')])), 'abcd:1234');
    expect(plan.target.shortBdf).toBe('01:00.0');
    expect(plan.alsoMatched.map((d) => d.shortBdf)).toEqual(['01:00.1']);
    expect(plan.vfioPciIds).toBe('vfio-pci.ids=abcd:1234');
    expect(plan.warnings[0]).toMatch(/also matches 01:00.1, in the same group/);
    expect(plan.hostCritical.map((h) => h.kind)).toEqual(['network']);
  });

  it('keeps a bridge in the group on pcieport', () => {
    const plan = planAssignment(runOf(host([consoleVga(), rootPort('00:01.0', 1, 1, 'none', { driver: 'pcieport' }), gpu('01:00.0'), audio('01:00.1')])), '01:00.0');
    expect(plan.members.map((m) => [m.bdf, m.action])).toEqual([['00:01.0', 'stay'], ['01:00.0', 'vfio-pci'], ['01:00.1', 'vfio-pci']]);
    expect(plan.mayStay[0]?.why).toBe('root port: may stay on pcieport, which sets driver_managed_dma (allowed in a VFIO group since Linux 5.19)');
    expect(plan.mayStay[0]?.reason).toMatch(/^00:01.0 gets its own group/);
    expect(plan.driverctl).toHaveLength(2);
    expect(plan.warnings).toEqual([]);
  });

  it('flags an NVMe drive the group would capture, and the boot drive by name', () => {
    const chipset = (nvmeName: string) => host([
      consoleVga(),
      rootPort('00:1c.0', 1, 4, 'none'), upstreamPort('01:00.0', 2, 4),
      downstreamPort('02:01.0', 3, 3, 'none'), downstreamPort('02:02.0', 4, 4, 'none'),
      gpu('03:00.0', { multifunction: false }),
      endpoint('04:00.0', { id: '144d:a80a', class: '0108', progIf: 2, name: nvmeName, driver: 'nvme', multifunction: false }),
    ]);
    const plan = planAssignment(runOf(chipset('Samsung 980 PRO')), '03:00.0');
    expect(plan.mustMove.map((m) => m.bdf)).toEqual(['03:00.0', '04:00.0']);
    expect(plan.mayStay.map((m) => m.bdf)).toEqual(['00:1c.0', '01:00.0', '02:01.0', '02:02.0']);
    expect(plan.hostCritical.map((h) => h.kind)).toEqual(['boot-storage']);
    expect(plan.hostCritical[0]?.text).toMatch(/^04:00.0 is an NVMe controller \(driver nvme\), possibly the host's boot storage/);
    expect(plan.mustMove[1]?.why).toMatch(/^shares the IOMMU group/);
    const boot = planAssignment(runOf(chipset('Samsung 980 PRO (boot)')), '03:00.0');
    expect(boot.hostCritical.map((h) => h.kind)).toEqual(['boot-drive']);
    expect(formatPlan(boot)).toContain('Host devices this would take away:');
  });

  it('two identical GPUs: the ID is ambiguous as a target, and vfio-pci.ids gives way to driverctl', () => {
    const run = runOf(host([
      consoleVga(),
      rootPort('00:01.0', 1, 1), gpu('01:00.0'), audio('01:00.1'),
      rootPort('00:03.0', 2, 2), gpu('02:00.0'), audio('02:00.1'),
    ]));
    expect(() => planAssignment(run, '10de:1b80')).toThrow(/'10de:1b80' is ambiguous: it matches 2 functions in different groups:\n {2}01:00.0 \[10de:1b80\] NVIDIA GP104 \[GeForce GTX 1080\] \(group 3\)\n {2}02:00.0 .*\(group 4\)/);
    const plan = planAssignment(run, '02:00.0');
    expect(plan.recommended).toBe('driverctl');
    expect(plan.warnings).toEqual([
      expect.stringMatching(/^vfio-pci.ids would also claim 01:00.0 \[10de:1b80\] .*outside this group.*bind by address with driverctl instead$/),
      expect.stringMatching(/^vfio-pci.ids would also claim 01:00.1 \[10de:10f0\]/),
    ]);
    expect(plan.driverctl).toEqual(['driverctl set-override 0000:02:00.0 vfio-pci', 'driverctl set-override 0000:02:00.1 vfio-pci']);
    expect(formatPlan(plan).join('\n')).toMatch(/recommended: driverctl/);
  });

  it('counts the target GPU as the console only when the host has no other display', () => {
    const plan = planAssignment(runOf(host([rootPort('00:01.0', 1, 1), gpu('01:00.0'), audio('01:00.1')])), '01:00.0');
    expect(plan.hostCritical.map((h) => h.kind)).toEqual(['console-gpu']);
    expect(plan.hostCritical[0]?.text).toMatch(/^the target itself is a VGA controller on host driver nvidia/);
  });

  it('flags host NICs, USB controllers and a BMC console GPU captured with the target', () => {
    const plan = planAssignment(runOf(host([
      rootPort('00:01.0', 1, 1, 'none'),
      endpoint('01:00.0', { id: '1234:0001', class: '0200', driver: 'igb', multifunction: false }),
      endpoint('01:01.0', { id: '102b:0522', class: '0300', driver: 'mgag200', multifunction: false }),
      endpoint('01:02.0', { id: '1b21:1242', class: '0c03', progIf: 0x30, driver: 'xhci_hcd', multifunction: false }),
      endpoint('01:03.0', { id: '1000:0097', class: '0107', driver: 'mpt3sas', multifunction: false }),
    ])), '01:00.0');
    expect(plan.hostCritical.map((h) => [h.device.shortBdf, h.kind])).toEqual([['01:00.0', 'network'], ['01:01.0', 'console-gpu'], ['01:02.0', 'usb'], ['01:03.0', 'storage']]);
  });

  it('warns when the IOMMU is off: no group, nothing to bind', () => {
    const plan = planAssignment(runOf(host([rootPort('00:01.0', 1, 1), gpu('01:00.0')]), 'intel_iommu=off'), '01:00.0');
    expect(plan.group).toBeNull();
    expect(plan.recommended).toBeNull();
    expect(plan.vfioPciIds).toBe('');
    expect(plan.warnings).toEqual([expect.stringMatching(/^01:00.0 has no IOMMU group \(the IOMMU is off \(intel_iommu=off\)\): vfio-pci cannot assign it.*what-if iommu:on/)]);
    expect(formatPlan(plan)[0]).toMatch(/no IOMMU group$/);
  });

  it('warns about a device with no group next to the group', () => {
    const plan = planAssignment(runOf(host([rootPort('00:01.0', 1, 1, 'none'), gpu('01:00.0'), audio('01:00.1')], {
      platform: { iommu: 'intel', firmwareAliases: [], uncovered: ['01:00.1'] },
    })), '01:00.0');
    expect(plan.mustMove.map((m) => m.bdf)).toEqual(['01:00.0']);
    expect(plan.warnings).toEqual([expect.stringMatching(/^01:00.1 has no IOMMU group \(.*\) but sits in the same slot as 01:00.0, in this group: its DMA is not translated/)]);
  });

  it('warns when only pcie_acs_override separates the group', () => {
    const plan = planAssignment(runOf(host([consoleVga(), rootPort('00:01.0', 1, 1), gpu('01:00.0'), audio('01:00.1')]), 'pcie_acs_override=multifunction'), '01:00.0');
    expect(plan.mustMove.map((m) => m.bdf)).toEqual(['01:00.0']);
    expect(plan.warnings).toEqual(['this group is separate only because of pcie_acs_override: in the hardware 01:00.1 can still reach 01:00.0 by P2P that the IOMMU never sees']);
  });

  it('warns about a bridge bound to a driver that blocks viability', () => {
    const plan = planAssignment(runOf(host([consoleVga(), { address: '00:1e.0', id: '8086:244e', class: '0604', bridge: { secondary: 1, subordinate: 1 }, driver: 'shpchp' }, endpoint('01:00.0', { express: undefined })])), '01:00.0');
    expect(plan.mayStay.map((m) => m.why)).toEqual(['PCI bridge: no port driver binds it, and an unbound member keeps the group viable']);
    expect(plan.warnings).toEqual(['bridge 00:1e.0 is bound to shpchp, which does not set driver_managed_dma: unbind it, or the group is not viable']);
  });
});
