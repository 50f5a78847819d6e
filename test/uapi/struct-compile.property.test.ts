// The compiled codecs (struct-compile.ts) and the other shortcuts of one ioctl's path give what the
// general paths give, for every uAPI struct:
// - decodeAt equals decodeAtTable (the field-table loop) on random bytes at random offsets, key order too;
// - encodeAt equals encodeAtTable on random partial values, valid or not: the same bytes, or the same
//   RangeError with the same bytes written before it;
// - decodeField(name, the field's bytes) equals decode(...)[name];
// - copyExactStruct (get_user(size) and the struct in one copy) equals readUserSize + copyStructFromUser
//   whenever it answers, and answers for an exact-size struct inside one page;
// - the dispatcher's table test iommufdIoctlOp(cmd) names an op exactly when lookupIoctl(cmd) does.

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { MAP_ANONYMOUS, MAP_FIXED, MAP_PRIVATE, PROT_NONE, PROT_READ, PROT_WRITE } from '../../src/kernel/mm/mman.ts';
import { copyExactStruct, copyStructFromUser, readUserSize } from '../../src/uapi/copy-struct.ts';
import * as IOMMUFD from '../../src/uapi/iommufd-structs.ts';
import * as SELFTEST from '../../src/uapi/iommufd-test-structs.ts';
import { IOMMU_TEST_CMD } from '../../src/uapi/ioctl.ts';
import { iommufdIoctlOp, IOMMUFD_IOCTLS, lookupIoctl } from '../../src/uapi/ioctl-table.ts';
import { array, bytes, defineStruct, s32, StructDef, u16, u32, u64, u8, type FieldLayout, type FieldMap, type StructValue } from '../../src/uapi/struct.ts';
import * as VFIO from '../../src/uapi/vfio-structs.ts';
import { machine, P, value } from '../kernel/mm/helpers.ts';

const U64_MAX = (1n << 64n) - 1n;

const structsOf = (mod: Record<string, unknown>): StructDef[] => Object.values(mod).filter((v): v is StructDef => v instanceof StructDef);
/** Every kind of scalar, with padding holes, and one with an array (which keeps the table codecs). */
const SYNTHETIC = [
  defineStruct('all_kinds', { a: u8, b: u16, c: u32, d: s32, e: u64, f: u8, g: s32 }),
  defineStruct('holes', { a: u8, b: u64, c: u16, d: u32 }),
  defineStruct('with_arrays', { a: u32, b: array(u16, 3), c: bytes(5), d: u64 }),
];
const ALL: StructDef[] = [...new Set([...structsOf(IOMMUFD), ...structsOf(VFIO), ...structsOf(SELFTEST), ...SYNTHETIC])];

const RANGE = { u8: [0, 0xff], u16: [0, 0xffff], u32: [0, 0xffff_ffff], s32: [-0x8000_0000, 0x7fff_ffff] } as const;

function validOf(f: FieldLayout): fc.Arbitrary<unknown> {
  const t = f.type;
  if (t.kind === 'u64') return fc.bigInt({ min: 0n, max: U64_MAX });
  if (t.kind === 'bytes') return fc.uint8Array({ maxLength: t.size });
  if (t.kind === 'array') {
    if (t.of.kind === 'u64') return fc.array(fc.bigInt({ min: 0n, max: U64_MAX }), { maxLength: t.length });
    return fc.array(fc.integer({ min: RANGE[t.of.kind][0], max: RANGE[t.of.kind][1] }), { maxLength: t.length });
  }
  return fc.integer({ min: RANGE[t.kind][0], max: RANGE[t.kind][1] });
}

/** Anything a caller might pass by mistake: out of range, the wrong type, non-integers. */
const junk: fc.Arbitrary<unknown> = fc.oneof(
  fc.integer(), fc.double(), fc.bigInt(), fc.bigInt({ min: U64_MAX - 3n, max: U64_MAX + 3n }), fc.constant(-1), fc.constant(2 ** 32),
  fc.constant(null), fc.string({ maxLength: 3 }), fc.constant(0.5), fc.constant(1n), fc.constant(7),
);

/** A partial value of `st`: some fields missing, some undefined, maybe junk, maybe an unknown key. */
// The codecs must cope with whatever a caller passes: the values are typed loosely on purpose.
type Loose = Partial<StructValue<FieldMap>>;

function valueOf(st: StructDef, allowJunk: boolean): fc.Arbitrary<Loose> {
  const model: Record<string, fc.Arbitrary<unknown>> = {};
  for (const f of st.fields) {
    const v = validOf(f);
    model[f.name] = allowJunk ? fc.oneof({ weight: 6, arbitrary: v }, { weight: 1, arbitrary: junk }, { weight: 1, arbitrary: fc.constant(undefined) }) : v;
  }
  model.not_a_field = fc.integer();
  return fc.record(model, { requiredKeys: [] }) as fc.Arbitrary<Loose>;
}

function attempt(fn: () => void): string | null {
  try { fn(); return null; } catch (e) { return e instanceof RangeError ? `RangeError: ${e.message}` : `other: ${String(e)}`; }
}

describe('compiled struct codecs equal the table-driven ones', () => {
  it('covers the uAPI structs, compiled and not', () => {
    expect(ALL.length).toBeGreaterThan(60);
    expect(ALL).toContain(IOMMUFD.iommu_ioas_map);
    expect(ALL).toContain(IOMMUFD.iommu_hwpt_pgfault);
  });

  it('decodeAt == decodeAtTable (values and key order), for every struct', () => {
    for (const st of ALL) {
      fc.assert(fc.property(fc.integer({ min: 0, max: 24 }), fc.uint8Array({ minLength: 600, maxLength: 600 }), (at, raw) => {
        const buf = raw.slice(0, at + st.sizeof);
        const c = st.decodeAt(buf, at);
        const t = st.decodeAtTable(buf, at);
        expect(c).toEqual(t);
        expect(Object.keys(c)).toEqual(Object.keys(t));
        expect(() => st.decodeAt(buf, at + 1)).toThrow(RangeError);
      }), { numRuns: 15 });
    }
  });

  for (const allowJunk of [false, true]) {
    it(`encodeAt == encodeAtTable on ${allowJunk ? 'values with invalid fields' : 'valid partial values'}, for every struct`, () => {
      for (const st of ALL) {
        fc.assert(fc.property(valueOf(st, allowJunk), fc.integer({ min: 0, max: 24 }), fc.integer({ min: 0, max: 255 }), (v, at, fill) => {
          const a = new Uint8Array(at + st.sizeof + 4).fill(fill);
          const b = a.slice();
          expect(attempt(() => st.encodeAt(v, a, at))).toBe(attempt(() => st.encodeAtTable(v, b, at)));
          expect(a).toEqual(b);
        }), { numRuns: allowJunk ? 40 : 15 });
      }
    });
  }

  it('decodeField(name, the field bytes) == decode(bytes)[name], for every field of every struct', () => {
    for (const st of ALL) {
      fc.assert(fc.property(fc.uint8Array({ minLength: st.sizeof, maxLength: st.sizeof }), (raw) => {
        const whole = st.decode(raw) as Record<string, unknown>;
        for (const f of st.fields) expect(st.decodeField(f.name, raw.slice(f.offset, f.offset + f.size))).toEqual(whole[f.name]);
      }), { numRuns: 5 });
    }
  });
});

describe('copyExactStruct equals get_user(size) + copyStructFromUser', () => {
  const RW = PROT_READ | PROT_WRITE;
  const ANON = MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED;
  /** Two RW pages at 0x40_0000, then a PROT_NONE page, then nothing. */
  function setup() {
    const m = machine(32);
    const p = m.table.spawn();
    value(p.mm.mmap(0x40_0000, 2 * P, RW, ANON, null, 0));
    value(p.mm.mmap(0x40_0000 + 2 * P, P, PROT_NONE, ANON, null, 0));
    return p.mm;
  }

  it('on random sizes, contents and placements (page edges, unreadable pages)', () => {
    const mm = setup();
    fc.assert(fc.property(fc.constantFrom(...IOMMUFD_IOCTLS), fc.integer({ min: 0, max: 3 * P - 1 }), fc.uint8Array({ minLength: 256, maxLength: 256 }), fc.nat(), (op, off, raw, sz) => {
      const st = op.struct;
      const ptr = 0x40_0000 + off;
      const size = sz % 3 === 0 ? st.sizeof : sz % (st.sizeof + 16);
      const b = raw.slice(0, st.sizeof + 16);
      b.set([size & 0xff, (size >>> 8) & 0xff, 0, 0], 0);
      // Write what fits in the RW pages.
      const room = Math.max(0, Math.min(b.length, 0x40_0000 + 2 * P - ptr));
      if (room > 0) value(mm.write(ptr, b.subarray(0, room)));
      const fast = copyExactStruct(mm, ptr, st);
      const usize = readUserSize(mm, ptr);
      if (fast === null) {
        // The fast path declines only when the general path has to decide.
        const inOnePage = (ptr % P) + st.sizeof <= P && ptr + st.sizeof <= 0x40_0000 + 2 * P;
        expect(inOnePage && usize.ok && usize.value === st.sizeof).toBe(false);
        return;
      }
      expect(usize.ok && usize.value).toBe(st.sizeof);
      const slow = value(copyStructFromUser(mm, ptr, st, op.minSize, st.sizeof));
      expect(fast.userSize).toBe(slow.userSize);
      expect(fast.bytes).toEqual(slow.bytes);
      expect(fast.value).toEqual(slow.value);
    }), { numRuns: 400 });
  });

  it('every table struct starts with its u32 size (what copyExactStruct reads)', () => {
    for (const op of IOMMUFD_IOCTLS) expect(op.struct.fields[0]).toMatchObject({ name: 'size', type: u32, offset: 0 });
  });
});

describe('iommufdIoctlOp agrees with lookupIoctl', () => {
  it('on every table number, its neighbours and random numbers', () => {
    const check = (cmd: number): void => {
      const cls = lookupIoctl(cmd);
      expect(iommufdIoctlOp(cmd)).toBe(cls.kind === 'iommufd' ? cls.op : undefined);
    };
    for (const op of IOMMUFD_IOCTLS) for (const d of [-1, 0, 1, 0x100, 0x1_0000, -0x1_0000]) check((op.cmd + d) >>> 0);
    check(IOMMU_TEST_CMD);
    fc.assert(fc.property(fc.oneof(fc.integer({ min: 0, max: 0xffff_ffff }), fc.integer({ min: -(2 ** 31), max: 0 }), fc.constantFrom(...IOMMUFD_IOCTLS.map((o) => o.cmd | 0))), (cmd) => check(cmd)), { numRuns: 2000 });
  });
});
