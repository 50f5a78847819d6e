// The codec fast paths on the fault-handling hot path give what the plain codecs give:
// - decodeAt/encodeAt at an offset equal decode/encode on a subarray view (fault fd reads and writes);
// - for a struct without padding holes (`dense`), encode(decode(bytes)) is the bytes themselves, which is
//   what lets dispatch() write the user's copied bytes back instead of re-encoding the decoded command.

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { IOMMUFD_STRUCTS } from '../../src/uapi/iommufd-structs.ts';
import { defineStruct, u8, u16, u32, u64, type StructDef } from '../../src/uapi/struct.ts';
import { VFIO_STRUCTS } from '../../src/uapi/vfio-structs.ts';

const ALL: StructDef[] = [...Object.values(IOMMUFD_STRUCTS), ...Object.values(VFIO_STRUCTS)];

describe('struct codec fast paths', () => {
  it('decodeAt/encodeAt at an offset equal decode/encode of a subarray, for every uAPI struct', () => {
    for (const st of ALL) {
      fc.assert(fc.property(fc.integer({ min: 0, max: 40 }), fc.uint8Array({ minLength: 512, maxLength: 512 }), (at, raw) => {
        const buf = raw.slice(0, at + st.sizeof);
        const viaView = st.decode(buf.subarray(at));
        expect(st.decodeAt(buf, at)).toEqual(viaView);
        const a = new Uint8Array(at + st.sizeof + 8).fill(0xa5);
        const b = a.slice();
        st.encode(viaView, b.subarray(at, at + st.sizeof));
        st.encodeAt(viaView, a, at);
        expect(a).toEqual(b);
      }), { numRuns: 20 });
    }
  });

  it('a dense struct decodes and encodes back to the same bytes', () => {
    const dense = ALL.filter((st) => st.dense);
    expect(dense.length).toBeGreaterThan(10);
    expect(IOMMUFD_STRUCTS.iommu_ioas_map.dense).toBe(true);
    for (const st of dense) {
      fc.assert(fc.property(fc.uint8Array({ minLength: st.sizeof, maxLength: st.sizeof }), (b) => {
        expect(st.encode(st.decode(b))).toEqual(b);
      }), { numRuns: 30 });
    }
  });

  it('a struct with a padding hole is not dense (its hole would not survive decode and encode)', () => {
    const holed = defineStruct('holed', { a: u8, b: u32, c: u16, d: u64 });
    expect(holed.dense).toBe(false);
    const b = new Uint8Array(holed.sizeof).fill(0xff);
    expect(holed.encode(holed.decode(b))).not.toEqual(b);
    expect(defineStruct('tight', { a: u32, b: u32, c: u64 }).dense).toBe(true);
  });
});
