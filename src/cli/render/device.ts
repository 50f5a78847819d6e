import type { PciDev } from '../../pci/dev.ts';

// How a function is named on screen: the way `lspci -nn` names it, so the lines look familiar.

const CLASS_NAMES: Readonly<Record<number, string>> = {
  0x0000: 'Non-VGA unclassified device', 0x0001: 'VGA compatible unclassified device',
  0x0100: 'SCSI storage controller', 0x0101: 'IDE interface', 0x0104: 'RAID bus controller',
  0x0106: 'SATA controller', 0x0107: 'Serial Attached SCSI controller', 0x0108: 'Non-Volatile memory controller',
  0x0180: 'Mass storage controller',
  0x0200: 'Ethernet controller', 0x0207: 'Infiniband controller', 0x0280: 'Network controller',
  0x0300: 'VGA compatible controller', 0x0302: '3D controller', 0x0380: 'Display controller',
  0x0400: 'Multimedia video controller', 0x0401: 'Multimedia audio controller', 0x0403: 'Audio device',
  0x0480: 'Multimedia controller',
  0x0500: 'RAM memory', 0x0580: 'Memory controller',
  0x0600: 'Host bridge', 0x0601: 'ISA bridge', 0x0604: 'PCI bridge', 0x0680: 'Bridge',
  0x0700: 'Serial controller', 0x0780: 'Communication controller',
  0x0800: 'PIC', 0x0806: 'IOMMU', 0x0880: 'System peripheral',
  0x0c03: 'USB controller', 0x0c05: 'SMBus', 0x0c80: 'Serial bus controller',
  0x0d80: 'Wireless controller', 0x1080: 'Encryption controller', 0x1101: 'Performance counters',
  0x1180: 'Signal processing controller', 0x1200: 'Processing accelerators', 0x1300: 'Non-Essential Instrumentation',
};

/** lspci's class name for a base class and subclass, or "Class cccc". */
export function className(baseSub: number): string {
  return CLASS_NAMES[baseSub] ?? `Class ${baseSub.toString(16).padStart(4, '0')}`;
}

/** "VGA compatible controller: NVIDIA Corporation GA102 ..." when the source named it, else the class name. */
export function deviceName(dev: PciDev): string {
  return dev.info.name ?? className(dev.baseSubClass());
}

/** "01:00.0 [10de:2204] VGA compatible controller: NVIDIA ..." */
export function deviceLine(dev: PciDev): string {
  return `${dev.shortBdf} [${dev.ids}] ${deviceName(dev)}`;
}

/** "bb:dd.f" of a requester ID. */
export function ridText(rid: number): string {
  const bus = (rid >> 8).toString(16).padStart(2, '0');
  const slot = ((rid >> 3) & 0x1f).toString(16).padStart(2, '0');
  return `${bus}:${slot}.${rid & 7}`;
}
