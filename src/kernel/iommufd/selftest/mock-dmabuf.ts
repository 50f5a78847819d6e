// The selftest's dma-buf exporter (selftest.c struct iommufd_test_dma_buf and iommufd_test_dmabuf_ops):
// zeroed kernel pages, one alloc_page() each, exported as a dma-buf that an iommufd importer maps by
// physical address. DMABUF_REVOKE flips `revoked` and invalidates the importers' mappings; while revoked,
// mapping the buffer again is ENODEV. The pages go back to the allocator when the file's last reference
// does.

import { PAGE_SIZE } from '../../../hw/memory/physical-memory.ts';
import { fail, ok, type Result } from '../../errno.ts';
import { DmaBuf, type DmaBufExporter } from '../../dma-buf/dma-buf.ts';
import { NO_FRAME, type FrameAllocator } from '../../mm/frame-allocator.ts';

/** DMABUF_GET refuses buffers above 512 pages. */
export const MOCK_DMABUF_MAX_PAGES = 512;

export class MockDmaBufExporter implements DmaBufExporter {
  revoked = false;
  private freed = false;

  private constructor(private readonly frames: FrameAllocator, private readonly pages: Uint32Array) {}

  /**
   * iommufd_test_dmabuf_get() up to dma_buf_export(): EINVAL for a length of 0, not a page multiple or
   * above 512 pages; ENOMEM when a page cannot be had (the ones taken are given back).
   */
  static export(frames: FrameAllocator, length: number, flags: number): Result<DmaBuf> {
    if (length === 0 || length % PAGE_SIZE !== 0 || length > MOCK_DMABUF_MAX_PAGES * PAGE_SIZE) {
      return fail('EINVAL', `a test dma-buf is 1..${MOCK_DMABUF_MAX_PAGES} whole pages, not ${length} bytes`);
    }
    const pages = new Uint32Array(length / PAGE_SIZE);
    for (let i = 0; i < pages.length; i++) {
      const pfn = frames.alloc();
      if (pfn === NO_FRAME) {
        for (let j = 0; j < i; j++) frames.put(pages[j] as number);
        return fail('ENOMEM', `no free frame for page ${i} of a test dma-buf`);
      }
      pages[i] = pfn;
    }
    return ok(new DmaBuf(new MockDmaBufExporter(frames, pages), length, flags));
  }

  get npages(): number { return this.pages.length; }

  /** page_to_phys(priv->pages[i]). */
  pageToPhys(i: number): number { return (this.pages[i] as number) * PAGE_SIZE; }

  /** The map_phys op: one entry per page; ENODEV while revoked. */
  mapPhys(): Result<Uint32Array> {
    if (this.revoked) return fail('ENODEV', 'the test dma-buf is revoked');
    return ok(this.pages.slice());
  }

  /** iommufd_test_dma_buf_release(): __free_page() each page. */
  release(): void {
    if (this.freed) return;
    this.freed = true;
    for (const pfn of this.pages) this.frames.put(pfn);
  }
}
