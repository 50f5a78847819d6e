// Every step kind a scenario may use, by its `do:` name.

import type { StepKind } from '../step-kind.ts';
import { bind, sysfsRead, sysfsWrite, unbind } from './drivers.ts';
import { dirtyRead, dirtyTracking } from './dirty.ts';
import { dma } from './dma.ts';
import { destroy, faultQueueAlloc, faultRead, faultRespond, hwptAlloc, ioasAlloc, ioasMap, ioasUnmap } from './iommufd.ts';
import { close, exit, open, readMemory, writeMemory } from './process.ts';
import { mapDma, setIommu, unmapDma } from './container.ts';
import { mdevCreate, mdevDma, mdevParent } from './mdev.ts';
import { isolationCheck } from './isolation.ts';
import { assign } from './assign.ts';
import { pasidAlloc } from './pasid-alloc.ts';
import { hostPasidAttach, hostPasidDetach } from './host-pasid.ts';
import { hwInfo } from './hw-info.ts';
import { deviceLog, iopfDisable } from './iopf.ts';
import { guestPagetable, hwptInvalidate } from './nesting.ts';
import { deviceAttach, deviceBind, deviceDetach, deviceReset, groupGetDeviceFd, groupSetContainer, groupStatus } from './vfio.ts';

export const STEP_KINDS: readonly StepKind[] = [
  unbind, bind, sysfsWrite, sysfsRead,
  open, close, exit, writeMemory, readMemory,
  ioasAlloc, ioasMap, ioasUnmap, destroy, hwptAlloc, faultQueueAlloc, faultRead, faultRespond, hwInfo,
  assign, pasidAlloc, groupStatus, groupSetContainer, groupGetDeviceFd, deviceBind, deviceAttach, deviceDetach, deviceReset,
  setIommu, mapDma, unmapDma,
  mdevParent, mdevCreate, mdevDma, isolationCheck,
  hostPasidAttach, hostPasidDetach, iopfDisable,
  dma, deviceLog,
  guestPagetable, hwptInvalidate,
  dirtyTracking, dirtyRead,
];
