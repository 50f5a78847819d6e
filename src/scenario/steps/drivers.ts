// Driver binding and sysfs steps: what an administrator does before a VM starts.

import { z } from 'zod';
import { commonFields, stepKind } from '../step-kind.ts';
import { fromResult } from './outcome.ts';

const device = z.string().min(1);

export const unbind = stepKind({
  name: 'unbind',
  summary: 'unbind a function from its driver (echo BDF > .../driver/unbind)',
  fields: { device, ...commonFields },
  run(s, st) {
    const dev = s.device(st.device);
    const was = s.kernel.drivers.boundDriver(dev)?.name ?? 'no driver';
    return fromResult(s.kernel.drivers.unbind(dev), `unbind ${dev.bdf}`, () => `${dev.bdf} unbound from ${was}`);
  },
});

export const bind = stepKind({
  name: 'bind',
  summary: 'bind a function to a driver, setting driver_override first as driverctl does',
  fields: { device, driver: z.string().min(1), override: z.boolean().default(true), ...commonFields },
  run(s, st) {
    const dev = s.device(st.device);
    const k = s.kernel.drivers;
    if (st.override) {
      const o = k.setDriverOverride(dev, st.driver);
      if (!o.ok) return fromResult(o, `driver_override of ${dev.bdf}`, () => '');
    }
    const cur = k.boundDriver(dev);
    if (cur !== null && cur.name !== st.driver) {
      const u = k.unbind(dev);
      if (!u.ok) return fromResult(u, `unbind ${dev.bdf} from ${cur.name}`, () => '');
    }
    return fromResult(k.bind(dev, st.driver), `bind ${dev.bdf} to ${st.driver}`,
      () => `${dev.bdf} bound to ${st.driver}${cur !== null && cur.name !== st.driver ? ` (was ${cur.name})` : ''}`);
  },
});

export const sysfsWrite = stepKind({
  name: 'sysfs-write',
  summary: 'write a sysfs attribute (echo VALUE > PATH)',
  fields: { path: z.string().startsWith('/sys'), value: z.string(), ...commonFields },
  run(s, st) {
    return fromResult(s.kernel.sysfs.write(st.path, st.value), `echo ${st.value} > ${st.path}`, () => `echo ${st.value} > ${st.path}`);
  },
});

export const sysfsRead = stepKind({
  name: 'sysfs-read',
  summary: 'read a sysfs attribute, or readlink when it is a link',
  fields: { path: z.string().startsWith('/sys'), link: z.boolean().default(false), ...commonFields },
  run(s, st) {
    const r = st.link ? s.kernel.sysfs.readlink(st.path) : s.kernel.sysfs.read(st.path);
    return fromResult(r, `read ${st.path}`, (v) => `${st.path}${st.link ? ' ->' : ':'} ${v.trim()}`,
      (v) => ({ data: new TextEncoder().encode(v) }));
  },
});
