import { ZodError } from 'zod';
import { CmdlineError } from '../pci/kernel-options.ts';
import { LspciError } from '../pci/lspci/errors.ts';
import { LocatedFileError } from '../pci/located-yaml.ts';
import { PlanError } from '../pci/plan/types.ts';
import { ConfigLayoutError } from '../pci/synth.ts';
import { WhatIfError } from '../pci/whatif/types.ts';
import { TopologyError } from '../pci/topology.ts';

/** Exit statuses: 0 fine, 1 bad input or disagreement, 2 bad usage, 70 (EX_SOFTWARE) a bug of ours. */
export const EXIT_OK = 0;
export const EXIT_INPUT = 1;
export const EXIT_USAGE = 2;
export const EXIT_INTERNAL = 70;

/** A mistake in how the command was called: exit 2. */
export class UsageError extends Error {
  override readonly name = 'UsageError';
}

/** Input the CLI cannot use (a missing file, an unknown device, ...): exit 1. `where` is "file:line[:col]". */
export class InputError extends Error {
  override readonly name = 'InputError';
  constructor(message: string, readonly where?: string) {
    super(message);
  }
}

/** What to print for an error and with which status; null for an error that is a bug of ours. */
export interface ErrorReport {
  /** One line per problem, each printed as "ioasis: ..." (a host file can have several). */
  readonly message: string;
  readonly exitCode: number;
  /** Help that follows the problem (e.g. the what-if syntax), printed indented. */
  readonly detail?: readonly string[];
}

/** The lines to print on stderr for a report. */
export function reportLines(report: ErrorReport): string[] {
  return [...report.message.split('\n').map((l) => `ioasis: ${l}`), ...(report.detail ?? []).map((l) => `  ${l}`)];
}

/** Where an error happened, prefixed to its message: "file:12:3: ". */
export function located(where: string | undefined, message: string): string {
  return where === undefined || where === '' ? message : `${where}: ${message}`;
}

/** "line 12: message" (the lspci importer's form) -> [12, "message"]. */
function splitLinePrefix(message: string): [number | undefined, string] {
  const m = /^line (\d+): (.*)$/s.exec(message);
  return m === null ? [undefined, message] : [parseInt(m[1] ?? '0', 10), m[2] ?? ''];
}

/**
 * Turn a thrown value into one line for a person. `source` names the input being read (a file name,
 * "<stdin>"), for errors that point at a line of it. Unknown errors return null: they are bugs.
 */
export function reportError(err: unknown, source?: string): ErrorReport | null {
  if (err instanceof UsageError) return { message: err.message, exitCode: EXIT_USAGE };
  if (err instanceof InputError) return { message: located(err.where, err.message), exitCode: EXIT_INPUT };
  if (err instanceof LspciError) {
    // parseLspci prefixes "source: " itself when given a source; this puts the location in one place.
    const own = source !== undefined && err.message.startsWith(`${source}: `) ? err.message.slice(source.length + 2) : err.message;
    const [prefixLine, text] = splitLinePrefix(own);
    const line = err.line ?? prefixLine;
    const where = source === undefined ? (line === undefined ? undefined : `line ${line}`)
      : line === undefined ? source : `${source}:${line}`;
    return { message: located(where, text), exitCode: EXIT_INPUT };
  }
  // Its message already says file:line:column for every issue (one per line).
  // Host files and scenario files: the message already names file:line:column.
  if (err instanceof LocatedFileError) return { message: err.message, exitCode: EXIT_INPUT };
  if (err instanceof WhatIfError) {
    const [first = '', ...rest] = err.message.split('\n');
    return { message: `--what-if: ${first}`, exitCode: EXIT_INPUT, detail: rest };
  }
  if (err instanceof PlanError) {
    const [first = '', ...rest] = err.message.split('\n');
    return { message: first, exitCode: EXIT_INPUT, detail: rest.map((l) => l.trim()) };
  }
  if (err instanceof CmdlineError) return { message: `--cmdline: ${err.message}`, exitCode: EXIT_INPUT };
  if (err instanceof ZodError) {
    const issue = err.issues[0];
    const path = issue === undefined || issue.path.length === 0 ? '' : `${issue.path.join('.')}: `;
    return { message: located(source, `invalid host description: ${path}${issue?.message ?? err.message}`), exitCode: EXIT_INPUT };
  }
  if (err instanceof TopologyError || err instanceof ConfigLayoutError) {
    return { message: located(source, err.message), exitCode: EXIT_INPUT };
  }
  if (isNodeError(err) && typeof err.code === 'string' && FS_CODES[err.code] !== undefined) {
    const path = typeof err.path === 'string' ? err.path : source;
    return { message: located(path, FS_CODES[err.code] ?? err.message), exitCode: EXIT_INPUT };
  }
  return null;
}

/**
 * An error about the input named `source` as an InputError located there, so the top level prints
 * "source:line: message"; errors that are not about the input (or are bugs) pass through unchanged.
 */
export function attachSource(err: unknown, source: string): unknown {
  if (err instanceof LspciError || err instanceof ZodError || err instanceof TopologyError || err instanceof ConfigLayoutError) {
    const report = reportError(err, source);
    if (report !== null) return new InputError(report.message);
  }
  return err;
}

const FS_CODES: Readonly<Record<string, string>> = {
  ENOENT: 'no such file',
  EACCES: 'permission denied',
  EISDIR: 'is a directory, not a file',
  ENOTDIR: 'a component of the path is not a directory',
};

function isNodeError(err: unknown): err is NodeJS.ErrnoException {
  return err instanceof Error && 'code' in err;
}
