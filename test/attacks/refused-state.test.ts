/**
 * Refused input leaves no state behind (SPEC §6). The attacker is an admitted member — a scripted device
 * with the administrator password — that floods the server with `changes` the server must refuse
 * (10,240 of them, for as many distinct users that do not exist, in frames within the limits) and with
 * logins (`fetch`) of 2,000 users that have no data. What must hold, against a real server process on
 * a real LevelDB folder, before and after a restart: the users it holds (`users list`, `status`), the
 * holds it keeps on disk, the size of its group folder and its memory (its heap after a full collection, read through the inspector) stay as they were, within a small
 * margin — and a client that logged a user in before anyone created it still receives that user's data
 * when another machine creates it.
 */
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import test from 'ava';
import { dataPaths } from '../../agent/config.js';
import { AckStatus } from '../../protocol/sync.js';
import { Keys } from '../../storage/keys.js';
import { LevelKv } from '../../storage/level-kv.js';
import { freePort, startServer, type AgentProcess } from '../helpers/agents.js';
import { INSPECTABLE, retainedHeap } from '../helpers/heap.js';
import { RawPeer } from '../helpers/raw-peer.js';

const admission = { user: 'admin', password: 'secret-pw' };
/** Refused changes per frame (within the wire's list bound) and frames: 10,240 distinct unknown users. */
const PER_FRAME = 512;
const FRAMES = 20;
const FETCHES = 2000;

/** A raw member that completed its join (nothing offered). */
async function member(port: number, localAddress: string): Promise<RawPeer> {
  const peer = await RawPeer.connect({ port, localAddress, hello: { admission } });
  peer.send({ type: 'join-offer', entities: [] });
  await peer.receive('join-plan');
  await peer.receive('snapshot');
  return peer;
}

/** Bytes of the server's group folder (what `du` counts, to the byte). */
function folderBytes(dir: string): number {
  return readdirSync(dir).reduce((sum, f) => sum + statSync(join(dir, f)).size, 0);
}


/** What the server shows of its users. */
async function users(server: AgentProcess): Promise<{ listed: string[]; count: number }> {
  const { users: list } = await server.ok<{ users: { id: string }[] }>('users', 'list');
  const status = await server.ok<{ group: { users: number } }>('status');
  return { listed: list.map((u) => u.id).sort(), count: status.group.users };
}

/** Holds and user records on disk, read from the stopped server's group folder. */
async function onDisk(server: AgentProcess): Promise<{ holds: string[]; users: string[] }> {
  const kv = new LevelKv(dataPaths(server.dataDir).group);
  await kv.open();
  const holds: string[] = [];
  const names: string[] = [];
  for await (const [k] of kv.entries(Keys.allHolds())) holds.push(Keys.split(k)[2]!);
  for await (const [k] of kv.entries(Keys.allUsers())) names.push(Keys.split(k)[1]!);
  await kv.close();
  return { holds: [...new Set(holds)].sort(), users: names.sort() };
}

/** Sends refused changes for distinct unknown users, frame by frame, each answered before the next. */
async function refusedFlood(peer: RawPeer, first: number): Promise<Set<string>> {
  const codes = new Set<string>();
  let c = first;
  for (let f = 0; f < FRAMES; f++) {
    const list = Array.from({ length: PER_FRAME }, (_, i) => [c + i, `u:ghost-${f}-${i}`, 'no-such-item', 0, { display: 'fr' }] as [number, string, string, number, unknown]);
    c += PER_FRAME;
    peer.send({ type: 'changes', list });
    const ack = await peer.receive('ack');
    for (const [, status, , why] of ack.list) codes.add(status === AckStatus.Rejected ? (why as [string, string])[0] : `status ${status}`);
  }
  return codes;
}

async function loginFlood(peer: RawPeer): Promise<number> {
  for (let i = 0; i < FETCHES; i++) peer.send({ type: 'fetch', e: `u:nobody-${i}`, have: [] });
  let items = 0;
  for (let i = 0; i < FETCHES; i++) items += (await peer.receive('snapshot')).items.length;
  return items;
}

test('10,240 refused changes and 2,000 logins of unknown users leave no state, before and after a restart', async (t) => {
  const { server, port } = await startServer(t, { port: await freePort(), nodeArgs: INSPECTABLE });
  await server.ok('user', 'set', 'ann', 'language', '{"display":"fr","keyboard":"fr-FR"}');
  await server.ok('user', 'set', 'bob', 'home', '{}');
  const group = dataPaths(server.dataDir).group;
  const peer = await member(port, '127.0.0.2');
  // The member logs in a real user: that hold is legitimate and must survive.
  peer.send({ type: 'fetch', e: 'u:ann', have: [] });
  t.is((await peer.receive('snapshot')).items.length, 1);
  // One round of each first, so what the server allocates once for any traffic is in the baseline.
  peer.send({ type: 'changes', list: [[1, 'u:warm-up', 'no-such-item', 0, 1]] });
  await peer.receive('ack');
  peer.send({ type: 'fetch', e: 'u:warm-up', have: [] });
  await peer.receive('snapshot');
  const before = { users: await users(server), bytes: folderBytes(group), heap: await retainedHeap(server) };
  t.deepEqual(before.users, { listed: ['ann', 'bob'], count: 2 });

  const codes = await refusedFlood(peer, 2);
  t.deepEqual([...codes], ['UNKNOWN_ITEM'], 'every change of the flood was refused as an unknown item');
  t.is(await loginFlood(peer), 0, 'a login of an unknown user returned data');

  const after = { users: await users(server), bytes: folderBytes(group), heap: await retainedHeap(server) };
  t.log(`group folder ${before.bytes} → ${after.bytes} bytes; heap after a full collection ${(before.heap / 2 ** 20).toFixed(1)} → ${(after.heap / 2 ** 20).toFixed(1)} MiB`);
  t.deepEqual(after.users, before.users, 'refused changes or logins created users');
  // The one trace refused input leaves on disk is the bounded conflict log (SPEC §6 keeps every refused
  // change there: at most 10,000 entries, oldest deleted); nothing else may grow.
  const { conflicts } = await server.ok<{ conflicts: { reason: string; deviceId: string }[] }>('conflicts', 'list');
  const kept = conflicts.filter((c) => c.reason === 'rejected' && c.deviceId === peer.identity.deviceId).length;
  t.true(kept <= 10_000, `${kept} refused changes kept in the conflict log, over its bound`);
  t.true(after.bytes - before.bytes < 128 * 1024 + kept * 256, `the group folder grew by ${after.bytes - before.bytes} bytes for ${kept} conflict log entries`);
  // What the server keeps in memory, garbage collected (RSS would count garbage V8 has not collected yet):
  // the original fault kept about 1 KiB per refused change, 10 MiB for this flood; a first flood adds
  // about 1.7 MiB once (compiled code, buffers), and a second one of the same size adds nothing more.
  t.true(after.heap - before.heap < 4 * 2 ** 20, `the heap keeps ${((after.heap - before.heap) / 2 ** 20).toFixed(1)} MiB more`);
  // The sync log has the refusals, one Error per frame, not one per change.
  const errors = await server.ok<{ entries: { code: string; deviceId?: string }[] }>('log', '--level', 'error');
  const refusals = errors.entries.filter((e) => e.code === 'UNKNOWN_ITEM');
  t.true(refusals.length >= FRAMES && refusals.length <= FRAMES + 1, `${refusals.length} UNKNOWN_ITEM entries for ${FRAMES} frames`);
  t.true(refusals.every((e) => e.deviceId === peer.identity.deviceId));
  await peer.close();

  await server.kill('SIGTERM');
  const disk = await onDisk(server);
  t.deepEqual(disk, { holds: ['u:ann'], users: ['ann', 'bob'] }, 'the store keeps holds or users of the refused input');
  await server.start();
  const restarted = { users: await users(server), bytes: folderBytes(group), heap: await retainedHeap(server) };
  t.log(`after a restart: group folder ${restarted.bytes} bytes; heap ${(restarted.heap / 2 ** 20).toFixed(1)} MiB`);
  t.deepEqual(restarted.users, before.users);
  t.true(restarted.bytes - before.bytes < 128 * 1024 + kept * 256, `the group folder is ${restarted.bytes - before.bytes} bytes larger after the restart`);
  t.true(restarted.heap - before.heap < 4 * 2 ** 20, `the heap after the restart is ${((restarted.heap - before.heap) / 2 ** 20).toFixed(1)} MiB above the baseline`);
});

test('a user logged in before it existed reaches that client once another machine creates it', async (t) => {
  const { port } = await startServer(t);
  const early = await member(port, '127.0.0.2');
  early.send({ type: 'fetch', e: 'u:newcomer', have: [] });
  t.deepEqual((await early.receive('snapshot')).items, [], 'the user has no data yet');
  const other = await member(port, '127.0.0.3');
  other.send({ type: 'changes', list: [[1, 'u:newcomer', 'language', 0, { display: 'de', keyboard: 'de-DE' }]] });
  const ack = await other.receive('ack');
  t.is(ack.list[0]![1], AckStatus.Applied);
  const deltas = await early.receive('deltas');
  t.deepEqual(deltas.list.map(([, e, n, val]) => [e, n, val]), [['u:newcomer', 'language', { display: 'de', keyboard: 'de-DE' }]]);
  await Promise.all([early.close(), other.close()]);
});
