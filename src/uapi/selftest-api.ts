// A typed API over IOMMU_TEST_CMD for tests and tools: each method lays struct iommu_test_cmd out in the
// process's memory as the selftest's C utilities do (iommufd_utils.h), issues ioctl() through the byte-level
// dispatch(), and decodes what the kernel wrote back. One object per (process, iommufd); it keeps one
// scratch page of its own.

import { fail, ok, type Result } from '../kernel/errno.ts';
import { MAP_ANONYMOUS, MAP_PRIVATE, PROT_READ, PROT_WRITE } from '../kernel/mm/mman.ts';
import type { Process } from '../kernel/process/process.ts';
import { dispatch } from './dispatch.ts';
import { IOMMU_TEST_CMD } from './ioctl.ts';
import * as T from './iommufd-test-structs.ts';

const PAGE = 4096;

export interface MockDomainIds { readonly stdevId: number; readonly hwptId: number; readonly idevId: number }

export class SelftestApi {
  private base = -1;

  constructor(readonly proc: Process, readonly fd: number) {}

  /**
   * One IOMMU_TEST_CMD: `fields` go into the op's union member. Returns the ioctl's value and the member
   * as the kernel left it.
   */
  raw(op: number, id: number, fields: Readonly<Record<string, number | bigint>> = {}, opts: { size?: number } = {}): Result<{ ret: number; out: Record<string, number | bigint> }> {
    if (this.base < 0) {
      const m = this.proc.mmap(0, PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
      if (!m.ok) return m;
      this.base = m.value;
    }
    const S = T.iommu_test_cmd;
    const b = S.encode({ size: opts.size ?? S.sizeof, op, id });
    const member = T.TEST_OP_MEMBERS[op];
    if (member !== undefined) b.set(member.encode(fields), T.TEST_CMD_UNION_OFFSET);
    const w = this.proc.mm.write(this.base, b);
    if (!w.ok) return w;
    const r = dispatch(this.proc, this.fd, IOMMU_TEST_CMD, this.base);
    if (!r.ok) return r;
    const back = new Uint8Array(S.sizeof);
    const rd = this.proc.mm.read(this.base, back);
    if (!rd.ok) return rd;
    const out = member === undefined ? {} : (member.decode(back.subarray(T.TEST_CMD_UNION_OFFSET)) as Record<string, number | bigint>);
    return ok({ ret: r.value, out });
  }

  private num(r: Result<{ out: Record<string, number | bigint> }>, field: string): Result<number> {
    if (!r.ok) return r;
    const v = r.value.out[field];
    return v === undefined ? fail('EINVAL', `no field ${field}`) : ok(Number(v));
  }

  private none(r: Result<unknown>): Result {
    return r.ok ? ok() : r;
  }

  /** MOCK_DOMAIN / MOCK_DOMAIN_FLAGS on IOAS or HWPT `ptId`. */
  mockDomain(ptId: number, devFlags?: number): Result<MockDomainIds> {
    const r = devFlags === undefined
      ? this.raw(T.IOMMU_TEST_OP_MOCK_DOMAIN, ptId)
      : this.raw(T.IOMMU_TEST_OP_MOCK_DOMAIN_FLAGS, ptId, { dev_flags: devFlags });
    if (!r.ok) return r;
    const o = r.value.out;
    return ok({ stdevId: Number(o.out_stdev_id), hwptId: Number(o.out_hwpt_id), idevId: Number(o.out_idev_id) });
  }

  mockDomainReplace(stdevId: number, ptId: number): Result<number> {
    return this.num(this.raw(T.IOMMU_TEST_OP_MOCK_DOMAIN_REPLACE, stdevId, { pt_id: ptId }), 'pt_id');
  }

  addReserved(ioasId: number, start: bigint, length: bigint): Result {
    return this.none(this.raw(T.IOMMU_TEST_OP_ADD_RESERVED, ioasId, { start, length }));
  }

  checkMap(hwptId: number, iova: bigint, length: bigint, uptr: number): Result {
    return this.none(this.raw(T.IOMMU_TEST_OP_MD_CHECK_MAP, hwptId, { iova, length, uptr: BigInt(uptr) }));
  }

  checkRefs(uptr: number, length: number, refs: number): Result {
    return this.none(this.raw(T.IOMMU_TEST_OP_MD_CHECK_REFS, 0, { length: BigInt(length), uptr: BigInt(uptr), refs }));
  }

  /** CREATE_ACCESS on IOAS `ioasId`: the access fd. */
  createAccess(ioasId: number, flags = 0): Result<number> {
    return this.num(this.raw(T.IOMMU_TEST_OP_CREATE_ACCESS, ioasId, { flags }), 'out_access_fd');
  }

  /** ACCESS_PAGES: the item ID. */
  accessPages(accessFd: number, iova: bigint, length: bigint, uptr: number, flags = 0): Result<number> {
    return this.num(this.raw(T.IOMMU_TEST_OP_ACCESS_PAGES, accessFd, { flags, iova, length, uptr: BigInt(uptr) }), 'out_access_pages_id');
  }

  destroyAccessPages(accessFd: number, itemId: number): Result {
    return this.none(this.raw(T.IOMMU_TEST_OP_DESTROY_ACCESS_PAGES, accessFd, { access_pages_id: itemId }));
  }

  accessRw(accessFd: number, iova: bigint, uptr: number, length: number, flags = 0): Result {
    return this.none(this.raw(T.IOMMU_TEST_OP_ACCESS_RW, accessFd, { iova, length: BigInt(length), uptr: BigInt(uptr), flags }));
  }

  accessReplaceIoas(accessFd: number, ioasId: number): Result {
    return this.none(this.raw(T.IOMMU_TEST_OP_ACCESS_REPLACE_IOAS, accessFd, { ioas_id: ioasId }));
  }

  setTempMemoryLimit(limit: number): Result {
    return this.none(this.raw(T.IOMMU_TEST_OP_SET_TEMP_MEMORY_LIMIT, 0, { limit }));
  }

  /** DIRTY: out_nr_dirty. */
  dirty(hwptId: number, iova: bigint, length: bigint, pageSize: bigint, bitmapUptr: number): Result<number> {
    return this.num(this.raw(T.IOMMU_TEST_OP_DIRTY, hwptId, { flags: 0, iova, length, page_size: pageSize, uptr: BigInt(bitmapUptr) }), 'out_nr_dirty');
  }

  triggerIopf(devId: number, o: { pasid?: number; grpid?: number; perm?: number; addr?: bigint } = {}): Result {
    return this.none(this.raw(T.IOMMU_TEST_OP_TRIGGER_IOPF, 0, {
      dev_id: devId, pasid: o.pasid ?? 1, grpid: o.grpid ?? 2, perm: o.perm ?? 3, addr: o.addr ?? 0xdeadbeafn,
    }));
  }

  pasidAttach(stdevId: number, pasid: number, ptId: number): Result<number> {
    return this.num(this.raw(T.IOMMU_TEST_OP_PASID_ATTACH, stdevId, { pasid, pt_id: ptId }), 'pt_id');
  }

  pasidReplace(stdevId: number, pasid: number, ptId: number): Result<number> {
    return this.num(this.raw(T.IOMMU_TEST_OP_PASID_REPLACE, stdevId, { pasid, pt_id: ptId }), 'pt_id');
  }

  pasidDetach(stdevId: number, pasid: number): Result {
    return this.none(this.raw(T.IOMMU_TEST_OP_PASID_DETACH, stdevId, { pasid }));
  }

  /** PASID_CHECK_HWPT: ok when `hwptId` (0: nothing) is what is attached at `pasid`. */
  pasidCheckHwpt(stdevId: number, pasid: number, hwptId: number): Result {
    return this.none(this.raw(T.IOMMU_TEST_OP_PASID_CHECK_HWPT, stdevId, { pasid, hwpt_id: hwptId }));
  }

  /** DMABUF_GET: the new dma-buf fd, which the kernel returns as the ioctl's value. */
  getDmabuf(length: number, openFlags = 0): Result<number> {
    const r = this.raw(T.IOMMU_TEST_OP_DMABUF_GET, 0, { length, open_flags: openFlags });
    return r.ok ? ok(r.value.ret) : r;
  }

  /** DMABUF_REVOKE: revoke (or restore) a test dma-buf; the importers' mappings are invalidated. */
  revokeDmabuf(dmabufFd: number, revoked: boolean): Result {
    return this.none(this.raw(T.IOMMU_TEST_OP_DMABUF_REVOKE, 0, { dmabuf_fd: dmabufFd, revoked: revoked ? 1 : 0 }));
  }

  /** MD_CHECK_DMABUF: [iova, iova + length) of mock HWPT `hwptId` translates to the dma-buf at `offset`. */
  checkDmabuf(hwptId: number, dmabufFd: number, iova: bigint, length: bigint, offset: bigint): Result {
    return this.none(this.raw(T.IOMMU_TEST_OP_MD_CHECK_DMABUF, hwptId, { dmabuf_fd: dmabufFd, iova, length, offset }));
  }
}
