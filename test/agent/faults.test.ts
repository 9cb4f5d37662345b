/**
 * Fault tests, end to end: a client behind the project's TCP fault proxy goes offline, loses an ack,
 * is killed with SIGKILL; each time nothing acknowledged or queued is lost and nothing applies twice.
 */
import test from 'ava';
import { FaultProxy } from '../../tools/proxy.js';
import { AgentProcess, joinClient, startServer, type AgentEvent } from '../helpers/agents.js';

async function proxied(t: import('ava').ExecutionContext, port: number): Promise<FaultProxy> {
  const proxy = await FaultProxy.start({ targetPort: port });
  t.teardown(() => proxy.close());
  return proxy;
}

/** Takes the proxied client offline and waits until it knows. */
async function goOffline(proxy: FaultProxy, client: AgentProcess): Promise<void> {
  const mark = client.events.length;
  proxy.refusing = true;
  proxy.cutAll();
  await client.waitFor((e) => e.event === 'sync-state' && e.state === 'offline', 15_000, mark);
}

/** Brings it back and waits until it is live again. */
async function goOnline(proxy: FaultProxy, client: AgentProcess): Promise<void> {
  const mark = client.events.length;
  proxy.refusing = false;
  await client.waitFor((e) => e.event === 'sync-state' && e.state === 'live', 30_000, mark);
}

const drained = (e: AgentEvent) => e.event === 'changes-acked' && e.queued === 0;

test('a client offline for a while catches up with only what it missed', async (t) => {
  const { server, port } = await startServer(t);
  const a = await AgentProcess.spawn(t, { name: 'A' });
  const b = await AgentProcess.spawn(t, { name: 'B' });
  const proxy = await proxied(t, port);
  await joinClient(a, port);
  await joinClient(b, proxy.port);
  // B holds 40 users with sizeable address lists.
  const list = JSON.stringify(Array.from({ length: 50 }, (_, i) => ({ name: `Contact ${i}`, email: `c${i}@example.com`, fax: `03-1234-${i}` })));
  for (let i = 0; i < 40; i++) await a.control('item.set', { kind: 'user', id: `u${i}`, item: 'address-list', value: JSON.parse(list) });
  for (let i = 0; i < 40; i++) {
    const mark = b.events.length;
    await b.control('login', { user: `u${i}` });
    await b.waitRemote(`u${i}`, 'address-list', mark);
  }
  const held = proxy.bytes.down;
  t.true(held > 40 * 2000, `B downloaded ${held} bytes while logging in 40 users`);

  await goOffline(proxy, b);
  await a.ok('user', 'set', 'u3', 'language', '{"display":"it","keyboard":"it-IT"}');
  await a.ok('user', 'set', 'u7', 'home', '{"wallpaper":"green"}');
  await a.ok('user', 'delete', 'nobody').catch(() => undefined);
  const mark = b.events.length;
  await goOnline(proxy, b);
  await Promise.all([b.waitRemote('u3', 'language', mark), b.waitRemote('u7', 'home', mark)]);
  t.deepEqual(await b.value('user', 'u3', 'language'), { display: 'it', keyboard: 'it-IT' });
  t.deepEqual(await b.value('user', 'u7', 'home'), { wallpaper: 'green' });
  const status = await b.ok<{ client: { cursor: number } }>('status');
  const sstatus = await server.ok<{ group: { seq: number } }>('status');
  t.is(status.client.cursor, sstatus.group.seq);
  // Caught up, it was sent exactly the two changes made while it was away — as deltas, nothing else —
  // and applied exactly those two.
  const { devices } = await server.control<{ devices: { name: string; sent: { deltas: number; items: number } | null }[] }>('devices.list');
  t.deepEqual(devices.find((d) => d.name === 'B')?.sent, { deltas: 2, items: 0 });
  const remote = b.events.slice(mark).filter((e) => e.event === 'item-changed' && e.source === 'remote').map((e) => `${String(e.id)} ${String(e.item)}`);
  t.deepEqual(remote.sort(), ['u3 language', 'u7 home']);
});

test('an offline edit that lost to a newer server value is kept in the conflict log', async (t) => {
  const { server, port } = await startServer(t);
  const a = await AgentProcess.spawn(t, { name: 'A' });
  const b = await AgentProcess.spawn(t, { name: 'B' });
  const proxy = await proxied(t, port);
  await joinClient(a, proxy.port);
  await joinClient(b, port);
  await a.ok('user', 'set', 'kim', 'language', '{"display":"en"}');
  const m0 = b.events.length;
  await b.ok('login', 'kim');
  await b.waitRemote('kim', 'language', m0);

  await goOffline(proxy, a);
  await a.ok('user', 'set', 'kim', 'language', '{"display":"ko"}');
  await a.ok('user', 'set', 'kim', 'home', '{"tiles":3}');
  const queued = await a.ok<{ client: { queued: number } }>('status');
  t.is(queued.client.queued, 2);
  await b.ok('user', 'set', 'kim', 'language', '{"display":"fr"}');

  const mark = a.events.length;
  await goOnline(proxy, a);
  await a.waitFor(drained, 15_000, mark);
  // Server wins for the item changed meanwhile; the other offline edit is applied.
  t.deepEqual(await a.value('user', 'kim', 'language'), { display: 'fr' });
  t.deepEqual(await server.value('user', 'kim', 'language'), { display: 'fr' });
  t.deepEqual(await server.value('user', 'kim', 'home'), { tiles: 3 });
  const local = await a.ok<{ conflicts: { log: string; entity: string; item: string; value: unknown; reason: string }[] }>('conflicts', 'list');
  t.deepEqual(local.conflicts.map((c) => [c.log, c.entity, c.item, c.reason, c.value]), [['local', 'u:kim', 'language', 'offline-edit', { display: 'ko' }]]);
  const group = await server.ok<{ conflicts: { log: string; value: unknown }[] }>('conflicts', 'list');
  t.deepEqual(group.conflicts.map((c) => [c.log, c.value]), [['group', { display: 'ko' }]]);
  // One Warning for the one change that lost, on the server and on A.
  const warnings = await server.ok<{ entries: { code: string; message: string }[] }>('log', '--level', 'warning');
  t.deepEqual(warnings.entries.filter((e) => e.code === 'CONFLICT').map((e) => e.message.replace(/version \d+/, 'version N')), ['A: offline edit of u:kim language lost to version N; kept in the conflict log']);
  const own = await a.ok<{ entries: { code: string; message: string }[] }>('log', '--level', 'warning');
  t.deepEqual(own.entries.filter((e) => e.code === 'CONFLICT').map((e) => e.message), ['1 offline edit(s) lost to newer server values; see `mfpsync conflicts list`']);
});

test('a change re-sent after a lost acknowledgement is applied once', async (t) => {
  const { server, port } = await startServer(t);
  const a = await AgentProcess.spawn(t, { name: 'A', heartbeat: 300 });
  const proxy = await proxied(t, port);
  await joinClient(a, proxy.port);
  await a.ok('user', 'set', 'lee', 'language', '{"display":"en"}');
  await a.waitFor(drained);
  const seqBefore = (await server.ok<{ group: { seq: number } }>('status')).group.seq;

  proxy.cutOnNextUp();
  const mark = a.events.length;
  const set = await a.control<{ change: number; queued: boolean }>('item.set', { kind: 'user', id: 'lee', item: 'auto-print', value: true });
  t.is(set.change, 2, 'item.set names the queued change by its counter');
  const acked = await a.waitFor(drained, 30_000, mark);
  t.is(acked.duplicates, 1, 'the re-sent change was recognised as a duplicate');
  t.is(acked.applied, 0);
  t.deepEqual(acked.changes, [{ c: 2, status: 'duplicate', v: seqBefore + 1 }], 'the ack names the change, its outcome and version');
  const seqAfter = (await server.ok<{ group: { seq: number } }>('status')).group.seq;
  t.is(seqAfter, seqBefore + 1, 'the server applied it exactly once');
  t.is(await server.value('user', 'lee', 'auto-print'), true);
  const { devices } = await server.ok<{ devices: { name: string; lastChange: number; processedChanges: number }[] }>('devices', 'list');
  t.like(devices.find((d) => d.name === 'A'), { lastChange: 2, processedChanges: 2 });
  // Both machines hold the same content for lee: the checksums a join compares are equal.
  const sum = async (agent: AgentProcess) => (await agent.ok<{ users: { id: string; checksum: string }[] }>('users', 'list', '--checksums')).users.find((u) => u.id === 'lee')!.checksum;
  t.regex(await sum(server), /\S/);
  t.is(await sum(a), await sum(server));
});

test('a change whose acknowledgement was lost, then overwritten by another machine, leaves the client with the server\'s value', async (t) => {
  // The soak's divergence (seed 11): A's change reaches the server but its ack never reaches A; B then
  // changes the same item. A resumes by checksum (the sharing scopes changed meanwhile): the join keeps
  // A's queued value through the replacement, at the server's version, and the re-sent change is
  // answered as a duplicate carrying B's value. A must take it, not keep its own value at B's version.
  const { server, port } = await startServer(t);
  const [a, b] = await Promise.all([AgentProcess.spawn(t, { name: 'A', heartbeat: 300 }), AgentProcess.spawn(t, { name: 'B' })]);
  const proxy = await proxied(t, port);
  await Promise.all([joinClient(a, proxy.port), joinClient(b, port)]);
  await a.ok('user', 'set', 'lee', 'language', '{"display":"en"}');
  await a.waitFor(drained);

  // A's change is applied by the server; the connection is cut before the ack, and A cannot come back.
  proxy.refusing = true;
  proxy.cutOnNextUp();
  const mark = a.events.length;
  await a.ok('user', 'set', 'lee', 'language', '{"display":"de"}');
  await a.waitFor((e) => e.event === 'sync-state' && e.state === 'offline', 15_000, mark);
  // (The server emits no event for a client's change: its value is read until it arrives.)
  for (let i = 0; i < 200 && (await server.value('user', 'lee', 'language') as { display: string }).display !== 'de'; i++);
  t.deepEqual(await server.value('user', 'lee', 'language'), { display: 'de' });
  // B fetches lee at login, then changes the item on top of A's value.
  let bMark = b.events.length;
  await b.ok('login', 'lee');
  await b.waitRemote('lee', 'language', bMark);
  bMark = b.events.length;
  await b.ok('user', 'set', 'lee', 'language', '{"display":"fr"}');
  t.like(await b.waitFor(drained, 15_000, bMark), { applied: 1 });

  // A scope change (clients stopped) makes A's next session resume by checksum.
  await Promise.all([a.kill('SIGTERM'), b.kill('SIGTERM')]);
  await server.ok('sharing', 'set', 'previous-settings', 'device');
  proxy.refusing = false;
  await a.start();
  const acked = await a.waitFor(drained, 30_000);
  t.like(acked, { duplicates: 1 }, 'the re-sent change was a duplicate');
  t.deepEqual(await a.value('user', 'lee', 'language'), { display: 'fr' }, "A holds B's later value");
  const item = async (agent: AgentProcess) => (await agent.control<{ items: Record<string, { version: number }> }>('item.get', { kind: 'user', id: 'lee', item: 'language' })).items.language!.version;
  t.is(await item(a), await item(server));
  const sum = async (agent: AgentProcess) => (await agent.ok<{ users: { id: string; checksum: string }[] }>('users', 'list', '--checksums')).users.find((u) => u.id === 'lee')!.checksum;
  t.is(await sum(a), await sum(server));
});

test('changes queued offline survive SIGKILL of the client and reach the server after restart', async (t) => {
  const { server, port } = await startServer(t);
  const a = await AgentProcess.spawn(t, { name: 'A' });
  const proxy = await proxied(t, port);
  await joinClient(a, proxy.port);
  await goOffline(proxy, a);
  for (let i = 0; i < 5; i++) await a.ok('user', 'set', `p${i}`, 'home', JSON.stringify({ n: i }));
  await a.kill('SIGKILL');
  proxy.refusing = false;
  await a.start();
  await a.waitFor(drained, 30_000);
  for (let i = 0; i < 5; i++) t.deepEqual(await server.value('user', `p${i}`, 'home'), { n: i });
});

test('a server stops serving with clients connected only when forced', async (t) => {
  const { server, port } = await startServer(t);
  const a = await AgentProcess.spawn(t, { name: 'A' });
  await joinClient(a, port);
  const refused = await server.sh('role', 'set', 'standalone');
  t.is(refused.code, 6);
  t.regex(refused.stderr, /^error CLIENTS_ACTIVE: /);
  t.like(refused.json, { error: { code: 'CLIENTS_ACTIVE' } });
  t.is((await server.ok<{ role: string }>('status')).role, 'server');
  const mark = a.events.length;
  await server.ok('role', 'set', 'standalone', '--force');
  await a.waitFor((e) => e.event === 'sync-state' && e.state === 'offline', 15_000, mark);
  // The client keeps working from its local store.
  await a.ok('user', 'set', 'zed', 'home', '{}');
  t.is((await a.ok<{ client: { queued: number } }>('status')).client.queued, 1);
});
