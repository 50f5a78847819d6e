import { readFileSync } from 'node:fs';
import { extname } from 'node:path';
import { isMap, isPair, isScalar, isSeq, LineCounter, parseDocument, type Document } from 'yaml';
import type { z } from 'zod';
import { addressKey, formatShortAddress, parseAddress } from './address.ts';
import { hostSpecSchema, type HostSpec } from './spec.ts';

// Host files are written by people: every complaint names the file, line and column of the offending
// node, the way a compiler does, so an editor can jump there.

/** One complaint about a host file; line and column are 1-based (0 when there is no position). */
export interface HostFileIssue {
  readonly line: number;
  readonly column: number;
  /** Where in the description: "functions.3.bridge.secondary"; empty for the file as a whole. */
  readonly path: string;
  readonly message: string;
}

/** How many issues the error message lists before "and N more". */
const MAX_LISTED = 5;

/** A host file that cannot be read, parsed or validated; `line`, `column`, `path` are the first issue's. */
export class HostFileError extends Error {
  readonly filename: string;
  readonly line: number;
  readonly column: number;
  readonly path: string;
  /** Every issue found, in file order. */
  readonly issues: readonly HostFileIssue[];

  constructor(filename: string, issues: readonly HostFileIssue[]) {
    super(formatIssues(filename, issues));
    this.name = 'HostFileError';
    const first = issues[0] ?? { line: 0, column: 0, path: '', message: '' };
    this.filename = filename;
    this.line = first.line;
    this.column = first.column;
    this.path = first.path;
    this.issues = issues;
  }
}

function formatIssues(filename: string, issues: readonly HostFileIssue[]): string {
  const lines = issues.slice(0, MAX_LISTED).map((i) => {
    const where = i.line > 0 ? `${filename}:${i.line}:${i.column}` : filename;
    return `${where}: ${i.path === '' ? '' : `${i.path}: `}${i.message}`;
  });
  if (issues.length > MAX_LISTED) lines.push(`(and ${issues.length - MAX_LISTED} more)`);
  return lines.join('\n');
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

type PathKey = string | number;

/**
 * Parse and validate a host description. `.json` files are strict JSON; anything else is YAML 1.2.
 * Throws HostFileError for syntax errors, schema errors and the semantic checks (duplicate addresses, ...).
 */
export function loadHostText(text: string, filename: string): HostSpec {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: true });
  const pos = (offset: number): { line: number; column: number } => {
    const p = lineCounter.linePos(offset);
    // linePos answers line 0 for offsets before the first recorded line start.
    return p.line === 0 ? { line: 1, column: offset + 1 } : { line: p.line, column: p.col };
  };

  let data: unknown;
  if (extname(filename).toLowerCase() === '.json') {
    try {
      data = JSON.parse(text);
    } catch (err) {
      throw new HostFileError(filename, [jsonSyntaxIssue(err, text, pos)]);
    }
  } else {
    if (doc.errors.length > 0) {
      throw new HostFileError(filename, doc.errors.map((e) => ({ ...pos(e.pos[0]), path: '', message: e.message })));
    }
    try {
      data = doc.toJS();
    } catch (err) {
      throw new HostFileError(filename, [{ line: 1, column: 1, path: '', message: err instanceof Error ? err.message : String(err) }]);
    }
  }

  const at = (path: readonly PathKey[], message: string, key?: string): HostFileIssue => {
    const offset = nodeOffset(doc, path, key);
    return { ...(offset === undefined ? { line: 1, column: 1 } : pos(offset)), path: path.join('.'), message };
  };
  const issues: HostFileIssue[] = lintYamlNumbers(doc).map((p) => at(p.path, p.message));
  const parsed = hostSpecSchema.safeParse(data);
  if (!parsed.success) {
    for (const issue of parsed.error.issues) {
      for (const p of describeIssue(issue, issue.path.map(pathKey), data)) issues.push(at(p.path, p.message, p.key));
    }
  } else {
    for (const p of checkHostSpec(parsed.data)) issues.push(at(p.path, p.message));
  }
  if (issues.length === 0) {
    if (parsed.success) return parsed.data;
    issues.push({ line: 1, column: 1, path: '', message: parsed.error.message }); // nothing more precise to say
  }
  issues.sort((a, b) => a.line - b.line || a.column - b.column);
  throw new HostFileError(filename, issues);
}

function pathKey(k: PropertyKey): PathKey {
  return typeof k === 'number' ? k : String(k);
}

function jsonSyntaxIssue(err: unknown, text: string, pos: (offset: number) => { line: number; column: number }): HostFileIssue {
  const raw = err instanceof Error ? err.message : String(err);
  // V8 says "... in JSON at position N" (Node 20) and adds "(line L column C)" on newer versions.
  const lc = /line (\d+) column (\d+)/.exec(raw);
  const at = /at position (\d+)/.exec(raw);
  const message = raw.replace(/\s*\(line \d+ column \d+\)/, '').replace(/ in JSON at position \d+/, '').replace(/ at position \d+/, '');
  if (lc !== null) return { line: Number(lc[1]), column: Number(lc[2]), path: '', message };
  if (at !== null) return { ...pos(Number(at[1])), path: '', message };
  return { ...pos(text.length), path: '', message };
}

/** Source offset of the node at `path` (or of map key `key` under it); the nearest existing ancestor otherwise. */
function nodeOffset(doc: Document, path: readonly PathKey[], key?: string): number | undefined {
  let node: unknown = doc.contents;
  let offset = rangeStart(node);
  for (const k of path) {
    if (isMap(node)) {
      const pair = findPair(node.items, k);
      if (pair === undefined) return offset;
      // Point at the value when there is one: that is what was wrong; a bare `key:` points at the key.
      offset = rangeStart(pair.value) ?? rangeStart(pair.key) ?? offset;
      node = pair.value;
    } else if (isSeq(node) && typeof k === 'number') {
      const item: unknown = node.items[k];
      if (item === undefined) return offset;
      offset = rangeStart(item) ?? offset;
      node = item;
    } else {
      return offset;
    }
  }
  if (key !== undefined && isMap(node)) {
    const pair = findPair(node.items, key);
    if (pair !== undefined) offset = rangeStart(pair.key) ?? offset;
  }
  return offset;
}

function findPair(items: readonly unknown[], k: PathKey): { key: unknown; value: unknown } | undefined {
  for (const p of items) {
    if (isPair(p) && isScalar(p.key) && String(p.key.value) === String(k)) return p;
  }
  return undefined;
}

function rangeStart(node: unknown): number | undefined {
  if (node === null || typeof node !== 'object' || !('range' in node)) return undefined;
  const range = (node as { range?: unknown }).range;
  return Array.isArray(range) && typeof range[0] === 'number' ? range[0] : undefined;
}

interface Problem { path: PathKey[]; message: string; key?: string }

/** Turn one zod issue into messages a person can act on; unions report the branch that came closest. */
function describeIssue(issue: z.core.$ZodIssue, path: PathKey[], root: unknown): Problem[] {
  const value = valueAt(root, path);
  switch (issue.code) {
    case 'invalid_union': {
      const closest = issue.errors.find((branch) => branch.some((i) => !(i.code === 'invalid_type' && i.path.length === 0)));
      if (closest !== undefined) {
        return closest.flatMap((i) => describeIssue(i, [...path, ...i.path.map(pathKey)], root));
      }
      const expected = issue.errors.flat().map((i) => (i.code === 'invalid_type' ? i.expected : undefined)).filter((e) => e !== undefined);
      return [typeProblem(path, [...new Set(expected)].join(' or '), value)];
    }
    case 'invalid_type':
      return [typeProblem(path, issue.expected, value)];
    case 'unrecognized_keys':
      return issue.keys.map((key) => ({ path, key, message: `unknown field "${key}"` }));
    default:
      return [{ path, message: issue.message.replace(/^Invalid (input|option): /, '') }];
  }
}

function typeProblem(path: PathKey[], expected: string, value: unknown): Problem {
  if (path.length === 0) return { path, message: 'a host file must be a mapping with at least a "functions:" list' };
  if (value === undefined) return { path, message: `missing required field "${String(path[path.length - 1])}"` };
  return { path, message: `expected ${expected}, got ${kindOf(value)}` };
}

function kindOf(value: unknown): string {
  if (value === null) return 'nothing (null)';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'a mapping';
  if (typeof value === 'string') return `the string ${JSON.stringify(value)}`;
  if (typeof value === 'number' || typeof value === 'boolean') return `the ${typeof value} ${value}`;
  return `a ${typeof value}`;
}

function valueAt(root: unknown, path: readonly PathKey[]): unknown {
  let cur: unknown = root;
  for (const k of path) {
    if (cur === null || typeof cur !== 'object') return undefined;
    cur = (cur as Record<PathKey, unknown>)[k];
  }
  return cur;
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
