import { formatShortAddress } from '../address.ts';
import { capabilityDetail, closeCapability, openCapability, type CapCursor } from './capabilities.ts';
import { lineError } from './errors.ts';
import type { DeviceHeader } from './header.ts';
import type { DumpLine } from './lines.ts';
import type { RawFunction } from './raw.ts';
import { parseRegion } from './regions.ts';
import type { Warnings } from './warnings.ts';

const GROUP_RE = /^IOMMU group: (\d+)$/;
const BUS_RE = /^Bus: primary=([0-9a-fA-F]{2}), secondary=([0-9a-fA-F]{2}), subordinate=([0-9a-fA-F]{2})/;
const SUBSYSTEM_RE = /\[([0-9a-fA-F]{4}):([0-9a-fA-F]{4})\]$/;

/**
 * Reads the lines of one device record. Depth-1 lines are the device's fields and its
 * `Capabilities:` lines; deeper lines belong to the capability above them. Fields lspci prints that
 * the model has no use for (Control, Status, Latency, Interrupt, bridge windows, ...) are skipped.
 */
export class RecordParser {
  readonly fn: RawFunction;
  private cap: CapCursor | undefined;

  constructor(header: DeviceHeader, line: number, private readonly warnings: Warnings) {
    this.fn = { line, header, address: formatShortAddress(header.address), bodyLines: 0, bars: [] };
  }

  add(line: DumpLine): void {
    const fn = this.fn;
    fn.bodyLines++;
    if (line.depth >= 2) {
      if (this.cap !== undefined) capabilityDetail(fn, this.cap, line);
      return;
    }
    this.closeCap(false, false);
    const t = line.text;
    if (t.startsWith('Capabilities: ')) {
      this.cap = openCapability(fn, t, line.no, this.warnings);
    } else if (t.startsWith('IOMMU group: ')) {
      const m = GROUP_RE.exec(t);
      if (m !== null) fn.group = parseInt(m[1] ?? '', 10);
    } else if (t.startsWith('Bus: ')) {
      const m = BUS_RE.exec(t);
      if (m !== null) {
        fn.bus = { primary: parseInt(m[1] ?? '', 16), secondary: parseInt(m[2] ?? '', 16), subordinate: parseInt(m[3] ?? '', 16) };
      }
    } else if (t.startsWith('Subsystem: ')) {
      const m = SUBSYSTEM_RE.exec(t);
      if (m !== null) fn.subsystem = `${m[1] ?? ''}:${m[2] ?? ''}`.toLowerCase();
    } else if (t.startsWith('Kernel driver in use: ')) {
      fn.driver = t.slice('Kernel driver in use: '.length).trim();
    } else if (t.startsWith('Region ')) {
      const bar = parseRegion(t, line.no, fn.address, this.warnings);
      if (bar !== undefined) fn.bars.push(bar);
    }
  }

  /**
   * The record is over. At the end of the dump a record with no lines at all, or one stopped inside a
   * capability, was cut short; `verbose` says whether the dump was made with -vv (capability details).
   */
  finish(atEof: boolean, verbose: boolean): void {
    if (this.fn.bodyLines === 0) {
      if (atEof) {
        throw lineError('truncated', this.fn.line, `the dump ends right after the header of ${this.fn.address}: it was cut short. `
          + 'Import the complete output of "sudo lspci -vvnn".');
      }
      this.warnings.add(`line ${this.fn.line}: ${this.fn.address} has no lines under its header; only its IDs are known`);
    }
    this.closeCap(atEof, verbose);
  }

  private closeCap(atEof: boolean, verbose: boolean): void {
    if (this.cap === undefined) return;
    const cap = this.cap;
    this.cap = undefined;
    closeCapability(this.fn, cap, atEof, verbose, this.warnings);
  }
}
