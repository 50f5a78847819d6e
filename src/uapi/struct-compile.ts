// Compiled codecs: for a struct made only of scalar fields, a decoder and an encoder generated once from
// its layout. Each field becomes a named property of an object literal (decode) or a named load (encode)
// at a fixed offset, where StructDef's table-driven loops make a keyed access per field through the field
// table, which costs more than the field itself. The generated code does exactly what the loops do (the
// property tests in test/uapi/struct-compile.property.test.ts compare them on every uAPI struct); structs
// with byte or scalar arrays keep the loops.

import { getU32, getU64, storeS32, storeU16, storeU32, storeU64, storeU8 } from './le-scalars.ts';
import type { FieldLayout } from './struct.ts';

/** The fields of the struct whose bytes start at `at` of `b` (the caller checked there are sizeof). */
export type CompiledDecoder = (b: Uint8Array, at: number) => Record<string, unknown>;
/**
 * Store every field `value` defines, in layout order, at `at` of `b` (the caller checked the room). False
 * at the first field whose value is not valid for its kind, the fields before it written.
 */
export type CompiledEncoder = (value: Readonly<Record<string, unknown>>, b: Uint8Array, at: number) => boolean;

// Names are quoted with JSON.stringify and offsets are integers from the layout: nothing else goes in.
const key = (f: FieldLayout): string => JSON.stringify(f.name);

function readExpr(f: FieldLayout): string {
  const o = `at + ${f.offset}`;
  switch (f.type.kind) {
    case 'u8': return `b[${o}]`;
    case 'u16': return `(b[${o}] | (b[${o} + 1] << 8))`;
    case 'u32': return `getU32(b, ${o})`;
    case 's32': return `(getU32(b, ${o}) | 0)`;
    case 'u64': return `getU64(b, ${o})`;
    default: throw new Error(`${f.name}: not a scalar`);
  }
}

const STORE = { u8: 'storeU8', u16: 'storeU16', u32: 'storeU32', s32: 'storeS32', u64: 'storeU64' } as const;

// `__proto__: x` in an object literal would set the prototype, not define a field: such a struct keeps the loops.
const scalarsOnly = (fields: readonly FieldLayout[]): boolean =>
  fields.every((f) => f.type.kind !== 'bytes' && f.type.kind !== 'array' && f.name !== '__proto__');

/** The decoder of a struct of scalars, or null when it has an array field (or one named __proto__). */
export function compileDecoder(fields: readonly FieldLayout[]): CompiledDecoder | null {
  if (!scalarsOnly(fields)) return null;
  const body = `"use strict"; return function decode(b, at) { return { ${fields.map((f) => `${key(f)}: ${readExpr(f)}`).join(', ')} }; };`;
  const make = generate(['getU32', 'getU64'], body) as ((g32: typeof getU32, g64: typeof getU64) => CompiledDecoder) | null;
  return make === null ? null : make(getU32, getU64);
}

/** The encoder of a struct of scalars, or null when it has an array field (or one named __proto__). */
export function compileEncoder(fields: readonly FieldLayout[]): CompiledEncoder | null {
  if (!scalarsOnly(fields)) return null;
  const lines = fields.map((f) => {
    const store = STORE[f.type.kind as keyof typeof STORE];
    return `v = value[${key(f)}]; if (v !== undefined && !${store}(b, at + ${f.offset}, v)) return false;`;
  });
  const body = `"use strict"; return function encode(value, b, at) { let v; ${lines.join(' ')} return true; };`;
  const make = generate(['storeU8', 'storeU16', 'storeU32', 'storeS32', 'storeU64'], body) as ((
    s8: typeof storeU8, s16: typeof storeU16, s32u: typeof storeU32, s32: typeof storeS32, s64: typeof storeU64,
  ) => CompiledEncoder) | null;
  return make === null ? null : make(storeU8, storeU16, storeU32, storeS32, storeU64);
}

/**
 * new Function(...params, body), or null where code generation is refused (a browser page whose Content
 * Security Policy forbids eval throws EvalError): the struct then keeps the loops.
 */
function generate(params: readonly string[], body: string): ((...args: never[]) => unknown) | null {
  try {
    // eslint-disable-next-line @typescript-eslint/no-implied-eval -- generated once per struct from its layout (see above)
    return new Function(...params, body) as (...args: never[]) => unknown;
  } catch (e) {
    if (e instanceof EvalError) return null;
    throw e;
  }
}
