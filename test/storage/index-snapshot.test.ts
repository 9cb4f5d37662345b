/**
 * The index snapshot (storage/store.ts): a clean close leaves one, the next open reads the index from it
 * and deletes it before anything else is written; whatever else writes the folder (an image install)
 * deletes it too. So a store opened after a crash, an install or a snapshot it cannot read reloads from
 * its records — each case checked against a real LevelDB folder by comparing the index with a full
 * reload's.
 */
import { join } from 'node:path';
import test, { type ExecutionContext } from 'ava';
import { entityKey, type EntityKey } from '../../storage/catalog.js';
import { GroupStore } from '../../storage/group-store.js';
import { installImage, imageEntries } from '../../storage/image.js';
import { Keys } from '../../storage/keys.js';
import { LevelKv } from '../../storage/level-kv.js';
import { encodeRecord } from '../../storage/records.js';
import { tempDir } from '../helpers/tmp.js';

const SNAPSHOT = Keys.indexSnapshot();

/** What a store's index says: every entity's items (version, hash, writer), the users, the logs. */
async function indexOf(store: GroupStore): Promise<unknown> {
  const entities = store.entities().sort();
  return {
    items: entities.map((e) => [e, [...store.itemStates(e)!].sort(([a], [b]) => (a < b ? -1 : 1)).map(([n, s]) => [n, s.v, s.h, s.by, s.at])]),
    users: store.users().sort((a, b) => (a.name < b.name ? -1 : 1)),
    seq: store.seq,
    log: (await store.syncLog()).length,
    conflicts: (await store.conflicts()).length,
  };
}

async function write(store: GroupStore, users: string[], value: string): Promise<void> {
  const changes = users.flatMap((u) => {
    const e: EntityKey = entityKey('user', u);
    return ['language', 'home'].map((n) => ({ c: 0, e, n, val: n === 'language' ? { display: value } : { 'start-screen': value }, base: store.itemStates(e)?.get(n)?.v ?? 0 }));
  });
  const { outcomes } = await store.applyChanges('admin:test', changes);
  if (outcomes.some((o) => o.status !== 'applied')) throw new Error(JSON.stringify(outcomes));
}

/** The index a full reload of the folder gives (the snapshot, if any, set aside and put back). */
async function reloaded(location: string): Promise<unknown> {
  const kv = new LevelKv(location);
  await kv.open();
  const snapshot = await kv.get(SNAPSHOT);
  await kv.write([{ type: 'del', key: SNAPSHOT }], { sync: true });
  await kv.close();
  const store = await GroupStore.open({ kv: new LevelKv(location) });
  const index = await indexOf(store);
  await store.close();
  const back = new LevelKv(location);
  await back.open();
  await back.write(snapshot ? [{ type: 'put', key: SNAPSHOT, value: snapshot }] : [{ type: 'del', key: SNAPSHOT }], { sync: true });
  await back.close();
  return index;
}

async function hasSnapshot(location: string): Promise<boolean> {
  const kv = new LevelKv(location);
  await kv.open();
  const bytes = await kv.get(SNAPSHOT);
  await kv.close();
  return bytes !== undefined;
}

async function populated(t: ExecutionContext): Promise<string> {
  const location = join(tempDir(t), 'group');
  const store = await GroupStore.open({ kv: new LevelKv(location) });
  await write(store, ['ann', 'bob', 'cy'], 'fr');
  await store.appendLog({ at: Date.now(), level: 'warning', code: 'TEST', message: 'a sync log entry' });
  await store.close();
  return location;
}

test('a clean close leaves a snapshot; the next open reads the same index from it and deletes it first', async (t) => {
  const location = await populated(t);
  t.true(await hasSnapshot(location));
  const expected = await reloaded(location);
  const store = await GroupStore.open({ kv: new LevelKv(location) });
  t.deepEqual(await indexOf(store), expected);
  // Deleted at open: a crash from here on finds no snapshot of an older state.
  t.is(await store.kv.get(SNAPSHOT), undefined);
  await write(store, ['dee'], 'de');
  const after = await indexOf(store);
  await store.close();
  t.deepEqual(await reloaded(location), after, 'the snapshot of the second close has the later write');
  t.deepEqual(await indexOf(await reopen(t, location)), after);
});

async function reopen(t: ExecutionContext, location: string): Promise<GroupStore> {
  const store = await GroupStore.open({ kv: new LevelKv(location) });
  t.teardown(() => store.close());
  return store;
}

test('writes after an open that took the snapshot, then a crash (no clean close): the next open reads the records', async (t) => {
  const location = await populated(t);
  const store = await GroupStore.open({ kv: new LevelKv(location) });
  await write(store, ['ann', 'eve'], 'it');
  const expected = await indexOf(store);
  // A crash: the handle goes away without the store's close (no snapshot written).
  await store.kv.close();
  t.false(await hasSnapshot(location));
  const again = await reopen(t, location);
  t.deepEqual(await indexOf(again), expected);
  t.truthy(again.itemStates(entityKey('user', 'eve'))?.get('language'), 'the write after the snapshot was taken is indexed');
});

test('an image installed into a cleanly closed folder is what the next open indexes, not the snapshot', async (t) => {
  const location = await populated(t);
  // Another folder's image (as a restore or a recovery brings it): other users entirely.
  const other = join(tempDir(t), 'other');
  const source = await GroupStore.open({ kv: new LevelKv(other) });
  await write(source, ['zed', 'yan'], 'pl');
  const image: [string, Uint8Array][] = [];
  for await (const entry of imageEntries(source.kv)) image.push(entry);
  t.false(image.some(([k]) => k === SNAPSHOT), 'an image never carries the snapshot');
  await source.close();
  t.true(await hasSnapshot(location));
  const kv = new LevelKv(location);
  await kv.open();
  await installImage(kv, image);
  await kv.close();
  // The install opened the folder: the seal is broken, and the snapshot of before is stale.
  const store = await reopen(t, location);
  t.deepEqual(store.users().map((u) => u.name).sort(), ['yan', 'zed']);
  t.is(await store.kv.get(SNAPSHOT), undefined, 'the stale snapshot was deleted');
  t.deepEqual(await indexOf(store), await indexOf(await reopen(t, other)));
});

test('an older build that wrote to the folder breaks the seal: its write is indexed, the snapshot dropped', async (t) => {
  const location = await populated(t);
  // An older build changes ann's language (version 99) and knows nothing of the snapshot.
  const older = new LevelKv(location);
  await older.open();
  await older.write([{ type: 'put', key: Keys.item('u:ann', 'language'), value: encodeRecord({ v: 99, h: 'older-build', by: 'old', at: 1, val: { display: 'de' } }) }], { sync: true });
  await older.close();
  const store = await reopen(t, location);
  t.like(store.itemStates(entityKey('user', 'ann'))?.get('language'), { v: 99, h: 'older-build' });
  t.is(await store.kv.get(SNAPSHOT), undefined);
});

test('a LevelDB folder is untouched since its seal only if no one opened it in between', async (t) => {
  const location = join(tempDir(t), 'kv');
  const open = async (): Promise<LevelKv> => {
    const kv = new LevelKv(location);
    await kv.open();
    return kv;
  };
  let kv = await open();
  t.false(kv.untouchedSinceSeal, 'a new folder has no seal');
  await kv.write([{ type: 'put', key: 'k', value: Uint8Array.of(1) }], { sync: true });
  await kv.close({ seal: true });
  kv = await open();
  t.true(kv.untouchedSinceSeal);
  await kv.close({ seal: true });
  // An open that writes nothing and closes without a seal (an older build, a tool): the seal is broken.
  await (await open()).close();
  kv = await open();
  t.false(kv.untouchedSinceSeal);
  await kv.close({ seal: true });
  // A seal serves one open: a crash after it (no close) leaves none.
  kv = await open();
  t.true(kv.untouchedSinceSeal);
  await kv.close();
  kv = await open();
  t.false(kv.untouchedSinceSeal);
  await kv.close();
});

test('a snapshot this build cannot read, in a sealed folder, is dropped and the records are read', async (t) => {
  const location = await populated(t);
  const expected = await reloaded(location);
  for (const bad of [Uint8Array.from([0xc1]), Uint8Array.from([0x81, 0xa6, 0x66, 0x6f, 0x72, 0x6d, 0x61, 0x74, 0x02])]) {
    const kv = new LevelKv(location);
    await kv.open();
    await kv.write([{ type: 'put', key: SNAPSHOT, value: bad }], { sync: true });
    await kv.close({ seal: true });
    const store = await GroupStore.open({ kv: new LevelKv(location) });
    t.deepEqual(await indexOf(store), expected);
    t.is(await store.kv.get(SNAPSHOT), undefined);
    await store.close();
  }
});
