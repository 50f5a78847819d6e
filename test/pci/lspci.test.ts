import { describe, expect, it } from 'vitest';
import { parseLspci } from '../../src/pci/lspci/index.ts';
import { ACS_BIT_NAMES } from '../../src/pci/spec.ts';
import { dump, fixture, fnAt } from './lspci-helpers.ts';

const { SV, TB, RR, CR, UF, DT } = ACS_BIT_NAMES;

describe('parseLspci: an AMD desktop with a PCIe switch (no domains)', () => {
  const result = parseLspci(fixture('amd-switch.txt'), '/some/where/amd-switch.txt');

  it('names the host after the file and reads every function', () => {
    expect(result.spec.name).toBe('amd-switch.txt');
    expect(result.spec.acsCtl).toBe('post-boot');
    expect(result.spec.functions.map((f) => f.address)).toEqual([
      '00:00.0', '00:00.2', '00:01.0', '00:01.1', '01:00.0', '02:01.0', '02:02.0', '03:00.0',
      '04:00.0', '04:00.1', '04:00.3', '00:08.0', '00:08.1', '05:00.0', '00:14.0', '00:14.3',
    ]);
  });

  it('reads the header: IDs, class, prog-if, revision and a readable name', () => {
    const xhci = fnAt(result, '04:00.1');
    expect(xhci).toMatchObject({ id: '1022:149c', class: 0x0c03, progIf: 0x30, revision: 0, subsystem: '1462:7c37', driver: 'xhci_hcd', observedGroup: 4 });
    expect(xhci.name).toBe('USB controller: Advanced Micro Devices, Inc. [AMD] Matisse USB 3.0 Host Controller');
    expect(fnAt(result, '00:14.0')).toMatchObject({ id: '1022:790b', class: 0x0c05, revision: 0x61 });
    // Brackets inside the device name are not the ID pair.
    expect(fnAt(result, '00:08.1').name).toBe('PCI bridge: Advanced Micro Devices, Inc. [AMD] Starship/Matisse Internal PCIe GPP Bridge 0 to bus[E:B]');
  });

  it('reads port types, slots and offsets; an NVMe CrosslinkRes "Upstream Port" is not a port type', () => {
    expect(fnAt(result, '00:01.1').express).toEqual({ type: 'root-port', version: 2, slot: true, ariForwarding: false, offset: 0x58 });
    expect(fnAt(result, '01:00.0').express).toMatchObject({ type: 'upstream-port', slot: false });
    expect(fnAt(result, '02:01.0').express).toMatchObject({ type: 'downstream-port', slot: true });
    expect(fnAt(result, '02:02.0').express).toMatchObject({ type: 'downstream-port', slot: false });
    expect(fnAt(result, '03:00.0').express).toMatchObject({ type: 'endpoint', offset: 0x70 });
    expect(fnAt(result, '00:14.0').express).toBeUndefined();
  });

  it('takes ARI forwarding from DevCtl2 only: DevCap2 ARIFwd+ says the port could', () => {
    expect(fnAt(result, '00:01.1').express?.ariForwarding).toBe(false);
    expect(fnAt(result, '02:01.0').express?.ariForwarding).toBe(false);
  });

  it('decodes ACSCap/ACSCtl tokens into register bits', () => {
    expect(fnAt(result, '00:01.1').acs).toEqual({ cap: SV | TB | RR | CR | UF | DT, ctl: SV | RR | CR | UF, offset: 0x2a0 });
    expect(fnAt(result, '00:08.1').acs).toEqual({ cap: SV | TB, ctl: SV, offset: 0x2a0 });
    expect(fnAt(result, '02:02.0').acs).toBeUndefined();
  });

  it('reads bridges from Bus: lines and ARI from the NVMe drive', () => {
    expect(fnAt(result, '00:01.1').bridge).toEqual({ primary: 0, secondary: 1, subordinate: 4 });
    expect(fnAt(result, '01:00.0').bridge).toEqual({ primary: 1, secondary: 2, subordinate: 4 });
    expect(fnAt(result, '00:14.3').bridge).toBeUndefined();
    expect(fnAt(result, '03:00.0').ari).toEqual({ nextFunction: 0, offset: 0x168 });
  });

  it('reads regions: ROMs are not BARs, unsized ones go, a 5K region is dropped with a warning', () => {
    expect(fnAt(result, '03:00.0').bars).toEqual([{ index: 0, type: 'mem64', prefetchable: false, base: 0xfc800000, size: 16 * 1024 }]);
    expect(fnAt(result, '05:00.0').bars).toEqual([
      { index: 0, type: 'mem32', prefetchable: false, base: 0xfcb00000, size: 32 * 1024 },
      { index: 4, type: 'mem64', prefetchable: true, base: 0, size: 8 * 1024 },
    ]);
    expect(result.warnings).toContainEqual(expect.stringMatching(/05:00\.0 region 2 has size 5K, not a power of two/));
  });

  it('detects the AMD IOMMU and leaves coverage and multifunction to the model', () => {
    expect(result.observedGroups).toBe(true);
    expect(result.spec.platform.iommu).toBe('amd');
    expect(result.spec.platform.uncovered).toBeUndefined();
    expect(result.spec.functions.every((f) => f.multifunction === undefined)).toBe(true);
    expect(fnAt(result, '00:00.0').observedGroup).toBeUndefined();
  });
});

describe('parseLspci: an Intel host with domains printed (VMD)', () => {
  const result = parseLspci(fixture('intel-domains.txt'));

  it('reads addresses with domains, writing domain 0 short', () => {
    expect(result.spec.name).toBe('lspci dump');
    expect(result.spec.functions.map((f) => f.address)).toContain('00:1c.0');
    expect(fnAt(result, '10000:e1:00.0')).toMatchObject({ id: '8086:f1a8', class: 0x0108, progIf: 0x02 });
    expect(fnAt(result, '10000:e0:1d.0').bridge).toEqual({ primary: 0xe0, secondary: 0xe1, subordinate: 0xe1 });
  });

  it('reads every other PCI Express type, with v1 and v2 capabilities', () => {
    expect(fnAt(result, '01:00.0').express).toMatchObject({ type: 'legacy-endpoint', version: 2 });
    expect(fnAt(result, '00:02.0').express).toMatchObject({ type: 'rc-integrated-endpoint', version: 2 });
    expect(fnAt(result, '00:0e.0').express).toMatchObject({ type: 'rc-integrated-endpoint', version: 1 });
    expect(fnAt(result, '02:00.0').express).toMatchObject({ type: 'pcie-to-pci-bridge', version: 1 });
    expect(fnAt(result, '04:00.0').express).toMatchObject({ type: 'pci-to-pcie-bridge', version: 1, slot: false });
    expect(fnAt(result, '00:1d.0').express).toMatchObject({ type: 'rc-event-collector', version: 2 });
    expect(fnAt(result, '03:00.0').express).toBeUndefined();
  });

  it('reads 64-bit, I/O and 16G-class BARs, skipping [virtual] ROMs', () => {
    expect(fnAt(result, '01:00.0').bars).toEqual([
      { index: 0, type: 'mem32', prefetchable: false, base: 0xde000000, size: 16 * 1024 ** 2 },
      { index: 1, type: 'mem64', prefetchable: true, base: 0xc0000000, size: 256 * 1024 ** 2 },
      { index: 3, type: 'mem64', prefetchable: true, base: 0xd0000000, size: 32 * 1024 ** 2 },
      { index: 5, type: 'io', prefetchable: false, base: 0xe000, size: 128 },
    ]);
    expect(fnAt(result, '00:0e.0').bars[0]).toMatchObject({ base: 0x6000000000, type: 'mem64' });
  });

  it('reads PASID (hex width), ATS and PRI from the integrated GPU', () => {
    const igd = fnAt(result, '00:02.0');
    expect(igd.pasid).toEqual({ width: 0x14, exec: false, privileged: false, enabled: false, offset: 0x100 });
    expect(igd.ats).toEqual({ queueDepth: 0, offset: 0x200 });
    expect(igd.pri).toEqual({ outstanding: 0x8000, enabled: false, offset: 0x300 });
  });

  it('keeps the printed ACS of Sunrise Point root ports and says why it is suspect', () => {
    expect(fnAt(result, '00:1c.0').acs).toEqual({ cap: SV | RR | CR | UF, ctl: 0, offset: 0x140 });
    const spt = result.warnings.filter((w) => w.includes('Sunrise Point'));
    expect(spt).toHaveLength(2);
    expect(spt[0]).toMatch(/00:1c\.0 \(8086:a110\)/);
    expect(result.warnings.some((w) => w.includes('00:01.0') && w.includes('Sunrise'))).toBe(false);
  });

  it('detects Intel from the 00:00.0 host bridge', () => {
    expect(result.spec.platform.iommu).toBe('intel');
    expect(result.warnings.some((w) => w.includes('IOMMU vendor'))).toBe(false);
  });
});

describe('parseLspci: SR-IOV and a PASID/PRI/ATS accelerator', () => {
  const result = parseLspci(fixture('sriov.txt'));

  it('marks the VFs the dump holds and keeps NumVFs for buildHost to fill in the rest', () => {
    expect(fnAt(result, '18:00.0').sriov).toEqual({ totalVfs: 8, numVfs: 2, vfOffset: 128, vfStride: 4, vfDevice: 0x1520, offset: 0x160 });
    expect(fnAt(result, '18:10.0').virtfnOf).toBe('18:00.0');
    expect(fnAt(result, '18:10.1').virtfnOf).toBe('18:00.1');
    expect(fnAt(result, '18:10.5').virtfnOf).toBe('18:00.1');
    expect(fnAt(result, '18:00.0').virtfnOf).toBeUndefined();
    expect(result.warnings).toContainEqual(expect.stringMatching(/18:00\.0: 1 of its 2 enabled VFs are not in the dump/));
  });

  it('counts no VFs when VF Enable is clear, and VF BARs ([virtual]) are not BARs', () => {
    expect(fnAt(result, '18:00.2').sriov).toMatchObject({ numVfs: 0, totalVfs: 8 });
    expect(fnAt(result, '18:10.0').bars).toEqual([]);
  });

  it('reads ARI next-function numbers, and ARI forwarding from DevCtl2 (not from DevCap2 continuation lines)', () => {
    expect(fnAt(result, '18:00.1').ari).toEqual({ nextFunction: 2, offset: 0x150 });
    expect(fnAt(result, '17:00.0').express?.ariForwarding).toBe(true);
    expect(fnAt(result, '5d:00.0').express?.ariForwarding).toBe(false);
  });

  it('reads enabled PASID, PRI and ATS', () => {
    const gpu = fnAt(result, '5e:00.0');
    expect(gpu.pasid).toEqual({ width: 0x10, exec: true, privileged: true, enabled: true, offset: 0x2d0 });
    expect(gpu.pri).toEqual({ outstanding: 0x80, enabled: true, offset: 0x2c0 });
    expect(gpu.ats).toEqual({ queueDepth: 0x10, offset: 0x2b0 });
    expect(gpu.bars[0]).toEqual({ index: 0, type: 'mem64', prefetchable: true, base: 0x38a000000000, size: 32 * 1024 ** 3 });
  });

  it('a VF slot holding a function with other IDs is not taken for a VF', () => {
    const text = fixture('sriov.txt').replace(
      '18:10.5 Ethernet controller [0200]: Intel Corporation I350 Ethernet Controller Virtual Function [8086:1520]',
      '18:10.5 Ethernet controller [0200]: Intel Corporation Something Else [8086:1522]');
    const r = parseLspci(text);
    expect(fnAt(r, '18:10.5').virtfnOf).toBeUndefined();
    expect(r.warnings).toContainEqual(expect.stringMatching(/18:10\.5 sits where one of its VFs belongs but is not one/));
  });
});

describe('parseLspci: robustness', () => {
  it('rejoins lines that pcilib/lspci error messages were spliced into, with a warning per message', () => {
    const result = parseLspci(fixture('spliced.txt'));
    expect(result.spec.functions.map((f) => f.address)).toEqual(['00:00.0', '00:1c.0', '04:00.0']);
    expect(fnAt(result, '04:00.0').bars).toEqual([
      { index: 0, type: 'io', prefetchable: false, base: 0x3000, size: 256 },
      { index: 2, type: 'mem64', prefetchable: false, base: 0x50e00000, size: 64 * 1024 },
      { index: 4, type: 'mem64', prefetchable: false, base: 0x50e10000, size: 16 * 1024 },
    ]);
    const skipped = result.warnings.filter((w) => w.includes('spliced'));
    expect(skipped.map((w) => /^line (\d+)/.exec(w)?.[1])).toEqual(['1', '23', '33']);
    expect(skipped[2]).toContain('sysfs_read_vpd');
  });

  it('reads CRLF line endings and space-indented (pasted) dumps alike', () => {
    const tabs = fixture('amd-switch.txt');
    const crlf = parseLspci(tabs.replace(/\n/g, '\r\n'));
    const spaces = parseLspci(tabs.replace(/^\t+/gm, (m) => '        '.repeat(m.length)));
    const plain = parseLspci(tabs);
    expect(crlf.spec).toEqual(plain.spec);
    expect(spaces.spec).toEqual(plain.spec);
  });

  it('ignores capabilities and fields it does not model', () => {
    const r = parseLspci(dump(
      '00:1f.0 ISA bridge [0601]: Intel Corporation Device [8086:7a88] (rev 11)',
      '>Control: I/O+ Mem+ BusMaster+',
      '>Capabilities: [40] Some Future Capability: Foo+ Bar-',
      '>>Whatever: 1234',
      '>Capabilities: [100 v3] Extended Capability ID 0x2a',
      '>IOMMU group: 3',
    ));
    expect(r.spec.functions).toHaveLength(1);
    expect(fnAt(r, '00:1f.0')).toMatchObject({ observedGroup: 3, class: 0x0601, bars: [] });
  });

  it('warns when there are no IOMMU groups and the IOMMU vendor must be guessed', () => {
    const r = parseLspci(dump(
      '00:00.0 Host bridge [0600]: VIA Technologies, Inc. Device [1106:0001]',
      '>Control: I/O- Mem+ BusMaster+',
      '',
      '00:02.0 PCI bridge [0604]: VIA Technologies, Inc. Device [1106:0002]',
      '>Control: I/O- Mem+ BusMaster+',
      '',
    ));
    expect(r.observedGroups).toBe(false);
    expect(r.spec.platform.iommu).toBe('intel');
    expect(r.warnings).toContainEqual(expect.stringMatching(/no "IOMMU group:" lines.*older than 3\.7/));
    expect(r.warnings).toContainEqual(expect.stringMatching(/IOMMU vendor could not be told/));
    // A bridge whose Bus: line is missing cannot hold anything.
    expect(fnAt(r, '00:02.0').bridge).toEqual({ primary: 0, secondary: 0, subordinate: 0 });
    expect(r.warnings).toContainEqual(expect.stringMatching(/00:02\.0 is a bridge without a "Bus:" line/));
  });

  it('imports an unknown PCI Express type as an endpoint, with a warning', () => {
    const r = parseLspci(dump(
      '00:05.0 System peripheral [0880]: Intel Corporation Device [8086:09a2] (rev 04)',
      '>IOMMU group: 9',
      '>Capabilities: [40] Express (v2) Unknown type 11, MSI 00',
      '>>DevCap:\tMaxPayload 128 bytes, PhantFunc 0',
    ));
    expect(fnAt(r, '00:05.0').express).toMatchObject({ type: 'endpoint', offset: 0x40 });
    expect(r.warnings).toContainEqual(expect.stringMatching(/unknown PCI Express type "Unknown type 11, MSI 00"/));
  });

  it('refuses VF routing that cannot be: stride 0 with several VFs enabled', () => {
    const text = fixture('sriov.txt').replace('VF offset: 128, stride: 4, Device ID: 1520', 'VF offset: 128, stride: 0, Device ID: 1520');
    const r = parseLspci(text);
    expect(fnAt(r, '18:00.0').sriov).toMatchObject({ numVfs: 1, vfStride: 0 });
    expect(r.warnings).toContainEqual(expect.stringMatching(/18:00\.0: VF stride 0 with 2 VFs enabled/));
  });

  it('drops BARs that cannot be in the header and ignores ACS whose registers were not printed', () => {
    const r = parseLspci(dump(
      '00:01.0 PCI bridge [0604]: Intel Corporation Device [8086:1901]',
      '>IOMMU group: 1',
      '>Bus: primary=00, secondary=01, subordinate=01, sec-latency=0',
      '>Region 0: Memory at f0000000 (32-bit, non-prefetchable) [size=4K]',
      '>Region 1: Memory at f0001000 (64-bit, non-prefetchable) [size=4K]',
      '>Capabilities: [40] Express (v2) Root Port (Slot-), MSI 00',
      '>Capabilities: [140 v1] Access Control Services',
      '>Kernel driver in use: pcieport',
    ));
    const fn = fnAt(r, '00:01.0');
    expect(fn.bars.map((b) => b.index)).toEqual([0]);
    expect(fn.acs).toBeUndefined();
    expect(r.warnings).toContainEqual(expect.stringMatching(/region 1 does not fit a header with 2 BARs/));
    expect(r.warnings).toContainEqual(expect.stringMatching(/ACS registers were not printed for 00:01\.0/));
  });
});
