import { addressKey, formatShortAddress, parseAddress, PCI_DEVFN, PCI_SLOT, type PciAddress } from './address.ts';
import type { ConfigSpace } from './config-space.ts';
import { PCI_EXT_CAP_ID_SRIOV, PCI_SRIOV_NUM_VF, PCI_SRIOV_VF_DID, PCI_SRIOV_VF_OFFSET, PCI_SRIOV_VF_STRIDE } from './regs.ts';
import { hostSpecSchema, type FunctionSpec, type HostSpec, type HostSpecInput, type PlatformSpec } from './spec.ts';
import { splitId, synthesizeConfig } from './synth.ts';
import { PciTopology, type EnumeratedFunction } from './topology.ts';

/** A machine: its PCI hierarchy with real config space, its IOMMU platform, and the spec it came from. */
export interface Host {
  readonly name: string;
  readonly spec: HostSpec;
  readonly platform: PlatformSpec;
  readonly topology: PciTopology;
}

/** Build a host from a validated or raw spec; raw input is validated first (zod errors propagate). */
export function buildHost(input: HostSpec | HostSpecInput): Host {
  const spec = hostSpecSchema.parse(input);
  const functions = enumerate(spec);
  const topology = new PciTopology(functions);
  return { name: spec.name, spec, platform: spec.platform, topology };
}

function enumerate(spec: HostSpec): EnumeratedFunction[] {
  const addr = (fn: FunctionSpec): PciAddress => parseAddress(fn.address) as PciAddress;
  // The header-type MFD bit is not in a dump: a slot with more than one function is multifunction.
  const perSlot = new Map<number, number>();
  for (const fn of spec.functions) {
    const a = addr(fn);
    const slotKey = addressKey({ ...a, devfn: PCI_DEVFN(PCI_SLOT(a.devfn), 0) });
    perSlot.set(slotKey, (perSlot.get(slotKey) ?? 0) + 1);
  }
  const out: EnumeratedFunction[] = [];
  const listed = new Set(spec.functions.map((fn) => addressKey(addr(fn))));
  for (const fn of spec.functions) {
    const a = addr(fn);
    const slotKey = addressKey({ ...a, devfn: PCI_DEVFN(PCI_SLOT(a.devfn), 0) });
    const isVf = fn.virtfnOf !== undefined;
    const multifunction = fn.multifunction ?? (!isVf && (perSlot.get(slotKey) ?? 0) > 1);
    const config = synthesizeConfig(fn, a.bus, multifunction);
    const info = { name: fn.name, observedGroup: fn.observedGroup, driver: fn.driver };
    const virtfnOf = fn.virtfnOf === undefined ? undefined : parseAddress(fn.virtfnOf);
    out.push(virtfnOf === undefined ? { address: a, config, info } : { address: a, config, info, virtfnOf });
    out.push(...generatedVfs(fn, a, config, listed));
  }
  return out;
}

/** VFs a PF with NumVFs > 0 exposes that the spec does not list itself: routing ID = PF + offset + i * stride. */
function generatedVfs(fn: FunctionSpec, pf: PciAddress, pfConfig: ConfigSpace, listed: Set<number>): EnumeratedFunction[] {
  const cap = pfConfig.findExtCapability(PCI_EXT_CAP_ID_SRIOV);
  if (cap === 0 || fn.sriov === undefined) return [];
  const numVfs = pfConfig.read16(cap + PCI_SRIOV_NUM_VF);
  const offset = pfConfig.read16(cap + PCI_SRIOV_VF_OFFSET);
  const stride = pfConfig.read16(cap + PCI_SRIOV_VF_STRIDE);
  const vfDevice = pfConfig.read16(cap + PCI_SRIOV_VF_DID);
  const [vendor] = splitId(fn.id);
  const out: EnumeratedFunction[] = [];
  const pfRid = (pf.bus << 8) | pf.devfn;
  for (let i = 0; i < numVfs; i++) {
    const rid = pfRid + offset + i * stride;
    if (rid > 0xffff) break;
    const a: PciAddress = { domain: pf.domain, bus: rid >> 8, devfn: rid & 0xff };
    if (listed.has(addressKey(a))) continue;
    const vfSpec: FunctionSpec = {
      address: formatShortAddress(a),
      id: `${vendor.toString(16).padStart(4, '0')}:${vfDevice.toString(16).padStart(4, '0')}`,
      class: fn.class, progIf: fn.progIf, revision: fn.revision,
      name: fn.name === undefined ? undefined : `${fn.name} (virtual function ${i})`,
      express: { type: 'endpoint', version: 2, slot: false, ariForwarding: false, offset: undefined },
      bars: [],
      virtfnOf: formatShortAddress(pf),
    };
    out.push({ address: a, config: synthesizeConfig(vfSpec, a.bus, false), info: { name: vfSpec.name }, virtfnOf: pf });
  }
  return out;
}
