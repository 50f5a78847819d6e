// A deliberately simple reference model of processes, address spaces and memfds for the model-based
// property test: pages are byte arrays, copy-on-write is an eager copy, shared pages are one array.
// It knows nothing of frames; the test compares its data and errors with the real kernel's.

import { PROT_NONE, PROT_READ, PROT_WRITE } from '../../../src/kernel/mm/mman.ts';
import type { Process } from '../../../src/kernel/process/process.ts';
import { P } from './helpers.ts';

export const ZERO = new Uint8Array(P);

export class ModelFile {
  size = 0;
  readonly pages = new Map<number, Uint8Array>();
  constructor(readonly id: number) {}
  get pageCount(): number { return Math.ceil(this.size / P); }
  page(pgoff: number): Uint8Array {
    let page = this.pages.get(pgoff);
    if (page === undefined) this.pages.set(pgoff, (page = new Uint8Array(P)));
    return page;
  }

  truncate(size: number, procs: readonly ModelProc[]): void {
    const old = this.size;
    this.size = size;
    if (size >= old) return;
    const keep = this.pageCount;
    for (const pgoff of [...this.pages.keys()]) if (pgoff >= keep) this.pages.delete(pgoff);
    if (size % P !== 0) this.pages.get(keep - 1)?.fill(0, size % P);
    // truncate_pagecache(): private copies of pages past EOF go too, and pins on them no longer match.
    for (const proc of procs) {
      for (const v of proc.vmas) {
        if (v.file !== this) continue;
        for (const vpn of [...v.priv.keys()]) if (v.fileIndex(vpn) >= keep) v.priv.delete(vpn);
        for (const pin of proc.pins) {
          pin.vpns.forEach((vpn, i) => { if (v.containsVpn(vpn) && v.fileIndex(vpn) >= keep) pin.valid[i] = false; });
        }
      }
    }
  }
}

export class ModelVma {
  /** Private pages this mapping owns (written, populated or pinned), by virtual page number. */
  priv = new Map<number, Uint8Array>();
  constructor(
    public start: number, public end: number, public prot: number, readonly shared: boolean,
    readonly file: ModelFile | null, public pgoff: number,
  ) {}

  containsVpn(vpn: number): boolean { return vpn * P >= this.start && vpn * P < this.end; }
  fileIndex(vpn: number): number { return this.pgoff + vpn - this.start / P; }
  beyondEof(vpn: number): boolean { return this.file !== null && this.fileIndex(vpn) >= this.file.pageCount; }

  content(vpn: number): Uint8Array {
    if (!this.shared) {
      const own = this.priv.get(vpn);
      if (own !== undefined) return own;
    }
    return this.file?.pages.get(this.fileIndex(vpn)) ?? ZERO;
  }

  /** The page a write goes to: the file's for shared mappings, else a private copy made on first write. */
  writable(vpn: number): Uint8Array {
    if (this.shared) return (this.file as ModelFile).page(this.fileIndex(vpn));
    let own = this.priv.get(vpn);
    if (own === undefined) this.priv.set(vpn, (own = this.content(vpn).slice()));
    return own;
  }

  split(at: number): ModelVma {
    const upper = new ModelVma(at, this.end, this.prot, this.shared, this.file, this.pgoff + (at - this.start) / P);
    for (const [vpn, page] of this.priv) {
      if (vpn * P >= at) { upper.priv.set(vpn, page); this.priv.delete(vpn); }
    }
    this.end = at;
    return upper;
  }

  clone(): ModelVma {
    const c = new ModelVma(this.start, this.end, this.prot, this.shared, this.file, this.pgoff);
    for (const [vpn, page] of this.priv) c.priv.set(vpn, page.slice());
    return c;
  }
}

export interface PinRecord {
  readonly proc: ModelProc;
  readonly vpns: number[];
  readonly pfns: number[];
  readonly valid: boolean[];
}

export class ModelProc {
  vmas: ModelVma[] = [];
  readonly fds = new Map<number, ModelFile | 'stdio'>();
  readonly pins: PinRecord[] = [];
  pinnedPages = 0;
  alive = true;
  constructor(readonly real: Process) {}

  find(vpn: number): ModelVma | undefined { return this.vmas.find((v) => v.containsVpn(vpn)); }

  lowestFreeFd(): number {
    let fd = 0;
    while (this.fds.has(fd)) fd++;
    return fd;
  }

  /** Split at the edges of [start, end) and return the VMAs inside. */
  carve(start: number, end: number): ModelVma[] {
    const out: ModelVma[] = [];
    for (const v of [...this.vmas]) {
      if (v.end <= start || v.start >= end) continue;
      let mid = v;
      if (mid.start < start) { mid = mid.split(start); this.vmas.push(mid); }
      if (mid.end > end) this.vmas.push(mid.split(end));
      out.push(mid);
    }
    this.vmas.sort((a, b) => a.start - b.start);
    return out;
  }

  unmap(start: number, end: number): void {
    const gone = new Set(this.carve(start, end));
    this.vmas = this.vmas.filter((v) => !gone.has(v));
    for (const pin of this.pins) {
      pin.vpns.forEach((vpn, i) => { if (vpn * P >= start && vpn * P < end) pin.valid[i] = false; });
    }
  }

  /** Would an access to every page of [addr, addr + len) succeed? */
  accessible(addr: number, len: number, need: 'cpu-read' | 'cpu-write' | 'pin-read' | 'pin-write'): boolean {
    if (len === 0) return true;
    for (let vpn = Math.floor(addr / P); vpn <= Math.floor((addr + len - 1) / P); vpn++) {
      const v = this.find(vpn);
      if (v === undefined || v.beyondEof(vpn)) return false;
      const ok = need === 'cpu-read' ? v.prot !== PROT_NONE
        : need === 'pin-read' ? (v.prot & PROT_READ) !== 0
          : (v.prot & PROT_WRITE) !== 0;
      if (!ok) return false;
    }
    return true;
  }

  read(addr: number, len: number): Uint8Array {
    const out = new Uint8Array(len);
    for (let done = 0; done < len;) {
      const at = addr + done;
      const n = Math.min(P - (at % P), len - done);
      const vpn = Math.floor(at / P);
      out.set((this.find(vpn) as ModelVma).content(vpn).subarray(at % P, (at % P) + n), done);
      done += n;
    }
    return out;
  }

  write(addr: number, src: Uint8Array): void {
    for (let done = 0; done < src.length;) {
      const at = addr + done;
      const n = Math.min(P - (at % P), src.length - done);
      const vpn = Math.floor(at / P);
      (this.find(vpn) as ModelVma).writable(vpn).set(src.subarray(done, done + n), at % P);
      done += n;
    }
  }

  forkInto(child: ModelProc): void {
    child.vmas = this.vmas.map((v) => v.clone());
    for (const [fd, f] of this.fds) child.fds.set(fd, f);
  }
}
