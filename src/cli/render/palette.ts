import type { Colors } from '../io.ts';
import type { BadgeKind } from './badges.ts';

type Paint = (text: string) => string;

/** A colour per group, cycling, so neighbouring groups in the tree differ. */
export function groupPaint(c: Colors, id: number): Paint {
  const cycle: readonly Paint[] = [c.cyan, c.green, c.yellow, c.magenta, c.blue, c.red, c.cyanBright, c.greenBright, c.yellowBright, c.magentaBright, c.blueBright, c.redBright];
  return cycle[id % cycle.length] ?? c.cyan;
}

export function badgePaint(c: Colors, kind: BadgeKind): Paint {
  switch (kind) {
    case 'acs-ok': return c.green;
    case 'acs-weak': return c.red;
    case 'quirk': return c.magenta;
    case 'alias': return c.cyan;
    case 'uncovered': return c.dim;
    case 'not-isolated': return c.red;
  }
}
