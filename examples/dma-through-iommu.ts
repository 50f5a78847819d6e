// A device DMAs into memory through the simulated IOMMU, then the mapping is removed and the same DMA
// faults. Run: node bin/run-ts.mjs examples/dma-through-iommu.ts
import { Machine } from '../src/hw/machine.ts';
import { PhysicalMemory } from '../src/hw/memory/physical-memory.ts';
import type { Result } from '../src/kernel/errno.ts';
import { IommuCore } from '../src/kernel/iommu/core.ts';
import { loadBuiltinHost } from '../src/pci/builtin-hosts.ts';
import { bootHost } from '../src/pci/boot.ts';
import { computeGroups } from '../src/pci/groups/compute.ts';

const must = <T>(r: Result<T>): T => {
  if (!r.ok) throw new Error(`${r.errno}: ${r.reason}`);
  return r.value;
};

// The built-in server, booted; its groups; the machine with 8 GiB of memory; the kernel's IOMMU core.
const booted = bootHost(loadBuiltinHost('default'));
const machine = new Machine(booted, { memory: new PhysicalMemory({ size: 8 * 2 ** 30 }) });
const core = new IommuCore(machine, computeGroups(booted));

// User space takes the NVMe drive's group (as VFIO would) and attaches a paging domain of its own.
const nvme = machine.device('29:00.0');
if (nvme === undefined) throw new Error('no 29:00.0 on the default host');
const group = core.groupOf(nvme);
if (group === undefined) throw new Error('29:00.0 has no IOMMU group');
must(core.groupClaimDmaOwner(group, 'example'));
const domain = must(core.allocPagingDomain(nvme, 'unmanaged'));
must(core.attachGroup(domain, group));

// Map IOVA 0x10000 to a buffer at physical 0x4000_0000 and let the device write there.
must(domain.map(0x10000, 0x4000_0000, 0x2000, { read: true, write: true }));
const data = new TextEncoder().encode('hello from 29:00.0');
const ok = machine.dma(nvme, { op: 'write', address: 0x10000, length: data.length, data });
const landed = new Uint8Array(data.length);
machine.memory.read(0x4000_0000, landed);
console.log(`DMA write: ${ok.status}; memory at 0x40000000 now reads "${new TextDecoder().decode(landed)}"`);

// Unmap (the domain invalidates the IOTLB) and try again: the IOMMU blocks it and records a fault.
domain.unmap(0x10000, 0x2000);
const denied = machine.dma(nvme, { op: 'write', address: 0x10000, length: data.length, data });
console.log(`after unmap: ${denied.status}: ${denied.why}`);
