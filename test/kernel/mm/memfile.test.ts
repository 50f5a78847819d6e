import { describe, expect, it } from 'vitest';
import { MemFile } from '../../../src/kernel/mm/memfile.ts';
import { MAP_ANONYMOUS, MAP_PRIVATE, MAP_SHARED, PROT_READ, PROT_WRITE } from '../../../src/kernel/mm/mman.ts';
import { bytes, checkFrames, errno, machine, P, readBack, value } from './helpers.ts';

const RW = PROT_READ | PROT_WRITE;

function twoProcesses(frames = 64) {
  const m = machine(frames);
  const a = m.table.spawn({ comm: 'a' });
  const b = m.table.spawn({ comm: 'b' });
  return { ...m, a, b };
}

describe('memfd', () => {
  it('two processes mapping one memfd see the same frames', () => {
    const m = twoProcesses();
    const { a, b } = m;
    const fd = value(a.memfdCreate('buffer'));
    expect(fd).toBe(3);
    value(a.ftruncate(fd, 2 * P));
    const file = value(a.memFile(fd));
    // Hand the same open file to b, as SCM_RIGHTS or an inherited fd would.
    const bfd = value(b.fds.install(file.get()));
    const va = value(a.mmap(0, 2 * P, RW, MAP_SHARED, fd, 0));
    const vb = value(b.mmap(0, P, PROT_READ, MAP_SHARED, bfd, P));
    value(a.mm.write(va + P + 5, bytes(3, 0x5a)));
    expect(readBack(b.mm, vb + 5, 3)).toEqual(bytes(3, 0x5a));
    expect(a.mm.lookupPfn(va + P)).toBe(b.mm.lookupPfn(vb));
    expect(a.mm.lookupPfn(va + P)).toBe(file.file.findPage(1));
    expect(errno(b.mm.write(vb, bytes(1, 1)))).toBe('EFAULT');
    expect(a.mm.status()).toMatchObject({ RssShmem: 4, RssAnon: 0 });
    checkFrames(m);
  });

  it('the file lives while mapped after its fds are closed, and is released with the last mapping', () => {
    const m = twoProcesses();
    const { a } = m;
    const fd = value(a.memfdCreate('x'));
    value(a.ftruncate(fd, 3 * P));
    const file = value(a.memFile(fd)).file;
    const va = value(a.mmap(0, 3 * P, RW, MAP_SHARED, fd, 0));
    value(a.mm.write(va, bytes(3 * P, 1)));
    value(a.fds.close(fd));
    expect(file.released).toBe(false);
    expect(m.frames.allocated).toBe(3);
    value(a.mm.munmap(va + P, P));
    expect(m.frames.allocated).toBe(3);
    expect(file.mappingCount).toBe(2);
    value(a.mm.munmap(va, 3 * P));
    expect(file.released).toBe(true);
    expect(m.frames.allocated).toBe(0);
  });

  it('pwrite/pread go through the same page cache as mappings; holes read as zeros', () => {
    const m = twoProcesses();
    const file = new MemFile(m.frames, 'memfd:t');
    expect(value(file.pwrite(P - 2, bytes(4, 7)))).toBe(4);
    expect(file.size).toBe(P + 2);
    const out = new Uint8Array(8);
    expect(value(file.pread(P - 4, out))).toBe(6);
    expect([...out]).toEqual([0, 0, 7, 7, 7, 7, 0, 0]);
    value(file.ftruncate(4 * P));
    expect(value(file.pread(3 * P, new Uint8Array(16)))).toBe(16);
    expect(file.cachedPages).toBe(2);
    file.release();
    expect(m.frames.allocated).toBe(0);
  });

  it('access past EOF is EFAULT (SIGBUS), also after ftruncate shrinks a mapped file', () => {
    const m = twoProcesses();
    const { a } = m;
    const fd = value(a.memfdCreate('t'));
    value(a.ftruncate(fd, P + 100));
    const va = value(a.mmap(0, 4 * P, RW, MAP_SHARED, fd, 0));
    const vp = value(a.mmap(0, 4 * P, RW, MAP_PRIVATE, fd, 0));
    value(a.mm.write(va + P, bytes(200, 3)));
    expect(errno(a.mm.read(va + 2 * P, new Uint8Array(1)))).toBe('EFAULT');
    value(a.mm.write(vp + P, bytes(1, 4)));
    value(a.ftruncate(fd, 50));
    expect(errno(a.mm.read(va + P, new Uint8Array(1)))).toBe('EFAULT');
    expect(errno(a.mm.read(vp + P, new Uint8Array(1)))).toBe('EFAULT');
    // Growing again shows a hole: the old data and the private copy are gone.
    value(a.ftruncate(fd, 2 * P));
    expect(readBack(a.mm, va + P, 200)).toEqual(new Uint8Array(200));
    expect(readBack(a.mm, vp + P, 1)).toEqual(new Uint8Array(1));
    checkFrames(m);
  });

  it('ftruncate to a partial page zeroes the tail', () => {
    const m = twoProcesses();
    const { a } = m;
    const fd = value(a.memfdCreate('t'));
    value(a.ftruncate(fd, P));
    const va = value(a.mmap(0, P, RW, MAP_SHARED, fd, 0));
    value(a.mm.write(va, bytes(P, 9)));
    value(a.ftruncate(fd, 10));
    value(a.ftruncate(fd, P));
    const page = readBack(a.mm, va, P);
    expect(page.subarray(0, 10)).toEqual(bytes(10, 9));
    expect(page.subarray(10)).toEqual(new Uint8Array(P - 10));
  });

  it('errors: EBADF for a closed fd, EINVAL for a negative size or a non-memfd, EINVAL for pins past EOF', () => {
    const m = twoProcesses();
    const { a } = m;
    expect(errno(a.ftruncate(9, P))).toBe('EBADF');
    expect(errno(a.ftruncate(0, P))).toBe('EINVAL');
    const fd = value(a.memfdCreate('t'));
    expect(errno(a.ftruncate(fd, -1))).toBe('EINVAL');
    expect(errno(a.mmap(0, P, RW, MAP_SHARED, 42, 0))).toBe('EBADF');
    expect(errno(a.mmap(0, P, RW, MAP_SHARED | MAP_ANONYMOUS, 42, 0))).toBe('ok');
    const file = value(a.memFile(fd)).file;
    value(file.ftruncate(2 * P));
    expect(errno(file.pinPages(1, 2))).toBe('EINVAL');
    const pfns = value(file.pinPages(0, 2));
    value(file.ftruncate(0));
    // memfd_pin_folios() pins outlive truncation.
    expect(m.frames.allocated).toBe(2);
    for (const pfn of pfns) m.frames.unpin(pfn);
    expect(m.frames.allocated).toBe(0);
  });

  it('shared anonymous memory is a private shmem file of the mapping', () => {
    const m = twoProcesses();
    const { a } = m;
    const va = value(a.mmap(0, 2 * P, RW, MAP_SHARED | MAP_ANONYMOUS, -1, 0));
    expect(readBack(a.mm, va, 4)).toEqual(new Uint8Array(4));
    // shmem_fault() allocates even for a read: there is no zero page in the page cache.
    expect(m.frames.allocated).toBe(1);
    expect(a.mm.vmaList()[0]?.describe()).toMatch(/rw-s 00000000 dev\/zero \(deleted\)$/);
    value(a.mm.munmap(va, 2 * P));
    expect(m.frames.allocated).toBe(0);
  });
});
