// The upstream selftest's iommufd_dirty_tracking fixture, replayed through the byte-level dispatch:
// enforce_dirty, set_dirty_tracking, get_dirty_bitmap and get_dirty_bitmap_no_clear, each over mock
// domains with 2 KiB pages at several buffer sizes (8 KiB .. 128 MiB, 640 KiB being the one whose bitmap is
// not a whole number of u64 words) and the HUGE pagetable type (1 MiB leaves). Bits are set with
// IOMMU_TEST_OP_DIRTY and read with IOMMU_HWPT_GET_DIRTY_BITMAP into an aligned, a page-unaligned and a
// u64-unaligned bitmap, as test_mock_dirty_bitmaps() does. Each flow ends with teardown_iommufd().
//
// The huge variants use MAP_HUGETLB in C; ioasis has no hugetlbfs, so their buffer is a 2 MiB-aligned
// private anonymous mapping backed by transparent huge pages (physically contiguous 2 MiB folios), which is
// what lets the HUGE mock domain map 1 MiB leaves.

import { describe, expect, it } from 'vitest';
import {
  IOMMU_HWPT_DATA_SELFTEST, MOCK_FLAGS_DEVICE_NO_DIRTY, MOCK_HUGE_PAGE_SIZE, MOCK_IOMMUPT_DEFAULT, MOCK_IOMMUPT_HUGE, MOCK_PAGE_SIZE,
} from '../../../src/kernel/iommufd/selftest/constants.ts';
import { MAP_ANONYMOUS, MAP_FIXED, MAP_PRIVATE, MAP_SHARED, PROT_READ, PROT_WRITE } from '../../../src/kernel/mm/mman.ts';
import {
  IOMMU_HWPT_ALLOC_DIRTY_TRACKING, IOMMU_HWPT_DIRTY_TRACKING_ENABLE, IOMMU_HWPT_GET_DIRTY_BITMAP_NO_CLEAR, IOMMU_OPTION_HUGE_PAGES,
  IOMMU_OPTION_OP_SET,
} from '../../../src/uapi/iommufd-consts.ts';
import type { IommufdCtx } from '../../../src/kernel/iommufd/context.ts';
import type { HwptPaging } from '../../../src/kernel/iommufd/hw-pagetable.ts';
import { SelftestApi } from '../../../src/uapi/selftest-api.ts';
import { makeCaller } from '../../uapi/dispatch-helpers.ts';
import { errno, PAGE, selftestWorld, value } from './selftest-helpers.ts';

const MOCK_APERTURE_START = 2n ** 24n;
const MiB = 2 ** 20;
const HUGEPAGE_SIZE = 2 * MiB;

interface Variant { readonly name: string; readonly bufferSize: number; readonly hugepages: boolean }
/** FIXTURE_VARIANT(iommufd_dirty_tracking): the sizes upstream runs, up to 128 MiB. */
const VARIANTS: readonly Variant[] = [
  { name: 'domain_dirty8k', bufferSize: 8 * 1024, hugepages: false },
  { name: 'domain_dirty128k', bufferSize: 128 * 1024, hugepages: false },
  { name: 'domain_dirty256k', bufferSize: 256 * 1024, hugepages: false },
  { name: 'domain_dirty640k', bufferSize: 640 * 1024, hugepages: false },
  { name: 'domain_dirty128M', bufferSize: 128 * MiB, hugepages: false },
  { name: 'domain_dirty128M_huge', bufferSize: 128 * MiB, hugepages: true },
];

/** FIXTURE_SETUP(iommufd_dirty_tracking). */
function dirtyFixture(v: Variant) {
  const w = selftestWorld();
  const scratch = value(w.proc.mmap(0, PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  const c = makeCaller(w.proc, w.fd, scratch);
  const mapSize = v.hugepages ? Math.ceil(v.bufferSize / HUGEPAGE_SIZE) * HUGEPAGE_SIZE : v.bufferSize;
  // posix_memalign(HUGEPAGE_SIZE) then mmap(MAP_FIXED) over it: a hugepage-aligned address.
  const hole = value(w.proc.mmap(0, mapSize + HUGEPAGE_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  const buffer = Math.ceil(hole / HUGEPAGE_SIZE) * HUGEPAGE_SIZE;
  value(w.proc.mmap(buffer, mapSize, PROT_READ | PROT_WRITE, (v.hugepages ? MAP_PRIVATE : MAP_SHARED) | MAP_ANONYMOUS | MAP_FIXED, -1, 0));
  // MAP_POPULATE for the huge variant; the others are touched by the pin.
  if (v.hugepages) value(w.proc.mm.write(buffer, new Uint8Array(mapSize).fill(1)));
  const bits = Math.ceil(v.bufferSize / MOCK_PAGE_SIZE);
  const bitmapSize = Math.ceil(bits / 8);
  // Room for the unaligned placements (+MOCK_PAGE_SIZE, +0xff1) after the bitmap.
  const bitmap = value(w.proc.mmap(0, bitmapSize + 2 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  const ioasId = w.ioasAlloc();
  if (!v.hugepages) {
    expect(c.call('IOMMU_OPTION', { option_id: IOMMU_OPTION_HUGE_PAGES, op: IOMMU_OPTION_OP_SET, object_id: ioasId, val64: 0n }).e).toBe('ok');
  }
  const md = value(w.t.mockDomain(ioasId));
  const hwptAlloc = (devId: number, flags: number, pagetable?: number) => {
    const data = pagetable === undefined ? null : new Uint8Array([0, 0, 0, 0, pagetable, 0, 0, 0]);
    if (data !== null) value(w.proc.mm.write(bitmap + bitmapSize + PAGE, data));
    const r = c.call('IOMMU_HWPT_ALLOC', {
      dev_id: devId, pt_id: ioasId, flags,
      data_type: data === null ? 0 : IOMMU_HWPT_DATA_SELFTEST, data_len: data?.length ?? 0, data_uptr: data === null ? 0n : BigInt(bitmap + bitmapSize + PAGE),
    });
    return { e: r.e, id: Number((r.out as Record<string, number>).out_hwpt_id) };
  };
  const setTracking = (hwptId: number, on: boolean) =>
    c.call('IOMMU_HWPT_SET_DIRTY_TRACKING', { hwpt_id: hwptId, flags: on ? IOMMU_HWPT_DIRTY_TRACKING_ENABLE : 0 }).e;
  const destroy = (id: number) => c.call('IOMMU_DESTROY', { id }).e;
  return { w, c, v, buffer, mapSize, bitmap, bitmapSize, bits, ioasId, md, hwptAlloc, setTracking, destroy };
}
type DirtyFixture = ReturnType<typeof dirtyFixture>;

const testBit = (b: Uint8Array, i: number): boolean => ((b[i >>> 3] as number) & (1 << (i & 7))) !== 0;

/**
 * test_mock_dirty_bitmaps(): mark the first granule of every other PTE dirty with IOMMU_TEST_OP_DIRTY,
 * read the bitmap (whole PTEs dirty, the others clean), read again (clean, or the same with NO_CLEAR).
 */
function mockDirtyBitmaps(f: DirtyFixture, hwptId: number, at: number, pteSize: number, flags: number): void {
  const { w, c, v, bits, bitmapSize } = f;
  const npte = pteSize / MOCK_PAGE_SIZE;
  const pteset = 2 * npte;
  const nbits = bitmapSize * 8;
  const set = new Uint8Array(bitmapSize);
  let expected = 0;
  for (let i = 0; i < nbits; i += pteset) {
    set[i >>> 3] = (set[i >>> 3] as number) | (1 << (i & 7));
    if (i < bits) expected++;
  }
  value(w.proc.mm.write(at, set));
  expect(value(w.t.dirty(hwptId, MOCK_APERTURE_START, BigInt(v.bufferSize), BigInt(MOCK_PAGE_SIZE), at))).toBe(expected);
  const get = (): Uint8Array => {
    value(w.proc.mm.write(at, new Uint8Array(bitmapSize)));
    const r = c.call('IOMMU_HWPT_GET_DIRTY_BITMAP', {
      hwpt_id: hwptId, flags, iova: MOCK_APERTURE_START, length: BigInt(v.bufferSize), page_size: BigInt(MOCK_PAGE_SIZE), data: BigInt(at),
    });
    expect(r.e).toBe('ok');
    const b = new Uint8Array(bitmapSize);
    value(w.proc.mm.read(at, b));
    return b;
  };
  const first = get();
  for (let i = 0; i < bits; i++) expect(testBit(first, i), `bit ${i}`).toBe(i % pteset < npte);
  const second = get();
  const noClear = (flags & IOMMU_HWPT_GET_DIRTY_BITMAP_NO_CLEAR) !== 0;
  for (let i = 0; i < bits; i++) expect(testBit(second, i), `bit ${i} again`).toBe(noClear && i % pteset < npte);
}

/** get_dirty_bitmap / get_dirty_bitmap_no_clear: the three bitmap placements. */
function getDirtyBitmapFlow(v: Variant, flags: number): void {
  const f = dirtyFixture(v);
  const pteSize = v.hugepages ? MOCK_HUGE_PAGE_SIZE : MOCK_PAGE_SIZE;
  expect(f.c.call('IOMMU_IOAS_MAP', {
    ioas_id: f.ioasId, flags: 1 | 2 | 4, user_va: BigInt(f.buffer), length: BigInt(v.bufferSize), iova: MOCK_APERTURE_START,
  }).e).toBe('ok');
  const hwpt = f.hwptAlloc(f.md.idevId, IOMMU_HWPT_ALLOC_DIRTY_TRACKING, v.hugepages ? MOCK_IOMMUPT_HUGE : MOCK_IOMMUPT_DEFAULT);
  expect(hwpt.e).toBe('ok');
  expect(f.setTracking(hwpt.id, true)).toBe('ok');
  mockDirtyBitmaps(f, hwpt.id, f.bitmap, pteSize, flags);
  mockDirtyBitmaps(f, hwpt.id, f.bitmap + MOCK_PAGE_SIZE, pteSize, flags); // PAGE_SIZE unaligned
  mockDirtyBitmaps(f, hwpt.id, f.bitmap + 0xff1, pteSize, flags); // u64 unaligned
  expect(f.destroy(hwpt.id)).toBe('ok');
  f.w.teardown();
  // Nothing of the fixture's own buffer stays pinned either (MD_CHECK_REFS skips huge folios, as Linux does).
  const fd2 = value(f.w.k.devfs.open(f.w.proc, '/dev/iommu'));
  expect(errno(new SelftestApi(f.w.proc, fd2).checkRefs(f.buffer, f.mapSize, 0))).toBe('ok');
  value(f.w.proc.fds.close(fd2));
}

describe('iommufd_dirty_tracking', () => {
  it('enforce_dirty: a NO_DIRTY device cannot join a dirty-tracking HWPT (EINVAL) nor allocate one (EOPNOTSUPP)', () => {
    const f = dirtyFixture(VARIANTS[1] as Variant);
    const hwpt = f.hwptAlloc(f.md.idevId, IOMMU_HWPT_ALLOC_DIRTY_TRACKING);
    expect(hwpt.e).toBe('ok');
    const ok = value(f.w.t.mockDomain(hwpt.id));
    expect(errno(f.w.t.mockDomain(hwpt.id, MOCK_FLAGS_DEVICE_NO_DIRTY))).toBe('EINVAL');
    expect(f.destroy(ok.stdevId)).toBe('ok');
    expect(f.destroy(hwpt.id)).toBe('ok');
    const ioas2 = f.w.ioasAlloc();
    const nd = value(f.w.t.mockDomain(ioas2, MOCK_FLAGS_DEVICE_NO_DIRTY));
    const c = f.c.call('IOMMU_HWPT_ALLOC', { dev_id: nd.idevId, pt_id: ioas2, flags: IOMMU_HWPT_ALLOC_DIRTY_TRACKING });
    expect(c.e).toBe('EOPNOTSUPP');
    expect(f.destroy(nd.stdevId)).toBe('ok');
    f.w.teardown();
  });

  it('set_dirty_tracking: on and off on an attached dirty-tracking HWPT; a HWPT without DIRTY_TRACKING refuses (EOPNOTSUPP)', () => {
    const f = dirtyFixture(VARIANTS[1] as Variant);
    const hwpt = f.hwptAlloc(f.md.idevId, IOMMU_HWPT_ALLOC_DIRTY_TRACKING);
    const dev = value(f.w.t.mockDomain(hwpt.id));
    expect(f.setTracking(hwpt.id, true)).toBe('ok');
    expect(f.setTracking(hwpt.id, false)).toBe('ok');
    const plain = f.hwptAlloc(f.md.idevId, 0);
    expect(f.setTracking(plain.id, true)).toBe('EOPNOTSUPP');
    expect(f.destroy(plain.id)).toBe('ok');
    expect(f.destroy(dev.stdevId)).toBe('ok');
    expect(f.destroy(hwpt.id)).toBe('ok');
    f.w.teardown();
  });

  it('test_cmd_hwpt_alloc_iommupt through the dispatch: SELFTEST paging data reaches the mock (type, length and pagetable_type rules)', () => {
    const f = dirtyFixture(VARIANTS[0] as Variant);
    const at = f.bitmap + f.bitmapSize + PAGE;
    const alloc = (type: number, len: number, pagetable: number) => {
      value(f.w.proc.mm.write(at, new Uint8Array([0xef, 0xbe, 0xad, 0x0b, pagetable, 0, 0, 0, 0, 0, 0, 0])));
      const r = f.c.call('IOMMU_HWPT_ALLOC', { dev_id: f.md.idevId, pt_id: f.ioasId, data_type: type, data_len: len, data_uptr: BigInt(at) });
      return { e: r.e, id: Number((r.out as Record<string, number>).out_hwpt_id) };
    };
    expect(alloc(IOMMU_HWPT_DATA_SELFTEST + 1, 8, MOCK_IOMMUPT_DEFAULT).e).toBe('EOPNOTSUPP');
    expect(alloc(IOMMU_HWPT_DATA_SELFTEST, 3, MOCK_IOMMUPT_DEFAULT).e).toBe('EINVAL');
    expect(alloc(IOMMU_HWPT_DATA_SELFTEST, 12, MOCK_IOMMUPT_DEFAULT).e).toBe('EINVAL');
    expect(alloc(IOMMU_HWPT_DATA_SELFTEST, 8, 7).e).toBe('EOPNOTSUPP');
    // Only the iotlb field (the struct's first version): pagetable_type reads as 0, DEFAULT.
    const short = alloc(IOMMU_HWPT_DATA_SELFTEST, 4, MOCK_IOMMUPT_HUGE);
    expect(short.e).toBe('ok');
    const huge = alloc(IOMMU_HWPT_DATA_SELFTEST, 8, MOCK_IOMMUPT_HUGE);
    expect(huge.e).toBe('ok');
    const ctx = value(f.w.proc.fds.get(f.w.fd)).file as IommufdCtx;
    const leaves = (id: number) => value(ctx.objects.get<HwptPaging>(id, 'hwpt_paging')).domain.pgsizeBitmap;
    expect(leaves(short.id)).toBe(MOCK_PAGE_SIZE);
    expect(leaves(huge.id)).toBe(MOCK_PAGE_SIZE | MOCK_HUGE_PAGE_SIZE);
    expect(f.destroy(short.id)).toBe('ok');
    expect(f.destroy(huge.id)).toBe('ok');
    f.w.teardown();
  });

  for (const v of VARIANTS) {
    it(`get_dirty_bitmap (${v.name})`, () => { getDirtyBitmapFlow(v, 0); }, 120_000);
    it(`get_dirty_bitmap_no_clear (${v.name})`, () => { getDirtyBitmapFlow(v, IOMMU_HWPT_GET_DIRTY_BITMAP_NO_CLEAR); }, 120_000);
  }
});
