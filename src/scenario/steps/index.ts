// Every step kind a scenario may use, by its `do:` name.

import type { StepKind } from '../step-kind.ts';
import { bind, sysfsRead, sysfsWrite, unbind } from './drivers.ts';
import { dma } from './dma.ts';
import { destroy, faultQueueAlloc, faultRead, faultRespond, hwptAlloc, ioasAlloc, ioasMap, ioasUnmap } from './iommufd.ts';
import { close, exit, open, readMemory, writeMemory } from './process.ts';

export const STEP_KINDS: readonly StepKind[] = [
  unbind, bind, sysfsWrite, sysfsRead,
  open, close, exit, writeMemory, readMemory,
  ioasAlloc, ioasMap, ioasUnmap, destroy, hwptAlloc, faultQueueAlloc, faultRead, faultRespond,
  dma,
];
