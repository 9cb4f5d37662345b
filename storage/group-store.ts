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
import { MAX_VALUE_BYTES } from '../protocol/limits.js';
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

/** The server's store. */
export class GroupStore extends Store {
  #seq = 0;
  #epoch = '';
  #epochStartSeq = 0;
  #devices = new Map<string, DeviceRecord>();
  #removed = new Set<string>();
  #holds = new Map<string, Set<EntityKey>>();
  /** Keys of the per-device copies (SPEC §4), so batch builders can drop them without reading. */
  #copyKeys = new Set<string>();
  /** Entries of the batch being built; published when it is on disk. */
  #pendingFeed: FeedEntry[] = [];
  /** Recent committed entries, in seq order without gaps, so live fan-out needs no disk read. */
  #ring: FeedEntry[] = [];
  #listeners = new Set<(entries: readonly FeedEntry[]) => void>();
  static readonly RING_SIZE = 4096;

  /** Opens (creating if needed) a group store. */
  static async open(options: StoreOptions & { epoch?: () => string }): Promise<GroupStore> {
    const store = new GroupStore(options);
    await store.load();
    if (!store.#epoch) {
      store.#epoch = (options.epoch ?? randomEpoch)();
      await store.setMeta({ epoch: store.#epoch, epochStartSeq: store.#seq });
    }
    return store;
  }

  protected override async reloadIndex(): Promise<void> {
    await super.reloadIndex();
    this.#ring = [];
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
    for await (const [k] of this.kv.entries(Keys.allCopies())) this.#copyKeys.add(k);
    for await (const [k] of this.kv.entries(Keys.allHolds())) {
      const [, dev, entity] = Keys.split(k);
      this.#holdSet(dev!).add(entity!);
    }
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
    if (!ok || entries.length === 0) return;
    this.#ring.push(...entries);
    if (this.#ring.length > GroupStore.RING_SIZE) this.#ring.splice(0, this.#ring.length - GroupStore.RING_SIZE);
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
    if (e.startsWith('u:')) this.#dropCopiesTx(tx, (_device, user) => user === e.slice(2));
    const entry: FeedEntry = { seq, e, del: true, by };
    this.#pendingFeed.push(entry);
    return entry;
  }

  #touchTx(tx: Tx, e: EntityKey, at: number): FeedEntry[] {
    const parsed = parseEntity(e)!;
    if (parsed.kind !== 'user') return [];
    return this.touchUserTx(tx, parsed.id, at).map((u) => this.#lastTombstone.get(u)!);
  }

  #lastTombstone = new Map<string, FeedEntry>();

  protected override evictUserTx(tx: Tx, user: string): void {
    this.#lastTombstone.set(user, this.#deleteTx(tx, `u:${user}`, 'bound'));
  }

  /**
   * Creates the entities a joining client uploads. An entity that exists by now (another client got
   * there first) is skipped: the first client to connect wins.
   */
  async createEntities(deviceId: string, uploads: readonly EntityUpload[]): Promise<{ created: EntityKey[]; skipped: EntityKey[]; feed: FeedEntry[] }> {
    return this.commit((tx) => {
      const created: EntityKey[] = [];
      const skipped: EntityKey[] = [];
      const feed: FeedEntry[] = [];
      const at = this.now();
      for (const up of uploads) {
        if (this.hasEntity(up.e)) {
          skipped.push(up.e);
          continue;
        }
        const valid = Object.keys(up.items).flatMap((n) => checkChange({ c: 0, e: up.e, n, val: up.items[n], base: 0 }, true).form ?? []);
        if (valid.length === 0) continue;
        for (const form of valid) feed.push(this.#writeTx(tx, up.e, form.n, up.items[form.n], deviceId, at, form));
        feed.push(...this.#touchTx(tx, up.e, at));
        created.push(up.e);
      }
      return { created, skipped, feed };
    });
  }

  /** Deletes entities (Delete User Data); clients holding them delete them too. */
  async deleteEntities(keys: readonly EntityKey[], by: string): Promise<FeedEntry[]> {
    // A user who only logged in has no items but is a user all the same: deleted too.
    const exists = (e: EntityKey) => this.hasEntity(e) || (e.startsWith('u:') && this.userUse.has(e.slice(2)));
    return this.commit((tx) => keys.filter(exists).map((e) => this.#deleteTx(tx, e, by)));
  }

  /** Records a login: the user's last use moves to now. Returns tombstones of users the bound evicted. */
  async touchUser(user: string): Promise<FeedEntry[]> {
    return this.commit((tx) => this.#touchTx(tx, `u:${user}`, this.now()), { sync: false });
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

  /** Stores a device's own copies of device-scope items (not shared, not logged, never fanned out). */
  putCopies(device: string, copies: readonly { user: string; item: string; val: unknown }[]): Promise<void> {
    return this.commit((tx) => {
      for (const c of copies) {
        const k = Keys.copy(device, c.user, c.item);
        tx.put(k, { val: c.val, at: this.now() });
        this.#copyKeys.add(k);
      }
    });
  }

  /** Deletes the copies a predicate selects, inside a batch. */
  #dropCopiesTx(tx: Tx, drop: (device: string, user: string, item: string) => boolean): void {
    for (const k of this.#copyKeys) {
      const [, device, user, item] = Keys.split(k);
      if (drop(device!, user!, item!)) {
        tx.del(k);
        this.#copyKeys.delete(k);
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
        for (const e of this.#holds.get(d.id) ?? []) tx.del(Keys.hold(d.id, e));
        this.#holds.delete(d.id);
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
      for (const e of this.#holds.get(id) ?? []) tx.del(Keys.hold(id, e));
      this.#holds.delete(id);
      return true;
    });
  }

  #holdSet(device: string): Set<EntityKey> {
    let set = this.#holds.get(device);
    if (!set) this.#holds.set(device, (set = new Set()));
    return set;
  }

  /** Entities a device holds. */
  holds(device: string): ReadonlySet<EntityKey> {
    return this.#holdSet(device);
  }

  /** Adds and removes holds of a device. The in-memory set changes at once, before the write. */
  updateHolds(device: string, add: readonly EntityKey[], remove: readonly EntityKey[] = []): Promise<void> {
    const set = this.#holdSet(device);
    const added = add.filter((e) => !set.has(e));
    const removed = remove.filter((e) => set.has(e));
    for (const e of added) set.add(e);
    for (const e of removed) set.delete(e);
    if (added.length + removed.length === 0) return Promise.resolve();
    return this.commit(
      (tx) => {
        for (const e of added) tx.put(Keys.hold(device, e), 1);
        for (const e of removed) tx.del(Keys.hold(device, e));
      },
      { sync: false },
    );
  }
}

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

