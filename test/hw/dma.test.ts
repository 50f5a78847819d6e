import { describe, expect, it } from 'vitest';
import type { DmaRequest } from '../../src/hw/dma/types.ts';
import type { PasidEntrySpec } from '../../src/hw/iommu/device-table.ts';
import { IoPageTable } from '../../src/hw/iommu/pgtable/builder.ts';
import {
  allocPasidDirectory, allocQueue, allocRootTable, enableTranslation, readFaultRecords, setupQueue, writeContext, writePasidEntry,
} from '../../src/hw/iommu/setup.ts';
import { FaultReason, NO_PASID } from '../../src/hw/iommu/types.ts';
import type { IommuUnit } from '../../src/hw/iommu/unit.ts';
import { Machine, X86_MSI_WINDOW, type MachineOptions } from '../../src/hw/machine.ts';
import { PhysicalMemory } from '../../src/hw/memory/physical-memory.ts';
import { bootHost } from '../../src/pci/boot.ts';
import { loadBuiltinHost } from '../../src/pci/builtin-hosts.ts';
import type { PciDev } from '../../src/pci/dev.ts';
import { PCI_ACS_CTRL, PCI_ACS_EC } from '../../src/pci/regs.ts';
import type { FunctionSpecInput, HostSpecInput } from '../../src/pci/spec.ts';
import { tableAllocator } from '../support/hw-bench.ts';
import { downstreamPort, endpoint, host, pciDevice, rootPort, upstreamPort } from '../support/spec-helpers.ts';

// The machine's DMA path: routing, the interrupt window, translation page by page through the real
// IOMMU unit, copies into physical memory, faults and Unsupported Requests.

const KiB = 1024;
const MiB = 2 ** 20;
const bar = (base: number, size = '16K'): FunctionSpecInput['bars'] => [{ index: 0, type: 'mem32', base, size }];

/** A machine over `spec` whose IOMMU units have translation on, their queues set up, and helpers for tables. */
function bench(spec: HostSpecInput, opts: MachineOptions = {}, cmdline = '') {
  const m = new Machine(bootHost(spec, cmdline), { memory: new PhysicalMemory({ size: 4 * 2 ** 30 }), ...opts });
  const alloc = tableAllocator(m.memory, 0x1000_0000, 0x1000_0000);
  const dirs = new Map<string, number>();
  for (const u of m.units) {
    const root = allocRootTable(alloc);
    enableTranslation(u.port, root);
    for (const [q, log2] of [['command', 4], ['fault', 4], ['page-request', 4]] as const) setupQueue(u.port, q, allocQueue(alloc, log2), log2);
    dirs.set(`root${u.index}`, root);
  }
  const dev = (bdf: string): PciDev => {
    const d = m.device(bdf);
    if (d === undefined) throw new Error(`no ${bdf}`);
    return d;
  };
  const unitOf = (d: PciDev): IommuUnit => {
    const u = m.iommuFor(d);
    if (u === null) throw new Error(`no IOMMU for ${d.shortBdf}`);
    return u.port;
  };
  /** A translate-mode context for requester ID `rid` behind `d`'s unit, PASID entry 0 (RID_PASID) as given. */
  const context = (d: PciDev, rid: number, entry0: PasidEntrySpec, extra: { pri?: boolean } = {}): void => {
    const u = m.iommuFor(d)!;
    const dir = allocPasidDirectory(alloc, 2);
    writeContext(m.memory, alloc, dirs.get(`root${u.index}`)!, rid, { mode: 'translate', pasidEnable: true, pdts: 2, pasidDir: dir, ...extra });
    writePasidEntry(m.memory, alloc, dir, 0, entry0);
  };
  const table = () => new IoPageTable(m.memory, alloc, { format: 'second', levels: 4, pageSize2M: true, pageSize1G: true });
  const faults = (d: PciDev) => readFaultRecords(unitOf(d), m.memory);
  return { m, alloc, dev, unitOf, context, table, faults };
}

const oneEndpoint = (): HostSpecInput => host([
  rootPort('00:01.0', 1, 1),
  endpoint('01:00.0', { bars: bar(0xa000_0000) }),
]);

const pattern = (n: number, seed = 1): Uint8Array => Uint8Array.from({ length: n }, (_, i) => (i * 31 + seed) & 0xff);
const write = (address: number, data: Uint8Array, extra: Partial<DmaRequest> = {}): DmaRequest => ({ op: 'write', address, length: data.length, data, ...extra });
const read = (address: number, length: number, extra: Partial<DmaRequest> = {}): DmaRequest => ({ op: 'read', address, length, ...extra });

describe('DMA through the IOMMU', () => {
  it('data lands at the translated addresses, across pages mapped to scattered frames, and reads back', () => {
    const { m, dev, context, table } = bench(oneEndpoint());
    const ep = dev('01:00.0');
    const pt = table();
    // Three IOVA pages onto frames that are not contiguous, in reverse order.
    expect(pt.map(0x10000, 0x4000_3000, 4 * KiB, { read: true, write: true })).toBe(true);
    expect(pt.map(0x11000, 0x4000_1000, 4 * KiB, { read: true, write: true })).toBe(true);
    expect(pt.map(0x12000, 0x4000_0000, 4 * KiB, { read: true, write: true })).toBe(true);
    context(ep, ep.rid, { pgtt: 'second', did: 1, ssRoot: pt.root });
    const data = pattern(10_000);
    const w = m.dma(ep, write(0x10800, data));
    expect(w).toMatchObject({ status: 'ok', bytesDone: 10_000, settled: true, device: '01:00.0' });
    expect(w.route.kind).toBe('upstream');
    const at = (pa: number, n: number): Uint8Array => { const b = new Uint8Array(n); m.memory.read(pa, b); return b; };
    expect(at(0x4000_3800, 0x800)).toEqual(data.subarray(0, 0x800));
    expect(at(0x4000_1000, 0x1000)).toEqual(data.subarray(0x800, 0x1800));
    expect(at(0x4000_0000, 10_000 - 0x1800)).toEqual(data.subarray(0x1800));
    const r = m.dma(ep, read(0x10800, 10_000));
    expect(r.status).toBe('ok');
    expect(r.data).toEqual(data);
  });

  it('a transfer through a 2 MiB mapping is copied per translation, not per 4 KiB page', () => {
    const { m, dev, context, table, unitOf } = bench(oneEndpoint());
    const ep = dev('01:00.0');
    const pt = table();
    expect(pt.map(0x20_0000, 0x4020_0000, 2 * MiB, { read: true, write: true })).toBe(true);
    context(ep, ep.rid, { pgtt: 'second', did: 1, ssRoot: pt.root });
    const unit = unitOf(ep);
    const before = unit.stats.iotlbHits + unit.stats.iotlbMisses;
    expect(m.dma(ep, write(0x20_0000, pattern(2 * MiB))).status).toBe('ok');
    expect(unit.stats.iotlbHits + unit.stats.iotlbMisses - before).toBe(1);
  });

  it('a fault stops the transfer at the page: the IOMMU records it and the result says where and why', () => {
    const { m, dev, context, table, faults } = bench(oneEndpoint());
    const ep = dev('01:00.0');
    const pt = table();
    pt.map(0x10000, 0x4000_0000, 4 * KiB, { read: true, write: true });
    pt.map(0x11000, 0x4000_1000, 4 * KiB, { read: true, write: false });
    context(ep, ep.rid, { pgtt: 'second', did: 1, ssRoot: pt.root });
    const r = m.dma(ep, write(0x10000, pattern(0x3000)));
    expect(r).toMatchObject({ status: 'fault', bytesDone: 0x1000 });
    expect(r.fault).toMatchObject({ iova: 0x11000, reason: FaultReason.WriteDenied, reasonName: 'WRITE_DENIED', recorded: true, write: true, response: null });
    expect(r.why).toBe('translation of 0x11000 failed: WRITE_DENIED (recorded by the IOMMU)');
    expect(faults(ep)).toEqual([expect.objectContaining({ reason: FaultReason.WriteDenied, rid: 0x0100, iova: 0x11000, write: true, pasid: NO_PASID })]);
    const miss = m.dma(ep, read(0x50000, 16));
    expect(miss.fault?.reasonName).toBe('PTE_NOT_PRESENT');
  });

  it('a function with no device-table entry faults (ROOT_NOT_PRESENT), recorded under the requester ID the IOMMU saw', () => {
    const spec = host([
      rootPort('00:01.0', 1, 2),
      { address: '01:00.0', id: '12d8:e111', class: '0604', bridge: { secondary: 2, subordinate: 2 }, express: { type: 'pcie-to-pci-bridge' } },
      pciDevice('02:04.0'),
    ]);
    const { m, dev, faults } = bench(spec);
    const card = dev('02:04.0');
    const r = m.dma(card, write(0x1000, pattern(8)));
    expect(r.status).toBe('fault');
    expect(r.fault?.reasonName).toBe('ROOT_NOT_PRESENT');
    expect(faults(card)[0]).toMatchObject({ rid: 0x0200, reason: FaultReason.RootNotPresent });
  });

  it('behind a PCIe-to-PCI bridge the context that matters is (secondary bus, 00.0)', () => {
    const spec = host([
      rootPort('00:01.0', 1, 2),
      { address: '01:00.0', id: '12d8:e111', class: '0604', bridge: { secondary: 2, subordinate: 2 }, express: { type: 'pcie-to-pci-bridge' } },
      pciDevice('02:04.0'),
    ]);
    const { m, dev, context, table } = bench(spec);
    const card = dev('02:04.0');
    const pt = table();
    pt.map(0x1000, 0x4000_0000, 4 * KiB, { read: true, write: true });
    context(card, 0x0200, { pgtt: 'second', did: 1, ssRoot: pt.root });
    expect(m.dma(card, write(0x1000, pattern(64))).status).toBe('ok');
  });

  it('a translated address outside physical memory is an Unsupported Request: the DMA fails, nothing throws', () => {
    const { m, dev, context, table } = bench(oneEndpoint());
    const ep = dev('01:00.0');
    const pt = table();
    pt.map(0x10000, 0x4000_0000, 4 * KiB, { read: true, write: true });
    pt.map(0x11000, 8 * 2 ** 30, 4 * KiB, { read: true, write: true }); // beyond the 4 GiB of memory
    context(ep, ep.rid, { pgtt: 'second', did: 1, ssRoot: pt.root });
    const r = m.dma(ep, write(0x10000, pattern(0x2000)));
    expect(r).toMatchObject({ status: 'ur', bytesDone: 0x1000 });
    expect(r.why).toBe('0x11000 translates to 0x200000000, outside physical memory: Unsupported Request');
  });

  it('with translation off (before an OS enables it) requests pass untranslated', () => {
    const m = new Machine(bootHost(oneEndpoint()), { memory: new PhysicalMemory({ size: 2 ** 30 }) });
    const ep = m.device('01:00.0')!;
    expect(m.dma(ep, write(0x2000, pattern(16))).status).toBe('ok');
    const back = new Uint8Array(16);
    m.memory.read(0x2000, back);
    expect(back).toEqual(pattern(16));
  });

  it('without IOMMU units (createIommu: null, or a host without an IOMMU) DMA goes to physical addresses', () => {
    for (const m of [
      new Machine(bootHost(oneEndpoint()), { createIommu: null, memory: new PhysicalMemory({ size: 2 ** 30 }) }),
      new Machine(bootHost({ ...oneEndpoint(), platform: { iommu: 'none' } }), { memory: new PhysicalMemory({ size: 2 ** 30 }) }),
    ]) {
      expect(m.units).toHaveLength(0);
      const r = m.dma('01:00.0', write(0x3000, pattern(100)));
      expect(r).toMatchObject({ status: 'ok', bytesDone: 100 });
      expect(r.why).toContain('untranslated: no IOMMU translates for this function');
    }
  });

  it('refuses malformed requests and unknown functions with a result, never an exception', () => {
    const { m } = bench(oneEndpoint());
    const bad: DmaRequest[] = [
      { op: 'write', address: 0, length: 16 },
      { op: 'read', address: -1, length: 16 },
      { op: 'read', address: 0, length: 2 ** 31 },
      { op: 'read', address: 0, length: 1.5 },
      { op: 'read', address: 0, length: 8, data: new Uint8Array(4) },
      { op: 'read', address: 0, length: 8, pasid: -3 },
      { op: 'copy' as 'read', address: 0, length: 8 },
    ];
    for (const req of bad) expect(m.dma('01:00.0', req).status).toBe('aborted');
    expect(m.dma('07:00.0', read(0, 4))).toMatchObject({ status: 'aborted', why: 'no function 07:00.0 on this machine' });
    expect(m.dma('01:00.0', read(0, 4, { pasid: 1 }))).toMatchObject({ status: 'aborted', why: '01:00.0 has no PASID capability: it cannot tag a request with PASID 1' });
    expect(m.dma('01:00.0', read(0, 4, { priv: true })).status).toBe('aborted');
    expect(m.dma('01:00.0', read(0, 0)).status).toBe('ok');
  });
});

describe('the interrupt window', () => {
  it('an aligned dword write to 0xFEExxxxx is an interrupt message, not DMA (no translation, no fault)', () => {
    const seen: number[] = [];
    const { m, dev, faults } = bench(oneEndpoint(), { onMsi: (msg) => seen.push(msg.vector) });
    const ep = dev('01:00.0');
    const data = Uint8Array.of(0x41, 0x00, 0x00, 0x00);
    const r = m.dma(ep, write(0xfee0_3000, data));
    expect(r.status).toBe('msi');
    expect(r.msi).toMatchObject({ device: '01:00.0', rid: 0x0100, address: 0xfee0_3000, data: 0x41, vector: 0x41, destination: 3 });
    expect(r.why).toContain('interrupt remapping is not modelled');
    expect(m.msiLog).toHaveLength(1);
    expect(seen).toEqual([0x41]);
    expect(faults(ep)).toEqual([]);
  });

  it('a read of the window, or a write that is not one aligned dword, is an Unsupported Request', () => {
    const { m } = bench(oneEndpoint());
    expect(m.dma('01:00.0', read(0xfee0_0000, 4)).status).toBe('ur');
    expect(m.dma('01:00.0', write(0xfee0_0000, pattern(8))).status).toBe('ur');
    expect(m.dma('01:00.0', write(0xfee0_0002, pattern(4))).status).toBe('ur');
    expect(m.msiLog).toHaveLength(0);
  });

  it('a transfer that runs into the window from below stops there', () => {
    const { m, dev, context, table } = bench(oneEndpoint());
    const ep = dev('01:00.0');
    const pt = table();
    pt.map(X86_MSI_WINDOW.base - 0x1000, 0x4000_0000, 4 * KiB, { read: true, write: true });
    context(ep, ep.rid, { pgtt: 'second', did: 1, ssRoot: pt.root });
    const r = m.dma(ep, write(X86_MSI_WINDOW.base - 0x1000, pattern(0x2000)));
    expect(r).toMatchObject({ status: 'ur', bytesDone: 0x1000 });
  });

  it('the message log is bounded; ARM platforms have no fixed window', () => {
    const { m } = bench(oneEndpoint(), { msiLogSize: 3 });
    for (let v = 0; v < 5; v++) m.dma('01:00.0', write(0xfee0_0000, Uint8Array.of(v, 0, 0, 0)));
    expect(m.msiLog.map((x) => x.vector)).toEqual([2, 3, 4]);
    expect(m.msiLog[2]?.seq).toBe(5);
    const arm = new Machine(bootHost({ ...oneEndpoint(), platform: { iommu: 'arm-smmu' } }), { memory: new PhysicalMemory({ size: 8 * 2 ** 30 }) });
    expect(arm.dma('01:00.0', write(0xfee0_0000, pattern(4))).status).toBe('ok');
  });
});

describe('peer-to-peer DMA', () => {
  const sw = (acs: 'full' | 'none'): HostSpecInput => host([
    rootPort('00:01.0', 1, 4),
    upstreamPort('01:00.0', 2, 4),
    downstreamPort('02:01.0', 3, 3, acs, acs === 'full' ? { acs: { cap: ['SV', 'RR', 'CR', 'UF', 'EC'], ctl: [] } } : {}),
    downstreamPort('02:02.0', 4, 4, 'full'),
    endpoint('03:00.0', { bars: bar(0xa000_0000) }),
    endpoint('04:00.0', { bars: bar(0xa010_0000) }),
  ]);

  it('lands in the peer\'s BAR untranslated: the IOMMU never sees the request', () => {
    const { m, dev, unitOf, faults } = bench(sw('none'));
    const ep = dev('03:00.0');
    const unit = unitOf(ep);
    const r = m.dma(ep, write(0xa010_0100, pattern(64)));
    expect(r).toMatchObject({ status: 'p2p', bytesDone: 64 });
    expect(r.route).toMatchObject({ kind: 'p2p', offset: 0x100, mechanism: 'switch' });
    const inBar = new Uint8Array(64);
    m.barMemory(dev('04:00.0'), 0)!.read(0x100, inBar);
    expect(inBar).toEqual(pattern(64));
    expect(unit.stats.iotlbHits + unit.stats.iotlbMisses).toBe(0);
    expect(faults(ep)).toEqual([]);
    expect(m.dma(ep, read(0xa010_0100, 64)).data).toEqual(pattern(64));
  });

  it('a transfer running past the end of the peer\'s BAR is cut there', () => {
    const { m } = bench(sw('none'));
    const r = m.dma('03:00.0', write(0xa010_3ff0, pattern(64)));
    expect(r).toMatchObject({ status: 'p2p', bytesDone: 16 });
    expect(r.why).toContain('was cut there after 16 bytes');
  });

  it('with ACS redirect the same transfer goes to the IOMMU (and faults there without a mapping)', () => {
    const { m } = bench(sw('full'));
    const r = m.dma('03:00.0', write(0xa010_0000, pattern(4)));
    expect(r.status).toBe('fault');
    expect(r.route.kind).toBe('upstream');
  });

  it('Egress Control blocks it', () => {
    const { m, dev } = bench(sw('full'));
    const dsp = dev('02:01.0');
    dsp.config.write16(dsp.acsCap + PCI_ACS_CTRL, PCI_ACS_EC);
    const r = m.dma('03:00.0', write(0xa010_0000, pattern(4)));
    expect(r).toMatchObject({ status: 'blocked', bytesDone: 0 });
    expect(m.stats.blocked).toBe(1);
  });
});

describe('IOMMU units', () => {
  it('one per Intel DMAR unit: the default host\'s accelerators have their own', () => {
    const m = new Machine(bootHost(loadBuiltinHost('default')));
    expect(m.units.map((u) => u.name)).toEqual(['DRHD0 (socket 0, accelerator stack 6a)', 'DRHD1 (everything else)']);
    expect(m.iommuFor(m.device('6a:01.0')!)?.index).toBe(0);
    expect(m.iommuFor(m.device('16:00.0')!)?.index).toBe(1);
    expect(m.iommuFor(m.device('38:02.1')!)?.index).toBe(1);
  });

  it('one per PCI segment elsewhere; functions no unit covers DMA untranslated', () => {
    const spec = host([
      endpoint('00:02.0', { express: { type: 'rc-integrated-endpoint' } }),
      endpoint('0001:00:02.0', { express: { type: 'rc-integrated-endpoint' } }),
      endpoint('00:03.0', { express: { type: 'rc-integrated-endpoint' } }),
    ], { platform: { iommu: 'amd', uncovered: ['00:03.0'] } });
    const m = new Machine(bootHost(spec), { memory: new PhysicalMemory({ size: 2 ** 30 }) });
    expect(m.units.map((u) => [u.name, u.domain])).toEqual([['amd IOMMU, segment 0000', 0], ['amd IOMMU, segment 0001', 1]]);
    expect(m.iommuFor(m.device('00:03.0')!)).toBeNull();
  });

  it('accepts any IommuPort (a fake) and reports responses for requester IDs nobody carries', () => {
    let sink: ((msg: { rid: number; pasid: number; prgi: number; code: 0 | 1 | 15; privateData: null }) => void) | undefined;
    const m = new Machine(bootHost(oneEndpoint()), {
      memory: new PhysicalMemory({ size: 2 ** 30 }),
      createIommu: (ctx) => {
        sink = ctx.sendToDevice;
        return { translate: (req, out) => { Object.assign(out, { ok: true, pa: req.iova, pageSize: 4096, perms: 3, reason: 0, stage: 0, faultGpa: 0, untranslated: false, recorded: false }); return true; }, pageRequest: () => {} };
      },
    });
    expect(m.dma('01:00.0', write(0x1000, pattern(4))).status).toBe('ok');
    sink?.({ rid: 0x0900, pasid: NO_PASID, prgi: 1, code: 0, privateData: null });
    sink?.({ rid: 0x0100, pasid: NO_PASID, prgi: 1, code: 0, privateData: null });
    expect(m.deliverMessages()).toBe(2);
    expect(m.stats.undeliverableResponses).toBe(1);
    expect(m.engine(m.device('01:00.0')!).stats.spuriousResponses).toBe(1);
  });
});
