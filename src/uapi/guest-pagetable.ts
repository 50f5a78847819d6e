// A guest's first-stage IO page table, written into the memory of the VMM process that backs the guest's
// RAM: what a guest IOMMU driver does when it builds an x86-64 style table for a device behind an
// emulated vIOMMU. Every address here is a guest physical address (GPA); guest RAM [gpa, gpa + size) is
// the process's memory at [va, va + size), which the VMM also maps at IOVA = GPA into a NEST_PARENT HWPT,
// so the IOMMU's nested walk reaches the same bytes through stage 2. The entries are laid out by the
// hardware's own table builder (IoPageTable, format 'first'), so the walker reads exactly this format.
//
// The IOMMU learns of changes only through IOMMU_HWPT_INVALIDATE: until then it may keep using what it
// cached, as real hardware does.

import { IoPageTable, type Mapping, type TableAllocator, type TableMemory } from '../hw/iommu/pgtable/builder.ts';
import { fail, ok, type Result } from '../kernel/errno.ts';
import type { Process } from '../kernel/process/process.ts';

const PAGE = 4096;

/** Guest RAM: GPAs [gpa, gpa + size) are the process's bytes at [va, va + size). */
export interface GuestRam {
  readonly proc: Process;
  readonly va: number;
  readonly gpa: number;
  readonly size: number;
}

export interface GuestPageTableOptions {
  /** 4 (addr_width 48) or 5 (57). Default 4. */
  readonly levels?: 4 | 5;
  /** Guest pages the table may use: [gpa, gpa + pages * 4 KiB), inside guest RAM. */
  readonly pool: { readonly gpa: number; readonly pages: number };
}

export interface GuestPerms {
  readonly write: boolean;
  /** User-mode access allowed (U/S); default true. */
  readonly user?: boolean;
  /** Execute allowed (clear XD); default true. */
  readonly exec?: boolean;
}

export class GuestPageTable {
  private readonly table: IoPageTable;
  private readonly free: number[] = [];

  constructor(readonly ram: GuestRam, opts: GuestPageTableOptions) {
    const { gpa, pages } = opts.pool;
    if (gpa % PAGE !== 0 || gpa < ram.gpa || gpa + pages * PAGE > ram.gpa + ram.size) throw new RangeError('the table pool must be page-aligned guest RAM');
    for (let i = pages - 1; i >= 0; i--) this.free.push(gpa + i * PAGE);
    const mem: TableMemory = {
      read64: (pa, out) => this.read64(pa, out),
      write64: (pa, lo, hi) => this.write64(pa, lo, hi),
    };
    const tables: TableAllocator = {
      alloc: () => {
        const page = this.free.pop();
        if (page === undefined) return -1;
        // A table page starts empty: the guest zeroes it before linking it in.
        return this.write(page, new Uint8Array(PAGE)) ? page : -1;
      },
      free: (pa) => { this.free.push(pa); },
    };
    this.table = new IoPageTable(mem, tables, { format: 'first', levels: opts.levels ?? 4, pageSize2M: true, pageSize1G: true });
  }

  /** GPA of the root table (the pgtbl_addr of struct iommu_hwpt_vtd_s1). */
  get root(): number { return this.table.root; }
  get levels(): 4 | 5 { return this.table.opts.levels; }

  /** Map guest IOVA [iova, iova + size) to GPA [gpa, gpa + size). EEXIST-like failures are EINVAL here. */
  map(iova: number, gpa: number, size: number, perms: GuestPerms): Result {
    const mapped = this.table.map(iova, gpa, size, { read: true, write: perms.write, user: perms.user !== false, exec: perms.exec !== false, smallPagesOnly: true });
    if (!mapped) {
      this.table.unmap(iova, size);
      return fail('EINVAL', `cannot map guest IOVA 0x${iova.toString(16)} (+0x${size.toString(16)}): misaligned, already mapped or the table pool is exhausted`);
    }
    return ok();
  }

  /** Clear the entries of [iova, iova + size): the bytes that were mapped. */
  unmap(iova: number, size: number): number { return this.table.unmap(iova, size); }

  lookup(iova: number): Mapping | null { return this.table.lookup(iova); }

  private vaOf(gpa: number, len: number): number {
    if (gpa < this.ram.gpa || gpa + len > this.ram.gpa + this.ram.size) return -1;
    return this.ram.va + (gpa - this.ram.gpa);
  }

  private write(gpa: number, bytes: Uint8Array): boolean {
    const va = this.vaOf(gpa, bytes.length);
    return va >= 0 && this.ram.proc.mm.write(va, bytes).ok;
  }

  private read64(gpa: number, out: Uint32Array): boolean {
    const va = this.vaOf(gpa, 8);
    const b = new Uint8Array(8);
    if (va < 0 || !this.ram.proc.mm.read(va, b).ok) return false;
    const v = new DataView(b.buffer);
    out[0] = v.getUint32(0, true);
    out[1] = v.getUint32(4, true);
    return true;
  }

  private write64(gpa: number, lo: number, hi: number): boolean {
    const b = new Uint8Array(8);
    const v = new DataView(b.buffer);
    v.setUint32(0, lo >>> 0, true);
    v.setUint32(4, hi >>> 0, true);
    return this.write(gpa, b);
  }
}
