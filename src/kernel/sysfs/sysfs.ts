// /sys as a tree the shim can serve and the CLI can print: read, write, readlink and readdir on paths,
// with symbolic links followed as the VFS follows them. The tree is rebuilt from kernel state on every
// call (it is small), so a read always sees the current bindings, groups and VFIO devices. Subsystems
// that add their own parts (mdev) register a provider.

import { fail, ok, type Result } from '../errno.ts';
import type { Kernel } from '../kernel.ts';
import { sysDir, type SysDir, type SysNode } from './node.ts';
import { buildPciTree } from './pci-tree.ts';

/** Adds a subsystem's nodes to a tree being built. */
export type SysfsProvider = (root: SysDir) => void;

const MAX_LINKS = 40; // MAXSYMLINKS: ELOOP beyond it

export class Sysfs {
  private readonly providers: SysfsProvider[] = [];

  constructor(private readonly kernel: Kernel) {}

  addProvider(p: SysfsProvider): void { this.providers.push(p); }

  /** The whole tree, freshly built. */
  root(): SysDir {
    const root = sysDir();
    buildPciTree(this.kernel, root);
    for (const p of this.providers) p(root);
    return root;
  }

  /** read(2) of an attribute. EISDIR for a directory, ENOENT for a missing path. */
  read(path: string): Result<string> {
    const n = this.resolve(path, true);
    if (!n.ok) return n;
    if (n.value.node.kind === 'dir') return fail('EISDIR', `${path} is a directory`);
    if (n.value.node.kind !== 'attr') throw new Error('followed link is a link');
    return n.value.node.read();
  }

  /** write(2) to an attribute (echo VALUE > path). EACCES when it is read-only. */
  write(path: string, value: string): Result {
    const n = this.resolve(path, true);
    if (!n.ok) return n;
    const node = n.value.node;
    if (node.kind === 'dir') return fail('EISDIR', `${path} is a directory`);
    if (node.kind !== 'attr' || node.write === undefined) return fail('EACCES', `${path} is read-only`);
    return node.write(value);
  }

  /** readlink(2): the link's relative target. EINVAL when the path is not a link. */
  readlink(path: string): Result<string> {
    const n = this.resolve(path, false);
    if (!n.ok) return n;
    if (n.value.node.kind !== 'link') return fail('EINVAL', `${path} is not a symbolic link`);
    return ok(n.value.node.target);
  }

  /** realpath(3): the canonical path with every link resolved. */
  realpath(path: string): Result<string> {
    const n = this.resolve(path, true);
    return n.ok ? ok(n.value.path) : n;
  }

  /** readdir: entry names, sorted. ENOTDIR for a file. */
  list(path: string): Result<string[]> {
    const n = this.resolve(path, true);
    if (!n.ok) return n;
    if (n.value.node.kind !== 'dir') return fail('ENOTDIR', `${path} is not a directory`);
    return ok([...n.value.node.children.keys()].sort(naturalCompare));
  }

  /** `tree`-style lines under `path` (links shown as `name -> target`), not following links. */
  render(path = '/sys', depth = Infinity): Result<string[]> {
    const n = this.resolve(path, true);
    if (!n.ok) return n;
    const lines = [n.value.path];
    const walk = (d: SysDir, prefix: string, level: number): void => {
      if (level >= depth) return;
      const names = [...d.children.keys()].sort(naturalCompare);
      names.forEach((name, i) => {
        const child = d.children.get(name) as SysNode;
        const last = i === names.length - 1;
        const label = child.kind === 'link' ? `${name} -> ${child.target}` : name;
        lines.push(`${prefix}${last ? '└── ' : '├── '}${label}`);
        if (child.kind === 'dir') walk(child, `${prefix}${last ? '    ' : '│   '}`, level + 1);
      });
    };
    if (n.value.node.kind === 'dir') walk(n.value.node, '', 0);
    return ok(lines);
  }

  // Path walk from /, following links in the middle of a path always and at the end when `follow`.
  private resolve(path: string, follow: boolean): Result<{ node: SysNode; path: string }> {
    if (!path.startsWith('/sys')) return fail('ENOENT', `${path} is not under /sys`);
    const root = this.root();
    const top: SysDir = { kind: 'dir', children: new Map([['sys', root.children.get('sys') ?? sysDir()]]) };
    let parts = path.split('/').filter((p) => p !== '' && p !== '.');
    let stack: { node: SysDir; name: string }[] = [];
    let node: SysNode = top;
    let links = 0;
    while (parts.length > 0) {
      const name = parts.shift() as string;
      if (node.kind !== 'dir') return fail('ENOTDIR', `${path}: a component is not a directory`);
      if (name === '..') {
        // The parent of what we are in: the directory we descended from (or / at the top).
        node = stack.pop()?.node ?? top;
        continue;
      }
      const child: SysNode | undefined = node.children.get(name);
      if (child === undefined) return fail('ENOENT', `${path} does not exist`);
      if (child.kind === 'link' && (parts.length > 0 || follow)) {
        if (++links > MAX_LINKS) return fail('ELOOP', `${path}: too many levels of symbolic links`);
        parts = [...child.target.split('/').filter((p) => p !== '' && p !== '.'), ...parts];
        continue;
      }
      stack = [...stack, { node, name }];
      node = child;
    }
    return ok({ node, path: `/${stack.map((s) => s.name).join('/')}` });
  }
}

// "10" after "9": group numbers and vfioN sort as numbers.
function naturalCompare(a: string, b: string): number {
  return a.localeCompare(b, 'en', { numeric: true });
}
