// iommufd objects (drivers/iommu/iommufd/main.c): every object has a type, an ID in its context's table,
// and a `users` count. The table holds one reference; IOMMU_DESTROY succeeds only when that is the last.

export type IommufdObjectType =
  | 'ioas' | 'hwpt_paging' | 'hwpt_nested' | 'device' | 'access' | 'fault'
  | 'viommu' | 'vdevice' | 'veventq' | 'hw_queue' | 'selftest';

export interface IommufdObject {
  readonly type: IommufdObjectType;
  /** Set by the table when the object is reserved; 0 before. */
  id: number;
  /** References: the table's own, plus one per user (an attached device, a child object, an open fd). */
  users: number;
  /** Owned by a kernel driver (DEVICE, ACCESS): IOMMU_DESTROY refuses with EBUSY, only the driver removes it. */
  readonly driverOwned?: boolean;
  /** Undo a half-built object after its creating ioctl failed (Linux's abort op). */
  abort?(): void;
  /** Tear down a finalized object whose last reference is going; release what it holds on others. */
  destroy(): void;
}
