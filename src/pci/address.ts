/** A PCI function address: domain, bus, device (slot) and function. */
export interface PciAddress {
  readonly domain: number;
  readonly bus: number;
  readonly devfn: number;
}

export const PCI_DEVFN = (slot: number, fn: number): number => ((slot & 0x1f) << 3) | (fn & 0x07);
export const PCI_SLOT = (devfn: number): number => (devfn >> 3) & 0x1f;
export const PCI_FUNC = (devfn: number): number => devfn & 0x07;

const hex = (n: number, width: number): string => n.toString(16).padStart(width, '0');

/** "dddd:bb:dd.f", the form sysfs and --json use. */
export function formatAddress(a: PciAddress): string {
  return `${hex(a.domain, 4)}:${hex(a.bus, 2)}:${hex(PCI_SLOT(a.devfn), 2)}.${PCI_FUNC(a.devfn)}`;
}

/** "bb:dd.f" when the domain is 0, as lspci prints on single-domain hosts. */
export function formatShortAddress(a: PciAddress): string {
  const short = `${hex(a.bus, 2)}:${hex(PCI_SLOT(a.devfn), 2)}.${PCI_FUNC(a.devfn)}`;
  return a.domain === 0 ? short : `${hex(a.domain, 4)}:${short}`;
}

const ADDRESS_RE = /^(?:([0-9a-fA-F]{1,8}):)?([0-9a-fA-F]{1,2}):([0-9a-fA-F]{1,2})\.([0-7])$/;

/** Parse "[dddd:]bb:dd.f"; returns undefined for anything else. */
export function parseAddress(text: string): PciAddress | undefined {
  const m = ADDRESS_RE.exec(text.trim());
  if (m === null) return undefined;
  const slot = parseInt(m[3] ?? '', 16);
  if (slot > 0x1f) return undefined;
  return {
    domain: m[1] === undefined ? 0 : parseInt(m[1], 16),
    bus: parseInt(m[2] ?? '', 16),
    devfn: PCI_DEVFN(slot, parseInt(m[4] ?? '', 10)),
  };
}

/** A number unique to each address, for maps and sorting: domain, then bus, then devfn. */
export function addressKey(a: PciAddress): number {
  return a.domain * 0x10000 + a.bus * 0x100 + a.devfn;
}
