import { PCI_DEVFN, type PciAddress } from '../address.ts';

/** What the first line of an `lspci -vvnn` device record says. */
export interface DeviceHeader {
  readonly address: PciAddress;
  readonly vendor: number;
  readonly device: number;
  /** Base class and subclass, e.g. 0x0604. */
  readonly classCode: number;
  readonly progIf: number;
  readonly revision: number;
  /** "PCI bridge: Advanced Micro Devices, Inc. [AMD] Matisse PCIe GPP Bridge": the numbers taken out. */
  readonly name: string;
}

// `[dddd:]bb:dd.f ` — lspci prints the domain only when the machine has more than one (VMD, multi-segment).
const ADDRESS_RE = /^(?:([0-9a-fA-F]{4,8}):)?([0-9a-fA-F]{2}):([0-9a-fA-F]{2})\.([0-7]) /;
// `Class name [cccc]: ` — with -nn the class number follows its name.
const CLASS_RE = /^(.*?) \[([0-9a-fA-F]{4})\]: /;
// The last `[vvvv:dddd]` is the ID pair: vendor and device names can hold brackets ("[AMD]", "[6:0]").
const IDS_RE = /^(.*) \[([0-9a-fA-F]{4}):([0-9a-fA-F]{4})\](.*)$/;
const REV_RE = /\(rev ([0-9a-fA-F]{2})\)/;
const PROG_IF_RE = /\(prog-if ([0-9a-fA-F]{2})/;

/** Whether a line starts like a device header (an address), whether or not the rest parses. */
export function startsWithAddress(text: string): boolean {
  return ADDRESS_RE.test(text);
}

/** Parse a device header; a string saying what is missing when the line is not one. */
export function parseHeader(text: string): DeviceHeader | string {
  const a = ADDRESS_RE.exec(text);
  if (a === null) return 'not a device header ("[dddd:]bb:dd.f Class [cccc]: Vendor Device [vvvv:dddd]")';
  const slot = parseInt(a[3] ?? '', 16);
  if (slot > 0x1f) return `device number ${a[3] ?? ''} is above 1f`;
  const address: PciAddress = {
    domain: a[1] === undefined ? 0 : parseInt(a[1], 16),
    bus: parseInt(a[2] ?? '', 16),
    devfn: PCI_DEVFN(slot, parseInt(a[4] ?? '', 10)),
  };
  const rest = text.slice(a[0].length);
  const c = CLASS_RE.exec(rest);
  const ids = c === null ? null : IDS_RE.exec(rest.slice(c[0].length));
  if (c === null || ids === null) return 'device header without numeric class and IDs: run lspci with -nn (sudo lspci -vvnn)';
  const tail = ids[4] ?? '';
  const rev = REV_RE.exec(tail);
  const progIf = PROG_IF_RE.exec(tail);
  return {
    address,
    vendor: parseInt(ids[2] ?? '', 16),
    device: parseInt(ids[3] ?? '', 16),
    classCode: parseInt(c[2] ?? '', 16),
    progIf: progIf === null ? 0 : parseInt(progIf[1] ?? '', 16),
    revision: rev === null ? 0 : parseInt(rev[1] ?? '', 16),
    name: `${c[1] ?? ''}: ${(ids[1] ?? '').trim()}`,
  };
}
