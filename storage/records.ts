/**
 * How records are turned into bytes on disk, and the content hash used for checksum comparison.
 * msgpackr with records (shared structures) off: stored bytes must decode the same in any later build.
 */
import { createHash } from 'node:crypto';
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

function canonical(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(canonical);
  if (value !== null && typeof value === 'object' && !(value instanceof Uint8Array)) {
    const out: Record<string, unknown> = {};
    for (const k of Object.keys(value).sort()) out[k] = canonical((value as Record<string, unknown>)[k]);
    return out;
  }
  return value;
}

/** Content hash of an item value: 16 hex digits of SHA-256 over the canonical bytes. */
export function valueHash(value: unknown): string {
  return createHash('sha256').update(canonicalBytes(value)).digest('hex').slice(0, 16);
}

/** Hash of a whole entity from its items' hashes, independent of item order. */
export function entityHash(items: Iterable<[string, string]>): string {
  const h = createHash('sha256');
  for (const [name, hash] of [...items].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) h.update(`${name}=${hash};`);
  return h.digest('hex').slice(0, 16);
}

/** Encoded size of a value, for the size limit. */
export function encodedSize(value: unknown): number {
  return packr.pack(value).length;
}
