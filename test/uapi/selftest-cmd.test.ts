// IOMMU_TEST_CMD through the byte-level dispatch, with struct iommu_test_cmd laid out as a C program
// would (iommufd_test.h): the CONFIG switch, main.c's size rules, and each op's errno table (oracle §6).

import { describe, expect, it } from 'vitest';
import { DmaBuf, type DmaBufExporter } from '../../src/kernel/dma-buf/dma-buf.ts';
import { ok } from '../../src/kernel/errno.ts';
import { MAP_ANONYMOUS, MAP_SHARED, PROT_READ, PROT_WRITE } from '../../src/kernel/mm/mman.ts';
import { O_CLOEXEC, O_RDWR } from '../../src/kernel/vfs/devfs.ts';
import * as api from '../../src/uapi/api.ts';
import { dispatch } from '../../src/uapi/dispatch.ts';
import { IOMMU_TEST_CMD } from '../../src/uapi/ioctl.ts';
import * as T from '../../src/uapi/iommufd-test-structs.ts';
import { BUFFER_SIZE, errno, PAGE, selftestWorld, value } from '../kernel/iommufd/selftest-helpers.ts';

const BASE = BigInt(T.MOCK_APERTURE_START);

/** A dma-buf exported by someone other than the selftest, installed as a new fd of the world's process. */
function foreignDmabuf(w: ReturnType<typeof selftestWorld>): number {
  const frames = w.proc.mm.frames;
  const pfn = frames.alloc();
  const exporter: DmaBufExporter = { mapPhys: () => ok(Uint32Array.of(pfn)), release: () => { frames.put(pfn); } };
  return value(w.proc.fds.install(new DmaBuf(exporter, PAGE, 0)));
}

/** A C caller: struct iommu_test_cmd at a user address, ioctl(fd, IOMMU_TEST_CMD, &cmd). */
function cCaller(w: ReturnType<typeof selftestWorld>) {
  const at = value(w.proc.mmap(0, PAGE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0));
  return (op: number, id: number, fields: Record<string, number | bigint> = {}, o: { size?: number; tail?: number } = {}) => {
    const b = new Uint8Array(T.iommu_test_cmd.sizeof + 8);
    b.set(T.iommu_test_cmd.encode({ size: o.size ?? T.iommu_test_cmd.sizeof, op, id }));
    const member = T.TEST_OP_MEMBERS[op];
    if (member !== undefined) b.set(member.encode(fields), T.TEST_CMD_UNION_OFFSET);
    if (o.tail !== undefined) b[T.iommu_test_cmd.sizeof] = o.tail;
    value(w.proc.mm.write(at, b));
    const r = dispatch(w.proc, w.fd, IOMMU_TEST_CMD, at);
    const back = new Uint8Array(T.iommu_test_cmd.sizeof);
    value(w.proc.mm.read(at, back));
    const out = member === undefined ? {} : member.decode(back.subarray(T.TEST_CMD_UNION_OFFSET)) as Record<string, number | bigint>;
    return { e: errno(r), r, out };
  };
}

describe('IOMMU_TEST_CMD: layout and dispatch', () => {
  it('struct iommu_test_cmd is 72 bytes: the union at 16 (48 bytes, dirty the largest), last at 64', () => {
    expect(T.iommu_test_cmd.sizeof).toBe(72);
    expect(T.iommu_test_cmd.fields.map((f) => [f.name, f.offset])).toEqual([['size', 0], ['op', 4], ['id', 8], ['__reserved', 12], ['union', 16], ['last', 64]]);
    expect(T.dirty.sizeof).toBe(48);
    expect(Math.max(...Object.values(T.TEST_OP_MEMBERS).map((m) => m.sizeof))).toBe(48);
    expect(T.access_pages.fields.map((f) => f.offset)).toEqual([0, 4, 8, 16, 24]);
    expect(T.trigger_iopf.fields.map((f) => f.offset)).toEqual([0, 4, 8, 12, 16]);
    expect(T.check_dmabuf.fields.map((f) => f.offset)).toEqual([0, 8, 16, 24]);
  });

  it('without iommufdTest (CONFIG_IOMMUFD_TEST off) the number is unknown: ENOTTY', () => {
    const w = selftestWorld({ iommufdTest: false });
    expect(cCaller(w)(T.IOMMU_TEST_OP_SET_TEMP_MEMORY_LIMIT, 0, { limit: 100 }).e).toBe('ENOTTY');
  });

  it('size rules: below offsetofend(last) EINVAL, non-zero bytes past sizeof E2BIG, zero ones accepted', () => {
    const c = cCaller(selftestWorld());
    expect(c(T.IOMMU_TEST_OP_SET_TEMP_MEMORY_LIMIT, 0, { limit: 100 }, { size: 67 }).e).toBe('EINVAL');
    expect(c(T.IOMMU_TEST_OP_SET_TEMP_MEMORY_LIMIT, 0, { limit: 100 }, { size: 68 }).e).toBe('ok');
    expect(c(T.IOMMU_TEST_OP_SET_TEMP_MEMORY_LIMIT, 0, { limit: 100 }, { size: 73, tail: 1 }).e).toBe('E2BIG');
    expect(c(T.IOMMU_TEST_OP_SET_TEMP_MEMORY_LIMIT, 0, { limit: 100 }, { size: 73, tail: 0 }).e).toBe('ok');
  });

  it('unknown ops are EOPNOTSUPP; the vIOMMU ops look their object up (ENOENT)', () => {
    const c = cCaller(selftestWorld());
    for (const op of [T.IOMMU_TEST_OP_MD_CHECK_IOTLB, T.IOMMU_TEST_OP_DEV_CHECK_CACHE, T.IOMMU_TEST_OP_TRIGGER_VEVENT]) {
      expect(c(op, 0).e, `op ${op}`).toBe('ENOENT');
    }
    for (const op of [0, 25, 0xffff]) {
      expect(c(op, 0).e, `op ${op}`).toBe('EOPNOTSUPP');
    }
  });
});

describe('IOMMU_TEST_CMD: errno per op', () => {
  function setup() {
    const w = selftestWorld();
    const c = cCaller(w);
    const ioasId = w.ioasAlloc();
    const md = c(T.IOMMU_TEST_OP_MOCK_DOMAIN, ioasId);
    expect(md.e).toBe('ok');
    const ids = { stdev: Number(md.out.out_stdev_id), hwpt: Number(md.out.out_hwpt_id), idev: Number(md.out.out_idev_id) };
    w.map(ioasId, w.buffer, BUFFER_SIZE, BASE);
    return { w, c, ioasId, ids };
  }

  it('ADD_RESERVED: ENOENT, EINVAL (length 0), EOVERFLOW, EADDRINUSE over an area', () => {
    const { c, ioasId, ids } = setup();
    expect(c(T.IOMMU_TEST_OP_ADD_RESERVED, ids.hwpt, { start: 0n, length: 4096n }).e).toBe('ENOENT');
    expect(c(T.IOMMU_TEST_OP_ADD_RESERVED, ioasId, { start: 0n, length: 0n }).e).toBe('EINVAL');
    expect(c(T.IOMMU_TEST_OP_ADD_RESERVED, ioasId, { start: (1n << 64n) - 4096n, length: 8192n }).e).toBe('EOVERFLOW');
    expect(c(T.IOMMU_TEST_OP_ADD_RESERVED, ioasId, { start: BASE, length: 4096n }).e).toBe('EADDRINUSE');
    expect(c(T.IOMMU_TEST_OP_ADD_RESERVED, ioasId, { start: 0x1000n, length: 4096n }).e).toBe('ok');
  });

  it('MOCK_DOMAIN / MOCK_DOMAIN_FLAGS: ENOENT for a missing pt_id (nothing left behind), EINVAL for unknown device flags', () => {
    const { w, c, ioasId } = setup();
    const before = w.k.core.groups.length;
    expect(c(T.IOMMU_TEST_OP_MOCK_DOMAIN, 999).e).toBe('ENOENT');
    expect(c(T.IOMMU_TEST_OP_MOCK_DOMAIN_FLAGS, ioasId, { dev_flags: 2 }).e).toBe('EINVAL');
    expect(w.k.core.groups.length).toBe(before);
    const ok = c(T.IOMMU_TEST_OP_MOCK_DOMAIN_FLAGS, ioasId, { dev_flags: T.MOCK_FLAGS_DEVICE_NO_DIRTY | T.MOCK_FLAGS_DEVICE_PASID });
    expect(ok.e).toBe('ok');
    expect(w.k.core.groups.length).toBe(before + 1);
    expect(errno(api.destroy({ ...w.a, id: Number(ok.out.out_stdev_id) }))).toBe('ok');
    expect(w.k.core.groups.length).toBe(before);
  });

  it('MD_CHECK_MAP: ENOENT for a non-HWPT, EINVAL misaligned or not mapped there', () => {
    const { w, c, ioasId, ids } = setup();
    const uptr = BigInt(w.buffer);
    expect(c(T.IOMMU_TEST_OP_MD_CHECK_MAP, ioasId, { iova: BASE, length: 4096n, uptr }).e).toBe('ENOENT');
    expect(c(T.IOMMU_TEST_OP_MD_CHECK_MAP, ids.hwpt, { iova: BASE + 1n, length: 4096n, uptr }).e).toBe('EINVAL');
    expect(c(T.IOMMU_TEST_OP_MD_CHECK_MAP, ids.hwpt, { iova: BASE + 4096n, length: 4096n, uptr }).e).toBe('EINVAL');
    expect(c(T.IOMMU_TEST_OP_MD_CHECK_MAP, ids.hwpt, { iova: BASE + BigInt(BUFFER_SIZE), length: 2048n, uptr }).e).toBe('EINVAL');
    expect(c(T.IOMMU_TEST_OP_MD_CHECK_MAP, ids.hwpt, { iova: BASE + 2048n, length: BigInt(BUFFER_SIZE - 2048), uptr: uptr + 2048n }).e).toBe('ok');
  });

  it('MD_CHECK_REFS: EINVAL unaligned, EIO for a wrong count', () => {
    const { w, c } = setup();
    const uptr = BigInt(w.buffer);
    expect(c(T.IOMMU_TEST_OP_MD_CHECK_REFS, 0, { length: 4096n, uptr: uptr + 2048n, refs: 1 }).e).toBe('EINVAL');
    expect(c(T.IOMMU_TEST_OP_MD_CHECK_REFS, 0, { length: 100n, uptr, refs: 1 }).e).toBe('EINVAL');
    expect(c(T.IOMMU_TEST_OP_MD_CHECK_REFS, 0, { length: BigInt(BUFFER_SIZE), uptr, refs: 0 }).e).toBe('EIO');
    expect(c(T.IOMMU_TEST_OP_MD_CHECK_REFS, 0, { length: BigInt(BUFFER_SIZE), uptr, refs: 1 }).e).toBe('ok');
  });

  it('CREATE_ACCESS, DESTROY_ACCESS_PAGES, ACCESS_PAGES, ACCESS_RW, ACCESS_REPLACE_IOAS', () => {
    const { w, c, ioasId } = setup();
    const uptr = BigInt(w.buffer);
    expect(c(T.IOMMU_TEST_OP_CREATE_ACCESS, ioasId, { flags: 2 }).e).toBe('EOPNOTSUPP');
    expect(c(T.IOMMU_TEST_OP_CREATE_ACCESS, 999, { flags: 0 }).e).toBe('ENOENT');
    const pin = c(T.IOMMU_TEST_OP_CREATE_ACCESS, ioasId, { flags: T.MOCK_FLAGS_ACCESS_CREATE_NEEDS_PIN_PAGES });
    const nopin = c(T.IOMMU_TEST_OP_CREATE_ACCESS, ioasId, { flags: 0 });
    const pfd = Number(pin.out.out_access_fd);
    const nfd = Number(nopin.out.out_access_fd);
    expect(value(w.proc.fds.get(pfd)).file.kind).toBe('iommufd_test_staccess');
    // DESTROY_ACCESS_PAGES names the access by fd.
    expect(c(T.IOMMU_TEST_OP_DESTROY_ACCESS_PAGES, w.fd, { access_pages_id: 0 }).e).toBe('EBADFD');
    expect(c(T.IOMMU_TEST_OP_DESTROY_ACCESS_PAGES, 200, { access_pages_id: 0 }).e).toBe('EBADF');
    expect(c(T.IOMMU_TEST_OP_DESTROY_ACCESS_PAGES, pfd, { access_pages_id: 7 }).e).toBe('ENOENT');
    // ACCESS_PAGES.
    const ap = (fd: number, f: Record<string, number | bigint>) => c(T.IOMMU_TEST_OP_ACCESS_PAGES, fd, { flags: 0, iova: BASE, length: 4096n, uptr, ...f });
    expect(ap(pfd, { length: 16n * 1024n * 1024n + 1n }).e).toBe('ENOMEM');
    expect(ap(pfd, { flags: 2 }).e).toBe('EOPNOTSUPP');
    expect(ap(nfd, {}).e).toBe('EOPNOTSUPP');
    expect(ap(pfd, { uptr: uptr + 4096n }).e).toBe('EBADE');
    expect(ap(pfd, { iova: BASE + BigInt(BUFFER_SIZE) }).e).toBe('ENOENT');
    const item = ap(pfd, {});
    expect(item.e).toBe('ok');
    expect(c(T.IOMMU_TEST_OP_MD_CHECK_REFS, 0, { length: 4096n, uptr, refs: 1 }).e).toBe('ok');
    expect(c(T.IOMMU_TEST_OP_DESTROY_ACCESS_PAGES, pfd, { access_pages_id: Number(item.out.out_access_pages_id) }).e).toBe('ok');
    // ACCESS_RW.
    const rw = (f: Record<string, number | bigint>) => c(T.IOMMU_TEST_OP_ACCESS_RW, nfd, { iova: BASE, length: 16n, uptr, flags: 0, ...f });
    expect(rw({ length: 16n * 1024n * 1024n + 1n }).e).toBe('ENOMEM');
    expect(rw({ flags: 2 }).e).toBe('EOPNOTSUPP');
    expect(rw({ length: 0n }).e).toBe('EINVAL');
    expect(rw({ iova: BASE + BigInt(BUFFER_SIZE) }).e).toBe('ENOENT');
    expect(rw({ flags: T.MOCK_ACCESS_RW_WRITE | T.MOCK_ACCESS_RW_SLOW_PATH }).e).toBe('ok');
    // ACCESS_REPLACE_IOAS.
    expect(c(T.IOMMU_TEST_OP_ACCESS_REPLACE_IOAS, nfd, { ioas_id: 999 }).e).toBe('ENOENT');
    expect(c(T.IOMMU_TEST_OP_ACCESS_REPLACE_IOAS, nfd, { ioas_id: w.ioasAlloc() }).e).toBe('ok');
    expect(errno(w.proc.fds.close(pfd))).toBe('ok');
    expect(errno(w.proc.fds.close(nfd))).toBe('ok');
    w.teardown();
  });

  it('SET_TEMP_MEMORY_LIMIT: below 12 EINVAL', () => {
    const { w, c } = setup();
    expect(c(T.IOMMU_TEST_OP_SET_TEMP_MEMORY_LIMIT, 0, { limit: 11 }).e).toBe('EINVAL');
    expect(c(T.IOMMU_TEST_OP_SET_TEMP_MEMORY_LIMIT, 0, { limit: 16 }).e).toBe('ok');
    expect(w.k.iommufdParams.selftest?.memoryLimit).toBe(16);
  });

  it('MOCK_DOMAIN_REPLACE and the PASID ops want a SELFTEST object (ENOENT); replace writes pt_id back', () => {
    const { w, c, ioasId, ids } = setup();
    expect(c(T.IOMMU_TEST_OP_MOCK_DOMAIN_REPLACE, ids.idev, { pt_id: ioasId }).e).toBe('ENOENT');
    for (const op of [T.IOMMU_TEST_OP_PASID_ATTACH, T.IOMMU_TEST_OP_PASID_REPLACE, T.IOMMU_TEST_OP_PASID_DETACH, T.IOMMU_TEST_OP_PASID_CHECK_HWPT]) {
      expect(c(op, ids.hwpt, { pasid: 1 }).e, `op ${op}`).toBe('ENOENT');
    }
    const ioas2 = w.ioasAlloc();
    const r = c(T.IOMMU_TEST_OP_MOCK_DOMAIN_REPLACE, ids.stdev, { pt_id: ioas2 });
    expect(r.e).toBe('ok');
    expect(Number(r.out.pt_id)).not.toBe(ids.hwpt);
    expect(c(T.IOMMU_TEST_OP_PASID_DETACH, ids.stdev, { pasid: 5 }).e).toBe('ok');
    expect(c(T.IOMMU_TEST_OP_PASID_CHECK_HWPT, ids.stdev, { pasid: 5, hwpt_id: 0 }).e).toBe('ok');
    expect(c(T.IOMMU_TEST_OP_PASID_CHECK_HWPT, ids.stdev, { pasid: 5, hwpt_id: Number(r.out.pt_id) }).e).toBe('EINVAL');
  });

  it('DIRTY: EINVAL for bad sizes and without tracking enabled; TRIGGER_IOPF: ENOENT for a bad dev_id, 0 otherwise', () => {
    const { w, c, ids } = setup();
    const uptr = BigInt(w.buffer);
    const d = (f: Record<string, number | bigint>) => c(T.IOMMU_TEST_OP_DIRTY, ids.hwpt, { flags: 0, iova: BASE, length: 8192n, page_size: 2048n, uptr, ...f });
    expect(d({ page_size: 0n }).e).toBe('EINVAL');
    expect(d({ length: 1000n }).e).toBe('EINVAL');
    expect(d({ uptr: 0n }).e).toBe('EINVAL');
    expect(d({}).e).toBe('EINVAL');
    expect(c(T.IOMMU_TEST_OP_TRIGGER_IOPF, 0, { dev_id: ids.hwpt, pasid: 0, grpid: 1, perm: 1, addr: 0n }).e).toBe('ENOENT');
    // No fault handler is attached: Linux drops the report and the op still returns 0.
    expect(c(T.IOMMU_TEST_OP_TRIGGER_IOPF, 0, { dev_id: ids.idev, pasid: 0, grpid: 1, perm: 1, addr: 0n }).e).toBe('ok');
  });

  it('DMABUF_GET: EINVAL for 0, a partial page or above 512 pages; the new fd is the ioctl value', () => {
    const { w, c } = setup();
    const used = w.k.frames.allocated;
    for (const length of [0, 100, PAGE + 1, 513 * PAGE]) expect(c(T.IOMMU_TEST_OP_DMABUF_GET, 0, { length, open_flags: 0 }).e, `length ${length}`).toBe('EINVAL');
    expect(w.k.frames.allocated).toBe(used);
    const want = Math.min(...[...Array(w.proc.fds.fds().length + 1).keys()].filter((n) => !w.proc.fds.fds().includes(n)));
    const got = c(T.IOMMU_TEST_OP_DMABUF_GET, 0, { length: 512 * PAGE, open_flags: O_RDWR | O_CLOEXEC });
    expect(got.e).toBe('ok');
    expect(got.r.ok && got.r.value).toBe(want);
    const file = value(w.proc.fds.get(want)).file;
    expect(file).toBeInstanceOf(DmaBuf);
    expect((file as DmaBuf).size).toBe(512 * PAGE);
    expect((file as DmaBuf).flags).toBe(O_RDWR | O_CLOEXEC);
    expect(w.k.frames.allocated).toBe(used + 512);
    expect(errno(w.proc.fds.close(want))).toBe('ok');
    expect(w.k.frames.allocated).toBe(used);
  });

  it('DMABUF_REVOKE: EBADF, EINVAL for a file that is not a dma-buf, EOPNOTSUPP for another exporter\'s', () => {
    const { w, c } = setup();
    const dfd = Number(value(c(T.IOMMU_TEST_OP_DMABUF_GET, 0, { length: PAGE, open_flags: 0 }).r));
    expect(c(T.IOMMU_TEST_OP_DMABUF_REVOKE, 0, { dmabuf_fd: 999, revoked: 1 }).e).toBe('EBADF');
    expect(c(T.IOMMU_TEST_OP_DMABUF_REVOKE, 0, { dmabuf_fd: -1, revoked: 1 }).e).toBe('EBADF');
    expect(c(T.IOMMU_TEST_OP_DMABUF_REVOKE, 0, { dmabuf_fd: w.fd, revoked: 1 }).e).toBe('EINVAL');
    expect(c(T.IOMMU_TEST_OP_DMABUF_REVOKE, 0, { dmabuf_fd: foreignDmabuf(w), revoked: 1 }).e).toBe('EOPNOTSUPP');
    expect(c(T.IOMMU_TEST_OP_DMABUF_REVOKE, 0, { dmabuf_fd: dfd, revoked: 1 }).e).toBe('ok');
    expect(c(T.IOMMU_TEST_OP_DMABUF_REVOKE, 0, { dmabuf_fd: dfd, revoked: 0 }).e).toBe('ok');
  });

  it('MD_CHECK_DMABUF: ENOENT/EINVAL for the HWPT, EBADF/EINVAL for the fd, EINVAL misaligned, outside or not mapped there', () => {
    const { w, c, ioasId, ids } = setup();
    const dfd = Number(value(c(T.IOMMU_TEST_OP_DMABUF_GET, 0, { length: 4 * PAGE, open_flags: 0 }).r));
    const iova = value(api.ioasMapFile({ ...w.a, ioasId, file: dfd, start: PAGE, length: 2 * PAGE }));
    const k = (id: number, f: Record<string, number | bigint>) => c(T.IOMMU_TEST_OP_MD_CHECK_DMABUF, id, { dmabuf_fd: dfd, iova, length: 2n * BigInt(PAGE), offset: BigInt(PAGE), ...f }).e;
    expect(k(ioasId, {})).toBe('ENOENT');
    expect(k(ids.hwpt, { dmabuf_fd: 999 })).toBe('EBADF');
    expect(k(ids.hwpt, { dmabuf_fd: w.fd })).toBe('EINVAL');
    expect(k(ids.hwpt, { dmabuf_fd: foreignDmabuf(w) })).toBe('EINVAL');
    expect(k(ids.hwpt, { iova: iova + 1n })).toBe('EINVAL');
    expect(k(ids.hwpt, { length: 1000n })).toBe('EINVAL');
    expect(k(ids.hwpt, { offset: 3n * BigInt(PAGE) })).toBe('EINVAL'); // past the end of the buffer
    expect(k(ids.hwpt, { offset: 0n })).toBe('EINVAL'); // mapped from page 1, not page 0
    expect(k(ids.hwpt, { iova: BASE })).toBe('EINVAL'); // the user buffer's pages are mapped there
    expect(k(ids.hwpt, {})).toBe('ok');
    expect(k(ids.hwpt, { iova: iova + 2048n, length: 2048n, offset: BigInt(PAGE) + 2048n })).toBe('ok');
  });

  it('a write-back fault (EFAULT) undoes what the op made: the stdev and its mock device, the access fd, the dma-buf fd', () => {
    const { w, ioasId } = setup();
    const at = value(w.proc.mmap(0, PAGE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0));
    const groups = w.k.core.groups.length;
    const fds = w.proc.fds.fds().length;
    for (const [op, fields] of [[T.IOMMU_TEST_OP_MOCK_DOMAIN, {}], [T.IOMMU_TEST_OP_CREATE_ACCESS, { flags: 0 }],
      [T.IOMMU_TEST_OP_DMABUF_GET, { length: PAGE, open_flags: 0 }]] as const) {
      const b = T.iommu_test_cmd.encode({ size: T.iommu_test_cmd.sizeof, op, id: ioasId });
      b.set((T.TEST_OP_MEMBERS[op] as NonNullable<typeof T.TEST_OP_MEMBERS[number]>).encode(fields), T.TEST_CMD_UNION_OFFSET);
      value(w.proc.mm.mprotect(at, PAGE, PROT_READ | PROT_WRITE));
      value(w.proc.mm.write(at, b));
      value(w.proc.mm.mprotect(at, PAGE, PROT_READ));
      const used = w.k.frames.allocated;
      expect(errno(dispatch(w.proc, w.fd, IOMMU_TEST_CMD, at))).toBe('EFAULT');
      // The dma-buf's pages went back with its fd.
      if (op === T.IOMMU_TEST_OP_DMABUF_GET) expect(w.k.frames.allocated).toBe(used);
    }
    expect(w.k.core.groups.length).toBe(groups);
    expect(w.proc.fds.fds().length).toBe(fds);
    w.teardown();
  });
});
