/**
 * How records are turned into bytes on disk, and the content hash used for checksum comparison.
 * msgpackr with records (shared structures) off: stored bytes must decode the same in any later build.
 */
import * as nodeCrypto from 'node:crypto';
import { Packr } from 'msgpackr';
import { MfpError } from '../protocol/errors.js';

const packr = new Packr({ useRecords: false, mapsAsObjects: true, moreTypes: false, structuredClone: false, int64AsType: 'number' });

/** Encodes a record for the store. */
export function encodeRecord(value: unknown): Uint8Array {
  return packr.pack(value);
}

/** Decodes a record read from the store; a record that cannot be decoded is STORE_CORRUPT. */
export function decodeRecord<T>(bytes: Uint8Array, key: string): T {
  try {
    return packr.unpack(bytes) as T;
  } catch (err) {
    throw new MfpError('STORE_CORRUPT', `record ${JSON.stringify(key)} cannot be decoded`, { cause: err });
  }
}

/** The fields of an item record that the store's index keeps (ItemState in store.ts). */
export interface ItemHead {
  v: number;
  h: string;
  by: string;
  at: number;
}

/**
 * The index fields of an item record (version, hash, writer, time) without building its value. Every
 * record is read this way when a store opens, and decoding each value only to drop it was most of the
 * start time. The value's bytes are still walked to their end, so a truncated or garbled record fails
 * here as it would in `decodeRecord`. Anything this reader does not expect — a field of another type,
 * an extension type, a missing field, bytes past the record — goes to `decodeRecord`, which decides
 * (STORE_CORRUPT or the decoded fields): the two agree on every record (tested).
 */
export function decodeItemHead(bytes: Uint8Array, key: string): ItemHead {
  return readItemHead(bytes) ?? decodeItem(bytes, key).head;
}

/** The full decode both readers fall back on: the index fields and the decoded value. */
function decodeItem(bytes: Uint8Array, key: string): { head: ItemHead; val: unknown } {
  const rec = decodeRecord<ItemHead & { val: unknown }>(bytes, key);
  return { head: { v: rec.v, h: rec.h, by: rec.by, at: rec.at }, val: rec.val };
}

const utf8 = new TextDecoder();

/**
 * decodeItemHead's fast path: the index fields, or undefined where it leaves the record to
 * decodeRecord (exported for its tests: every record this build writes is read here).
 */
export function readItemHead(b: Uint8Array): ItemHead | undefined {
  return walkItemRecord(b)?.head;
}

/**
 * An item record's index fields and its value's stored encoding (a view into the record), read
 * without decoding the value: what a server sends on as it is stored (protocol/codec.ts
 * `EncodedValue`). Where the record is not in the form this build writes (see decodeItemHead), it is
 * decoded and the value comes decoded instead.
 */
export function splitItemRecord(bytes: Uint8Array, key: string): { head: ItemHead; valBytes: Uint8Array } | { head: ItemHead; val: unknown } {
  const walked = walkItemRecord(bytes);
  if (walked && walked.valEnd > 0) return { head: walked.head, valBytes: bytes.subarray(walked.valStart, walked.valEnd) };
  return decodeItem(bytes, key);
}

function walkItemRecord(b: Uint8Array): { head: ItemHead; valStart: number; valEnd: number } | undefined {
  try {
    const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
    const t = b[0]!;
    let count: number;
    let pos: number;
    if (t >= 0x80 && t <= 0x8f) {
      count = t & 0x0f;
      pos = 1;
    } else if (t === 0xde) {
      count = dv.getUint16(1);
      pos = 3;
    } else if (t === 0xdf) {
      count = dv.getUint32(1);
      pos = 5;
    } else {
      return undefined;
    }
    let v: unknown;
    let h: unknown;
    let by: unknown;
    let at: unknown;
    let valStart = 0;
    let valEnd = 0;
    for (let i = 0; i < count; i++) {
      const k = readScalar(b, dv, pos);
      if (!k || typeof k.value !== 'string') return undefined;
      pos = k.end;
      if (k.value === 'v' || k.value === 'h' || k.value === 'by' || k.value === 'at') {
        const f = readScalar(b, dv, pos);
        if (!f) return undefined;
        pos = f.end;
        if (k.value === 'v') v = f.value;
        else if (k.value === 'h') h = f.value;
        else if (k.value === 'by') by = f.value;
        else at = f.value;
      } else {
        const start = pos;
        pos = skipValue(b, dv, pos);
        if (pos < 0) return undefined;
        if (k.value === 'val') {
          valStart = start;
          valEnd = pos;
        }
      }
    }
    if (pos !== b.length || typeof v !== 'number' || typeof h !== 'string' || typeof by !== 'string' || typeof at !== 'number') return undefined;
    return { head: { v, h, by, at }, valStart, valEnd };
  } catch {
    // Read past the end (a DataView RangeError): decodeRecord reports it.
    return undefined;
  }
}

/** A number or string at `pos` and where it ends; undefined for any other type. */
function readScalar(b: Uint8Array, dv: DataView, pos: number): { value: number | string; end: number } | undefined {
  const t = b[pos];
  if (t === undefined) return undefined;
  if (t <= 0x7f) return { value: t, end: pos + 1 };
  if (t >= 0xe0) return { value: t - 0x100, end: pos + 1 };
  if (t >= 0xa0 && t <= 0xbf) return str(b, pos + 1, t & 0x1f);
  switch (t) {
    case 0xd9: return str(b, pos + 2, dv.getUint8(pos + 1));
    case 0xda: return str(b, pos + 3, dv.getUint16(pos + 1));
    case 0xca: return { value: dv.getFloat32(pos + 1), end: pos + 5 };
    case 0xcb: return { value: dv.getFloat64(pos + 1), end: pos + 9 };
    case 0xcc: return { value: dv.getUint8(pos + 1), end: pos + 2 };
    case 0xcd: return { value: dv.getUint16(pos + 1), end: pos + 3 };
    case 0xce: return { value: dv.getUint32(pos + 1), end: pos + 5 };
    case 0xcf: return { value: Number(dv.getBigUint64(pos + 1)), end: pos + 9 };
    case 0xd0: return { value: dv.getInt8(pos + 1), end: pos + 2 };
    case 0xd1: return { value: dv.getInt16(pos + 1), end: pos + 3 };
    case 0xd2: return { value: dv.getInt32(pos + 1), end: pos + 5 };
    case 0xd3: return { value: Number(dv.getBigInt64(pos + 1)), end: pos + 9 };
    default: return undefined;
  }
}

function str(b: Uint8Array, start: number, length: number): { value: string; end: number } | undefined {
  const end = start + length;
  if (end > b.length) return undefined;
  return { value: utf8.decode(b.subarray(start, end)), end };
}

/** Deeper than any stored value can be (values are at most MAX_VALUE_DEPTH deep): left to msgpackr. */
const MAX_WALK_DEPTH = 64;

/**
 * Where the MessagePack value at `pos` ends, walking nested maps and arrays without building them; -1
 * for whatever it leaves to msgpackr, which knows what it accepts: a value that runs past the end, the
 * unused byte 0xc1, an extension type, a map key that is not a string, number, boolean or nil (msgpackr
 * refuses those when it makes maps into objects), or nesting deeper than MAX_WALK_DEPTH.
 */
function skipValue(b: Uint8Array, dv: DataView, pos: number, depth = 0): number {
  const t = b[pos];
  if (t === undefined || depth > MAX_WALK_DEPTH) return -1;
  if (t <= 0x7f || t >= 0xe0) return pos + 1;
  if (t <= 0x8f) return skipEntries(b, dv, pos + 1, t & 0x0f, true, depth);
  if (t <= 0x9f) return skipEntries(b, dv, pos + 1, t & 0x0f, false, depth);
  if (t <= 0xbf) return end(b, pos + 1 + (t & 0x1f));
  switch (t) {
    case 0xc0: case 0xc2: case 0xc3: return pos + 1;
    case 0xc4: case 0xd9: return end(b, pos + 2 + dv.getUint8(pos + 1));
    case 0xc5: case 0xda: return end(b, pos + 3 + dv.getUint16(pos + 1));
    case 0xc6: case 0xdb: return end(b, pos + 5 + dv.getUint32(pos + 1));
    case 0xca: return end(b, pos + 5);
    case 0xcb: return end(b, pos + 9);
    case 0xcc: case 0xd0: return end(b, pos + 2);
    case 0xcd: case 0xd1: return end(b, pos + 3);
    case 0xce: case 0xd2: return end(b, pos + 5);
    case 0xcf: case 0xd3: return end(b, pos + 9);
    case 0xdc: return skipEntries(b, dv, pos + 3, dv.getUint16(pos + 1), false, depth);
    case 0xdd: return skipEntries(b, dv, pos + 5, dv.getUint32(pos + 1), false, depth);
    case 0xde: return skipEntries(b, dv, pos + 3, dv.getUint16(pos + 1), true, depth);
    case 0xdf: return skipEntries(b, dv, pos + 5, dv.getUint32(pos + 1), true, depth);
    default: return -1;
  }
}

/** Skips `count` array elements or map entries (key and value) from `pos`. */
function skipEntries(b: Uint8Array, dv: DataView, pos: number, count: number, map: boolean, depth: number): number {
  for (let i = 0; i < count && pos >= 0; i++) {
    if (map) {
      const k = b[pos];
      // A key msgpackr makes a property of: a string, a number, a boolean or nil; not a map, an array or binary.
      if (k === undefined || (k >= 0x80 && k <= 0x9f) || (k >= 0xc4 && k <= 0xc6) || (k >= 0xdc && k <= 0xdf)) return -1;
      pos = skipValue(b, dv, pos, depth + 1);
      if (pos < 0) return -1;
    }
    pos = skipValue(b, dv, pos, depth + 1);
  }
  return pos;
}

function end(b: Uint8Array, pos: number): number {
  return pos <= b.length ? pos : -1;
}

/** Encodes a value canonically: object keys sorted at every depth, so equal data hashes equal. */
export function canonicalBytes(value: unknown): Uint8Array {
  return packr.pack(canonical(value));
}

/**
 * The value with object keys sorted at every depth. Parts already in order are returned as they are, not
 * copied: the group stores values in this form, so that values decoded from it need no allocation here.
 */
export function canonical(value: unknown): unknown {
  if (value === null || typeof value !== 'object' || value instanceof Uint8Array) return value;
  if (Array.isArray(value)) {
    let out: unknown[] | undefined;
    for (let i = 0; i < value.length; i++) {
      const c = canonical(value[i]);
      if (out) out.push(c);
      else if (c !== value[i]) (out = value.slice(0, i)).push(c);
    }
    return out ?? value;
  }
  const obj = value as Record<string, unknown>;
  const keys = Object.keys(obj);
  let sorted = true;
  for (let i = 1; i < keys.length && sorted; i++) sorted = keys[i - 1]! <= keys[i]!;
  if (sorted) {
    let i = 0;
    for (; i < keys.length; i++) if (canonical(obj[keys[i]!]) !== obj[keys[i]!]) break;
    if (i === keys.length) return value;
  }
  // Rebuilt in sorted order (integer-like keys still come first: the engine orders them so in any object).
  const out: Record<string, unknown> = {};
  for (const k of sorted ? keys : keys.sort()) out[k] = canonical(obj[k]);
  return out;
}

/** SHA-256 as hex: the one-shot `crypto.hash` where this Node.js has it (20.12+), else a Hash object. */
const sha256hex: (data: Uint8Array) => string =
  typeof (nodeCrypto as { hash?: unknown }).hash === 'function'
    ? (data) => (nodeCrypto as unknown as { hash: (alg: string, d: Uint8Array, enc: string) => string }).hash('sha256', data, 'hex')
    : (data) => nodeCrypto.createHash('sha256').update(data).digest('hex');

/** Content hash of an item value: 16 hex digits of SHA-256 over the canonical bytes. */
export function valueHash(value: unknown): string {
  return sha256hex(canonicalBytes(value)).slice(0, 16);
}

/** A value's content hash, canonical encoding and its size, from one encoding. */
export interface HashedValue {
  h: string;
  /** Key order does not change the size. */
  size: number;
  /** The value in canonical form (the value itself when it was already), and its encoding. */
  canonical: unknown;
  bytes: Uint8Array;
  /** The value was in canonical form already: `bytes` is its own encoding too (encodeItemRecord may use it). */
  exact: boolean;
}

/** The content hash, canonical encoding and encoded size of a value, from one encoding. */
export function hashAndSize(value: unknown): HashedValue {
  const c = canonical(value);
  const bytes = packr.pack(c);
  return { h: sha256hex(bytes).slice(0, 16), size: bytes.length, canonical: c, bytes, exact: c === value };
}

/** `val` as MessagePack, to be appended to a record's other fields. */
const VAL_KEY = Uint8Array.from(packr.pack('val'));

/**
 * Encodes an item record whose value is already encoded (`valBytes` encodes `rec.val`): the bytes
 * encodeRecord would write, without encoding the value a second time. The other fields are packed as a
 * map (msgpackr writes a map16 header) whose count is raised by one for the appended `val`.
 */
export function encodeItemRecord(rec: { val: unknown }, valBytes: Uint8Array): Uint8Array {
  const meta: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(rec)) if (k !== 'val') meta[k] = v;
  const head = packr.pack(meta);
  const count = head[0] === 0xde ? (head[1]! << 8) | head[2]! : -1;
  if (count < 0 || count >= 0xffff) return packr.pack(rec);
  const out = new Uint8Array(head.length + VAL_KEY.length + valBytes.length);
  out.set(head);
  out[1] = (count + 1) >> 8;
  out[2] = (count + 1) & 0xff;
  out.set(VAL_KEY, head.length);
  out.set(valBytes, head.length + VAL_KEY.length);
  return out;
}

/** Hash of a whole entity from its items' hashes, independent of item order. */
export function entityHash(items: Iterable<[string, string]>): string {
  const h = nodeCrypto.createHash('sha256');
  for (const [name, hash] of [...items].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) h.update(`${name}=${hash};`);
  return h.digest('hex').slice(0, 16);
}

/** Encoded size of a value, for the size limit. */
export function encodedSize(value: unknown): number {
  return packr.pack(value).length;
}
