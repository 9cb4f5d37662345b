/**
 * The seed document's procedures for changing machines, end to end with real processes and a real
 * Samba share: (1) replace the server by one of its clients through a network backup; (3) replace a
 * dead client, freeing its slot on the server. (Procedure 2, by the replication target or a recovery,
 * is in replication.test.ts.) Role changes enforce their preconditions with coded errors.
 */
import test from 'ava';
import { userRecord } from '../../tools/bench/records.js';
import { FaultProxy } from '../../tools/proxy.js';
import { AgentProcess, joinClient, startServer } from '../helpers/agents.js';
import { startSamba } from '../helpers/samba.js';

type Err = { error: { code: string } };
const ITEMS = ['address-list', 'job-defaults', 'language'] as const;

async function own(client: AgentProcess, users: string[], variant: number): Promise<void> {
  for (const u of users) {
    await client.ok('login', u);
    const rec = userRecord(u, variant);
    for (const item of ITEMS) await client.control('item.set', { kind: 'user', id: u, item, value: rec[item] });
  }
}

/** Polls a client's status until its outbound queue is empty (every change acknowledged). */
async function settled(client: AgentProcess): Promise<void> {
  const deadline = Date.now() + 15_000;
  while ((await client.ok<{ client: { queued: number } }>('status')).client.queued > 0) {
    if (Date.now() > deadline) throw new Error(`${client.options.name} did not settle`);
  }
}

async function snapshotOf(agent: AgentProcess, users: string[]): Promise<Record<string, unknown>> {
  const out: Record<string, unknown> = {};
  for (const u of users) for (const item of ITEMS) out[`${u}/${item}`] = await agent.value('user', u, item);
  return out;
}

test('procedure 1: the server is replaced by one of its clients through a backup on an SMB share', async (t) => {
  const smb = await startSamba(t, { shares: [{ name: 'backups' }] });
  if (!smb) return;
  const url = `smb://${smb.host}:${smb.port}/backups`;
  const { server, port } = await startServer(t);
  const [c1, c2] = await Promise.all([AgentProcess.spawn(t, { name: 'c1' }), AgentProcess.spawn(t, { name: 'c2' })]);
  await joinClient(c1, port);
  await joinClient(c2, port);
  const users1 = ['ann', 'ben', 'cat'];
  const users2 = ['dan', 'eve'];
  await own(c1, users1, 1);
  await own(c2, users2, 2);
  await c2.ok('login', 'ann');
  // Settled: everything the clients wrote is on the server.
  const all = [...users1, ...users2];
  for (const c of [c1, c2]) await settled(c);
  // The server's copy (send destinations are blanked there: they stay on each machine) and the client's own.
  const expected = await snapshotOf(server, all);
  const onC2 = await snapshotOf(c2, users2);

  // A server with clients connected does not stop serving unless forced.
  t.is(((await server.sh('role', 'set', 'standalone')).json as Err).error.code, 'CLIENTS_ACTIVE');
  // 1. stop the clients; 2. back up to the share; 3. stop the server.
  await c1.kill('SIGTERM');
  await c2.kill('SIGTERM');
  await server.ok('backup', '--to', url, '--user', smb.user, '--password', smb.password);
  await server.kill('SIGTERM');
  // 4. start the first client as the new server; 5. restore.
  await c1.start();
  const promoted = await c1.ok<{ port: number }>('role', 'set', 'server');
  // The group administrator's account opens the backup's group key on the machine that was a client.
  await c1.ok('restore', '--from', url, '--share-user', smb.user, '--share-password', smb.password, '--user', 'admin', '--password', 'secret-pw');
  t.deepEqual(await snapshotOf(c1, all), expected, 'every user\'s data is intact on the new server');
  // 6. start the clients: the other one, repointed to the new address, resumes by checksum.
  const counter = await FaultProxy.start({ targetPort: promoted.port });
  t.teardown(() => counter.close());
  await c2.start();
  const status = await c2.ok<{ client: { state: string } }>('role', 'set', 'client', '--server', `127.0.0.1:${counter.port}`);
  t.is(status.client.state, 'live');
  t.log(`bytes on the wire for the client's resume after the switch: ${counter.bytes.up + counter.bytes.down}`);
  t.deepEqual(await snapshotOf(c2, users2), onC2, 'the client kept every value of its users');
  // And it keeps synchronizing through the new server.
  const mark = c2.events.length;
  await c1.ok('user', 'set', 'dan', 'language', '{"display":"pt","keyboard":"pt-BR"}');
  await c2.waitRemote('dan', 'language', mark);
  t.deepEqual(await c2.value('user', 'dan', 'language'), { display: 'pt', keyboard: 'pt-BR' });
});

test('procedure 3: a dead client is removed from the server and its replacement joins in its slot', async (t) => {
  const { server, port } = await startServer(t);
  const dead = await AgentProcess.spawn(t, { name: 'dead' });
  await joinClient(dead, port);
  await own(dead, ['zoe'], 3);
  await settled(dead);
  const zoe = await server.value('user', 'zoe', 'address-list');
  const deadId = String(dead.ready!.deviceId);
  await dead.kill('SIGKILL');
  // It still holds its slot until removed on the server.
  const listed = await server.ok<{ devices: { id: string }[] }>('devices', 'list');
  t.true(listed.devices.some((d) => d.id === deadId));
  await server.ok('devices', 'remove', deadId);
  t.false((await server.ok<{ devices: { id: string }[] }>('devices', 'list')).devices.some((d) => d.id === deadId));
  // The replacement joins and gets the user's data at login.
  const fresh = await AgentProcess.spawn(t, { name: 'fresh' });
  await joinClient(fresh, port);
  await fresh.ok('login', 'zoe');
  t.deepEqual(await fresh.value('user', 'zoe', 'address-list'), zoe);
  // The dead machine, if it comes back, is refused until re-admitted.
  await dead.start();
  const back = await dead.waitFor((e) => e.event === 'sync-state' && (e as { error?: { code: string } }).error?.code === 'DEVICE_REMOVED');
  t.truthy(back);
});
