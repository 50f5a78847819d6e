import type { PciDev } from '../dev.ts';

// The configuration a passthrough user pastes: a kernel option, driverctl commands, libvirt XML.

const hex = (n: number, width: number): string => `0x${n.toString(16).padStart(width, '0')}`;

/** "vfio-pci.ids=10de:10f0,10de:1b80": each ID once, sorted; '' for no devices. */
export function vfioPciIdsOption(devices: readonly PciDev[]): string {
  const ids = [...new Set(devices.map((d) => d.ids))].sort();
  return ids.length === 0 ? '' : `vfio-pci.ids=${ids.join(',')}`;
}

/** driverctl binds by address and persists through udev: right when IDs are shared with other devices. */
export function driverctlLine(dev: PciDev): string {
  return `driverctl set-override ${dev.bdf} vfio-pci`;
}

/** A libvirt <hostdev> for one function; managed='yes' lets libvirt bind vfio-pci at VM start. */
export function libvirtHostdev(dev: PciDev): string {
  const address = `<address domain='${hex(dev.domain, 4)}' bus='${hex(dev.busNumber, 2)}' slot='${hex(dev.slot, 2)}' function='${hex(dev.fn, 1)}'/>`;
  return `<hostdev mode='subsystem' type='pci' managed='yes'><source>${address}</source></hostdev>`;
}
