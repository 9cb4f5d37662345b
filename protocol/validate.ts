/**
 * Field readers for decoded messages. Every message is checked with these before anything uses it:
 * a wrong shape is MESSAGE_INVALID naming the field, never a TypeError deep inside a role.
 */
import { MfpError } from './errors.js';
import { MAX_LIST_ENTRIES, MAX_NAME_BYTES, MAX_VALUE_DEPTH } from './limits.js';

/** A decoded MessagePack map. */
export type Fields = Record<string, unknown>;

/** Throws MESSAGE_INVALID about one field. */
export function invalid(type: string, field: string, why: string): never {
  throw new MfpError('MESSAGE_INVALID', `${type}.${field} ${why}`);
}

/** Whether a value is a plain map (not an array, not binary). */
export function isFields(v: unknown): v is Fields {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Uint8Array);
}

/** Reads a map-valued field. */
export function fields(type: string, o: Fields, k: string): Fields {
  const v = o[k];
  if (!isFields(v)) invalid(type, k, 'must be a map');
  return v;
}

/** Reads a string field of bounded UTF-8 length. */
export function str(type: string, o: Fields, k: string, maxBytes = MAX_NAME_BYTES): string {
  return strValue(type, k, o[k], maxBytes);
}

/** Checks a string of bounded UTF-8 length; `field` names it in the error. */
export function strValue(type: string, field: string, v: unknown, maxBytes = MAX_NAME_BYTES): string {
  if (typeof v !== 'string') invalid(type, field, 'must be a string');
  if (v.length > maxBytes || Buffer.byteLength(v) > maxBytes) invalid(type, field, `exceeds ${maxBytes} bytes`);
  return v;
}

/**
 * Cuts a text to at most `maxBytes` of UTF-8, on a character boundary, marking the cut with `…`. A
 * message that quotes what a peer sent (a name, a path) must still fit the reader's bound, or the peer
 * could not decode the refusal it is owed.
 */
export function clipText(text: string, maxBytes: number): string {
  if (text.length <= maxBytes / 3 || Buffer.byteLength(text) <= maxBytes) return text;
  const bytes = Buffer.from(text);
  // Cut before a character's first byte (never inside one), leaving room for the 3 bytes of `…`.
  let end = maxBytes - 3;
  while (end > 0 && (bytes[end]! & 0xc0) === 0x80) end--;
  return `${bytes.subarray(0, end).toString()}…`;
}

/** Reads a string-or-null field. */
export function strOrNull(type: string, o: Fields, k: string, maxBytes = MAX_NAME_BYTES): string | null {
  return o[k] === null || o[k] === undefined ? null : str(type, o, k, maxBytes);
}

/** Reads a safe integer field within [min, max]. */
export function int(type: string, o: Fields, k: string, min = 0, max = Number.MAX_SAFE_INTEGER): number {
  return intValue(type, k, o[k], min, max);
}

/** Checks a safe integer within [min, max]. */
export function intValue(type: string, k: string, v: unknown, min = 0, max = Number.MAX_SAFE_INTEGER): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min || v > max) invalid(type, k, `must be an integer in [${min}, ${max}]`);
  return v;
}

/** Reads a boolean field. */
export function bool(type: string, o: Fields, k: string): boolean {
  const v = o[k];
  if (typeof v !== 'boolean') invalid(type, k, 'must be a boolean');
  return v;
}

/** Reads a binary field, optionally of an exact length. */
export function bin(type: string, o: Fields, k: string, length?: number, maxBytes = 64 * 1024): Uint8Array {
  const v = o[k];
  if (!(v instanceof Uint8Array)) invalid(type, k, 'must be binary');
  if (length !== undefined && v.length !== length) invalid(type, k, `must be ${length} bytes`);
  if (v.length > maxBytes) invalid(type, k, `exceeds ${maxBytes} bytes`);
  return v;
}

/** Reads a bounded array field. */
export function list(type: string, o: Fields, k: string, max = MAX_LIST_ENTRIES): unknown[] {
  const v = o[k];
  if (!Array.isArray(v)) invalid(type, k, 'must be an array');
  if (v.length > max) invalid(type, k, `has more than ${max} entries`);
  return v;
}

/** Reads a bounded array of bounded strings. */
export function strList(type: string, o: Fields, k: string, max = MAX_LIST_ENTRIES, maxBytes = MAX_NAME_BYTES): string[] {
  const v = list(type, o, k, max);
  for (const x of v) strValue(type, k, x, maxBytes);
  return v as string[];
}

/**
 * A decoded value as an error message may quote it: any value a peer can send (a BigInt, a Date, a
 * nested map) gives a short text and never throws — JSON.stringify throws on a BigInt, which once turned
 * a frame whose type was a BigInt into an uncoded TypeError (found by the fuzz test).
 */
export function describeValue(v: unknown): string {
  let text: string;
  try {
    text = typeof v === 'bigint' ? `${v}n` : (JSON.stringify(v, (_k, x: unknown) => (typeof x === 'bigint' ? `${x}n` : x)) ?? String(v));
  } catch {
    text = `a ${typeof v}`;
  }
  return text.length > 64 ? `${text.slice(0, 61)}...` : text;
}

/** Reads one of a fixed set of strings. */
export function oneOf<T extends string>(type: string, o: Fields, k: string, allowed: readonly T[]): T {
  const v = o[k];
  if (typeof v !== 'string' || !(allowed as readonly string[]).includes(v)) invalid(type, k, `must be one of ${allowed.join(', ')}`);
  return v as T;
}

/**
 * Checks an item value: only what JSON and MessagePack share (nil, booleans, finite numbers, strings,
 * bytes, arrays, plain maps), bounded nesting; returns it. (Size is bounded by the frame limit.)
 * msgpackr's extension types (BigInt, Date, Set, RegExp, typed arrays, Error) would not survive a
 * relay through another peer unchanged, so they are refused here.
 */
export function itemValue(type: string, k: string, v: unknown, depth = 0): unknown {
  if (depth > MAX_VALUE_DEPTH) invalid(type, k, `nests deeper than ${MAX_VALUE_DEPTH}`);
  switch (typeof v) {
    case 'string':
    case 'boolean':
      return v;
    case 'number':
      if (!Number.isFinite(v)) invalid(type, k, 'holds a non-finite number');
      return v;
    case 'object':
      if (v === null || (v instanceof Uint8Array && v.constructor === Buffer) || v.constructor === Uint8Array) return v;
      if (Array.isArray(v)) {
        for (const x of v) itemValue(type, k, x, depth + 1);
        return v;
      }
      if (Object.getPrototypeOf(v) === Object.prototype) {
        // JSON.parse makes `__proto__` an own key; MessagePack peers would rename or refuse it.
        if (Object.hasOwn(v, '__proto__')) invalid(type, k, 'holds the key __proto__');
        for (const x of Object.values(v)) itemValue(type, k, x, depth + 1);
        return v;
      }
      return invalid(type, k, `holds a ${v.constructor?.name ?? 'non-plain'} object; item values are plain data`);
    default:
      return invalid(type, k, `holds ${v === undefined ? 'undefined' : `a ${typeof v}`}; item values are plain data`);
  }
}
