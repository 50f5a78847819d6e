// IOMMU_GET_HW_INFO through dispatch (uAPI reference §6.11, §13): a device bound with a cookie can be
// queried (seed 003): INTEL_VTD data with the copy rules, capabilities and max PASID width.

import { describe, expect, it } from 'vitest';
import { PCI_PASID_CTRL_ENABLE, PCI_PASID_CTRL_EXEC, PCI_PASID_CTRL_PRIV } from '../../../src/hw/dma/pri.ts';
import type { IommufdCtx } from '../../../src/kernel/iommufd/context.ts';
import { iommufdDeviceBind } from '../../../src/kernel/iommufd/device.ts';
import * as K from '../../../src/kernel/iommufd/hw-info.ts';
import { PCI_EXT_CAP_ID_PASID, PCI_PASID_CTRL } from '../../../src/pci/regs.ts';
import * as C from '../../../src/uapi/iommufd-consts.ts';
import { iommu_hw_info_vtd } from '../../../src/uapi/iommufd-structs.ts';
import { client, PAGE, value, world } from '../../uapi/dispatch-helpers.ts';

const NVME = '39:00.0';
const DSA = '6a:01.0';

function setup() {
  const w = world();
  const c = client(w);
  const file = value(c.proc.fds.get(c.fd));
  const ctx = file.file as IommufdCtx;
  const nvme = value(iommufdDeviceBind(ctx, w.dev(NVME), { file }));
  const dsa = value(iommufdDeviceBind(ctx, w.dev(DSA), { file }));
  const buf = c.anon(1);
  const info = (f: Record<string, unknown>) => c.call('IOMMU_GET_HW_INFO', { dev_id: nvme.id, data_uptr: BigInt(buf), data_len: 0, ...f });
  const out = (r: { out: unknown }) => r.out as Record<string, number & bigint>;
  return { w, c, ctx, nvme, dsa, buf, info, out };
}

describe('IOMMU_GET_HW_INFO', () => {
  it('kernel constants agree with the uapi ones', () => {
    expect(K.HW_INFO_VTD_SIZE).toBe(iommu_hw_info_vtd.sizeof);
    expect([K.IOMMU_HW_INFO_FLAG_INPUT_TYPE, K.IOMMU_HW_INFO_TYPE_DEFAULT, K.IOMMU_HW_INFO_TYPE_INTEL_VTD])
      .toEqual([C.IOMMU_HW_INFO_FLAG_INPUT_TYPE, C.IOMMU_HW_INFO_TYPE_DEFAULT, C.IOMMU_HW_INFO_TYPE_INTEL_VTD]);
    expect([K.IOMMU_HW_CAP_DIRTY_TRACKING, K.IOMMU_HW_CAP_PCI_PASID_EXEC, K.IOMMU_HW_CAP_PCI_PASID_PRIV, K.IOMMU_HW_CAP_PCI_ATS_NOT_SUPPORTED])
      .toEqual([C.IOMMU_HW_CAP_DIRTY_TRACKING, C.IOMMU_HW_CAP_PCI_PASID_EXEC, C.IOMMU_HW_CAP_PCI_PASID_PRIV, C.IOMMU_HW_CAP_PCI_ATS_NOT_SUPPORTED]);
  });

  it('data_len 0: only the type, length and capabilities are reported', () => {
    const s = setup();
    value(s.c.proc.mm.write(s.buf, new Uint8Array(64).fill(0xaa)));
    const r = s.info({});
    expect(r.e).toBe('ok');
    expect(s.out(r).out_data_type).toBe(C.IOMMU_HW_INFO_TYPE_INTEL_VTD);
    expect(s.out(r).data_len).toBe(24);
    // The NVMe has no ATS capability (PCI_ATS_NOT_SUPPORTED) and no PASID capability.
    expect(s.out(r).out_capabilities).toBe(C.IOMMU_HW_CAP_DIRTY_TRACKING | C.IOMMU_HW_CAP_PCI_ATS_NOT_SUPPORTED);
    expect(s.out(r).out_max_pasid_log2).toBe(0);
    const b = new Uint8Array(64);
    value(s.c.proc.mm.read(s.buf, b));
    expect(b.every((x) => x === 0xaa)).toBe(true);
  });

  it('copies min(data_len, 24) bytes and zero-fills the rest of the user buffer', () => {
    const s = setup();
    const caps = s.w.core.ioasisDriverOf(s.w.dev(NVME))!.caps;
    for (const len of [8, 24, 40]) {
      value(s.c.proc.mm.write(s.buf, new Uint8Array(64).fill(0xaa)));
      const r = s.info({ data_len: len });
      expect(r.e).toBe('ok');
      expect(s.out(r).data_len).toBe(24);
      const b = new Uint8Array(64);
      value(s.c.proc.mm.read(s.buf, b));
      const full = new Uint8Array(24);
      iommu_hw_info_vtd.encode({ flags: 0, __reserved: 0, cap_reg: K.vtdCapReg(caps), ecap_reg: K.vtdEcapReg(caps) }, full);
      expect([...b.subarray(0, Math.min(len, 24))]).toEqual([...full.subarray(0, Math.min(len, 24))]);
      expect(b.subarray(24, len).every((x) => x === 0)).toBe(true);
      expect(b.subarray(len).every((x) => x === 0xaa)).toBe(true);
    }
    const v = iommu_hw_info_vtd.decode(K.hwInfoVtd(caps));
    // MGAW is the address width − 1; PASID support and PRS are set on the default unit.
    expect(Number((v.cap_reg >> 16n) & 0x3fn)).toBe(caps.inputAddressWidth - 1);
    expect((v.ecap_reg >> 40n) & 1n).toBe(1n);
    expect((v.ecap_reg >> 29n) & 1n).toBe(1n);
  });

  it('PASID: out_max_pasid_log2 and EXEC/PRIV from the PASID control register', () => {
    const s = setup();
    const dev = s.w.dev(DSA);
    const log2 = Math.log2(s.w.core.maxPasids(dev));
    const cap = dev.config.findExtCapability(PCI_EXT_CAP_ID_PASID);
    // The IOMMU driver enabled PASID (with Privileged mode, which the DSA supports) at probe.
    expect(dev.config.read16(cap + PCI_PASID_CTRL) & (PCI_PASID_CTRL_ENABLE | PCI_PASID_CTRL_PRIV)).toBe(PCI_PASID_CTRL_ENABLE | PCI_PASID_CTRL_PRIV);
    dev.config.write16(cap + PCI_PASID_CTRL, 0);
    let r = s.info({ dev_id: s.dsa.id });
    expect(s.out(r).out_max_pasid_log2).toBe(log2);
    expect(s.out(r).out_capabilities).toBe(C.IOMMU_HW_CAP_DIRTY_TRACKING);
    dev.config.write16(cap + PCI_PASID_CTRL, PCI_PASID_CTRL_ENABLE | PCI_PASID_CTRL_EXEC | PCI_PASID_CTRL_PRIV);
    r = s.info({ dev_id: s.dsa.id });
    const got = s.out(r).out_capabilities;
    // EXEC is only writable when the capability advertises it.
    const exec = (dev.config.read16(cap + PCI_PASID_CTRL) & PCI_PASID_CTRL_EXEC) !== 0;
    expect(got).toBe(C.IOMMU_HW_CAP_DIRTY_TRACKING | C.IOMMU_HW_CAP_PCI_PASID_PRIV | (exec ? C.IOMMU_HW_CAP_PCI_PASID_EXEC : 0n));
  });

  it('errnos: unknown flags or __reserved → EOPNOTSUPP; bad dev_id → ENOENT; an unsupported input type → EOPNOTSUPP; bad data_uptr → EFAULT', () => {
    const s = setup();
    expect(s.info({ flags: 2 }).e).toBe('EOPNOTSUPP');
    expect(s.info({ __reserved: new Uint8Array([0, 1, 0]) }).e).toBe('EOPNOTSUPP');
    expect(s.info({ dev_id: 99 }).e).toBe('ENOENT');
    expect(s.info({ dev_id: s.nvme.id + 100 }).e).toBe('ENOENT');
    expect(s.info({ flags: C.IOMMU_HW_INFO_FLAG_INPUT_TYPE, out_data_type: C.IOMMU_HW_INFO_TYPE_ARM_SMMUV3 }).e).toBe('EOPNOTSUPP');
    expect(s.info({ flags: C.IOMMU_HW_INFO_FLAG_INPUT_TYPE, out_data_type: C.IOMMU_HW_INFO_TYPE_INTEL_VTD }).e).toBe('ok');
    // Without INPUT_TYPE the field is ignored.
    expect(s.info({ out_data_type: C.IOMMU_HW_INFO_TYPE_ARM_SMMUV3 }).e).toBe('ok');
    expect(s.info({ data_len: 24, data_uptr: BigInt(s.buf + 64 * PAGE) }).e).toBe('EFAULT');
  });
});
