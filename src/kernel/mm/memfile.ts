// A shmem file: what memfd_create() returns and what backs MAP_SHARED|MAP_ANONYMOUS (shmem_zero_setup()).
// Its data lives in its own page cache (page index -> frame), filled on demand; every process that maps it
// shares those frames. The cache holds one reference per frame; mappings and pins take their own.

import { PAGE_SIZE } from '../../hw/memory/physical-memory.ts';
import { fail, ok, type Result } from '../errno.ts';
import type { KernelFile } from '../process/file.ts';
import { NO_FRAME, type FrameAllocator } from './frame-allocator.ts';

/** MAX_LFS_FILESIZE kept to what a double holds exactly. */
export const MAX_FILE_SIZE = Number.MAX_SAFE_INTEGER - (Number.MAX_SAFE_INTEGER % PAGE_SIZE);

/** A mapping of the file (an entry of Linux's address_space->i_mmap), told when pages must be zapped. */
export interface FileMapping {
  /** unmap_mapping_range(..., even_cows = 1): drop the mapping's pages for file pages >= pgoff. */
  zapFrom(pgoff: number): void;
}

export class MemFile implements KernelFile {
  readonly kind = 'memfd';
  readonly name: string;
  private bytes = 0;
  private readonly cache = new Map<number, number>();
  private readonly mappings = new Set<FileMapping>();
  private dead = false;

  constructor(readonly frames: FrameAllocator, name = 'memfd:', size = 0) {
    this.name = name;
    this.bytes = size;
  }

  /** i_size in bytes. */
  get size(): number { return this.bytes; }
  /** Pages inside the file (a partial last page counts): access to page >= this is SIGBUS. */
  get pageCount(): number { return Math.ceil(this.bytes / PAGE_SIZE); }
  /** Frames in the page cache. */
  get cachedPages(): number { return this.cache.size; }
  get released(): boolean { return this.dead; }

  /** The frame caching page `pgoff`, or NO_FRAME for a hole. Never allocates. */
  findPage(pgoff: number): number { return this.cache.get(pgoff) ?? NO_FRAME; }

  /**
   * shmem_get_folio(SGP_CACHE): the frame for page `pgoff`, allocating a zeroed one into the cache for a
   * hole. The caller has checked that the page is inside the file. The cache's reference is not the
   * caller's: take one with frames.get() to keep the frame.
   */
  getPage(pgoff: number): Result<number> {
    if (this.dead) throw new Error(`${this.name}: page cache used after release`);
    const cached = this.cache.get(pgoff);
    if (cached !== undefined) return ok(cached);
    const pfn = this.frames.alloc();
    if (pfn === NO_FRAME) return fail('ENOMEM', `${this.name}: no free frame for page ${pgoff}`);
    this.cache.set(pgoff, pfn);
    return ok(pfn);
  }

  /**
   * ftruncate(): set i_size. Shrinking drops the cached pages past the end (pinned frames live on with their
   * pins), zeroes the tail of a partial last page, and zaps the pages every mapping has there, private
   * copies included (truncate_pagecache()). Growing adds a hole that reads as zeros.
   */
  ftruncate(size: number): Result {
    if (!Number.isSafeInteger(size) || size < 0) return fail('EINVAL', `ftruncate to ${size}`);
    if (size > MAX_FILE_SIZE) return fail('EFBIG', `ftruncate to ${size} is beyond the largest file size`);
    const old = this.bytes;
    this.bytes = size;
    if (size >= old) return ok();
    const keep = Math.ceil(size / PAGE_SIZE);
    for (const m of this.mappings) m.zapFrom(keep);
    for (const [pgoff, pfn] of [...this.cache]) {
      if (pgoff < keep) continue;
      this.cache.delete(pgoff);
      this.frames.put(pfn);
    }
    const tail = size % PAGE_SIZE;
    const last = this.cache.get(keep - 1);
    if (tail !== 0 && last !== undefined) {
      this.frames.memory.write(last * PAGE_SIZE + tail, new Uint8Array(PAGE_SIZE - tail));
    }
    return ok();
  }

  /** pread(): bytes copied (short at end of file). Holes read as zeros without allocating. */
  pread(offset: number, dest: Uint8Array): Result<number> {
    if (!Number.isSafeInteger(offset) || offset < 0) return fail('EINVAL', `pread at ${offset}`);
    const n = Math.max(0, Math.min(dest.length, this.bytes - offset));
    let done = 0;
    while (done < n) {
      const at = offset + done;
      const off = at % PAGE_SIZE;
      const len = Math.min(PAGE_SIZE - off, n - done);
      const pfn = this.findPage(Math.floor(at / PAGE_SIZE));
      const chunk = dest.subarray(done, done + len);
      if (pfn === NO_FRAME) chunk.fill(0);
      else this.frames.memory.read(pfn * PAGE_SIZE + off, chunk);
      done += len;
    }
    return ok(n);
  }

  /** pwrite(): writes all of `src`, extending the file. ENOMEM when a page cannot be allocated. */
  pwrite(offset: number, src: Uint8Array): Result<number> {
    if (!Number.isSafeInteger(offset) || offset < 0) return fail('EINVAL', `pwrite at ${offset}`);
    if (offset + src.length > MAX_FILE_SIZE) return fail('EFBIG', `pwrite past the largest file size`);
    let done = 0;
    while (done < src.length) {
      const at = offset + done;
      const off = at % PAGE_SIZE;
      const len = Math.min(PAGE_SIZE - off, src.length - done);
      const page = this.getPage(Math.floor(at / PAGE_SIZE));
      if (!page.ok) return page;
      this.frames.memory.write(page.value * PAGE_SIZE + off, src.subarray(done, done + len));
      done += len;
      this.bytes = Math.max(this.bytes, at + len);
    }
    return ok(src.length);
  }

  /**
   * memfd_pin_folios(): pin pages [pgoff, pgoff + npages), filling holes. EINVAL when the range leaves the
   * file. All or nothing: on ENOMEM nothing stays pinned. Undo with frames.unpin(pfn) for each.
   */
  pinPages(pgoff: number, npages: number): Result<number[]> {
    if (!Number.isSafeInteger(pgoff) || !Number.isSafeInteger(npages) || pgoff < 0 || npages < 0 ||
      pgoff + npages > this.pageCount) {
      return fail('EINVAL', `pages ${pgoff}+${npages} are not inside ${this.name} (${this.pageCount} pages)`);
    }
    const pfns: number[] = [];
    for (let i = 0; i < npages; i++) {
      const page = this.getPage(pgoff + i);
      if (!page.ok) {
        for (const pfn of pfns) this.frames.unpin(pfn);
        return page;
      }
      this.frames.pin(page.value);
      pfns.push(page.value);
    }
    return ok(pfns);
  }

  /** A mapping of this file was created (i_mmap insert). */
  addMapping(m: FileMapping): void { this.mappings.add(m); }
  removeMapping(m: FileMapping): void { this.mappings.delete(m); }
  get mappingCount(): number { return this.mappings.size; }

  /** Calls `fn` for every cached page. */
  forEachPage(fn: (pgoff: number, pfn: number) => void): void {
    for (const [pgoff, pfn] of this.cache) fn(pgoff, pfn);
  }

  /** Last reference gone (an fd or a mapping): the page cache goes with the inode (shmem_evict_inode()). */
  release(): void {
    if (this.mappings.size !== 0) throw new Error(`${this.name} released while still mapped`);
    for (const pfn of this.cache.values()) this.frames.put(pfn);
    this.cache.clear();
    this.dead = true;
  }
}
