/**
 * Users' personalized data on this machine (SPEC §3, §8): login and logout, reading and writing items,
 * `users list` and Delete User Data, and the `item-changed` / `entity-deleted` events they cause.
 */
import { MfpError } from '../../protocol/errors.js';
import { catalogItem, entityKey, itemsOfKind, parseEntity, type EntityKey, type ItemKind } from '../../storage/catalog.js';
import { assertValidChange } from '../../storage/group-store.js';
import type { RemoteItem } from '../../storage/local-store.js';
import type { ItemRecord, Store } from '../../storage/store.js';
import { deleteLocalCopies } from '../client.js';
import type { ApplyDuringLogin, Runtime } from './runtime.js';

/** One entry of `users list`. */
export interface UserEntry {
  kind: 'user' | 'group';
  id: string;
  lastUsed: number | null;
  items: number;
  /** With `checksums`: the content hash of the entity (what a join or resync compares), `null` if it holds no item. */
  checksum?: string | null;
}

/** An entity's items as `item get` shows them. */
export interface ItemsResult {
  kind: ItemKind;
  id: string;
  items: Record<string, { value: unknown; version: number; set: boolean }>;
}

/** What `item set` did. */
export interface SetItemResult {
  version: number;
  queued: boolean;
  change?: number;
}

/** What Delete User Data can target. */
export interface DeleteTargets {
  users?: string[];
  groups?: string[];
  search?: string;
  local?: boolean;
}

const LIVE_ITEMS = new Set(['language', 'accessibility']);

/** Users, their items and their deletion. */
export class UsersService {
  readonly #rt: Runtime;

  constructor(rt: Runtime) {
    this.#rt = rt;
  }

  /** At start: the kept [Allow custom settings to be applied during operation], unless the run option gives one (kept then). */
  async loadApplyDuringLogin(option: ApplyDuringLogin | undefined): Promise<void> {
    const rt = this.#rt;
    const kept = await rt.local.getMeta<ApplyDuringLogin>('applyDuringLogin');
    rt.applyDuringLogin = option ?? kept ?? 'immediate';
    if (option !== undefined && option !== kept) await rt.local.setMeta({ applyDuringLogin: option });
  }

  /**
   * [Allow custom settings to be applied during operation] (SPEC §3.5): read, or set and persist. A
   * logged-in user's changed language/accessibility applies at once (`immediate`) or at their next login.
   */
  async applyDuringLogin(value?: ApplyDuringLogin): Promise<{ applyDuringLogin: ApplyDuringLogin }> {
    const rt = this.#rt;
    if (value !== undefined && value !== rt.applyDuringLogin) {
      await rt.local.setMeta({ applyDuringLogin: value });
      rt.applyDuringLogin = value;
      rt.log.info('ADMIN', `Allow custom settings to be applied during operation: ${value === 'immediate' ? 'on (immediate)' : 'off (at the next login)'}`);
    }
    return { applyDuringLogin: rt.applyDuringLogin };
  }

  /** A user logged in on this machine: their current data is fetched from the server (SPEC §3.2). */
  async login(user: string): Promise<void> {
    const rt = this.#rt;
    entityKey('user', user);
    rt.loggedIn.add(user);
    if (rt.role === 'server' && rt.group) {
      await rt.group.touchUser(user);
      return;
    }
    const evicted = await rt.local.touch(user);
    this.evicted(evicted);
    rt.client?.login(user);
  }

  /** A user logged out. */
  async logout(user: string): Promise<void> {
    entityKey('user', user);
    this.#rt.loggedIn.delete(user);
  }

  /** Users this machine dropped over its bound: the client releases them and firmware is told. */
  evicted(users: string[]): void {
    if (users.length === 0) return;
    const rt = this.#rt;
    rt.log.warning('USER_LIMIT_EXCEEDED', `more than ${rt.local.maxUsers} users on this machine: dropped the least recently used ${users.join(', ')}`);
    rt.client?.release(users);
    for (const id of users) rt.events.emit('entity-deleted', { kind: 'user', id });
  }

  /** Items and entities that arrived from the group. */
  onRemote(applied: readonly RemoteItem[], deleted: readonly EntityKey[]): void {
    const rt = this.#rt;
    for (const it of applied) {
      const parsed = parseEntity(it.e)!;
      const deferred = rt.applyDuringLogin === 'next-login' && parsed.kind === 'user' && rt.loggedIn.has(parsed.id) && LIVE_ITEMS.has(it.n);
      rt.events.emit('item-changed', { kind: parsed.kind, id: parsed.id, item: it.n, source: 'remote', applyNow: !deferred });
    }
    for (const e of deleted) {
      const parsed = parseEntity(e)!;
      rt.events.emit('entity-deleted', { kind: parsed.kind, id: parsed.id });
    }
  }

  /** Reads items of an entity: one (its value) or all (catalog defaults where unset). */
  async getItems(kind: ItemKind, id: string, item?: string): Promise<ItemsResult> {
    const e = entityKey(kind, id);
    const names = item !== undefined ? [catalogItem(kind, item).name] : itemsOfKind(kind).map((i) => i.name);
    const store = this.#rt.dataStore();
    if (kind === 'user' && !store.hasEntity(e) && !store.users().some((u) => u.name === id)) {
      throw new MfpError('NOT_FOUND', `no data for user ${JSON.stringify(id)} on this machine`, { user: id });
    }
    // One item is one point read; the whole entity is one scan of its items.
    const records = item !== undefined ? await oneRecord(store, e, names[0]!) : await store.readEntity(e);
    const items: ItemsResult['items'] = {};
    for (const n of names) {
      const rec = records.get(n);
      items[n] = rec ? { value: rec.val, version: rec.v, set: true } : { value: catalogItem(kind, n).defaultValue, version: 0, set: false };
    }
    return { kind, id, items };
  }

  /** Writes an item on this machine; on a client it is queued durably and sent to the server. */
  async setItem(kind: ItemKind, id: string, item: string, value: unknown): Promise<SetItemResult> {
    const rt = this.#rt;
    const e = entityKey(kind, id);
    catalogItem(kind, item);
    assertValidChange({ e, n: item, val: value });
    const role = rt.role;
    if (role === 'replica') throw new MfpError('WRONG_ROLE', 'a replica holds a copy of the server; change data on the server');
    let result: SetItemResult;
    if (role === 'server' && rt.group) {
      const group = rt.group;
      const base = group.itemStates(e)?.get(item)?.v ?? 0;
      const { outcomes } = await group.applyChanges(`admin:${rt.identity.deviceId}`, [{ c: 0, e, n: item, val: value, base }]);
      const o = outcomes[0]!;
      if (o.status === 'rejected') throw new MfpError(o.code, o.message, { item });
      result = { version: o.v, queued: false };
    } else {
      const queue = role === 'client' || role === 'server-client';
      const { counter, evicted } = await rt.local.setLocal(rt.identity.deviceId, e, item, value, { queue });
      this.evicted(evicted);
      // `change`: the queued change's counter, which its acknowledgement (changes-acked) names.
      result = { version: rt.local.itemStates(e)?.get(item)?.v ?? 0, queued: queue, ...(queue ? { change: counter } : {}) };
    }
    rt.events.emit('item-changed', { kind, id, item, source: 'local', applyNow: true });
    return result;
  }

  /** Users and user groups, filtered by partial, case-insensitive match (blank lists all). */
  list(search = '', options: { checksums?: boolean; local?: boolean } = {}): UserEntry[] {
    const rt = this.#rt;
    const store = options.local || rt.role === 'standalone' || rt.role === 'client' || !rt.group ? rt.local : rt.group;
    const q = search.toLowerCase();
    const out: UserEntry[] = [];
    const seen = new Set<string>();
    for (const u of store.users()) {
      seen.add(u.name);
      if (u.name.toLowerCase().includes(q)) out.push({ kind: 'user', id: u.name, lastUsed: u.lastUsed, items: store.itemStates(`u:${u.name}`)?.size ?? 0 });
    }
    for (const e of store.entities()) {
      const p = parseEntity(e)!;
      if (p.kind === 'user' && !seen.has(p.id) && p.id.toLowerCase().includes(q)) out.push({ kind: 'user', id: p.id, lastUsed: null, items: store.itemStates(e)!.size });
      if (p.kind === 'group' && p.id.toLowerCase().includes(q)) out.push({ kind: 'group', id: p.id, lastUsed: null, items: store.itemStates(e)!.size });
    }
    if (options.checksums) for (const u of out) u.checksum = store.entityHash(entityKey(u.kind, u.id)) ?? null;
    return out;
  }

  /**
   * Delete User Data (SPEC §8): on a server and a server-client, across the group; on a standalone
   * machine, locally; on a client — and on a server-client with `local` — this machine's copy only
   * (the next login fetches it again).
   */
  async delete(targets: DeleteTargets): Promise<{ deleted: string[] }> {
    const rt = this.#rt;
    const role = rt.role;
    if (role === 'replica') throw new MfpError('WRONG_ROLE', 'a replica holds a copy of the server; delete user data on the server');
    const local = role === 'client' || targets.local === true;
    if (local && role === 'server') throw new MfpError('WRONG_ROLE', 'a server has no copy of its own to delete: `users delete` without --local deletes across the group');
    const keys = new Set<EntityKey>();
    for (const u of targets.users ?? []) keys.add(entityKey('user', u));
    for (const g of targets.groups ?? []) keys.add(entityKey('group', g));
    if (targets.search !== undefined) for (const u of this.list(targets.search, { local })) keys.add(entityKey(u.kind, u.id));
    let deleted: EntityKey[];
    if (local && rt.client) {
      deleted = await deleteLocalCopies(rt.local, rt.client, [...keys]);
      for (const e of deleted) rt.events.emit('entity-deleted', { kind: parseEntity(e)!.kind, id: e.slice(2) });
    } else if (rt.group) {
      deleted = (await rt.group.deleteEntities([...keys], `admin:${rt.identity.deviceId}`)).map((f) => f.e);
    } else {
      deleted = await rt.local.deleteLocal([...keys]);
    }
    if (deleted.length > 0) rt.log.info('USERS_DELETED', `deleted the data of ${deleted.join(', ')}`);
    return { deleted: deleted.map((e) => e.slice(2)) };
  }
}

/** One item's record as `readEntity` lists it (empty when the item is not set): one point read. */
async function oneRecord(store: Store, e: EntityKey, n: string): Promise<Map<string, ItemRecord>> {
  const rec = await store.readItem(e, n);
  return new Map(rec ? [[n, rec]] : []);
}
