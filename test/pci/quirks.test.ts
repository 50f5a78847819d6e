import { describe, expect, it } from 'vitest';
import { PCI_DEVFN } from '../../src/pci/address.ts';
import { bootHost } from '../../src/pci/boot.ts';
import type { PciDev } from '../../src/pci/dev.ts';
import {
  PCI_DEV_FLAG_PCIE_BRIDGE_ALIAS, PCI_DEV_FLAGS_ACS_ENABLED_QUIRK, PCI_DEV_FLAGS_BRIDGE_XLATE_ROOT,
} from '../../src/pci/dev.ts';
import { buildHost, type Host } from '../../src/pci/host.ts';
import { parseKernelCmdline } from '../../src/pci/kernel-options.ts';
import {
  expandIdSet, INTEL_PCH_ACS_IDS, INTEL_SPT_PCH_IDS, NXP_RP_IDS, WANGXUN_NIC_IDS, ZHAOXIN_PORT_IDS,
} from '../../src/pci/quirks/acs-quirk-ids.ts';
import {
  ACS_QUIRKS, acsQuirkVerdict, INTEL_SPT_ACS_CTRL, isIntelPchAcsRootPort, isIntelSptPchRootPort,
  type AcsQuirkContext,
} from '../../src/pci/quirks/acs-quirks.ts';
import { ALIAS_FIXUPS } from '../../src/pci/quirks/dma-alias-quirks.ts';
import {
  PCI_ACS_CR, PCI_ACS_DT, PCI_ACS_EC, PCI_ACS_RR, PCI_ACS_SV, PCI_ACS_TB, PCI_ACS_UF, REQ_ACS_FLAGS,
} from '../../src/pci/regs.ts';
import type { FunctionSpecInput, HostSpecInput } from '../../src/pci/spec.ts';

// The quirk tables pinned against Linux's drivers/pci/quirks.c (v6.18 / linux-next): table order,
// ID lists, and each quirk function's conditions, positive and negative.

const CTX: AcsQuirkContext = { amdIvrs: false, override: null };
const REQ = REQ_ACS_FLAGS;

type Express = NonNullable<FunctionSpecInput['express']>['type'];

/** A function description: id "vvvv:dddd", PCIe type (or none for conventional PCI), class. */
function fn(address: string, id: string, type: Express | null, extra: Partial<FunctionSpecInput> = {}): FunctionSpecInput {
  const cls = type === 'root-port' || type === 'downstream-port' || type === 'upstream-port' ? '0604' : '0200';
  return {
    address, id, class: cls,
    ...(type === null ? {} : { express: { type } }),
    ...(type === 'root-port' || type === 'downstream-port' || type === 'upstream-port'
      ? { bridge: { secondary: 0x10 + parseInt(address.slice(3, 5), 16), subordinate: 0x10 + parseInt(address.slice(3, 5), 16) } }
      : {}),
    ...extra,
  };
}

function host(functions: FunctionSpecInput[], platform: HostSpecInput['platform'] = undefined): Host {
  return buildHost({ name: 'quirk test', functions, ...(platform === undefined ? {} : { platform }) });
}

function at(h: Host, address: string): PciDev {
  const d = h.topology.get(address);
  if (d === undefined) throw new Error(`no ${address}`);
  return d;
}

/** The one function of a one-function host, of PCIe type `type`. */
function single(id: string, type: Express | null, extra: Partial<FunctionSpecInput> = {}): PciDev {
  return at(host([fn('00:01.0', id, type, extra)]), '00:01.0');
}

/** The quirk's name and verdict, or null when the table has no opinion. */
function ask(dev: PciDev, flags = REQ, ctx: AcsQuirkContext = CTX): [string, boolean] | null {
  const r = acsQuirkVerdict(dev, flags, ctx);
  return r === null ? null : [r.quirk.name, r.verdict];
}

describe('pci_dev_acs_enabled[] table', () => {
  it('keeps Linux order: runs of (function, vendor) as they appear in quirks.c', () => {
    const runs: string[] = [];
    for (const q of ACS_QUIRKS) {
      const key = `${q.name}@${q.vendor === -1 ? 'any' : q.vendor.toString(16).padStart(4, '0')}`;
      if (runs.at(-1) !== key) runs.push(key);
    }
    expect(runs).toEqual([
      'pci_quirk_amd_sb_acs@1002', 'pci_quirk_amd_sb_acs@1022',
      'pci_quirk_mf_endpoint_acs@1924', 'pci_quirk_mf_endpoint_acs@8086',
      'pci_quirk_rciep_acs@8086',
      'pci_quirk_qcom_rp_acs@17cb', 'pci_quirk_qcom_rp_acs@1dbf',
      'pci_quirk_intel_pch_acs@8086', 'pci_quirk_intel_spt_pch_acs@8086',
      'pci_quirk_mf_endpoint_acs@19a2', 'pci_quirk_mf_endpoint_acs@10df',
      'pci_quirk_cavium_acs@177d', 'pci_quirk_mf_endpoint_acs@177d',
      'pci_quirk_xgene_acs@10e8', 'pci_quirk_xgene_acs@1def',
      'pci_quirk_mf_endpoint_acs@14e4', 'pci_quirk_brcm_acs@14e4',
      'pci_quirk_loongson_acs@0014',
      'pci_quirk_al_acs@1c36',
      'pci_quirk_mf_endpoint_acs@1d17',
      'pci_quirk_nxp_rp_acs@1957',
      'pci_quirk_zhaoxin_pcie_ports_acs@1d17',
      'pci_quirk_wangxun_nic_acs@8088',
      'pcie_acs_overrides@any',
    ]);
  });

  it('lists the multifunction endpoints of quirks.c, and only those', () => {
    const mf = ACS_QUIRKS.filter((q) => q.name === 'pci_quirk_mf_endpoint_acs')
      .map((q) => `${q.vendor.toString(16).padStart(4, '0')}:${(q.device as number).toString(16).padStart(4, '0')}`);
    expect(mf).toEqual([
      '1924:0903', '1924:0923', '1924:0a03',
      ...['10c6', '10db', '10dd', '10e1', '10f1', '10f7', '10f8', '10f9', '10fa', '10fb', '10fc', '1507', '1514',
        '151c', '1529', '152a', '154d', '154f', '1551', '1558', '1509', '150e', '150f', '1510', '1511', '1516',
        '1527', '10c9', '10e6', '10e7', '10e8', '150a', '150d', '1518', '1526', '10a7', '10a9', '10d6', '1521',
        '1522', '1523', '1524', '105e', '105f', '1060', '10d9', '15b7', '15b8'].map((d) => `8086:${d}`),
      '19a2:0710', '10df:0720',
      '177d:a026', '177d:a059', '177d:a060',
      ...['16d7', '1750', '1751', '1752', '1760', '1761', '1762', '1763'].map((d) => `14e4:${d}`),
      '1d17:3038', '1d17:3104', '1d17:9083',
    ]);
  });

  it('transcribes the PCH, SPT, NXP, Zhaoxin and Wangxun ID lists', () => {
    const pch = expandIdSet(INTEL_PCH_ACS_IDS);
    expect(pch).toHaveLength(16 * 4 + 12 * 2 + 8 + 15 + 8);
    expect(pch).toContain(0x1d1e);
    expect(pch).not.toContain(0x1d11);
    expect(pch).toContain(0x8d1e);
    expect(pch).not.toContain(0x8d1f);
    expect(pch).not.toContain(0x8c91);
    expect(pch).not.toContain(0x9c1c);
    expect(expandIdSet(INTEL_SPT_PCH_IDS)).toHaveLength(16 + 4 + 16 + 8 + 12);
    expect(expandIdSet(NXP_RP_IDS)).toEqual([
      0x8d81, 0x8da1, 0x8d83, 0x8d80, 0x8da0, 0x8d82, 0x8d90, 0x8db0, 0x8d92, 0x8d91, 0x8db1, 0x8d93,
      0x8d89, 0x8da9, 0x8d8b, 0x8d88, 0x8da8, 0x8d8a, 0x8d98, 0x8db8, 0x8d9a, 0x8d99, 0x8db9, 0x8d9b,
    ]);
    expect(expandIdSet(ZHAOXIN_PORT_IDS)).toHaveLength(15 + 1 + 48);
    expect(expandIdSet(WANGXUN_NIC_IDS)).toHaveLength(16 + 2 + 6);
  });
});

describe('pci_quirk_mf_endpoint_acs', () => {
  const i350 = (): PciDev => at(host([fn('00:01.0', '8086:1521', 'endpoint'), fn('00:01.1', '8086:1521', 'endpoint')]), '00:01.1');

  it('provides everything but EC', () => {
    expect(ask(i350())).toEqual(['pci_quirk_mf_endpoint_acs', true]);
    expect(ask(i350(), PCI_ACS_SV | PCI_ACS_TB | PCI_ACS_RR | PCI_ACS_CR | PCI_ACS_UF | PCI_ACS_DT)?.[1]).toBe(true);
    expect(ask(i350(), REQ | PCI_ACS_EC)).toEqual(['pci_quirk_mf_endpoint_acs', false]);
    expect(ask(i350(), PCI_ACS_EC)?.[1]).toBe(false);
  });

  it('decides on the ID alone: single-function and conventional devices too', () => {
    expect(ask(single('8086:10fb', 'endpoint'))).toEqual(['pci_quirk_mf_endpoint_acs', true]);
    expect(ask(single('1924:0a03', null))).toEqual(['pci_quirk_mf_endpoint_acs', true]);
  });

  it('covers Emulex, Broadcom, Cavium, Zhaoxin and Solarflare entries', () => {
    for (const id of ['19a2:0710', '10df:0720', '14e4:1750', '14e4:16d7', '177d:a059', '1d17:9083', '1924:0903']) {
      expect(ask(single(id, 'endpoint')), id).toEqual(['pci_quirk_mf_endpoint_acs', true]);
    }
  });

  it('does not list 82571 quad ports, X550 or X710', () => {
    for (const id of ['8086:10bc', '8086:10a4', '8086:10da', '8086:1563', '8086:1572']) {
      expect(ask(single(id, 'endpoint')), id).toBeNull();
    }
  });
});

describe('pci_quirk_amd_sb_acs', () => {
  const sb = (ivrsOnRoot: boolean): Host => host([
    fn('00:14.0', '1002:4385', null, { class: '0c05' }),
    fn('00:14.2', '1002:4383', null, { class: '0403' }),
    fn('00:14.4', '1002:4384', null, { class: '0604', bridge: { secondary: 1, subordinate: 1 } }),
    fn('00:14.5', '1022:7809', null, { class: '0c03' }),
    fn('01:00.0', '1002:4385', null, { class: '0c05' }),
    fn('01:00.1', '1002:4385', null, { class: '0c05' }),
    fn('00:15.0', '1022:780f', null, { class: '0604', bridge: { secondary: 2, subordinate: 2 } }),
  ], ivrsOnRoot ? { iommu: 'amd' } : undefined);
  const ivrs: AcsQuirkContext = { amdIvrs: true, override: null };

  it('isolates multifunction southbridge functions on the root bus when IVRS exists', () => {
    const h = sb(true);
    for (const a of ['00:14.0', '00:14.2', '00:14.4', '00:14.5']) expect(ask(at(h, a), REQ, ivrs), a).toEqual(['pci_quirk_amd_sb_acs', true]);
  });

  it('judges only RR, CR, EC and DT, and provides only RR and CR', () => {
    const d = at(sb(true), '00:14.0');
    expect(ask(d, PCI_ACS_SV | PCI_ACS_TB | PCI_ACS_UF, ivrs)?.[1]).toBe(true);
    expect(ask(d, REQ | PCI_ACS_EC, ivrs)?.[1]).toBe(false);
    expect(ask(d, REQ | PCI_ACS_DT, ivrs)?.[1]).toBe(false);
  });

  it('has no opinion without IVRS, off the root bus, or on a single-function device', () => {
    const h = sb(true);
    expect(ask(at(h, '00:14.0'))).toBeNull(); // amdIvrs false
    expect(ask(at(h, '01:00.0'), REQ, ivrs)).toBeNull(); // behind the SB's PCI bridge
    expect(ask(at(h, '00:15.0'), REQ, ivrs)).toBeNull(); // 00:15 has one function
  });
});

describe('pci_quirk_rciep_acs', () => {
  it('isolates any Intel RC-integrated endpoint', () => {
    expect(ask(single('8086:0b25', 'rc-integrated-endpoint'))).toEqual(['pci_quirk_rciep_acs', true]);
    expect(ask(single('8086:0b25', 'rc-integrated-endpoint'), REQ | PCI_ACS_EC)?.[1]).toBe(false);
  });

  it('has no opinion on other Intel functions, PCIe or not', () => {
    expect(ask(single('8086:0b25', 'endpoint'))).toBeNull();
    expect(ask(single('8086:a323', null, { class: '0c05' }))).toBeNull();
    expect(ask(single('1022:1234', 'rc-integrated-endpoint'))).toBeNull();
  });
});

describe('pci_quirk_qcom_rp_acs', () => {
  it('isolates the listed IDs whatever their port type', () => {
    expect(ask(single('17cb:0401', 'root-port'))).toEqual(['pci_quirk_qcom_rp_acs', true]);
    expect(ask(single('17cb:0115', 'endpoint'))).toEqual(['pci_quirk_qcom_rp_acs', true]);
    expect(ask(single('1dbf:0401', 'root-port'))).toEqual(['pci_quirk_qcom_rp_acs', true]);
    expect(ask(single('17cb:0402', 'root-port'))).toBeNull();
  });

  it('honours the release for Hamoa/Glymur (added after v6.18)', () => {
    const hamoa = single('17cb:0111', 'root-port');
    expect(ask(hamoa)).toEqual(['pci_quirk_qcom_rp_acs', true]);
    expect(ask(hamoa, REQ, { ...CTX, kernelVersion: '6.17.9-arch1-1' })).toBeNull();
    expect(ask(hamoa, REQ, { ...CTX, kernelVersion: '6.18.2' })).toBeNull();
    expect(ask(hamoa, REQ, { ...CTX, kernelVersion: '6.19.0' })?.[1]).toBe(true);
    expect(ask(single('17cb:0120', 'root-port'), REQ, { ...CTX, kernelVersion: '7.0' })?.[1]).toBe(true);
    expect(ask(single('17cb:0401', 'root-port'), REQ, { ...CTX, kernelVersion: '6.12.0' })?.[1]).toBe(true);
  });
});

describe('pci_quirk_intel_pch_acs', () => {
  const pch = (id: string, type: Express = 'root-port'): Host => host([fn('00:1c.0', id, type)]);

  it('matches only root ports in the PCH list', () => {
    expect(isIntelPchAcsRootPort(at(pch('8086:1c10'), '00:1c.0'))).toBe(true);
    expect(isIntelPchAcsRootPort(at(pch('8086:1d10'), '00:1c.0'))).toBe(true);
    expect(isIntelPchAcsRootPort(at(pch('8086:1d11'), '00:1c.0'))).toBe(false); // Patsburg odd ID
    expect(isIntelPchAcsRootPort(at(pch('8086:8d1f'), '00:1c.0'))).toBe(false);
    expect(isIntelPchAcsRootPort(at(pch('8086:1c10', 'downstream-port'), '00:1c.0'))).toBe(false);
  });

  it('counts as isolated only after the enable quirk set its flag', () => {
    const before = at(pch('8086:1c10'), '00:1c.0');
    expect(ask(before)).toEqual(['pci_quirk_intel_pch_acs', false]);
    expect(ask(before, 0)).toEqual(['pci_quirk_intel_pch_acs', true]);

    const booted = at(bootHost({ name: 'pch', functions: [fn('00:1c.0', '8086:8c10', 'root-port')] }).host, '00:1c.0');
    expect(booted.devFlags & PCI_DEV_FLAGS_ACS_ENABLED_QUIRK).not.toBe(0);
    expect(ask(booted)).toEqual(['pci_quirk_intel_pch_acs', true]);
    expect(ask(booted, REQ | PCI_ACS_EC)?.[1]).toBe(false);

    const off = bootHost({ name: 'pch', functions: [fn('00:1c.0', '8086:8c10', 'root-port')] }, parseKernelCmdline('intel_iommu=off'));
    expect(ask(at(off.host, '00:1c.0'))).toEqual(['pci_quirk_intel_pch_acs', false]);
  });

  it('has no opinion on a listed ID that is not a root port', () => {
    expect(ask(at(pch('8086:1c10', 'downstream-port'), '00:1c.0'))).toBeNull();
  });
});

describe('pci_quirk_intel_spt_pch_acs', () => {
  const spt = (id = '8086:a110', withAcs = true): PciDev =>
    single(id, 'root-port', withAcs ? { acs: { cap: 0, ctl: 0 } } : {});
  const setDwords = (d: PciDev, cap: number, ctrl: number): void => {
    d.config.write32(d.acsCap + 4, cap);
    d.config.write32(d.acsCap + INTEL_SPT_ACS_CTRL, ctrl);
  };

  it('matches Sunrise Point, Union Point and 7th/8th-gen mobile root ports', () => {
    for (const id of ['8086:a110', '8086:a16a', '8086:a29f', '8086:a2e7', '8086:9d1b']) expect(isIntelSptPchRootPort(spt(id)), id).toBe(true);
    for (const id of ['8086:a120', '8086:a16b', '8086:9d1c']) expect(isIntelSptPchRootPort(spt(id)), id).toBe(false);
  });

  it('reads ACSCap and ACSCtl as dwords at +4 and +8', () => {
    const d = spt();
    setDwords(d, PCI_ACS_SV | PCI_ACS_RR | PCI_ACS_CR | PCI_ACS_UF, PCI_ACS_SV | PCI_ACS_RR | PCI_ACS_CR | PCI_ACS_UF);
    expect(ask(d)).toEqual(['pci_quirk_intel_spt_pch_acs', true]);
    setDwords(d, PCI_ACS_SV | PCI_ACS_RR | PCI_ACS_CR | PCI_ACS_UF, PCI_ACS_SV | PCI_ACS_CR | PCI_ACS_UF);
    expect(ask(d)).toEqual(['pci_quirk_intel_spt_pch_acs', false]);
    // Unimplemented bits count as enabled; EC must really be set.
    setDwords(d, PCI_ACS_SV, PCI_ACS_SV);
    expect(ask(d)?.[1]).toBe(true);
    expect(ask(d, REQ | PCI_ACS_EC)?.[1]).toBe(false);
  });

  it('has no opinion on a matching port without an ACS capability', () => {
    expect(ask(spt('8086:a110', false))).toBeNull();
  });

  it('is enabled by boot in the dword control register', () => {
    const b = bootHost({ name: 'spt', functions: [fn('00:1c.0', '8086:a290', 'root-port', { acs: { cap: ['SV', 'RR', 'CR', 'UF'], ctl: 0 } })] });
    const d = at(b.host, '00:1c.0');
    // The spec writes ACSCap as a word at +4; the SPT port reads that whole dword as its capability.
    expect(d.config.read32(d.acsCap + INTEL_SPT_ACS_CTRL) & REQ).toBe(REQ);
    expect(ask(d)).toEqual(['pci_quirk_intel_spt_pch_acs', true]);
  });
});

describe('pci_quirk_cavium_acs and the Cavium multifunction entries', () => {
  it('isolates ThunderX root ports in its list, before the multifunction entries', () => {
    expect(ask(single('177d:a100', 'root-port'))).toEqual(['pci_quirk_cavium_acs', true]);
    expect(ask(single('177d:af84', 'root-port'))).toEqual(['pci_quirk_cavium_acs', true]);
    expect(ask(single('177d:b884', 'root-port'))).toEqual(['pci_quirk_cavium_acs', true]);
    expect(ask(single('177d:a026', 'root-port'))).toEqual(['pci_quirk_cavium_acs', true]);
  });

  it('leaves other Cavium functions to later entries', () => {
    expect(ask(single('177d:a026', 'endpoint'))).toEqual(['pci_quirk_mf_endpoint_acs', true]);
    expect(ask(single('177d:a100', 'endpoint'))).toBeNull();
    expect(ask(single('177d:b000', 'root-port'))).toBeNull();
  });
});

describe('unconditional "isolated port" entries', () => {
  it.each([
    ['10e8:e004', 'pci_quirk_xgene_acs'], ['1def:e005', 'pci_quirk_xgene_acs'], ['1def:e00c', 'pci_quirk_xgene_acs'],
    ['14e4:d714', 'pci_quirk_brcm_acs'], ['0014:7a59', 'pci_quirk_loongson_acs'], ['0014:3c29', 'pci_quirk_loongson_acs'],
    ['1957:8d9b', 'pci_quirk_nxp_rp_acs'], ['1957:8da0', 'pci_quirk_nxp_rp_acs'],
  ])('%s is isolated as root port and as anything else (%s)', (id, name) => {
    expect(ask(single(id, 'root-port'))).toEqual([name, true]);
    expect(ask(single(id, 'endpoint'))).toEqual([name, true]);
    expect(ask(single(id, 'root-port'), REQ | PCI_ACS_EC)).toEqual([name, false]);
  });

  it('has no opinion on unlisted IDs of those vendors', () => {
    for (const id of ['1def:e00d', '1def:e004', '14e4:d715', '0014:7a5a', '1957:8d84', '1957:0000']) {
      expect(ask(single(id, 'root-port')), id).toBeNull();
    }
  });
});

describe('pci_quirk_al_acs', () => {
  it('isolates Annapurna Labs root ports only', () => {
    expect(ask(single('1c36:0031', 'root-port'))).toEqual(['pci_quirk_al_acs', true]);
    expect(ask(single('1c36:0031', 'root-port'), REQ | PCI_ACS_DT)?.[1]).toBe(false);
    expect(ask(single('1c36:0031', 'endpoint'))).toBeNull();
    expect(ask(single('1c36:0031', null, { class: '0604', bridge: { secondary: 1, subordinate: 1 } }))).toBeNull();
  });
});

describe('pci_quirk_zhaoxin_pcie_ports_acs', () => {
  it('isolates listed root and downstream ports', () => {
    expect(ask(single('1d17:0715', 'root-port'))).toEqual(['pci_quirk_zhaoxin_pcie_ports_acs', true]);
    expect(ask(single('1d17:0752', 'downstream-port'))).toEqual(['pci_quirk_zhaoxin_pcie_ports_acs', true]);
  });

  it('says "not isolated" for every other Zhaoxin root or downstream port', () => {
    expect(ask(single('1d17:0722', 'root-port'))).toEqual(['pci_quirk_zhaoxin_pcie_ports_acs', false]);
    expect(ask(single('1d17:071f', 'downstream-port'))).toEqual(['pci_quirk_zhaoxin_pcie_ports_acs', false]);
    expect(ask(single('1d17:0753', 'root-port'))).toEqual(['pci_quirk_zhaoxin_pcie_ports_acs', false]);
  });

  it('has no opinion on other Zhaoxin functions; its multifunction entries come first', () => {
    expect(ask(single('1d17:0715', 'endpoint'))).toBeNull();
    expect(ask(single('1d17:0715', 'upstream-port'))).toBeNull();
    expect(ask(single('1d17:3104', 'endpoint'))).toEqual(['pci_quirk_mf_endpoint_acs', true]);
  });

  it('beats the out-of-tree override, which comes last', () => {
    const override: AcsQuirkContext = { amdIvrs: false, override: { downstream: true, multifunction: true, ids: [] } };
    expect(ask(single('1d17:0722', 'root-port'), REQ, override)).toEqual(['pci_quirk_zhaoxin_pcie_ports_acs', false]);
    expect(ask(single('1022:1483', 'root-port'), REQ, override)).toEqual(['pcie_acs_overrides', true]);
  });
});

describe('pci_quirk_wangxun_nic_acs', () => {
  it('isolates the em, sp and aml NICs', () => {
    for (const id of ['8088:0100', '8088:010f', '8088:1001', '8088:2001', '8088:5025', '8088:5140']) {
      expect(ask(single(id, 'endpoint')), id).toEqual(['pci_quirk_wangxun_nic_acs', true]);
    }
    expect(ask(single('8088:1001', 'endpoint'), REQ | PCI_ACS_EC)?.[1]).toBe(false);
  });

  it('says "not isolated" for any other Wangxun function, whatever its type', () => {
    expect(ask(single('8088:1000', 'endpoint'))).toEqual(['pci_quirk_wangxun_nic_acs', false]);
    expect(ask(single('8088:0110', 'root-port'))).toEqual(['pci_quirk_wangxun_nic_acs', false]);
    expect(ask(single('8088:5011', null))).toEqual(['pci_quirk_wangxun_nic_acs', false]);
  });
});

describe('DMA alias fixups', () => {
  const boot = (functions: FunctionSpecInput[]): Host => bootHost({ name: 'alias', functions }).host;
  const aliases = (d: PciDev): number[] => {
    const out: number[] = [];
    for (let devfn = 0; devfn < 256; devfn++) if (d.hasDmaAlias(devfn)) out.push(devfn);
    return out;
  };

  it('quirk_dma_func0_alias: Ricoh and Glenfly functions other than 0 alias function 0', () => {
    const h = boot([
      fn('00:05.0', '1180:e832', null, { class: '0c00' }),
      fn('00:05.1', '1180:e832', null, { class: '0805' }),
      fn('00:06.0', '6766:3d40', 'endpoint', { class: '0300' }),
      fn('00:06.1', '6766:3d41', 'endpoint', { class: '0403' }),
      fn('00:07.1', '1180:e823', null, { class: '0805' }),
    ]);
    expect(aliases(at(h, '00:05.1'))).toEqual([PCI_DEVFN(5, 0)]);
    expect(at(h, '00:05.0').dmaAliasMask).toBeNull();
    expect(aliases(at(h, '00:06.1'))).toEqual([PCI_DEVFN(6, 0)]);
    expect(at(h, '00:07.1').dmaAliasMask).toBeNull();
  });

  it('quirk_dma_func1_alias: Marvell, HighPoint, JMicron JMB388 and Plextor alias function 1', () => {
    const h = boot([
      fn('00:03.0', '1b4b:9230', 'endpoint', { class: '0106' }),
      fn('00:04.0', '1103:0645', 'endpoint', { class: '0106' }),
      fn('00:08.0', '197b:2392', 'endpoint', { class: '0805' }),
      fn('00:09.0', '1c28:0122', 'endpoint', { class: '0106' }),
      fn('00:0a.0', '197b:2394', 'endpoint', { class: '0805' }),
      fn('00:0b.1', '1b4b:9123', 'endpoint', { class: '0101' }),
    ]);
    expect(aliases(at(h, '00:03.0'))).toEqual([PCI_DEVFN(3, 1)]);
    expect(aliases(at(h, '00:04.0'))).toEqual([PCI_DEVFN(4, 1)]);
    expect(aliases(at(h, '00:08.0'))).toEqual([PCI_DEVFN(8, 1)]);
    expect(aliases(at(h, '00:09.0'))).toEqual([PCI_DEVFN(9, 1)]);
    expect(at(h, '00:0a.0').dmaAliasMask).toBeNull(); // 2394 is the xD controller, not listed
    expect(at(h, '00:0b.1').dmaAliasMask).toBeNull(); // function 1 itself
    expect(ALIAS_FIXUPS.find((f) => f.vendor === 0x1b4b)?.devices).toHaveLength(15);
  });

  it('quirk_fixed_dma_alias: Adaptec 3405/3805 by subsystem only', () => {
    const h = boot([
      fn('00:0e.0', '9005:0285', null, { class: '0104', subsystem: '9005:02bb' }),
      fn('00:0f.0', '9005:0285', null, { class: '0104', subsystem: '9005:02bc' }),
      fn('00:10.0', '9005:0285', null, { class: '0104', subsystem: '9005:0290' }),
    ]);
    expect(aliases(at(h, '00:0e.0'))).toEqual([PCI_DEVFN(1, 0)]);
    expect(aliases(at(h, '00:0f.0'))).toEqual([PCI_DEVFN(1, 0)]);
    expect(at(h, '00:10.0').dmaAliasMask).toBeNull();
  });

  it('quirk_use_pcie_bridge_dma_alias: a conventional bridge below a PCIe port that is not a PCIe-to-PCI bridge', () => {
    const h = boot([
      fn('00:1c.0', '8086:a110', 'root-port', { bridge: { secondary: 1, subordinate: 2 } }),
      fn('01:00.0', '1b21:1080', null, { class: '0604', bridge: { secondary: 2, subordinate: 2 } }),
      fn('00:1d.0', '8086:a118', 'root-port', { bridge: { secondary: 3, subordinate: 5 } }),
      fn('03:00.0', '104c:8240', 'pcie-to-pci-bridge', { class: '0604', bridge: { secondary: 4, subordinate: 5 } }),
      fn('04:00.0', '10e3:8113', null, { class: '0604', bridge: { secondary: 5, subordinate: 5 } }),
      fn('00:1e.0', '1283:8892', null, { class: '0604', bridge: { secondary: 6, subordinate: 6 } }),
      fn('00:1f.0', '8086:a118', 'root-port', { bridge: { secondary: 7, subordinate: 7 } }),
      fn('07:00.0', '1283:8893', 'pcie-to-pci-bridge', { class: '0604', bridge: { secondary: 8, subordinate: 8 } }),
    ]);
    expect(at(h, '01:00.0').devFlags & PCI_DEV_FLAG_PCIE_BRIDGE_ALIAS).not.toBe(0);
    expect(at(h, '04:00.0').devFlags & PCI_DEV_FLAG_PCIE_BRIDGE_ALIAS).toBe(0); // parent is a PCIe-to-PCI bridge
    expect(at(h, '00:1e.0').devFlags & PCI_DEV_FLAG_PCIE_BRIDGE_ALIAS).toBe(0); // on the root bus
    expect(at(h, '07:00.0').devFlags & PCI_DEV_FLAG_PCIE_BRIDGE_ALIAS).toBe(0); // has a PCIe capability
  });

  it('quirk_mic_x200_dma_alias and quirk_pex_vca_alias', () => {
    const h = boot([
      fn('00:02.0', '8086:2264', 'endpoint', { class: '0880' }),
      fn('00:03.0', '8086:2958', 'endpoint', { class: '0b40' }),
      fn('00:04.0', '8086:2957', 'endpoint', { class: '0b40' }),
    ]);
    expect(aliases(at(h, '00:02.0'))).toEqual([PCI_DEVFN(0x10, 0), PCI_DEVFN(0x11, 0), PCI_DEVFN(0x12, 3)]);
    const vca = aliases(at(h, '00:03.0'));
    expect(vca).toHaveLength(32 * 5);
    expect(vca).toContain(PCI_DEVFN(0x1f, 4));
    expect(vca).not.toContain(PCI_DEVFN(0x1f, 5));
    expect(at(h, '00:04.0').dmaAliasMask).toBeNull();
  });

  it('quirk_bridge_cavm_thrx2_pcie_root: Broadcom vendor ID only', () => {
    const h = boot([
      fn('00:01.0', '14e4:9000', 'root-port', { bridge: { secondary: 1, subordinate: 1 } }),
      fn('00:02.0', '14e4:9084', 'root-port', { bridge: { secondary: 2, subordinate: 2 } }),
      fn('00:03.0', '177d:9000', 'root-port', { bridge: { secondary: 3, subordinate: 3 } }),
    ]);
    expect(at(h, '00:01.0').devFlags & PCI_DEV_FLAGS_BRIDGE_XLATE_ROOT).not.toBe(0);
    expect(at(h, '00:02.0').devFlags & PCI_DEV_FLAGS_BRIDGE_XLATE_ROOT).not.toBe(0);
    expect(at(h, '00:03.0').devFlags & PCI_DEV_FLAGS_BRIDGE_XLATE_ROOT).toBe(0);
  });

  it('quirk_plx_ntb_dma_alias aliases all 256 devfns', () => {
    const h = boot([fn('00:01.0', '10b5:87b0', 'endpoint', { class: '0680' }), fn('00:02.0', '10b5:8796', 'endpoint', { class: '0680' })]);
    expect(aliases(at(h, '00:01.0'))).toHaveLength(256);
    expect(at(h, '00:02.0').dmaAliasMask).toBeNull();
  });

  it('quirk_switchtec_ntb_dma_alias is reported as not modelled, for "other bridge" NTB functions only', () => {
    const b = bootHost({ name: 'switchtec', functions: [
      fn('00:01.0', '11f8:8536', 'endpoint', { class: '0680' }),
      fn('00:02.0', '11f8:4552', 'endpoint', { class: '0580' }),
      fn('00:03.0', '1055:1003', 'endpoint', { class: '0680' }),
    ] });
    expect(at(b.host, '00:01.0').dmaAliasMask).toBeNull();
    expect(b.log.filter((l) => l.includes('quirk_switchtec_ntb_dma_alias'))).toEqual([
      expect.stringMatching(/^00:01\.0: .*not modelled/) as unknown as string,
      expect.stringMatching(/^00:03\.0: .*not modelled/) as unknown as string,
    ]);
    const ids = ALIAS_FIXUPS.find((f) => f.vendor === 0x11f8)?.devices.map((d) => d.toString(16));
    expect(ids).toEqual([
      '8531', '8532', '8533', '8534', '8535', '8536', '8541', '8542', '8543', '8544', '8545', '8546',
      '8551', '8552', '8553', '8554', '8555', '8556', '8561', '8562', '8563', '8564', '8565', '8566',
      '8571', '8572', '8573', '8574', '8575', '8576',
      '4000', '4084', '4068', '4052', '4036', '4028', '4100', '4184', '4168', '4152', '4136', '4128',
      '4200', '4284', '4268', '4252', '4236', '4228', '4352', '4336', '4328', '4452', '4436', '4428',
      '4552', '4536', '4528',
      '5000', '5084', '5068', '5052', '5036', '5028', '5100', '5184', '5168', '5152', '5136', '5128',
      '5200', '5284', '5268', '5252', '5236', '5228', '5300', '5384', '5368', '5352', '5336', '5328',
      '5400', '5484', '5468', '5452', '5436', '5428', '5500', '5584', '5568', '5552', '5536', '5528',
    ]);
  });
});
