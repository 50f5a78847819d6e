// The shapes of a sysfs tree: directories, symbolic links (relative targets, as sysfs makes them) and
// attributes whose read and write call into kernel state. A tree is built from the state when it is
// read, so it is never stale.

import type { Result } from '../errno.ts';

export interface SysAttr {
  readonly kind: 'attr';
  /** The text a read returns (with its trailing newline), or the errno reading fails with. */
  read(): Result<string>;
  /** A write (echo > attr); absent means the file is read-only (EACCES... Linux: the mode has no w bit). */
  write?(text: string): Result;
}

export interface SysLink {
  readonly kind: 'link';
  /** Relative target, as readlink(2) returns it ("../../../kernel/iommu_groups/12"). */
  readonly target: string;
}

export interface SysDir {
  readonly kind: 'dir';
  readonly children: Map<string, SysNode>;
}

export type SysNode = SysAttr | SysLink | SysDir;

export const sysDir = (): SysDir => ({ kind: 'dir', children: new Map() });
export const sysLink = (target: string): SysLink => ({ kind: 'link', target });
export function sysAttr(read: () => Result<string>, write?: (text: string) => Result): SysAttr {
  return write === undefined ? { kind: 'attr', read } : { kind: 'attr', read, write };
}

/** The directory at `path` under `root` (components split on '/'), created as needed. */
export function mkdirs(root: SysDir, path: string): SysDir {
  let d = root;
  for (const part of path.split('/').filter((p) => p !== '')) {
    let next = d.children.get(part);
    if (next === undefined) d.children.set(part, (next = sysDir()));
    if (next.kind !== 'dir') throw new Error(`${path}: ${part} is not a directory`);
    d = next;
  }
  return d;
}

/** Put `node` at `path` (its parent directories are created). */
export function put(root: SysDir, path: string, node: SysNode): void {
  const i = path.lastIndexOf('/');
  mkdirs(root, path.slice(0, i)).children.set(path.slice(i + 1), node);
}

/** A relative link target from directory `fromDir` to `to` (both absolute). */
export function relative(fromDir: string, to: string): string {
  const a = fromDir.split('/').filter((p) => p !== '');
  const b = to.split('/').filter((p) => p !== '');
  let i = 0;
  while (i < a.length && i < b.length && a[i] === b[i]) i++;
  return [...a.slice(i).map(() => '..'), ...b.slice(i)].join('/');
}
