import type { PhysicalMemory } from '../../memory/physical-memory.ts';
import { FaultReason, type IommuCaps, type WalkOut } from '../types.ts';
import {
  addressLimit, entryAddress, FS_A, FS_D, FS_P, FS_PS, FS_RW, FS_US, FS_XD_HI, levelIndex, levelSize, PERM_R, PERM_W,
  PERM_X, reservedAddressHi, SS_A, SS_D, SS_PS, SS_R, SS_RSVD_HI, SS_RSVD_LO, SS_W, SS_X,
} from './format.ts';

export type { WalkOut };

export function newWalkOut(): WalkOut {
  return { pa: 0, pageSize: 0, perms: 0, reason: FaultReason.None, stage: 0, faultGpa: 0 };
}

/** The access a walk checks: write, execute, privileged. */
export interface Access { write: boolean; exec: boolean; priv: boolean }

/**
 * The page walker of one IOMMU unit: reads tables from memory, checks each entry as the programming model
 * says (docs/hw-iommu.md, "Page tables"), updates A/D bits, and never throws. Scratch space lives here so
 * walks allocate nothing.
 */
export class PageWalker {
  private readonly e = new Uint32Array(2);
  /** Entry addresses of the current second- and first-stage walk's path (a nested walk runs one inside the other). */
  private readonly path2 = new Float64Array(5);
  private readonly path1 = new Float64Array(5);
  private readonly s2Out = newWalkOut();
  private readonly rsvdHi: number;

  constructor(private readonly mem: PhysicalMemory, private readonly caps: IommuCaps) {
    this.rsvdHi = reservedAddressHi(caps.physAddressWidth);
  }

  private levelsOk(levels: number): boolean {
    return levels === 4 || (levels === 5 && this.caps.fiveLevel);
  }

  /** A leaf at `level` is allowed only where the unit supports that page size. */
  private leafAllowed(level: number): boolean {
    return level === 1 || (level === 2 && this.caps.pageSize2M) || (level === 3 && this.caps.pageSize1G);
  }

  /**
   * Second-stage walk from `root` (a PA). `ad` is SSADE: update A on every entry used and D on the leaf of
   * a write, but only when the whole translation succeeds (as the RISC-V model does).
   */
  walkSecond(root: number, levels: number, iova: number, access: Access, ad: boolean, out: WalkOut): boolean {
    out.stage = 2;
    out.faultGpa = 0;
    if (!this.levelsOk(levels)) return fail(out, FaultReason.PasidEntryInvalid);
    if (iova < 0 || iova >= addressLimit(levels)) return fail(out, FaultReason.AddressBeyondWidth);
    // `+root`: a number from here on, so the loop keeps table addresses unboxed (above 2^30 each would
    // otherwise be a heap number per level).
    let table = +root;
    let perms = PERM_R | PERM_W | PERM_X;
    // Entry addresses of the path, for the A/D update after success.
    const path = this.path2;
    let depth = 0;
    const mem = this.mem;
    const memSize = mem.size;
    for (let level = levels; level >= 1; level--) {
      const at = table + levelIndex(iova, level) * 8;
      // read64, without the copy through a scratch array: the entry's frame words (undefined: never
      // written, all zeros). Entries are 8-byte aligned, so both halves are in the frame.
      if (at < 0 || at + 8 > memSize) return fail(out, FaultReason.TableReadError);
      const words = mem.frameWords(Math.floor(at / 4096));
      const wi = (at & 4095) >>> 2;
      const lo = words === undefined ? 0 : (words[wi] as number);
      const hi = words === undefined ? 0 : (words[wi + 1] as number);
      if ((lo & (SS_R | SS_W)) === 0) return fail(out, FaultReason.PteNotPresent);
      const isLeaf = level === 1 || (lo & SS_PS) !== 0;
      // Reserved: bits 6:3, 63:52, address bits beyond the unit's width, PS where no such page size exists.
      if ((lo & SS_RSVD_LO) !== 0 || (hi & (SS_RSVD_HI | this.rsvdHi)) !== 0) return fail(out, FaultReason.PteReserved);
      if (level > 1 && isLeaf && !this.leafAllowed(level)) return fail(out, FaultReason.PteReserved);
      perms &= lo & (SS_R | SS_W | SS_X);
      path[depth++] = at;
      if (isLeaf) {
        if (access.write && (perms & PERM_W) === 0) return fail(out, FaultReason.WriteDenied);
        if (!access.write && (perms & PERM_R) === 0) return fail(out, FaultReason.ReadDenied);
        if (access.exec && (perms & PERM_X) === 0) return fail(out, FaultReason.ExecDenied);
        const size = levelSize(level);
        if (ad) {
          // A on every entry of the path, root first, and D too on the leaf of a write (one call site, so
          // V8 inlines it once rather than passing boxed addresses to calls).
          for (let i = 0; i < depth; i++) {
            const bits = i === depth - 1 && access.write ? SS_A | SS_D : SS_A;
            if (!this.setBits(path[i] as number, bits)) return fail(out, FaultReason.TableWriteError);
          }
        }
        // Offsets by subtraction, not `%` (a library call on doubles).
        const base = entryAddress(lo, hi);
        out.pa = base - (base - Math.floor(base / size) * size) + (iova - Math.floor(iova / size) * size);
        out.pageSize = size;
        out.perms = perms;
        out.reason = FaultReason.None;
        out.stage = 0;
        return true;
      }
      table = entryAddress(lo, hi);
    }
    return fail(out, FaultReason.PteNotPresent);
  }

  /**
   * First-stage (x86-64 style) walk. Without `stage2`, table pointers and the result are physical. With
   * it (nested), they are guest physical: every table access and the final address go through the
   * second stage, whose faults are reported as stage 2 with the GPA.
   */
  walkFirst(root: number, levels: number, iova: number, access: Access, out: WalkOut, stage2?: SecondStage): boolean {
    out.stage = 1;
    out.faultGpa = 0;
    if (!this.levelsOk(levels)) return fail(out, FaultReason.PasidEntryInvalid);
    if (iova < 0 || iova >= addressLimit(levels)) return fail(out, FaultReason.AddressBeyondWidth);
    const e = this.e;
    let table = +root; // unboxed, as in walkSecond
    let writable = true;
    let user = true;
    let noExec = false;
    // Guest physical addresses of the entries used (a scratch array: no allocation per walk).
    const path = this.path1;
    let depth = 0;
    for (let level = levels; level >= 1; level--) {
      const gpaAt = table + levelIndex(iova, level) * 8;
      const at = stage2 === undefined ? gpaAt : this.viaStage2(stage2, gpaAt, false, out);
      if (at < 0) return false;
      if (!this.mem.read64(at, e)) return fail(out, FaultReason.TableReadError);
      const lo = e[0] as number;
      const hi = e[1] as number;
      if ((lo & FS_P) === 0) return fail(out, FaultReason.PteNotPresent);
      const isLeaf = level === 1 || (lo & FS_PS) !== 0;
      if ((hi & this.rsvdHi) !== 0) return fail(out, FaultReason.PteReserved);
      if (level > 1 && isLeaf && !this.leafAllowed(level)) return fail(out, FaultReason.PteReserved);
      // A large page's address bits below its size (above bit 12) must be zero.
      if (level > 1 && isLeaf && (entryAddress(lo, hi) % levelSize(level)) !== 0) return fail(out, FaultReason.PteReserved);
      writable &&= (lo & FS_RW) !== 0;
      user &&= (lo & FS_US) !== 0;
      noExec ||= (hi & FS_XD_HI) !== 0;
      path[depth++] = gpaAt;
      if (isLeaf) {
        if (access.write && !writable) return fail(out, FaultReason.WriteDenied);
        if (!access.priv && !user) return fail(out, FaultReason.PrivDenied);
        if (access.exec && noExec) return fail(out, FaultReason.ExecDenied);
        const size = levelSize(level);
        const base = entryAddress(lo, hi);
        // x86 updates A on every entry used and D on a written leaf, always (no enable bit).
        for (let i = 0; i < depth; i++) {
          const bits = i === depth - 1 && access.write ? FS_A | FS_D : FS_A;
          const gpa = path[i] as number;
          const pa = stage2 === undefined ? gpa : this.viaStage2(stage2, gpa, true, out);
          if (pa < 0) return false;
          if (!this.setBits(pa, bits)) return fail(out, FaultReason.TableWriteError);
        }
        const gpa = base + (iova % size);
        let perms = PERM_R | (writable ? PERM_W : 0) | (noExec ? 0 : PERM_X);
        let pageSize = size;
        if (stage2 === undefined) {
          out.pa = gpa;
        } else {
          const s2 = this.s2Out;
          if (!stage2.translate(gpa, access, s2)) return stage2Fault(out, s2, gpa);
          out.pa = s2.pa;
          perms &= s2.perms;
          pageSize = Math.min(size, s2.pageSize);
        }
        out.pageSize = pageSize;
        out.perms = perms;
        out.reason = FaultReason.None;
        out.stage = 0;
        return true;
      }
      table = entryAddress(lo, hi);
    }
    return fail(out, FaultReason.PteNotPresent);
  }

  /** Translate a guest physical address of a stage-1 table through stage 2; -1 (out filled) on fault. */
  private viaStage2(stage2: SecondStage, gpa: number, write: boolean, out: WalkOut): number {
    const s2 = this.s2Out;
    if (!stage2.translate(gpa, write ? WRITE_ACCESS : READ_ACCESS, s2)) {
      stage2Fault(out, s2, gpa);
      return -1;
    }
    return s2.pa;
  }

  /** Set bits in the low half of the entry at `pa` if not already set. */
  private setBits(pa: number, bits: number): boolean {
    const e = this.e;
    if (!this.mem.read64(pa, e)) return false;
    const lo = e[0] as number;
    if ((lo & bits) === bits) return true;
    return this.mem.write64(pa, (lo | bits) >>> 0, e[1] as number);
  }
}

/** The second stage of a nested translation, as the first-stage walk needs it. */
export interface SecondStage {
  translate(gpa: number, access: Access, out: WalkOut): boolean;
}

const READ_ACCESS: Access = { write: false, exec: false, priv: true };
const WRITE_ACCESS: Access = { write: true, exec: false, priv: true };

function fail(out: WalkOut, reason: FaultReason): false {
  out.reason = reason;
  out.pa = 0;
  out.pageSize = 0;
  out.perms = 0;
  return false;
}

function stage2Fault(out: WalkOut, s2: WalkOut, gpa: number): false {
  out.reason = s2.reason;
  out.stage = 2;
  out.faultGpa = gpa;
  out.pa = 0;
  out.pageSize = 0;
  out.perms = 0;
  return false;
}
