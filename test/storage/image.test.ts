/**
 * Images (storage/image.ts) on real stores: a transfer computed from digests leaves the target equal
 * to the source, sends only the buckets that changed, never touches machine-local records, and a
 * transfer whose content does not match the source's digest installs nothing.
 */
import test from 'ava';
import { MfpError } from '../../protocol/errors.js';
import {
  bucketOf, bucketsToSend, ImageDigest, imageEntries, ImageReceiver, installImage, isMachineLocal, REPLICATED_KEY,
} from '../../storage/image.js';
import type { KvOp, KvStore } from '../../storage/kv.js';
import { LevelKv } from '../../storage/level-kv.js';
import { MemoryKv } from '../../storage/memory-kv.js';
import { rng } from '../../tools/bench/records.js';
import { tempDir } from '../helpers/tmp.js';

const enc = (s: string) => new TextEncoder().encode(s);

async function dump(kv: KvStore, all = false): Promise<string[]> {
  const out: string[] = [];
  for await (const [k, v] of kv.entries({})) if (all || !isMachineLocal(k)) out.push(`${k}=${Buffer.from(v).toString('hex')}`);
  return out;
}

/** A store with `users` users of a few items, a log, devices and a failed-login record. */
async function seeded(kv: KvStore, users: number, seed: number): Promise<void> {
  const r = rng(seed);
  const ops: KvOp[] = [];
  for (let u = 0; u < users; u++) {
    for (const item of ['address-list', 'language', 'job-defaults']) ops.push({ type: 'put', key: `I\x00u:user${u}\x00${item}`, value: enc(`${item}:${Math.floor(r() * 1e9)}`.repeat(1 + Math.floor(r() * 20))) });
    ops.push({ type: 'put', key: `U\x00user${u}`, value: enc(String(u)) });
    ops.push({ type: 'put', key: `L\x00${String(u).padStart(12, '0')}`, value: enc(`u:user${u}`) });
  }
  ops.push({ type: 'put', key: 'D\x00dev1', value: enc('server') }, { type: 'put', key: 'M\x00seq', value: enc(String(users)) });
  await kv.write(ops, { sync: false });
}

/** One push, in process: what the replication session does, without the socket. */
async function transfer(source: KvStore, target: KvStore): Promise<{ buckets: number; entries: number }> {
  const snap = source.snapshot();
  try {
    const src = await ImageDigest.of(snap);
    const tgt = await ImageDigest.of(target);
    const theirBuckets = new Map(tgt.bucketsDifferingFrom(new Map(src.tagList())));
    const send = bucketsToSend(src, tgt.tags, theirBuckets);
    const receiver = new ImageReceiver({ maxBytes: 1 << 30 });
    let entries = 0;
    for await (const e of imageEntries(snap, (b) => send.has(b))) {
      receiver.add([e]);
      entries++;
    }
    const ops = await receiver.installOps(target, tgt, { buckets: [...send], total: src.total, entries: src.entries });
    await target.write(ops, { sync: true });
    return { buckets: send.size, entries };
  } finally {
    await snap.close();
  }
}

for (const backend of ['memory', 'level'] as const) {
  const open = async (t: Parameters<typeof tempDir>[0], name: string): Promise<KvStore> => {
    const kv = backend === 'memory' ? new MemoryKv() : new LevelKv(`${tempDir(t)}/${name}`);
    await kv.open();
    t.teardown(() => kv.close());
    return kv;
  };

  test(`${backend}: a first transfer copies everything; a second after one change sends one bucket`, async (t) => {
    const source = await open(t, 's');
    const target = await open(t, 't');
    await seeded(source, 300, 1);
    // The target holds something of its own: a failed-login record and its note of the last run.
    await target.write([{ type: 'put', key: 'A\x00src:10.0.0.9', value: enc('3') }, { type: 'put', key: REPLICATED_KEY, value: enc('x') }, { type: 'put', key: 'I\x00u:stale\x00language', value: enc('old') }], { sync: true });
    const first = await transfer(source, target);
    t.deepEqual(await dump(target), await dump(source));
    t.is(first.entries, (await dump(source)).length);
    // Machine-local records stay as they were.
    t.deepEqual(Buffer.from((await target.get('A\x00src:10.0.0.9'))!).toString(), '3');
    t.truthy(await target.get(REPLICATED_KEY));

    const key = 'I\x00u:user7\x00language';
    await source.write([{ type: 'put', key, value: enc('changed') }], { sync: true });
    const second = await transfer(source, target);
    t.deepEqual(await dump(target), await dump(source));
    t.is(second.buckets, 1);
    t.true(second.entries < 10, `${second.entries} entries sent for one change`);
    t.true((await ImageDigest.of(source)).buckets.has(bucketOf(key)));

    // A deletion at the source is a deletion at the target; nothing sent when nothing changed.
    await source.write([{ type: 'del', key: 'I\x00u:user8\x00language' }], { sync: true });
    await transfer(source, target);
    t.deepEqual(await dump(target), await dump(source));
    const idle = await transfer(source, target);
    t.deepEqual(idle, { buckets: 0, entries: 0 });
  });

  test(`${backend}: content that does not match the source's digest is refused and nothing is installed`, async (t) => {
    const source = await open(t, 's');
    const target = await open(t, 't');
    await seeded(source, 50, 2);
    await seeded(target, 10, 3);
    const before = await dump(target, true);
    const src = await ImageDigest.of(source);
    const tgt = await ImageDigest.of(target);
    const all = [...new Set([...src.buckets.keys(), ...tgt.buckets.keys()])];
    // One value altered in transit.
    const receiver = new ImageReceiver({ maxBytes: 1 << 30 });
    let altered = false;
    for await (const [k, v] of imageEntries(source)) receiver.add([[k, altered ? v : ((altered = true), enc('evil'))]]);
    await t.throwsAsync(receiver.installOps(target, tgt, { buckets: all, total: src.total, entries: src.entries }), { instanceOf: MfpError, code: 'MESSAGE_INVALID' });
    // An entry outside the committed buckets.
    const sneaky = new ImageReceiver({ maxBytes: 1 << 30 });
    sneaky.add([['I\x00u:x\x00language', enc('x')]]);
    await t.throwsAsync(sneaky.installOps(target, tgt, { buckets: [], total: tgt.total, entries: tgt.entries }), { code: 'MESSAGE_INVALID' });
    // Machine-local records never travel; oversize is refused while staging.
    t.throws(() => new ImageReceiver({ maxBytes: 1 << 30 }).add([['A\x00acct:admin', enc('1')]]), { code: 'MESSAGE_INVALID' });
    t.throws(() => new ImageReceiver({ maxBytes: 10 }).add([['I\x00u:a\x00language', enc('x'.repeat(20))]]), { code: 'FRAME_TOO_LARGE' });
    t.deepEqual(await dump(target, true), before);
  });

  test(`${backend}: installImage replaces a whole image at once, machine-local records kept`, async (t) => {
    const source = await open(t, 's');
    const target = await open(t, 't');
    await seeded(source, 40, 4);
    await seeded(target, 60, 5);
    await target.write([{ type: 'put', key: 'A\x00acct:admin', value: enc('2') }], { sync: true });
    const entries: [string, Uint8Array][] = [];
    for await (const e of imageEntries(source)) entries.push(e);
    await installImage(target, entries);
    t.deepEqual(await dump(target), await dump(source));
    t.truthy(await target.get('A\x00acct:admin'));
  });
}
