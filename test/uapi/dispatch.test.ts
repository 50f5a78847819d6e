// The byte-level dispatcher: fd and number routing, the size rules for every struct, IDs, and one errno
// table per IOAS ioctl (uAPI reference §4, §6.1-§6.9, §6.15, §6.18, §7.6), each struct built in user
// memory as a C program would and issued through dispatch().

import { beforeAll, describe, expect, it } from 'vitest';
import type { IommufdCtx } from '../../src/kernel/iommufd/context.ts';
import type { Ioas } from '../../src/kernel/iommufd/ioas.ts';
import { PROT_READ } from '../../src/kernel/mm/mman.ts';
import { dispatch } from '../../src/uapi/dispatch.ts';
import { IOMMU_DESTROY, VFIO_GET_API_VERSION } from '../../src/uapi/ioctl.ts';
import { IOMMUFD_IOCTLS } from '../../src/uapi/ioctl-table.ts';
import { client, FIXED, op, PAGE, READ, U64_MAX, value, world, WRITE, type World } from './dispatch-helpers.ts';

let w: World;
beforeAll(() => { w = world(); });

const RW = READ | WRITE;

describe('routing', () => {
  it('EBADF for a closed fd, ENOTTY for a file that is not an iommufd', () => {
    const c = client(w);
    expect(dispatch(c.proc, 99, IOMMU_DESTROY, c.scratch)).toMatchObject({ errno: 'EBADF' });
    const memfd = value(c.proc.memfdCreate('x'));
    expect(dispatch(c.proc, memfd, IOMMU_DESTROY, c.scratch)).toMatchObject({ errno: 'ENOTTY' });
  });

  it('unknown numbers (0x7f, 0x3b99) are ENOTTY; VFIO container numbers reach the compat layer', () => {
    const c = client(w);
    expect(dispatch(c.proc, c.fd, 0x7f, c.scratch)).toMatchObject({ errno: 'ENOTTY' });
    expect(dispatch(c.proc, c.fd, 0x3b99, c.scratch)).toMatchObject({ errno: 'ENOTTY' });
    expect(dispatch(c.proc, c.fd, VFIO_GET_API_VERSION, c.scratch)).toEqual({ ok: true, value: 0 });
  });

  it('cmd_fail: DESTROY(0) is ENOENT, a NULL argument is EFAULT', () => {
    const c = client(w);
    expect(c.call('IOMMU_DESTROY', { id: 0 }).e).toBe('ENOENT');
    expect(dispatch(c.proc, c.fd, IOMMU_DESTROY, 0)).toMatchObject({ errno: 'EFAULT' });
  });
});

describe('cmd_length: the size rules for every struct', () => {
  for (const o of IOMMUFD_IOCTLS) {
    it(o.name, () => {
      const c = client(w);
      const normal = c.call(o.name, {});
      expect(c.call(o.name, {}, { size: o.minSize - 1 }).e).toBe('EINVAL');
      expect(c.call(o.name, {}, { size: o.struct.sizeof + 1, tail: Uint8Array.of(0xaa) }).e).toBe('E2BIG');
      // A fresh client so created objects do not shift the IDs: the same result as the normal call.
      const c2 = client(w);
      expect(c2.call(o.name, {}, { size: o.struct.sizeof + 1, tail: Uint8Array.of(0) }).e).toBe(normal.e);
    });
  }
});

describe('IDs', () => {
  it('start at 1, reuse the lowest free, ENOENT for a wrong type', () => {
    const c = client(w);
    expect([c.ioasAlloc(), c.ioasAlloc(), c.ioasAlloc()]).toEqual([1, 2, 3]);
    expect(c.call('IOMMU_DESTROY', { id: 2 }).e).toBe('ok');
    expect(c.call('IOMMU_DESTROY', { id: 2 }).e).toBe('ENOENT');
    expect(c.ioasAlloc()).toBe(2);
    expect(c.ioasAlloc()).toBe(4);
  });

  it('a failed write-back (EFAULT) aborts the new object and frees its ID', () => {
    const c = client(w);
    const t = op('IOMMU_IOAS_ALLOC');
    const page = c.anon(1);
    value(c.proc.mm.write(page, t.struct.encode({ size: t.struct.sizeof, flags: 0, out_ioas_id: 0 })));
    value(c.proc.mm.mprotect(page, PAGE, PROT_READ));
    expect(dispatch(c.proc, c.fd, t.cmd, page)).toMatchObject({ errno: 'EFAULT' });
    expect(c.call('IOMMU_DESTROY', { id: 1 }).e).toBe('ENOENT');
    expect(c.ioasAlloc()).toBe(1);
  });
});

describe('IOMMU_FAULT_QUEUE_ALLOC (wired to fault-fd.ts)', () => {
  it('returns an object ID and an fd; EOPNOTSUPP for flags; a faulting write-back closes the fd and frees the ID', () => {
    const c = client(w);
    expect(c.call('IOMMU_FAULT_QUEUE_ALLOC', { flags: 1 }).e).toBe('EOPNOTSUPP');
    const r = c.call('IOMMU_FAULT_QUEUE_ALLOC', {});
    expect(r.e).toBe('ok');
    const fds = c.proc.fds.count;
    const t = op('IOMMU_FAULT_QUEUE_ALLOC');
    const page = c.anon(1);
    value(c.proc.mm.write(page, t.struct.encode({ size: t.struct.sizeof })));
    value(c.proc.mm.mprotect(page, PAGE, PROT_READ));
    expect(dispatch(c.proc, c.fd, t.cmd, page)).toMatchObject({ errno: 'EFAULT' });
    expect(c.proc.fds.count).toBe(fds);
    expect(c.ioasAlloc()).toBe(2);
  });
});

interface Row { readonly errno: string; readonly why: string; readonly run: (c: ReturnType<typeof client>) => string }

function table(name: string, rows: readonly Row[]): void {
  describe(`${name} errno table`, () => {
    for (const row of rows) {
      it(`${row.errno}: ${row.why}`, () => {
        const c = client(w);
        expect(row.run(c)).toBe(row.errno);
      });
    }
  });
}

table('IOMMU_DESTROY', [
  { errno: 'ENOENT', why: 'no such ID', run: (c) => c.call('IOMMU_DESTROY', { id: 7 }).e },
  { errno: 'ok', why: 'an IOAS with mappings', run: (c) => {
    const id = c.ioasAlloc();
    c.call('IOMMU_IOAS_MAP', { ioas_id: id, flags: RW, user_va: BigInt(c.anon(2)), length: BigInt(2 * PAGE) });
    return c.call('IOMMU_DESTROY', { id }).e;
  } },
]);

table('IOMMU_IOAS_ALLOC', [
  { errno: 'EOPNOTSUPP', why: 'flags != 0', run: (c) => c.call('IOMMU_IOAS_ALLOC', { flags: 1 }).e },
]);

table('IOMMU_IOAS_ALLOW_IOVAS', [
  { errno: 'EOPNOTSUPP', why: '__reserved', run: (c) => c.call('IOMMU_IOAS_ALLOW_IOVAS', { ioas_id: c.ioasAlloc(), __reserved: 1 }).e },
  { errno: 'ENOENT', why: 'no IOAS', run: (c) => c.call('IOMMU_IOAS_ALLOW_IOVAS', { ioas_id: 5 }).e },
  { errno: 'EFAULT', why: 'bad array pointer', run: (c) => c.call('IOMMU_IOAS_ALLOW_IOVAS', { ioas_id: c.ioasAlloc(), num_iovas: 1, allowed_iovas: 8n }).e },
  { errno: 'EINVAL', why: 'start >= last', run: (c) => allow(c, [[0x10000n, 0x10000n]]) },
  { errno: 'EINVAL', why: 'overlapping ranges', run: (c) => allow(c, [[0x10000n, 0x2ffffn], [0x20000n, 0x3ffffn]]) },
  { errno: 'EADDRINUSE', why: 'intersects a reserved range', run: (c) => {
    const id = c.ioasAlloc();
    reserve(c, id, 0x10000n, 0x1ffffn);
    return allow(c, [[0x18000n, 0x2ffffn]], id);
  } },
  { errno: 'ok', why: 'num_iovas 0 clears', run: (c) => c.call('IOMMU_IOAS_ALLOW_IOVAS', { ioas_id: c.ioasAlloc() }).e },
]);

/** ALLOW_IOVAS with ranges written to user memory. */
function allow(c: ReturnType<typeof client>, ranges: [bigint, bigint][], id = c.ioasAlloc()): string {
  const arr = c.anon(1);
  const b = new Uint8Array(16 * ranges.length);
  const v = new DataView(b.buffer);
  ranges.forEach(([s, l], i) => { v.setBigUint64(16 * i, s, true); v.setBigUint64(16 * i + 8, l, true); });
  value(c.proc.mm.write(arr, b));
  return c.call('IOMMU_IOAS_ALLOW_IOVAS', { ioas_id: id, num_iovas: ranges.length, allowed_iovas: BigInt(arr) }).e;
}

function ioasOf(c: ReturnType<typeof client>, id: number) {
  const ctx = value(c.proc.fds.get(c.fd)).file as IommufdCtx;
  return value(ctx.objects.get<Ioas>(id, 'ioas'));
}

function reserve(c: ReturnType<typeof client>, id: number, start: bigint, last: bigint): void {
  value(ioasOf(c, id).addReserved({ kind: 'test' }, [{ start, last }]));
}

const map = (c: ReturnType<typeof client>, f: Record<string, unknown>) => c.call('IOMMU_IOAS_MAP', f);

table('IOMMU_IOAS_MAP', [
  { errno: 'EOPNOTSUPP', why: 'unknown flag', run: (c) => map(c, { ioas_id: c.ioasAlloc(), flags: RW | 8, user_va: BigInt(c.anon(1)), length: BigInt(PAGE) }).e },
  { errno: 'EOPNOTSUPP', why: '__reserved', run: (c) => map(c, { ioas_id: c.ioasAlloc(), flags: RW, __reserved: 1, user_va: BigInt(c.anon(1)), length: BigInt(PAGE) }).e },
  { errno: 'EOVERFLOW', why: 'iova >= ULONG_MAX', run: (c) => map(c, { ioas_id: c.ioasAlloc(), flags: RW | FIXED, user_va: BigInt(c.anon(1)), length: BigInt(PAGE), iova: U64_MAX }).e },
  { errno: 'EOVERFLOW', why: 'length >= ULONG_MAX', run: (c) => map(c, { ioas_id: c.ioasAlloc(), flags: RW, user_va: BigInt(c.anon(1)), length: U64_MAX }).e },
  { errno: 'EOVERFLOW', why: 'user VA + length wraps', run: (c) => map(c, { ioas_id: c.ioasAlloc(), flags: RW, user_va: U64_MAX - 0xfffn, length: 0x2000n }).e },
  { errno: 'EOVERFLOW', why: 'auto allocation with length >= ULONG_MAX/2', run: (c) => map(c, { ioas_id: c.ioasAlloc(), flags: RW, user_va: 0n, length: U64_MAX / 2n }).e },
  { errno: 'EINVAL', why: 'neither READABLE nor WRITEABLE', run: (c) => map(c, { ioas_id: c.ioasAlloc(), flags: 0, user_va: BigInt(c.anon(1)), length: BigInt(PAGE) }).e },
  { errno: 'EINVAL', why: 'length 0', run: (c) => map(c, { ioas_id: c.ioasAlloc(), flags: RW, user_va: BigInt(c.anon(1)), length: 0n }).e },
  { errno: 'EINVAL', why: 'fixed IOVA not aligned to the IOAS alignment', run: (c) => {
    const id = c.ioasAlloc();
    c.call('IOMMU_OPTION', { option_id: 1, op: 0, object_id: id, val64: 0n });
    return map(c, { ioas_id: id, flags: RW | FIXED, user_va: BigInt(c.anon(1)), length: BigInt(PAGE), iova: 0x10800n }).e;
  } },
  { errno: 'EINVAL', why: 'length not a multiple of the alignment', run: (c) => {
    const id = c.ioasAlloc();
    c.call('IOMMU_OPTION', { option_id: 1, op: 0, object_id: id, val64: 0n });
    return map(c, { ioas_id: id, flags: RW, user_va: BigInt(c.anon(2)), length: 0x1800n }).e;
  } },
  { errno: 'EINVAL', why: 'fixed IOVA on a reserved range', run: (c) => {
    const id = c.ioasAlloc();
    reserve(c, id, 0x100000n, 0x1fffffn);
    return map(c, { ioas_id: id, flags: RW | FIXED, user_va: BigInt(c.anon(1)), length: BigInt(PAGE), iova: 0x100000n }).e;
  } },
  { errno: 'EEXIST', why: 'fixed IOVA overlaps an area', run: (c) => {
    const id = c.ioasAlloc();
    map(c, { ioas_id: id, flags: RW | FIXED, user_va: BigInt(c.anon(2)), length: BigInt(2 * PAGE), iova: 0x100000n });
    return map(c, { ioas_id: id, flags: RW | FIXED, user_va: BigInt(c.anon(1)), length: BigInt(PAGE), iova: 0x101000n }).e;
  } },
  { errno: 'ENOSPC', why: 'no free IOVA (everything reserved)', run: (c) => {
    const id = c.ioasAlloc();
    reserve(c, id, 0n, U64_MAX);
    return map(c, { ioas_id: id, flags: RW, user_va: BigInt(c.anon(1)), length: BigInt(PAGE) }).e;
  } },
  { errno: 'EFAULT', why: 'unmapped VA, pinned by an attached domain', run: (c) => {
    const id = c.ioasAlloc();
    attachDomain(c, id);
    return map(c, { ioas_id: id, flags: RW, user_va: 0x7000_0000n, length: BigInt(PAGE) }).e;
  } },
  { errno: 'EFAULT', why: 'WRITEABLE map of read-only memory (FOLL_WRITE on a PROT_READ VMA)', run: (c) => {
    const id = c.ioasAlloc();
    attachDomain(c, id);
    return map(c, { ioas_id: id, flags: RW, user_va: BigInt(c.anon(1, PROT_READ)), length: BigInt(PAGE) }).e;
  } },
  { errno: 'ENOMEM', why: 'RLIMIT_MEMLOCK exceeded (not EPERM)', run: (c) => {
    const c2 = client(w, { memlockPages: 2 });
    const id = c2.ioasAlloc();
    attachDomain(c2, id);
    const e = map(c2, { ioas_id: id, flags: RW, user_va: BigInt(c2.anon(4)), length: BigInt(4 * PAGE) }).e;
    return c === c2 ? 'x' : e;
  } },
  { errno: 'ENOENT', why: 'no IOAS', run: (c) => map(c, { ioas_id: 9, flags: RW, user_va: BigInt(c.anon(1)), length: BigInt(PAGE) }).e },
  { errno: 'ok', why: 'lazily: an unmapped VA maps fine without a domain', run: (c) => map(c, { ioas_id: c.ioasAlloc(), flags: RW, user_va: 0x7000_0000n, length: BigInt(PAGE) }).e },
]);

let domainOwner = 0;
function attachDomain(c: ReturnType<typeof client>, id: number) {
  const d = value(w.core.allocPagingDomain(w.dev('39:00.0'), 'unmanaged'));
  value(ioasOf(c, id).addDomain(d, { owner: ++domainOwner }));
  return d;
}

table('IOMMU_IOAS_COPY', [
  { errno: 'EOPNOTSUPP', why: 'unknown flag', run: (c) => c.call('IOMMU_IOAS_COPY', { flags: RW | 16, length: BigInt(PAGE) }).e },
  { errno: 'EOVERFLOW', why: 'src_iova >= ULONG_MAX', run: (c) => c.call('IOMMU_IOAS_COPY', { flags: RW, length: BigInt(PAGE), src_iova: U64_MAX }).e },
  { errno: 'EINVAL', why: 'neither R nor W', run: (c) => c.call('IOMMU_IOAS_COPY', { flags: 0, length: BigInt(PAGE) }).e },
  { errno: 'ENOENT', why: 'no source IOAS', run: (c) => c.call('IOMMU_IOAS_COPY', { flags: RW, length: BigInt(PAGE), src_ioas_id: 4 }).e },
  { errno: 'ENOENT', why: 'source range not covered', run: (c) => {
    const id = c.ioasAlloc();
    return c.call('IOMMU_IOAS_COPY', { flags: RW, length: BigInt(PAGE), src_ioas_id: id, dst_ioas_id: id, src_iova: 0x1000n }).e;
  } },
  { errno: 'EINVAL', why: 'length 0', run: (c) => c.call('IOMMU_IOAS_COPY', { flags: RW, length: 0n, src_ioas_id: c.ioasAlloc() }).e },
  { errno: 'EPERM', why: 'WRITEABLE copy of read-only pages', run: (c) => {
    const id = c.ioasAlloc();
    const m = map(c, { ioas_id: id, flags: READ, user_va: BigInt(c.anon(1)), length: BigInt(PAGE) });
    return c.call('IOMMU_IOAS_COPY', { flags: RW, length: BigInt(PAGE), src_ioas_id: id, dst_ioas_id: id, src_iova: m.out.iova }).e;
  } },
  { errno: 'EEXIST', why: 'fixed destination overlaps', run: (c) => {
    const id = c.ioasAlloc();
    const m = map(c, { ioas_id: id, flags: RW, user_va: BigInt(c.anon(1)), length: BigInt(PAGE) });
    return c.call('IOMMU_IOAS_COPY', { flags: RW | FIXED, length: BigInt(PAGE), src_ioas_id: id, dst_ioas_id: id, src_iova: m.out.iova, dst_iova: m.out.iova }).e;
  } },
  { errno: 'ENOENT', why: 'no destination IOAS', run: (c) => {
    const id = c.ioasAlloc();
    const m = map(c, { ioas_id: id, flags: RW, user_va: BigInt(c.anon(1)), length: BigInt(PAGE) });
    return c.call('IOMMU_IOAS_COPY', { flags: RW, length: BigInt(PAGE), src_ioas_id: id, dst_ioas_id: 9, src_iova: m.out.iova }).e;
  } },
]);

table('IOMMU_IOAS_IOVA_RANGES', [
  { errno: 'EOPNOTSUPP', why: '__reserved', run: (c) => c.call('IOMMU_IOAS_IOVA_RANGES', { ioas_id: c.ioasAlloc(), __reserved: 1 }).e },
  { errno: 'ENOENT', why: 'no IOAS', run: (c) => c.call('IOMMU_IOAS_IOVA_RANGES', { ioas_id: 3 }).e },
  { errno: 'EMSGSIZE', why: 'num_iovas 0', run: (c) => c.call('IOMMU_IOAS_IOVA_RANGES', { ioas_id: c.ioasAlloc() }).e },
  { errno: 'EFAULT', why: 'bad array pointer', run: (c) => c.call('IOMMU_IOAS_IOVA_RANGES', { ioas_id: c.ioasAlloc(), num_iovas: 1, allowed_iovas: 8n }).e },
]);

table('IOMMU_IOAS_UNMAP', [
  { errno: 'ENOENT', why: 'no IOAS', run: (c) => c.call('IOMMU_IOAS_UNMAP', { ioas_id: 3, length: BigInt(PAGE) }).e },
  { errno: 'EINVAL', why: 'length 0', run: (c) => c.call('IOMMU_IOAS_UNMAP', { ioas_id: c.ioasAlloc(), iova: 0x1000n, length: 0n }).e },
  { errno: 'EOVERFLOW', why: 'iova + length wraps', run: (c) => c.call('IOMMU_IOAS_UNMAP', { ioas_id: c.ioasAlloc(), iova: U64_MAX - 0x1000n, length: 0x3000n }).e },
  { errno: 'EOVERFLOW', why: 'length >= ULONG_MAX with iova != 0', run: (c) => c.call('IOMMU_IOAS_UNMAP', { ioas_id: c.ioasAlloc(), iova: 0x1000n, length: U64_MAX }).e },
  { errno: 'ENOENT', why: 'nothing mapped', run: (c) => c.call('IOMMU_IOAS_UNMAP', { ioas_id: c.ioasAlloc(), iova: 0x1000n, length: 0x1000n }).e },
  { errno: 'ok', why: 'unmap all on an empty IOAS', run: (c) => c.call('IOMMU_IOAS_UNMAP', { ioas_id: c.ioasAlloc(), iova: 0n, length: U64_MAX }).e },
]);

table('IOMMU_OPTION', [
  { errno: 'EOPNOTSUPP', why: '__reserved', run: (c) => c.call('IOMMU_OPTION', { option_id: 0, op: 1, __reserved: 1 }).e },
  { errno: 'EOPNOTSUPP', why: 'unknown option', run: (c) => c.call('IOMMU_OPTION', { option_id: 7, op: 1 }).e },
  { errno: 'EOPNOTSUPP', why: 'RLIMIT_MODE with an object', run: (c) => c.call('IOMMU_OPTION', { option_id: 0, op: 1, object_id: 1 }).e },
  { errno: 'EOPNOTSUPP', why: 'unknown op', run: (c) => c.call('IOMMU_OPTION', { option_id: 0, op: 5 }).e },
  { errno: 'EPERM', why: 'RLIMIT_MODE SET without CAP_SYS_RESOURCE', run: (c) => c.call('IOMMU_OPTION', { option_id: 0, op: 0, val64: 1n }).e },
  { errno: 'EBUSY', why: 'RLIMIT_MODE SET with objects', run: () => {
    const c = client(w, { caps: ['CAP_SYS_RESOURCE'] });
    c.ioasAlloc();
    return c.call('IOMMU_OPTION', { option_id: 0, op: 0, val64: 1n }).e;
  } },
  { errno: 'EINVAL', why: 'RLIMIT_MODE SET 2', run: () => client(w, { caps: ['CAP_SYS_RESOURCE'] }).call('IOMMU_OPTION', { option_id: 0, op: 0, val64: 2n }).e },
  { errno: 'ENOENT', why: 'HUGE_PAGES on object 0', run: (c) => c.call('IOMMU_OPTION', { option_id: 1, op: 1, object_id: 0 }).e },
  { errno: 'EINVAL', why: 'HUGE_PAGES SET 2', run: (c) => c.call('IOMMU_OPTION', { option_id: 1, op: 0, object_id: c.ioasAlloc(), val64: 2n }).e },
  { errno: 'EINVAL', why: 'HUGE_PAGES SET 0 with domains and areas', run: (c) => {
    const id = c.ioasAlloc();
    attachDomain(c, id);
    map(c, { ioas_id: id, flags: RW, user_va: BigInt(c.anon(1)), length: BigInt(PAGE) });
    return c.call('IOMMU_OPTION', { option_id: 1, op: 0, object_id: id, val64: 0n }).e;
  } },
  { errno: 'EADDRINUSE', why: 'HUGE_PAGES SET 0 with a misaligned area', run: (c) => {
    const id = c.ioasAlloc();
    map(c, { ioas_id: id, flags: RW, user_va: BigInt(c.anon(1) + 0x100), length: 0x100n });
    return c.call('IOMMU_OPTION', { option_id: 1, op: 0, object_id: id, val64: 0n }).e;
  } },
]);

table('IOMMU_VFIO_IOAS', [
  { errno: 'ENODEV', why: 'GET with none set', run: (c) => c.call('IOMMU_VFIO_IOAS', { op: 0 }).e },
  { errno: 'ENOENT', why: 'SET with a bad ID', run: (c) => c.call('IOMMU_VFIO_IOAS', { op: 1, ioas_id: 4 }).e },
  { errno: 'EOPNOTSUPP', why: 'unknown op', run: (c) => c.call('IOMMU_VFIO_IOAS', { op: 3 }).e },
  { errno: 'EOPNOTSUPP', why: '__reserved', run: (c) => c.call('IOMMU_VFIO_IOAS', { op: 0, __reserved: 1 }).e },
]);

table('IOMMU_IOAS_MAP_FILE', [
  { errno: 'EOPNOTSUPP', why: 'unknown flag', run: (c) => c.call('IOMMU_IOAS_MAP_FILE', { ioas_id: c.ioasAlloc(), flags: RW | 8, length: BigInt(PAGE) }).e },
  { errno: 'EOVERFLOW', why: 'length >= ULONG_MAX', run: (c) => c.call('IOMMU_IOAS_MAP_FILE', { ioas_id: c.ioasAlloc(), flags: RW, length: U64_MAX }).e },
  { errno: 'EINVAL', why: 'neither R nor W', run: (c) => c.call('IOMMU_IOAS_MAP_FILE', { ioas_id: c.ioasAlloc(), flags: 0, length: BigInt(PAGE) }).e },
  { errno: 'ENOENT', why: 'no IOAS', run: (c) => c.call('IOMMU_IOAS_MAP_FILE', { ioas_id: 8, flags: RW, length: BigInt(PAGE) }).e },
  { errno: 'EBADF', why: 'bad fd', run: (c) => c.call('IOMMU_IOAS_MAP_FILE', { ioas_id: c.ioasAlloc(), flags: RW, fd: 77, length: BigInt(PAGE) }).e },
  { errno: 'EINVAL', why: 'not a memfd (the iommufd itself)', run: (c) => c.call('IOMMU_IOAS_MAP_FILE', { ioas_id: c.ioasAlloc(), flags: RW, fd: c.fd, length: BigInt(PAGE) }).e },
  { errno: 'EINVAL', why: 'past the end of the file (after ftruncate(0))', run: (c) => {
    const fd = value(c.proc.memfdCreate('m'));
    return c.call('IOMMU_IOAS_MAP_FILE', { ioas_id: c.ioasAlloc(), flags: RW, fd, length: BigInt(PAGE) }).e;
  } },
  { errno: 'ok', why: 'a memfd range', run: (c) => {
    const fd = value(c.proc.memfdCreate('m'));
    value(c.proc.ftruncate(fd, 4 * PAGE));
    return c.call('IOMMU_IOAS_MAP_FILE', { ioas_id: c.ioasAlloc(), flags: RW, fd, start: BigInt(PAGE), length: BigInt(2 * PAGE) }).e;
  } },
]);

table('IOMMU_IOAS_CHANGE_PROCESS', [
  { errno: 'EOPNOTSUPP', why: '__reserved', run: (c) => c.call('IOMMU_IOAS_CHANGE_PROCESS', { __reserved: 1 }).e },
  { errno: 'EINVAL', why: 'a non-file area', run: (c) => {
    map(c, { ioas_id: c.ioasAlloc(), flags: RW, user_va: BigInt(c.anon(1)), length: BigInt(PAGE) });
    return c.call('IOMMU_IOAS_CHANGE_PROCESS', {}).e;
  } },
  { errno: 'ok', why: 'file areas only', run: (c) => {
    const fd = value(c.proc.memfdCreate('m'));
    value(c.proc.ftruncate(fd, PAGE));
    c.call('IOMMU_IOAS_MAP_FILE', { ioas_id: c.ioasAlloc(), flags: RW, fd, length: BigInt(PAGE) });
    return c.call('IOMMU_IOAS_CHANGE_PROCESS', {}).e;
  } },
]);

describe('outputs', () => {
  it('IOVA_RANGES: [0, U64_MAX] alignment 1 without a domain; EMSGSIZE writes num_iovas; a domain gives its aperture and 4 KiB', () => {
    const c = client(w);
    const id = c.ioasAlloc();
    const small = c.call('IOMMU_IOAS_IOVA_RANGES', { ioas_id: id });
    expect(small.e).toBe('EMSGSIZE');
    expect(small.out.num_iovas).toBe(1);
    const arr = c.anon(1);
    const got = c.call('IOMMU_IOAS_IOVA_RANGES', { ioas_id: id, num_iovas: 4, allowed_iovas: BigInt(arr) });
    expect(got.e).toBe('ok');
    expect(got.out).toMatchObject({ num_iovas: 1, out_iova_alignment: 1n });
    const b = new Uint8Array(16);
    value(c.proc.mm.read(arr, b));
    const v = new DataView(b.buffer);
    expect([v.getBigUint64(0, true), v.getBigUint64(8, true)]).toEqual([0n, U64_MAX]);
    const d = attachDomain(c, id);
    reserve(c, id, 0x10_0000n, 0x1f_ffffn);
    const two = c.call('IOMMU_IOAS_IOVA_RANGES', { ioas_id: id, num_iovas: 4, allowed_iovas: BigInt(arr) });
    expect(two.out).toMatchObject({ num_iovas: 2, out_iova_alignment: 4096n });
    const b2 = new Uint8Array(32);
    value(c.proc.mm.read(arr, b2));
    const v2 = new DataView(b2.buffer);
    expect([v2.getBigUint64(0, true), v2.getBigUint64(8, true), v2.getBigUint64(16, true), v2.getBigUint64(24, true)])
      .toEqual([0n, 0xf_ffffn, 0x20_0000n, BigInt(d.aperture.last) - (Number.isSafeInteger(d.aperture.last) ? 0n : 1n)]);
  });

  it('OPTION GETs: RLIMIT_MODE 0, HUGE_PAGES 1; VFIO_IOAS set/get/clear; destroy clears it', () => {
    const c = client(w);
    expect(c.call('IOMMU_OPTION', { option_id: 0, op: 1 }).out.val64).toBe(0n);
    const id = c.ioasAlloc();
    expect(c.call('IOMMU_OPTION', { option_id: 1, op: 1, object_id: id }).out.val64).toBe(1n);
    expect(c.call('IOMMU_OPTION', { option_id: 1, op: 0, object_id: id, val64: 0n }).e).toBe('ok');
    expect(c.call('IOMMU_OPTION', { option_id: 1, op: 1, object_id: id }).out.val64).toBe(0n);
    expect(c.call('IOMMU_VFIO_IOAS', { op: 1, ioas_id: id }).e).toBe('ok');
    expect(c.call('IOMMU_VFIO_IOAS', { op: 0 }).out.ioas_id).toBe(id);
    expect(c.call('IOMMU_VFIO_IOAS', { op: 2 }).e).toBe('ok');
    expect(c.call('IOMMU_VFIO_IOAS', { op: 0 }).e).toBe('ENODEV');
    c.call('IOMMU_VFIO_IOAS', { op: 1, ioas_id: id });
    expect(c.call('IOMMU_DESTROY', { id }).e).toBe('ok');
    c.ioasAlloc();
    expect(c.call('IOMMU_VFIO_IOAS', { op: 0 }).e).toBe('ENODEV');
  });

  it('root sets RLIMIT_MODE to MM on an empty context', () => {
    const c = client(w, { caps: ['CAP_SYS_RESOURCE'] });
    expect(c.call('IOMMU_OPTION', { option_id: 0, op: 0, val64: 1n }).e).toBe('ok');
    expect(c.call('IOMMU_OPTION', { option_id: 0, op: 1 }).out.val64).toBe(1n);
  });
});

describe('unmap semantics (§7.6)', () => {
  it('area: nothing → ENOENT, part → ENOENT, overlap → EEXIST, all → ok; superset returns every byte', () => {
    const c = client(w);
    const id = c.ioasAlloc();
    const va = BigInt(c.anon(64));
    for (let i = 0; i < 32; i++) {
      expect(map(c, { ioas_id: id, flags: RW | FIXED, user_va: va + BigInt(i * PAGE), length: BigInt(PAGE), iova: 0x100_0000n + BigInt(i * PAGE) }).e).toBe('ok');
    }
    expect(c.call('IOMMU_IOAS_UNMAP', { ioas_id: id, iova: 0x200_0000n, length: BigInt(PAGE) }).e).toBe('ENOENT');
    const big = map(c, { ioas_id: id, flags: RW | FIXED, user_va: va, length: BigInt(4 * PAGE), iova: 0x300_0000n });
    expect(big.e).toBe('ok');
    expect(c.call('IOMMU_IOAS_UNMAP', { ioas_id: id, iova: 0x300_0000n, length: BigInt(2 * PAGE) }).e).toBe('ENOENT');
    expect(c.call('IOMMU_IOAS_UNMAP', { ioas_id: id, iova: 0x300_1000n, length: BigInt(4 * PAGE) }).e).toBe('ENOENT');
    expect(map(c, { ioas_id: id, flags: RW | FIXED, user_va: va, length: BigInt(PAGE), iova: 0x300_2000n }).e).toBe('EEXIST');
    const sup = c.call('IOMMU_IOAS_UNMAP', { ioas_id: id, iova: 0x100_0000n - BigInt(PAGE), length: BigInt(40 * PAGE) });
    expect(sup.e).toBe('ok');
    expect(sup.out.length).toBe(BigInt(32 * PAGE));
    const all = c.call('IOMMU_IOAS_UNMAP', { ioas_id: id, iova: 0n, length: U64_MAX });
    expect(all.out.length).toBe(BigInt(4 * PAGE));
    expect(c.call('IOMMU_IOAS_UNMAP', { ioas_id: id, iova: 0n, length: U64_MAX }).out.length).toBe(0n);
  });

  it('auto IOVA keeps the VA page offset, never 0, and COPY returns dst_iova', () => {
    const c = client(w);
    const id = c.ioasAlloc();
    const va = c.anon(4);
    const m = map(c, { ioas_id: id, flags: RW, user_va: BigInt(va + 0x123), length: 0x2000n });
    expect(m.e).toBe('ok');
    expect(m.out.iova % 4096n).toBe(0x123n);
    expect(m.out.iova).not.toBe(0n);
    const id2 = c.ioasAlloc();
    const cp = c.call('IOMMU_IOAS_COPY', { flags: RW, dst_ioas_id: id2, src_ioas_id: id, length: 0x1000n, src_iova: m.out.iova });
    expect(cp.e).toBe('ok');
    expect(cp.out.dst_iova).toBeGreaterThan(0n);
  });
});
