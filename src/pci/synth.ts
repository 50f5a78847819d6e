import { ConfigSpace } from './config-space.ts';
import {
  EXT_CAP_SIZES, PCI_ACS_CAP, PCI_ACS_CTRL, PCI_ARI_CAP, PCI_ATS_CAP, PCI_BASE_ADDRESS_0,
  PCI_BASE_ADDRESS_MEM_PREFETCH, PCI_BASE_ADDRESS_MEM_TYPE_64, PCI_BASE_ADDRESS_SPACE_IO, PCI_CAP_ID_EXP,
  PCI_CAP_ID_PM, PCI_CAPABILITY_LIST, PCI_CLASS_DEVICE, PCI_CLASS_PROG, PCI_DEVICE_ID, PCI_EXP_CAP_SIZEOF_V2,
  PCI_EXP_DEVCAP2, PCI_EXP_DEVCAP2_ARI, PCI_EXP_DEVCTL2, PCI_EXP_DEVCTL2_ARI, PCI_EXP_FLAGS, PCI_EXP_FLAGS_SLOT,
  PCI_EXT_CAP_ID_ACS, PCI_EXT_CAP_ID_ARI, PCI_EXT_CAP_ID_ATS, PCI_EXT_CAP_ID_PASID, PCI_EXT_CAP_ID_PRI,
  PCI_EXT_CAP_ID_SRIOV, PCI_HEADER_TYPE, PCI_HEADER_TYPE_BRIDGE, PCI_HEADER_TYPE_MFD, PCI_PASID_CAP,
  PCI_PASID_CAP_EXEC, PCI_PASID_CAP_PRIV, PCI_PASID_CTRL, PCI_PRI_CTRL, PCI_PRI_MAX_REQ, PCI_PRIMARY_BUS,
  PCI_REVISION_ID, PCI_SECONDARY_BUS, PCI_SRIOV_CTRL, PCI_SRIOV_CTRL_VFE, PCI_SRIOV_INITIAL_VF,
  PCI_SRIOV_NUM_VF, PCI_SRIOV_TOTAL_VF, PCI_SRIOV_VF_DID, PCI_SRIOV_VF_OFFSET, PCI_SRIOV_VF_STRIDE, PCI_STATUS,
  PCI_STATUS_CAP_LIST, PCI_SUBORDINATE_BUS, PCI_SUBSYSTEM_ID, PCI_SUBSYSTEM_VENDOR_ID, PCI_VENDOR_ID,
} from './regs.ts';
import { PCIE_TYPE_KEYS, type BarSpec, type FunctionSpec } from './spec.ts';

/** Thrown when a function's described capabilities cannot be laid out in config space. */
export class ConfigLayoutError extends Error {}

interface ExtCap { id: number; version: number; offset: number | undefined; fill: (cfg: ConfigSpace, at: number) => void }

/**
 * Lay a function description out as real configuration space bytes: type 0/1 header, the standard
 * capability list (PM, PCI Express) and the extended list (ACS, ARI, ATS, SR-IOV, PRI, PASID).
 * Offsets given in the spec (as lspci prints them) are honoured; others are allocated in order.
 */
export function synthesizeConfig(fn: FunctionSpec, busNumber: number, multifunction: boolean): ConfigSpace {
  const cfg = new ConfigSpace();
  const [vendor, device] = splitId(fn.id);
  cfg.write16(PCI_VENDOR_ID, vendor);
  cfg.write16(PCI_DEVICE_ID, device);
  cfg.write8(PCI_REVISION_ID, fn.revision);
  cfg.write8(PCI_CLASS_PROG, fn.progIf);
  cfg.write16(PCI_CLASS_DEVICE, fn.class);
  const isBridge = fn.bridge !== undefined;
  cfg.write8(PCI_HEADER_TYPE, (isBridge ? PCI_HEADER_TYPE_BRIDGE : 0) | (multifunction ? PCI_HEADER_TYPE_MFD : 0));
  if (fn.bridge !== undefined) {
    cfg.write8(PCI_PRIMARY_BUS, fn.bridge.primary ?? busNumber);
    cfg.write8(PCI_SECONDARY_BUS, fn.bridge.secondary);
    cfg.write8(PCI_SUBORDINATE_BUS, fn.bridge.subordinate);
  } else if (fn.subsystem !== undefined) {
    const [sv, sd] = splitId(fn.subsystem);
    cfg.write16(PCI_SUBSYSTEM_VENDOR_ID, sv);
    cfg.write16(PCI_SUBSYSTEM_ID, sd);
  }
  writeBars(cfg, fn.bars, isBridge ? 2 : 6, fn.address);
  writeStandardCaps(cfg, fn);
  writeExtCaps(cfg, fn);
  return cfg;
}

export function splitId(id: string): [number, number] {
  const [v = '0', d = '0'] = id.split(':');
  return [parseInt(v, 16), parseInt(d, 16)];
}

function writeBars(cfg: ConfigSpace, bars: readonly BarSpec[], count: number, where: string): void {
  const used = new Set<number>();
  for (const bar of bars) {
    const slots = bar.type === 'mem64' ? 2 : 1;
    if (bar.index + slots > count) throw new ConfigLayoutError(`${where}: BAR ${bar.index} does not fit a header with ${count} BARs`);
    for (let i = bar.index; i < bar.index + slots; i++) {
      if (used.has(i)) throw new ConfigLayoutError(`${where}: BAR ${i} is described twice`);
      used.add(i);
    }
    if ((bar.size & (bar.size - 1)) !== 0 && bar.size < 2 ** 31) throw new ConfigLayoutError(`${where}: BAR ${bar.index} size ${bar.size} is not a power of two`);
    const off = PCI_BASE_ADDRESS_0 + bar.index * 4;
    let flags: number;
    if (bar.type === 'io') flags = PCI_BASE_ADDRESS_SPACE_IO;
    else flags = (bar.type === 'mem64' ? PCI_BASE_ADDRESS_MEM_TYPE_64 : 0) | (bar.prefetchable ? PCI_BASE_ADDRESS_MEM_PREFETCH : 0);
    // Raw bytes first (sizes unknown yet), then register the size so later writes follow the sizing rules.
    const low = (bar.base % 0x1_0000_0000) >>> 0;
    cfg.bytes.set(u32le(((low & ~(bar.type === 'io' ? 0x3 : 0xf)) | flags) >>> 0), off);
    if (bar.type === 'mem64') cfg.bytes.set(u32le(Math.floor(bar.base / 0x1_0000_0000) >>> 0), off + 4);
    cfg.barSizes[bar.index] = bar.size;
  }
}

function u32le(v: number): Uint8Array {
  return new Uint8Array([v & 0xff, (v >>> 8) & 0xff, (v >>> 16) & 0xff, (v >>> 24) & 0xff]);
}

function writeStandardCaps(cfg: ConfigSpace, fn: FunctionSpec): void {
  // Every PCIe function carries PM; conventional ones get it too so the list is never empty.
  const caps: Array<{ id: number; size: number; at: number | undefined }> = [{ id: PCI_CAP_ID_PM, size: 8, at: undefined }];
  if (fn.express !== undefined) caps.push({ id: PCI_CAP_ID_EXP, size: PCI_EXP_CAP_SIZEOF_V2, at: fn.express.offset });
  const placed = placeCaps(caps, 0x40, 0x100, fn.address);
  cfg.write16(PCI_STATUS, cfg.read16(PCI_STATUS) | PCI_STATUS_CAP_LIST);
  cfg.write8(PCI_CAPABILITY_LIST, placed[0]?.at ?? 0);
  placed.forEach((cap, i) => {
    cfg.write8(cap.at, cap.id);
    cfg.write8(cap.at + 1, placed[i + 1]?.at ?? 0);
  });
  const exp = placed.find((c) => c.id === PCI_CAP_ID_EXP);
  if (exp !== undefined && fn.express !== undefined) {
    const type = PCIE_TYPE_KEYS[fn.express.type];
    cfg.write16(exp.at + PCI_EXP_FLAGS, fn.express.version | (type << 4) | (fn.express.slot ? PCI_EXP_FLAGS_SLOT : 0));
    if (fn.express.ariForwarding) {
      cfg.write32(exp.at + PCI_EXP_DEVCAP2, PCI_EXP_DEVCAP2_ARI);
      cfg.write16(exp.at + PCI_EXP_DEVCTL2, PCI_EXP_DEVCTL2_ARI);
    }
  }
}

function writeExtCaps(cfg: ConfigSpace, fn: FunctionSpec): void {
  const wanted: ExtCap[] = [];
  const { acs, ari, ats, pri, pasid, sriov } = fn;
  if (acs !== undefined) {
    wanted.push({ id: PCI_EXT_CAP_ID_ACS, version: 1, offset: acs.offset, fill: (c, at) => {
      c.write16(at + PCI_ACS_CAP, acs.cap);
      c.write16(at + PCI_ACS_CTRL, acs.ctl);
    } });
  }
  if (ari !== undefined) {
    wanted.push({ id: PCI_EXT_CAP_ID_ARI, version: 1, offset: ari.offset, fill: (c, at) => c.write16(at + PCI_ARI_CAP, ari.nextFunction << 8) });
  }
  if (ats !== undefined) {
    wanted.push({ id: PCI_EXT_CAP_ID_ATS, version: 1, offset: ats.offset, fill: (c, at) => c.write16(at + PCI_ATS_CAP, ats.queueDepth) });
  }
  if (sriov !== undefined) {
    wanted.push({ id: PCI_EXT_CAP_ID_SRIOV, version: 1, offset: sriov.offset, fill: (c, at) => {
      c.write16(at + PCI_SRIOV_CTRL, sriov.numVfs > 0 ? PCI_SRIOV_CTRL_VFE : 0);
      c.write16(at + PCI_SRIOV_INITIAL_VF, sriov.totalVfs);
      c.write16(at + PCI_SRIOV_TOTAL_VF, sriov.totalVfs);
      c.write16(at + PCI_SRIOV_NUM_VF, sriov.numVfs);
      c.write16(at + PCI_SRIOV_VF_OFFSET, sriov.vfOffset);
      c.write16(at + PCI_SRIOV_VF_STRIDE, sriov.vfStride);
      c.write16(at + PCI_SRIOV_VF_DID, sriov.vfDevice);
    } });
  }
  if (pri !== undefined) {
    wanted.push({ id: PCI_EXT_CAP_ID_PRI, version: 1, offset: pri.offset, fill: (c, at) => {
      c.write16(at + PCI_PRI_CTRL, pri.enabled ? 1 : 0);
      c.write32(at + PCI_PRI_MAX_REQ, pri.outstanding);
    } });
  }
  if (pasid !== undefined) {
    wanted.push({ id: PCI_EXT_CAP_ID_PASID, version: 1, offset: pasid.offset, fill: (c, at) => {
      c.write16(at + PCI_PASID_CAP, (pasid.exec ? PCI_PASID_CAP_EXEC : 0) | (pasid.privileged ? PCI_PASID_CAP_PRIV : 0) | (pasid.width << 8));
      c.write16(at + PCI_PASID_CTRL, pasid.enabled ? 1 : 0);
    } });
  }
  if (wanted.length === 0) return;
  const placed = placeCaps(wanted.map((w) => ({ id: w.id, size: EXT_CAP_SIZES[w.id] ?? 8, at: w.offset })), 0x100, 0x1000, fn.address);
  // The list always starts at 0x100. A dump may place its first modelled capability later (AER and
  // others we do not model usually sit there): a null capability header (ID 0) at 0x100 links to it.
  const first = placed[0];
  if (first !== undefined && first.at !== 0x100) {
    if (first.at < 0x104) throw new ConfigLayoutError(`${fn.address}: extended capability at 0x${first.at.toString(16)} overlaps the list head at 0x100`);
    cfg.write32(0x100, (first.at << 20) >>> 0);
  }
  placed.forEach((cap, i) => {
    const spec = wanted.find((w) => w.id === cap.id);
    const next = placed[i + 1]?.at ?? 0;
    cfg.write32(cap.at, (cap.id | ((spec?.version ?? 1) << 16) | (next << 20)) >>> 0);
    spec?.fill(cfg, cap.at);
  });
}

/** Place capabilities: fixed offsets as given, the rest in the first gap that fits; list order = offset order. */
function placeCaps(caps: Array<{ id: number; size: number; at: number | undefined }>, start: number, end: number, where: string): Array<{ id: number; size: number; at: number }> {
  const out: Array<{ id: number; size: number; at: number }> = [];
  for (const c of caps) {
    if (c.at === undefined) continue;
    if (c.at < start || c.at + c.size > end || (c.at & 3) !== 0) {
      throw new ConfigLayoutError(`${where}: capability 0x${c.id.toString(16)} at 0x${c.at.toString(16)} does not fit in 0x${start.toString(16)}-0x${(end - 1).toString(16)}`);
    }
    out.push({ id: c.id, size: c.size, at: c.at });
  }
  out.sort((a, b) => a.at - b.at);
  for (let i = 1; i < out.length; i++) {
    const prev = out[i - 1];
    const cur = out[i];
    if (prev !== undefined && cur !== undefined && prev.at + 4 > cur.at) {
      throw new ConfigLayoutError(`${where}: capabilities at 0x${prev.at.toString(16)} and 0x${cur.at.toString(16)} overlap`);
    }
  }
  for (const c of caps) {
    if (c.at !== undefined) continue;
    let cursor = start;
    for (const taken of out) {
      if (cursor + c.size <= taken.at) break;
      cursor = Math.max(cursor, (taken.at + taken.size + 3) & ~3);
    }
    if (cursor + c.size > end) throw new ConfigLayoutError(`${where}: no room for capability 0x${c.id.toString(16)}`);
    out.push({ id: c.id, size: c.size, at: cursor });
    out.sort((a, b) => a.at - b.at);
  }
  return out;
}
