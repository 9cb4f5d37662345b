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

/** The content hash and the encoded size of a value, from one encoding (key order does not change the size). */
export function hashAndSize(value: unknown): { h: string; size: number } {
  const bytes = canonicalBytes(value);
  return { h: sha256hex(bytes).slice(0, 16), size: bytes.length };
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
