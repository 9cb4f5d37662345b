/**
 * A machine's local store: its users' items as the firmware reads them, each with the server version
 * it is based on, plus the durable outbound queue of changes not yet acknowledged by the server, the
 * client's cursor into the server's log, and its conflict log. A local change and its queue entry are
 * written in one fsync'ed batch, so a change the firmware was told is saved is never lost.
 */
import { catalogItem, keepLocalParts, blankLocalParts, parseEntity, type EntityKey } from './catalog.js';
import type { ChangeOutcome } from './group-store.js';
import { Keys } from './keys.js';
import { decodeRecord, hashAndSize } from './records.js';
import { Store, type ItemRecord, type ItemState, type StoreOptions, type Tx } from './store.js';

/** A change waiting for the server's acknowledgement. */
export interface QueuedChange {
  c: number;
  e: EntityKey;
  n: string;
  val: unknown;
  base: number;
  at: number;
}

/** An item value arriving from the server. */
export interface RemoteItem {
  e: EntityKey;
  n: string;
  v: number;
  val: unknown;
}

/**
 * Queued values kept in memory, so that sending a change needs no disk read; beyond this budget (a long
 * offline spell, an import) the values stay on disk only and a flush reads them back.
 */
const QUEUE_CACHE_BYTES = 4 * 1024 * 1024;

/** A queue entry as kept in memory: its item, and its whole change while within the cache budget. */
interface QueueEntry {
  e: EntityKey;
  n: string;
  change: QueuedChange | undefined;
  bytes: number;
}

/** A machine's local store. */
export class LocalStore extends Store {
  #counter = 0;
  /** The highest change counter known to be on disk. */
  #durableCounter = 0;
  #cursor = 0;
  #queued = new Map<number, QueueEntry>();
  /**
   * Queue entries per item (`e\0n`) and per entity: settling an acknowledgement asks, for every change,
   * whether a later one of its item waits, and under overload the queue holds thousands.
   */
  #queuedItems = new Map<string, number>();
  #queuedEntities = new Map<EntityKey, number>();
  #cachedBytes = 0;
  /**
   * Counts the index reloads: at open, and after every failed batch (whose writes are undone). A remote
   * update submitted in one generation is written only in that generation (applyRemote).
   */
  #generation = 0;
  /**
   * Called from inside every batch that queues a change (a local write, an import, copies), before that
   * batch is written: the client sends the change while it is being written, so the local fsync and
   * the server's overlap.
   */
  onQueued: (() => void) | undefined;

  /** Opens (creating if needed) a local store. */
  static async open(options: StoreOptions): Promise<LocalStore> {
    const store = new LocalStore(options);
    await store.load();
    return store;
  }

  protected override async reloadIndex(): Promise<void> {
    this.#generation++;
    await super.reloadIndex();
    const counter = (await this.getMeta<number>('counter')) ?? 0;
    this.#durableCounter = counter;
    // Never backwards in memory: after a failed batch, a counter already sent to the server is not reused
    // (the server would take the next change for a duplicate).
    this.#counter = Math.max(this.#counter, counter);
    this.#cursor = (await this.getMeta<number>('cursor')) ?? 0;
    this.#queued.clear();
    this.#queuedItems.clear();
    this.#queuedEntities.clear();
    this.#cachedBytes = 0;
    for await (const [k, bytes] of this.kv.entries(Keys.allQueue())) {
      this.#cache(decodeRecord<QueuedChange>(bytes, k), bytes.length);
    }
  }

  protected override afterCommit(ok: boolean): void {
    // The next batch's builders have not run yet: the counter is exactly what this batch wrote.
    if (ok) this.#durableCounter = this.#counter;
  }

  /** Last change counter used. */
  get counter(): number {
    return this.#counter;
  }

  /**
   * The highest change counter on disk. Lower than what the server last saw from this machine only if
   * changes sent while their batch was written were then lost (a crash, a failed write).
   */
  get durableCounter(): number {
    return this.#durableCounter;
  }

  #cache(q: QueuedChange, bytes: number): void {
    this.#uncache(q.c);
    const keep = this.#cachedBytes + bytes <= QUEUE_CACHE_BYTES;
    if (keep) this.#cachedBytes += bytes;
    this.#queued.set(q.c, { e: q.e, n: q.n, change: keep ? q : undefined, bytes: keep ? bytes : 0 });
    bump(this.#queuedItems, `${q.e}\0${q.n}`, 1);
    bump(this.#queuedEntities, q.e, 1);
  }

  #uncache(c: number): boolean {
    const entry = this.#queued.get(c);
    if (!entry) return false;
    this.#cachedBytes -= entry.bytes;
    bump(this.#queuedItems, `${entry.e}\0${entry.n}`, -1);
    bump(this.#queuedEntities, entry.e, -1);
    return this.#queued.delete(c);
  }

  /** Queues a change inside a batch. */
  #enqueueTx(tx: Tx, q: QueuedChange): void {
    tx.put(Keys.queue(q.c), q);
    const op = tx.ops[tx.ops.length - 1]!;
    this.#cache(q, op.type === 'put' ? op.value.length : 0);
    this.onQueued?.();
  }

  /** The server sequence number up to which this machine has applied the group's changes. */
  get cursor(): number {
    return this.#cursor;
  }

  /** The store's generation: it changes when a failed batch is undone (its writes and the index with them). */
  get generation(): number {
    return this.#generation;
  }

  /** Changes waiting for an acknowledgement. */
  get queueSize(): number {
    return this.#queued.size;
  }

  /**
   * Writes a local change. With `queue`, it is also queued for the server in the same batch. Returns the
   * users evicted by the bound (the client tells the server it no longer holds them).
   */
  setLocal(selfId: string, e: EntityKey, n: string, value: unknown, options: { queue: boolean }): Promise<{ counter: number; evicted: string[] }> {
    return this.commit((tx) => {
      const at = this.now();
      const cur = this.index.get(e)?.get(n);
      this.writeItemTx(tx, e, n, { v: cur?.v ?? 0, h: groupHash({ e, n, val: value }), by: selfId, at, val: value });
      let counter = 0;
      if (options.queue) {
        counter = ++this.#counter;
        this.#enqueueTx(tx, { c: counter, e, n, val: value, base: cur?.v ?? 0, at });
        tx.put(Keys.meta('counter'), counter);
      }
      const parsed = parseEntity(e)!;
      const evicted = parsed.kind === 'user' ? this.touchUserTx(tx, parsed.id, at) : [];
      return { counter, evicted };
    });
  }

  /**
   * Writes many local changes in one batch (an import): all of them or, if the write fails, none. Each
   * user's last use moves to now. With `queue`, every change is also queued for the server.
   */
  importLocal(selfId: string, changes: readonly { e: EntityKey; n: string; val: unknown }[], options: { queue: boolean }): Promise<{ evicted: string[] }> {
    return this.commit((tx) => {
      const at = this.now();
      const users = new Set<string>();
      for (const { e, n, val } of changes) {
        const parsed = parseEntity(e)!;
        const cur = this.index.get(e)?.get(n);
        this.writeItemTx(tx, e, n, { v: cur?.v ?? 0, h: groupHash({ e, n, val }), by: selfId, at, val });
        if (options.queue) {
          const counter = ++this.#counter;
          this.#enqueueTx(tx, { c: counter, e, n, val, base: cur?.v ?? 0, at });
        }
        if (parsed.kind === 'user') users.add(parsed.id);
      }
      if (options.queue) tx.put(Keys.meta('counter'), this.#counter);
      const evicted: string[] = [];
      for (const user of users) evicted.push(...this.touchUserTx(tx, user, at));
      return { evicted };
    });
  }

  /** Whether a change of the entity waits for the server's acknowledgement. */
  isQueued(e: EntityKey): boolean {
    return this.#queuedEntities.has(e);
  }

  /** Records a login (last use now); returns the users the bound evicted. */
  touch(user: string): Promise<string[]> {
    return this.commit((tx) => this.touchUserTx(tx, user));
  }

  /** Raises the change counter to at least `n` (the server remembers more than a restored store did). */
  async raiseCounter(n: number): Promise<void> {
    if (n <= this.#counter) return;
    await this.commit((tx) => {
      this.#counter = Math.max(this.#counter, n);
      tx.put(Keys.meta('counter'), this.#counter);
    });
  }

  /**
   * Queued changes in counter order, at most `limit`, after counter `after` (those a session has sent
   * already): from memory when their values are cached.
   */
  async queued(limit = Infinity, after = 0): Promise<QueuedChange[]> {
    const out: QueuedChange[] = [];
    let complete = true;
    for (const [c, entry] of this.#queued) {
      if (c <= after) continue;
      if (out.length >= limit) return out;
      if (!entry.change) {
        complete = false;
        break;
      }
      out.push(entry.change);
    }
    if (complete) return out;
    out.length = 0;
    const range = { ...Keys.allQueue(), ...(after > 0 ? { gt: Keys.queue(after) } : {}), limit: Number.isFinite(limit) ? limit : undefined };
    for await (const [k, bytes] of this.kv.entries(range)) out.push(decodeRecord<QueuedChange>(bytes, k));
    return out;
  }

  /**
   * Settles acknowledged changes: removes them from the queue, adopts the server's version, and for a
   * conflict keeps the losing value in the conflict log and takes the server's value. A rejected change
   * leaves the queue too, its value kept in the conflict log with the server's code (reason `rejected`);
   * the local value stays as it is (the ack carries no server value to take).
   */
  settle(selfId: string, outcomes: readonly ChangeOutcome[], sent: readonly QueuedChange[], options: Submission = {}): Promise<{ conflicts: number; rejected: number; restored: RemoteItem[]; queued: number }> {
    const byCounter = new Map(sent.map((q) => [q.c, q]));
    // Not fsync'ed: if a power loss undoes it, the queue entries come back and are re-sent, and the
    // server answers them as duplicates.
    return submitted(options, this.commit((tx) => {
      let conflicts = 0;
      let rejected = 0;
      const restored: RemoteItem[] = [];
      for (const o of outcomes) {
        const q = byCounter.get(o.c);
        if (!q) continue;
        const laterQueued = () => this.#queuedItems.has(`${q.e}\0${q.n}`);
        if (!this.#uncache(o.c)) {
          // Applied by the server, but the batch that queued it here failed after it was sent: the
          // server's copy is the truth, so this machine takes it (unless newer values are here by now).
          const cur = this.index.get(q.e)?.get(q.n);
          if (o.status === 'applied' && (cur?.v ?? 0) < o.v && !laterQueued()) {
            restored.push({ e: q.e, n: q.n, v: o.v, val: q.val });
            this.#remoteTx(tx, { e: q.e, n: q.n, v: o.v, val: q.val }, q.val, true);
          } else if (o.status === 'duplicate' && !laterQueued()) {
            const server = { e: q.e, n: q.n, v: o.v, val: o.val };
            if (this.#takeCurrentTx(tx, server, q.val)) restored.push(server);
          }
          continue;
        }
        tx.del(Keys.queue(o.c));
        // A refused value is kept in the conflict log with the refusal's code (SPEC §6), whatever follows it.
        if (o.status === 'rejected') {
          rejected++;
          this.addConflictTx(tx, { ...conflictOf(selfId, q, 0, this.now()), reason: 'rejected', code: o.code });
          continue;
        }
        // A later queued change of the same item carries the local value on; it settles that item.
        if (laterQueued()) {
          if (o.status === 'conflict') conflicts++;
          if (o.status === 'conflict') this.addConflictTx(tx, conflictOf(selfId, q, o.v, this.now()));
          continue;
        }
        if (o.status === 'applied') {
          const cur = this.index.get(q.e)?.get(q.n);
          if (cur && o.v > cur.v) this.writeItemTx(tx, q.e, q.n, { ...cur, v: o.v, h: groupHash(q), val: q.val });
        } else if (o.status === 'duplicate') {
          // Decided in an earlier session whose ack was lost: the server's current value is the truth,
          // which may be another machine's later change, not this one (never this value at its version).
          const server = { e: q.e, n: q.n, v: o.v, val: o.val };
          if (this.#takeCurrentTx(tx, server, q.val)) restored.push(server);
        } else if (o.status === 'conflict') {
          conflicts++;
          this.addConflictTx(tx, conflictOf(selfId, q, o.v, this.now()));
          this.#remoteTx(tx, { e: q.e, n: q.n, v: o.v, val: o.val }, q.val, true);
        }
      }
      // What still waits once this batch has settled these (a later acknowledgement's batch may be
      // built before this one's callers run).
      return { conflicts, rejected, restored, queued: this.#queued.size };
    }, { sync: false }));
  }

  /**
   * Applies what the server sent: item values (newer versions only, unless their entity is replaced),
   * entity deletions, whole-entity replacements (join: the server wins; what the client loses is kept
   * in the conflict log) and the new cursor — in one batch.
   */
  async applyRemote(update: {
    items?: readonly RemoteItem[];
    deletes?: readonly EntityKey[];
    replace?: readonly EntityKey[];
    /** Items whose content the client already has: only their version moves. */
    versions?: readonly [EntityKey, string, number][];
    /** Items a replacement leaves alone (this machine's device-scope items, SPEC §4). */
    keep?: (e: EntityKey, n: string) => boolean;
    /** This machine's own copies kept by the server: written only where the item is missing here. */
    fill?: readonly { e: EntityKey; n: string; val: unknown }[];
    /** Sharing scopes applied with this update (persisted in the same batch). */
    sharing?: { version: number; device: string[] };
    /** More meta records written in the same batch (the pin of the join this update completes). */
    meta?: Record<string, unknown>;
    cursor?: number;
    selfId?: string;
    reason?: 'join' | 'resync';
    /**
     * The generation the update was submitted in: a batch before it failed (and was undone) once the
     * store's generation differs, and then nothing is written (`gap`), so a later frame of the group's
     * changes never moves the cursor past earlier ones that were not written.
     */
    generation?: number;
  }, options: Submission = {}): Promise<{ applied: RemoteItem[]; deleted: EntityKey[]; evicted: string[]; gap?: true }> {
    const items = update.items ?? [];
    const replace = new Set(update.replace ?? []);
    // Local values needed by the builder are read first: send destinations to keep, values a join
    // replaces. What a replacement loses goes to the conflict log as stored, never decoded here.
    const local = new Map<string, unknown>();
    const keepsLocalParts = (e: EntityKey, n: string) => {
      const parsed = parseEntity(e);
      return parsed !== undefined && catalogItem(parsed.kind, n).localPaths !== undefined;
    };
    const replaced = new Map<EntityKey, Map<string, { state: ItemState; record: Uint8Array }>>();
    await this.scanEntities(replace, (e, n, record, key) => {
      const state = this.index.get(e)?.get(n);
      if (!state) return;
      let records = replaced.get(e);
      if (!records) replaced.set(e, (records = new Map()));
      records.set(n, { state, record });
      if (keepsLocalParts(e, n)) local.set(`${e}\0${n}`, decodeRecord<ItemRecord>(record, key).val);
    });
    for (const it of items) {
      const k = `${it.e}\0${it.n}`;
      if (!local.has(k) && !replace.has(it.e) && keepsLocalParts(it.e, it.n) && this.index.get(it.e)?.has(it.n)) {
        local.set(k, (await this.readItem(it.e, it.n))?.val);
      }
    }
    const rebased: [EntityKey, string, number, ItemRecord][] = [];
    for (const [e, n, v] of update.versions ?? []) {
      const rec = this.index.has(e) ? await this.readItem(e, n) : undefined;
      if (rec) rebased.push([e, n, v, rec]);
    }
    return submitted(options, this.commit((tx) => {
      const applied: RemoteItem[] = [];
      const deleted: EntityKey[] = [];
      const evicted: string[] = [];
      if (update.generation !== undefined && update.generation !== this.#generation) return { applied, deleted, evicted, gap: true as const };
      const at = this.now();
      // Each incoming value is hashed once: for the comparison with a replaced value and for its record.
      const hashes = new Map<RemoteItem, { h: string; bytes?: Uint8Array }>();
      const byEntity = new Map<EntityKey, Map<string, RemoteItem>>();
      for (const i of items) {
        if (!replaced.has(i.e)) continue;
        let m = byEntity.get(i.e);
        if (!m) byEntity.set(i.e, (m = new Map()));
        m.set(i.n, i);
      }
      // Items with a change waiting for the server keep their local value through a replacement: the
      // acknowledgement settles them (applied: the value stays at the server's version; a conflict: it
      // goes to the conflict log then, once). Without a copy on the server they would be deleted here
      // while their change creates them there, and this machine would lack them for good.
      const queued = new Set<string>();
      for (const q of this.#queued.values()) if (replaced.has(q.e)) queued.add(`${q.e}\0${q.n}`);
      for (const [e, records] of replaced) {
        const incoming = byEntity.get(e) ?? new Map<string, RemoteItem>();
        for (const [n, { state, record }] of records) {
          if (update.keep?.(e, n)) continue;
          const winner = incoming.get(n);
          if (queued.has(`${e}\0${n}`)) {
            this.writeItemTx(tx, e, n, { ...decodeRecord<ItemRecord>(record, Keys.item(e, n)), v: winner?.v ?? 0 });
            continue;
          }
          if (winner) hashes.set(winner, groupHashed(winner));
          if (winner && hashes.get(winner)!.h === state.h) continue;
          this.addConflictTx(tx, {
            at,
            deviceId: update.selfId ?? '',
            entity: e,
            item: n,
            record,
            base: state.v,
            serverVersion: winner?.v ?? 0,
            reason: update.reason ?? 'join',
          });
          if (!winner) this.deleteItemTx(tx, e, n);
        }
      }
      for (const [e, n, v, rec] of rebased) {
        // Skipped if a local write landed since the read: its queue entry carries its own base.
        if (this.index.get(e)?.get(n)?.at === rec.at) this.writeItemTx(tx, e, n, { ...rec, v });
      }
      for (const it of items) {
        if (replace.has(it.e) && queued.has(`${it.e}\0${it.n}`) && this.index.get(it.e)?.has(it.n)) continue;
        if (this.#remoteTx(tx, it, local.get(`${it.e}\0${it.n}`), replace.has(it.e), evicted, hashes.get(it))) applied.push(it);
      }
      for (const f of update.fill ?? []) {
        if (this.index.get(f.e)?.has(f.n)) continue;
        this.writeItemTx(tx, f.e, f.n, { v: 0, h: groupHash(f), by: 'copy', at, val: f.val });
        const parsed = parseEntity(f.e)!;
        if (parsed.kind === 'user' && !this.userUse.has(parsed.id)) evicted.push(...this.touchUserTx(tx, parsed.id, at));
        applied.push({ e: f.e, n: f.n, v: 0, val: f.val });
      }
      if (update.sharing) tx.put(Keys.meta('sharing'), update.sharing);
      for (const [k, v] of Object.entries(update.meta ?? {})) tx.put(Keys.meta(k), v);
      for (const e of update.deletes ?? []) {
        if (!this.hasEntity(e) && !this.#isUser(e)) continue;
        this.deleteEntityTx(tx, e);
        deleted.push(e);
      }
      if (update.cursor !== undefined && update.cursor !== this.#cursor) {
        this.#cursor = update.cursor;
        tx.put(Keys.meta('cursor'), update.cursor);
      }
      return { applied, deleted, evicted };
      // Not fsync'ed: the server holds all of it durably, and items and cursor share this batch, so a
      // power loss rewinds both together and the client fetches it again from the older cursor.
    }, { sync: false }));
  }

  #isUser(e: EntityKey): boolean {
    const parsed = parseEntity(e);
    return parsed?.kind === 'user' && this.userUse.has(parsed.id);
  }

  /** Marks every queued change as based on a previous epoch (after the server's database was replaced). */
  async rebaseQueue(): Promise<void> {
    const all = await this.queued();
    await this.commit((tx) => {
      for (const q of all) if (this.#queued.has(q.c)) this.#enqueueTx(tx, { ...q, base: -1 });
    });
  }

  /**
   * An item went from device scope back to shared (SPEC §4): this machine's values of it are reset to
   * defaults (deleted) for every user, and its queued changes of it dropped, before synchronizing.
   */
  async resetItem(item: string): Promise<number> {
    const queued = (await this.queued()).filter((q) => q.n === item && q.e.startsWith('u:'));
    return this.commit((tx) => {
      let n = 0;
      for (const [e, items] of this.index) {
        if (e.startsWith('u:') && items.has(item)) {
          this.deleteItemTx(tx, e, item);
          n++;
        }
      }
      for (const q of queued) {
        if (this.#uncache(q.c)) tx.del(Keys.queue(q.c));
      }
      return n;
    });
  }

  /**
   * An item went from shared to device scope (SPEC §4): this machine keeps its current values as its
   * own, and queues them once so that the server holds a copy of each.
   */
  queueCopies(item: string): Promise<number> {
    const entities = [...this.index].filter(([e, items]) => e.startsWith('u:') && items.has(item)).map(([e]) => e);
    return Promise.all(entities.map(async (e) => [e, await this.readItem(e, item)] as const)).then((recs) =>
      this.commit((tx) => {
        let n = 0;
        for (const [e, rec] of recs) {
          if (!rec) continue;
          const counter = ++this.#counter;
          this.#enqueueTx(tx, { c: counter, e, n: item, val: rec.val, base: rec.v, at: this.now() });
          n++;
        }
        tx.put(Keys.meta('counter'), this.#counter);
        return n;
      }),
    );
  }

  /** Deletes entities from this machine only (a standalone machine's Delete User Data). */
  deleteLocal(keys: readonly EntityKey[]): Promise<EntityKey[]> {
    return this.commit((tx) => keys.filter((e) => this.hasEntity(e) || this.#isUser(e)).map((e) => {
      this.deleteEntityTx(tx, e);
      return e;
    }));
  }

  /** Sets the cursor. */
  async setCursor(cursor: number): Promise<void> {
    await this.commit((tx) => {
      this.#cursor = cursor;
      tx.put(Keys.meta('cursor'), cursor);
    });
  }

  /**
   * Takes the server's current copy of an item (an acknowledgement's version and value) unless this
   * machine holds a newer one, keeping this machine's local parts of `localVal`. True if the content
   * changed (not only the version).
   */
  #takeCurrentTx(tx: Tx, item: RemoteItem, localVal: unknown): boolean {
    const cur = this.index.get(item.e)?.get(item.n);
    // Version 0: the server holds no copy (the entity was deleted there, which its own delete says).
    if (item.v === 0 || (cur && item.v < cur.v)) return false;
    const hashed = groupHashed(item);
    const same = cur?.h === hashed.h;
    if (same && cur?.v === item.v) return false;
    this.#remoteTx(tx, item, localVal, true, [], hashed);
    return !same;
  }

  /** Applies one remote item inside a batch, keeping this machine's local parts; false if not newer. */
  #remoteTx(tx: Tx, item: RemoteItem, localVal: unknown, force: boolean, evicted: string[] = [], hashed?: { h: string; bytes?: Uint8Array }): boolean {
    const cur = this.index.get(item.e)?.get(item.n);
    // An equal version is one this machine has already (the same change can arrive both as a delta and
    // in a login fetch): not a change, no rewrite, no event.
    if (cur && !force && item.v <= cur.v) return false;
    const cat = catalogItem(parseEntity(item.e)!.kind, item.n);
    const val = localVal !== undefined ? keepLocalParts(cat, item.val, localVal) : item.val;
    const { h, bytes } = hashed ?? groupHashed(item);
    this.writeItemTx(tx, item.e, item.n, { v: item.v, h, by: 'server', at: this.now(), val }, val === item.val ? bytes : undefined);
    const parsed = parseEntity(item.e)!;
    if (parsed.kind === 'user' && !this.userUse.has(parsed.id)) evicted.push(...this.touchUserTx(tx, parsed.id));
    return true;
  }
}

/** Content hash of an item's group form (this machine's local parts blanked), as the server hashes it. */
function groupHash(item: { e: EntityKey; n: string; val: unknown }): string {
  return groupHashed(item).h;
}

/**
 * groupHash, with the value's encoding when the hashed bytes encode the value itself (nothing blanked,
 * keys already sorted, as the group sends them): the record is then written without encoding it again.
 */
function groupHashed(item: { e: EntityKey; n: string; val: unknown }): { h: string; bytes?: Uint8Array } {
  const blank = blankLocalParts(catalogItem(parseEntity(item.e)!.kind, item.n), item.val);
  const { h, bytes, exact } = hashAndSize(blank);
  return { h, bytes: exact && blank === item.val ? bytes : undefined };
}

function conflictOf(selfId: string, q: QueuedChange, serverVersion: number, at: number) {
  return { at, deviceId: selfId, entity: q.e, item: q.n, value: q.val, base: q.base, serverVersion, reason: 'offline-edit' as const };
}

/**
 * How a caller learns that its write is submitted to the group-commit writer (in order, to be written
 * with the next batch), before the write is done: the client handles its next frame then.
 */
export interface Submission {
  submitted?: () => void;
}

/** Tells `options` that `write` was submitted, and returns it. */
function submitted<T>(options: Submission, write: Promise<T>): Promise<T> {
  options.submitted?.();
  return write;
}

/** Adds `by` to a count, dropping it at zero. */
function bump<K>(counts: Map<K, number>, key: K, by: number): void {
  const n = (counts.get(key) ?? 0) + by;
  if (n > 0) counts.set(key, n);
  else counts.delete(key);
}
