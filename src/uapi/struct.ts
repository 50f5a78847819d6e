// A small C struct layout DSL for the x86-64 Linux ABI: scalar fields at their natural alignment, fixed
// byte arrays and scalar arrays, sizeof padded to the struct's alignment, little-endian codecs. Field
// tables are plain data so tests and tools can print layouts. Flexible array members (`data[]`) are not
// fields: they add nothing to sizeof, and callers read them after the struct.

import { compileDecoder, compileEncoder, type CompiledDecoder, type CompiledEncoder } from './struct-compile.ts';
import { getU32, getU64, storeS32, storeU16, storeU32, storeU64, storeU8 } from './le-scalars.ts';

export type ScalarKind = 'u8' | 'u16' | 'u32' | 's32' | 'u64';

export interface ScalarType<K extends ScalarKind = ScalarKind> {
  readonly kind: K;
  readonly size: number;
  readonly align: number;
}

export interface BytesType {
  readonly kind: 'bytes';
  readonly size: number;
  readonly align: 1;
}

export interface ArrayType<K extends ScalarKind = ScalarKind> {
  readonly kind: 'array';
  readonly of: ScalarType<K>;
  readonly length: number;
  readonly size: number;
  readonly align: number;
}

/** Any field type; the scalar and array members are spelled out per kind so FieldValue distributes. */
export type FieldType = { [K in ScalarKind]: ScalarType<K> | ArrayType<K> }[ScalarKind] | BytesType;

const scalar = <K extends ScalarKind>(kind: K, size: number): ScalarType<K> => ({ kind, size, align: size });

export const u8 = scalar('u8', 1);
export const u16 = scalar('u16', 2);
export const u32 = scalar('u32', 4);
export const s32 = scalar('s32', 4);
export const u64 = scalar('u64', 8);
/** __aligned_u64: on x86-64 a u64 is already 8-byte aligned, so this is u64. */
export const aligned_u64 = u64;

export function bytes(n: number): BytesType {
  if (!Number.isInteger(n) || n < 0) throw new RangeError(`bytes(${n})`);
  return { kind: 'bytes', size: n, align: 1 };
}

export function array<K extends ScalarKind>(of: ScalarType<K>, length: number): ArrayType<K> {
  if (!Number.isInteger(length) || length < 0) throw new RangeError(`array(${of.kind}, ${length})`);
  return { kind: 'array', of, length, size: of.size * length, align: of.align };
}

/** The JavaScript value of a field: numbers for 8-32-bit scalars, bigint for u64. */
export type FieldValue<T extends FieldType> =
  T extends ScalarType<'u64'> ? bigint
    : T extends ScalarType ? number
      : T extends BytesType ? Uint8Array
        : T extends ArrayType<'u64'> ? bigint[]
          : number[];

export type FieldMap = Readonly<Record<string, FieldType>>;
export type StructValue<F extends FieldMap> = { [K in keyof F]: FieldValue<F[K]> };

export interface FieldLayout {
  readonly name: string;
  readonly type: FieldType;
  readonly offset: number;
  readonly size: number;
}

const alignUp = (n: number, a: number): number => Math.ceil(n / a) * a;
const U64_MAX = (1n << 64n) - 1n;

function readScalar(view: DataView, off: number, kind: ScalarKind): number | bigint {
  switch (kind) {
    case 'u8': return view.getUint8(off);
    case 'u16': return view.getUint16(off, true);
    case 'u32': return view.getUint32(off, true);
    case 's32': return view.getInt32(off, true);
    case 'u64': return view.getBigUint64(off, true);
  }
}

// `what` names the field for the error message; it is a function so that no string is built on success.
function checkInt(v: unknown, min: number, max: number, what: () => string): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
    throw new RangeError(`${what()}: ${String(v)} is not an integer in [${min}, ${max}]`);
  }
  return v;
}

function writeScalar(view: DataView, off: number, kind: ScalarKind, v: unknown, what: () => string): void {
  switch (kind) {
    case 'u8': view.setUint8(off, checkInt(v, 0, 0xff, what)); return;
    case 'u16': view.setUint16(off, checkInt(v, 0, 0xffff, what), true); return;
    case 'u32': view.setUint32(off, checkInt(v, 0, 0xffff_ffff, what), true); return;
    case 's32': view.setInt32(off, checkInt(v, -0x8000_0000, 0x7fff_ffff, what), true); return;
    case 'u64': {
      if (typeof v !== 'bigint' || v < 0n || v > U64_MAX) throw new RangeError(`${what()}: ${String(v)} is not a u64 bigint`);
      view.setBigUint64(off, v, true);
    }
  }
}

const viewAt = (b: Uint8Array, at: number, size: number): DataView => new DataView(b.buffer, b.byteOffset + at, size);

// The table-driven codecs walk a struct as parallel tables built once per StructDef: a small integer code
// per field (scalar kind, or OTHER for byte and scalar arrays), its offset and its name. A switch on the
// code inlines each scalar's reader and writer; the layout objects are touched only for OTHER fields.
// Structs of scalars alone use compiled codecs (struct-compile.ts), built on first use.
const C_U8 = 0;
const C_U16 = 1;
const C_U32 = 2;
const C_S32 = 3;
const C_U64 = 4;
const C_OTHER = 5;
const CODE: Readonly<Record<FieldType['kind'], number>> = { u8: C_U8, u16: C_U16, u32: C_U32, s32: C_S32, u64: C_U64, bytes: C_OTHER, array: C_OTHER };

/** Store `v` as the scalar of `code` at `o`; false (nothing written) for OTHER or a value not valid for the kind. */
function storeCode(b: Uint8Array, o: number, code: number, v: unknown): boolean {
  switch (code) {
    case C_U32: return storeU32(b, o, v);
    case C_U64: return storeU64(b, o, v);
    case C_U8: return storeU8(b, o, v);
    case C_U16: return storeU16(b, o, v);
    case C_S32: return storeS32(b, o, v);
    default: return false;
  }
}

/** A C struct: its fields' offsets, sizeof and alignment, and little-endian codecs. */
export class StructDef<F extends FieldMap = FieldMap> {
  readonly name: string;
  readonly fields: readonly FieldLayout[];
  readonly sizeof: number;
  readonly align: number;
  /**
   * Every byte of sizeof belongs to a field (no padding holes): decoding then encoding gives back the
   * same bytes, so a decoded copy's buffer can stand for the value (dispatch's write-back uses it).
   */
  readonly dense: boolean;
  private readonly byName: ReadonlyMap<string, FieldLayout>;
  /** The codecs' tables, in layout order: each field's code (C_*), offset and name. */
  private readonly codes: Uint8Array;
  private readonly offsets: Int32Array;
  private readonly names: readonly string[];
  /** The compiled codecs: undefined until the first use builds them, null for a struct with array fields. */
  private decoder: CompiledDecoder | null | undefined;
  private encoder: CompiledEncoder | null | undefined;
  /**
   * An object with every field, in layout order: decodeAtTable clones it (one hidden class per struct, made
   * in one step) and overwrites the fields, instead of growing an empty object a property at a time.
   */
  private readonly shape: Readonly<Record<string, unknown>>;

  constructor(name: string, fields: F) {
    this.name = name;
    let off = 0;
    let align = 1;
    const layout: FieldLayout[] = [];
    for (const [fname, type] of Object.entries(fields)) {
      off = alignUp(off, type.align);
      layout.push({ name: fname, type, offset: off, size: type.size });
      off += type.size;
      align = Math.max(align, type.align);
    }
    this.fields = layout;
    this.align = align;
    this.sizeof = alignUp(off, align);
    this.dense = layout.reduce((n, f) => n + f.size, 0) === this.sizeof;
    this.byName = new Map(layout.map((f) => [f.name, f]));
    this.codes = Uint8Array.from(layout, (f) => CODE[f.type.kind]);
    this.offsets = Int32Array.from(layout, (f) => f.offset);
    this.names = layout.map((f) => f.name);
    const shape: Record<string, unknown> = {};
    for (const f of layout) shape[f.name] = null;
    this.shape = shape;
  }

  field(name: keyof F & string): FieldLayout {
    const f = this.byName.get(name);
    if (f === undefined) throw new Error(`struct ${this.name} has no field ${name}`);
    return f;
  }

  offsetof(name: keyof F & string): number { return this.field(name).offset; }
  /** offsetofend(): the offset just past the field (the minimum size that includes it). */
  offsetofend(name: keyof F & string): number { const f = this.field(name); return f.offset + f.size; }

  /** Every field zero. */
  zero(): StructValue<F> { return this.decode(new Uint8Array(this.sizeof)); }

  /** Decode the first sizeof bytes (a shorter buffer is an error: zero-extend before decoding). */
  decode(b: Uint8Array): StructValue<F> { return this.decodeAt(b, 0); }

  /**
   * Decode the sizeof bytes at offset `at` of `b`: decode(b.subarray(at)) without making the view (a
   * typed-array view per record costs more than a small struct's fields; fault fd reads decode several).
   */
  decodeAt(b: Uint8Array, at: number): StructValue<F> {
    if (b.byteLength - at < this.sizeof) throw new RangeError(`struct ${this.name}: ${b.byteLength - at} bytes < sizeof ${this.sizeof}`);
    if (this.decoder === undefined) this.decoder = compileDecoder(this.fields);
    return this.decoder === null ? this.decodeAtTable(b, at) : (this.decoder(b, at) as StructValue<F>);
  }

  /** decodeAt() through the field tables (structs with array fields; the compiled decoder's reference). */
  decodeAtTable(b: Uint8Array, at: number): StructValue<F> {
    if (b.byteLength - at < this.sizeof) throw new RangeError(`struct ${this.name}: ${b.byteLength - at} bytes < sizeof ${this.sizeof}`);
    const out: Record<string, unknown> = { ...this.shape };
    const { codes, offsets, names } = this;
    let view: DataView | null = null;
    for (let i = 0; i < codes.length; i++) {
      const o = at + (offsets[i] as number);
      let v: unknown;
      switch (codes[i]) {
        case C_U8: v = b[o]; break;
        case C_U16: v = (b[o] as number) | ((b[o + 1] as number) << 8); break;
        case C_U32: v = getU32(b, o); break;
        case C_S32: v = getU32(b, o) | 0; break;
        case C_U64: v = getU64(b, o); break;
        default: v = this.readField(view ??= viewAt(b, at, this.sizeof), this.fields[i] as FieldLayout);
      }
      out[names[i] as string] = v;
    }
    return out as StructValue<F>;
  }

  /** Encode into `into` (or a new zeroed sizeof buffer); missing fields are left as they are (zero when new). */
  encode(value: Partial<StructValue<F>>, into?: Uint8Array): Uint8Array {
    const b = into ?? new Uint8Array(this.sizeof);
    this.encodeAt(value, b, 0);
    return b;
  }

  /**
   * encode() into the sizeof bytes at offset `at` of `b` (no subarray view; see decodeAt). Fields go in
   * layout order; the first invalid one throws a RangeError naming it (the fields before it are written).
   */
  encodeAt(value: Partial<StructValue<F>>, b: Uint8Array, at: number): void {
    if (b.byteLength - at < this.sizeof) throw new RangeError(`struct ${this.name}: ${b.byteLength - at} bytes < sizeof ${this.sizeof}`);
    if (this.encoder === undefined) this.encoder = compileEncoder(this.fields);
    // The compiled encoder stops at an invalid field with the ones before it written: the table walk
    // writes them again and throws naming it.
    if (this.encoder === null || !this.encoder(value, b, at)) this.encodeAtTable(value, b, at);
  }

  /** encodeAt() through the field tables (structs with array fields; the compiled encoder's reference). */
  encodeAtTable(value: Partial<StructValue<F>>, b: Uint8Array, at: number): void {
    if (b.byteLength - at < this.sizeof) throw new RangeError(`struct ${this.name}: ${b.byteLength - at} bytes < sizeof ${this.sizeof}`);
    const rec = value as Readonly<Record<string, unknown>>;
    const { codes, offsets, names } = this;
    let view: DataView | null = null;
    for (let i = 0; i < codes.length; i++) {
      const v = rec[names[i] as string];
      if (v === undefined) continue;
      if (storeCode(b, at + (offsets[i] as number), codes[i] as number, v)) continue;
      // Byte and scalar arrays, and an invalid scalar (writeField throws naming the field).
      this.writeField(view ??= viewAt(b, at, this.sizeof), this.fields[i] as FieldLayout, v);
    }
  }

  /**
   * decode(b)[name] from the field's own bytes (`fieldBytes` holds offsetof(name)..offsetofend(name)):
   * a caller that needs one field reads and decodes that field alone.
   */
  decodeField<K extends keyof F & string>(name: K, fieldBytes: Uint8Array): FieldValue<F[K]> {
    const f = this.field(name);
    if (fieldBytes.byteLength < f.size) throw new RangeError(`struct ${this.name}.${name}: ${fieldBytes.byteLength} bytes < ${f.size}`);
    switch (CODE[f.type.kind]) {
      case C_U8: return fieldBytes[0] as FieldValue<F[K]>;
      case C_U16: return ((fieldBytes[0] as number) | ((fieldBytes[1] as number) << 8)) as FieldValue<F[K]>;
      case C_U32: return getU32(fieldBytes, 0) as FieldValue<F[K]>;
      case C_S32: return (getU32(fieldBytes, 0) | 0) as FieldValue<F[K]>;
      case C_U64: return getU64(fieldBytes, 0) as FieldValue<F[K]>;
      default: {
        const whole = new Uint8Array(this.sizeof);
        whole.set(fieldBytes.subarray(0, f.size), f.offset);
        return this.decode(whole)[name];
      }
    }
  }

  read<K extends keyof F & string>(view: DataView, name: K): FieldValue<F[K]> {
    return this.readField(view, this.field(name)) as FieldValue<F[K]>;
  }

  write<K extends keyof F & string>(view: DataView, name: K, value: FieldValue<F[K]>): void {
    this.writeField(view, this.field(name), value);
  }

  /** The layout as text, one field a line (pahole style). */
  describe(): string {
    const lines = this.fields.map((f) => `  ${typeName(f.type).padEnd(10)} ${f.name.padEnd(24)} /* ${f.offset} ${f.size} */`);
    return `struct ${this.name} {\n${lines.join('\n')}\n}; /* size ${this.sizeof}, align ${this.align} */`;
  }

  private readField(view: DataView, f: FieldLayout): unknown {
    const t = f.type;
    if (t.kind === 'bytes') return new Uint8Array(view.buffer.slice(view.byteOffset + f.offset, view.byteOffset + f.offset + t.size));
    if (t.kind === 'array') {
      const out: (number | bigint)[] = [];
      for (let i = 0; i < t.length; i++) out.push(readScalar(view, f.offset + i * t.of.size, t.of.kind));
      return out;
    }
    return readScalar(view, f.offset, t.kind);
  }

  private writeField(view: DataView, f: FieldLayout, v: unknown): void {
    const t = f.type;
    if (t.kind === 'bytes') {
      if (!(v instanceof Uint8Array) || v.byteLength > t.size) throw new RangeError(`${this.name}.${f.name}: expected at most ${t.size} bytes`);
      new Uint8Array(view.buffer, view.byteOffset + f.offset, t.size).fill(0).set(v);
      return;
    }
    if (t.kind === 'array') {
      if (!Array.isArray(v) || v.length > t.length) throw new RangeError(`${this.name}.${f.name}: expected at most ${t.length} elements`);
      for (let i = 0; i < t.length; i++) {
        writeScalar(view, f.offset + i * t.of.size, t.of.kind, i < v.length ? v[i] : (t.of.kind === 'u64' ? 0n : 0), () => `${this.name}.${f.name}[${i}]`);
      }
      return;
    }
    writeScalar(view, f.offset, t.kind, v, () => `${this.name}.${f.name}`);
  }
}

function typeName(t: FieldType): string {
  if (t.kind === 'bytes') return `u8[${t.size}]`;
  if (t.kind === 'array') return `${t.of.kind}[${t.length}]`;
  return t.kind;
}

export function defineStruct<F extends FieldMap>(name: string, fields: F): StructDef<F> {
  return new StructDef(name, fields);
}
