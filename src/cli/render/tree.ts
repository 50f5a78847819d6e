import type { PciBus } from '../../pci/bus.ts';
import type { PciDev } from '../../pci/dev.ts';
import { acsContextOf, type GroupingRun } from '../../pci/groups/compute.ts';
import type { Colors } from '../io.ts';
import { badgesOf } from './badges.ts';
import { badgePaint, groupPaint } from './palette.ts';

// A compact topology tree in the spirit of `lspci -t`: one line per root bus and per bridge, the
// functions on the bus below a bridge listed after its arrow. Every function carries its group (#N,
// coloured by group) and badges: ACS state, ACS quirks, DMA aliases, [not covered].

export interface TreeOptions {
  /** Wrap lines wider than this (visible characters). */
  readonly width: number;
}

const ANSI = /\x1b\[[0-9;]*m/g;
/** Visible width of a possibly coloured string. */
export function visibleLength(text: string): number {
  return text.replace(ANSI, '').length;
}

export function renderTree(run: GroupingRun, c: Colors, opts: TreeOptions = { width: 100 }): string[] {
  const topo = run.booted.host.topology;
  const ctx = acsContextOf(run.booted);
  const covered = new Set(run.groups.flatMap((g) => g.devices));
  const vfsByPf = new Map<PciDev, PciDev[]>();
  for (const d of topo.devices()) {
    if (d.physfn === null) continue;
    const list = vfsByPf.get(d.physfn);
    if (list === undefined) vfsByPf.set(d.physfn, [d]);
    else list.push(d);
  }

  const groupTag = (dev: PciDev): string => {
    const g = run.groupOf(dev);
    return g === undefined ? c.dim('#-') : groupPaint(c, g.id)(`#${g.id}`);
  };
  const badges = (dev: PciDev): string[] => badgesOf(dev, ctx, covered.has(dev)).map((b) => badgePaint(c, b.kind)(`[${b.text}]`));
  const devToken = (dev: PciDev): string => [`${dev.shortBdf} ${groupTag(dev)}`, ...badges(dev)].join(' ');

  /** "38:02.0-38:02.3 (4 VFs) #29-#32": a PF's virtual functions in one token. */
  const vfToken = (vfs: readonly PciDev[]): string => {
    const first = vfs[0];
    const last = vfs[vfs.length - 1];
    if (first === undefined || last === undefined) return '';
    if (vfs.length === 1) return `VF ${devToken(first)}`;
    const ids = vfs.map((v) => run.groupOf(v)?.id);
    const consecutive = ids.every((id, i) => id !== undefined && id === (ids[0] ?? 0) + i);
    const tags = consecutive && ids[0] !== undefined
      ? `${groupPaint(c, ids[0])(`#${ids[0]}`)}–${groupPaint(c, ids[ids.length - 1] ?? 0)(`#${ids[ids.length - 1] ?? 0}`)}`
      : vfs.map(groupTag).join(',');
    return `${vfs.length} VFs ${first.shortBdf}–${last.shortBdf} ${tags}`;
  };

  /** Tokens for the non-bridge functions of a bus; same-slot functions of one group without badges merge. */
  const busTokens = (bus: PciBus): string[] => {
    const tokens: string[] = [];
    let run0: PciDev[] = [];
    const flush = (): void => {
      const first = run0[0];
      if (first === undefined) return;
      tokens.push(run0.length === 1 ? devToken(first) : `${first.shortBdf.slice(0, -1)}${run0.map((d) => d.fn).join(',')} ${groupTag(first)}`);
      run0 = [];
    };
    for (const dev of bus.devices) {
      if (dev.physfn !== null || dev.isBridge()) continue;
      const vfs = vfsByPf.get(dev) ?? [];
      const plain = badges(dev).length === 0 && vfs.length === 0;
      const prev = run0[run0.length - 1];
      if (!plain || prev === undefined || prev.slot !== dev.slot || run.groupOf(prev) !== run.groupOf(dev)) flush();
      if (plain) run0.push(dev);
      else {
        tokens.push(devToken(dev));
        if (vfs.length > 0) tokens.push(vfToken(vfs));
      }
    }
    flush();
    return tokens;
  };

  const out: string[] = [c.bold('Topology') + c.dim(' (#N = IOMMU group; a bridge\'s line lists the functions on its bus)')];
  /** Emit `head` followed by tokens, wrapping at the width with continuation lines under `cont`. */
  const emit = (head: string, tokens: readonly string[], cont: string): void => {
    let line = head;
    for (const t of tokens) {
      const sep = line === head ? (head === '' ? '' : ' ') : ', ';
      if (line !== head && visibleLength(line) + sep.length + visibleLength(t) > opts.width) {
        out.push(`${line},`);
        line = cont + t;
      } else {
        line += sep + t;
      }
    }
    out.push(line);
  };
  const bridgesOf = (bus: PciBus): PciDev[] => bus.devices.filter((d) => d.isBridge() && d.physfn === null);

  const walkBridge = (bridge: PciDev, prefix: string, last: boolean): void => {
    const sub = bridge.subordinate;
    const head = `${prefix}${last ? '└─ ' : '├─ '}${devToken(bridge)}`;
    const inner = `${prefix}${last ? '   ' : '│  '}`;
    const kids = sub === null ? [] : bridgesOf(sub);
    const tokens = sub === null ? [] : busTokens(sub);
    emit(tokens.length === 0 ? head : `${head} →`, tokens, `${inner}${kids.length > 0 ? '│' : ' '}    `);
    kids.forEach((k, i) => walkBridge(k, inner, i === kids.length - 1));
  };

  for (const root of topo.rootBuses) {
    const label = c.bold(`[${root.domain.toString(16).padStart(4, '0')}:${root.number.toString(16).padStart(2, '0')}]`);
    const kids = bridgesOf(root);
    emit(label, busTokens(root), kids.length > 0 ? '│    ' : '     ');
    kids.forEach((k, i) => walkBridge(k, '', i === kids.length - 1));
  }
  return out;
}
