/**
 * The store core shared by the group's authoritative store (server) and a machine's local store
 * (client, standalone): items of entities with an in-memory index of their versions and hashes, the
 * 1,000-user bound, metadata, the conflict log and the sync log — all written through one group-commit
 * writer, so every write is one atomic (and, by default, fsync'ed) LevelDB batch.
 *
 * Invariant: the in-memory index mirrors what is on disk after the last successful batch. Builders run
 * synchronously in submission order and update the index as they go; if a batch fails, the index is
 * reloaded from disk and every job of that batch is rejected with STORE_WRITE_FAILED.
 *
 * After a failed batch nothing more is acknowledged until the backend has been reopened (`recover`: a
 * LevelDB that failed to append to its log would otherwise go on writing after the damaged record, and
 * a restart would drop what followed it) and the index reloaded from what the reopened store holds.
 * Until that succeeds — the disk still full — every job is rejected with STORE_WRITE_FAILED.
 */
import { MfpError } from '../protocol/errors.js';
import { MAX_USERS } from '../protocol/limits.js';
import { parseEntity, type EntityKey } from './catalog.js';
import { Keys, parseSeqPart } from './keys.js';
import type { KvOp, KvRange, KvStore } from './kv.js';
import { decodeItemHead, decodeRecord, encodeItemRecord, encodeRecord, entityHash } from './records.js';

/** What the index keeps of an item. */
export interface ItemState {
  /** Version: on the group store, the sequence number of the change that wrote it. */
  v: number;
  /** Content hash of the group form of the value. */
  h: string;
  /** Device id of the writer. */
  by: string;
  /** Wall-clock time of the write (ms). */
  at: number;
}

/** An item as stored. */
export interface ItemRecord extends ItemState {
  val: unknown;
}

/** A conflict log entry: a value that lost against the server's. */
export interface ConflictEntry {
  at: number;
  deviceId: string;
  entity: EntityKey;
  item: string;
  /** The value that lost. */
  value: unknown;
  /** The version it was based on, and the server's version that won. */
  base: number;
  serverVersion: number;
  /** `rejected`: the server refused the change (SPEC §6); `code` says why. */
  reason: 'offline-edit' | 'join' | 'resync' | 'rejected';
  /** The refusal's error code, for a rejected change. */
  code?: string;
}

/**
 * A conflict entry as written: the losing value either as such, or as the item record it was read as
 * (a join replacing many items logs their stored bytes as they are, with no decoding and re-encoding).
 */
export type ConflictInput = ConflictEntry | (Omit<ConflictEntry, 'value'> & { record: Uint8Array });

/** Levels of the sync log (SPEC §8). */
export type LogLevel = 'info' | 'warning' | 'error';

/** A sync log entry. */
export interface SyncLogEntry {
  at: number;
  level: LogLevel;
  code: string;
  message: string;
  deviceId?: string;
}

/** How durable an acknowledged write is. */
export type Durability = 'fsync' | 'os';

/** Options of a store. */
export interface StoreOptions {
  kv: KvStore;
  /** `fsync` (default): a batch is on disk before it resolves. `os`: the OS has it; power loss may lose it. */
  durability?: Durability;
  /** Clock for record timestamps. */
  now?: () => number;
  /** The user bound (SPEC §2); tests lower it. */
  maxUsers?: number;
  /** Sync log and conflict log entries kept, each; older ones are deleted. */
  maxLogEntries?: number;
  /** Bytes of records the sync log and the conflict log keep, each (16 MiB); older entries are deleted. */
  maxLogBytes?: number;
}

/** A bounded log's keys, oldest first, with the sizes of their records. */
interface LogIndex {
  keys: string[];
  sizes: number[];
  bytes: number;
}

function emptyLog(): LogIndex {
  return { keys: [], sizes: [], bytes: 0 };
}

/**
 * The index snapshot: what a store's index holds (every item's version, hash, writer and time; users'
 * last use; the bounded logs' keys and sizes), kept by a clean close beside the backend's data, outside
 * it (KvStore.close's `keep`), and handed back by the next open only if the seal holds; that open
 * deletes it either way. At a restart with 1,000 users (14,000 item records, 9 MB) it replaces a walk
 * of every record with one read. It is machine-local: never part of an image. Earlier builds kept it
 * as a record under this key; an open deletes such a record, unread.
 */
const LEGACY_SNAPSHOT_KEY = Keys.indexSnapshot();
const INDEX_SNAPSHOT_FORMAT = 1;

/** An index snapshot's record: items as [entity, [item, v, h, by, at, …], …], users as [user, lastUsed, …]. */
interface IndexSnapshot {
  format: number;
  items: unknown[];
  users: unknown[];
  syncLog: [string[], number[]];
  conflictLog: [string[], number[]];
}

/** The snapshot, or undefined when it is not one this build wrote (then the records are read). */
function readIndexSnapshot(bytes: Uint8Array): IndexSnapshot | undefined {
  let s: Partial<IndexSnapshot>;
  try {
    s = decodeRecord<Partial<IndexSnapshot>>(bytes, 'index snapshot');
  } catch {
    return undefined;
  }
  const list = (x: unknown, step: number): boolean => Array.isArray(x) && x.length % step === 0;
  const log = (x: unknown): boolean => Array.isArray(x) && x.length === 2 && Array.isArray(x[0]) && Array.isArray(x[1]) && x[0].length === x[1].length;
  if (s.format !== INDEX_SNAPSHOT_FORMAT || !list(s.items, 2) || !list(s.users, 2) || !log(s.syncLog) || !log(s.conflictLog)) return undefined;
  for (let i = 0; i < s.items!.length; i += 2) {
    if (typeof s.items![i] !== 'string' || !list(s.items![i + 1], 5)) return undefined;
  }
  return s as IndexSnapshot;
}

/** A batch being built. Builders add ops; the writer commits them with the rest of the group. */
export class Tx {
  readonly ops: KvOp[] = [];
  put(key: string, value: unknown): void {
    this.ops.push({ type: 'put', key, value: encodeRecord(value) });
  }
  /** Puts an item record; with `valBytes` (the encoding of `rec.val`) its value is not encoded again. */
  putItem(key: string, rec: ItemRecord, valBytes?: Uint8Array): void {
    this.ops.push({ type: 'put', key, value: valBytes ? encodeItemRecord(rec, valBytes) : encodeRecord(rec) });
  }
  del(key: string): void {
    this.ops.push({ type: 'del', key });
  }
}

interface Job {
  build: (tx: Tx) => unknown;
  sync: boolean;
  resolve: (v: unknown) => void;
  reject: (e: unknown) => void;
}

/** Failed administrator logins of one source address or account. */
export interface AuthRecord {
  failures: number;
  /** When the counted failures began. */
  since: number;
  /** Admission is refused until then (0: not locked). */
  lockedUntil: number;
}

/** The store core; GroupStore and LocalStore add their role's operations. */
export class Store {
  readonly kv: KvStore;
  readonly now: () => number;
  readonly maxUsers: number;
  protected readonly durability: Durability;
  protected readonly maxLogEntries: number;
  protected readonly maxLogBytes: number;
  /** entity → item name → state */
  protected readonly index = new Map<EntityKey, Map<string, ItemState>>();
  /** user name → last use (ms) */
  protected readonly userUse = new Map<string, number>();
  #jobs: Job[] = [];
  #writing = false;
  #closed = false;
  /** Tie-breaker of log keys written in the same millisecond; continues from disk after a restart. */
  #tick = 0;
  #syncLog = emptyLog();
  #conflictLog = emptyLog();
  /** The index snapshot read at open, until the first reloadIndex consumes it. */
  #snapshot: IndexSnapshot | undefined;
  #writeError: MfpError | undefined;
  /** A batch failed: the backend is reopened and the index reloaded before the next one is built. */
  #mustRecover = false;
  /** Batches written and jobs they carried, for the benchmark's group-commit figure. */
  readonly stats = { batches: 0, jobs: 0 };

  protected constructor(options: StoreOptions) {
    this.kv = options.kv;
    this.now = options.now ?? Date.now;
    this.durability = options.durability ?? 'fsync';
    this.maxUsers = options.maxUsers ?? MAX_USERS;
    this.maxLogEntries = options.maxLogEntries ?? 10_000;
    this.maxLogBytes = options.maxLogBytes ?? 16 * 2 ** 20;
  }

  /**
   * Opens the backend and loads the index: from the index snapshot a clean close left (one read instead
   * of walking every item record), else from the records themselves.
   */
  protected async load(): Promise<void> {
    await this.kv.open();
    this.#snapshot = await this.#takeIndexSnapshot();
    await this.reloadIndex();
  }

  /**
   * The index snapshot the backend kept at its sealed close, if it is untouched since (an older build,
   * a restore's install or any other writer in between leaves none); a snapshot this build cannot read
   * is dropped. The backend has already deleted it: from then on the records alone are the truth, so a
   * crash later (no clean close) is followed by a full reload. A snapshot record an earlier build left
   * is deleted (fsync'ed) before anything else is written.
   */
  async #takeIndexSnapshot(): Promise<IndexSnapshot | undefined> {
    if ((await this.kv.get(LEGACY_SNAPSHOT_KEY)) !== undefined) await this.kv.write([{ type: 'del', key: LEGACY_SNAPSHOT_KEY }], { sync: true });
    const bytes = this.kv.sealed;
    return bytes === undefined ? undefined : readIndexSnapshot(bytes);
  }

  /** Rebuilds every in-memory structure from disk. Subclasses extend it. */
  protected async reloadIndex(): Promise<void> {
    this.index.clear();
    this.userUse.clear();
    this.#syncLog = emptyLog();
    this.#conflictLog = emptyLog();
    const snapshot = this.#snapshot;
    this.#snapshot = undefined;
    if (snapshot) {
      for (let i = 0; i < snapshot.items.length; i += 2) {
        const entity = snapshot.items[i] as EntityKey;
        const heads = snapshot.items[i + 1] as (string | number)[];
        for (let j = 0; j < heads.length; j += 5) {
          this.#setIndex(entity, heads[j] as string, { v: heads[j + 1] as number, h: heads[j + 2] as string, by: heads[j + 3] as string, at: heads[j + 4] as number });
        }
      }
      for (let i = 0; i < snapshot.users.length; i += 2) this.userUse.set(snapshot.users[i] as string, snapshot.users[i + 1] as number);
      this.#syncLog = { keys: snapshot.syncLog[0], sizes: snapshot.syncLog[1], bytes: snapshot.syncLog[1].reduce((a, b) => a + b, 0) };
      this.#conflictLog = { keys: snapshot.conflictLog[0], sizes: snapshot.conflictLog[1], bytes: snapshot.conflictLog[1].reduce((a, b) => a + b, 0) };
    } else {
      for await (const [k, bytes] of this.kv.entries(Keys.allItems())) {
        const [, entity, item] = Keys.split(k);
        this.#setIndex(entity!, item!, decodeItemHead(bytes, k));
      }
      for await (const [k, bytes] of this.kv.entries(Keys.allUsers())) {
        this.userUse.set(Keys.split(k)[1]!, decodeRecord<{ lastUsed: number }>(bytes, k).lastUsed);
      }
      for await (const [k, bytes] of this.kv.entries(Keys.allSyncLog())) logPush(this.#syncLog, k, bytes.length);
      for await (const [k, bytes] of this.kv.entries(Keys.allConflicts())) logPush(this.#conflictLog, k, bytes.length);
    }
    this.#tick = 1 + Math.max(-1, ...[...this.#syncLog.keys, ...this.#conflictLog.keys].map((k) => parseSeqPart(Keys.split(k)[2]!)));
  }

  /** The base index as an index snapshot's bytes (see LEGACY_SNAPSHOT_KEY). */
  #indexSnapshot(): Uint8Array {
    const items: unknown[] = [];
    for (const [entity, states] of this.index) {
      const heads: unknown[] = [];
      for (const [item, s] of states) heads.push(item, s.v, s.h, s.by, s.at);
      items.push(entity, heads);
    }
    const users: unknown[] = [];
    for (const [u, at] of this.userUse) users.push(u, at);
    const snapshot: IndexSnapshot = {
      format: INDEX_SNAPSHOT_FORMAT,
      items,
      users,
      syncLog: [this.#syncLog.keys, this.#syncLog.sizes],
      conflictLog: [this.#conflictLog.keys, this.#conflictLog.sizes],
    };
    return encodeRecord(snapshot);
  }

  /**
   * Appends to a bounded log inside a batch: the oldest entries go, past a count and past a size — a
   * peer's values that lose (up to 256 KiB each) cannot fill the disk through the conflict log.
   */
  #appendBoundedTx(tx: Tx, log: LogIndex, key: (at: number, n: number) => string, entry: { at: number }): void {
    const k = key(entry.at, this.#tick++);
    tx.put(k, entry);
    const op = tx.ops[tx.ops.length - 1]!;
    logPush(log, k, op.type === 'put' ? op.value.length : 0);
    while (log.keys.length > this.maxLogEntries || (log.bytes > this.maxLogBytes && log.keys.length > 1)) {
      tx.del(log.keys.shift()!);
      log.bytes -= log.sizes.shift()!;
    }
  }

  /**
   * Closes the store after pending writes. A store whose last write succeeded leaves an index snapshot,
   * so that the next open reads its index at once; one that cannot write it (a full disk) is simply
   * reloaded from its records at the next open.
   */
  async close(): Promise<void> {
    if (this.#closed) return;
    // A pending write that fails (a full disk) is reported to its caller; the store closes all the same.
    await this.#settled();
    this.#closed = true;
    const clean = !this.#mustRecover && this.#writeError === undefined;
    await this.kv.close(clean ? { seal: true, keep: this.#indexSnapshot() } : {});
  }

  /** Resolves when every write submitted so far is committed. */
  async flush(): Promise<void> {
    if (this.#jobs.length === 0 && !this.#writing) return;
    await this.commit(() => undefined, { sync: false });
  }

  /** Resolves once the writes submitted so far are done, failed ones too (their callers hear of it). */
  async #settled(): Promise<void> {
    await this.flush().catch(() => undefined);
  }

  /**
   * Submits a builder to the group-commit writer. Builders queued while a batch is being written are
   * committed together in the next batch: one fsync for many changes under load.
   */
  protected commit<R>(build: (tx: Tx) => R, options: { sync?: boolean } = {}): Promise<R> {
    if (this.#closed) return Promise.reject(new MfpError('STORE_CLOSED', 'the store is closed'));
    return new Promise<R>((resolve, reject) => {
      this.#jobs.push({ build, sync: options.sync ?? true, resolve: resolve as (v: unknown) => void, reject });
      if (!this.#writing) void this.#drain();
    });
  }

  async #drain(): Promise<void> {
    this.#writing = true;
    while (this.#jobs.length > 0) {
      if (this.#mustRecover && !(await this.#recover())) continue;
      const jobs = this.#jobs.splice(0);
      const tx = new Tx();
      const done: { job: Job; result: unknown }[] = [];
      for (const job of jobs) {
        const mark = tx.ops.length;
        try {
          done.push({ job, result: job.build(tx) });
        } catch (err) {
          // A builder that throws contributes nothing; it must not have touched the index.
          tx.ops.length = mark;
          job.reject(err);
        }
      }
      const sync = this.durability === 'fsync' && done.some((d) => d.job.sync);
      try {
        await this.kv.write(tx.ops, { sync });
        this.stats.batches++;
        this.stats.jobs += done.length;
        this.#writeError = undefined;
        this.afterCommit(true);
        for (const d of done) d.job.resolve(d.result);
      } catch (err) {
        const failure =
          err instanceof MfpError && err.code !== 'STORE_WRITE_FAILED'
            ? err
            : new MfpError('STORE_WRITE_FAILED', `write failed, nothing was applied: ${(err as Error).message}`, { cause: err });
        this.#writeError = failure;
        this.#mustRecover = failure.code === 'STORE_WRITE_FAILED';
        this.afterCommit(false);
        try {
          await this.reloadIndex();
        } catch {
          // The store is unusable; the rejection below reports the write failure.
        }
        for (const d of done) d.job.reject(failure);
      }
    }
    this.#writing = false;
  }

  /**
   * Reopens the backend after a failed batch and reloads the index from it; false (every queued job
   * rejected, the failure kept for `status`) when it cannot yet.
   */
  async #recover(): Promise<boolean> {
    try {
      await this.kv.recover();
      await this.reloadIndex();
      this.#mustRecover = false;
      return true;
    } catch (err) {
      const failure =
        err instanceof MfpError && err.code === 'STORE_WRITE_FAILED'
          ? err
          : new MfpError('STORE_WRITE_FAILED', `the store cannot be reopened after a failed write: ${(err as Error).message}`, { cause: err });
      this.#writeError = failure;
      for (const job of this.#jobs.splice(0)) job.reject(failure);
      return false;
    }
  }

  /** The last batch's failure (a full disk, an I/O error), until a batch is written again: for `status`. */
  get writeError(): MfpError | undefined {
    return this.#writeError;
  }

  /** Called once a batch is written (ok) or has failed, before its jobs resolve. */
  protected afterCommit(ok: boolean): void {
    void ok;
  }

  // ---- index ---------------------------------------------------------------------------------------

  #setIndex(entity: EntityKey, item: string, state: ItemState | undefined): void {
    let items = this.index.get(entity);
    if (state === undefined) {
      items?.delete(item);
      if (items && items.size === 0) this.index.delete(entity);
      return;
    }
    if (!items) this.index.set(entity, (items = new Map()));
    items.set(item, state);
  }

  /** Writes an item inside a batch and updates the index; `valBytes`: rec.val already encoded. */
  protected writeItemTx(tx: Tx, entity: EntityKey, item: string, rec: ItemRecord, valBytes?: Uint8Array): void {
    tx.putItem(Keys.item(entity, item), rec, valBytes);
    this.#setIndex(entity, item, { v: rec.v, h: rec.h, by: rec.by, at: rec.at });
  }

  /** Deletes an item inside a batch and updates the index. */
  protected deleteItemTx(tx: Tx, entity: EntityKey, item: string): void {
    tx.del(Keys.item(entity, item));
    this.#setIndex(entity, item, undefined);
  }

  /** Deletes every item of an entity (and its user record) inside a batch. */
  protected deleteEntityTx(tx: Tx, entity: EntityKey): ItemState[] {
    const items = [...(this.index.get(entity) ?? new Map<string, ItemState>()).entries()];
    for (const [name] of items) this.deleteItemTx(tx, entity, name);
    const parsed = parseEntity(entity);
    if (parsed?.kind === 'user' && this.userUse.delete(parsed.id)) tx.del(Keys.user(parsed.id));
    return items.map(([, s]) => s);
  }

  /** Records the use of a user; returns the users evicted by the bound (least recently used first). */
  protected touchUserTx(tx: Tx, user: string, at = this.now()): string[] {
    const isNew = !this.userUse.has(user);
    this.userUse.set(user, at);
    tx.put(Keys.user(user), { lastUsed: at });
    if (!isNew || this.userUse.size <= this.maxUsers) return [];
    const evicted: string[] = [];
    while (this.userUse.size > this.maxUsers) {
      let oldest: string | undefined;
      let oldestAt = Infinity;
      for (const [name, used] of this.userUse) {
        if (name !== user && used < oldestAt) {
          oldest = name;
          oldestAt = used;
        }
      }
      if (oldest === undefined) break;
      evicted.push(oldest);
      this.evictUserTx(tx, oldest);
    }
    return evicted;
  }

  /** Removes a user because of the bound. Subclasses add what eviction means for their role. */
  protected evictUserTx(tx: Tx, user: string): void {
    this.deleteEntityTx(tx, `u:${user}`);
    this.userUse.delete(user);
    tx.del(Keys.user(user));
  }

  // ---- reads ---------------------------------------------------------------------------------------

  /** Item states of an entity, or undefined when it holds nothing. */
  itemStates(entity: EntityKey): ReadonlyMap<string, ItemState> | undefined {
    return this.index.get(entity);
  }

  /** Whether the entity holds any item. */
  hasEntity(entity: EntityKey): boolean {
    return this.index.has(entity);
  }

  /** Every entity that holds an item. */
  entities(): EntityKey[] {
    return [...this.index.keys()];
  }

  /** Checksum of an entity's content (of the items `include` accepts), or undefined when it holds nothing. */
  entityHash(entity: EntityKey, include: (item: string) => boolean = () => true): string | undefined {
    const items = this.index.get(entity);
    if (!items) return undefined;
    return entityHash([...items].filter(([n]) => include(n)).map(([n, s]) => [n, s.h] as [string, string]));
  }

  /** Reads one item. */
  async readItem(entity: EntityKey, item: string): Promise<ItemRecord | undefined> {
    const bytes = await this.kv.get(Keys.item(entity, item));
    return bytes === undefined ? undefined : decodeRecord<ItemRecord>(bytes, Keys.item(entity, item));
  }

  /** Reads every item of an entity. */
  async readEntity(entity: EntityKey): Promise<Map<string, ItemRecord>> {
    const out = new Map<string, ItemRecord>();
    for await (const [k, bytes] of this.kv.entries(Keys.itemsOf(entity))) {
      out.set(Keys.split(k)[2]!, decodeRecord<ItemRecord>(bytes, k));
    }
    return out;
  }

  /**
   * Reads every item of several entities, calling `visit` with each record as stored (decode it with
   * `decodeRecord`; its length is an upper bound of the value's encoded size, so frames are cut by it
   * without encoding the value twice).
   * Items of one entity come together. When the entities are a good part of the store they are read in
   * one scan of its items rather than through one iterator each.
   */
  async scanEntities(entities: Iterable<EntityKey>, visit: (e: EntityKey, n: string, bytes: Uint8Array, key: string) => void): Promise<void> {
    const wanted = new Set([...entities].filter((e) => this.index.has(e)));
    if (wanted.size === 0) return;
    const visitEntry = (k: string, bytes: Uint8Array) => {
      const [, e, n] = Keys.split(k) as [string, EntityKey, string];
      if (wanted.has(e)) visit(e, n, bytes, k);
    };
    // The entities' items are one range of keys from the first to the last of them: read in one scan
    // when they are most of what lies in it (a join's frame, a whole store), visited as read, so a
    // caller sending what it visits sends its first frame before the scan ends.
    let first: EntityKey | undefined;
    let last: EntityKey | undefined;
    for (const e of wanted) {
      if (first === undefined || e < first) first = e;
      if (last === undefined || e > last) last = e;
    }
    // One entity (a login's fetch) is its own range; more are counted against what lies between them.
    let between = wanted.size === 1 ? 1 : 0;
    if (wanted.size > 1) for (const e of this.index.keys()) if (e >= first! && e <= last!) between++;
    if (wanted.size * 2 >= between) {
      for await (const [k, bytes] of this.kv.entries(Keys.itemsBetween(first!, last!))) visitEntry(k, bytes);
      return;
    }
    // Otherwise one iterator each, all under way at once: their reads overlap instead of queueing.
    const read = async (range: KvRange): Promise<[string, Uint8Array][]> => {
      const out: [string, Uint8Array][] = [];
      for await (const entry of this.kv.entries(range)) out.push(entry);
      return out;
    };
    for (const entries of await Promise.all([...wanted].map((e) => read(Keys.itemsOf(e))))) {
      for (const [k, bytes] of entries) visitEntry(k, bytes);
    }
  }

  /** Users with their last use, most recent first. */
  users(): { name: string; lastUsed: number }[] {
    return [...this.userUse].map(([name, lastUsed]) => ({ name, lastUsed })).sort((a, b) => b.lastUsed - a.lastUsed);
  }

  // ---- failed administrator logins ------------------------------------------------------------------

  /** Failure record of a subject (`src:ADDR` or `acct:USER`), kept on disk so a restart forgets nothing. */
  async authRecord(subject: string): Promise<AuthRecord> {
    return (await this.getMetaKey<AuthRecord>(Keys.authFailures(subject))) ?? { failures: 0, since: 0, lockedUntil: 0 };
  }

  /** Writes the failure records of several subjects in one fsync'ed batch. */
  putAuthRecords(records: Record<string, AuthRecord | undefined>): Promise<void> {
    return this.commit((tx) => {
      for (const [subject, rec] of Object.entries(records)) {
        if (rec) tx.put(Keys.authFailures(subject), rec);
        else tx.del(Keys.authFailures(subject));
      }
    });
  }

  /** Reads a metadata value. */
  getMeta<T>(name: string): Promise<T | undefined> {
    return this.getMetaKey<T>(Keys.meta(name));
  }

  /** Reads one record by its full key (built by Keys). */
  protected async getMetaKey<T>(key: string): Promise<T | undefined> {
    const bytes = await this.kv.get(key);
    return bytes === undefined ? undefined : decodeRecord<T>(bytes, key);
  }

  /** Writes metadata values in one batch. */
  setMeta(values: Record<string, unknown>, options: { sync?: boolean } = {}): Promise<void> {
    return this.commit((tx) => {
      for (const [name, value] of Object.entries(values)) {
        if (value === undefined) tx.del(Keys.meta(name));
        else tx.put(Keys.meta(name), value);
      }
    }, options);
  }

  // ---- conflict log and sync log -------------------------------------------------------------------

  /** Adds conflict entries inside a batch. */
  protected addConflictTx(tx: Tx, entry: ConflictInput): void {
    this.#appendBoundedTx(tx, this.#conflictLog, Keys.conflict, entry);
  }

  /** Adds a conflict entry. */
  addConflict(entry: ConflictEntry): Promise<void> {
    return this.commit((tx) => this.addConflictTx(tx, entry));
  }

  /** Lists conflict entries, oldest first. */
  async conflicts(): Promise<ConflictEntry[]> {
    await this.#settled();
    const out: ConflictEntry[] = [];
    for await (const [k, bytes] of this.kv.entries(Keys.allConflicts())) {
      const stored = decodeRecord<ConflictEntry & { record?: Uint8Array }>(bytes, k);
      if (stored.record === undefined) {
        out.push(stored);
        continue;
      }
      const { record, ...entry } = stored;
      out.push({ ...entry, value: decodeRecord<ItemRecord>(record, k).val });
    }
    return out;
  }

  /** Appends to the sync log (bounded: the oldest entries go). Not fsync'ed: a log line is not data. */
  appendLog(entry: SyncLogEntry): Promise<void> {
    return this.commit((tx) => this.#appendBoundedTx(tx, this.#syncLog, Keys.syncLog, entry), { sync: false });
  }

  /** Reads the sync log, oldest first, at or above a level. */
  async syncLog(minLevel: LogLevel = 'info'): Promise<SyncLogEntry[]> {
    const rank = { info: 0, warning: 1, error: 2 } as const;
    await this.#settled();
    const out: SyncLogEntry[] = [];
    for await (const [k, bytes] of this.kv.entries(Keys.allSyncLog())) {
      const e = decodeRecord<SyncLogEntry>(bytes, k);
      if (rank[e.level] >= rank[minLevel]) out.push(e);
    }
    return out;
  }
}

function logPush(log: LogIndex, key: string, size: number): void {
  log.keys.push(key);
  log.sizes.push(size);
  log.bytes += size;
}
