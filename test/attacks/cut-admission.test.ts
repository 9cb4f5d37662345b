/**
 * Attack: an interrupted first admission, then a permissive impostor. The attacker cuts the client's
 * first session right after the server's welcome (here the project's fault proxy does it), so
 * `role set client` fails with PEER_GONE; then the technician, or the attacker at the shell, points
 * the machine at another address without a password, where an impostor server that admits anyone
 * waits to collect users' data and push its own values. What must hold (SPEC §6): a machine is
 * admitted only when its first join completes, so until then it holds no pin and gets no
 * password-less connection anywhere; after a completed join every connection, to any address, must
 * present the pinned group (id and key) and is refused otherwise (GROUP_MISMATCH, GROUP_KEY_CHANGED)
 * with nothing of the users sent and nothing applied. The same holds for a replica: a first push cut
 * part-way pairs it with no group.
 */
import test from 'ava';
import { FaultProxy } from '../../tools/proxy.js';
import { AgentProcess, joinClient, startServer } from '../helpers/agents.js';
import { Impostor } from '../helpers/impostor.js';

const CONTACTS = [{ name: 'Contact', email: 'c@example.com' }];

async function impostor(t: import('ava').ExecutionContext, options: Parameters<typeof Impostor.start>[0] = {}): Promise<Impostor> {
  const i = await Impostor.start({ delta: ['alice', 'language', { display: 'xx', keyboard: 'xx' }], ...options });
  t.teardown(() => i.close());
  return i;
}

/** A machine with a user of its own, standalone. */
async function machineWithUser(t: import('ava').ExecutionContext): Promise<{ client: AgentProcess; before: unknown }> {
  const client = await AgentProcess.spawn(t, { name: 'C' });
  await client.ok('user', 'set', 'alice', 'address-list', JSON.stringify(CONTACTS));
  await client.ok('user', 'set', 'alice', 'language', JSON.stringify({ display: 'fr', keyboard: 'fr-FR' }));
  return { client, before: (await client.ok('user', 'get', 'alice')).items };
}

test('a first admission cut after the welcome leaves no pin: no password-less connection to an impostor', async (t) => {
  const { server, port } = await startServer(t);
  const { client, before } = await machineWithUser(t);
  const proxy = await FaultProxy.start({ targetPort: port });
  t.teardown(() => proxy.close());
  // Up the wire go the HTTP upgrade (0), the hello (1), then — once the welcome has arrived — the
  // join offer (2): cut the session there, before it is forwarded.
  let cuts = 0;
  proxy.on('chunk', (dir, index) => {
    if (dir === 'up' && index === 2 && cuts++ === 0) proxy.cutOnceAfter('up', 0);
  });
  const first = await client.sh('role', 'set', 'client', '--server', `127.0.0.1:${proxy.port}`, '--user', 'admin', '--password', 'secret-pw');
  t.is(cuts, 1, 'the cut happened after the welcome');
  t.not(first.code, 0);
  t.regex(first.stderr, /^error PEER_GONE: /);
  const status = await client.ok<{ role: string; client?: unknown }>('status');
  t.is(status.role, 'standalone');

  const fake = await impostor(t);
  const second = await client.sh('role', 'set', 'client', '--server', `127.0.0.1:${fake.port}`);
  t.not(second.code, 0, 'no password-less connection after a cut admission');
  t.regex(second.stderr, /^error USAGE: .*administrator account/);
  t.is(fake.log.hellos.length, 0, 'the impostor heard nothing of this machine');
  t.deepEqual(fake.log.uploads, []);
  t.deepEqual((await client.ok('user', 'get', 'alice')).items, before, 'the client store is unchanged');
  t.is((await client.ok<{ role: string }>('status')).role, 'standalone');

  // Running the admission again with the administrator account admits it (README, Admission).
  await joinClient(client, proxy.port);
  const joined = await client.ok<{ client: { state: string; groupId: string } }>('status');
  t.is(joined.client.state, 'live');
  const group = await server.ok<{ group: { groupId: string } }>('status');
  t.is(joined.client.groupId, group.group.groupId);
});

test('after a completed join, a server of another group or with another key is refused, before any user data', async (t) => {
  const { server, port } = await startServer(t);
  const { client, before } = await machineWithUser(t);
  await joinClient(client, port);
  const pinned = (await server.ok<{ group: { groupId: string } }>('status')).group.groupId;
  const joined = (await client.ok('user', 'get', 'alice')).items;
  t.deepEqual(joined, before, 'the join uploaded alice as she was');

  // Another group altogether: refused at the challenge, before this machine says anything.
  const other = await impostor(t);
  const r1 = await client.sh('role', 'set', 'client', '--server', `127.0.0.1:${other.port}`);
  t.regex(r1.stderr, /^error GROUP_MISMATCH: /);
  t.is(other.log.hellos.length, 0, 'no hello went to a server of another group');

  // The pinned group's id with another key: refused at the welcome; the hello is all it got.
  const liar = await impostor(t, { groupId: pinned });
  const r2 = await client.sh('role', 'set', 'client', '--server', `127.0.0.1:${liar.port}`);
  t.regex(r2.stderr, /^error GROUP_KEY_CHANGED: /);
  t.is(liar.log.hellos.length, 1);
  for (const fake of [other, liar]) {
    t.deepEqual(fake.log.uploads, []);
    t.deepEqual(fake.log.changes, []);
    t.is(fake.log.pushed, 0);
  }
  t.deepEqual((await client.ok('user', 'get', 'alice')).items, joined, 'nothing was applied');
  // The machine stays its server's client, live again.
  const status = await client.ok<{ role: string; client: { server: string; groupId: string } }>('status');
  t.is(status.role, 'client');
  t.is(status.client.server, `127.0.0.1:${port}`);
  t.is(status.client.groupId, pinned);
});

test('a first replication cut part-way leaves the replica unpaired: no group holds it until a copy completes', async (t) => {
  const { server } = await startServer(t);
  const replica = await AgentProcess.spawn(t, { name: 'replica' });
  const { port: replicaPort } = await replica.ok<{ port: number }>('role', 'set', 'replica');
  await server.ok('user', 'set', 'alice', 'language', JSON.stringify({ display: 'fr', keyboard: 'fr-FR' }));
  const proxy = await FaultProxy.start({ targetPort: replicaPort });
  t.teardown(() => proxy.close());
  // Up go the HTTP upgrade (0), the push's hello (1), then — after the replica's welcome — the image (2).
  let cuts = 0;
  proxy.on('chunk', (dir, index) => {
    if (dir === 'up' && index === 2 && cuts++ === 0) proxy.cutOnceAfter('up', 0);
  });
  const first = await server.sh('replication', 'start', '--to', `127.0.0.1:${proxy.port}`, '--user', 'admin', '--password', 'secret-pw');
  t.is(cuts, 1);
  t.not(first.code, 0);
  const status = await replica.ok<{ relation: unknown; last: unknown; message: string }>('replication', 'status');
  t.is(status.relation, null, 'not paired with a group whose first copy never arrived');
  t.is(status.last, null);
  t.regex(status.message, /Waiting for a server to start replication/);
  // Another group's server pairs with the administrator account; the first one is now refused.
  const { server: other } = await startServer(t, { name: 'other' });
  await other.ok('replication', 'start', '--to', `127.0.0.1:${replicaPort}`, '--user', 'admin', '--password', 'secret-pw');
  const paired = await replica.ok<{ relation: { groupId: string } }>('replication', 'status');
  t.is(paired.relation.groupId, (await other.ok<{ group: { groupId: string } }>('status')).group.groupId);
  const late = await server.sh('replication', 'start', '--to', `127.0.0.1:${replicaPort}`, '--user', 'admin', '--password', 'secret-pw');
  t.regex(late.stderr, /^error DEST_UNSUPPORTED: .*already the replication target/);
});
