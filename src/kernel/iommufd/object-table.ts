import { fail, ok, type Result } from '../errno.ts';
import type { IommufdObject, IommufdObjectType } from './object.ts';

/** IDs are 31-bit and start at 1 (xa_alloc with XA_FLAGS_ALLOC1 and xa_limit_31b). */
const ID_MAX = 0x7fff_ffff;

type Slot =
  | { readonly state: 'reserved'; readonly obj: IommufdObject }
  | { readonly state: 'live'; readonly obj: IommufdObject }
  | { readonly state: 'destroying'; readonly obj: IommufdObject }
  /** A vDEVICE whose DEVICE was unbound: the ID stays taken until the context closes. */
  | { readonly state: 'tombstone' };

/**
 * A context's object table: lowest free ID on allocation, objects invisible until their ioctl finalizes
 * them, ENOENT for a missing ID, a wrong type, an object being destroyed or a tombstone.
 */
export class ObjectTable {
  private readonly slots = new Map<number, Slot>();

  /** Reserve the lowest free ID for a half-built object (not yet visible to lookups). */
  reserve(obj: IommufdObject): Result<number> {
    let id = 1;
    while (this.slots.has(id)) id++;
    if (id > ID_MAX) return fail('ENOSPC', 'no free iommufd object ID');
    obj.id = id;
    obj.users = 1;
    this.slots.set(id, { state: 'reserved', obj });
    return ok(id);
  }

  /** The creating ioctl succeeded: the object becomes visible. */
  finalize(obj: IommufdObject): void {
    const slot = this.slots.get(obj.id);
    if (slot?.state === 'reserved' && slot.obj === obj) this.slots.set(obj.id, { state: 'live', obj });
  }

  /** The creating ioctl failed: undo the object and free its ID. */
  abort(obj: IommufdObject): void {
    const slot = this.slots.get(obj.id);
    if (slot === undefined || slot.state === 'tombstone' || slot.obj !== obj) return;
    this.slots.delete(obj.id);
    if (obj.abort !== undefined) obj.abort();
    else obj.destroy();
  }

  /**
   * Look up a live object, optionally of type `type` or `alt`. The types are plain parameters, not a rest
   * array: lookups run on every ioctl and page fault, and a rest parameter is an array per call.
   */
  get<T extends IommufdObject = IommufdObject>(id: number, type?: IommufdObjectType, alt?: IommufdObjectType): Result<T> {
    const slot = this.slots.get(id);
    if (slot === undefined) return fail('ENOENT', `no object with ID ${id}`);
    if (slot.state === 'tombstone') return fail('ENOENT', `object ${id} was a vDEVICE destroyed when its device was unbound`);
    if (slot.state !== 'live') return fail('ENOENT', `object ${id} is ${slot.state === 'reserved' ? 'still being created' : 'being destroyed'}`);
    const t = slot.obj.type;
    if (type !== undefined && t !== type && t !== alt) {
      const wanted = alt === undefined ? [type] : [type, alt];
      return fail('ENOENT', `object ${id} is ${article(t)}, not ${wanted.map(article).join(' or ')}`);
    }
    return ok(slot.obj as T);
  }

  /** Take a reference on behalf of another object or an attachment. */
  ref(obj: IommufdObject): void { obj.users++; }

  /** Drop a reference taken with ref(). */
  unref(obj: IommufdObject): void {
    if (obj.users <= 1) throw new RangeError(`iommufd object ${obj.id} (${obj.type}): reference count underflow`);
    obj.users--;
  }

  /** IOMMU_DESTROY: only when the table holds the last reference; driver-owned objects refuse. */
  destroyUser(id: number): Result {
    const slot = this.slots.get(id);
    if (slot === undefined || slot.state !== 'live') return this.get(id).ok ? ok() : fail('ENOENT', this.describeMissing(id));
    const obj = slot.obj;
    if (obj.driverOwned === true) return fail('EBUSY', `object ${id} (${obj.type}) belongs to its kernel driver: close the device fd instead`);
    if (obj.users > 1) return fail('EBUSY', `object ${id} (${obj.type}) is still in use (${obj.users - 1} reference${obj.users === 2 ? '' : 's'})`);
    this.remove(obj);
    return ok();
  }

  /** Kernel-initiated removal (driver unbind): the driver's own reference is the last one. */
  removeDriverOwned(obj: IommufdObject): Result {
    const slot = this.slots.get(obj.id);
    if (slot?.state !== 'live' || slot.obj !== obj) return fail('ENOENT', `object ${obj.id} is not live`);
    if (obj.users > 1) return fail('EBUSY', `object ${obj.id} (${obj.type}) still has users`);
    this.remove(obj);
    return ok();
  }

  /** Replace a live object's slot by a tombstone (its ID is never reused while the context lives). */
  tombstone(obj: IommufdObject): void {
    const slot = this.slots.get(obj.id);
    if (slot?.state === 'live' && slot.obj === obj) {
      this.slots.set(obj.id, { state: 'tombstone' });
      obj.destroy();
    }
  }

  /**
   * close() of the iommufd: destroy every object with no other users, leaf first, until none is left.
   * Returns the objects that could not be destroyed (a bug: Linux WARNs).
   */
  closeAll(): IommufdObject[] {
    for (;;) {
      let progress = false;
      for (const [id, slot] of [...this.slots]) {
        if (slot.state === 'tombstone') { this.slots.delete(id); continue; }
        if (slot.obj.users === 1) { this.remove(slot.obj); progress = true; }
      }
      if (!progress) break;
    }
    return [...this.slots.values()].flatMap((s) => (s.state === 'tombstone' ? [] : [s.obj]));
  }

  /** Live objects, for inspection and invariant checks. */
  live(): IommufdObject[] {
    return [...this.slots.values()].flatMap((s) => (s.state === 'live' ? [s.obj] : []));
  }

  get size(): number { return this.slots.size; }

  private remove(obj: IommufdObject): void {
    this.slots.set(obj.id, { state: 'destroying', obj });
    obj.destroy();
    this.slots.delete(obj.id);
  }

  private describeMissing(id: number): string {
    const r = this.get(id);
    return r.ok ? `object ${id}` : r.reason;
  }
}

function article(type: IommufdObjectType): string {
  const name = type.replace('_', ' ').toUpperCase();
  return `${/^[AEIOU]/.test(name) ? 'an' : 'a'} ${name}`;
}
