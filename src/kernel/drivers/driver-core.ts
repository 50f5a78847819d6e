// The PCI bus's driver core (drivers/base/dd.c, bus.c and drivers/pci/pci-driver.c reduced to what
// device assignment needs): which driver each function is bound to, driver_override, bind/unbind through
// sysfs, drivers_probe, and the DMA-ownership step the core takes around a probe.
//
// Rules modelled:
//  * [pci_dma_configure] a driver without driver_managed_dma takes the group's default domain before its
//    probe (iommu_device_use_default_domain): a group owned for user-space DMA refuses with EBUSY and the
//    probe fails; the reference is dropped after remove.
//  * [driver_match_device / pci_match_device] with driver_override set, only the driver of that name
//    matches; otherwise the driver's id table and dynamic ids decide.
//  * [bind_store] no match → ENODEV, already bound → EBUSY, else the probe's result.
//  * [unbind_store] the device is not bound to that driver → ENODEV.
//  * [drivers_probe] an unbound device is offered to every registered driver in registration order; the
//    first that matches and probes wins. No match leaves it unbound (not an error).

import type { PciDev } from '../../pci/dev.ts';
import type { IommuCore } from '../iommu/core.ts';
import { fail, ok, type Result } from '../errno.ts';
import { HostPciDriver, type PciDriver } from './pci-driver.ts';

export type DriverEvent = { readonly kind: 'bind' | 'unbind'; readonly dev: PciDev; readonly driver: PciDriver };

interface Binding {
  driver: PciDriver | null;
  override: string | null;
}

export class DriverCore {
  private readonly drivers = new Map<string, PciDriver>();
  private readonly state = new Map<PciDev, Binding>();
  private readonly listeners: ((e: DriverEvent) => void)[] = [];

  constructor(private readonly core: IommuCore, readonly devices: readonly PciDev[]) {
    for (const dev of devices) this.state.set(dev, { driver: null, override: null });
  }

  /**
   * Boot: register a host driver for every name the host file gives ("Kernel driver in use") and bind each
   * function to it, in topology order. vfio-pci is left to the VFIO layer, which registers it itself.
   */
  probeHostDrivers(skip: ReadonlySet<string> = new Set(['vfio-pci'])): void {
    const tables = new Map<string, Set<PciDev>>();
    for (const dev of this.devices) {
      const name = dev.info.driver;
      if (name === undefined || skip.has(name)) continue;
      let t = tables.get(name);
      if (t === undefined) tables.set(name, (t = new Set()));
      t.add(dev);
    }
    for (const [name, table] of tables) if (!this.drivers.has(name)) this.registerDriver(new HostPciDriver(name, table));
  }

  /**
   * pci_register_driver(): the driver becomes known and, as driver_register() does with autoprobe on,
   * is offered every unbound device it matches.
   */
  registerDriver(driver: PciDriver): void {
    if (this.drivers.has(driver.name)) throw new Error(`driver ${driver.name} registered twice`);
    this.drivers.set(driver.name, driver);
    for (const dev of this.devices) {
      if (this.bindingOf(dev).driver === null && this.match(driver, dev)) void this.probe(dev, driver);
    }
  }

  driver(name: string): PciDriver | undefined { return this.drivers.get(name); }
  driverNames(): string[] { return [...this.drivers.keys()]; }

  /** The driver bound to `dev` (the `driver` link), or null. */
  boundDriver(dev: PciDev): PciDriver | null { return this.bindingOf(dev).driver; }
  /** Devices bound to the named driver (/sys/bus/pci/drivers/NAME/). */
  devicesOf(name: string): PciDev[] { return this.devices.filter((d) => this.bindingOf(d).driver?.name === name); }

  driverOverride(dev: PciDev): string | null { return this.bindingOf(dev).override; }

  /** Write to driver_override: a name, or '' / null to clear. Takes effect at the next probe. */
  setDriverOverride(dev: PciDev, name: string | null): Result {
    const v = name === null ? '' : name.replace(/\n$/, '');
    if (v.length >= 4096) return fail('EINVAL', 'driver_override is longer than a page');
    this.bindingOf(dev).override = v === '' ? null : v;
    return ok();
  }

  /** driver_match_device(). */
  match(driver: PciDriver, dev: PciDev): boolean {
    const o = this.bindingOf(dev).override;
    if (o !== null) return o === driver.name;
    return driver.matches(dev);
  }

  /** echo BDF > /sys/bus/pci/drivers/NAME/bind. */
  bind(dev: PciDev, name: string): Result {
    const driver = this.drivers.get(name);
    if (driver === undefined) return fail('ENOENT', `no driver ${name} is registered (no /sys/bus/pci/drivers/${name})`);
    if (!this.match(driver, dev)) {
      const o = this.bindingOf(dev).override;
      return fail('ENODEV', o !== null
        ? `${dev.bdf} has driver_override=${o}, so only ${o} may bind it`
        : `${name} does not match ${dev.bdf} (${dev.ids}): set driver_override or add the id with new_id`);
    }
    const cur = this.bindingOf(dev).driver;
    if (cur !== null) return fail('EBUSY', `${dev.bdf} is already bound to ${cur.name}`);
    return this.probe(dev, driver);
  }

  /** echo BDF > /sys/bus/pci/drivers/NAME/unbind (NAME omitted: the device's own driver/unbind). */
  unbind(dev: PciDev, name?: string): Result {
    const b = this.bindingOf(dev);
    if (b.driver === null || (name !== undefined && b.driver.name !== name)) {
      return fail('ENODEV', `${dev.bdf} is not bound to ${name ?? 'any driver'}`);
    }
    const driver = b.driver;
    const r = driver.remove(dev);
    if (!r.ok) return r;
    b.driver = null;
    if (!driver.driverManagedDma) this.core.deviceUnuseDefaultDomain(dev);
    this.emit({ kind: 'unbind', dev, driver });
    return ok();
  }

  /** echo BDF > /sys/bus/pci/drivers_probe: offer an unbound device to every driver. */
  driversProbe(dev: PciDev): Result {
    if (this.bindingOf(dev).driver !== null) return ok();
    let last: Result = ok();
    for (const driver of this.drivers.values()) {
      if (!this.match(driver, dev)) continue;
      last = this.probe(dev, driver);
      if (last.ok) return last;
    }
    return last;
  }

  /** Listen for binds and unbinds (sysfs, VFIO's bus notifier). */
  onEvent(fn: (e: DriverEvent) => void): void { this.listeners.push(fn); }

  // really_probe(): the DMA step, then the driver's probe; a failed probe undoes the DMA step.
  private probe(dev: PciDev, driver: PciDriver): Result {
    if (!driver.driverManagedDma) {
      const r = this.core.deviceUseDefaultDomain(dev);
      if (!r.ok) return fail(r.errno, `${driver.name} cannot probe ${dev.bdf}: ${r.reason}`);
    }
    const r = driver.probe(dev);
    if (!r.ok) {
      if (!driver.driverManagedDma) this.core.deviceUnuseDefaultDomain(dev);
      return r;
    }
    this.bindingOf(dev).driver = driver;
    this.emit({ kind: 'bind', dev, driver });
    return ok();
  }

  private emit(e: DriverEvent): void { for (const fn of this.listeners) fn(e); }

  private bindingOf(dev: PciDev): Binding {
    const b = this.state.get(dev);
    if (b === undefined) throw new Error(`${dev.bdf} is not on this bus`);
    return b;
  }
}
