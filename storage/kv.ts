/**
 * The small key-value interface every store backend implements: sorted string keys, binary values,
 * atomic batches with an optional fsync, and bounded range iteration. Domain logic lives above it
 * (store.ts), so the LevelDB and memory backends only have to agree on these few calls — and one
 * shared test suite holds them to it.
 */

/** One write in an atomic batch. */
export type KvOp = { type: 'put'; key: string; value: Uint8Array } | { type: 'del'; key: string };

/** A key range; bounds are compared in UTF-8 byte order, as LevelDB does. */
export interface KvRange {
  gt?: string;
  gte?: string;
  lt?: string;
  lte?: string;
  reverse?: boolean;
  limit?: number;
}

/** Options of a batch write. */
export interface KvWriteOptions {
  /** fsync before resolving: the write survives power loss. */
  sync: boolean;
}

/**
 * A sorted key-value store.
 *
 * A failed write poisons the open handle: LevelDB that failed to append to its write-ahead log goes on
 * appending after the damaged record, and its recovery drops everything after it — changes written
 * (and acknowledged) after a full disk was freed. So a backend writes nothing more on a handle after a
 * failed write until `recover()` has reopened it (a fresh log); `write()` recovers first by itself.
 */
export interface KvStore {
  open(): Promise<void>;
  /**
   * Closes the store. With `seal`, its backend also notes how it was left (a LevelDB folder: its files,
   * their sizes and times), so that the next `open` can tell whether anything touched it since, and
   * keeps the bytes `keep` (the store's index snapshot) outside its data, for that open only.
   */
  close(options?: { seal?: boolean; keep?: Uint8Array }): Promise<void>;
  /**
   * After `open`: whether the store is exactly as a sealed close left it — no process, this build or
   * an older one, opened or wrote it in between. The seal is used up by the open that reads it.
   */
  readonly untouchedSinceSeal: boolean;
  /** After `open`: the bytes the sealed close kept, when the store is untouched since (else undefined). */
  readonly sealed: Uint8Array | undefined;
  get(key: string): Promise<Uint8Array | undefined>;
  /** Applies all ops or none. After a failed write, recovers (see `recover`) before writing. */
  write(ops: readonly KvOp[], options: KvWriteOptions): Promise<void>;
  /**
   * After a failed write: reopens the backend, so that what it holds is what a restart would find and
   * later writes go to a fresh log; a no-op when no write has failed since it was opened. Rejects with
   * STORE_WRITE_FAILED when it cannot (the disk still full); then it is tried again by the next call.
   */
  recover(): Promise<void>;
  /** Entries in key order within the range; the snapshot is taken when iteration starts. */
  entries(range: KvRange): AsyncIterable<[string, Uint8Array]>;
  /** A read-only view of the store as it is now, unaffected by later writes, until closed. */
  snapshot(): KvSnapshot;
}

/** A point-in-time view of a store: several reads of it agree with one another. */
export interface KvSnapshot {
  entries(range: KvRange): AsyncIterable<[string, Uint8Array]>;
  close(): Promise<void>;
}

/** Compares two strings in UTF-8 byte order (what LevelDB's bytewise comparator does). */
export function compareKeys(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a.charCodeAt(i);
    const y = b.charCodeAt(i);
    if (x !== y) return utf8Rank(x) - utf8Rank(y);
  }
  return a.length - b.length;
}

// UTF-16 code units order surrogates (astral code points) below U+E000..U+FFFF; UTF-8 orders them above.
function utf8Rank(c: number): number {
  if (c >= 0xd800 && c <= 0xdfff) return c + 0x2000;
  if (c >= 0xe000) return c - 0x800;
  return c;
}

/** True when `key` lies inside `range`'s bounds. */
export function inRange(key: string, range: KvRange): boolean {
  if (range.gt !== undefined && compareKeys(key, range.gt) <= 0) return false;
  if (range.gte !== undefined && compareKeys(key, range.gte) < 0) return false;
  if (range.lt !== undefined && compareKeys(key, range.lt) >= 0) return false;
  if (range.lte !== undefined && compareKeys(key, range.lte) > 0) return false;
  return true;
}
