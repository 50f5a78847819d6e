import { readFileSync } from 'node:fs';
import { isMap, isScalar, isSeq, type Document } from 'yaml';
import { addressKey, formatShortAddress, parseAddress } from './address.ts';
import { hostSpecSchema, type HostSpec } from './spec.ts';
import { loadLocated, LocatedFileError, type LocatedIssue, type PathKey, type Problem } from './located-yaml.ts';

// Host files are written by people: every complaint names the file, line and column of the offending
// node, the way a compiler does, so an editor can jump there.

/** One complaint about a host file (see LocatedIssue). */
export type HostFileIssue = LocatedIssue;

/** A host file that cannot be read, parsed or validated. */
export class HostFileError extends LocatedFileError {
  constructor(filename: string, issues: readonly LocatedIssue[]) {
    super(filename, issues);
    this.name = 'HostFileError';
  }
}

/** Read and validate a host description from disk (YAML, or JSON for a .json name). */
export function loadHostFile(path: string): HostSpec {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'no such file'
      : code === 'EISDIR' ? 'is a directory, not a host file'
        : code === 'EACCES' ? 'permission denied'
          : `cannot be read (${err instanceof Error ? err.message : String(err)})`;
    throw new HostFileError(path, [{ line: 0, column: 0, path: '', message: why }]);
  }
  return loadHostText(text, path);
}

/**
 * Parse and validate a host description. `.json` files are strict JSON; anything else is YAML 1.2.
 * Throws HostFileError for syntax errors, schema errors and the semantic checks (duplicate addresses, ...).
 */
export function loadHostText(text: string, filename: string): HostSpec {
  return loadLocated(text, filename, hostSpecSchema, {
    rootMessage: 'a host file must be a mapping with at least a "functions:" list',
    lint: lintYamlNumbers,
    check: checkHostSpec,
    error: (f, issues) => new HostFileError(f, issues),
  });
}

/** Fields whose strings are hexadecimal: a leading-zero YAML integer there was almost surely meant as hex. */
const HEX_FIELDS = new Set(['class', 'progIf', 'revision', 'primary', 'secondary', 'subordinate', 'cap', 'ctl', 'vfDevice', 'offset', 'base']);

/** YAML 1.2 reads `class: 0604` as the decimal 604; lspci wrote hex. Catch it before it silently misleads. */
function lintYamlNumbers(doc: Document): Problem[] {
  const out: Problem[] = [];
  const visit = (node: unknown, path: PathKey[]): void => {
    if (isMap(node)) {
      for (const pair of node.items) {
        if (!isScalar(pair.key)) continue;
        const key = String(pair.key.value);
        const value = pair.value;
        if (HEX_FIELDS.has(key) && isScalar(value) && typeof value.value === 'number' && /^[+-]?0\d+$/.test(value.source ?? '')) {
          const src = value.source ?? '';
          out.push({ path: [...path, key], message: `YAML reads ${src} as the decimal number ${value.value}; write 0x${src.replace(/^[+-]/, '')} or quote it ("${src}") for hexadecimal` });
        }
        visit(value, [...path, key]);
      }
    } else if (isSeq(node)) {
      node.items.forEach((item, i) => visit(item, [...path, i]));
    }
  };
  visit(doc.contents, []);
  return out;
}

/**
 * What the schema cannot say: duplicate addresses, VFs of functions that do not exist, bridges whose
 * bus numbers cannot form a hierarchy, more VFs enabled than the function has. Paths point at the field.
 */
export function checkHostSpec(spec: HostSpec): Array<{ path: PathKey[]; message: string }> {
  const out: Array<{ path: PathKey[]; message: string }> = [];
  const firstAt = new Map<number, number>();
  const physical = new Set<number>();
  const addrs = spec.functions.map((fn) => parseAddress(fn.address));
  spec.functions.forEach((fn, i) => {
    const a = addrs[i];
    if (a === undefined) return;
    const key = addressKey(a);
    const first = firstAt.get(key);
    if (first === undefined) firstAt.set(key, i);
    else out.push({ path: ['functions', i, 'address'], message: `function ${formatShortAddress(a)} is listed twice (first as functions.${first})` });
    if (fn.virtfnOf === undefined) physical.add(key);
  });
  spec.functions.forEach((fn, i) => {
    const a = addrs[i];
    if (fn.virtfnOf !== undefined) {
      const pf = parseAddress(fn.virtfnOf);
      if (pf !== undefined && !physical.has(addressKey(pf))) {
        out.push({ path: ['functions', i, 'virtfnOf'], message: `virtfnOf names ${formatShortAddress(pf)}, which is not a physical function of this host` });
      }
    }
    if (fn.bridge !== undefined && a !== undefined) {
      const { secondary, subordinate } = fn.bridge;
      if (secondary <= a.bus) {
        out.push({ path: ['functions', i, 'bridge', 'secondary'], message: `secondary bus ${hex2(secondary)} must be above the bridge's own bus ${hex2(a.bus)}` });
      } else if (subordinate < secondary) {
        out.push({ path: ['functions', i, 'bridge', 'subordinate'], message: `subordinate bus ${hex2(subordinate)} is below the secondary bus ${hex2(secondary)}` });
      }
    }
    if (fn.sriov !== undefined && fn.sriov.numVfs > fn.sriov.totalVfs) {
      out.push({ path: ['functions', i, 'sriov', 'numVfs'], message: `numVfs ${fn.sriov.numVfs} exceeds totalVfs ${fn.sriov.totalVfs}` });
    }
  });
  return out;
}

function hex2(n: number): string {
  return `0x${n.toString(16).padStart(2, '0')}`;
}
