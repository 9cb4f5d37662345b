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
  const head = readItemHead(bytes);
  if (head) return head;
  const rec = decodeRecord<ItemHead>(bytes, key);
  return { v: rec.v, h: rec.h, by: rec.by, at: rec.at };
}

const utf8 = new TextDecoder();

/**
 * decodeItemHead's fast path: the index fields, or undefined where it leaves the record to
 * decodeRecord (exported for its tests: every record this build writes is read here).
 */
export function readItemHead(b: Uint8Array): ItemHead | undefined {
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
        pos = skipValue(b, dv, pos);
        if (pos < 0) return undefined;
      }
    }
    if (pos !== b.length || typeof v !== 'number' || typeof h !== 'string' || typeof by !== 'string' || typeof at !== 'number') return undefined;
    return { v, h, by, at };
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

/**
 * Where the MessagePack value at `pos` ends, walking nested maps and arrays without building them; -1
 * if it runs past the end, starts with the unused byte 0xc1, or holds an extension type (left to
 * msgpackr, which knows which it accepts).
 */
function skipValue(b: Uint8Array, dv: DataView, pos: number): number {
  let pending = 1;
  while (pending > 0) {
    const t = b[pos];
    if (t === undefined) return -1;
    pending--;
    if (t <= 0x7f || t >= 0xe0) {
      pos += 1;
    } else if (t <= 0x8f) {
      pending += 2 * (t & 0x0f);
      pos += 1;
    } else if (t <= 0x9f) {
      pending += t & 0x0f;
      pos += 1;
    } else if (t <= 0xbf) {
      pos += 1 + (t & 0x1f);
    } else {
      // Maps and arrays add their entries to what is left to walk.
      switch (t) {
        case 0xc0: case 0xc2: case 0xc3: pos += 1; break;
        case 0xc4: case 0xd9: pos += 2 + dv.getUint8(pos + 1); break;
        case 0xc5: case 0xda: pos += 3 + dv.getUint16(pos + 1); break;
        case 0xc6: case 0xdb: pos += 5 + dv.getUint32(pos + 1); break;
        case 0xca: pos += 5; break;
        case 0xcb: pos += 9; break;
        case 0xcc: case 0xd0: pos += 2; break;
        case 0xcd: case 0xd1: pos += 3; break;
        case 0xce: case 0xd2: pos += 5; break;
        case 0xcf: case 0xd3: pos += 9; break;
        case 0xdc: pending += dv.getUint16(pos + 1); pos += 3; break;
        case 0xdd: pending += dv.getUint32(pos + 1); pos += 5; break;
        case 0xde: pending += 2 * dv.getUint16(pos + 1); pos += 3; break;
        case 0xdf: pending += 2 * dv.getUint32(pos + 1); pos += 5; break;
        default: return -1;
      }
    }
  }
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
