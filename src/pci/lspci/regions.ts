import type { Warnings } from './warnings.ts';
import type { RawBar } from './raw.ts';

// lspci show_bases(): "Region N: Memory at ADDR (64-bit, prefetchable) [size=16M]" or
// "Region N: I/O ports at ADDR [size=256]"; ADDR may be <unassigned> or <ignored>, and
// " [virtual]", " [disabled]" or " [enhanced]" may come before the size.
const REGION_RE = /^Region ([0-9]): (Memory|I\/O ports) at (\S+)(?: \(([^)]*)\))?(.*)$/;
const SIZE_RE = /\[size=(\d+)([KMGT]?)\]/;
const UNITS: Readonly<Record<string, number>> = { '': 1, K: 1024, M: 1024 ** 2, G: 1024 ** 3, T: 1024 ** 4 };

/**
 * Read one Region line into a BAR, or undefined when it describes none a config space holds:
 * - [virtual]: the kernel's resource, not the register (VF BARs live in the PF's SR-IOV capability);
 * - no size: nothing to model; a size that is not a power of two cannot come from BAR sizing (warned).
 * [disabled] BARs are kept (the register is implemented, only decoding is off in the Command register),
 * and <unassigned>/<ignored> ones are kept at base 0 when their size is known.
 */
export function parseRegion(text: string, line: number, where: string, warnings: Warnings): RawBar | undefined {
  const m = REGION_RE.exec(text);
  if (m === null) return undefined;
  const tail = m[5] ?? '';
  if (tail.includes('[virtual]')) return undefined;
  const index = parseInt(m[1] ?? '', 10);
  const s = SIZE_RE.exec(tail);
  if (index > 5 || s === null) return undefined;
  const size = parseInt(s[1] ?? '', 10) * (UNITS[s[2] ?? ''] ?? 1);
  if (!(size > 0) || !Number.isInteger(Math.log2(size))) {
    warnings.add(`line ${line}: ${where} region ${index} has size ${s[1] ?? ''}${s[2] ?? ''}, not a power of two; region dropped`);
    return undefined;
  }
  const addr = m[3] ?? '';
  let base = /^[0-9a-fA-F]+$/.test(addr) ? parseInt(addr, 16) : 0;
  if (base > Number.MAX_SAFE_INTEGER) {
    warnings.add(`line ${line}: ${where} region ${index} base ${addr} is beyond 2^53; imported at base 0`);
    base = 0;
  }
  if (m[2] === 'I/O ports') return { line, index, type: 'io', prefetchable: false, base, size };
  const attrs = m[4] ?? '';
  return {
    line,
    index,
    type: attrs.startsWith('64-bit') ? 'mem64' : 'mem32',
    prefetchable: !attrs.includes('non-prefetchable') && attrs.includes('prefetchable'),
    base,
    size,
  };
}
