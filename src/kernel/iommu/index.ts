// The kernel's IOMMU core: domains, groups and DMA ownership, PASID attach, IO page faults, and the driver
// for the simulated IOMMU unit.
export * from './domain.ts';
export * from './group.ts';
export * from './core.ts';
export * from './io-pgfault.ts';
export * from './driver-ops.ts';
export * from './ioasis-iommu-driver.ts';
export * from './resv-regions.ts';
export * from './table-frames.ts';
