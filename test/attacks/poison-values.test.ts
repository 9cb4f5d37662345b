/**
 * Poison values. The attacker gets a value into the group that some check on the way refuses: a text
 * holding `__proto__` (which the codec once refused as a whole frame, so the client reconnected
 * forever, its queue stuck behind it), a value of the wrong type or size for its item, a value nested
 * too deep, an unknown item, a malformed entity, no value at all — typed on a real client's shell, left
 * in a real client's queue by an older build, or sent by a hostile admitted device (RawPeer). What must
 * hold (SPEC §6): text is text; a change the server refuses is answered rejected with its code, leaves
 * the client's queue, is in the sync log and the conflict log on both sides, and the next change of the
 * same client goes through and reaches another client. A frame the server refuses as a whole (one over
 * the frame limit), re-sent at every session, does not make the client spin: its backoff grows and its
 * health turns red with the code.
 */
import test, { type ExecutionContext } from 'ava';
import { dataPaths } from '../../agent/config.js';
import { encodeMessage } from '../../protocol/codec.js';
import { MAX_VALUE_BYTES } from '../../protocol/limits.js';
import { LevelKv } from '../../storage/level-kv.js';
import { LocalStore } from '../../storage/local-store.js';
import { AgentProcess, joinClient, startServer, type AgentEvent } from '../helpers/agents.js';
import { RawPeer } from '../helpers/raw-peer.js';

interface Conflict { entity: string; item: string; value: unknown; reason: string; code?: string; log: string; deviceId: string }
interface LogEntry { code: string; message: string; level: string }

const acked = (pred: (e: AgentEvent) => boolean) => (e: AgentEvent) => e.event === 'changes-acked' && pred(e);

async function group(t: ExecutionContext) {
  const { server, port } = await startServer(t);
  const a = await AgentProcess.spawn(t, { name: 'a' });
  const b = await AgentProcess.spawn(t, { name: 'b' });
  await joinClient(a, port);
  await joinClient(b, port);
  return { server, port, a, b };
}

test('a value whose text holds __proto__ synchronizes like any other, both ways, and nothing waits behind it', async (t) => {
  const { server, a, b } = await group(t);
  const poison = [{ name: 'PP', email: '__proto__@example.com', note: '{"__proto__":{"admin":true}}' }];
  await b.ok('login', 'pp');
  const since = a.events.length;
  await a.ok('user', 'set', 'pp', 'address-list', JSON.stringify(poison));
  await a.ok('user', 'set', 'pp', 'language', '{"display":"fr","keyboard":"fr-FR"}');
  // Both changes are acknowledged as applied, in order, and the queue is empty.
  await a.waitFor(acked((e) => e.queued === 0 && (e.changes as { status: string }[]).every((c) => c.status === 'applied')), 15_000, since);
  t.deepEqual(await server.value('user', 'pp', 'address-list'), poison);
  await b.waitRemote('pp', 'language');
  t.deepEqual(await b.value('user', 'pp', 'address-list'), poison);
  // Set on the server: every client holding the user receives it.
  const seen = a.events.length;
  await server.ok('user', 'set', 'pp', 'home', '{"wallpaper":"__proto__"}');
  await a.waitRemote('pp', 'home', seen);
  t.deepEqual(await a.value('user', 'pp', 'home'), { wallpaper: '__proto__' });
  // No session was refused over it.
  const warnings = await server.ok<{ entries: LogEntry[] }>('log', '--level', 'warning');
  t.deepEqual(warnings.entries.filter((e) => e.code === 'MESSAGE_INVALID'), []);
  t.is((await a.ok<{ health: string }>('status')).health, 'green');
});

test('a value of the wrong type for its item is INVALID_ARGUMENT on the shell (exit 2), naming the item', async (t) => {
  const a = await AgentProcess.spawn(t, { name: 'a' });
  const r = await a.sh('user', 'set', 'pp', 'auto-print', '10');
  t.is(r.code, 2);
  t.regex(r.stderr, /INVALID_ARGUMENT/);
  t.regex(r.stderr, /auto-print/);
  // (An argument is at most 128 KiB on Linux; any string over 64 characters is refused.)
  const long = await a.sh('user', 'set', 'pp', 'screen-after-login', JSON.stringify('x'.repeat(100 * 1024)));
  t.is(long.code, 2);
  t.regex(long.stderr, /INVALID_ARGUMENT.*screen-after-login/);
  // Nothing was written.
  t.is((await a.sh('user', 'get', 'pp')).code, 7, 'NOT_FOUND');
});

test('every refusal reason of a live change is a rejected ack with its code; the session goes on', async (t) => {
  const { server, port, b } = await group(t);
  await b.ok('login', 'pp');
  const peer = await RawPeer.open({ port, localAddress: '127.0.0.2' });
  await peer.hello({ admission: { user: 'admin', password: 'secret-pw' } });
  peer.send({ type: 'join-offer', entities: [] });
  await peer.receive('join-plan');
  await peer.receive('snapshot');
  let nested: unknown = 1;
  for (let i = 0; i < 40; i++) nested = [nested];
  const poisons: [string, string, unknown, string, RegExp][] = [
    ['x:nobody', 'home', {}, 'INVALID_ARGUMENT', /malformed entity/],
    ['g:01', 'language', { display: 'fr' }, 'UNKNOWN_ITEM', /no group item named "language"/],
    ['u:pp', 'no-such-item', {}, 'UNKNOWN_ITEM', /no user item named "no-such-item"/],
    ['u:pp', 'home', { deep: nested }, 'INVALID_ARGUMENT', /nests deeper than 32/],
    ['u:pp', 'auto-print', 10, 'INVALID_ARGUMENT', /user item auto-print: .*Expected boolean/],
    ['u:pp', 'screen-after-login', 'x'.repeat(256 * 1024), 'INVALID_ARGUMENT', /screen-after-login: .*length/],
    ['u:pp', 'address-list', [{ email: 42 }], 'INVALID_ARGUMENT', /address-list: the value at \/0\/email/],
    ['u:pp', 'home', { blob: 'x'.repeat(MAX_VALUE_BYTES) }, 'VALUE_TOO_LARGE', /limit is 262144/],
  ];
  peer.send({ type: 'changes', list: [...poisons.map(([e, n, val], i) => [i + 1, e, n, 0, val] as [number, string, string, number, unknown]), [poisons.length + 1, 'u:pp', 'language', 0, { display: 'de' }]] });
  const ack = await peer.receive('ack');
  t.is(ack.list.length, poisons.length + 1);
  poisons.forEach(([, n, , code, why], i) => {
    const [c, status, , x] = ack.list[i]!;
    t.is(c, i + 1);
    t.is(status, 3, `${n} rejected`);
    t.is((x as [string, string])[0], code, n);
    t.regex((x as [string, string])[1], why);
  });
  t.is(ack.list[poisons.length]![1], 0, 'the valid change behind them is applied');
  // No value at all (MessagePack's undefined, fixext 0): hand-built, as only a hostile peer makes it.
  const head = encodeMessage({ type: 'changes', list: [[poisons.length + 2, 'u:pp', 'home', 0, null]] }, true);
  peer.sendPlain(Buffer.concat([head.subarray(0, head.length - 1), Buffer.from([0xd4, 0x00, 0x00])]));
  const none = await peer.receive('ack');
  t.deepEqual(none.list.map(([c, s, , x]) => [c, s, (x as string[])[0]]), [[poisons.length + 2, 3, 'INVALID_ARGUMENT']]);
  // The session goes on: the next change is applied and reaches another client.
  peer.send({ type: 'changes', list: [[poisons.length + 3, 'u:pp', 'home', 0, { wallpaper: 'blue' }]] });
  const next = await peer.receive('ack');
  t.is(next.list[0]![1], 0);
  await b.waitRemote('pp', 'home');
  t.deepEqual(await b.value('user', 'pp', 'home'), { wallpaper: 'blue' });
  t.deepEqual(await b.value('user', 'pp', 'language'), { display: 'de' });
  // Server side: each refusal is an Error in the sync log and an entry of the conflict log with its code.
  const errors = (await server.ok<{ entries: LogEntry[] }>('log', '--level', 'error')).entries;
  for (const [, , , code] of poisons) t.true(errors.some((e) => e.code === code && e.message.includes('change refused')), code);
  const { conflicts } = await server.ok<{ conflicts: Conflict[] }>('conflicts', 'list');
  const rejected = conflicts.filter((c) => c.reason === 'rejected' && c.deviceId === peer.identity.deviceId);
  t.deepEqual(rejected.map((c) => c.code), [...poisons.map(([, , , code]) => code), 'INVALID_ARGUMENT']);
  t.deepEqual(rejected.find((c) => c.item === 'auto-print')?.value, 10);
  // What could not be stored (too deep, too large, nothing) is kept as null: the log stays bounded.
  t.is(rejected.find((c) => c.code === 'VALUE_TOO_LARGE')?.value, null);
  await peer.close();
});

/** Stops a client, puts changes in its durable queue as an older build would have, starts it again. */
async function queueAsOlderBuild(client: AgentProcess, changes: { e: string; n: string; val: unknown }[]): Promise<void> {
  await client.kill('SIGTERM');
  const store = await LocalStore.open({ kv: new LevelKv(dataPaths(client.dataDir).local) });
  for (const c of changes) await store.setLocal('older-build', c.e, c.n, c.val, { queue: true });
  await store.close();
  await client.start();
}

test('a change an older build queued that the server refuses is rejected, leaves the queue, and is in both logs on both sides', async (t) => {
  const { server, a, b } = await group(t);
  await b.ok('login', 'pp');
  await queueAsOlderBuild(a, [{ e: 'u:pp', n: 'auto-print', val: 10 }, { e: 'u:pp', n: 'language', val: { display: 'ja' } }]);
  const done = await a.waitFor(acked((e) => e.queued === 0), 15_000);
  t.deepEqual((done.changes as { status: string }[]).map((c) => c.status), ['rejected', 'applied']);
  await b.waitRemote('pp', 'language');
  t.deepEqual(await b.value('user', 'pp', 'language'), { display: 'ja' });
  t.is((await a.ok<{ client: { queued: number } }>('status')).client.queued, 0);
  // The client's own logs: an Error naming the code, and the refused value in its conflict log.
  const errors = (await a.ok<{ entries: LogEntry[] }>('log', '--level', 'error')).entries;
  t.true(errors.some((e) => e.code === 'INVALID_ARGUMENT' && /refused a change of u:pp auto-print/.test(e.message)));
  const local = (await a.ok<{ conflicts: Conflict[] }>('conflicts', 'list')).conflicts.filter((c) => c.reason === 'rejected');
  t.deepEqual(local.map((c) => [c.log, c.item, c.value, c.code]), [['local', 'auto-print', 10, 'INVALID_ARGUMENT']]);
  // The server's.
  const onServer = (await server.ok<{ conflicts: Conflict[] }>('conflicts', 'list')).conflicts.filter((c) => c.reason === 'rejected');
  t.deepEqual(onServer.map((c) => [c.log, c.item, c.value, c.code]), [['group', 'auto-print', 10, 'INVALID_ARGUMENT']]);
  t.true((await server.ok<{ entries: LogEntry[] }>('log', '--level', 'error')).entries.some((e) => e.code === 'INVALID_ARGUMENT'));
  // And the next change of this client goes through.
  const since = b.events.length;
  await a.ok('user', 'set', 'pp', 'home', '{"wallpaper":"forest"}');
  await b.waitRemote('pp', 'home', since);
  t.deepEqual(await b.value('user', 'pp', 'home'), { wallpaper: 'forest' });
});

test('a frame the server refuses as a whole, re-sent at every session, backs off and turns health red with its code', async (t) => {
  const { a } = await group(t);
  // A queued value too large for any frame (an older build let it through): the server's ws refuses the
  // frame before reading it (close 1009), at every session.
  await queueAsOlderBuild(a, [{ e: 'u:pp', n: 'home', val: { blob: 'x'.repeat(1200 * 1024) } }]);
  const started = Date.now();
  await a.waitFor((e) => e.event === 'sync-state' && (e.error as { code?: string } | undefined)?.code === 'FRAME_TOO_LARGE', 15_000);
  // Red health naming the code once it happened three sessions in a row (backoff 0.5, 1, 2 s at most).
  let status: { health: string; healthReasons: { code: string; message: string }[] } | undefined;
  for (let i = 0; i < 100; i++) {
    status = await a.ok('status');
    if (status!.health === 'red') break;
    await new Promise((r) => setTimeout(r, 100));
  }
  t.is(status?.health, 'red');
  t.is(status?.healthReasons[0]?.code, 'FRAME_TOO_LARGE');
  t.regex(status?.healthReasons[0]?.message ?? '', /sessions in a row/);
  const errors = (await a.ok<{ entries: LogEntry[] }>('log', '--level', 'error')).entries;
  t.true(errors.some((e) => e.code === 'FRAME_TOO_LARGE' && /sessions in a row/.test(e.message)));
  // Backing off: far fewer sessions than a tight loop would make (51 in 15 s before).
  const elapsed = (Date.now() - started) / 1000;
  const sessions = a.events.filter((e) => e.event === 'sync-state' && e.state === 'live').length;
  t.true(sessions <= 3 + elapsed, `${sessions} sessions in ${elapsed.toFixed(1)} s`);
});
