import type { Warnings } from './warnings.ts';

/** One logical line of a dump: its 1-based line number, its indentation depth, its text without indentation. */
export interface DumpLine {
  readonly no: number;
  /** 0 for device headers, 1 for device fields and `Capabilities:`, 2+ for capability details. */
  readonly depth: number;
  readonly text: string;
}

// lspci's stdout is block-buffered into a file while pcilib's stderr is not, so an error message
// ("pcilib: sysfs_read_vpd: read failed: ...\n") lands wherever the stdout buffer happened to be flushed,
// often in the middle of a line. The message owns everything up to its newline; the next physical line
// is the rest of the interrupted one.
const STDERR_MARKERS = ['pcilib: ', 'lspci: '] as const;

function stderrAt(line: string): number {
  let at = -1;
  for (const marker of STDERR_MARKERS) {
    const i = line.indexOf(marker);
    if (i >= 0 && (at < 0 || i < at)) at = i;
  }
  return at;
}

/**
 * Split a dump into logical lines: CRLF and a BOM tolerated, spliced stderr messages cut out and the
 * interrupted line rejoined (with a warning), indentation turned into a depth. Tabs are what lspci
 * writes; runs of spaces (a dump pasted through a web page) are read with the first indent as one level.
 */
export function readLines(text: string, warnings: Warnings): DumpLine[] {
  const raw = (text.charCodeAt(0) === 0xfeff ? text.slice(1) : text).split('\n');
  const out: DumpLine[] = [];
  let spaceUnit = 0;
  for (let i = 0; i < raw.length; i++) {
    let no = i + 1;
    let line = stripCr(raw[i] ?? '');
    for (let at = stderrAt(line); at >= 0; at = stderrAt(line)) {
      warnings.add(`line ${i + 1}: skipped an error message spliced into the dump: "${line.slice(at).trim()}"`);
      const next = i + 1 < raw.length ? stripCr(raw[++i] ?? '') : '';
      // A message that filled a whole line leaves the next line as it was, with its own number.
      if (at === 0) no = i + 1;
      line = line.slice(0, at) + next;
    }
    let tabs = 0;
    while (line.charCodeAt(tabs) === 9) tabs++;
    let end = tabs;
    while (line.charCodeAt(end) === 32) end++;
    let depth = tabs;
    if (tabs === 0 && end > 0) {
      if (spaceUnit === 0) spaceUnit = end;
      depth = Math.max(1, Math.floor(end / spaceUnit));
    }
    const body = line.slice(end).trimEnd();
    out.push({ no, depth: body === '' ? 0 : depth, text: body });
  }
  return out;
}

function stripCr(line: string): string {
  return line.endsWith('\r') ? line.slice(0, -1) : line;
}
