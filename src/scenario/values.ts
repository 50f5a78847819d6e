// Values in scenario files: sizes ("2M", "4K", 4096), addresses ("0x1000_0000"), references to what an
// earlier step produced ("$ioas"), and user addresses inside a process's named memory region
// ("ram", "ram+0x2000"). Resolution happens when a step runs, against the run's state.

import { z } from 'zod';

/** A number as written in a file: a JSON number, or a string with 0x, underscores, or a K/M/G/T suffix. */
export const numberLike = z.union([z.number(), z.string().min(1)]);
export type NumberLike = z.infer<typeof numberLike>;

const SUFFIX: Record<string, bigint> = { K: 1n << 10n, M: 1n << 20n, G: 1n << 30n, T: 1n << 40n };

/** Parse a literal number ("2M", "0x1000", "4_096", 17): a bigint, or an error message. */
export function parseLiteral(v: NumberLike): bigint | string {
  if (typeof v === 'number') {
    if (!Number.isSafeInteger(v) || v < 0) return `${v} is not a whole number of 0 or more`;
    return BigInt(v);
  }
  const s = v.replace(/_/g, '').trim();
  const m = /^(0x[0-9a-fA-F]+|\d+)([KMGT])?i?B?$/.exec(s);
  if (m === null) return `"${v}" is not a number (write 4096, 0x1000, 4K, 2M or 1G)`;
  const base = BigInt(m[1] as string);
  return m[2] === undefined ? base : base * (SUFFIX[m[2]] as bigint);
}

/** What a name in a reference can resolve to. */
export interface ValueScope {
  /** `$name`: a value an earlier step stored with `as:` or `out:`. */
  variable(name: string): bigint | undefined;
  /** `region[+offset]`: the user address of a process's memory region. */
  region(name: string): bigint | undefined;
}

/** Resolve a value: a literal, `$var`, `$var+off`, `region`, or `region+off`. */
export function resolveValue(v: NumberLike, scope: ValueScope): bigint | string {
  if (typeof v === 'number') return parseLiteral(v);
  const m = /^\s*(\$?)([A-Za-z_][\w.-]*)\s*(?:\+\s*(.+))?$/.exec(v);
  if (m === null) return parseLiteral(v);
  const [, dollar, name, off] = m as unknown as [string, string, string, string | undefined];
  const base = dollar === '$' ? scope.variable(name) : scope.region(name);
  if (base === undefined) {
    return dollar === '$' ? `$${name} is not set by any earlier step` : `"${v}" is neither a number nor a memory region of this process`;
  }
  if (off === undefined) return base;
  const o = parseLiteral(off);
  return typeof o === 'string' ? o : base + o;
}

/** Format a byte count for narratives: 2 MiB, 4 KiB, 1536 B. */
export function formatSize(n: bigint): string {
  for (const [unit, k] of [['TiB', 40n], ['GiB', 30n], ['MiB', 20n], ['KiB', 10n]] as const) {
    const b = 1n << k;
    if (n >= b && n % b === 0n) return `${n / b} ${unit}`;
  }
  return `${n} B`;
}

export const hex = (n: bigint | number): string => `0x${n.toString(16)}`;
