import type { HostSpec } from '../spec.ts';
import { assembleSpec } from './assemble.ts';
import { lineError, LspciError } from './errors.ts';
import { parseHeader, startsWithAddress } from './header.ts';
import { readLines, type DumpLine } from './lines.ts';
import type { RawFunction } from './raw.ts';
import { RecordParser } from './record.ts';
import { Warnings } from './warnings.ts';

/** The result of importing an `lspci -vvnn` dump. */
export interface LspciImport {
  /** Validated with hostSpecSchema; acsCtl is 'post-boot' (the dump shows ACS Control after the kernel set it). */
  spec: HostSpec;
  /** Things a person should know: skipped error text, decoding caveats, unresolvable bus ranges, guesses. */
  warnings: string[];
  /** Whether the dump had `IOMMU group:` lines (pciutils 3.7+ with the IOMMU on). */
  observedGroups: boolean;
}

const HEADER_HINT = 'expected a device header such as "00:1f.0 ISA bridge [0601]: Intel Corporation ... [8086:a305]"';

/**
 * Import the output of `lspci -vvnn` (pciutils 3.7+, run as root) as a host spec. One pass over the
 * lines; throws only LspciError: 'empty', 'garbage' (not lspci output), 'truncated' (cut short),
 * 'non-root' (capabilities unreadable) or 'invalid' (the result fails the host schema).
 */
export function parseLspci(text: string, source?: string): LspciImport {
  const name = source === undefined ? 'lspci dump' : (source.split(/[\\/]/).pop() ?? '') || 'lspci dump';
  const prefix = source === undefined ? '' : `${source}: `;
  let at: number | undefined;
  try {
    return importDump(text, name, (line) => { at = line; });
  } catch (e) {
    if (e instanceof LspciError) throw new LspciError(e.kind, prefix + e.message, e.line);
    // A bug of ours must still reach the caller as a plain message about the dump, not a stack trace.
    const why = e instanceof Error ? e.message : String(e);
    throw new LspciError('garbage', `${prefix}${at === undefined ? '' : `line ${at}: `}could not read the dump here (${why})`, at);
  }
}

function importDump(text: string, name: string, track: (line: number) => void): LspciImport {
  if (text.trim() === '') throw new LspciError('empty', 'the dump is empty: paste the output of "sudo lspci -vvnn"');
  const warnings = new Warnings();
  const lines = readLines(text, warnings);
  const records: RawFunction[] = [];
  let rec: RecordParser | undefined;
  let verbose = false;
  let last: DumpLine | undefined;
  for (const line of lines) {
    track(line.no);
    if (line.text === '') continue;
    last = line;
    if (line.depth > 1) verbose = true;
    if (line.depth > 0) {
      if (rec === undefined) throw lineError('garbage', line.no, `an indented line before any device: ${HEADER_HINT}`);
      rec.add(line);
      continue;
    }
    const header = parseHeader(line.text);
    if (typeof header === 'string') {
      // The last line of a dump cut in the middle of a header (or of its address).
      const cut = line === lines.findLast((l) => l.text !== '') && (startsWithAddress(line.text) || /^[0-9a-fA-F]{2}[0-9a-fA-F:.]*$/.test(line.text));
      if (cut) throw lineError('truncated', line.no, 'the dump ends in the middle of a device header: it was cut short');
      throw lineError('garbage', line.no, startsWithAddress(line.text) ? header : `"${clip(line.text)}" is not lspci -vvnn output: ${HEADER_HINT}`);
    }
    rec?.finish(false, verbose);
    rec = new RecordParser(header, line.no, warnings);
    records.push(rec.fn);
  }
  if (rec === undefined || last === undefined) {
    // Blame the first non-blank line as written, even if it was only an error message.
    const first = text.split('\n').findIndex((l) => l.trim() !== '') + 1;
    throw lineError('garbage', first, `no device header at all: ${HEADER_HINT}`);
  }
  if (records.length > 1 && records.every((r) => r.bodyLines === 0)) {
    throw lineError('garbage', records[0]?.line ?? 1, 'the dump lists devices but no details: it is "lspci -nn" output; run "sudo lspci -vvnn"');
  }
  checkEnding(text, last, rec.fn, warnings);
  rec.finish(true, verbose);
  const observedGroups = records.some((r) => r.group !== undefined);
  if (!observedGroups) {
    warnings.add('the dump has no "IOMMU group:" lines: the IOMMU was off on the source machine (then ACSCtl shows the firmware '
      + 'settings, not what the kernel would enable), or pciutils is older than 3.7; there are no observed groups to compare with');
  }
  const spec = assembleSpec(records, name, observedGroups, warnings);
  return { spec, warnings: warnings.list, observedGroups };
}

/**
 * lspci ends every record with a blank line and the output with a newline. A last line that is visibly
 * cut (unclosed brackets, a field name with no value) is an error; a dump that merely lacks the final
 * blank line gets a warning, since pasted text often loses it.
 */
function checkEnding(text: string, last: DumpLine, lastFn: RawFunction, warnings: Warnings): void {
  if (/^\s*Kernel (driver in use|modules):\s*\S/.test(last.text) || /\n[ \t\r]*\n\s*$/.test(text)) return;
  if (!/\n[ \t\r]*$/.test(text) && visiblyCut(last.text)) {
    throw lineError('truncated', last.no, `the dump ends in the middle of a line of ${lastFn.address}'s record: it was cut short; import the whole output of "sudo lspci -vvnn"`);
  }
  warnings.add(`line ${last.no}: the dump does not end with the blank line lspci prints after each device; if it was cut short, ${lastFn.address}'s record is incomplete`);
}

/**
 * A line lspci could not have printed whole: more ( or [ than closers, or "Name:" and nothing after.
 * (Not < >: status lines legitimately print "<TAbort- >SERR-".)
 */
function visiblyCut(line: string): boolean {
  const count = (re: RegExp): number => (line.match(re) ?? []).length;
  return count(/\(/g) > count(/\)/g) || count(/\[/g) > count(/\]/g) || /:\s*$/.test(line);
}

function clip(text: string): string {
  return text.length > 60 ? `${text.slice(0, 57)}...` : text;
}
