import type { PciDev } from '../dev.ts';
import { isHostDriver, isVfioDriver } from './drivers.ts';
import type { HostCritical } from './types.ts';

const CLASS_STORAGE = 0x01;
const SUBCLASS_SATA = 0x0106;
const SUBCLASS_NVME = 0x0108;
const CLASS_NETWORK = 0x02;
const CLASS_VGA = 0x0300;
const CLASS_USB = 0x0c03;

/**
 * Whether a group member is something the host itself likely runs on, judged by class and driver:
 * storage (NVMe/SATA may be the boot disk; "boot" in the name says it is), the host's network, the
 * console GPU, USB controllers (keyboard). Other functions of the target's own card are companions,
 * not host devices, and devices already on VFIO are not used by the host. The target GPU counts as the
 * console only when the host has no other display on a host driver (`otherDisplay`).
 */
/** Whether a device is a VGA controller the host drives (a candidate console). */
export function isHostDisplay(dev: PciDev): boolean {
  return dev.baseSubClass() === CLASS_VGA && isHostDriver(dev.info.driver);
}

export function hostCriticalOf(dev: PciDev, target: PciDev, otherDisplay: boolean): HostCritical | null {
  const driver = dev.info.driver;
  if (isVfioDriver(driver)) return null;
  const isTarget = dev === target;
  if (!isTarget && dev.domain === target.domain && dev.busNumber === target.busNumber && dev.slot === target.slot) return null;
  const using = driver === undefined ? '' : ` (driver ${driver})`;
  const base = dev.classCode >> 16;
  const sub = dev.baseSubClass();
  const who = isTarget ? 'the target itself' : `${dev.shortBdf}`;
  if (base === CLASS_STORAGE) {
    if (/boot/i.test(dev.info.name ?? '')) {
      return { device: dev, kind: 'boot-drive', text: `${who} is the boot drive by its name${using}: taking it from the host takes the host's root filesystem` };
    }
    if (sub === SUBCLASS_NVME || sub === SUBCLASS_SATA) {
      const what = sub === SUBCLASS_NVME ? 'an NVMe controller' : 'a SATA controller';
      return { device: dev, kind: 'boot-storage', text: `${who} is ${what}${using}, possibly the host's boot storage: if the host boots from it, binding vfio-pci at boot leaves the host without its disk` };
    }
    return { device: dev, kind: 'storage', text: `${who} is a mass storage controller${using}: its disks vanish from the host` };
  }
  if (base === CLASS_NETWORK) {
    return { device: dev, kind: 'network', text: `${who} is a network controller the host may use${using}: the host loses that link` };
  }
  if (sub === CLASS_VGA && isHostDriver(driver) && !(isTarget && otherDisplay)) {
    return { device: dev, kind: 'console-gpu', text: `${who} is a VGA controller on host driver ${driver}: if it shows the host console, the host loses its display` };
  }
  if (sub === CLASS_USB) {
    return { device: dev, kind: 'usb', text: `${who} is a USB controller${using}: the host keyboard and mouse may hang off it` };
  }
  return null;
}
