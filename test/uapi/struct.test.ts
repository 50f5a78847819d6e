import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { IOMMUFD_STRUCTS } from '../../src/uapi/iommufd-structs.ts';
import {
  array, bytes, defineStruct, type FieldMap, type FieldType, type StructDef, type StructValue, u16, u32, u64, u8,
} from '../../src/uapi/struct.ts';
import { VFIO_STRUCTS } from '../../src/uapi/vfio-structs.ts';

const U64_MAX = (1n << 64n) - 1n;

function scalarArb(kind: string): fc.Arbitrary<number | bigint> {
  switch (kind) {
    case 'u8': return fc.integer({ min: 0, max: 0xff });
    case 'u16': return fc.integer({ min: 0, max: 0xffff });
    case 'u32': return fc.integer({ min: 0, max: 0xffff_ffff });
    case 's32': return fc.integer({ min: -0x8000_0000, max: 0x7fff_ffff });
    default: return fc.oneof(fc.constantFrom(0n, 1n, U64_MAX, 1n << 63n), fc.bigInt({ min: 0n, max: U64_MAX }));
  }
}

function fieldArb(t: FieldType): fc.Arbitrary<unknown> {
  if (t.kind === 'bytes') return fc.uint8Array({ minLength: t.size, maxLength: t.size });
  if (t.kind === 'array') return fc.array(scalarArb(t.of.kind), { minLength: t.length, maxLength: t.length });
  return scalarArb(t.kind);
}

function valueArb(s: StructDef): fc.Arbitrary<StructValue<FieldMap>> {
  return fc.record(Object.fromEntries(s.fields.map((f) => [f.name, fieldArb(f.type)]))) as fc.Arbitrary<StructValue<FieldMap>>;
}

describe('struct DSL', () => {
  it('applies C natural alignment and tail padding', () => {
    const s = defineStruct('t', { a: u8, b: u64, c: u16, d: array(u16, 3), e: bytes(3), f: u32 });
    expect(s.fields.map((f) => [f.name, f.offset])).toEqual([['a', 0], ['b', 8], ['c', 16], ['d', 18], ['e', 24], ['f', 28]]);
    expect(s.sizeof).toBe(32);
    expect(s.align).toBe(8);
    expect(s.offsetofend('c')).toBe(18);
    expect(defineStruct('p', { a: u64, b: u8 }).sizeof).toBe(16);
    expect(defineStruct('q', { a: u16, b: u8 }).sizeof).toBe(4);
  });

  it('encodes little-endian and leaves missing fields zero', () => {
    const s = defineStruct('t', { a: u32, b: u64 });
    expect([...s.encode({ a: 0x01020304 })]).toEqual([4, 3, 2, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    const b = s.encode({ b: U64_MAX });
    expect(s.decode(b)).toEqual({ a: 0, b: U64_MAX });
    const view = new DataView(b.buffer);
    s.write(view, 'a', 7);
    expect(s.read(view, 'a')).toBe(7);
  });

  it('rejects out-of-range values and short buffers', () => {
    const s = defineStruct('t', { a: u8, b: u64 });
    expect(() => s.encode({ a: 256 })).toThrow(RangeError);
    expect(() => s.encode({ b: -1n })).toThrow(RangeError);
    expect(() => s.encode({ b: 1n << 64n })).toThrow(RangeError);
    expect(() => s.decode(new Uint8Array(15))).toThrow(RangeError);
  });

  it('prints a layout', () => {
    expect(IOMMUFD_STRUCTS.iommu_ioas_map.describe()).toContain('iova');
    expect(IOMMUFD_STRUCTS.iommu_ioas_map.describe()).toContain('size 40');
  });
});

describe('encode/decode round trips for every uAPI struct', () => {
  const all: StructDef[] = [...Object.values(IOMMUFD_STRUCTS), ...Object.values(VFIO_STRUCTS)] as StructDef[];
  for (const s of all) {
    it(s.name, () => {
      fc.assert(fc.property(valueArb(s), (v) => {
        const b = s.encode(v);
        expect(b.length).toBe(s.sizeof);
        expect(s.decode(b)).toEqual(v);
        // decode ∘ encode is the identity on bytes too (padding aside, all our structs have none inside).
        expect(s.encode(s.decode(b))).toEqual(b);
      }), { numRuns: 50 });
    });
  }
});
