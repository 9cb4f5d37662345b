/**
 * The group store as an *image*: its raw key/value pairs, minus the few records that belong to the
 * machine rather than to the group (failed-login counters, and the replica's own note of its last
 * run). Replication mirrors the image on a target, a backup carries it, restore and recovery install it.
 *
 * Two images are compared without sending them. Every entry has a 16-byte hash (SHA-256 of key and
 * value); entries fall into buckets — the key's tag and one of 1,024 slots by a hash of the key — and a
 * bucket's digest is the XOR of its entries' hashes, a tag's the XOR of its buckets', the image's the
 * XOR of everything. A replication sends the tag digests; the target answers its bucket digests for
 * the tags that differ; the source sends the whole content of the buckets that differ, and the target
 * installs them in one atomic batch only after the result's digest is checked to equal the source's.
 * A change to one item therefore costs one small bucket, not a copy of the database.
 */
import { createHash } from 'node:crypto';
import { MfpError } from '../protocol/errors.js';
import { Keys } from './keys.js';
import type { KvOp, KvRange, KvStore } from './kv.js';

/** Slots per tag; a bucket is a tag and a slot. */
export const BUCKETS_PER_TAG = 1024;
/** Bytes of an entry hash and of every digest. */
export const DIGEST_BYTES = 16;

/** The replica's note of its last run: in the mirrored store, yet not part of the image. */
export const REPLICATED_KEY = Keys.meta('replicated');

/** Anything a snapshot or a store can be read through. */
export interface EntrySource {
  entries(range: KvRange): AsyncIterable<[string, Uint8Array]>;
}

/** Whether a key belongs to this machine only (never copied, never replaced by an image). */
export function isMachineLocal(key: string): boolean {
  return key.charCodeAt(0) === 0x41 /* A: failed administrator logins */ || key === REPLICATED_KEY || key === INDEX_SNAPSHOT_KEY;
}

/** Where earlier builds kept the index snapshot (store.ts): a record of this folder only, never part of an image. */
const INDEX_SNAPSHOT_KEY = Keys.indexSnapshot();

/** The bucket of a key: its tag and slot, e.g. `I517`. */
export function bucketOf(key: string): string {
  // FNV-1a over UTF-16 code units: cheap, stable across builds, and only ever compared with itself.
  let h = 0x811c9dc5;
  for (let i = 0; i < key.length; i++) {
    h ^= key.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return `${key[0] ?? ''}${(h >>> 0) % BUCKETS_PER_TAG}`;
}

/** The tag of a bucket. */
export function tagOf(bucket: string): string {
  return bucket[0] ?? '';
}

/** The 16-byte hash of one entry. */
export function entryHash(key: string, value: Uint8Array): Buffer {
  return createHash('sha256').update(key).update('\x00').update(value).digest().subarray(0, DIGEST_BYTES);
}

function xorInto(acc: Uint8Array, h: Uint8Array): void {
  for (let i = 0; i < DIGEST_BYTES; i++) acc[i]! ^= h[i]!;
}

function zero(): Buffer {
  return Buffer.alloc(DIGEST_BYTES);
}

/** Whether two digests are equal. */
export function sameDigest(a: Uint8Array | undefined, b: Uint8Array | undefined): boolean {
  const x = a ?? zero();
  const y = b ?? zero();
  return Buffer.from(x.buffer, x.byteOffset, x.byteLength).equals(Buffer.from(y.buffer, y.byteOffset, y.byteLength));
}

/** Digests of an image, by bucket and by tag, and of the whole; with its size. */
export class ImageDigest {
  readonly total = zero();
  readonly tags = new Map<string, Buffer>();
  readonly buckets = new Map<string, Buffer>();
  entries = 0;
  bytes = 0;

  /** Adds one entry. */
  add(key: string, value: Uint8Array): void {
    const h = entryHash(key, value);
    const bucket = bucketOf(key);
    const tag = tagOf(bucket);
    let b = this.buckets.get(bucket);
    if (!b) this.buckets.set(bucket, (b = zero()));
    let t = this.tags.get(tag);
    if (!t) this.tags.set(tag, (t = zero()));
    xorInto(b, h);
    xorInto(t, h);
    xorInto(this.total, h);
    this.entries++;
    this.bytes += key.length + value.length;
  }

  /** The digests of an image read whole from `source` (a snapshot, for a consistent one). */
  static async of(source: EntrySource): Promise<ImageDigest> {
    const d = new ImageDigest();
    for await (const [k, v] of imageEntries(source)) d.add(k, v);
    return d;
  }

  /** Tag digests as sent on the wire. */
  tagList(): [string, Uint8Array][] {
    return [...this.tags].sort(([a], [b]) => (a < b ? -1 : 1));
  }

  /** Bucket digests of the tags whose digest differs from `theirs`, as sent on the wire. */
  bucketsDifferingFrom(theirs: ReadonlyMap<string, Uint8Array>): [string, Uint8Array][] {
    const tags = new Set([...this.tags.keys(), ...theirs.keys()].filter((t) => !sameDigest(this.tags.get(t), theirs.get(t))));
    return [...this.buckets].filter(([b]) => tags.has(tagOf(b)));
  }
}

/** The image's entries of a source, in key order (machine-local records left out). */
export async function* imageEntries(source: EntrySource, wanted?: (bucket: string) => boolean): AsyncIterable<[string, Uint8Array]> {
  for await (const [k, v] of source.entries({})) {
    if (isMachineLocal(k)) continue;
    if (wanted && !wanted(bucketOf(k))) continue;
    yield [k, v];
  }
}

/**
 * Which buckets a source must send so that a target with digests `target` (bucket digests of the tags
 * that differ, and the tag digests of both sides) ends up equal: every bucket of a differing tag whose
 * digest differs, on either side.
 */
export function bucketsToSend(source: ImageDigest, targetTags: ReadonlyMap<string, Uint8Array>, targetBuckets: ReadonlyMap<string, Uint8Array>): Set<string> {
  const out = new Set<string>();
  const tags = new Set([...source.tags.keys(), ...targetTags.keys()].filter((t) => !sameDigest(source.tags.get(t), targetTags.get(t))));
  for (const b of new Set([...source.buckets.keys(), ...targetBuckets.keys()])) {
    if (tags.has(tagOf(b)) && !sameDigest(source.buckets.get(b), targetBuckets.get(b))) out.add(b);
  }
  return out;
}

/** What a source declares at the end of a transfer, for the receiver to check before installing. */
export interface ImageCommit {
  /** Every bucket whose content was sent (an empty one: the target must empty it). */
  buckets: readonly string[];
  /** The digest of the source's whole image. */
  total: Uint8Array;
  /** Entries of the source's whole image. */
  entries: number;
}

/**
 * The receiving end of a transfer: entries are staged in memory and installed in one atomic batch,
 * only once the commit's digest checks. Until then the store is untouched, so a transfer cut at any
 * point leaves the previous image whole.
 */
export class ImageReceiver {
  readonly #staged = new Map<string, Uint8Array>();
  #bytes = 0;
  readonly #maxBytes: number;

  constructor(options: { maxBytes: number }) {
    this.#maxBytes = options.maxBytes;
  }

  /** Bytes staged so far. */
  get bytes(): number {
    return this.#bytes;
  }

  /** The staged entries, in the order received. */
  entries(): [string, Uint8Array][] {
    return [...this.#staged];
  }

  /** Stages received entries. */
  add(entries: readonly (readonly [string, Uint8Array])[]): void {
    for (const [k, v] of entries) {
      if (isMachineLocal(k)) throw new MfpError('MESSAGE_INVALID', `an image must not carry the machine-local record ${JSON.stringify(k)}`);
      if (this.#staged.has(k)) throw new MfpError('MESSAGE_INVALID', `the image sent ${JSON.stringify(k)} twice`);
      this.#bytes += k.length + v.length;
      if (this.#bytes > this.#maxBytes) throw new MfpError('FRAME_TOO_LARGE', `the image exceeds ${this.#maxBytes} bytes`);
      this.#staged.set(k, v);
    }
  }

  /**
   * The batch that makes `kv` hold the source's image: the committed buckets are replaced by what was
   * staged, every other bucket stays. `current` is the digest of `kv`'s image now (the store must not
   * change meanwhile: one transfer at a time). Throws MESSAGE_INVALID, touching nothing, when the
   * result would not be the source's image — an entry outside the committed buckets, or any digest
   * that disagrees.
   */
  async installOps(kv: EntrySource, current: ImageDigest, commit: ImageCommit): Promise<KvOp[]> {
    const committed = new Set(commit.buckets);
    const after = new ImageDigest();
    for (const [k, v] of this.#staged) {
      if (!committed.has(bucketOf(k))) throw new MfpError('MESSAGE_INVALID', `${JSON.stringify(k)} lies outside the buckets the transfer committed`);
      after.add(k, v);
    }
    // The result's digest: our buckets that were not sent, and the sent ones as received.
    const total = Buffer.from(after.total);
    let entries = after.entries;
    for (const [b, d] of current.buckets) if (!committed.has(b)) xorInto(total, d);
    if (!sameDigest(total, commit.total)) {
      throw new MfpError('MESSAGE_INVALID', 'the transferred image does not match the source\'s digest: nothing was installed');
    }
    const ops: KvOp[] = [];
    for await (const [k] of imageEntries(kv)) {
      const inCommitted = committed.has(bucketOf(k));
      if (inCommitted && !this.#staged.has(k)) ops.push({ type: 'del', key: k });
      if (!inCommitted) entries++;
    }
    if (entries !== commit.entries) {
      throw new MfpError('MESSAGE_INVALID', `the image would hold ${entries} entries, the source's holds ${commit.entries}: nothing was installed`);
    }
    for (const [k, v] of this.#staged) ops.push({ type: 'put', key: k, value: v });
    return ops;
  }
}

/** Replaces a store's whole image with `entries` in one atomic, fsync'ed batch (restore, recovery). */
export async function installImage(kv: KvStore, entries: Iterable<readonly [string, Uint8Array]>, extra: readonly KvOp[] = []): Promise<void> {
  const receiver = new ImageReceiver({ maxBytes: Number.MAX_SAFE_INTEGER });
  const list = [...entries];
  receiver.add(list);
  const digest = new ImageDigest();
  for (const [k, v] of list) digest.add(k, v);
  const current = await ImageDigest.of(kv);
  const all = [...new Set([...current.buckets.keys(), ...digest.buckets.keys()])];
  const ops = await receiver.installOps(kv, current, { buckets: all, total: digest.total, entries: digest.entries });
  await kv.write([...ops, ...extra], { sync: true });
}
