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
