/**
 * The group's authoritative store, held by the server. Every accepted change gets the next sequence
 * number; the item and its change-log entry are written in the same atomic batch, and the previous log
 * entry of that item is deleted, so the log holds at most one entry per item plus entity tombstones.
 * A client's cursor is a sequence number: resuming is a range read of the log after it.
 *
 * Exactly-once: each device numbers its changes 1, 2, 3…; the device record keeps the highest number
 * applied, written in the same batch as the changes, so a change re-sent after a lost ack is
 * recognised and answered without being applied twice.
 */
import { MfpError, type ErrorCode } from '../protocol/errors.js';
import { MAX_VALUE_BYTES, USER_EVICTION_GRACE_MS } from '../protocol/limits.js';
import { itemValue } from '../protocol/validate.js';
import { blankLocalParts, catalogItem, parseEntity, valueProblem, type CatalogItem, type EntityKey } from './catalog.js';
import { Keys, parseSeqPart } from './keys.js';
import { decodeRecord, encodedSize, hashAndSize, type HashedValue } from './records.js';
import { Store, type ItemRecord, type StoreOptions, type Tx } from './store.js';

export type { AuthRecord } from './store.js';

/** A committed change as clients receive it: an item's new value, or an entity's deletion. */
export interface FeedEntry {
  seq: number;
  e: EntityKey;
  /** Item name; absent on an entity tombstone. */
  n?: string;
  v?: number;
  val?: unknown;
  del?: true;
  by: string;
}

/** Encoded sizes of the values of entries written in this run, known from hashing them. */
const encodedSizes = new WeakMap<FeedEntry, number>();

/** The encoded size of an entry's value (0 for a tombstone): frames are cut by it without encoding it twice. */
export function feedValueSize(entry: FeedEntry): number {
  return entry.del ? 0 : (encodedSizes.get(entry) ?? encodedSize(entry.val));
}

/** A change submitted by a device. */
export interface IncomingChange {
  /** The device's change counter (1, 2, …); 0 for an administrator's local write, never deduplicated. */
  c: number;
  e: EntityKey;
  n: string;
  val: unknown;
  /** The server version the device based the change on; 0 for none, -1 for one from a previous epoch. */
  base: number;
}

/** What became of a submitted change. */
export type ChangeOutcome =
  | { c: number; status: 'applied'; v: number }
  | { c: number; status: 'duplicate' | 'conflict'; v: number; val: unknown }
  | { c: number; status: 'rejected'; code: ErrorCode; message: string };

/** A machine of the group, as the server records it. */
export interface DeviceRecord {
  id: string;
  /** Ed25519 public key, base64. */
  publicKey: string;
  name: string;
  serial: string;
  location: string;
  software: string;
  protocol: number;
  capabilities: string[];
  admittedAt: number;
  lastSeen: number;
  /** Highest change counter applied from this device. */
  lastCounter: number;
  /**
   * How many of this device's changes the server decided (applied, conflict or rejected; duplicates
   * not counted). Counters are taken in order, so with every change sent this equals lastCounter: more
   * would mean a change applied twice, fewer one skipped. Absent in records written before it existed.
   */
  processed?: number;
  /** Last cursor the device reported. */
  cursor: number;
  /** The server itself (its own client, on a server-client). */
  self?: boolean;
}

interface LogRecord {
  e: EntityKey;
  n?: string;
  del?: true;
  by: string;
}


/** Data of an entity uploaded at join. */
export interface EntityUpload {
  e: EntityKey;
  items: Record<string, unknown>;
}

/** Newcomers of one device refused because every user of the full group was used within the grace (health names it). */
export interface CrowdedOut {
  deviceId: string;
  /** Newcomers refused since the first refusal, and when. */
  refused: number;
  since: number;
  last: number;
  /** A few of the refused users, for the message. */
  users: string[];
}

/**
 * The server's store.
 *
 * Holds (which client gets which user's changes) live on disk only for users the group has: a hold is
 * written with an accepted change of the user, or when a client logs in or offers a user that exists.
 * A client that logs in (or offers) a user the group does not have is *wanted*, in memory only, at most
 * the user bound per device, oldest dropped first, until the user is created, when it becomes a hold in
 * the same batch: so refused input and logins of unknown users leave nothing on disk and bounded memory.
 */
export class GroupStore extends Store {
  #seq = 0;
  #epoch = '';
  #epochStartSeq = 0;
  #devices = new Map<string, DeviceRecord>();
  #removed = new Set<string>();
  #holds = new Map<string, Set<EntityKey>>();
  /** Users a device asked for that the group does not have (memory only, bounded; see above). */
  #wanted = new Map<string, Set<EntityKey>>();
  /** Wanted holds made holds by the batch being built; given back to `#wanted` if it fails. */
  #pendingHolds: { device: string; e: EntityKey }[] = [];
  /** Records written before holds were bounded that name users the group does not have: dropped at open. */
  #stale: string[] = [];
  #crowdedOut = new Map<string, CrowdedOut>();
  /** Keys of the per-device copies (SPEC §4), so batch builders can drop them without reading. */
  #copyKeys = new Set<string>();
  /** Per device, the users it has copies of and when it last wrote one (the copies' bound). */
  #copyUsers = new Map<string, Map<string, { at: number; items: Set<string> }>>();
  /** Entries of the batch being built; published when it is on disk. */
  #pendingFeed: FeedEntry[] = [];
  /**
   * Recent committed entries, in seq order without gaps, so live fan-out needs no disk read: at most
   * RING_SIZE entries and RING_BYTES of their values (#ringBytes), so that large values cannot make
   * it hold hundreds of megabytes. A client behind it reads the log instead.
   */
  #ring: FeedEntry[] = [];
  #ringBytes = 0;
  #listeners = new Set<(entries: readonly FeedEntry[]) => void>();
  static readonly RING_SIZE = 4096;
  static readonly RING_BYTES = 4 * 1024 * 1024;

  /** Opens (creating if needed) a group store. */
  static async open(options: StoreOptions & { epoch?: () => string }): Promise<GroupStore> {
    const store = new GroupStore(options);
    await store.load();
    await store.#dropStale();
    if (!store.#epoch) {
      store.#epoch = (options.epoch ?? randomEpoch)();
      await store.setMeta({ epoch: store.#epoch, epochStartSeq: store.#seq });
    }
    return store;
  }

  protected override async reloadIndex(): Promise<void> {
    await super.reloadIndex();
    this.#ring = [];
    this.#ringBytes = 0;
    this.#pendingFeed = [];
    this.#seq = (await this.getMeta<number>('seq')) ?? 0;
    this.#epoch = (await this.getMeta<string>('epoch')) ?? '';
    this.#epochStartSeq = (await this.getMeta<number>('epochStartSeq')) ?? 0;
    this.#devices.clear();
    this.#removed.clear();
    this.#holds.clear();
    for await (const [k, bytes] of this.kv.entries(Keys.allDevices())) {
      const d = decodeRecord<DeviceRecord>(bytes, k);
      this.#devices.set(d.id, d);
    }
    for await (const [k] of this.kv.entries({ gt: Keys.removed(''), lt: 'R\x01' })) this.#removed.add(Keys.split(k)[1]!);
    this.#copyKeys.clear();
    this.#copyUsers.clear();
    for await (const [k, bytes] of this.kv.entries(Keys.allCopies())) this.#addCopy(k, decodeRecord<{ at: number }>(bytes, k).at);
    this.#stale = [];
    for await (const [k] of this.kv.entries(Keys.allHolds())) {
      const [, dev, entity] = Keys.split(k);
      if (this.#isUser(entity as EntityKey)) this.#holdSet(dev!).add(entity as EntityKey);
      else this.#stale.push(k);
    }
    // A user with no item on the group is what a login (fetch) of an unknown user left behind before
    // logins stopped creating users: it only took a place under the user bound.
    for (const { name } of this.users()) if (!this.index.has(`u:${name}`)) this.#stale.push(Keys.user(name));
  }

  /** Deletes what `reloadIndex` found stale (holds of users the group does not have, empty users). */
  async #dropStale(): Promise<void> {
    const stale = this.#stale;
    this.#stale = [];
    if (stale.length === 0) return;
    await this.commit((tx) => {
      for (const k of stale) {
        tx.del(k);
        const [tag, name] = Keys.split(k);
        if (tag === 'U') this.userUse.delete(name!);
      }
    });
  }

  /** Whether the entity is a user the group has (an item, or a record of use). */
  #isUser(e: EntityKey): boolean {
    return e.startsWith('u:') && (this.index.has(e) || this.userUse.has(e.slice(2)));
  }

  /** Sequence number of the latest committed change. */
  get seq(): number {
    return this.#seq;
  }

  /** Identity of this database's history; changes when it is replaced by a restore. */
  get epoch(): string {
    return this.#epoch;
  }

  /** Sequence number at which the current epoch began. */
  get epochStartSeq(): number {
    return this.#epochStartSeq;
  }

  protected override afterCommit(ok: boolean): void {
    const entries = this.#pendingFeed;
    this.#pendingFeed = [];
    const madeHolds = this.#pendingHolds;
    this.#pendingHolds = [];
    // The batch that created these users failed: the devices still want them.
    if (!ok) for (const { device, e } of madeHolds) this.#want(device, e);
    if (!ok || entries.length === 0) return;
    const ring = this.#ring;
    ring.push(...entries);
    for (const e of entries) this.#ringBytes += feedValueSize(e);
    let drop = Math.max(0, ring.length - GroupStore.RING_SIZE);
    for (let i = 0; i < drop; i++) this.#ringBytes -= feedValueSize(ring[i]!);
    while (this.#ringBytes > GroupStore.RING_BYTES && drop < ring.length - 1) this.#ringBytes -= feedValueSize(ring[drop++]!);
    if (drop > 0) ring.splice(0, drop);
    for (const l of this.#listeners) l(entries);
  }

  /** Calls `listener` with the entries of every committed batch, in order. */
  onCommit(listener: (entries: readonly FeedEntry[]) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /**
   * Committed entries after `seq`, from memory when recent, else from the log. From memory, an entry
   * that a later one superseded is still listed (the log has dropped it): applying entries in order
   * gives the same result either way.
   */
  async entriesAfter(seq: number, limit: number): Promise<FeedEntry[]> {
    const ring = this.#ring;
    if (ring.length > 0 && ring[0]!.seq <= seq + 1) {
      let lo = 0;
      let hi = ring.length;
      while (lo < hi) {
        const mid = (lo + hi) >>> 1;
        if (ring[mid]!.seq <= seq) lo = mid + 1;
        else hi = mid;
      }
      return ring.slice(lo, lo + limit);
    }
    return this.logAfter(seq, limit);
  }

  // ---- changes -------------------------------------------------------------------------------------

  /** Applies a device's changes in order, in one batch; returns each outcome and the committed entries. */
  async applyChanges(deviceId: string, changes: readonly IncomingChange[]): Promise<{ outcomes: ChangeOutcome[]; feed: FeedEntry[] }> {
    const { outcomes, feed } = await this.commit((tx) => this.#applyTx(tx, deviceId, changes));
    // Duplicates and conflicts are answered with the server's current value, read after the commit.
    for (const o of outcomes) {
      if (o.status === 'duplicate' || o.status === 'conflict') {
        const change = changes.find((c) => c.c === o.c)!;
        const rec = await this.readItem(change.e, change.n);
        o.v = rec?.v ?? 0;
        o.val = rec?.val ?? null;
      }
    }
    return { outcomes, feed };
  }

  #applyTx(tx: Tx, deviceId: string, changes: readonly IncomingChange[]): { outcomes: ChangeOutcome[]; feed: FeedEntry[] } {
    const device = this.#devices.get(deviceId);
    const outcomes: ChangeOutcome[] = [];
    const feed: FeedEntry[] = [];
    let lastCounter = device?.lastCounter ?? 0;
    let processed = device?.processed ?? 0;
    const at = this.now();
    for (const change of changes) {
      if (change.c !== 0 && change.c <= lastCounter) {
        outcomes.push({ c: change.c, status: 'duplicate', v: 0, val: null });
        continue;
      }
      if (change.c !== 0) {
        lastCounter = change.c;
        processed++;
      }
      const { problem, form } = checkChange(change, true);
      if (problem) {
        outcomes.push({ c: change.c, status: 'rejected', code: problem.code, message: problem.message });
        // A device's refused change is kept with its code (SPEC §6); an administrator's own write is not
        // (it was refused to the administrator directly).
        if (change.c !== 0) {
          this.addConflictTx(tx, {
            at,
            deviceId,
            entity: change.e,
            item: change.n,
            value: keptValue(change.val),
            base: change.base,
            serverVersion: this.index.get(change.e)?.get(change.n)?.v ?? 0,
            reason: 'rejected',
            code: problem.code,
          });
        }
        continue;
      }
      const crowded = this.#crowdedTx(change.e, deviceId, at);
      if (crowded) {
        outcomes.push({ c: change.c, status: 'rejected', code: 'USER_LIMIT_REACHED', message: crowded });
        continue;
      }
      // The device writes this user: it holds it from now on (it has the user's data).
      this.#holdTx(tx, deviceId, change.e);
      const cur = this.index.get(change.e)?.get(change.n);
      const base = change.base === -1 ? this.#epochStartSeq : change.base;
      if (cur && cur.v > base && cur.by !== deviceId) {
        this.addConflictTx(tx, {
          at,
          deviceId,
          entity: change.e,
          item: change.n,
          value: change.val,
          base: change.base,
          serverVersion: cur.v,
          reason: 'offline-edit',
        });
        outcomes.push({ c: change.c, status: 'conflict', v: cur.v, val: null });
        continue;
      }
      const entry = this.#writeTx(tx, change.e, change.n, change.val, deviceId, at, form);
      feed.push(entry);
      outcomes.push({ c: change.c, status: 'applied', v: entry.seq });
      feed.push(...this.#touchTx(tx, change.e, at));
    }
    if (device && lastCounter !== device.lastCounter) this.#putDeviceTx(tx, { ...device, lastCounter, processed });
    return { outcomes, feed };
  }

  /**
   * Writes one item at the next sequence number. The group form has the local parts blanked, and its
   * keys sorted (equal content, and a client hashes what it receives without reordering it).
   */
  #writeTx(tx: Tx, e: EntityKey, n: string, value: unknown, by: string, at: number, form = groupForm(e, n, value)): FeedEntry {
    const seq = ++this.#seq;
    const prev = this.index.get(e)?.get(n);
    if (prev) tx.del(Keys.log(prev.v));
    // `val` is in canonical form: its hashed encoding is the one stored (encoded once).
    const { val, hashed: { h, size, bytes } } = form;
    const rec: ItemRecord = { v: seq, h, by, at, val };
    this.writeItemTx(tx, e, n, rec, bytes);
    tx.put(Keys.log(seq), { e, n, by } satisfies LogRecord);
    tx.put(Keys.meta('seq'), seq);
    const entry: FeedEntry = { seq, e, n, v: seq, val, by };
    encodedSizes.set(entry, size);
    this.#pendingFeed.push(entry);
    return entry;
  }

  /** Deletes an entity at the next sequence number, leaving a tombstone in the log. */
  #deleteTx(tx: Tx, e: EntityKey, by: string): FeedEntry {
    for (const state of this.deleteEntityTx(tx, e)) tx.del(Keys.log(state.v));
    const seq = ++this.#seq;
    tx.put(Keys.log(seq), { e, del: true, by } satisfies LogRecord);
    tx.put(Keys.meta('seq'), seq);
    for (const [dev, set] of this.#holds) if (set.delete(e)) tx.del(Keys.hold(dev, e));
    for (const set of this.#wanted.values()) set.delete(e);
    if (e.startsWith('u:')) this.#dropCopiesTx(tx, (_device, user) => user === e.slice(2));
    const entry: FeedEntry = { seq, e, del: true, by };
    this.#pendingFeed.push(entry);
    return entry;
  }

  #touchTx(tx: Tx, e: EntityKey, at: number): FeedEntry[] {
    const parsed = parseEntity(e)!;
    if (parsed.kind !== 'user') return [];
    const isNew = !this.userUse.has(parsed.id);
    // Taken out as read: the map only carries a tombstone from evictUserTx to here (else it would keep
    // one entry per user ever evicted).
    const evicted = this.touchUserTx(tx, parsed.id, at).map((u) => {
      const tombstone = this.#lastTombstone.get(u)!;
      this.#lastTombstone.delete(u);
      return tombstone;
    });
    // A user the group now has: the devices that asked for it hold it.
    if (isNew) {
      for (const [device, wanted] of this.#wanted) {
        if (!wanted.delete(e)) continue;
        this.#pendingHolds.push({ device, e });
        this.#holdTx(tx, device, e);
      }
    }
    return evicted;
  }

  /**
   * Why a write of `e` by `deviceId` would need room the group cannot make, or undefined. The seed rule
   * stands — past the bound the least recently used user is deleted — except that a user used within
   * the grace (a day) is never deleted to make room for a newcomer: one machine creating users in a
   * burst cannot empty the group. The newcomer is refused until room is made (a day passes, an
   * administrator deletes users); each refusal is counted against the device for its health.
   */
  #crowdedTx(e: EntityKey, deviceId: string, at: number): string | undefined {
    const user = e.startsWith('u:') ? e.slice(2) : undefined;
    if (user === undefined || this.userUse.has(user)) return undefined;
    if (this.#hasRoom(at)) {
      // There is room (or it can be made): this device's newcomers are accepted again.
      this.#crowdedOut.delete(deviceId);
      return undefined;
    }
    // An administrator's own write on the server is refused to the shell at once: no device to name.
    if (this.#devices.has(deviceId)) {
      const rec = this.#crowdedOut.get(deviceId) ?? { deviceId, refused: 0, since: at, last: at, users: [] };
      rec.refused++;
      rec.last = at;
      if (rec.users.length < 5) rec.users.push(user);
      this.#crowdedOut.set(deviceId, rec);
    }
    const hours = Math.round(USER_EVICTION_GRACE_MS / 3_600_000);
    return `the group holds ${this.maxUsers} users and each was used within the last ${hours} h: new user ${JSON.stringify(user)} refused until room is made`;
  }

  /**
   * Devices whose newcomers were refused for want of room (SPEC §2's bound under a burst), for health:
   * until there is room again (an administrator deleted users, or a user's last use left the grace).
   */
  crowdedOut(): CrowdedOut[] {
    if (this.#crowdedOut.size > 0 && this.#hasRoom(this.now())) this.#crowdedOut.clear();
    return [...this.#crowdedOut.values()];
  }

  /** Whether a newcomer would be accepted now: below the bound, or the least recently used user is past the grace. */
  #hasRoom(at: number): boolean {
    if (this.userUse.size < this.maxUsers) return true;
    let oldest = Infinity;
    for (const used of this.userUse.values()) if (used < oldest) oldest = used;
    return oldest <= at - USER_EVICTION_GRACE_MS;
  }

  #lastTombstone = new Map<string, FeedEntry>();

  protected override evictUserTx(tx: Tx, user: string): void {
    this.#lastTombstone.set(user, this.#deleteTx(tx, `u:${user}`, 'bound'));
  }

  /**
   * Creates the entities a joining client uploads. An entity that exists by now (another client got
   * there first) is skipped: the first client to connect wins. A new user the bound has no room for is
   * refused (see #crowdedTx).
   */
  async createEntities(
    deviceId: string,
    uploads: readonly EntityUpload[],
  ): Promise<{ created: EntityKey[]; skipped: EntityKey[]; refused: { e: EntityKey; message: string }[]; feed: FeedEntry[] }> {
    return this.commit((tx) => {
      const created: EntityKey[] = [];
      const skipped: EntityKey[] = [];
      const feed: FeedEntry[] = [];
      const refused: { e: EntityKey; message: string }[] = [];
      const at = this.now();
      for (const up of uploads) {
        if (this.hasEntity(up.e)) {
          this.#holdTx(tx, deviceId, up.e);
          skipped.push(up.e);
          continue;
        }
        const valid = Object.keys(up.items).flatMap((n) => checkChange({ c: 0, e: up.e, n, val: up.items[n], base: 0 }, true).form ?? []);
        if (valid.length === 0) continue;
        // Neither created nor skipped: the client keeps its copy and offers it again at its next join.
        const crowded = this.#crowdedTx(up.e, deviceId, at);
        if (crowded) {
          refused.push({ e: up.e, message: crowded });
          continue;
        }
        this.#holdTx(tx, deviceId, up.e);
        for (const form of valid) feed.push(this.#writeTx(tx, up.e, form.n, up.items[form.n], deviceId, at, form));
        feed.push(...this.#touchTx(tx, up.e, at));
        created.push(up.e);
      }
      return { created, skipped, refused, feed };
    });
  }

  /** Deletes entities (Delete User Data); clients holding them delete them too. */
  async deleteEntities(keys: readonly EntityKey[], by: string): Promise<FeedEntry[]> {
    // A user who only logged in has no items but is a user all the same: deleted too.
    const exists = (e: EntityKey) => this.hasEntity(e) || (e.startsWith('u:') && this.userUse.has(e.slice(2)));
    return this.commit((tx) => keys.filter(exists).map((e) => this.#deleteTx(tx, e, by)));
  }

  /**
   * Records a login of a user the group has: its last use moves to now. A user the group does not have
   * is not created by a login (SPEC §6): it would take a place under the bound with no data. Returns
   * whether the user was known.
   */
  async touchUser(user: string): Promise<boolean> {
    if (!this.userUse.has(user)) return false;
    return this.commit((tx) => {
      // Deleted meanwhile (an eviction, Delete User Data): not brought back.
      if (!this.userUse.has(user)) return false;
      this.touchUserTx(tx, user);
      return true;
    }, { sync: false });
  }

  /** Committed entries after `seq`, oldest first, with current values, at most `limit`. */
  async logAfter(seq: number, limit: number): Promise<FeedEntry[]> {
    const out: FeedEntry[] = [];
    for await (const [k, bytes] of this.kv.entries({ ...Keys.logAfter(seq), limit })) {
      const s = parseSeqPart(Keys.split(k)[1]!);
      const rec = decodeRecord<LogRecord>(bytes, k);
      if (rec.del) {
        out.push({ seq: s, e: rec.e, del: true, by: rec.by });
        continue;
      }
      const item = await this.readItem(rec.e, rec.n!);
      // The item was rewritten after this read started: its newer entry comes later in the log.
      if (!item || item.v !== s) continue;
      out.push({ seq: s, e: rec.e, n: rec.n!, v: item.v, val: item.val, by: rec.by });
    }
    return out;
  }

  // ---- sharing scope (SPEC §4) ----------------------------------------------------------------------

  /** The group's sharing scopes: items in device scope and the version of this setting. */
  async sharing(): Promise<{ version: number; device: string[] }> {
    return (await this.getMeta<{ version: number; device: string[] }>('sharing')) ?? { version: 0, device: [] };
  }

  /**
   * Changes an item's scope, with the resets SPEC §4 asks for, in one batch:
   * shared → device: the group's copies of job defaults and previous settings are reset to defaults;
   * device → shared: the per-device copies of the item are dropped and the Shared buttons are reset.
   * (Each machine's own part of the transition happens when it next connects.)
   */
  async setSharing(item: string, scope: 'shared' | 'device', by: string, resetItems: readonly string[]): Promise<{ version: number; device: string[]; reset: number }> {
    const current = await this.sharing();
    const isDevice = current.device.includes(item);
    if ((scope === 'device') === isDevice) return { ...current, reset: 0 };
    return this.commit((tx) => {
      let reset = 0;
      const at = this.now();
      const device = scope === 'device' ? [...current.device, item] : current.device.filter((i) => i !== item);
      const next = { version: current.version + 1, device };
      if (scope === 'device' && resetItems.includes(item)) {
        for (const [e, items] of this.index) {
          if (!e.startsWith('u:') || !items.has(item)) continue;
          this.#writeTx(tx, e, item, catalogItem('user', item).defaultValue, by, at);
          reset++;
        }
      }
      if (scope === 'shared') {
        this.#dropCopiesTx(tx, (_device, _user, i) => i === item);
        if (this.index.get('d:')?.has('shared-buttons')) {
          this.#writeTx(tx, 'd:', 'shared-buttons', catalogItem('device', 'shared-buttons').defaultValue, by, at);
          reset++;
        }
      }
      tx.put(Keys.meta('sharing'), next);
      return { ...next, reset };
    });
  }

  /**
   * Stores a device's own copies of device-scope items (not shared, not logged, never fanned out). Each
   * is checked as a change is; a refused one is not stored and is returned (by index) with its problem.
   * A device keeps copies of at most the user bound of users, as its own store does: past it, the
   * copies of the user it wrote longest ago go.
   */
  putCopies(device: string, copies: readonly { user: string; item: string; val: unknown }[]): Promise<{ i: number; code: ErrorCode; message: string }[]> {
    return this.commit((tx) => {
      const refused: { i: number; code: ErrorCode; message: string }[] = [];
      const at = this.now();
      copies.forEach((c, i) => {
        const { problem } = checkChange({ c: 0, e: `u:${c.user}`, n: c.item, val: c.val, base: 0 });
        if (problem) {
          refused.push({ i, ...problem });
          return;
        }
        const k = Keys.copy(device, c.user, c.item);
        tx.put(k, { val: c.val, at });
        this.#addCopy(k, at);
        const users = this.#copyUsers.get(device)!;
        while (users.size > this.maxUsers) {
          let oldest: string | undefined;
          let oldestAt = Infinity;
          for (const [u, { at: written }] of users) if (u !== c.user && written < oldestAt) [oldest, oldestAt] = [u, written];
          if (oldest === undefined) break;
          // Its keys are known: no walk over every copy of the group.
          for (const item of users.get(oldest)!.items) {
            const old = Keys.copy(device, oldest, item);
            tx.del(old);
            this.#copyKeys.delete(old);
          }
          users.delete(oldest);
        }
      });
      return refused;
    });
  }

  /** Notes a copy's key and when its user's copies were last written. */
  #addCopy(k: string, at: number): void {
    const [, device, user, item] = Keys.split(k) as [string, string, string, string];
    let users = this.#copyUsers.get(device);
    if (!users) this.#copyUsers.set(device, (users = new Map()));
    const u = users.get(user) ?? { at, items: new Set<string>() };
    u.at = Math.max(u.at, at);
    u.items.add(item);
    users.set(user, u);
    this.#copyKeys.add(k);
  }

  /** Deletes the copies a predicate selects, inside a batch. */
  #dropCopiesTx(tx: Tx, drop: (device: string, user: string, item: string) => boolean): void {
    for (const k of this.#copyKeys) {
      const [, device, user, item] = Keys.split(k);
      if (drop(device!, user!, item!)) {
        tx.del(k);
        this.#copyKeys.delete(k);
        // The user's other copies on this device may remain: its entry goes with its last copy.
        const users = this.#copyUsers.get(device!);
        const u = users?.get(user!);
        if (u && u.items.delete(item!) && u.items.size === 0) users!.delete(user!);
      }
    }
  }

  /** A device's own copies, to give back to it when it joins again (e.g. after losing its store). */
  async copiesOf(device: string): Promise<{ user: string; item: string; val: unknown }[]> {
    const out: { user: string; item: string; val: unknown }[] = [];
    for await (const [k, bytes] of this.kv.entries(Keys.copiesOf(device))) {
      const [, , user, item] = Keys.split(k);
      out.push({ user: user!, item: item!, val: decodeRecord<{ val: unknown }>(bytes, k).val });
    }
    return out;
  }

  // ---- devices and holds ---------------------------------------------------------------------------

  /** Every admitted device, the server's own included. */
  devices(): DeviceRecord[] {
    return [...this.#devices.values()];
  }

  /** One device record. */
  device(id: string): DeviceRecord | undefined {
    return this.#devices.get(id);
  }

  /** Whether the device was removed and not re-admitted since. */
  isRemoved(id: string): boolean {
    return this.#removed.has(id);
  }

  #putDeviceTx(tx: Tx, rec: DeviceRecord): void {
    this.#devices.set(rec.id, rec);
    tx.put(Keys.device(rec.id), rec);
    if (this.#removed.delete(rec.id)) tx.del(Keys.removed(rec.id));
  }

  /**
   * Admits or updates a device. The caller built `rec` from the record as it was when it called; changes
   * of the device queued before this write may have moved its counters since (a heartbeat or a new
   * session's hello racing the changes of the same device): those only move forward here, else a change
   * whose acknowledgement was lost would be applied again when re-sent.
   */
  putDevice(rec: DeviceRecord, options: { sync?: boolean } = {}): Promise<void> {
    return this.commit((tx) => {
      const cur = this.#devices.get(rec.id);
      // `processed` is only ever moved by the changes themselves.
      this.#putDeviceTx(tx, cur ? { ...rec, lastCounter: Math.max(rec.lastCounter, cur.lastCounter), processed: cur.processed ?? 0 } : rec);
    }, options);
  }

  /**
   * This machine takes the group over from an image (a restore, a recovery, a promoted replica): it
   * becomes the group's own device, the previous server's record (holds, copies) goes — its slot is
   * freed — and a new epoch begins, so every client resyncs by checksum against this history instead
   * of resuming a cursor the image may not have reached.
   */
  takeOver(self: DeviceRecord, epoch: string = randomEpoch()): Promise<void> {
    return this.commit((tx) => {
      for (const d of this.#devices.values()) {
        if (!d.self || d.id === self.id) continue;
        this.#dropCopiesTx(tx, (device) => device === d.id);
        this.#devices.delete(d.id);
        tx.del(Keys.device(d.id));
        this.#forgetHoldsTx(tx, d.id);
      }
      const known = this.#devices.get(self.id);
      this.#putDeviceTx(tx, { ...self, ...(known ? { lastCounter: known.lastCounter, cursor: known.cursor, admittedAt: known.admittedAt } : {}), self: true });
      this.#epoch = epoch;
      this.#epochStartSeq = this.#seq;
      tx.put(Keys.meta('epoch'), epoch);
      tx.put(Keys.meta('epochStartSeq'), this.#seq);
      // A promoted replica's note of its last received copy goes: else every restart would take the
      // group over again (a new epoch each time, and every client resyncing by checksum).
      tx.del(Keys.meta('replicated'));
    });
  }

  /** Removes a device: its slot is freed, its holds and copies dropped, and it is refused until re-admitted. */
  removeDevice(id: string): Promise<boolean> {
    return this.commit((tx) => {
      this.#dropCopiesTx(tx, (device) => device === id);
      if (!this.#devices.delete(id)) return false;
      tx.del(Keys.device(id));
      tx.put(Keys.removed(id), { at: this.now() });
      this.#removed.add(id);
      this.#forgetHoldsTx(tx, id);
      return true;
    });
  }

  #holdSet(device: string): Set<EntityKey> {
    let set = this.#holds.get(device);
    if (!set) this.#holds.set(device, (set = new Set()));
    return set;
  }

  /** Drops every hold and wanted user of a device (removed, or replaced by a take-over). */
  #forgetHoldsTx(tx: Tx, device: string): void {
    for (const e of this.#holds.get(device) ?? []) tx.del(Keys.hold(device, e));
    this.#holds.delete(device);
    this.#wanted.delete(device);
    this.#crowdedOut.delete(device);
  }

  /** Records inside a batch that a device holds a user the group has (or creates in this batch). */
  #holdTx(tx: Tx, device: string, e: EntityKey): void {
    // An administrator's write on the server (`admin:…`) is no session: nothing to hold.
    if (!e.startsWith('u:') || !this.#devices.has(device)) return;
    const set = this.#holdSet(device);
    if (set.has(e)) return;
    set.add(e);
    this.#wanted.get(device)?.delete(e);
    tx.put(Keys.hold(device, e), 1);
  }

  /** Keeps in memory that a device wants a user the group does not have: at most the user bound, oldest dropped. */
  #want(device: string, e: EntityKey): void {
    let set = this.#wanted.get(device);
    if (!set) this.#wanted.set(device, (set = new Set()));
    set.delete(e);
    set.add(e);
    while (set.size > this.maxUsers) set.delete(set.values().next().value!);
  }

  /** Users a device holds on disk (the group has them). */
  holds(device: string): ReadonlySet<EntityKey> {
    return this.#holds.get(device) ?? EMPTY;
  }

  /** Users a device asked for that the group does not have yet (memory only, bounded). */
  wanted(device: string): ReadonlySet<EntityKey> {
    return this.#wanted.get(device) ?? EMPTY;
  }

  /** Whether a device is sent the changes of a user: it holds it, or asked for it before it existed. */
  isHeld(device: string, e: EntityKey): boolean {
    return this.#holds.get(device)?.has(e) === true || this.#wanted.get(device)?.has(e) === true;
  }

  /**
   * A device holds (add) or no longer holds (remove) users: a login's fetch, a join's offer, a release.
   * A user the group has becomes a hold on disk; one it does not have is only wanted, in memory (see the
   * class comment); other entities are not held (every client gets them). The in-memory sets change at
   * once, before the write: a change committed meanwhile is sent twice at worst, never missed.
   */
  updateHolds(device: string, add: readonly EntityKey[], remove: readonly EntityKey[] = []): Promise<void> {
    const set = this.#holdSet(device);
    const added: EntityKey[] = [];
    for (const e of add) {
      if (!e.startsWith('u:') || set.has(e)) continue;
      if (!this.#isUser(e)) {
        this.#want(device, e);
        continue;
      }
      set.add(e);
      added.push(e);
    }
    const removed = remove.filter((e) => set.delete(e));
    for (const e of remove) this.#wanted.get(device)?.delete(e);
    if (added.length + removed.length === 0) return Promise.resolve();
    return this.commit(
      (tx) => {
        // Deleted between the check and this batch: its hold was dropped with it.
        for (const e of added) if (this.#isUser(e)) tx.put(Keys.hold(device, e), 1);
        for (const e of removed) tx.del(Keys.hold(device, e));
      },
      { sync: false },
    );
  }
}

const EMPTY: ReadonlySet<EntityKey> = new Set();

/** An item value in the form the group stores: local parts blanked, keys sorted, hashed and encoded once. */
interface GroupForm {
  n: string;
  val: unknown;
  hashed: HashedValue;
}

function groupForm(e: EntityKey, n: string, value: unknown): GroupForm {
  return formOf(n, blankLocalParts(catalogItem(parseEntity(e)!.kind, n), value));
}

function formOf(n: string, blanked: unknown): GroupForm {
  const hashed = hashAndSize(blanked);
  return { n, val: hashed.canonical, hashed };
}

/**
 * Checks an incoming item write: a coded problem, or (with `withForm`) its group form — whose encoding
 * gives the size checked here, so a value the server stores is encoded once, not once more to measure it.
 */
function checkChange(change: IncomingChange, withForm = false): { problem?: { code: ErrorCode; message: string }; form?: GroupForm } {
  const entity = parseEntity(change.e);
  if (!entity) return { problem: { code: 'INVALID_ARGUMENT', message: `malformed entity ${JSON.stringify(change.e)}` } };
  let cat: CatalogItem;
  try {
    cat = catalogItem(entity.kind, change.n);
  } catch (err) {
    return { problem: { code: 'UNKNOWN_ITEM', message: (err as Error).message } };
  }
  if (change.val === undefined) return { problem: { code: 'INVALID_ARGUMENT', message: 'a value is required' } };
  try {
    // Plain data only, bounded depth, no __proto__ key: what every peer decodes to the same value.
    itemValue('value', change.n, change.val);
  } catch (err) {
    return { problem: { code: 'INVALID_ARGUMENT', message: (err as Error).message } };
  }
  // The item's own shape (its schema in the catalog).
  const mismatch = valueProblem(cat, change.val);
  if (mismatch) return { problem: { code: 'INVALID_ARGUMENT', message: mismatch } };
  // The limit is on the value as sent; key order does not change an encoding's size.
  let form: GroupForm | undefined;
  let size: number;
  if (withForm) {
    const blanked = blankLocalParts(cat, change.val);
    form = formOf(change.n, blanked);
    size = blanked === change.val ? form.hashed.size : encodedSize(change.val);
  } else {
    size = encodedSize(change.val);
  }
  if (size > MAX_VALUE_BYTES) {
    return { problem: { code: 'VALUE_TOO_LARGE', message: `${change.n} is ${size} bytes encoded; the limit is ${MAX_VALUE_BYTES}` } };
  }
  return { form };
}

/**
 * A refused value as the conflict log keeps it: as sent when it is plain data within the value bound,
 * else null (the log's entries stay bounded, and what cannot be stored is not).
 */
function keptValue(val: unknown): unknown {
  try {
    itemValue('value', 'value', val);
    return encodedSize(val) <= MAX_VALUE_BYTES ? val : null;
  } catch {
    return null;
  }
}

/** Whether an item write would be accepted (its entity, item, shape and size). */
export function isValidChange(change: Pick<IncomingChange, 'e' | 'n' | 'val'>): boolean {
  return checkChange({ ...change, c: 0, base: 0 }).problem === undefined;
}

/** Validates an item write before it is queued or applied; throws the coded error. */
export function assertValidChange(change: Pick<IncomingChange, 'e' | 'n' | 'val'>): void {
  const { problem } = checkChange({ ...change, c: 0, base: 0 });
  if (problem) throw new MfpError(problem.code, problem.message, { item: change.n });
}

function randomEpoch(): string {
  return crypto.randomUUID().replace(/-/g, '').slice(0, 16);
}

