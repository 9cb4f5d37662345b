/**
 * The domain stores (GroupStore on the server, LocalStore on a machine, and the Store core under both),
 * driven through their public methods, as one suite that every KvStore backend runs in one line.
 *
 * Time is injected: every store here reads a hand-moved clock. The one fault is injected into the
 * backend (FlakyKv: a KvStore whose writes fail on demand), never into the code under test. Tests that
 * close a store and open it again on the same data run only when the backend keeps its data
 * (`reopen` given).
 */
import test, { type ExecutionContext } from 'ava';
import { MfpError, type ErrorCode } from '../../protocol/errors.js';
import { MAX_VALUE_BYTES, USER_EVICTION_GRACE_MS as DAY } from '../../protocol/limits.js';
import { GroupStore, type DeviceRecord, type FeedEntry, type IncomingChange } from '../../storage/group-store.js';
import type { KvOp, KvRange, KvSnapshot, KvStore, KvWriteOptions } from '../../storage/kv.js';
import { LocalStore, type QueuedChange } from '../../storage/local-store.js';
import { Keys } from '../../storage/keys.js';
import { decodeRecord, encodedSize, encodeRecord, valueHash } from '../../storage/records.js';
import type { ItemRecord, StoreOptions } from '../../storage/store.js';

/** Makes a fresh, unopened backend for one test. */
export type MakeKv = (t: ExecutionContext) => KvStore;
/** A second handle on the data of a closed backend (a LevelDB folder opened again). */
export type ReopenKv = (kv: KvStore) => KvStore;

/**
 * A backend whose writes fail while `failWrites` is set, as a full disk would make them, and whose
 * recovery fails while `failRecover` is (the disk still full); `calls` lists what reached it.
 */
class FlakyKv implements KvStore {
  failWrites = false;
  failRecover = false;
  readonly calls: string[] = [];
  constructor(readonly inner: KvStore) {}
  async recover(): Promise<void> {
    if (this.failRecover) {
      this.calls.push('recover failed');
      throw Object.assign(new Error('injected: cannot reopen, no space left on device'), { code: 'ENOSPC' });
    }
    this.calls.push('recover');
    await this.inner.recover();
  }
  open(): Promise<void> {
    return this.inner.open();
  }
  close(options?: { seal?: boolean; keep?: Uint8Array }): Promise<void> {
    return this.inner.close(options);
  }
  get untouchedSinceSeal(): boolean {
    return this.inner.untouchedSinceSeal;
  }
  get sealed(): Uint8Array | undefined {
    return this.inner.sealed;
  }
  get(key: string): Promise<Uint8Array | undefined> {
    return this.inner.get(key);
  }
  async write(ops: readonly KvOp[], options: KvWriteOptions): Promise<void> {
    if (this.failWrites) {
      this.calls.push('write failed');
      throw Object.assign(new Error('injected: no space left on device'), { code: 'ENOSPC' });
    }
    this.calls.push('write');
    await this.inner.write(ops, options);
  }
  entries(range: KvRange): AsyncIterable<[string, Uint8Array]> {
    return this.inner.entries(range);
  }
  snapshot(): KvSnapshot {
    return this.inner.snapshot();
  }
}

/** A clock the test moves by hand. */
class Clock {
  t = 1_000_000;
  readonly now = () => this.t;
}

function deviceRecord(id: string, extra: Partial<DeviceRecord> = {}): DeviceRecord {
  return {
    id,
    publicKey: `pk-${id}`,
    name: `machine ${id}`,
    serial: `S-${id}`,
    location: 'floor 2',
    software: 'test',
    protocol: 2,
    capabilities: [],
    admittedAt: 1,
    lastSeen: 1,
    lastCounter: 0,
    cursor: 0,
    ...extra,
  };
}

function change(c: number, e: string, n: string, val: unknown, base = 0): IncomingChange {
  return { c, e, n, val, base };
}

function seqs(entries: readonly FeedEntry[]): number[] {
  return entries.map((e) => e.seq);
}

/** What a client ends up holding after applying entries in order. */
function fold(entries: readonly FeedEntry[]): [string, unknown][] {
  const state = new Map<string, unknown>();
  for (const f of entries) {
    if (f.del) {
      for (const k of [...state.keys()]) if (k.startsWith(`${f.e}\0`)) state.delete(k);
    } else {
      state.set(`${f.e}\0${f.n}`, [f.v, f.val]);
    }
  }
  return [...state].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
}

function assertCoded(t: ExecutionContext, err: unknown, code: ErrorCode, message: RegExp): void {
  t.true(err instanceof MfpError, `expected an MfpError, got ${String(err)}`);
  t.is((err as MfpError).code, code);
  t.regex((err as Error).message, message);
}

/** Registers the domain store tests for one backend. */
export function storeSuite(name: string, makeKv: MakeKv, reopen?: ReopenKv): void {
  type GroupOptions = Partial<StoreOptions> & { epoch?: () => string };

  async function openGroup(t: ExecutionContext, options: GroupOptions = {}): Promise<{ store: GroupStore; kv: KvStore; clock: Clock }> {
    const clock = new Clock();
    const kv = options.kv ?? makeKv(t);
    const store = await GroupStore.open({ now: clock.now, epoch: () => 'epoch-1', ...options, kv });
    t.teardown(() => store.close());
    return { store, kv, clock };
  }

  async function openLocal(t: ExecutionContext, options: Partial<StoreOptions> = {}): Promise<{ store: LocalStore; kv: KvStore; clock: Clock }> {
    const clock = new Clock();
    const kv = options.kv ?? makeKv(t);
    const store = await LocalStore.open({ now: clock.now, ...options, kv });
    t.teardown(() => store.close());
    return { store, kv, clock };
  }

  /** A group store with devices A and B admitted. */
  async function groupWithDevices(t: ExecutionContext, options: GroupOptions = {}) {
    const opened = await openGroup(t, options);
    await opened.store.putDevice(deviceRecord('A'));
    await opened.store.putDevice(deviceRecord('B'));
    return opened;
  }

  // ---- GroupStore: changes -------------------------------------------------------------------------

  test(`${name}: group: each applied change gets the next seq, and the item's version is that seq`, async (t) => {
    const { store, clock } = await groupWithDevices(t);
    t.is(store.seq, 0);
    t.is(store.epoch, 'epoch-1');
    clock.t = 5000;
    const first = await store.applyChanges('A', [change(1, 'u:ann', 'home', { tiles: 1 }), change(2, 'u:ann', 'language', { display: 'fr' })]);
    t.deepEqual(first.outcomes, [
      { c: 1, status: 'applied', v: 1 },
      { c: 2, status: 'applied', v: 2 },
    ]);
    t.deepEqual(first.feed, [
      { seq: 1, e: 'u:ann', n: 'home', v: 1, val: { tiles: 1 }, by: 'A' },
      { seq: 2, e: 'u:ann', n: 'language', v: 2, val: { display: 'fr' }, by: 'A' },
    ]);
    const second = await store.applyChanges('B', [change(1, 'u:bob', 'home', { tiles: 2 })]);
    t.deepEqual(second.outcomes, [{ c: 1, status: 'applied', v: 3 }]);
    t.is(store.seq, 3);
    t.like(store.itemStates('u:ann')?.get('home'), { v: 1, by: 'A', at: 5000 });
    t.like(store.itemStates('u:ann')?.get('language'), { v: 2, by: 'A' });
    t.like(await store.readItem('u:bob', 'home'), { v: 3, by: 'B', val: { tiles: 2 } });
    t.is(store.device('A')?.lastCounter, 2);
    t.is(store.device('B')?.lastCounter, 1);
    t.deepEqual(store.entities().sort(), ['u:ann', 'u:bob']);
  });

  test(`${name}: group: the change log holds only the newest entry of a rewritten item`, async (t) => {
    const { store } = await groupWithDevices(t);
    await store.applyChanges('A', [change(1, 'u:ann', 'home', { n: 1 }), change(2, 'u:ann', 'language', { display: 'de' })]);
    await store.applyChanges('A', [change(3, 'u:ann', 'home', { n: 2 }, 1)]);
    await store.applyChanges('B', [change(1, 'u:ann', 'home', { n: 3 }, 3)]);
    t.deepEqual(await store.logAfter(0, 100), [
      { seq: 2, e: 'u:ann', n: 'language', v: 2, val: { display: 'de' }, by: 'A' },
      { seq: 4, e: 'u:ann', n: 'home', v: 4, val: { n: 3 }, by: 'B' },
    ]);
    t.deepEqual(seqs(await store.logAfter(2, 100)), [4]);
    t.deepEqual(seqs(await store.logAfter(0, 1)), [2]);
    t.deepEqual(await store.logAfter(4, 100), []);
    t.like(await store.readItem('u:ann', 'home'), { v: 4, val: { n: 3 } });
  });

  test(`${name}: group: a change re-sent with an applied counter is answered duplicate and not applied again`, async (t) => {
    const { store } = await groupWithDevices(t);
    await store.applyChanges('A', [change(1, 'u:ann', 'home', { n: 1 })]);
    const again = await store.applyChanges('A', [change(1, 'u:ann', 'home', { n: 'resent' })]);
    t.deepEqual(again.outcomes, [{ c: 1, status: 'duplicate', v: 1, val: { n: 1 } }]);
    t.deepEqual(again.feed, []);
    t.is(store.seq, 1);
    t.like(await store.readItem('u:ann', 'home'), { v: 1, val: { n: 1 } });

    // In one batch: an old counter, a new one, and the new one again.
    const mixed = await store.applyChanges('A', [
      change(1, 'u:ann', 'home', { n: 'old' }),
      change(2, 'u:ann', 'home', { n: 2 }),
      change(2, 'u:ann', 'home', { n: 'twice' }),
    ]);
    t.deepEqual(mixed.outcomes, [
      { c: 1, status: 'duplicate', v: 2, val: { n: 2 } },
      { c: 2, status: 'applied', v: 2 },
      { c: 2, status: 'duplicate', v: 2, val: { n: 2 } },
    ]);
    t.is(store.seq, 2);
    t.is(store.device('A')?.lastCounter, 2);
    t.deepEqual(await store.logAfter(0, 100), [{ seq: 2, e: 'u:ann', n: 'home', v: 2, val: { n: 2 }, by: 'A' }]);

    // Counter 0 is an administrator's write: never deduplicated.
    const admin = await store.applyChanges('A', [change(0, 'u:ann', 'home', { n: 'a1' }, 2), change(0, 'u:ann', 'home', { n: 'a2' }, 3)]);
    t.deepEqual(admin.outcomes, [
      { c: 0, status: 'applied', v: 3 },
      { c: 0, status: 'applied', v: 4 },
    ]);
    t.is(store.device('A')?.lastCounter, 2);
  });

  test(`${name}: group: a device record written while its changes are queued keeps their counters (re-sent changes stay duplicates)`, async (t) => {
    const { store } = await groupWithDevices(t);
    await store.applyChanges('A', [change(1, 'u:ann', 'home', { n: 1 })]);
    t.is(store.device('A')?.processed, 1);
    // A heartbeat (or a new session's hello) builds the record from what it reads now, while changes of
    // the same device are queued behind it in the group commit: both in one turn, as on a busy server.
    const stale = store.device('A')!;
    const applied = store.applyChanges('A', [change(2, 'u:ann', 'home', { n: 2 }, 1), change(3, 'u:ann', 'language', { display: 'ja' })]);
    const beat = store.putDevice({ ...stale, lastSeen: 123 }, { sync: false });
    await Promise.all([applied, beat]);
    t.like(store.device('A'), { lastCounter: 3, processed: 3, lastSeen: 123 });
    // The ack of 2 and 3 was lost; the client re-sends them: duplicates, not applied a second time.
    const resent = await store.applyChanges('A', [change(2, 'u:ann', 'home', { n: 2 }, 1), change(3, 'u:ann', 'language', { display: 'ja' })]);
    t.deepEqual(resent.outcomes.map((o) => o.status), ['duplicate', 'duplicate']);
    t.is(store.seq, 3);
    t.like(store.device('A'), { lastCounter: 3, processed: 3 });
  });

  test(`${name}: group: another device writing on an older base is a conflict, and the conflict log keeps its value`, async (t) => {
    const { store, clock } = await groupWithDevices(t);
    await store.applyChanges('A', [change(1, 'u:ann', 'home', { by: 'A' })]);
    clock.t = 7777;
    const res = await store.applyChanges('B', [change(1, 'u:ann', 'home', { by: 'B' }, 0)]);
    t.deepEqual(res.outcomes, [{ c: 1, status: 'conflict', v: 1, val: { by: 'A' } }]);
    t.deepEqual(res.feed, []);
    t.is(store.seq, 1);
    t.like(await store.readItem('u:ann', 'home'), { v: 1, by: 'A', val: { by: 'A' } });
    t.deepEqual(await store.conflicts(), [
      { at: 7777, deviceId: 'B', entity: 'u:ann', item: 'home', value: { by: 'B' }, base: 0, serverVersion: 1, reason: 'offline-edit' },
    ]);
    // The counter was consumed: the same change re-sent is a duplicate and is not logged twice.
    const resent = await store.applyChanges('B', [change(1, 'u:ann', 'home', { by: 'B' }, 0)]);
    t.is(resent.outcomes[0]!.status, 'duplicate');
    t.is((await store.conflicts()).length, 1);
    // Based on the current version, B wins; then A, on its old base, loses against B.
    const up = await store.applyChanges('B', [change(2, 'u:ann', 'home', { by: 'B2' }, 1)]);
    t.deepEqual(up.outcomes, [{ c: 2, status: 'applied', v: 2 }]);
    const lost = await store.applyChanges('A', [change(2, 'u:ann', 'home', { by: 'A2' }, 1)]);
    t.deepEqual(lost.outcomes, [{ c: 2, status: 'conflict', v: 2, val: { by: 'B2' } }]);
    t.deepEqual(
      (await store.conflicts()).map((c) => [c.deviceId, c.value, c.base, c.serverVersion]),
      [
        ['B', { by: 'B' }, 0, 1],
        ['A', { by: 'A2' }, 1, 2],
      ],
    );
  });

  test(`${name}: group: the same device writing twice on the same old base is not a conflict`, async (t) => {
    const { store } = await groupWithDevices(t);
    await store.applyChanges('A', [change(1, 'u:ann', 'home', { n: 1 }, 0)]);
    const res = await store.applyChanges('A', [change(2, 'u:ann', 'home', { n: 2 }, 0)]);
    t.deepEqual(res.outcomes, [{ c: 2, status: 'applied', v: 2 }]);
    t.like(await store.readItem('u:ann', 'home'), { v: 2, val: { n: 2 } });
    t.deepEqual(await store.conflicts(), []);
  });

  test(`${name}: group: base -1 (a change from a previous epoch) counts from the epoch start`, async (t) => {
    const { store } = await groupWithDevices(t);
    t.is(store.epochStartSeq, 0);
    // A fresh store's epoch starts at 0: an item written since is newer than a base of -1.
    await store.applyChanges('A', [change(1, 'u:ann', 'home', { by: 'A' })]);
    const res = await store.applyChanges('B', [change(1, 'u:ann', 'home', { by: 'B' }, -1), change(2, 'u:ann', 'language', { display: 'it' }, -1)]);
    t.deepEqual(res.outcomes, [
      { c: 1, status: 'conflict', v: 1, val: { by: 'A' } },
      { c: 2, status: 'applied', v: 2 },
    ]);
    t.like((await store.conflicts())[0], { deviceId: 'B', base: -1, serverVersion: 1 });
  });

  test(`${name}: group: an item outside the catalog is rejected with UNKNOWN_ITEM and nothing is written`, async (t) => {
    const { store } = await groupWithDevices(t);
    const res = await store.applyChanges('A', [
      change(1, 'u:ann', 'bogus', 1),
      // 'home' exists for users, not for user groups.
      change(2, 'g:7', 'home', {}),
      change(3, 'x:ann', 'home', {}),
      change(4, 'u:ann', 'home', undefined),
    ]);
    t.deepEqual(
      res.outcomes.map((o) => [o.c, o.status, o.status === 'rejected' ? o.code : '']),
      [
        [1, 'rejected', 'UNKNOWN_ITEM'],
        [2, 'rejected', 'UNKNOWN_ITEM'],
        [3, 'rejected', 'INVALID_ARGUMENT'],
        [4, 'rejected', 'INVALID_ARGUMENT'],
      ],
    );
    const [o1, o2] = res.outcomes;
    t.regex(o1!.status === 'rejected' ? o1!.message : '', /no user item named "bogus"/);
    t.regex(o2!.status === 'rejected' ? o2!.message : '', /no group item named "home"/);
    t.deepEqual(res.feed, []);
    t.is(store.seq, 0);
    t.false(store.hasEntity('u:ann'));
    t.deepEqual(await store.logAfter(0, 100), []);
    t.deepEqual(store.users(), []);
  });

  test(`${name}: group: a value over MAX_VALUE_BYTES encoded is rejected with VALUE_TOO_LARGE; one at the limit is applied`, async (t) => {
    const { store } = await groupWithDevices(t);
    // A field the schema does not name is kept as it is, bounded by the value's size only.
    const wrap = (n: number) => ({ x: 'x'.repeat(n) });
    const overhead = encodedSize(wrap(100_000)) - 100_000;
    const atLimit = wrap(MAX_VALUE_BYTES - overhead);
    const over = wrap(MAX_VALUE_BYTES - overhead + 1);
    t.is(encodedSize(atLimit), MAX_VALUE_BYTES, 'test setup');
    const res = await store.applyChanges('A', [change(1, 'u:ann', 'address-list', [over]), change(2, 'u:ann', 'home', over), change(3, 'u:ann', 'network', atLimit)]);
    t.like(res.outcomes[0], { c: 1, status: 'rejected', code: 'VALUE_TOO_LARGE' });
    t.like(res.outcomes[1], { c: 2, status: 'rejected', code: 'VALUE_TOO_LARGE' });
    const o = res.outcomes[1]!;
    t.regex(o.status === 'rejected' ? o.message : '', new RegExp(`home is ${MAX_VALUE_BYTES + 1} bytes encoded; the limit is ${MAX_VALUE_BYTES}`));
    t.deepEqual(res.outcomes[2], { c: 3, status: 'applied', v: 1 });
    t.is(store.itemStates('u:ann')?.has('home'), false);
    t.is(store.itemStates('u:ann')?.has('address-list'), false);
    t.deepEqual((await store.readItem('u:ann', 'network'))?.val, atLimit);
  });

  test(`${name}: group: send destinations are blanked in the group's copy`, async (t) => {
    const { store } = await groupWithDevices(t);
    const res = await store.applyChanges('A', [
      change(1, 'u:ann', 'job-defaults', { fax: { destinations: ['x'], res: 1 } }),
      change(2, 'u:ann', 'previous-settings', { 'scan-and-send': { destinations: [{ to: 'a@b' }], dpi: 300 }, copy: { n: 2 } }),
      // Items without local parts keep every field, even one named like a destination.
      change(3, 'u:ann', 'home', { fax: { destinations: ['x'] } }),
    ]);
    t.deepEqual(
      res.outcomes.map((o) => o.status),
      ['applied', 'applied', 'applied'],
    );
    const expected = {
      'job-defaults': { fax: { destinations: [], res: 1 } },
      'previous-settings': { 'scan-and-send': { destinations: [], dpi: 300 }, copy: { n: 2 } },
      home: { fax: { destinations: ['x'] } },
    };
    for (const [n, val] of Object.entries(expected)) {
      t.deepEqual((await store.readItem('u:ann', n))?.val, val, n);
      t.deepEqual(res.feed.find((f) => f.n === n)?.val, val, `feed ${n}`);
    }
    t.deepEqual((await store.logAfter(0, 10)).find((f) => f.n === 'job-defaults')?.val, expected['job-defaults']);
  });

  // ---- GroupStore: entities --------------------------------------------------------------------------

  test(`${name}: group: values are stored with their keys sorted; the content hash is the same as unsorted`, async (t) => {
    const { store } = await groupWithDevices(t);
    const value = { z: 1, a: { y: [{ d: 1, c: 2 }], b: true }, '10': 'x', '9': 'y' };
    await store.applyChanges('A', [change(1, 'u:ann', 'home', value)]);
    const stored = (await store.readItem('u:ann', 'home'))!;
    t.deepEqual(stored.val, value);
    t.deepEqual(Object.keys(stored.val as object), ['9', '10', 'a', 'z']);
    t.deepEqual(Object.keys((stored.val as { a: object }).a), ['b', 'y']);
    t.deepEqual(Object.keys((stored.val as { a: { y: object[] } }).a.y[0]!), ['c', 'd']);
    t.is(stored.h, valueHash(value));
  });

  test(`${name}: core: scanEntities visits every item of the asked entities once, by one scan or one iterator each`, async (t) => {
    const { store } = await groupWithDevices(t);
    const users = Array.from({ length: 20 }, (_, i) => `u:user${String(i).padStart(2, '0')}`);
    let c = 0;
    await store.applyChanges('A', users.flatMap((e, i) => [change(++c, e, 'home', { i }), change(++c, e, 'language', { display: 'en', i })]));
    const seen = async (entities: string[]) => {
      const out: string[] = [];
      await store.scanEntities([...entities, 'u:nobody'], (e, n, bytes, key) => {
        t.deepEqual(decodeRecord<ItemRecord>(bytes, key), { ...store.itemStates(e)!.get(n)!, val: n === 'home' ? { i: users.indexOf(e) } : { display: 'en', i: users.indexOf(e) } });
        out.push(`${e}/${n}`);
      });
      return out.sort();
    };
    const expect = (entities: string[]) => entities.flatMap((e) => [`${e}/home`, `${e}/language`]).sort();
    // Neighbours (one scan from the first to the last), scattered (one iterator each), everything.
    t.deepEqual(await seen(users.slice(3, 9)), expect(users.slice(3, 9)));
    const scattered = [users[0]!, users[10]!, users[19]!];
    t.deepEqual(await seen(scattered), expect(scattered));
    t.deepEqual(await seen(users), expect(users));
    t.deepEqual(await seen([]), []);
  });

  test(`${name}: group: createEntities skips an entity that exists — the first client wins`, async (t) => {
    const { store } = await groupWithDevices(t);
    const a = await store.createEntities('A', [{ e: 'u:ann', items: { home: { by: 'A' } } }]);
    t.deepEqual(a.created, ['u:ann']);
    t.deepEqual(a.skipped, []);
    t.deepEqual(a.feed, [{ seq: 1, e: 'u:ann', n: 'home', v: 1, val: { by: 'A' }, by: 'A' }]);
    const b = await store.createEntities('B', [
      { e: 'u:ann', items: { home: { by: 'B' }, language: { display: 'fr' } } },
      { e: 'g:7', items: { 'address-list': [{ name: 'x' }] } },
      // Items outside the catalog are left out; an entity with none left is not created.
      { e: 'u:cat', items: { bogus: 1, home: { by: 'B' } } },
      { e: 'u:dog', items: { bogus: 1 } },
    ]);
    t.deepEqual(b.created, ['g:7', 'u:cat']);
    t.deepEqual(b.skipped, ['u:ann']);
    t.deepEqual(
      b.feed.map((f) => [f.seq, f.e, f.n]),
      [
        [2, 'g:7', 'address-list'],
        [3, 'u:cat', 'home'],
      ],
    );
    t.like(await store.readItem('u:ann', 'home'), { v: 1, by: 'A', val: { by: 'A' } });
    t.deepEqual([...store.itemStates('u:ann')!.keys()], ['home']);
    t.deepEqual([...store.itemStates('u:cat')!.keys()], ['home']);
    t.false(store.hasEntity('u:dog'));
    t.deepEqual(store.users().map((u) => u.name).sort(), ['ann', 'cat']);
  });

  test(`${name}: group: deleteEntities leaves a tombstone in the log and drops every device's hold`, async (t) => {
    const { store } = await groupWithDevices(t);
    await store.applyChanges('A', [change(1, 'u:ann', 'home', {}), change(2, 'u:ann', 'language', { display: 'en' }), change(3, 'u:bob', 'home', { b: 1 })]);
    await store.updateHolds('A', ['u:ann', 'u:bob']);
    await store.updateHolds('B', ['u:ann']);
    const feed = await store.deleteEntities(['u:ann', 'u:nobody'], 'admin');
    t.deepEqual(feed, [{ seq: 4, e: 'u:ann', del: true, by: 'admin' }]);
    t.is(store.seq, 4);
    t.false(store.hasEntity('u:ann'));
    t.is(store.itemStates('u:ann'), undefined);
    t.is(await store.readItem('u:ann', 'home'), undefined);
    t.is((await store.readEntity('u:ann')).size, 0);
    t.deepEqual([...store.holds('A')], ['u:bob']);
    t.deepEqual([...store.holds('B')], []);
    t.deepEqual(store.users().map((u) => u.name), ['bob']);
    t.deepEqual(await store.logAfter(0, 100), [
      { seq: 3, e: 'u:bob', n: 'home', v: 3, val: { b: 1 }, by: 'A' },
      { seq: 4, e: 'u:ann', del: true, by: 'admin' },
    ]);
    t.deepEqual(await store.deleteEntities(['u:ann'], 'admin'), [], 'deleting a deleted entity is a no-op');
    t.is(store.seq, 4);
  });

  test(`${name}: group: past maxUsers, creating a user deletes the least recently used one`, async (t) => {
    const { store, clock } = await groupWithDevices(t, { maxUsers: 3 });
    let c = 0;
    for (const [u, at] of [
      ['u1', 1000],
      ['u2', 2000],
      ['u3', 3000],
    ] as const) {
      clock.t = at;
      await store.applyChanges('A', [change(++c, `u:${u}`, 'home', { u }), change(++c, `u:${u}`, 'language', { display: 'en', u })]);
    }
    // A day later: nobody was used within the grace, so the seed rule applies as it is.
    clock.t = DAY + 4000;
    t.true(await store.touchUser('u1'), 'touching a known user evicts nobody');
    clock.t = DAY + 5000;
    const res = await store.applyChanges('A', [change(++c, 'u:u4', 'home', { u: 'u4' })]);
    t.deepEqual(res.outcomes, [{ c, status: 'applied', v: 7 }]);
    t.deepEqual(res.feed, [
      { seq: 7, e: 'u:u4', n: 'home', v: 7, val: { u: 'u4' }, by: 'A' },
      { seq: 8, e: 'u:u2', del: true, by: 'bound' },
    ]);
    t.false(store.hasEntity('u:u2'));
    t.is(await store.readItem('u:u2', 'home'), undefined);
    t.deepEqual(store.users(), [
      { name: 'u4', lastUsed: DAY + 5000 },
      { name: 'u1', lastUsed: DAY + 4000 },
      { name: 'u3', lastUsed: 3000 },
    ]);
    const log = await store.logAfter(0, 100);
    t.false(log.some((f) => f.e === 'u:u2' && !f.del), 'an item of the evicted user is still in the log');
    t.deepEqual(log.at(-1), { seq: 8, e: 'u:u2', del: true, by: 'bound' });

    // createEntities enforces the bound too; a login of an unknown user creates nobody (SPEC §6).
    clock.t = DAY + 6000;
    const created = await store.createEntities('B', [{ e: 'u:u5', items: { home: {} } }]);
    t.deepEqual(created.feed.at(-1), { seq: 10, e: 'u:u3', del: true, by: 'bound' });
    clock.t = DAY + 7000;
    t.false(await store.touchUser('u6'));
    t.deepEqual(
      store.users().map((u) => u.name),
      ['u5', 'u4', 'u1'],
    );
    t.deepEqual(store.entities().sort(), ['u:u1', 'u:u4', 'u:u5']);
    t.deepEqual(store.crowdedOut(), []);
  });

  test(`${name}: group: a user used within the last day is never deleted for a newcomer: the newcomer is refused`, async (t) => {
    const { store, clock } = await groupWithDevices(t, { maxUsers: 3 });
    clock.t = 10_000;
    await store.applyChanges('A', [change(1, 'u:u1', 'home', {}), change(2, 'u:u2', 'home', {}), change(3, 'u:u3', 'home', {})]);
    clock.t = 20_000;
    const burst = await store.applyChanges('B', [change(1, 'u:x1', 'home', {}), change(2, 'u:x2', 'language', { display: 'en' }), change(3, 'u:u1', 'home', { n: 1 }, 1)]);
    t.like(burst.outcomes[0], { c: 1, status: 'rejected', code: 'USER_LIMIT_REACHED' });
    t.like(burst.outcomes[1], { c: 2, status: 'rejected', code: 'USER_LIMIT_REACHED' });
    t.deepEqual(burst.outcomes[2], { c: 3, status: 'applied', v: 4 }, 'a change of a user the group has still goes through');
    const up = await store.createEntities('B', [{ e: 'u:x3', items: { home: {} } }]);
    t.deepEqual([up.created, up.skipped], [[], []], 'a refused upload is neither created nor skipped: the client keeps it');
    t.is(up.refused[0]?.e, 'u:x3');
    t.deepEqual(store.users().map((u) => u.name).sort(), ['u1', 'u2', 'u3']);
    t.false([...store.holds('B')].some((e) => e.startsWith('u:x')), 'a refused newcomer left a hold');
    t.like(store.crowdedOut(), [{ deviceId: 'B', refused: 3, since: 20_000, users: ['x1', 'x2', 'x3'] }]);
    // An administrator's write is refused the same way, but names no device.
    const admin = await store.applyChanges('admin:S', [change(0, 'u:x4', 'home', {})]);
    t.like(admin.outcomes[0], { status: 'rejected', code: 'USER_LIMIT_REACHED' });
    t.is(store.crowdedOut().length, 1);

    // A day after u2's last use it may go: room is made, the device's next newcomer is accepted and
    // its health record ends.
    clock.t = 10_000 + DAY;
    t.deepEqual(store.crowdedOut(), [], 'the refusal still stands once room can be made');
    const later = await store.applyChanges('B', [change(4, 'u:x1', 'home', {})]);
    t.like(later.outcomes[0], { status: 'applied' });
    t.deepEqual(later.feed.at(-1), { seq: 6, e: 'u:u2', del: true, by: 'bound' });
  });

  test(`${name}: group: entriesAfter answers from memory what logAfter answers from disk`, async (t) => {
    const { store } = await groupWithDevices(t, { maxUsers: 10_000 });
    // More entries than the in-memory ring holds, so both paths of entriesAfter are taken.
    const total = GroupStore.RING_SIZE + 104;
    const changes = Array.from({ length: total }, (_, i) => change(i + 1, `u:p${i}`, 'home', { i }));
    const res = await store.applyChanges('A', changes);
    t.is(res.feed.length, total);
    t.is(store.seq, total);
    for (const after of [0, 50, 103, 104, 105, 2000, total - 20, total - 1, total]) {
      t.deepEqual(await store.entriesAfter(after, 25), await store.logAfter(after, 25), `after ${after}`);
    }
    t.deepEqual(seqs(await store.entriesAfter(total - 3, 25)), [total - 2, total - 1, total]);

    // Rewrites and a deletion: whatever entriesAfter returns, applying it ends where the log ends.
    await store.applyChanges('A', [change(total + 1, 'u:p4100', 'home', { i: 'again' }, total), change(total + 2, 'u:p4199', 'home', { i: 'x' }, total)]);
    await store.deleteEntities(['u:p4190'], 'admin');
    for (const after of [4000, 4150]) {
      const fromMemory = await store.entriesAfter(after, 10_000);
      const fromDisk = await store.logAfter(after, 10_000);
      t.deepEqual(fold(fromMemory), fold(fromDisk), `after ${after}`);
      t.deepEqual(seqs(fromMemory), [...seqs(fromMemory)].sort((a, b) => a - b));
    }
  });

  test(`${name}: group: onCommit listeners receive every committed entry once, in seq order`, async (t) => {
    const { store } = await groupWithDevices(t);
    const batches: FeedEntry[][] = [];
    const off = store.onCommit((entries) => batches.push([...entries]));
    const settled: number[] = [];
    // Submitted together: the group-commit writer may put several in one batch.
    const results = await Promise.all([
      store.applyChanges('A', [change(1, 'u:ann', 'home', { n: 1 })]).then((r) => {
        settled.push(...seqs(r.feed));
        t.true(seqs(batches.flat()).includes(1), 'the listener had the entry before the write resolved');
        return r.feed;
      }),
      store.applyChanges('B', [change(1, 'u:bob', 'home', { n: 2 }), change(2, 'u:bob', 'language', { display: 'fr', n: 3 })]).then((r) => r.feed),
      store.createEntities('A', [{ e: 'g:1', items: { 'address-list': [] } }]).then((r) => r.feed),
      store.deleteEntities(['u:ann'], 'admin'),
      store.applyChanges('A', [change(2, 'u:ann', 'home', { n: 5 })]).then((r) => r.feed),
    ]);
    t.deepEqual(settled, [1]);
    const all = batches.flat();
    t.deepEqual(seqs(all), [1, 2, 3, 4, 5, 6]);
    t.deepEqual(all, results.flat());
    t.true(batches.every((b) => b.length > 0), 'a listener was called with an empty batch');
    // A batch that commits no entry (a duplicate) is not announced.
    const before = batches.length;
    await store.applyChanges('A', [change(1, 'u:ann', 'home', { n: 1 })]);
    t.is(batches.length, before);
    off();
    await store.applyChanges('A', [change(3, 'u:ann', 'home', { n: 6 })]);
    t.is(batches.length, before, 'an unsubscribed listener was called');
  });

  test(`${name}: group: a login of a user the group does not have creates nothing`, async (t) => {
    const { store } = await groupWithDevices(t);
    t.false(await store.touchUser('visitor'));
    await store.updateHolds('A', ['u:visitor']);
    t.deepEqual(store.users(), []);
    t.deepEqual([...store.holds('A')], [], 'a hold of a user the group does not have was recorded');
    t.deepEqual([...store.wanted('A')], ['u:visitor']);
    t.deepEqual(await store.deleteEntities(['u:visitor'], 'admin'), []);
  });

  // ---- GroupStore: devices and holds ---------------------------------------------------------------

  test(`${name}: group: updateHolds adds and removes; holds reflects it`, async (t) => {
    const { store } = await groupWithDevices(t);
    await store.applyChanges('B', [change(1, 'u:a', 'home', {}), change(2, 'u:b', 'home', {}), change(3, 'u:c', 'home', {}), change(4, 'd:', 'shared-buttons', [])]);
    t.deepEqual([...store.holds('A')], []);
    await store.updateHolds('A', ['u:a', 'u:b', 'd:']);
    t.deepEqual([...store.holds('A')].sort(), ['u:a', 'u:b'], 'only users are held (every client gets the rest)');
    await store.updateHolds('A', ['u:c', 'u:b'], ['u:a', 'u:zzz']);
    t.deepEqual([...store.holds('A')].sort(), ['u:b', 'u:c']);
    t.deepEqual([...store.holds('B')].sort(), ['u:a', 'u:b', 'u:c'], 'a writer holds what it wrote');
    await store.updateHolds('A', [], ['d:', 'u:b', 'u:c']);
    t.deepEqual([...store.holds('A')], []);
  });

  test(`${name}: group: a device's copies of device-scope items are checked like changes and bounded by the user bound`, async (t) => {
    const { store, clock } = await groupWithDevices(t, { maxUsers: 2 });
    clock.t = 1000;
    t.deepEqual(await store.putCopies('A', [{ user: 'u1', item: 'job-defaults', val: { copy: { copies: 1 } } }, { user: 'u1', item: 'timeline', val: [] }]), []);
    clock.t = 2000;
    const refused = await store.putCopies('A', [{ user: 'u2', item: 'no-such-item', val: 1 }, { user: 'u2', item: 'job-defaults', val: undefined }, { user: 'u2', item: 'job-defaults', val: {} }]);
    t.deepEqual(refused.map((r) => [r.i, r.code]), [[0, 'UNKNOWN_ITEM'], [1, 'INVALID_ARGUMENT']]);
    await store.putCopies('B', [{ user: 'u9', item: 'job-defaults', val: {} }]);
    clock.t = 3000;
    await store.putCopies('A', [{ user: 'u3', item: 'job-defaults', val: { copy: { copies: 3 } } }]);
    const users = (copies: { user: string }[]) => [...new Set(copies.map((c) => c.user))].sort();
    t.deepEqual(users(await store.copiesOf('A')), ['u2', 'u3'], 'the copies of the user written longest ago go first');
    t.deepEqual(users(await store.copiesOf('B')), ['u9'], 'another device keeps its own');
  });

  test(`${name}: group: a user wanted before it exists is held once created, and wanted users are bounded`, async (t) => {
    const { store } = await groupWithDevices(t, { maxUsers: 3 });
    await store.updateHolds('A', ['u:w1', 'u:w2', 'u:w3', 'u:w4']);
    t.deepEqual([...store.holds('A')], []);
    t.deepEqual([...store.wanted('A')], ['u:w2', 'u:w3', 'u:w4'], 'at most the user bound, oldest dropped');
    t.false(store.isHeld('A', 'u:w1'));
    t.true(store.isHeld('A', 'u:w3'));
    await store.applyChanges('B', [change(1, 'u:w3', 'home', {})]);
    t.deepEqual([...store.holds('A')], ['u:w3'], 'created by another device: now a hold');
    t.deepEqual([...store.wanted('A')], ['u:w2', 'u:w4']);
    await store.updateHolds('A', [], ['u:w2']);
    t.deepEqual([...store.wanted('A')], ['u:w4'], 'a release drops a wanted user');
  });

  test(`${name}: group: removeDevice drops the device and its holds; it is refused until admitted again`, async (t) => {
    const { store } = await groupWithDevices(t);
    await store.updateHolds('B', ['u:ann']);
    t.false(store.isRemoved('B'));
    t.true(await store.removeDevice('B'));
    t.true(store.isRemoved('B'));
    t.is(store.device('B'), undefined);
    t.deepEqual(store.devices().map((d) => d.id), ['A']);
    t.deepEqual([...store.holds('B')], []);
    t.false(await store.removeDevice('B'), 'removing a removed device');
    t.false(await store.removeDevice('nobody'));
    t.false(store.isRemoved('nobody'));
    await store.putDevice(deviceRecord('B', { lastCounter: 0 }));
    t.false(store.isRemoved('B'));
    t.is(store.device('B')?.serial, 'S-B');
  });

  if (reopen) {
    test(`${name}: group: opening drops what older versions left for users the group does not have`, async (t) => {
      const { store, kv, clock } = await groupWithDevices(t);
      await store.applyChanges('A', [change(1, 'u:ann', 'home', {})]);
      await store.close();
      // As a version before holds were bounded wrote them: holds of refused users, a login's empty user.
      const raw = reopen(kv);
      await raw.open();
      await raw.write([
        { type: 'put', key: Keys.hold('A', 'u:ghost'), value: encodeRecord(1) },
        { type: 'put', key: Keys.hold('B', 'g:1'), value: encodeRecord(1) },
        { type: 'put', key: Keys.user('visitor'), value: encodeRecord({ lastUsed: 5 }) },
      ], { sync: true });
      await raw.close();
      const again = await GroupStore.open({ kv: reopen(raw), now: clock.now });
      t.teardown(() => again.close());
      t.deepEqual([...again.holds('A')], ['u:ann']);
      t.deepEqual([...again.holds('B')], []);
      t.deepEqual(again.users().map((u) => u.name), ['ann']);
      const keys: string[] = [];
      for await (const [k] of again.kv.entries({ gt: 'H', lt: 'V' })) keys.push(k);
      t.deepEqual(keys.filter((k) => k.startsWith('H') || k.startsWith('U')), [Keys.hold('A', 'u:ann'), Keys.user('ann')]);
    });

    test(`${name}: group: reopening restores seq, epoch, devices, removals, holds, users, the index and the log`, async (t) => {
      const { store, kv, clock } = await groupWithDevices(t);
      await store.putDevice(deviceRecord('C'));
      clock.t = 2000;
      await store.applyChanges('A', [change(1, 'u:ann', 'home', { n: 1 }), change(2, 'u:ann', 'job-defaults', { fax: { destinations: ['x'], res: 1 } })]);
      await store.applyChanges('B', [change(1, 'u:ann', 'home', { n: 'B' }, 0), change(2, 'g:3', 'address-list', [{ n: 1 }])]);
      await store.updateHolds('A', ['u:ann', 'g:3', 'u:nobody']);
      await store.updateHolds('C', ['u:ann']);
      await store.removeDevice('C');
      const before = await everything(store);
      t.is(before.seq, 3);
      t.is(before.conflicts.length, 1);
      await store.close();

      const again = await GroupStore.open({ kv: reopen(kv), now: clock.now, epoch: () => 'must-not-be-used' });
      t.teardown(() => again.close());
      t.deepEqual(await everything(again), before);
      t.is(again.device('A')?.lastCounter, 2);
      t.true(again.isRemoved('C'));
      t.deepEqual([...again.holds('A')].sort(), ['u:ann']);
      t.deepEqual([...again.wanted('A')], [], 'a wanted user is memory only');
      t.deepEqual([...again.holds('C')], []);
      // Served from disk now (the ring starts empty), with the same answer.
      t.deepEqual(await again.entriesAfter(0, 100), before.log);
      // Counters survive: a re-sent change is a duplicate; the next one continues the sequence.
      const res = await again.applyChanges('A', [change(2, 'u:ann', 'home', { n: 'late' }), change(3, 'u:ann', 'language', { display: 'en' })]);
      t.deepEqual(res.outcomes, [
        { c: 2, status: 'duplicate', v: 1, val: { n: 1 } },
        { c: 3, status: 'applied', v: 4 },
      ]);
    });

    test(`${name}: core: conflict and sync log entries made at the same time before and after a restart are all kept`, async (t) => {
      const { store, kv, clock } = await groupWithDevices(t);
      clock.t = 500;
      const conflict = { at: 500, deviceId: 'A', entity: 'u:ann', item: 'home', value: 'first', base: 0, serverVersion: 1, reason: 'offline-edit' } as const;
      await store.addConflict(conflict);
      await store.appendLog({ at: 500, level: 'info', code: 'C', message: 'before restart' });
      await store.close();
      // Same millisecond again after the restart (a clock set back, or a fast restart).
      const again = await GroupStore.open({ kv: reopen(kv), now: clock.now });
      t.teardown(() => again.close());
      await again.addConflict({ ...conflict, value: 'second' });
      await again.appendLog({ at: 500, level: 'info', code: 'C', message: 'after restart' });
      t.deepEqual(
        (await again.conflicts()).map((c) => c.value),
        ['first', 'second'],
      );
      t.deepEqual(
        (await again.syncLog()).map((e) => e.message),
        ['before restart', 'after restart'],
      );
    });

    test(`${name}: group: base -1 counts from the start of a later epoch`, async (t) => {
      const { store, kv } = await groupWithDevices(t);
      await store.applyChanges('A', [change(1, 'u:ann', 'home', { n: 1 }), change(2, 'u:ann', 'language', { display: 'en', n: 2 })]);
      // The database is replaced (a restore): a new history starts at the current seq.
      await store.setMeta({ epoch: 'epoch-2', epochStartSeq: store.seq });
      await store.close();
      const again = await GroupStore.open({ kv: reopen(kv) });
      t.teardown(() => again.close());
      t.is(again.epoch, 'epoch-2');
      t.is(again.epochStartSeq, 2);
      await again.applyChanges('A', [change(3, 'u:ann', 'timeline', [{ summary: 'after' }])]);
      const res = await again.applyChanges('B', [
        // Written before the epoch start: a base from the previous epoch is not older than it.
        change(1, 'u:ann', 'home', { n: 'B' }, -1),
        // Written after the epoch start by A: B's old base loses.
        change(2, 'u:ann', 'timeline', [{ summary: 'B' }], -1),
        // A plain base of 0 is older than anything written.
        change(3, 'u:ann', 'language', { display: 'en', n: 'B' }, 0),
      ]);
      t.deepEqual(
        res.outcomes.map((o) => [o.c, o.status, o.status === 'rejected' ? o.code : o.v]),
        [
          [1, 'applied', 4],
          [2, 'conflict', 3],
          [3, 'conflict', 2],
        ],
      );
    });
  }

  // ---- LocalStore --------------------------------------------------------------------------------------

  test(`${name}: local: setLocal writes the item and, with queue, a queue entry under the next counter`, async (t) => {
    const { store, clock } = await openLocal(t);
    clock.t = 3000;
    t.deepEqual(await store.setLocal('me', 'u:ann', 'home', { n: 1 }, { queue: true }), { counter: 1, evicted: [] });
    clock.t = 3001;
    t.deepEqual(await store.setLocal('me', 'u:ann', 'language', { display: 'fr' }, { queue: true }), { counter: 2, evicted: [] });
    t.deepEqual(await store.setLocal('me', 'u:ann', 'network', { proxy: 'p' }, { queue: false }), { counter: 0, evicted: [] });
    t.is(store.counter, 2);
    t.is(store.queueSize, 2);
    t.is(await store.getMeta('counter'), 2);
    t.deepEqual(await store.queued(), [
      { c: 1, e: 'u:ann', n: 'home', val: { n: 1 }, base: 0, at: 3000 },
      { c: 2, e: 'u:ann', n: 'language', val: { display: 'fr' }, base: 0, at: 3001 },
    ] satisfies QueuedChange[]);
    t.deepEqual(await store.queued(1), [{ c: 1, e: 'u:ann', n: 'home', val: { n: 1 }, base: 0, at: 3000 }]);
    t.like(await store.readItem('u:ann', 'home'), { v: 0, by: 'me', val: { n: 1 } });
    t.like(await store.readItem('u:ann', 'network'), { v: 0, val: { proxy: 'p' } });
    t.deepEqual(store.users(), [{ name: 'ann', lastUsed: 3001 }]);
    // The queued base is the server version the item had when it was changed.
    await store.applyRemote({ items: [{ e: 'u:ann', n: 'home', v: 9, val: { n: 'server' } }] });
    await store.setLocal('me', 'u:ann', 'home', { n: 2 }, { queue: true });
    t.like((await store.queued()).at(-1), { c: 3, base: 9, val: { n: 2 } });
    await t.throwsAsync(store.setLocal('me', 'u:ann', 'bogus', 1, { queue: true }), { instanceOf: MfpError, code: 'UNKNOWN_ITEM', message: /bogus/ });
    t.is(store.counter, 3);
  });

  test(`${name}: local: settle handles applied, duplicate, conflict and rejected outcomes`, async (t) => {
    const { store, clock } = await openLocal(t);
    const local = {
      home: { mine: 1 },
      language: { display: 'fr' },
      timeline: ['too', 'big'],
      network: { proxy: 'local' },
      'job-defaults': { fax: { destinations: ['local-fax'], res: 1 } },
    };
    for (const [n, val] of Object.entries(local)) await store.setLocal('me', 'u:ann', n, val, { queue: true });
    const sent = await store.queued();
    t.deepEqual(
      sent.map((q) => q.c),
      [1, 2, 3, 4, 5],
    );
    clock.t = 9999;
    const res = await store.settle(
      'me',
      [
        { c: 1, status: 'applied', v: 7 },
        { c: 2, status: 'duplicate', v: 8, val: { display: 'fr' } },
        { c: 3, status: 'rejected', code: 'VALUE_TOO_LARGE', message: 'too big' },
        { c: 4, status: 'conflict', v: 9, val: { proxy: 'server' } },
        { c: 5, status: 'conflict', v: 10, val: { fax: { destinations: [], res: 2 } } },
        // Not sent: ignored.
        { c: 77, status: 'applied', v: 70 },
      ],
      sent,
    );
    t.deepEqual(res, { conflicts: 2, rejected: 1, restored: [], queued: 0 });
    t.is(store.queueSize, 0);
    t.deepEqual(await store.queued(), []);
    t.like(await store.readItem('u:ann', 'home'), { v: 7, val: { mine: 1 } });
    t.like(await store.readItem('u:ann', 'language'), { v: 8, val: { display: 'fr' } });
    // Rejected: the local value stays, still unversioned.
    t.like(await store.readItem('u:ann', 'timeline'), { v: 0, val: ['too', 'big'] });
    // Conflict: the server's value and version; this machine's send destinations are kept.
    t.like(await store.readItem('u:ann', 'network'), { v: 9, val: { proxy: 'server' } });
    t.like(await store.readItem('u:ann', 'job-defaults'), { v: 10, val: { fax: { destinations: ['local-fax'], res: 2 } } });
    t.deepEqual(await store.conflicts(), [
      // Rejected: kept with the server's code (SPEC §6).
      { at: 9999, deviceId: 'me', entity: 'u:ann', item: 'timeline', value: ['too', 'big'], base: 0, serverVersion: 0, reason: 'rejected', code: 'VALUE_TOO_LARGE' },
      { at: 9999, deviceId: 'me', entity: 'u:ann', item: 'network', value: { proxy: 'local' }, base: 0, serverVersion: 9, reason: 'offline-edit' },
      { at: 9999, deviceId: 'me', entity: 'u:ann', item: 'job-defaults', value: local['job-defaults'], base: 0, serverVersion: 10, reason: 'offline-edit' },
    ]);
    // Settling the same outcomes again changes nothing.
    t.deepEqual(await store.settle('me', [{ c: 4, status: 'conflict', v: 9, val: {} }], sent), { conflicts: 0, rejected: 0, restored: [], queued: store.queueSize });
    t.is((await store.conflicts()).length, 3);
  });

  test(`${name}: local: an acknowledged change does not settle an item that has a later queued change`, async (t) => {
    const { store } = await openLocal(t);
    await store.setLocal('me', 'u:ann', 'home', { n: 1 }, { queue: true });
    await store.setLocal('me', 'u:ann', 'home', { n: 2 }, { queue: true });
    const sent = await store.queued();
    await store.settle('me', [{ c: 1, status: 'applied', v: 5 }], sent);
    t.is(store.queueSize, 1);
    t.like(await store.readItem('u:ann', 'home'), { v: 0, val: { n: 2 } });
    await store.settle('me', [{ c: 2, status: 'applied', v: 6 }], sent);
    t.is(store.queueSize, 0);
    t.like(await store.readItem('u:ann', 'home'), { v: 6, val: { n: 2 } });
  });

  test(`${name}: local: applyRemote applies newer versions only and moves the cursor`, async (t) => {
    const { store } = await openLocal(t);
    const first = await store.applyRemote({ items: [{ e: 'u:ann', n: 'home', v: 5, val: { n: 5 } }], cursor: 5 });
    t.deepEqual(first.applied, [{ e: 'u:ann', n: 'home', v: 5, val: { n: 5 } }]);
    t.is(store.cursor, 5);
    const older = await store.applyRemote({ items: [{ e: 'u:ann', n: 'home', v: 3, val: { n: 3 } }] });
    t.deepEqual(older.applied, []);
    t.like(await store.readItem('u:ann', 'home'), { v: 5, val: { n: 5 } });
    // The same version again (a delta and a login fetch can both carry it) is not a change.
    const same = await store.applyRemote({ items: [{ e: 'u:ann', n: 'home', v: 5, val: { n: 5 } }] });
    t.deepEqual(same.applied, []);
    const newer = await store.applyRemote({ items: [{ e: 'u:ann', n: 'home', v: 7, val: { n: 7 } }], cursor: 7 });
    t.is(newer.applied.length, 1);
    t.like(await store.readItem('u:ann', 'home'), { v: 7, val: { n: 7 }, by: 'server' });
    t.is(store.cursor, 7);
    t.is(await store.getMeta('cursor'), 7);
    t.deepEqual(store.users().map((u) => u.name), ['ann']);
    await store.setCursor(12);
    t.is(store.cursor, 12);
    t.is(await store.getMeta('cursor'), 12);
  });

  test(`${name}: local: a replacement keeps an item whose change is queued; its acknowledgement settles it`, async (t) => {
    const { store } = await openLocal(t);
    await store.setLocal('me', 'u:ann', 'home', { mine: 1 }, { queue: true });
    await store.setLocal('me', 'u:ann', 'network', { mine: 2 }, { queue: true });
    await store.setLocal('me', 'u:ann', 'language', { display: 'fr' }, { queue: false });
    const sent = await store.queued();
    // The server's copy lacks home (the change that creates it is queued) and has another network.
    await store.applyRemote({
      items: [{ e: 'u:ann', n: 'network', v: 5, val: { server: 5 } }, { e: 'u:ann', n: 'language', v: 6, val: { display: 'de' } }],
      replace: ['u:ann'],
      selfId: 'me',
      reason: 'resync',
    });
    t.like(await store.readItem('u:ann', 'home'), { v: 0, val: { mine: 1 } });
    t.like(await store.readItem('u:ann', 'network'), { v: 5, val: { mine: 2 } }, 'the local value, based on the server version');
    t.like(await store.readItem('u:ann', 'language'), { v: 6, val: { display: 'de' } });
    t.deepEqual((await store.conflicts()).map((c) => c.item), ['language'], 'only the unqueued replaced value is logged');
    t.is(store.queueSize, 2);
    // home is created by its change; network lost to a newer server value: logged now, once.
    await store.settle('me', [{ c: sent[0]!.c, status: 'applied', v: 7 }, { c: sent[1]!.c, status: 'conflict', v: 8, val: { server: 8 } }], sent);
    t.like(await store.readItem('u:ann', 'home'), { v: 7, val: { mine: 1 } });
    t.like(await store.readItem('u:ann', 'network'), { v: 8, val: { server: 8 } });
    t.deepEqual((await store.conflicts()).map((c) => [c.item, c.reason, c.value]), [['language', 'resync', { display: 'fr' }], ['network', 'offline-edit', { mine: 2 }]]);
    t.is(store.queueSize, 0);
  });

  test(`${name}: local: applyRemote replace takes the server's entity; what the client loses goes to the conflict log`, async (t) => {
    const { store, clock } = await openLocal(t);
    await store.setLocal('me', 'u:ann', 'home', { local: 1 }, { queue: false });
    await store.setLocal('me', 'u:ann', 'language', { display: 'fr' }, { queue: false });
    await store.setLocal('me', 'u:ann', 'timeline', ['local only'], { queue: false });
    await store.setLocal('me', 'u:bob', 'home', { bob: 1 }, { queue: false });
    clock.t = 4242;
    await store.applyRemote({
      items: [
        { e: 'u:ann', n: 'home', v: 3, val: { server: 1 } },
        { e: 'u:ann', n: 'language', v: 4, val: { display: 'fr' } },
        { e: 'u:ann', n: 'network', v: 1, val: { new: true } },
      ],
      replace: ['u:ann'],
      selfId: 'me',
      reason: 'join',
      cursor: 4,
    });
    t.deepEqual([...store.itemStates('u:ann')!.keys()].sort(), ['home', 'language', 'network']);
    t.like(await store.readItem('u:ann', 'home'), { v: 3, val: { server: 1 } });
    t.like(await store.readItem('u:ann', 'language'), { v: 4, val: { display: 'fr' } });
    t.is(await store.readItem('u:ann', 'timeline'), undefined);
    t.like(await store.readItem('u:bob', 'home'), { v: 0, val: { bob: 1 } }, 'an entity outside the replace set changed');
    t.deepEqual(await store.conflicts(), [
      { at: 4242, deviceId: 'me', entity: 'u:ann', item: 'home', value: { local: 1 }, base: 0, serverVersion: 3, reason: 'join' },
      { at: 4242, deviceId: 'me', entity: 'u:ann', item: 'timeline', value: ['local only'], base: 0, serverVersion: 0, reason: 'join' },
    ]);
    t.is(store.cursor, 4);
    // Replace applies the server's value even when its version is older than the local one.
    await store.applyRemote({ items: [{ e: 'u:bob', n: 'home', v: 9, val: { v: 9 } }] });
    await store.applyRemote({ items: [{ e: 'u:bob', n: 'home', v: 2, val: { v: 2 } }], replace: ['u:bob'], selfId: 'me', reason: 'resync' });
    t.like(await store.readItem('u:bob', 'home'), { v: 2, val: { v: 2 } });
    t.like((await store.conflicts()).at(-1), { entity: 'u:bob', value: { v: 9 }, base: 9, serverVersion: 2, reason: 'resync' });
  });

  test(`${name}: local: a remote job-defaults keeps this machine's send destinations, and hashes as the group's copy`, async (t) => {
    const { store } = await openLocal(t);
    const { store: group } = await groupWithDevices(t);
    await store.setLocal('me', 'u:ann', 'job-defaults', { fax: { destinations: ['mine'], res: 1 } }, { queue: false });
    const { feed } = await group.applyChanges('A', [change(1, 'u:ann', 'job-defaults', { fax: { destinations: ['theirs'], res: 2 } })]);
    await store.applyRemote({ items: feed.map((f) => ({ e: f.e, n: f.n!, v: f.v!, val: f.val })) });
    t.like(await store.readItem('u:ann', 'job-defaults'), { v: 1, val: { fax: { destinations: ['mine'], res: 2 } } });
    // The content checksum ignores destinations: the two machines agree they hold the same data.
    t.is(store.entityHash('u:ann'), group.entityHash('u:ann'));
    // With no local value, the group's (blanked) value is taken as it is.
    await store.applyRemote({ items: [{ e: 'u:bob', n: 'job-defaults', v: 2, val: { fax: { destinations: [], res: 3 } } }] });
    t.deepEqual((await store.readItem('u:bob', 'job-defaults'))?.val, { fax: { destinations: [], res: 3 } });
  });

  test(`${name}: local: applyRemote versions moves only the version; deletes remove entities`, async (t) => {
    const { store } = await openLocal(t);
    await store.setLocal('me', 'u:ann', 'home', { a: 1 }, { queue: false });
    await store.setLocal('me', 'u:bob', 'home', { b: 1 }, { queue: false });
    await store.applyRemote({
      versions: [
        ['u:ann', 'home', 12],
        ['u:ann', 'language', 13],
        ['u:zed', 'home', 14],
      ],
    });
    t.like(await store.readItem('u:ann', 'home'), { v: 12, val: { a: 1 }, by: 'me' });
    t.is(await store.readItem('u:ann', 'language'), undefined);
    t.false(store.hasEntity('u:zed'));
    const res = await store.applyRemote({ deletes: ['u:bob', 'u:nobody'] });
    t.deepEqual(res.deleted, ['u:bob']);
    t.false(store.hasEntity('u:bob'));
    t.deepEqual(store.users().map((u) => u.name), ['ann']);
  });

  test(`${name}: local: rebaseQueue marks every queued change as based on a previous epoch`, async (t) => {
    const { store } = await openLocal(t);
    await store.applyRemote({ items: [{ e: 'u:ann', n: 'home', v: 4, val: {} }] });
    await store.setLocal('me', 'u:ann', 'home', { n: 1 }, { queue: true });
    await store.setLocal('me', 'u:ann', 'language', { n: 2 }, { queue: true });
    const before = await store.queued();
    t.deepEqual(
      before.map((q) => q.base),
      [4, 0],
    );
    await store.rebaseQueue();
    t.deepEqual(
      await store.queued(),
      before.map((q) => ({ ...q, base: -1 })),
    );
    t.is(store.queueSize, 2);
  });

  test(`${name}: local: deleteLocal removes entities from this machine only`, async (t) => {
    const { store } = await openLocal(t);
    await store.setLocal('me', 'u:ann', 'home', {}, { queue: false });
    await store.setLocal('me', 'u:ann', 'language', {}, { queue: false });
    await store.setLocal('me', 'u:bob', 'home', {}, { queue: false });
    await store.touch('cat');
    t.deepEqual(await store.deleteLocal(['u:ann', 'u:zed', 'u:cat']), ['u:ann', 'u:cat']);
    t.false(store.hasEntity('u:ann'));
    t.deepEqual(await store.readEntity('u:ann'), new Map());
    t.true(store.hasEntity('u:bob'));
    t.deepEqual(store.users().map((u) => u.name), ['bob']);
  });

  test(`${name}: local: past maxUsers, a new user evicts the least recently used, and setLocal reports it`, async (t) => {
    const { store, clock } = await openLocal(t, { maxUsers: 2 });
    clock.t = 1000;
    t.deepEqual((await store.setLocal('me', 'u:u1', 'home', { u: 1 }, { queue: true })).evicted, []);
    clock.t = 2000;
    t.deepEqual((await store.setLocal('me', 'u:u2', 'home', { u: 2 }, { queue: true })).evicted, []);
    clock.t = 3000;
    t.deepEqual(await store.touch('u1'), []);
    clock.t = 4000;
    t.deepEqual(await store.setLocal('me', 'u:u3', 'home', { u: 3 }, { queue: true }), { counter: 3, evicted: ['u2'] });
    t.false(store.hasEntity('u:u2'));
    t.is(await store.readItem('u:u2', 'home'), undefined);
    t.deepEqual(store.users(), [
      { name: 'u3', lastUsed: 4000 },
      { name: 'u1', lastUsed: 3000 },
    ]);
    // Group and device-wide data are not users: they never count against the bound.
    clock.t = 5000;
    t.deepEqual((await store.setLocal('me', 'g:1', 'address-list', [], { queue: false })).evicted, []);
    t.deepEqual((await store.setLocal('me', 'd:', 'shared-buttons', [], { queue: false })).evicted, []);
    t.is(store.users().length, 2);
  });

  // ---- Store core ------------------------------------------------------------------------------------

  test(`${name}: core: the sync log filters by level, oldest first`, async (t) => {
    const { store } = await openLocal(t);
    await store.appendLog({ at: 10, level: 'info', code: 'CONNECTED', message: 'live' });
    await store.appendLog({ at: 11, level: 'warning', code: 'PEER_GONE', message: 'lost', deviceId: 'S' });
    await store.appendLog({ at: 12, level: 'error', code: 'STORE_WRITE_FAILED', message: 'disk' });
    await store.appendLog({ at: 13, level: 'info', code: 'CONNECTED', message: 'again' });
    t.deepEqual(
      (await store.syncLog()).map((e) => e.message),
      ['live', 'lost', 'disk', 'again'],
    );
    t.deepEqual(await store.syncLog('warning'), [
      { at: 11, level: 'warning', code: 'PEER_GONE', message: 'lost', deviceId: 'S' },
      { at: 12, level: 'error', code: 'STORE_WRITE_FAILED', message: 'disk' },
    ]);
    t.deepEqual(
      (await store.syncLog('error')).map((e) => e.code),
      ['STORE_WRITE_FAILED'],
    );
  });

  test(`${name}: core: the sync log keeps at most maxLogEntries, dropping the oldest`, async (t) => {
    const { store } = await openGroup(t, { maxLogEntries: 3 });
    // Same timestamp for all: order must still be the order of appending.
    for (let i = 1; i <= 5; i++) await store.appendLog({ at: 500, level: 'info', code: 'C', message: `m${i}` });
    t.deepEqual(
      (await store.syncLog()).map((e) => e.message),
      ['m3', 'm4', 'm5'],
    );
    await Promise.all([6, 7].map((i) => store.appendLog({ at: 501, level: 'error', code: 'C', message: `m${i}` })));
    t.deepEqual(
      (await store.syncLog()).map((e) => e.message),
      ['m5', 'm6', 'm7'],
    );
  });

  test(`${name}: core: the conflict log keeps at most maxLogBytes of records, dropping the oldest`, async (t) => {
    const { store } = await groupWithDevices(t, { maxLogBytes: 4096 });
    // A member's changes that lose, each with a 1 KiB value: kept within the byte bound, newest last.
    await store.applyChanges('B', [change(1, 'u:ann', 'home', { n: 0 })]);
    const big = 'x'.repeat(1024);
    for (let c = 1; c <= 8; c++) await store.applyChanges('A', [change(c, 'u:ann', 'home', { big, c }, 0)]);
    const kept = await store.conflicts();
    t.true(kept.length >= 2 && kept.length <= 4, `${kept.length} entries kept`);
    t.is((kept.at(-1)!.value as { c: number }).c, 8);
  });

  test(`${name}: core: a failed batch rejects with STORE_WRITE_FAILED, leaves the index as on disk, and the next write succeeds`, async (t) => {
    const kv = new FlakyKv(makeKv(t));
    const { store, clock } = await groupWithDevices(t, { kv, maxUsers: 2 });
    clock.t = 1000;
    await store.applyChanges('A', [change(1, 'u:ann', 'home', { n: 1 })]);
    clock.t = 2000;
    await store.applyChanges('A', [change(2, 'u:bob', 'home', { n: 1 })]);
    await store.updateHolds('A', ['u:ann']);
    const announced: FeedEntry[] = [];
    store.onCommit((entries) => announced.push(...entries));
    const state = async () => ({
      seq: store.seq,
      ann: [...store.itemStates('u:ann')!],
      entities: store.entities().sort(),
      users: store.users(),
      device: store.device('A'),
      log: await store.logAfter(0, 100),
    });
    const before = await state();

    kv.failWrites = true;
    clock.t = 3000 + DAY;
    // The batch would rewrite ann, create cat (evicting bob, unused for a day, by the bound) and move A's counter.
    const failing = [change(3, 'u:ann', 'home', { n: 2 }, 1), change(4, 'u:cat', 'home', { n: 3 })];
    const err = await t.throwsAsync(store.applyChanges('A', failing));
    assertCoded(t, err, 'STORE_WRITE_FAILED', /nothing was applied.*injected: no space left on device/);
    t.is((err!.cause as { code?: string }).code, 'ENOSPC');
    const holdErr = await t.throwsAsync(store.updateHolds('B', ['u:bob']));
    assertCoded(t, holdErr, 'STORE_WRITE_FAILED', /nothing was applied/);
    t.is(store.writeError?.code, 'STORE_WRITE_FAILED', 'the failure is reported until a write succeeds');
    t.deepEqual(await state(), before);
    t.deepEqual([...store.holds('B')], [], 'a hold of the failed batch is still in memory');
    t.deepEqual(announced, [], 'listeners heard of a batch that was not written');
    t.deepEqual(await store.entriesAfter(0, 100), before.log);

    kv.failWrites = false;
    // The same changes again: not duplicates, since nothing of them was applied.
    const res = await store.applyChanges('A', failing);
    t.deepEqual(res.outcomes, [
      { c: 3, status: 'applied', v: 3 },
      { c: 4, status: 'applied', v: 4 },
    ]);
    t.like(await store.readItem('u:ann', 'home'), { v: 3, val: { n: 2 } });
    t.is(store.writeError, undefined, 'a successful write clears it');
    t.deepEqual(seqs(announced), [3, 4, 5]);
    t.deepEqual(announced.at(-1), { seq: 5, e: 'u:bob', del: true, by: 'bound' });
    t.is(store.device('A')?.lastCounter, 4);
  });

  test(`${name}: core: after a failed batch nothing is written until the backend is recovered and the index reloaded from it`, async (t) => {
    const kv = new FlakyKv(makeKv(t));
    const { store } = await groupWithDevices(t, { kv });
    await store.applyChanges('A', [change(1, 'u:ann', 'home', { n: 1 })]);
    kv.calls.length = 0;
    kv.failWrites = true;
    await t.throwsAsync(store.applyChanges('A', [change(2, 'u:ann', 'home', { n: 2 })]));
    kv.failWrites = false;
    // The disk is still full: the reopen fails, so no write reaches the backend and nothing is acknowledged.
    kv.failRecover = true;
    const refused = await t.throwsAsync(store.applyChanges('A', [change(2, 'u:ann', 'home', { n: 2 })]));
    assertCoded(t, refused, 'STORE_WRITE_FAILED', /cannot reopen, no space left on device/);
    t.is(store.writeError?.code, 'STORE_WRITE_FAILED', 'health stays red');
    t.like(await store.readItem('u:ann', 'home'), { v: 1, val: { n: 1 } }, 'reads go on');
    t.is(store.seq, 1);
    kv.failRecover = false;
    const res = await store.applyChanges('A', [change(2, 'u:ann', 'home', { n: 2 })]);
    t.deepEqual(res.outcomes, [{ c: 2, status: 'applied', v: 2 }]);
    t.deepEqual(kv.calls, ['write failed', 'recover failed', 'recover', 'write']);
    t.is(store.writeError, undefined);
    kv.calls.length = 0;
    await store.applyChanges('A', [change(3, 'u:ann', 'home', { n: 3 })]);
    t.deepEqual(kv.calls, ['write'], 'recovered once: the next batches go straight to the backend');
  });

  test(`${name}: core: a local change that fails to write leaves neither the item nor its queue entry`, async (t) => {
    const kv = new FlakyKv(makeKv(t));
    const { store } = await openLocal(t, { kv });
    await store.setLocal('me', 'u:ann', 'home', { n: 1 }, { queue: true });
    kv.failWrites = true;
    const err = await t.throwsAsync(store.setLocal('me', 'u:ann', 'language', { n: 2 }, { queue: true }));
    assertCoded(t, err, 'STORE_WRITE_FAILED', /nothing was applied/);
    // The failed batch's counter may have gone to the server already: it is never used again.
    t.is(store.counter, 2);
    t.is(store.durableCounter, 1);
    t.is(store.queueSize, 1);
    t.is(await store.readItem('u:ann', 'language'), undefined);
    t.deepEqual(
      (await store.queued()).map((q) => q.c),
      [1],
    );
    kv.failWrites = false;
    t.deepEqual(await store.setLocal('me', 'u:ann', 'language', { n: 2 }, { queue: true }), { counter: 3, evicted: [] });
    t.is(store.durableCounter, 3);
    t.deepEqual(
      (await store.queued()).map((q) => [q.c, q.n]),
      [
        [1, 'home'],
        [3, 'language'],
      ],
    );
  });

  test(`${name}: local: a change sent while its batch failed takes the server's copy when acknowledged as applied`, async (t) => {
    const kv = new FlakyKv(makeKv(t));
    const { store } = await openLocal(t, { kv });
    await store.setLocal('me', 'u:ann', 'home', { n: 1 }, { queue: true });
    // The client reads the queue from inside the batch (onQueued), as it does to send at once.
    let sent: QueuedChange[] = [];
    store.onQueued = () => void store.queued().then((q) => (sent = q));
    kv.failWrites = true;
    await t.throwsAsync(store.setLocal('me', 'u:ann', 'home', { n: 2 }, { queue: true }));
    kv.failWrites = false;
    t.deepEqual(sent.map((q) => [q.c, q.val]), [[1, { n: 1 }], [2, { n: 2 }]]);
    t.like(await store.readItem('u:ann', 'home'), { v: 0, val: { n: 1 } }, 'the failed batch left the old value');
    const res = await store.settle('me', [{ c: 1, status: 'applied', v: 7 }, { c: 2, status: 'applied', v: 8 }], sent);
    t.deepEqual(res.restored, [{ e: 'u:ann', n: 'home', v: 8, val: { n: 2 } }]);
    t.like(await store.readItem('u:ann', 'home'), { v: 8, val: { n: 2 } }, 'the server applied it: this machine holds it too');
    t.is(store.queueSize, 0);
    // A duplicate is answered with the server's current copy, not this change's: another machine's later
    // change is taken (never this value at that version); an older copy than this machine's is not.
    const dup = await store.settle('me', [{ c: 2, status: 'duplicate', v: 12, val: { n: 9 } }], sent);
    t.deepEqual(dup.restored, [{ e: 'u:ann', n: 'home', v: 12, val: { n: 9 } }]);
    t.like(await store.readItem('u:ann', 'home'), { v: 12, val: { n: 9 } });
    const older = await store.settle('me', [{ c: 2, status: 'duplicate', v: 10, val: { n: 5 } }], sent);
    t.deepEqual(older.restored, []);
    t.like(await store.readItem('u:ann', 'home'), { v: 12, val: { n: 9 } });
    // The server holding no copy (version 0) writes nothing: no item made of a null.
    const none = await store.settle('me', [{ c: 2, status: 'duplicate', v: 0, val: null }], [{ ...sent[1]!, e: 'u:gone' }]);
    t.deepEqual(none.restored, []);
    t.is(await store.readItem('u:gone', 'home'), undefined);
  });

  test(`${name}: local: a remote update submitted behind one whose batch failed writes nothing, so the cursor never passes what was not written`, async (t) => {
    const kv = new FlakyKv(makeKv(t));
    const { store } = await openLocal(t, { kv });
    const generation = store.generation;
    kv.failWrites = true;
    let first!: Promise<unknown>;
    // Submitted (the client handles its next frame then), and its batch written at once: it fails.
    await new Promise<void>((submitted) => (first = store.applyRemote({ items: [{ e: 'u:ann', n: 'home', v: 5, val: { n: 5 } }], cursor: 5, generation }, { submitted })));
    kv.failWrites = false;
    const second = store.applyRemote({ items: [{ e: 'u:bob', n: 'home', v: 6, val: { n: 6 } }], cursor: 6, generation });
    assertCoded(t, await t.throwsAsync(first), 'STORE_WRITE_FAILED', /nothing was applied/);
    t.like(await second, { gap: true, applied: [] });
    t.is(store.cursor, 0);
    t.is(await store.readItem('u:bob', 'home'), undefined);
    t.not(store.generation, generation);
    // Submitted in the new generation, an update is written as before.
    t.like(await store.applyRemote({ items: [{ e: 'u:bob', n: 'home', v: 6, val: { n: 6 } }], cursor: 6, generation: store.generation }), { applied: [{ e: 'u:bob' }] });
    t.is(store.cursor, 6);
  });

  test(`${name}: local: queued values beyond the memory budget are read back from disk, in order`, async (t) => {
    const { store } = await openLocal(t);
    // About 5 MB of queued values: more than the 4 MB kept in memory.
    const big = 'x'.repeat(100_000);
    for (let i = 0; i < 50; i++) await store.setLocal('me', `u:user${i % 5}`, 'timeline', [i, big], { queue: true });
    const all = await store.queued();
    t.deepEqual(all.map((q) => q.c), Array.from({ length: 50 }, (_, i) => i + 1));
    t.deepEqual(all.map((q) => (q.val as unknown[])[0]), Array.from({ length: 50 }, (_, i) => i));
    t.deepEqual((await store.queued(3)).map((q) => q.c), [1, 2, 3], 'the first ones come from memory');
    // After a counter a session has sent already: from memory, then from disk past the cached ones.
    t.deepEqual((await store.queued(3, 10)).map((q) => q.c), [11, 12, 13]);
    t.deepEqual((await store.queued(Infinity, 47)).map((q) => q.c), [48, 49, 50]);
    t.deepEqual(await store.queued(Infinity, 50), []);
    await store.settle('me', all.slice(0, 45).map((q) => ({ c: q.c, status: 'applied' as const, v: 100 + q.c })), all);
    // The rest were never cached: read from disk.
    t.deepEqual((await store.queued()).map((q) => [q.c, (q.val as unknown[])[0]]), [[46, 45], [47, 46], [48, 47], [49, 48], [50, 49]]);
  });

  test(`${name}: core: after close, writes and reads reject with STORE_CLOSED`, async (t) => {
    const { store } = await groupWithDevices(t);
    await store.applyChanges('A', [change(1, 'u:ann', 'home', {})]);
    await store.close();
    assertCoded(t, await t.throwsAsync(store.applyChanges('A', [change(2, 'u:ann', 'home', {})])), 'STORE_CLOSED', /closed/);
    assertCoded(t, await t.throwsAsync(store.readItem('u:ann', 'home')), 'STORE_CLOSED', /closed|not open/);
    await t.notThrowsAsync(store.close(), 'closing twice');
  });

  test(`${name}: core: listing the logs after close rejects with STORE_CLOSED`, async (t) => {
    const { store } = await groupWithDevices(t);
    await store.close();
    assertCoded(t, await t.throwsAsync(store.conflicts()), 'STORE_CLOSED', /closed|not open/);
    assertCoded(t, await t.throwsAsync(store.logAfter(0, 10)), 'STORE_CLOSED', /closed|not open/);
  });
}

/** What a group store holds, in a comparable form: the same before and after a reopen. */
async function everything(store: GroupStore) {
  return {
    seq: store.seq,
    epoch: store.epoch,
    epochStartSeq: store.epochStartSeq,
    devices: store.devices().sort((a, b) => a.id.localeCompare(b.id)),
    items: store.entities().sort().map((e) => [e, [...store.itemStates(e)!]]),
    users: store.users(),
    log: await store.logAfter(0, 100),
    conflicts: await store.conflicts(),
  };
}
