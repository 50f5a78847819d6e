// Nested-translation steps: the guest side of an emulated vIOMMU (its first-stage IO page table, written
// into the guest RAM a VMM process backs) and IOMMU_HWPT_INVALIDATE, the VMM passing the guest's IOTLB
// invalidations on. The nested HWPT itself comes from hwpt-alloc with `s1:`.

import { z } from 'zod';
import * as api from '../../uapi/api.ts';
import { IOMMU_VTD_INV_FLAGS_LEAF } from '../../uapi/iommufd-consts.ts';
import { GuestPageTable } from '../../uapi/guest-pagetable.ts';
import { StepError } from '../run-state.ts';
import { commonFields, stepKind, type StepOutcome } from '../step-kind.ts';
import { formatSize, hex, numberLike } from '../values.ts';
import { failed } from './outcome.ts';

const U64_MAX = (1n << 64n) - 1n;

export const guestPagetable = stepKind({
  name: 'guest-pagetable',
  summary: 'the guest writes x86 first-stage IO page-table entries into its RAM (a process region): `table` is created on first use (root GPA stored in `as`), then `unmap` and `map` (iova → gpa) are applied in that order',
  fields: {
    process: z.string().min(1),
    table: z.string().min(1),
    /** Guest RAM: a memory region of the process; GPA `ramGpa` is its first byte. Needed on creation. */
    ram: z.string().optional(),
    ramGpa: numberLike.default(0),
    /** Guest pages the table may use (GPA, count); needed on creation. */
    pool: z.object({ gpa: numberLike, pages: z.number().int().min(1).max(4096) }).strict().optional(),
    levels: z.union([z.literal(4), z.literal(5)]).default(4),
    unmap: z.array(z.object({ iova: numberLike, length: numberLike }).strict()).default([]),
    map: z.array(z.object({ iova: numberLike, gpa: numberLike, length: numberLike, write: z.boolean().default(true) }).strict()).default([]),
    as: z.string().optional(),
    ...commonFields,
  },
  run(s, st): StepOutcome {
    const p = s.process(st.process);
    let t = s.guestTables.get(st.table);
    const lines: string[] = [];
    if (t === undefined) {
      if (st.ram === undefined || st.pool === undefined) throw new StepError(`guest table ${st.table} does not exist yet: give ram: and pool: to create it`);
      const region = p.regions.get(st.ram);
      if (region === undefined) throw new StepError(`${p.name} has no memory region ${st.ram}`);
      t = new GuestPageTable(
        { proc: p.proc, va: Number(region.va), gpa: s.num(st.ramGpa, p), size: Number(region.size) },
        { levels: st.levels, pool: { gpa: s.num(st.pool.gpa, p), pages: st.pool.pages } },
      );
      s.guestTables.set(st.table, t);
      lines.push(`root at GPA ${hex(t.root)} (${st.levels} levels)`);
    }
    s.set(st.as, t.root);
    for (const u of st.unmap) {
      const iova = s.num(u.iova, p);
      const n = t.unmap(iova, s.num(u.length, p));
      lines.push(`unmap IOVA ${hex(iova)}: ${formatSize(BigInt(n))} cleared`);
    }
    for (const m of st.map) {
      const iova = s.num(m.iova, p);
      const gpa = s.num(m.gpa, p);
      const length = s.num(m.length, p);
      const r = t.map(iova, gpa, length, { write: m.write });
      if (!r.ok) return failed(r, `guest table ${st.table}: map IOVA ${hex(iova)}`);
      lines.push(`map IOVA ${hex(iova)} → GPA ${hex(gpa)} (${formatSize(BigInt(length))}, ${m.write ? 'RW' : 'RO'})`);
    }
    return { ok: true, value: BigInt(t.root), summary: `guest table ${st.table} in ${p.name}'s RAM: ${lines.join('; ')}` };
  },
});

export const hwptInvalidate = stepKind({
  name: 'hwpt-invalidate',
  summary: 'IOMMU_HWPT_INVALIDATE of a nested HWPT with VT-d stage-1 entries (npages: a count or "all"); value: the entries handled',
  fields: {
    process: z.string().min(1),
    fd: z.union([z.string(), z.number().int()]).default('iommufd'),
    hwpt: numberLike,
    entries: z.array(z.object({
      addr: numberLike.default(0),
      npages: z.union([numberLike, z.literal('all')]),
      leaf: z.boolean().default(false),
    }).strict()).default([]),
    ...commonFields,
  },
  run(s, st): StepOutcome {
    const p = s.process(st.process);
    const hwptId = s.num(st.hwpt, p);
    const entries = st.entries.map((e) => ({
      addr: s.value(e.addr, p), npages: e.npages === 'all' ? U64_MAX : s.value(e.npages, p), flags: e.leaf ? IOMMU_VTD_INV_FLAGS_LEAF : 0,
    }));
    const r = api.hwptInvalidate({ proc: p.proc, fd: s.fd(p, st.fd), hwptId, entries });
    const what = `${p.name}: IOMMU_HWPT_INVALIDATE of HWPT ${hwptId}`;
    const list = entries.map((e) => (e.npages === U64_MAX ? 'all' : `${hex(e.addr)} +${e.npages} pages`)).join(', ');
    if (!r.result.ok) return { ...failed(r.result, `${what} [${list}]`), value: BigInt(r.handled), details: [`entry_num written back: ${r.handled}`] };
    return { ok: true, value: BigInt(r.handled), summary: `${what}: ${r.handled} of ${entries.length} entries handled [${list}]` };
  },
});
