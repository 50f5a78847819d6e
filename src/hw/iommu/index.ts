// The IOMMU unit and what software needs to drive it (docs/hw-iommu.md).
export * from './types.ts';
export { IommuUnit, IommuStats, UNTRANSLATED_PAGE_SIZE, type IommuUnitOptions } from './unit.ts';
export * from './registers.ts';
export * from './commands.ts';
export * from './records.ts';
export {
  ContextMode, Pgtt, encodeContextEntry, encodePasidEntry, encodePointerEntry, CONTEXT_TABLE_BYTES, PASID_TABLE_BYTES,
  type ContextEntrySpec, type ContextModeName, type PasidEntrySpec, type PgttName,
} from './device-table.ts';
export { QCSR_EN, QCSR_ERR, QCSR_MF, RECORD_BYTES } from './queues.ts';
export * from './setup.ts';
