// Set-up for the VFIO tests: the default host booted as a Kernel, functions moved to vfio-pci the way an
// administrator does it (unbind, driver_override, bind), root processes, and raw C-like ioctl calls that
// lay a struct out in process memory and go through the byte-level dispatch().

import { Kernel, type KernelBootOptions } from '../../../src/kernel/kernel.ts';
import type { Result } from '../../../src/kernel/errno.ts';
import { MAP_ANONYMOUS, MAP_PRIVATE, PROT_READ, PROT_WRITE } from '../../../src/kernel/mm/mman.ts';
import type { Capability } from '../../../src/kernel/process/cred.ts';
import type { Process } from '../../../src/kernel/process/process.ts';
import type { VfioDevice } from '../../../src/kernel/vfio/vfio-device.ts';
import { bootHost } from '../../../src/pci/boot.ts';
import { loadBuiltinHost } from '../../../src/pci/builtin-hosts.ts';
import type { PciDev } from '../../../src/pci/dev.ts';
import { dispatch } from '../../../src/uapi/dispatch.ts';
import type { FieldMap, StructDef, StructValue } from '../../../src/uapi/struct.ts';

export const PAGE = 4096;

export function value<T>(r: Result<T>): T {
  if (!r.ok) throw new Error(`${r.errno}: ${r.reason}`);
  return r.value;
}
export const errno = (r: Result<unknown>): string => (r.ok ? 'ok' : r.errno);

/** The default host; `patch` edits functions' config bytes before the kernel sees them (capabilities a test needs). */
export function boot(opts: KernelBootOptions & { patch?: (dev: (bdf: string) => PciDev) => void } = {}): Kernel {
  const booted = bootHost(loadBuiltinHost('default'), opts.cmdline);
  opts.patch?.((bdf) => {
    const d = booted.host.topology.get(bdf);
    if (d === undefined) throw new Error(`no ${bdf}`);
    return d;
  });
  return new Kernel(booted, opts);
}

export function dev(k: Kernel, bdf: string): PciDev {
  const d = k.device(bdf);
  if (d === undefined) throw new Error(`no ${bdf}`);
  return d;
}

/** Unbind from the host driver, driver_override=vfio-pci, bind: the VFIO device. */
export function toVfio(k: Kernel, bdf: string): VfioDevice {
  const d = dev(k, bdf);
  if (k.drivers.boundDriver(d) !== null) value(k.drivers.unbind(d));
  value(k.drivers.setDriverOverride(d, 'vfio-pci'));
  value(k.drivers.bind(d, 'vfio-pci'));
  const v = k.vfioPci.vfioDevice(d);
  if (v === undefined) throw new Error(`${bdf} did not register with VFIO`);
  return v;
}

export function spawn(k: Kernel, opts: { uid?: number; caps?: Capability[] } = {}): Process {
  const big = { soft: 2 ** 40, hard: 2 ** 40 };
  return k.processes.spawn({ uid: opts.uid ?? 0, rlimits: { RLIMIT_MEMLOCK: big }, ...(opts.caps === undefined ? {} : { caps: opts.caps }) });
}

export function anon(p: Process, npages: number): number {
  return value(p.mmap(0, npages * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
}

/** ioctl with a struct laid out as C lays it out (fields given, argsz default sizeof), then read back. */
export function raw<F extends FieldMap>(p: Process, fd: number, cmd: number, s: StructDef<F>, fields: Partial<StructValue<F>>, extra?: Uint8Array) {
  const at = anon(p, 1);
  value(p.mm.write(at, s.encode({ argsz: s.sizeof, ...fields })));
  if (extra !== undefined) value(p.mm.write(at + s.sizeof, extra));
  const r = dispatch(p, fd, cmd, at);
  const back = new Uint8Array(s.sizeof);
  value(p.mm.read(at, back));
  p.mm.munmap(at, PAGE);
  return { r, e: errno(r), out: s.decode(back) };
}
