/**
 * Fault test on a real full disk: the stores on a small tmpfs that a filler file fills up. A write that
 * fails there leaves LevelDB's log ending in a damaged record; a handle that went on appending after it
 * lost, at the next open, everything written after the disk was freed. Here the write fails, the disk is
 * freed, new changes are acknowledged, and the store opened again (as after a restart) holds every one
 * of them — for the group store, the local store and its outbound queue, in both durability modes.
 */
import { unlink } from 'node:fs/promises';
import { join } from 'node:path';
import test, { type ExecutionContext } from 'ava';
import { MfpError } from '../../protocol/errors.js';
import { GroupStore } from '../../storage/group-store.js';
import { LevelKv } from '../../storage/level-kv.js';
import { LocalStore } from '../../storage/local-store.js';
import type { Durability } from '../../storage/store.js';
import { fillUp, mountTmpfs } from '../helpers/tmpfs.js';

const TMPFS_BYTES = 3 * 1024 * 1024;
/** Bigger than a page: a write cannot fit in what is left of the log's last page. */
const BIG = 64 * 1024;

function big(tag: string): { tag: string; pad: string } {
  return { tag, pad: 'x'.repeat(BIG) };
}

function isWriteFailed(t: ExecutionContext, err: unknown, message: RegExp): void {
  t.true(err instanceof MfpError, `expected an MfpError, got ${String(err)}`);
  t.is((err as MfpError).code, 'STORE_WRITE_FAILED');
  t.regex((err as Error).message, message);
}

for (const durability of ['fsync', 'os'] as Durability[]) {
  test(`group store (${durability}): changes acknowledged after a full disk is freed are all there after reopening`, async (t) => {
    const mount = await mountTmpfs(t, TMPFS_BYTES);
    if (!mount) return;
    const dir = join(mount, 'group');
    let store = await GroupStore.open({ kv: new LevelKv(dir), durability, epoch: () => 'e' });
    t.teardown(() => store.close());
    await store.putDevice({ id: 'A', publicKey: 'pk', name: 'A', serial: 'S', location: '', software: 't', protocol: 3, capabilities: [], admittedAt: 1, lastSeen: 1, lastCounter: 0, cursor: 0 });
    let c = 0;
    const set = (tag: string, val: unknown = { tag }) => store.applyChanges('A', [{ c: ++c, e: `u:${tag}`, n: 'home', val, base: 0 }]);
    for (let i = 0; i < 5; i++) await set(`before-${i}`);
    const filler = await fillUp(mount);

    isWriteFailed(t, await t.throwsAsync(set('lost', big('lost'))), /no space left on device/i);
    t.is(store.writeError?.code, 'STORE_WRITE_FAILED');
    // Still full: refused, nothing acknowledged, and the store still reads what it held.
    isWriteFailed(t, await t.throwsAsync(set('lost-2', big('lost-2'))), /free space|no space left/i);
    t.like(await store.readItem('u:before-4', 'home'), { val: { tag: 'before-4' } });
    t.is(store.seq, 5);

    await unlink(filler);
    const acked: { tag: string; v: number }[] = [];
    for (let i = 0; i < 5; i++) {
      const { outcomes } = await set(`after-${i}`);
      t.is(outcomes[0]!.status, 'applied');
      acked.push({ tag: `after-${i}`, v: (outcomes[0] as { v: number }).v });
    }
    t.is(store.writeError, undefined, 'a successful write clears the failure');
    const seq = store.seq;
    await store.close();

    store = await GroupStore.open({ kv: new LevelKv(dir), durability });
    t.is(store.seq, seq, 'the sequence number survives');
    for (const { tag, v } of acked) t.like(await store.readItem(`u:${tag}`, 'home'), { v, val: { tag } }, tag);
    t.is(store.device('A')?.lastCounter, c, 'the device counter survives: no change is applied twice');
    t.is(await store.readItem('u:lost', 'home'), undefined);
  });

  test(`local store (${durability}): local changes and their queue entries written after a full disk is freed survive reopening`, async (t) => {
    const mount = await mountTmpfs(t, TMPFS_BYTES);
    if (!mount) return;
    const dir = join(mount, 'local');
    let store = await LocalStore.open({ kv: new LevelKv(dir), durability });
    t.teardown(() => store.close());
    await store.setLocal('me', 'u:ann', 'language', 'en', { queue: true });
    const filler = await fillUp(mount);
    isWriteFailed(t, await t.throwsAsync(store.setLocal('me', 'u:ann', 'home', big('lost'), { queue: true })), /no space left on device/i);
    await unlink(filler);
    const counters: number[] = [];
    for (let i = 0; i < 5; i++) counters.push((await store.setLocal('me', `u:user-${i}`, 'language', `l${i}`, { queue: true })).counter);
    // The first settles as the server would acknowledge it: its queue entry goes.
    const sent = await store.queued();
    await store.settle('me', [{ c: 1, status: 'applied', v: 1 }], sent);
    await store.close();

    store = await LocalStore.open({ kv: new LevelKv(dir), durability });
    for (let i = 0; i < 5; i++) t.like(await store.readItem(`u:user-${i}`, 'language'), { val: `l${i}` });
    t.deepEqual((await store.queued()).map((q) => q.c), counters, 'every acknowledged change is still queued for the server');
    t.true(store.counter >= counters.at(-1)!, 'the counter never goes back');
    t.is(await store.readItem('u:ann', 'home'), undefined);
  });
}

test('level: a full disk refuses writes but keeps reads; a read under way when the store reopens fails whole, coded', async (t) => {
  const mount = await mountTmpfs(t, TMPFS_BYTES);
  if (!mount) return;
  const kv = new LevelKv(join(mount, 'db'));
  await kv.open();
  t.teardown(() => kv.close());
  const value = (n: number) => new Uint8Array(n).fill(7);
  await kv.write([{ type: 'put', key: 'a', value: value(10) }, { type: 'put', key: 'b', value: value(10) }], { sync: true });
  const filler = await fillUp(mount);
  isWriteFailed(t, await t.throwsAsync(kv.write([{ type: 'put', key: 'c', value: value(BIG) }], { sync: true })), /no space left on device/i);
  isWriteFailed(t, await t.throwsAsync(kv.recover()), /free space/);
  t.is((await kv.get('a'))?.length, 10, 'the handle still reads');
  const iterator = kv.entries({})[Symbol.asyncIterator]();
  t.is((await iterator.next()).value?.[0], 'a');
  await unlink(filler);
  await kv.write([{ type: 'put', key: 'd', value: value(10) }], { sync: true });
  const cut = await t.throwsAsync(iterator.next());
  t.true(cut instanceof MfpError);
  t.is((cut as MfpError).code, 'STORE_CLOSED');
  t.regex(cut!.message, /reopened after a failed write.*read again/);
  const keys: string[] = [];
  for await (const [k] of kv.entries({})) keys.push(k);
  t.deepEqual(keys, ['a', 'b', 'd']);
});

test('level: opening a store on a full disk is a failed write, not a damaged store; it opens whole once there is room', async (t) => {
  const mount = await mountTmpfs(t, TMPFS_BYTES);
  if (!mount) return;
  const location = join(mount, 'db');
  const kv = new LevelKv(location);
  await kv.open();
  await kv.write([{ type: 'put', key: 'a', value: new Uint8Array(BIG).fill(1) }], { sync: true });
  await kv.close();
  const filler = await fillUp(mount);
  const again = new LevelKv(location);
  isWriteFailed(t, await t.throwsAsync(again.open()), /cannot open.*no space left on device/i);
  await unlink(filler);
  await again.open();
  t.teardown(() => again.close());
  t.is((await again.get('a'))?.length, BIG);
});
