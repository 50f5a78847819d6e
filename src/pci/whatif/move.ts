import { addressKey, formatShortAddress, PCI_DEVFN, PCI_FUNC, PCI_SLOT, parseAddress, type PciAddress } from '../address.ts';
import type { FunctionSpec, HostSpec } from '../spec.ts';
import { addressOf, describeFunction, functionAt } from './spec-edit.ts';
import { WhatIfError } from './types.ts';

export interface MoveOutcome {
  readonly spec: HostSpec;
  /** Old short BDF -> new short BDF of every function whose address changed. */
  readonly renamed: ReadonlyMap<string, string>;
  readonly text: string;
}

const hex2 = (n: number): string => n.toString(16).padStart(2, '0');
const rid = (a: PciAddress): number => (a.bus << 8) | a.devfn;

/**
 * Re-seat the card in `device`'s slot on `bridge`'s secondary bus, as device 00 (a PCIe link carries
 * one device). Every function of the slot moves, with everything on the buses below it when it is a
 * bridge; those buses keep their numbers when they already fit the new window, else shift as a block.
 * The spec is not changed: a new one is returned.
 */
export function moveCard(spec: HostSpec, device: string, bridge: string): MoveOutcome {
  const what = `move:${device}:${bridge}`;
  const from = addressOf(functionAt(spec, device, what));
  const target = functionAt(spec, bridge, what);
  const tAddr = addressOf(target);
  if (target.bridge === undefined) throw new WhatIfError(`${what}: ${describeFunction(target)} is not a bridge: it has no secondary bus to plug a card into`);
  const tSec = target.bridge.secondary;
  const tSub = target.bridge.subordinate;
  if (tSec <= tAddr.bus || tSub < tSec) throw new WhatIfError(`${what}: ${describeFunction(target)} has no configured bus window (secondary ${hex2(tSec)}, subordinate ${hex2(tSub)})`);

  const inSlot = (a: PciAddress): boolean => a.domain === from.domain && a.bus === from.bus && PCI_SLOT(a.devfn) === PCI_SLOT(from.devfn);
  const slotFns = spec.functions.filter((f) => f.virtfnOf === undefined && inSlot(addressOf(f)));
  // Buses below the card: the windows of its bridge functions (nested windows lie inside them).
  const windows = slotFns.flatMap((f) => (f.bridge !== undefined && f.bridge.secondary > from.bus ? [f.bridge] : []));
  const below = (a: PciAddress): boolean => a.domain === from.domain && windows.some((w) => a.bus >= w.secondary && a.bus <= w.subordinate);
  const movedPhysical = spec.functions.filter((f) => f.virtfnOf === undefined && (inSlot(addressOf(f)) || below(addressOf(f))));
  const movedKeys = new Set(movedPhysical.map((f) => addressKey(addressOf(f))));
  const movedVfs = spec.functions.filter((f) => {
    const pf = f.virtfnOf === undefined ? undefined : parseAddress(f.virtfnOf);
    return pf !== undefined && movedKeys.has(addressKey(pf));
  });
  if (movedKeys.has(addressKey(tAddr))) throw new WhatIfError(`${what}: ${describeFunction(target)} is part of what moves; a card cannot be plugged in below itself`);

  const moving = new Set<FunctionSpec>([...movedPhysical, ...movedVfs]);
  const others = spec.functions.filter((f) => !moving.has(f));
  const occupants = others.filter((f) => { const a = addressOf(f); return a.domain === tAddr.domain && a.bus === tSec; });
  if (occupants.length > 0) {
    throw new WhatIfError(`${what}: bus ${hex2(tSec)} below ${describeFunction(target)} is occupied by ${occupants.map((f) => formatShortAddress(addressOf(f))).join(', ')}; move or remove that card first`);
  }

  // Bus numbers for the subtree: kept when the old block already lies inside the new window.
  const busMap = new Map<number, number>([[from.bus, tSec]]);
  let renumberText = '';
  if (windows.length > 0) {
    const lo = Math.min(...windows.map((w) => w.secondary));
    const hi = Math.max(...windows.map((w) => w.subordinate));
    const fits = from.domain === tAddr.domain && lo > tSec && hi <= tSub;
    const delta = fits ? 0 : tSec + 1 - lo;
    if (hi + delta > tSub) {
      throw new WhatIfError(`${what}: the card's subtree uses buses ${hex2(lo)}-${hex2(hi)} (${hi - lo + 1} buses), but ${describeFunction(target)}'s window ${hex2(tSec)}-${hex2(tSub)} has only ${tSub - tSec} below its secondary bus`);
    }
    for (let b = lo; b <= hi; b++) busMap.set(b, b + delta);
    const clash = others.find((f) => { const a = addressOf(f); return a.domain === tAddr.domain && a.bus > tSec && a.bus >= lo + delta && a.bus <= hi + delta; });
    if (clash !== undefined) throw new WhatIfError(`${what}: the subtree needs buses ${hex2(lo + delta)}-${hex2(hi + delta)}, but ${formatShortAddress(addressOf(clash))} already sits on bus ${hex2(addressOf(clash).bus)}`);
    if (delta !== 0) renumberText = `; buses ${hex2(lo)}-${hex2(hi)} below it renumbered ${hex2(lo + delta)}-${hex2(hi + delta)}`;
  }

  const newAddress = (a: PciAddress): PciAddress => inSlot(a)
    ? { domain: tAddr.domain, bus: tSec, devfn: PCI_DEVFN(0, PCI_FUNC(a.devfn)) }
    : { domain: tAddr.domain, bus: busMap.get(a.bus) ?? a.bus, devfn: a.devfn };
  const renamed = new Map<string, string>();
  const rewrite = (f: FunctionSpec): FunctionSpec => {
    const old = addressOf(f);
    let next: PciAddress;
    let virtfnOf = f.virtfnOf;
    if (f.virtfnOf !== undefined) {
      // A VF's routing ID is its PF's plus a fixed offset: it follows the PF.
      const pfOld = parseAddress(f.virtfnOf) as PciAddress;
      const pfNew = newAddress(pfOld);
      const r = rid(old) + rid(pfNew) - rid(pfOld);
      if (r > 0xffff) throw new WhatIfError(`${what}: virtual function ${formatShortAddress(old)} would land beyond bus ff`);
      next = { domain: pfNew.domain, bus: r >> 8, devfn: r & 0xff };
      virtfnOf = formatShortAddress(pfNew);
    } else {
      next = newAddress(old);
    }
    const bdf = formatShortAddress(next);
    if (bdf !== formatShortAddress(old)) renamed.set(formatShortAddress(old), bdf);
    const bridgeRegs = f.bridge === undefined ? undefined : {
      ...f.bridge,
      primary: f.bridge.primary === undefined ? undefined : next.bus,
      secondary: busMap.get(f.bridge.secondary) ?? f.bridge.secondary,
      subordinate: busMap.get(f.bridge.subordinate) ?? f.bridge.subordinate,
    };
    return { ...f, address: bdf, bridge: bridgeRegs, virtfnOf };
  };
  const functions = spec.functions.map((f) => (moving.has(f) ? rewrite(f) : f));
  const seen = new Set<number>();
  for (const f of functions) {
    const k = addressKey(addressOf(f));
    if (seen.has(k)) throw new WhatIfError(`${what}: after the move two functions would sit at ${f.address}`);
    seen.add(k);
  }

  const mapAddr = (s: string): string => {
    const a = parseAddress(s);
    return a === undefined ? s : renamed.get(formatShortAddress(a)) ?? s;
  };
  const platform = {
    ...spec.platform,
    uncovered: spec.platform.uncovered?.map(mapAddr),
    firmwareAliases: spec.platform.firmwareAliases.map(([d, a]) => [mapAddr(d), mapAddr(a)] as [string, string]),
  };
  const slotText = slotFns.map((f) => formatShortAddress(addressOf(f))).join(' ');
  const subtree = movedPhysical.length - slotFns.length;
  const rest = subtree > 0 ? ` and the ${subtree} function${subtree === 1 ? '' : 's'} below it` : '';
  const text = renamed.size === 0
    ? `move: ${slotText} already sits on ${describeFunction(target)}'s secondary bus; nothing moves`
    : `moved ${slotText}${rest} to bus ${hex2(tSec)} below ${describeFunction(target)} (now ${formatShortAddress(newAddress(from)).replace(/\.\d$/, '.x')})${renumberText}`;
  return { spec: { ...spec, platform, functions }, renamed, text };
}
