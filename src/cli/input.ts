import { readFile } from 'node:fs/promises';
import { extname } from 'node:path';
import { BUILTIN_HOSTS, loadBuiltinHost } from '../pci/builtin-hosts.ts';
import { loadHostText } from '../pci/host-file.ts';
import { parseLspci } from '../pci/lspci/index.ts';
import type { HostSpec } from '../pci/spec.ts';
import { attachSource, InputError, UsageError } from './errors.ts';
import { readAll, type CliIo } from './io.ts';

// Where a host comes from: an lspci dump or a host file (named, or `-` for stdin), or a built-in host.

export type InputKind = 'lspci' | 'host-file' | 'builtin';

export interface LoadedInput {
  readonly spec: HostSpec;
  readonly kind: InputKind;
  /** What to call the input in messages: the file name, "<stdin>" or "built-in host NAME". */
  readonly source: string;
  /** The lspci importer's warnings (empty for host files). */
  readonly warnings: readonly string[];
  /** Whether the input carries `IOMMU group:` lines (lspci dumps from pciutils 3.7+). */
  readonly observedGroups: boolean;
}

/** A line starting like an lspci device header: "[dddd:]bb:dd.f Class...". */
const LSPCI_HEADER = /^(?:[0-9a-fA-F]{4,8}:)?[0-9a-fA-F]{2}:[0-9a-fA-F]{2}\.[0-7] \S/m;
/** A YAML/JSON host description: a top-level `functions:` (or any top-level key), or a JSON object. */
const HOST_FILE = /^(?:functions|name|platform|kernel|acsCtl|description)\s*:|^\s*\{/m;
const HOST_EXTENSIONS = new Set(['.yaml', '.yml', '.json']);

export const STDIN_NAME = '<stdin>';

/** Decide what the text is and import it; errors about it come back located in `source`. */
export function importText(text: string, source: string): LoadedInput {
  try {
    return importUnlocated(text, source);
  } catch (err) {
    throw attachSource(err, source);
  }
}

function importUnlocated(text: string, source: string): LoadedInput {
  const ext = extname(source).toLowerCase();
  if (LSPCI_HEADER.test(text) || (!HOST_EXTENSIONS.has(ext) && !HOST_FILE.test(text))) {
    // Anything not recognisably a host file goes to the importer, whose errors say what lspci output looks like.
    const imported = parseLspci(text, source);
    return { spec: imported.spec, kind: 'lspci', source, warnings: imported.warnings, observedGroups: imported.observedGroups };
  }
  const spec = loadHostText(text, source);
  return { spec, kind: 'host-file', source, warnings: [], observedGroups: spec.functions.some((f) => f.observedGroup !== undefined) };
}

/** Read a named file, or stdin for `-`. */
export async function readInput(file: string, io: CliIo): Promise<{ text: string; source: string }> {
  if (file === '-') return { text: await readAll(io.stdin), source: STDIN_NAME };
  try {
    return { text: await readFile(file, 'utf8'), source: file };
  } catch (err) {
    const code = err instanceof Error && 'code' in err ? (err as NodeJS.ErrnoException).code : undefined;
    const why = code === 'ENOENT' ? 'no such file'
      : code === 'EISDIR' ? 'is a directory, not a file'
        : code === 'EACCES' ? 'permission denied'
          : `cannot be read (${err instanceof Error ? err.message : String(err)})`;
    throw new InputError(why, file);
  }
}

/** FILE, `-`, or the built-in host: exactly one source. */
export async function loadInput(file: string | undefined, host: string | undefined, io: CliIo): Promise<LoadedInput> {
  if (file !== undefined && host !== undefined) throw new UsageError(`give either FILE or --host, not both (FILE ${file}, --host ${host})`);
  if (file === undefined) return loadBuiltin(host ?? 'default');
  const { text, source } = await readInput(file, io);
  return importText(text, source);
}

/** A host that ships with ioasis; an unknown name is a usage error listing the known ones. */
export function loadBuiltin(name: string): LoadedInput {
  if (!BUILTIN_HOSTS.some((h) => h.name === name)) {
    throw new UsageError(`--host: unknown built-in host "${name}"; known: ${BUILTIN_HOSTS.map((h) => h.name).join(', ')}`);
  }
  const spec = loadBuiltinHost(name);
  return { spec, kind: 'builtin', source: `built-in host ${name}`, warnings: [], observedGroups: spec.functions.some((f) => f.observedGroup !== undefined) };
}
