// A VMM's device-assignment sequence against ioasis through the typed API: every call below encodes the
// C struct into the process's memory and goes through the same byte-level ioctl dispatch a C program
// (or the LD_PRELOAD shim) reaches. Run: node bin/run-ts.mjs examples/vfio-cdev.ts

import { Kernel } from '../src/kernel/kernel.ts';
import type { Result } from '../src/kernel/errno.ts';
import { MAP_ANONYMOUS, MAP_PRIVATE, PROT_READ, PROT_WRITE } from '../src/kernel/mm/mman.ts';
import { loadBuiltinHost } from '../src/pci/builtin-hosts.ts';
import * as iommufd from '../src/uapi/api.ts';
import * as vfio from '../src/uapi/vfio-api.ts';

function must<T>(what: string, r: Result<T>): T {
  if (!r.ok) throw new Error(`${what}: ${r.errno} (${r.reason})`);
  return r.value;
}

const kernel = Kernel.boot(loadBuiltinHost('default'), { cmdline: 'intel_iommu=on iommu=pt' });
const nic = kernel.device('38:02.0');
if (nic === undefined) throw new Error('no 38:02.0');

// The administrator: driverctl set-override 0000:38:02.0 vfio-pci
if (kernel.drivers.boundDriver(nic) !== null) must('unbind', kernel.drivers.unbind(nic)); // VFs have no host driver here
must('driver_override', kernel.sysfs.write('/sys/bus/pci/devices/0000:38:02.0/driver_override', 'vfio-pci'));
must('drivers_probe', kernel.sysfs.write('/sys/bus/pci/drivers_probe', '0000:38:02.0'));

// The VMM: guest RAM, /dev/iommu, the device's cdev, bind, attach, map.
const vmm = kernel.processes.spawn({ comm: 'qemu', rlimits: { RLIMIT_MEMLOCK: { soft: 2 ** 30, hard: 2 ** 30 } } });
const ram = must('mmap', vmm.mmap(0, 16 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
const iommuFd = must('open /dev/iommu', kernel.devfs.open(vmm, '/dev/iommu'));
const ioasId = must('IOMMU_IOAS_ALLOC', iommufd.ioasAlloc({ proc: vmm, fd: iommuFd }));
const cdev = `/dev/vfio/devices/${must('readdir', kernel.sysfs.list('/sys/bus/pci/devices/0000:38:02.0/vfio-dev'))[0] ?? ''}`;
const devFd = must(`open ${cdev}`, kernel.devfs.open(vmm, cdev));
const devId = must('VFIO_DEVICE_BIND_IOMMUFD', vfio.deviceBindIommufd({ proc: vmm, fd: devFd, iommufd: iommuFd }));
const hwptId = must('VFIO_DEVICE_ATTACH_IOMMUFD_PT', vfio.deviceAttachPt({ proc: vmm, fd: devFd, ptId: ioasId }));
must('IOMMU_IOAS_MAP', iommufd.ioasMap({ proc: vmm, fd: iommuFd, ioasId, userVa: ram, length: 16 << 20, iova: 0 }));
console.log(`${cdev}: dev_id ${devId}, attached to HWPT ${hwptId}; guest RAM mapped at IOVA 0`);

// The device writes into guest memory at IOVA 0x1000; the VMM reads it back from its own mapping.
const dma = kernel.machine.dma(nic, { op: 'write', address: 0x1000, length: 11, data: new TextEncoder().encode('hello guest') });
const back = new Uint8Array(11);
must('read', vmm.mm.read(ram + 0x1000, back));
console.log(`device DMA: ${dma.status}; guest RAM at 0x1000 reads "${new TextDecoder().decode(back)}"`);

// A sibling process cannot take the same device.
const other = kernel.processes.spawn({ comm: 'intruder' });
const otherFd = must('open', kernel.devfs.open(other, cdev));
const otherIommu = must('open /dev/iommu', kernel.devfs.open(other, '/dev/iommu'));
const stolen = vfio.deviceBindIommufd({ proc: other, fd: otherFd, iommufd: otherIommu });
console.log(`second process binding the same device: ${stolen.ok ? 'succeeded (!)' : `${stolen.errno}: ${stolen.reason}`}`);

// Exit: every pin is released and the group returns to its default domain.
vmm.exit();
other.exit();
console.log(`after exit: VmPin ${vmm.mm.pinnedVm} pages; group of 38:02.0 owned: ${kernel.core.groupOf(nic)?.owner !== null}`);
