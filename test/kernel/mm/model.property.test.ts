// Model-based property tests: random sequences of mmap/munmap/mprotect/write/read/fork/exit/memfd/
// ftruncate/close/pin/unpin run against the real kernel model and against model.ts. After every step:
// the frame invariant (references = page-table entries + page-cache entries + pins; nothing leaked),
// VMAs equal the model's, RSS equals the entries, VmPin equals the pages the test pinned, every pin still
// names the frame mapped at its address; reads equal the model's bytes. At the end everything is torn
// down and every frame must be back in the allocator.

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { Result } from '../../../src/kernel/errno.ts';
import { NO_FRAME } from '../../../src/kernel/mm/frame-allocator.ts';
import { MemFile } from '../../../src/kernel/mm/memfile.ts';
import {
  MAP_ANONYMOUS, MAP_FIXED, MAP_POPULATE, MAP_PRIVATE, MAP_SHARED, PROT_NONE, PROT_READ, PROT_WRITE,
} from '../../../src/kernel/mm/mman.ts';
import { checkFrames, machine, P, type Machine } from './helpers.ts';
import { ModelFile, ModelProc, ModelVma, type PinRecord } from './model.ts';

const BASE = 0x10_0000;
const WINDOW = 16;
const RW = PROT_READ | PROT_WRITE;
const PROTS = [PROT_NONE, PROT_READ, PROT_WRITE, RW, RW, RW];

type Op =
  | { t: 'mmap'; p: number; page: number; n: number; prot: number; kind: 'anon' | 'shanon' | 'shared' | 'private'; fd: number; pgoff: number; populate: boolean }
  | { t: 'munmap' | 'mprotect'; p: number; page: number; n: number; prot: number }
  | { t: 'write'; p: number; v: number; off: number; len: number; byte: number }
  | { t: 'read'; p: number; v: number; off: number; len: number }
  | { t: 'fork' | 'exit' | 'spawn'; p: number }
  | { t: 'memfd' | 'truncate' | 'close'; p: number; fd: number; size: number }
  | { t: 'pin'; p: number; v: number; off: number; n: number; write: boolean }
  | { t: 'unpin'; i: number };

const idx = fc.nat(7);
const page = fc.integer({ min: 0, max: WINDOW - 1 });
// Accesses land near the start of one of the process's VMAs (v) or, with v = 8, anywhere in the window.
const target = fc.oneof({ weight: 4, arbitrary: idx }, { weight: 1, arbitrary: fc.constant(8) });
const near = fc.oneof({ weight: 3, arbitrary: fc.integer({ min: 0, max: 2 * P }) }, fc.integer({ min: -P / 2, max: 4 * P }));
const len = fc.oneof({ weight: 3, arbitrary: fc.integer({ min: 1, max: 256 }) }, fc.integer({ min: 1, max: 2 * P }));
const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 4, arbitrary: fc.record({ t: fc.constant('mmap' as const), p: idx, page, n: fc.integer({ min: 1, max: 6 }), prot: fc.constantFrom(...PROTS), kind: fc.constantFrom('anon' as const, 'shanon' as const, 'shared' as const, 'private' as const), fd: idx, pgoff: fc.nat(3), populate: fc.boolean() }) },
  { weight: 2, arbitrary: fc.record({ t: fc.constantFrom('munmap' as const, 'mprotect' as const), p: idx, page, n: fc.integer({ min: 1, max: 6 }), prot: fc.constantFrom(...PROTS) }) },
  { weight: 5, arbitrary: fc.record({ t: fc.constant('write' as const), p: idx, v: target, off: near, len, byte: fc.integer({ min: 1, max: 255 }) }) },
  { weight: 4, arbitrary: fc.record({ t: fc.constant('read' as const), p: idx, v: target, off: near, len }) },
  { weight: 2, arbitrary: fc.record({ t: fc.constantFrom('fork' as const, 'fork' as const, 'spawn' as const), p: idx }) },
  { weight: 1, arbitrary: fc.record({ t: fc.constant('exit' as const), p: idx }) },
  { weight: 3, arbitrary: fc.record({ t: fc.constantFrom('memfd' as const, 'truncate' as const, 'truncate' as const, 'close' as const), p: idx, fd: idx, size: fc.integer({ min: 0, max: 6 * P }) }) },
  { weight: 3, arbitrary: fc.record({ t: fc.constant('pin' as const), p: idx, v: target, off: near, n: fc.integer({ min: 1, max: 3 }), write: fc.boolean() }) },
  { weight: 2, arbitrary: fc.record({ t: fc.constant('unpin' as const), i: idx }) },
);

class World {
  readonly procs: ModelProc[] = [];
  /** Pins the test holds, oldest first. */
  readonly pins: PinRecord[] = [];
  private files = 0;
  /** A write stopped by ENOMEM left a prefix written that the model cannot know: stop comparing data. */
  private dataKnown = true;

  constructor(readonly m: Machine, readonly expectNoEnomem: boolean) {
    this.spawn();
    this.step({ t: 'mmap', p: 0, page: 4, n: 4, prot: RW, kind: 'anon', fd: 0, pgoff: 0, populate: false });
  }

  private spawn(): void {
    const proc = new ModelProc(this.m.table.spawn());
    for (const fd of [0, 1, 2]) proc.fds.set(fd, 'stdio');
    this.procs.push(proc);
  }

  // Compare a real result with the model's expectation; ENOMEM is acceptable only when memory is tight.
  private outcome(r: Result<unknown>, expectOk: boolean, what: string): boolean {
    if (!r.ok && r.errno === 'ENOMEM' && !this.expectNoEnomem) {
      if (what.startsWith('write')) this.dataKnown = false;
      return false;
    }
    expect(r.ok ? 'ok' : r.errno, what).toBe(expectOk ? 'ok' : 'EFAULT');
    return r.ok;
  }

  private address(proc: ModelProc, v: number, off: number): number {
    const vma = v < 8 && proc.vmas.length > 0 ? proc.vmas[v % proc.vmas.length] : undefined;
    return vma === undefined ? BASE + off * 5 : vma.start + off;
  }

  private memfds(proc: ModelProc): number[] {
    return [...proc.fds].filter(([, f]) => f !== 'stdio').map(([fd]) => fd);
  }

  step(op: Op): void {
    if (op.t === 'spawn') { if (this.procs.length < 6) this.spawn(); return; }
    if (op.t === 'unpin') {
      const pin = this.pins.splice(op.i % Math.max(1, this.pins.length), 1)[0];
      if (pin === undefined) return;
      pin.proc.real.mm.unpinUserPages(pin.pfns);
      pin.proc.real.mm.accountPinnedVm(pin.pfns.length, 'sub');
      pin.proc.pinnedPages -= pin.pfns.length;
      return;
    }
    // Accesses go to a process that has mappings, when there is one.
    const mapped = this.procs.filter((q) => q.vmas.length > 0);
    const among = (op.t === 'write' || op.t === 'read' || op.t === 'pin') && mapped.length > 0 ? mapped : this.procs;
    const proc = among[op.p % Math.max(1, among.length)];
    if (proc === undefined) return;
    const real = proc.real;
    switch (op.t) {
      case 'mmap': {
        const fds = this.memfds(proc);
        const fileBacked = op.kind === 'shared' || op.kind === 'private';
        if (fileBacked && fds.length === 0) return;
        const fd = fileBacked ? (fds[op.fd % fds.length] as number) : -1;
        const start = BASE + op.page * P;
        const flags = (op.kind === 'anon' || op.kind === 'private' ? MAP_PRIVATE : MAP_SHARED) |
          (fileBacked ? 0 : MAP_ANONYMOUS) | MAP_FIXED | (op.populate ? MAP_POPULATE : 0);
        const r = real.mmap(start, op.n * P, op.prot, flags, fd, fileBacked ? op.pgoff * P : 0);
        expect(r).toEqual({ ok: true, value: start });
        proc.unmap(start, start + op.n * P);
        let file = fileBacked ? (proc.fds.get(fd) as ModelFile) : null;
        if (op.kind === 'shanon') { file = new ModelFile(-1); file.size = op.n * P; }
        const v = new ModelVma(start, start + op.n * P, op.prot, op.kind !== 'anon' && op.kind !== 'private', file,
          fileBacked ? op.pgoff : 0);
        proc.vmas.push(v);
        proc.vmas.sort((a, b) => a.start - b.start);
        // MAP_POPULATE write-faults a private writable mapping: private copies of what is there now.
        // Population stops quietly at ENOMEM: the pages before it are populated.
        if (op.populate && !v.shared && op.prot & PROT_WRITE) {
          for (let vpn = start / P; vpn < v.end / P && !v.beyondEof(vpn); vpn++) {
            if (!this.expectNoEnomem && real.mm.lookupPfn(vpn * P) === NO_FRAME) break;
            v.writable(vpn);
          }
        }
        return;
      }
      case 'munmap':
        expect(real.mm.munmap(BASE + op.page * P, op.n * P).ok).toBe(true);
        proc.unmap(BASE + op.page * P, BASE + (op.page + op.n) * P);
        return;
      case 'mprotect': {
        const start = BASE + op.page * P;
        const r = real.mm.mprotect(start, op.n * P, op.prot);
        let covered = true;
        for (let i = 0; i < op.n; i++) if (proc.find(start / P + i) === undefined) covered = false;
        expect(r.ok ? 'ok' : r.errno).toBe(covered ? 'ok' : 'ENOMEM');
        if (covered) for (const v of proc.carve(start, start + op.n * P)) v.prot = op.prot;
        return;
      }
      case 'write': {
        const addr = this.address(proc, op.v, op.off);
        const data = new Uint8Array(op.len).map((_, i) => (op.byte + i) & 0xff);
        if (this.outcome(real.mm.write(addr, data), proc.accessible(addr, op.len, 'cpu-write'), `write ${addr}+${op.len}`)) {
          proc.write(addr, data);
        }
        return;
      }
      case 'read': {
        const addr = this.address(proc, op.v, op.off);
        const out = new Uint8Array(op.len);
        if (this.outcome(real.mm.read(addr, out), proc.accessible(addr, op.len, 'cpu-read'), `read ${addr}+${op.len}`) &&
          this.dataKnown) {
          expect(Buffer.from(out).equals(Buffer.from(proc.read(addr, op.len))), `data at ${addr}+${op.len}`).toBe(true);
        }
        return;
      }
      case 'fork': {
        if (this.procs.length >= 6) return;
        const r = real.fork();
        if (!r.ok && r.errno === 'ENOMEM' && !this.expectNoEnomem) return;
        if (!r.ok) throw new Error(`fork: ${r.errno}`);
        const child = new ModelProc(r.value);
        proc.forkInto(child);
        this.procs.push(child);
        return;
      }
      case 'exit':
        real.exit();
        proc.alive = false;
        this.procs.splice(this.procs.indexOf(proc), 1);
        return;
      case 'memfd': {
        const r = real.memfdCreate('f');
        if (!r.ok) throw new Error(r.reason);
        expect(r.value).toBe(proc.lowestFreeFd());
        const file = new ModelFile(this.files++);
        proc.fds.set(r.value, file);
        expect(real.ftruncate(r.value, op.size).ok).toBe(true);
        file.size = op.size;
        return;
      }
      case 'truncate':
      case 'close': {
        const fds = this.memfds(proc);
        if (fds.length === 0) return;
        const fd = fds[op.fd % fds.length] as number;
        if (op.t === 'close') {
          expect(real.fds.close(fd).ok).toBe(true);
          proc.fds.delete(fd);
          return;
        }
        expect(real.ftruncate(fd, op.size).ok).toBe(true);
        (proc.fds.get(fd) as ModelFile).truncate(op.size, this.procs);
        return;
      }
      case 'pin': {
        const addr = this.address(proc, op.v, op.off);
        const start = addr - (addr % P);
        const r = real.mm.pinUserPages(addr, op.n, op.write);
        if (!this.outcome(r, proc.accessible(start, op.n * P, op.write ? 'pin-write' : 'pin-read'), `pin ${start}+${op.n}`)) return;
        if (!r.ok) return;
        const vpns = Array.from({ length: op.n }, (_, i) => start / P + i);
        // A long-term pin of a private mapping gives it its own page (write or unshare).
        for (const vpn of vpns) {
          const v = proc.find(vpn) as ModelVma;
          if (!v.shared) v.writable(vpn);
        }
        real.mm.accountPinnedVm(op.n, 'add');
        proc.pinnedPages += op.n;
        const pin: PinRecord = { proc, vpns, pfns: r.value, valid: vpns.map(() => true) };
        proc.pins.push(pin);
        this.pins.push(pin);
        return;
      }
    }
  }

  check(): void {
    checkFrames(this.m);
    for (const proc of this.procs) {
      const mm = proc.real.mm;
      expect(mm.vmaList().map((v) => [v.start, v.end, v.prot, v.shared])).toEqual(
        proc.vmas.map((v) => [v.start, v.end, v.prot, v.shared]));
      let entries = 0;
      mm.forEachPage((vpn) => { entries++; expect(mm.findVma(vpn * P)).toBeDefined(); });
      expect(mm.rssPages).toBe(entries);
      expect(mm.pinnedVm).toBe(proc.pinnedPages);
      for (const pin of proc.pins) {
        if (!this.pins.includes(pin)) continue;
        pin.vpns.forEach((vpn, i) => {
          if (pin.valid[i]) expect(mm.lookupPfn(vpn * P), `pinned page ${vpn} moved`).toBe(pin.pfns[i]);
        });
      }
      for (const v of proc.vmas) {
        if (v.file !== null && v.file.id >= 0) {
          const real = mm.findVma(v.start)?.file?.file;
          expect(real instanceof MemFile && real.size).toBe(v.file.size);
        }
      }
    }
  }

  /** Read back everything mapped, then tear down: no frame may stay allocated. */
  finish(): void {
    for (const proc of this.procs) {
      for (const v of proc.vmas) {
        for (let vpn = v.start / P; vpn < v.end / P; vpn++) {
          if (!proc.accessible(vpn * P, P, 'cpu-read')) continue;
          const out = new Uint8Array(P);
          const r = proc.real.mm.read(vpn * P, out);
          if (!r.ok && r.errno === 'ENOMEM' && !this.expectNoEnomem) continue;
          expect(r.ok).toBe(true);
          if (this.dataKnown) expect(Buffer.from(out).equals(Buffer.from(v.content(vpn))), `final data at page ${vpn}`).toBe(true);
        }
      }
    }
    for (const pin of this.pins.splice(0)) pin.proc.real.mm.unpinUserPages(pin.pfns);
    for (const proc of this.procs.splice(0)) proc.real.exit();
    expect(this.m.frames.allocated).toBe(0);
    expect(this.m.memory.populatedFrames).toBe(0);
  }
}

function run(ops: Op[], frames: number, expectNoEnomem: boolean): void {
  const world = new World(machine(frames), expectNoEnomem);
  for (const op of ops) {
    world.step(op);
    world.check();
  }
  world.finish();
}

describe('processes and address spaces against a model', () => {
  it('data, errors, VMAs, pins and frame references agree with the model (ample memory)', () => {
    fc.assert(fc.property(fc.array(opArb, { minLength: 1, maxLength: 80, size: 'max' }), (ops) => run(ops, 1000, true)), { numRuns: 300 });
  });

  it('no frame leaks or bad counts when memory runs out (ENOMEM paths)', () => {
    fc.assert(fc.property(fc.array(opArb, { minLength: 1, maxLength: 80, size: 'max' }), fc.integer({ min: 2, max: 24 }),
      (ops, frames) => run(ops, frames, false)), { numRuns: 300 });
  });
});
