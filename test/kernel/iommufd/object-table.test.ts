import { describe, expect, it } from 'vitest';
import type { IommufdObject, IommufdObjectType } from '../../../src/kernel/iommufd/object.ts';
import { ObjectTable } from '../../../src/kernel/iommufd/object-table.ts';

function obj(type: IommufdObjectType, log: string[], extra: Partial<IommufdObject> = {}): IommufdObject {
  return { type, id: 0, users: 0, destroy() { log.push(`destroy ${this.id}`); }, ...extra };
}

describe('iommufd object table', () => {
  it('hands out IDs from 1, lowest free first, visible only once finalized', () => {
    const t = new ObjectTable();
    const log: string[] = [];
    const a = obj('ioas', log);
    const b = obj('ioas', log);
    expect(t.reserve(a)).toEqual({ ok: true, value: 1 });
    expect(t.get(1).ok).toBe(false);
    t.finalize(a);
    expect(t.get(1, 'ioas')).toEqual({ ok: true, value: a });
    t.reserve(b); t.finalize(b);
    expect(t.destroyUser(1).ok).toBe(true);
    const c = obj('fault', log);
    expect(t.reserve(c)).toEqual({ ok: true, value: 1 });
  });

  it('ENOENT for a missing ID, a wrong type, and a tombstone; the tombstone keeps its ID', () => {
    const t = new ObjectTable();
    const log: string[] = [];
    const a = obj('ioas', log);
    t.reserve(a); t.finalize(a);
    expect(t.get(7)).toMatchObject({ ok: false, errno: 'ENOENT' });
    expect(t.get(1, 'hwpt_paging')).toMatchObject({ ok: false, errno: 'ENOENT', reason: 'object 1 is an IOAS, not a HWPT PAGING' });
    const v = obj('vdevice', log);
    t.reserve(v); t.finalize(v);
    t.tombstone(v);
    expect(t.get(2)).toMatchObject({ ok: false, errno: 'ENOENT' });
    expect(t.destroyUser(2)).toMatchObject({ ok: false, errno: 'ENOENT' });
    const next = obj('ioas', log);
    expect(t.reserve(next)).toEqual({ ok: true, value: 3 });
  });

  it('EBUSY while referenced or driver-owned; abort frees the ID', () => {
    const t = new ObjectTable();
    const log: string[] = [];
    const ioas = obj('ioas', log);
    t.reserve(ioas); t.finalize(ioas);
    t.ref(ioas);
    expect(t.destroyUser(1)).toMatchObject({ ok: false, errno: 'EBUSY' });
    t.unref(ioas);
    const dev = obj('device', log, { driverOwned: true });
    t.reserve(dev); t.finalize(dev);
    expect(t.destroyUser(2)).toMatchObject({ ok: false, errno: 'EBUSY' });
    const half = obj('hwpt_paging', log, { abort() { log.push('abort'); } });
    t.reserve(half);
    t.abort(half);
    expect(log).toContain('abort');
    expect(t.reserve(obj('ioas', log))).toEqual({ ok: true, value: 3 });
  });

  it('close destroys leaf first until empty', () => {
    const t = new ObjectTable();
    const log: string[] = [];
    const ioas = obj('ioas', log);
    t.reserve(ioas); t.finalize(ioas);
    const hwpt = obj('hwpt_paging', log, { destroy() { log.push('destroy hwpt'); t.unref(ioas); } });
    t.reserve(hwpt); t.finalize(hwpt);
    t.ref(ioas);
    expect(t.closeAll()).toEqual([]);
    expect(log).toEqual(['destroy hwpt', 'destroy 1']);
    expect(t.size).toBe(0);
  });
});
