import { extname } from 'node:path';
import { isMap, isPair, isScalar, isSeq, LineCounter, parseDocument, type Document } from 'yaml';
import type { z } from 'zod';

// Files written by people (host files, scenarios): YAML 1.2 or strict JSON, validated by a zod schema,
// with every complaint located at the file, line and column of the offending node, the way a compiler
// does, so an editor can jump there. Unions report the branch that came closest.

/** One complaint about a file; line and column are 1-based (0 when there is no position). */
export interface LocatedIssue {
  readonly line: number;
  readonly column: number;
  /** Where in the document: "functions.3.bridge.secondary"; empty for the file as a whole. */
  readonly path: string;
  readonly message: string;
}

export type PathKey = string | number;

/** How many issues the error message lists before "and N more". */
const MAX_LISTED = 5;

/** A file that cannot be read, parsed or validated; `line`, `column`, `path` are the first issue's. */
export class LocatedFileError extends Error {
  readonly filename: string;
  readonly line: number;
  readonly column: number;
  readonly path: string;
  /** Every issue found, in file order. */
  readonly issues: readonly LocatedIssue[];

  constructor(filename: string, issues: readonly LocatedIssue[]) {
    super(formatIssues(filename, issues));
    this.name = 'LocatedFileError';
    const first = issues[0] ?? { line: 0, column: 0, path: '', message: '' };
    this.filename = filename;
    this.line = first.line;
    this.column = first.column;
    this.path = first.path;
    this.issues = issues;
  }
}

function formatIssues(filename: string, issues: readonly LocatedIssue[]): string {
  const lines = issues.slice(0, MAX_LISTED).map((i) => {
    const where = i.line > 0 ? `${filename}:${i.line}:${i.column}` : filename;
    return `${where}: ${i.path === '' ? '' : `${i.path}: `}${i.message}`;
  });
  if (issues.length > MAX_LISTED) lines.push(`(and ${issues.length - MAX_LISTED} more)`);
  return lines.join('\n');
}


export interface LocatedLoadOptions<T> {
  /** What to say when the document is not the mapping the schema wants. */
  readonly rootMessage: string;
  /** Checks on the YAML nodes themselves (before the schema). */
  readonly lint?: (doc: Document) => Problem[];
  /** Checks the schema cannot express, on the validated data. */
  readonly check?: (data: T) => Problem[];
  /** The error to throw (a subclass naming the kind of file). */
  readonly error: (filename: string, issues: readonly LocatedIssue[]) => LocatedFileError;
}

/**
 * Parse and validate `text`. `.json` names are strict JSON; anything else is YAML 1.2. Throws the
 * options' error for syntax errors, schema errors and failed checks, with every issue located.
 */
export function loadLocated<T>(text: string, filename: string, schema: z.ZodType<T>, opts: LocatedLoadOptions<T>): T {
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
      throw opts.error(filename, [jsonSyntaxIssue(err, text, pos)]);
    }
  } else {
    if (doc.errors.length > 0) {
      throw opts.error(filename, doc.errors.map((e) => ({ ...pos(e.pos[0]), path: '', message: e.message })));
    }
    try {
      data = doc.toJS();
    } catch (err) {
      throw opts.error(filename, [{ line: 1, column: 1, path: '', message: err instanceof Error ? err.message : String(err) }]);
    }
  }

  const at = (path: readonly PathKey[], message: string, key?: string): LocatedIssue => {
    const offset = nodeOffset(doc, path, key);
    return { ...(offset === undefined ? { line: 1, column: 1 } : pos(offset)), path: path.join('.'), message };
  };
  const issues: LocatedIssue[] = (opts.lint?.(doc) ?? []).map((p) => at(p.path, p.message));
  const parsed = schema.safeParse(data);
  if (!parsed.success) {
    for (const issue of parsed.error.issues) {
      for (const p of describeIssue(issue, issue.path.map(pathKey), data, opts.rootMessage)) issues.push(at(p.path, p.message, p.key));
    }
  } else {
    for (const p of opts.check?.(parsed.data) ?? []) issues.push(at(p.path, p.message));
  }
  if (issues.length === 0) {
    if (parsed.success) return parsed.data;
    issues.push({ line: 1, column: 1, path: '', message: parsed.error.message }); // nothing more precise to say
  }
  issues.sort((a, b) => a.line - b.line || a.column - b.column);
  throw opts.error(filename, issues);
}

function pathKey(k: PropertyKey): PathKey {
  return typeof k === 'number' ? k : String(k);
}

function jsonSyntaxIssue(err: unknown, text: string, pos: (offset: number) => { line: number; column: number }): LocatedIssue {
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

/** A complaint before it is located: the path of the node and, for a map key, the key. */
export interface Problem { path: PathKey[]; message: string; key?: string }

/** Turn one zod issue into messages a person can act on; unions report the branch that came closest. */
function describeIssue(issue: z.core.$ZodIssue, path: PathKey[], root: unknown, rootMessage: string): Problem[] {
  const value = valueAt(root, path);
  switch (issue.code) {
    case 'invalid_union': {
      const closest = issue.errors.find((branch) => branch.some((i) => !(i.code === 'invalid_type' && i.path.length === 0)));
      if (closest !== undefined) {
        return closest.flatMap((i) => describeIssue(i, [...path, ...i.path.map(pathKey)], root, rootMessage));
      }
      const expected = issue.errors.flat().map((i) => (i.code === 'invalid_type' ? i.expected : undefined)).filter((e) => e !== undefined);
      return [typeProblem(path, [...new Set(expected)].join(' or '), value, rootMessage)];
    }
    case 'invalid_type':
      return [typeProblem(path, issue.expected, value, rootMessage)];
    case 'unrecognized_keys':
      return issue.keys.map((key) => ({ path, key, message: `unknown field "${key}"` }));
    default:
      return [{ path, message: issue.message.replace(/^Invalid (input|option): /, '') }];
  }
}

function typeProblem(path: PathKey[], expected: string, value: unknown, rootMessage: string): Problem {
  if (path.length === 0) return { path, message: rootMessage };
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

