import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { PAGE_SIZE, PhysicalMemory } from '../../src/hw/memory/physical-memory.ts';

// The block accessors the hot paths use (queue records, DMA chunks) against the general byte and 64-bit
// accessors: same bytes, same refusals, same frames populated.

const SIZE = 8 * PAGE_SIZE;

function twin(seed: Uint8Array): [PhysicalMemory, PhysicalMemory] {
  const a = new PhysicalMemory({ size: SIZE });
  const b = new PhysicalMemory({ size: SIZE });
  a.write(PAGE_SIZE, seed);
  b.write(PAGE_SIZE, seed);
  return [a, b];
}

function dump(m: PhysicalMemory): Uint8Array {
  const out = new Uint8Array(SIZE);
  m.read(0, out);
  return out;
}

describe('PhysicalMemory block accessors', () => {
  it('writeWords/readWords equal 64-bit stores and loads, and refuse what crosses a frame or leaves memory', () => {
    fc.assert(fc.property(
      fc.integer({ min: -8, max: SIZE + 8 }), fc.integer({ min: 0, max: 16 }), fc.uint32Array({ minLength: 16, maxLength: 16 }),
      (rawPa, count, words) => {
        const pa = rawPa - (((rawPa % 4) + 4) % 4);
        const [a, b] = twin(new Uint8Array(64).fill(7));
        const inside = pa >= 0 && pa + count * 4 <= SIZE && (pa % PAGE_SIZE) + count * 4 <= PAGE_SIZE;
        expect(a.writeWords(pa, words, 0, count)).toBe(inside);
        if (inside) for (let k = 0; k < count; k++) b.write32(pa + 4 * k, words[k] as number);
        expect(Buffer.compare(dump(a), dump(b))).toBe(0);
        expect(a.populatedFrames).toBe(b.populatedFrames);
        const got = new Uint32Array(16).fill(0xdead);
        expect(a.readWords(pa, got, 0, count)).toBe(inside);
        if (inside) for (let k = 0; k < count; k++) expect(got[k]).toBe(b.read32(pa + 4 * k));
      }));
  });

  it('writeFrom/readInto equal write/read of the subarray', () => {
    fc.assert(fc.property(
      fc.integer({ min: -8, max: SIZE + 8 }), fc.uint8Array({ minLength: 1, maxLength: 200 }), fc.nat(), fc.nat(),
      (pa, src, f, l) => {
        const from = f % (src.length + 2);
        const n = l % (src.length + 2);
        const [a, b] = twin(new Uint8Array(300).fill(3));
        const valid = from + n <= src.length;
        const r = a.writeFrom(pa, src, from, n);
        const want = valid ? b.write(pa, src.subarray(from, from + n)) : false;
        expect(r).toBe(want);
        expect(Buffer.compare(dump(a), dump(b))).toBe(0);
        const dest = new Uint8Array(src.length).fill(9);
        const dest2 = dest.slice();
        expect(a.readInto(pa, dest, from, n)).toBe(valid ? b.read(pa, dest2.subarray(from, from + n)) : false);
        expect(dest).toEqual(dest2);
      }));
  });
});
