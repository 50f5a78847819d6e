// The upstream selftest's dma-buf cases (iommufd.c TEST_F(iommufd_ioas, dmabuf_simple / dmabuf_multi_page /
// dmabuf_revoke), oracle §4.3) in the fixture's no-domain, one- and two-mock-domain variants, each ending
// with the fixture's teardown leak check plus the dma-buf's own: no attachment left, its pages freed.
// Then what Linux does around them: no pin accounting, accesses refused, IOAS_COPY shares the buffer and
// a revoke reaches every copy, the pages live exactly as long as the last file or area reference.

import { describe, expect, it } from 'vitest';
import { DmaBuf } from '../../../src/kernel/dma-buf/dma-buf.ts';
import { IommufdCtx } from '../../../src/kernel/iommufd/context.ts';
import type { Ioas } from '../../../src/kernel/iommufd/ioas.ts';
import { IoptPages } from '../../../src/kernel/iommufd/pages.ts';
import { MockDmaBufExporter } from '../../../src/kernel/iommufd/selftest/mock-dmabuf.ts';
import * as api from '../../../src/uapi/api.ts';
import { SelftestApi } from '../../../src/uapi/selftest-api.ts';
import { MOCK_APERTURE_START, MOCK_FLAGS_ACCESS_CREATE_NEEDS_PIN_PAGES } from '../../../src/uapi/iommufd-test-structs.ts';
import { errno, PAGE, selftestWorld, value } from './selftest-helpers.ts';

const P = BigInt(PAGE);
const VARIANTS = [
  { name: 'no_domain', domains: 0 },
  { name: 'mock_domain', domains: 1 },
  { name: 'two_mock_domain', domains: 2 },
] as const;

/** FIXTURE_SETUP(iommufd_ioas) with `domains` mock domains; the hwpt IDs of each. */
function fixture(domains: number) {
  const w = selftestWorld();
  const ioasId = w.ioasAlloc();
  value(w.t.setTempMemoryLimit(65536));
  const mds = Array.from({ length: domains }, () => value(w.t.mockDomain(ioasId)));
  const mapFile = (dfd: number, start: bigint, length: bigint, iova?: bigint) =>
    api.ioasMapFile({ ...w.a, ioasId, file: dfd, start, length, ...(iova === undefined ? {} : { iova }) });
  const getDmabuf = (length: number): { dfd: number; buf: DmaBuf } => {
    const dfd = value(w.t.getDmabuf(length));
    const f = value(w.proc.fds.get(dfd)).file;
    if (!(f instanceof DmaBuf)) throw new Error('DMABUF_GET did not return a dma-buf fd');
    return { dfd, buf: f };
  };
  /** test_cmd_check_dmabuf() on every mock HWPT (none in the no_domain variant, as upstream). */
  const checkAll = (dfd: number, iova: bigint, length: bigint, offset: bigint): string[] =>
    mds.map((m) => errno(w.t.checkDmabuf(m.hwptId, dfd, iova, length, offset)));
  /** teardown_iommufd() and then: every buffer detached and released, its pages back in the allocator. */
  const teardown = (bufs: readonly DmaBuf[]): void => {
    w.teardown();
    for (const b of bufs) {
      expect(b.attachmentCount).toBe(0);
      expect(b.released).toBe(true);
    }
  };
  return { ...w, ioasId, mds, mapFile, getDmabuf, checkAll, teardown };
}

describe.each(VARIANTS)('iommufd_ioas ($name): dma-buf', ({ domains }) => {
  it('dmabuf_simple: EINVAL for length 0 or a range past the buffer, then the map translates to its pages', () => {
    const f = fixture(domains);
    const size = 4n * P;
    const { dfd, buf } = f.getDmabuf(Number(size));
    expect(errno(f.mapFile(dfd, 0n, 0n))).toBe('EINVAL');
    expect(errno(f.mapFile(dfd, size, size))).toBe('EINVAL');
    expect(errno(f.mapFile(dfd, 0n, size + 1n))).toBe('EINVAL');
    const iova = value(f.mapFile(dfd, 0n, size));
    expect(f.checkAll(dfd, iova, size, 0n)).toEqual(f.mds.map(() => 'ok'));
    // Not charged: dma-buf pages are the exporter's (IOPT_PAGES_ACCOUNT_NONE, no pinned_vm).
    expect(f.proc.mm.pinnedVm).toBe(0);
    expect(errno(f.proc.fds.close(dfd))).toBe('ok');
    // The area keeps the buffer: closing the fd changes nothing for the IOMMU.
    expect(buf.released).toBe(false);
    f.teardown([buf]);
  });

  it('dmabuf_multi_page: one page, 64 pages, a sub-range from the middle, two sub-ranges of one buffer', () => {
    const f = fixture(domains);
    const bufs: DmaBuf[] = [];
    const one = (pages: number, maps: readonly [bigint, bigint][]): void => {
      const { dfd, buf } = f.getDmabuf(pages * PAGE);
      bufs.push(buf);
      for (const [start, length] of maps) {
        const iova = value(f.mapFile(dfd, start, length));
        expect(f.checkAll(dfd, iova, length, start)).toEqual(f.mds.map(() => 'ok'));
        // The same IOVA against another offset of the buffer is a mismatch.
        if (pages > 1) expect(f.checkAll(dfd, iova, P, start === 0n ? P : 0n)).toEqual(f.mds.map(() => 'EINVAL'));
      }
      expect(errno(f.proc.fds.close(dfd))).toBe('ok');
    };
    one(1, [[0n, P]]);
    one(64, [[0n, 64n * P]]);
    one(16, [[4n * P, 8n * P]]);
    one(16, [[0n, 4n * P], [8n * P, 4n * P]]);
    f.teardown(bufs);
  });

  it('dmabuf_revoke: the mapping goes, a revoked buffer cannot be mapped (ENODEV), restoring it allows new maps', () => {
    const f = fixture(domains);
    const size = 4n * P;
    const { dfd, buf } = f.getDmabuf(Number(size));
    const iova = value(f.mapFile(dfd, 0n, size));
    value(f.t.revokeDmabuf(dfd, true));
    // iopt_revoke_notify() unmapped it from every domain: nothing translates there any more.
    expect(f.checkAll(dfd, iova, size, 0n)).toEqual(f.mds.map(() => 'EINVAL'));
    const hwpts = f.mds.map((m) => m.hwptId);
    if (domains > 0) {
      // A domain attached after the revoke is filled with nothing for the revoked area.
      const hwpt = value(api.hwptAlloc({ ...f.a, devId: (f.mds[0] as { idevId: number }).idevId, ptId: f.ioasId }));
      expect(errno(f.t.checkDmabuf(hwpt, dfd, iova, size, 0n))).toBe('EINVAL');
      hwpts.push(hwpt);
    }
    expect(errno(f.mapFile(dfd, 0n, size))).toBe('ENODEV');
    value(f.t.revokeDmabuf(dfd, false));
    const iova2 = value(f.mapFile(dfd, 0n, size));
    for (const h of hwpts) expect(errno(f.t.checkDmabuf(h, dfd, iova2, size, 0n))).toBe('ok');
    // The old area stays unmapped: Linux has no way to bring a revoked area back.
    for (const h of hwpts) expect(errno(f.t.checkDmabuf(h, dfd, iova, size, 0n))).toBe('EINVAL');
    // Restore the IOVA: unmap the revoked area (nothing left to unmap in the domains), map it again there.
    expect(value(api.ioasUnmap({ ...f.a, ioasId: f.ioasId, iova, length: size }))).toBe(size);
    expect(value(f.mapFile(dfd, 0n, size, iova))).toBe(iova);
    for (const h of hwpts) expect(errno(f.t.checkDmabuf(h, dfd, iova, size, 0n))).toBe('ok');
    expect(errno(f.proc.fds.close(dfd))).toBe('ok');
    f.teardown([buf]);
  });
});

describe('dma-buf areas beyond the upstream cases', () => {
  it('in-kernel accesses cannot pin or read a dma-buf area (EINVAL); a user-memory area next to it still pins', () => {
    const f = fixture(1);
    const { dfd, buf } = f.getDmabuf(2 * PAGE);
    const iova = value(f.mapFile(dfd, 0n, 2n * P));
    const access = value(f.t.createAccess(f.ioasId, MOCK_FLAGS_ACCESS_CREATE_NEEDS_PIN_PAGES));
    expect(errno(f.t.accessPages(access, iova, P, 0))).toBe('EINVAL');
    expect(errno(f.t.accessRw(access, iova, f.buffer, 16))).toBe('EINVAL');
    const uiova = f.map(f.ioasId, f.buffer, PAGE);
    expect(errno(f.t.accessPages(access, uiova, P, f.buffer))).toBe('ok');
    expect(errno(f.proc.fds.close(access))).toBe('ok');
    expect(errno(f.proc.fds.close(dfd))).toBe('ok');
    f.teardown([buf]);
  });

  it('IOAS_COPY shares the buffer; a revoke unmaps the copy too; unmapping both lets the buffer go', () => {
    const f = fixture(1);
    const ioas2 = f.ioasAlloc();
    const md2 = value(f.t.mockDomain(ioas2));
    const size = 4n * P;
    const { dfd, buf } = f.getDmabuf(Number(size));
    const iova = value(f.mapFile(dfd, 0n, size));
    const dst = value(api.ioasCopy({ ...f.a, srcIoasId: f.ioasId, dstIoasId: ioas2, srcIova: iova, length: size, readable: true, writeable: true }));
    expect(errno(f.t.checkDmabuf(md2.hwptId, dfd, dst, size, 0n))).toBe('ok');
    // IOAS_UNMAP cannot take part of an area.
    expect(errno(api.ioasUnmap({ ...f.a, ioasId: ioas2, iova: dst, length: P }))).toBe('ENOENT');
    value(f.t.revokeDmabuf(dfd, true));
    expect(errno(f.t.checkDmabuf(md2.hwptId, dfd, dst, size, 0n))).toBe('EINVAL');
    expect(errno(f.t.checkDmabuf((f.mds[0] as { hwptId: number }).hwptId, dfd, iova, size, 0n))).toBe('EINVAL');
    expect(buf.attachmentCount).toBe(1);
    value(api.ioasUnmap({ ...f.a, ioasId: f.ioasId, iova, length: size }));
    expect(buf.attachmentCount).toBe(1); // the copy still holds the pages
    value(api.ioasUnmap({ ...f.a, ioasId: ioas2, iova: dst, length: size }));
    expect(buf.attachmentCount).toBe(0);
    expect(buf.released).toBe(false); // the fd is still open
    expect(errno(f.proc.fds.close(dfd))).toBe('ok');
    expect(buf.released).toBe(true);
    f.teardown([buf]);
  });

  it('the pages are freed exactly when the last of the fd and the areas goes, with or without a revoke', () => {
    for (const revoke of [false, true]) {
      const f = fixture(2);
      const frames = f.k.frames;
      const before = frames.allocated;
      const { dfd, buf } = f.getDmabuf(8 * PAGE);
      expect(frames.allocated).toBe(before + 8);
      const iova = value(f.mapFile(dfd, 0n, 8n * P));
      if (revoke) value(f.t.revokeDmabuf(dfd, true));
      expect(errno(f.proc.fds.close(dfd))).toBe('ok');
      expect(frames.allocated).toBe(before + 8);
      // Removing a domain (destroying the mock device) unfills the area from it, tracked or revoked.
      value(api.destroy({ ...f.a, id: (f.mds[1] as { stdevId: number }).stdevId }));
      expect(frames.allocated).toBe(before + 8);
      value(api.ioasUnmap({ ...f.a, ioasId: f.ioasId, iova, length: 8n * P }));
      expect(frames.allocated).toBe(before);
      expect(buf.released).toBe(true);
      f.teardown([buf]);
    }
  });

  it('the storage is IOPT_ADDRESS_DMABUF in mode NONE, even without CAP_IPC_LOCK and with RLIMIT_MEMLOCK 0; CHANGE_PROCESS refuses it', () => {
    const f = fixture(1);
    const user = f.k.processes.spawn({ uid: 0, caps: [], rlimits: { RLIMIT_MEMLOCK: { soft: 0, hard: 0 } } });
    expect(user.capable('CAP_IPC_LOCK')).toBe(false);
    const ufd = value(f.k.devfs.open(user, '/dev/iommu'));
    const ut = new SelftestApi(user, ufd);
    const ua = { proc: user, fd: ufd };
    const ioasId = value(api.ioasAlloc(ua));
    value(ut.mockDomain(ioasId));
    const dfd = value(ut.getDmabuf(2 * PAGE));
    value(api.ioasMapFile({ ...ua, ioasId, file: dfd, start: 0, length: 2 * PAGE }));
    const ctx = value(user.fds.get(ufd)).file;
    if (!(ctx instanceof IommufdCtx)) throw new Error('not an iommufd');
    const pages = value(ctx.objects.get<Ioas>(ioasId, 'ioas')).pagesList();
    expect(pages.map((p) => [p.kind, p.accountMode, p.pinnedPages])).toEqual([['dmabuf', 'none', 0]]);
    expect(user.mm.pinnedVm).toBe(0);
    // iommufd_ioas_change_process(): only IOPT_ADDRESS_FILE storage can move.
    expect(errno(IoptPages.changeProcess(pages, f.proc))).toBe('EINVAL');
    value(user.fds.close(dfd));
    value(user.fds.close(ufd));
    f.teardown([]);
  });

  it('iopt_area_split() refuses a dma-buf area (EOPNOTSUPP), which VFIO type1 partial unmaps rely on', () => {
    const f = fixture(0);
    const { dfd, buf } = f.getDmabuf(4 * PAGE);
    const iova = value(f.mapFile(dfd, 0n, 4n * P));
    const ctx = value(f.proc.fds.get(f.fd)).file;
    if (!(ctx instanceof IommufdCtx)) throw new Error('not an iommufd');
    const iopt = value(ctx.objects.get<Ioas>(f.ioasId, 'ioas')).iopt;
    expect(errno(iopt.cutIova([iova + P - 1n]))).toBe('EOPNOTSUPP');
    expect(iopt.areaCount).toBe(1);
    expect(errno(f.proc.fds.close(dfd))).toBe('ok');
    f.teardown([buf]);
  });

  it('a dma-buf of another exporter maps through the same path; only the selftest one can be revoked by the op', () => {
    const f = fixture(1);
    const frames = f.proc.mm.frames;
    const exp = MockDmaBufExporter.export(frames, 2 * PAGE, 0);
    const mine = value(exp);
    const dfd = value(f.proc.fds.install(mine));
    const iova = value(f.mapFile(dfd, P, P));
    expect(errno(f.t.checkDmabuf((f.mds[0] as { hwptId: number }).hwptId, dfd, iova, P, P))).toBe('ok');
    expect(errno(f.proc.fds.close(dfd))).toBe('ok');
    f.teardown([mine]);
  });

  it('MAP_FILE start/length rules on a dma-buf: EBADF for a closed fd, EOVERFLOW past ULONG_MAX, EINVAL past the end', () => {
    const f = fixture(1);
    const { dfd, buf } = f.getDmabuf(2 * PAGE);
    expect(errno(f.mapFile(999, 0n, P))).toBe('EBADF');
    expect(errno(f.mapFile(dfd, 0n, (1n << 64n) - 1n))).toBe('EOVERFLOW');
    expect(errno(f.mapFile(dfd, (1n << 63n), P))).toBe('EINVAL');
    expect(errno(f.mapFile(dfd, 2n * P - 1n, 2n))).toBe('EINVAL');
    // A sub-page start keeps its offset in the IOVA (the mock domain maps 2 KiB pages).
    const iova = value(f.mapFile(dfd, 2048n, 2048n));
    expect(iova % P).toBe(2048n);
    expect(errno(f.t.checkDmabuf((f.mds[0] as { hwptId: number }).hwptId, dfd, iova, 2048n, 2048n))).toBe('ok');
    expect(iova >= BigInt(MOCK_APERTURE_START)).toBe(true);
    expect(errno(f.proc.fds.close(dfd))).toBe('ok');
    f.teardown([buf]);
  });
});
