import { describe, expect, it } from 'vitest';
import { bootHost } from '../../src/pci/boot.ts';
import type { PciDev } from '../../src/pci/dev.ts';
import { buildHost } from '../../src/pci/host.ts';
import { parseLspci } from '../../src/pci/lspci/index.ts';
import {
  PCI_ACS_CR, PCI_ACS_DT, PCI_ACS_RR, PCI_ACS_SV, PCI_ACS_TB, PCI_ACS_UF, PCI_BASE_ADDRESS_0, PCI_EXP_DEVCTL2,
  PCI_EXP_DEVCTL2_ARI, PCI_EXT_CAP_ID_ARI, PCI_EXT_CAP_ID_ATS, PCI_EXT_CAP_ID_PASID, PCI_EXT_CAP_ID_PRI,
  PCI_EXT_CAP_ID_SRIOV, PCI_PASID_CAP, PCI_PRI_CTRL, PcieType,
} from '../../src/pci/regs.ts';
import { fixture } from './lspci-helpers.ts';

function dev(host: ReturnType<typeof buildHost>, address: string): PciDev {
  const d = host.topology.get(address);
  if (d === undefined) throw new Error(`no device ${address}`);
  return d;
}

/** The chain of bridges above a device, nearest first, through bus.self. */
function bridgesAbove(d: PciDev): string[] {
  const out: string[] = [];
  for (let b = d.bus.self; b !== null; b = b.bus.self) out.push(b.shortBdf);
  return out;
}

describe('lspci dump -> buildHost: config space reads back what the dump printed', () => {
  const amd = buildHost(parseLspci(fixture('amd-switch.txt')).spec);

  it('ACS registers and offsets', () => {
    const rp = dev(amd, '00:01.1');
    expect(rp.acsCap).toBe(0x2a0);
    expect(rp.acsCapReg()).toBe(PCI_ACS_SV | PCI_ACS_TB | PCI_ACS_RR | PCI_ACS_CR | PCI_ACS_UF | PCI_ACS_DT);
    expect(rp.acsCtrlReg()).toBe(PCI_ACS_SV | PCI_ACS_RR | PCI_ACS_CR | PCI_ACS_UF);
    expect(dev(amd, '02:02.0').acsCap).toBe(0);
  });

  it('PCI Express types', () => {
    expect(dev(amd, '00:01.1').pcieType()).toBe(PcieType.RootPort);
    expect(dev(amd, '00:01.1').pcieCap).toBe(0x58);
    expect(dev(amd, '01:00.0').pcieType()).toBe(PcieType.UpstreamPort);
    expect(dev(amd, '02:01.0').pcieType()).toBe(PcieType.DownstreamPort);
    expect(dev(amd, '03:00.0').pcieType()).toBe(PcieType.Endpoint);
    expect(dev(amd, '00:14.0').isPcie()).toBe(false);
  });

  it('bus nesting through the switch, and multifunction inferred from siblings', () => {
    expect(bridgesAbove(dev(amd, '03:00.0'))).toEqual(['02:01.0', '01:00.0', '00:01.1']);
    expect(bridgesAbove(dev(amd, '04:00.3'))).toEqual(['02:02.0', '01:00.0', '00:01.1']);
    expect(bridgesAbove(dev(amd, '05:00.0'))).toEqual(['00:08.1']);
    expect(dev(amd, '00:01.1').bus.isRoot()).toBe(true);
    expect(dev(amd, '04:00.1').multifunction).toBe(true);
    expect(dev(amd, '03:00.0').multifunction).toBe(false);
    expect(amd.topology.warnings).toEqual([]);
  });

  it('BARs and the kept device information', () => {
    const nvme = dev(amd, '03:00.0');
    expect(nvme.config.read32(PCI_BASE_ADDRESS_0)).toBe((0xfc800000 | 0x4) >>> 0);
    expect(nvme.config.barSizes[0]).toBe(16 * 1024);
    expect(nvme.info).toMatchObject({ observedGroup: 3, driver: 'nvme' });
    expect(nvme.classCode).toBe(0x010802);
  });

  it('domains, VMD root buses and the PCIe-to-PCI bridge', () => {
    const host = buildHost(parseLspci(fixture('intel-domains.txt')).spec);
    expect(bridgesAbove(dev(host, '10000:e1:00.0'))).toEqual(['10000:e0:1d.0']);
    expect(dev(host, '10000:e0:1d.0').bus.isRoot()).toBe(true);
    expect(bridgesAbove(dev(host, '03:00.0'))).toEqual(['02:00.0', '00:1c.0']);
    expect(dev(host, '02:00.0').pcieType()).toBe(PcieType.PcieToPciBridge);
    expect(dev(host, '00:02.0').pcieType()).toBe(PcieType.RcIntegratedEndpoint);
    expect(dev(host, '01:00.0').pcieType()).toBe(PcieType.LegacyEndpoint);
  });

  it('Sunrise Point root ports: printed ACSCtl at +6, and booting enables the dword control at +8', () => {
    const spec = parseLspci(fixture('intel-domains.txt')).spec;
    const spt = dev(buildHost(spec), '00:1c.0');
    expect(spt.config.read16(spt.acsCap + 4)).toBe(PCI_ACS_SV | PCI_ACS_RR | PCI_ACS_CR | PCI_ACS_UF);
    expect(spt.config.read16(spt.acsCap + 6)).toBe(0);
    const booted = bootHost(spec);
    expect(booted.log).toContain('00:1c.0: Intel SPT PCH root port ACS enabled (dword layout)');
  });

  it('SR-IOV: listed VFs hang off their PF, missing ones are generated, ARI forwarding is on', () => {
    const host = buildHost(parseLspci(fixture('sriov.txt')).spec);
    expect(host.topology.size).toBe(11);
    expect(dev(host, '18:10.0').physfn?.shortBdf).toBe('18:00.0');
    expect(dev(host, '18:10.4').physfn?.shortBdf).toBe('18:00.0');
    expect(dev(host, '18:10.5').physfn?.shortBdf).toBe('18:00.1');
    expect(dev(host, '18:10.1').info.driver).toBe('vfio-pci');
    const pf = dev(host, '18:00.0');
    expect(pf.config.findExtCapability(PCI_EXT_CAP_ID_SRIOV)).toBe(0x160);
    expect(pf.config.findExtCapability(PCI_EXT_CAP_ID_ARI)).toBe(0x150);
    const rp = dev(host, '17:00.0');
    expect(rp.config.read16(rp.pcieCap + PCI_EXP_DEVCTL2) & PCI_EXP_DEVCTL2_ARI).toBe(PCI_EXP_DEVCTL2_ARI);
    const gpu = dev(host, '5e:00.0');
    const pasid = gpu.config.findExtCapability(PCI_EXT_CAP_ID_PASID);
    expect(pasid).toBe(0x2d0);
    expect((gpu.config.read16(pasid + PCI_PASID_CAP) >> 8) & 0x1f).toBe(0x10);
    expect(gpu.config.read16(gpu.config.findExtCapability(PCI_EXT_CAP_ID_PRI) + PCI_PRI_CTRL) & 1).toBe(1);
    expect(gpu.config.findExtCapability(PCI_EXT_CAP_ID_ATS)).toBe(0x2b0);
  });
});
