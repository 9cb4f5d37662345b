/**
 * End to end: resuming after the server's database was replaced (a new epoch: checksums decide what
 * to resend), a server-client, and hostile bytes on the wire that change nothing.
 */
import { join } from 'node:path';
import test from 'ava';
import { WebSocket } from 'ws';
import { decodeMessage, encodeMessage } from '../../protocol/codec.js';
import { dataPaths } from '../../agent/config.js';
import { GroupStore } from '../../storage/group-store.js';
import { Keys } from '../../storage/keys.js';
import { LevelKv } from '../../storage/level-kv.js';
import { AgentProcess, freePort, joinClient, startServer } from '../helpers/agents.js';

test('after the server database is replaced (new epoch), a client resends only what differs', async (t) => {
  const port = await freePort();
  const { server } = await startServer(t, { port });
  const a = await AgentProcess.spawn(t, { name: 'A' });
  const list = JSON.stringify(Array.from({ length: 50 }, (_, i) => ({ name: `Contact ${i}`, email: `c${i}@example.com` })));
  for (let i = 0; i < 20; i++) await a.control('item.set', { kind: 'user', id: `u${i}`, item: 'address-list', value: JSON.parse(list) });
  await a.ok('user', 'set', 'ann', 'home', '{"tiles":1}');
  await joinClient(a, port);

  // Stop the server and replace its database history: a new epoch, ann's home as an older copy had it.
  await server.kill('SIGTERM');
  const mark = a.events.length;
  await a.waitFor((e) => e.event === 'sync-state' && e.state === 'offline', 15_000, mark);
  const store = await GroupStore.open({ kv: new LevelKv(join(server.dataDir, 'group')) });
  const base = store.itemStates('u:ann')!.get('home')!.v;
  const { outcomes } = await store.applyChanges('restore', [{ c: 0, e: 'u:ann', n: 'home', val: { tiles: 9, restored: true }, base }]);
  t.is(outcomes[0]!.status, 'applied');
  await store.setMeta({ epoch: 'replaced-epoch', epochStartSeq: store.seq });
  await store.close();
  await server.start();

  await a.waitRemote('ann', 'home', mark);
  await a.waitFor((e) => e.event === 'sync-state' && e.state === 'live', 30_000, mark);
  // The resync by checksum sent exactly the one item that differs (the 20 address lists it holds
  // matched and moved only their versions), and the client applied exactly that one.
  const { devices } = await server.control<{ devices: { name: string; sent: { deltas: number; items: number } | null }[] }>('devices.list');
  t.deepEqual(devices.find((d) => d.name === 'A')?.sent, { deltas: 0, items: 1 });
  const remote = a.events.slice(mark).filter((e) => e.event === 'item-changed' && e.source === 'remote').map((e) => `${String(e.id)} ${String(e.item)}`);
  t.deepEqual(remote, ['ann home']);
  t.deepEqual(await a.value('user', 'ann', 'home'), { tiles: 9, restored: true });
  const { conflicts } = await a.ok<{ conflicts: { entity: string; reason: string; value: unknown }[] }>('conflicts', 'list');
  t.deepEqual(conflicts.map((c) => [c.entity, c.reason, c.value]), [['u:ann', 'resync', { tiles: 1 }]]);
  // Versions were adopted: a later edit on the client is not taken for a conflict.
  const m2 = a.events.length;
  await a.ok('user', 'set', 'u5', 'address-list', '[]');
  const acked = await a.waitFor((e) => e.event === 'changes-acked' && e.queued === 0, 15_000, m2);
  t.is(acked.conflicts, 0);
  t.deepEqual(await server.value('user', 'u5', 'address-list'), []);
});

test('a server-client serves the group and is a client of itself, counted once', async (t) => {
  const sc = await AgentProcess.spawn(t, { name: 'SC' });
  const status = await sc.ok<{ role: string; port: number; client: { state: string; server: string } }>('role', 'set', 'server-client');
  t.is(status.role, 'server-client');
  t.is(status.client.state, 'live');
  t.is(status.client.server, `localhost:${status.port}`);
  const a = await AgentProcess.spawn(t, { name: 'A' });
  await joinClient(a, status.port);
  // A user of the server-client's own panel syncs like any client's.
  await sc.ok('user', 'set', 'sam', 'language', '{"display":"sv"}');
  const mark = a.events.length;
  await a.ok('login', 'sam');
  await a.waitRemote('sam', 'language', mark);
  t.deepEqual(await a.value('user', 'sam', 'language'), { display: 'sv' });
  const { devices } = await sc.ok<{ devices: { name: string; state: string }[] }>('devices', 'list');
  t.deepEqual(devices.map((d) => d.name).sort(), ['A', 'SC']);
  // Its own client does not count as a connected client for role preconditions.
  await a.ok('role', 'set', 'standalone');
  await sc.ok('role', 'set', 'standalone');
});

/** Opens a raw WebSocket to the server and returns what it receives until it closes. */
async function attack(port: number, send: (ws: WebSocket) => void): Promise<{ frames: ReturnType<typeof decodeMessage>[]; closed: boolean }> {
  const ws = new WebSocket(`ws://127.0.0.1:${port}/`, { perMessageDeflate: false });
  const frames: ReturnType<typeof decodeMessage>[] = [];
  await new Promise<void>((resolve, reject) => {
    ws.on('error', reject);
    ws.on('message', (data: Buffer) => {
      frames.push(decodeMessage(data));
      if (frames.length === 1) send(ws);
    });
    ws.on('close', () => resolve());
  });
  return { frames, closed: true };
}

test('hostile frames get a coded refusal and change nothing', async (t) => {
  const { server, port } = await startServer(t);
  const cases: [string, (ws: WebSocket) => void, string][] = [
    ['garbage', (ws) => ws.send(Buffer.from([0xc1, 0xff, 0x00])), 'FRAME_MALFORMED'],
    ['truncated map', (ws) => ws.send(Buffer.from([0x85, 0xa4])), 'FRAME_MALFORMED'],
    ['text frame', (ws) => ws.send('hello'), 'FRAME_MALFORMED'],
    ['unknown type', (ws) => ws.send(encodeMessage({ type: 'launch-missiles' } as never)), 'MESSAGE_UNKNOWN'],
    ['changes before hello', (ws) => ws.send(encodeMessage({ type: 'changes', list: [[1, 'u:x', 'home', 0, {}]] })), 'MESSAGE_UNEXPECTED'],
    ['forged hello', (ws) => ws.send(encodeMessage({ type: 'hello', body: new Uint8Array([0x80]), sig: new Uint8Array(64) })), 'MESSAGE_INVALID'],
  ];
  for (const [name, send, code] of cases) {
    const { frames } = await attack(port, send);
    t.is(frames[0]!.type, 'challenge', name);
    const refuse = frames[1];
    t.is(refuse?.type, 'refuse', name);
    t.is((refuse as { code: string }).code, code, name);
  }
  // The server is unharmed and its store unchanged.
  t.deepEqual((await server.ok<{ users: unknown[] }>('users', 'list')).users, []);
  const a = await AgentProcess.spawn(t, { name: 'A' });
  await joinClient(a, port);
  t.is((await server.ok<{ devices: unknown[] }>('devices', 'list')).devices.length, 2);
});

test('a client whose last batch was lost after the change was sent (crash before its fsync) takes the server\'s copy at reconnect', async (t) => {
  const { server, port } = await startServer(t);
  const a = await AgentProcess.spawn(t, { name: 'A' });
  await joinClient(a, port);
  let mark = a.events.length;
  await a.ok('user', 'set', 'ann', 'home', '{"n":1}');
  await a.waitFor((e) => e.event === 'changes-acked' && e.queued === 0, 15_000, mark);
  const kv = () => new LevelKv(dataPaths(a.dataDir).local);
  // The batch of the second change will be rolled back: remember the store as it was before it.
  await a.kill('SIGTERM');
  const before = kv();
  await before.open();
  const item = await before.get(Keys.item('u:ann', 'home'));
  const counter = await before.get(Keys.meta('counter'));
  await before.close();
  await a.start();
  mark = a.events.length;
  await a.ok('user', 'set', 'ann', 'home', '{"n":2}');
  await a.waitFor((e) => e.event === 'changes-acked' && e.queued === 0, 15_000, mark);
  t.deepEqual(await server.value('user', 'ann', 'home'), { n: 2 });

  // The crash: the server applied the change, the client's batch never reached its disk.
  await a.kill('SIGKILL');
  const lost = kv();
  await lost.open();
  await lost.write([{ type: 'put', key: Keys.item('u:ann', 'home'), value: item! }, { type: 'put', key: Keys.meta('counter'), value: counter! }], { sync: true });
  await lost.close();
  await a.start();
  await a.waitRemote('ann', 'home');
  t.deepEqual(await a.value('user', 'ann', 'home'), { n: 2 });
  const { entries } = await a.ok<{ entries: { code: string }[] }>('log', '--level', 'warning');
  t.true(entries.some((e) => e.code === 'RESYNC'), JSON.stringify(entries));
  // The next change gets a fresh counter: the server does not take it for a duplicate.
  mark = a.events.length;
  await a.ok('user', 'set', 'ann', 'home', '{"n":3}');
  const acked = await a.waitFor((e) => e.event === 'changes-acked' && e.queued === 0, 15_000, mark);
  t.is(acked.applied, 1);
  t.deepEqual(await server.value('user', 'ann', 'home'), { n: 3 });
});
