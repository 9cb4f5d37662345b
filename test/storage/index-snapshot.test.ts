/**
 * The index snapshot (storage/store.ts): a clean close keeps one in a file beside the LevelDB folder's
 * own, listed in its seal; the next open reads the index from it, and deletes it and the seal before
 * anything else is written; whatever else opens or writes the folder (an image install, an older build)
 * breaks the seal, and the snapshot is not used. So a store opened after a crash, an install, a
 * tampered snapshot or one it cannot read reloads from its records — each case checked against a real
 * LevelDB folder by comparing the index with a full reload's.
 */
import { cp, readFile, rm, stat, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import test, { type ExecutionContext } from 'ava';
import { entityKey, type EntityKey } from '../../storage/catalog.js';
import { GroupStore } from '../../storage/group-store.js';
import { installImage, imageEntries } from '../../storage/image.js';
import { Keys } from '../../storage/keys.js';
import { LevelKv } from '../../storage/level-kv.js';
import { encodeRecord } from '../../storage/records.js';
import { fillUp, mountTmpfs } from '../helpers/tmpfs.js';
import { tempDir } from '../helpers/tmp.js';

/** Where earlier builds kept the snapshot: a record in the store. */
const LEGACY = Keys.indexSnapshot();
/** The files a sealed close leaves beside LevelDB's. */
const KEPT = 'MFPSYNC-INDEX';
const SEAL = 'MFPSYNC-SEAL';

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

/** The index a full reload of the folder gives: a copy of it, without its seal and snapshot, opened. */
async function reloaded(t: ExecutionContext, location: string): Promise<unknown> {
  const copy = join(tempDir(t), 'copy');
  await cp(location, copy, { recursive: true });
  await rm(join(copy, SEAL), { force: true });
  await rm(join(copy, KEPT), { force: true });
  const store = await GroupStore.open({ kv: new LevelKv(copy) });
  const index = await indexOf(store);
  await store.close();
  return index;
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(() => true, () => false);
}

async function populated(t: ExecutionContext): Promise<string> {
  const location = join(tempDir(t), 'group');
  const store = await GroupStore.open({ kv: new LevelKv(location) });
  await write(store, ['ann', 'bob', 'cy'], 'fr');
  await store.appendLog({ at: Date.now(), level: 'warning', code: 'TEST', message: 'a sync log entry' });
  await store.close();
  return location;
}

test('a clean close keeps a snapshot beside the folder; the next open reads the same index from it and deletes it first', async (t) => {
  const location = await populated(t);
  t.true(await exists(join(location, KEPT)), 'kept in a file of its own');
  t.is((await stat(join(location, KEPT))).mode & 0o777, 0o600);
  const expected = await reloaded(t, location);
  const store = await GroupStore.open({ kv: new LevelKv(location) });
  t.deepEqual(await indexOf(store), expected);
  // Deleted at open: a crash from here on finds no snapshot of an older state, and no seal.
  t.false(await exists(join(location, KEPT)));
  t.false(await exists(join(location, SEAL)));
  t.is(await store.kv.get(LEGACY), undefined, 'nothing of it in the store itself');
  await write(store, ['dee'], 'de');
  const after = await indexOf(store);
  await store.close();
  t.deepEqual(await reloaded(t, location), after, 'the snapshot of the second close has the later write');
  t.deepEqual(await indexOf(await reopen(t, location)), after);
});

/** A sealed folder whose kept snapshot says what the records do not: ann's language at version 4242. */
async function sealedWithMarkedSnapshot(t: ExecutionContext): Promise<string> {
  const location = await populated(t);
  const kv = new LevelKv(location);
  await kv.open();
  const ann = await kv.get(Keys.item('u:ann', 'language'));
  t.truthy(ann);
  const snapshot = { format: 1, items: ['u:ann', ['language', 4242, 'marked', 'snap', 1]], users: ['ann', 1], syncLog: [[], []], conflictLog: [[], []] };
  await kv.close({ seal: true, keep: encodeRecord(snapshot) });
  return location;
}

test('the open of a sealed folder takes its index from the snapshot, not from the records', async (t) => {
  const location = await sealedWithMarkedSnapshot(t);
  const store = await reopen(t, location);
  t.like(store.itemStates(entityKey('user', 'ann'))?.get('language'), { v: 4242, h: 'marked' });
});

test('a snapshot file changed after the seal (its size or time) breaks the seal: the records are read', async (t) => {
  for (const tamper of [
    async (file: string) => writeFile(file, Buffer.concat([await readFile(file), Buffer.of(0xc0)])),
    async (file: string) => writeFile(file, (await readFile(file)).subarray(0, 10)),
    (file: string) => unlink(file),
  ]) {
    const location = await sealedWithMarkedSnapshot(t);
    const expected = await reloaded(t, location);
    await tamper(join(location, KEPT));
    const store = await reopen(t, location);
    t.deepEqual(await indexOf(store), expected);
    t.false(await exists(join(location, KEPT)));
  }
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
  // A crash: the handle goes away without the store's close (no snapshot kept, no seal).
  await store.kv.close();
  t.false(await exists(join(location, KEPT)));
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
  t.false(image.some(([k]) => k === LEGACY), 'an image never carries a snapshot');
  await source.close();
  t.true(await exists(join(location, KEPT)));
  const kv = new LevelKv(location);
  await kv.open();
  await installImage(kv, image);
  await kv.close();
  // The install opened the folder: the seal is used up, and the snapshot of before is gone.
  const store = await reopen(t, location);
  t.deepEqual(store.users().map((u) => u.name).sort(), ['yan', 'zed']);
  t.deepEqual(await indexOf(store), await indexOf(await reopen(t, other)));
});

test('an older build that wrote to the folder breaks the seal: its write is indexed, the snapshot dropped', async (t) => {
  const location = await populated(t);
  // An older build changes ann's language (version 99): it knows nothing of the seal, and its listing
  // of the folder (what it compares with a seal) includes the snapshot's file, which it leaves.
  const older = new LevelKv(location);
  const seal = await readFile(join(location, SEAL));
  const kept = await readFile(join(location, KEPT));
  await older.open();
  await older.write([{ type: 'put', key: Keys.item('u:ann', 'language'), value: encodeRecord({ v: 99, h: 'older-build', by: 'old', at: 1, val: { display: 'de' } }) }], { sync: true });
  await older.close();
  await writeFile(join(location, SEAL), seal);
  await writeFile(join(location, KEPT), kept);
  const store = await reopen(t, location);
  t.like(store.itemStates(entityKey('user', 'ann'))?.get('language'), { v: 99, h: 'older-build' });
  t.false(await exists(join(location, KEPT)));
});

test('a snapshot record an earlier build left in the store is deleted at open, unread', async (t) => {
  const location = await populated(t);
  const expected = await reloaded(t, location);
  const kv = new LevelKv(location);
  await kv.open();
  const stale = { format: 1, items: ['u:ann', ['language', 4242, 'stale', 'old', 1]], users: ['ann', 1], syncLog: [[], []], conflictLog: [[], []] };
  await kv.write([{ type: 'put', key: LEGACY, value: encodeRecord(stale) }], { sync: true });
  // As the earlier build closed: a seal, and no snapshot file.
  await kv.close({ seal: true });
  const store = await reopen(t, location);
  t.deepEqual(await indexOf(store), expected);
  t.is(await store.kv.get(LEGACY), undefined);
});

test('a LevelDB folder is untouched since its seal only if no one opened it in between; the kept bytes serve that one open', async (t) => {
  const location = join(tempDir(t), 'kv');
  const open = async (): Promise<LevelKv> => {
    const kv = new LevelKv(location);
    await kv.open();
    return kv;
  };
  const kept = Uint8Array.of(7, 8, 9);
  let kv = await open();
  t.false(kv.untouchedSinceSeal, 'a new folder has no seal');
  t.is(kv.sealed, undefined);
  await kv.write([{ type: 'put', key: 'k', value: Uint8Array.of(1) }], { sync: true });
  await kv.close({ seal: true, keep: kept });
  kv = await open();
  t.true(kv.untouchedSinceSeal);
  t.deepEqual(kv.sealed && [...kv.sealed], [...kept]);
  await kv.close({ seal: true, keep: kept });
  // An open that writes nothing and closes without a seal (an older build, a tool): the seal is broken.
  await (await open()).close();
  kv = await open();
  t.false(kv.untouchedSinceSeal);
  t.is(kv.sealed, undefined);
  await kv.close({ seal: true });
  // A seal without kept bytes: untouched, nothing kept.
  kv = await open();
  t.true(kv.untouchedSinceSeal);
  t.is(kv.sealed, undefined);
  await kv.close({ seal: true, keep: kept });
  // A seal serves one open: a crash after it (no close) leaves none.
  kv = await open();
  t.true(kv.untouchedSinceSeal);
  await kv.close();
  kv = await open();
  t.false(kv.untouchedSinceSeal);
  t.is(kv.sealed, undefined);
  await kv.close();
});

test('a snapshot this build cannot read, in a sealed folder, is dropped and the records are read', async (t) => {
  const location = await populated(t);
  const expected = await reloaded(t, location);
  for (const bad of [Uint8Array.from([0xc1]), Uint8Array.from([0x81, 0xa6, 0x66, 0x6f, 0x72, 0x6d, 0x61, 0x74, 0x02])]) {
    const kv = new LevelKv(location);
    await kv.open();
    await kv.close({ seal: true, keep: bad });
    const store = await GroupStore.open({ kv: new LevelKv(location) });
    t.deepEqual(await indexOf(store), expected);
    t.false(await exists(join(location, KEPT)));
    await store.close();
  }
});

test('a close on a full disk keeps no snapshot and leaves no seal: the next open, once space is freed, reads the records', async (t) => {
  const mount = await mountTmpfs(t, 3 * 1024 * 1024);
  if (!mount) return;
  const location = join(mount, 'group');
  let store = await GroupStore.open({ kv: new LevelKv(location) });
  await write(store, ['ann', 'bob', 'cy', 'dee', 'eve'], 'fr');
  const expected = await indexOf(store);
  const filler = await fillUp(mount);
  await store.close();
  t.false(await exists(join(location, KEPT)), 'no partial snapshot file left behind');
  await unlink(filler);
  store = await reopen(t, location);
  t.false(store.kv.untouchedSinceSeal, 'no seal: the records are read');
  t.deepEqual(await indexOf(store), expected);
});
