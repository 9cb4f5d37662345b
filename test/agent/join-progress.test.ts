/**
 * In-process agents on real sockets and LevelDB folders: the `join-progress` event a joining client
 * emits (what the simulator's progress bars follow). The total comes from the server's join plan.
 */
import test, { type ExecutionContext } from 'ava';
import type { JoinProgressEvent } from '../../agent/agent.js';
import { FaultProxy } from '../../tools/proxy.js';
import { admit, openAgent, openClient, openServer } from '../helpers/inprocess.js';

/** A value big enough that the snapshot spans several 256 KiB frames. */
const big = (user: string, variant: number) => Array.from({ length: 1200 }, (_, i) => ({ id: `${user}-${i}`, name: `entry ${i} of ${user} #${variant}`, address: `${user}.${i}.${variant}@example.com` }));

/** A server holding 12 users with big address lists, and a standalone client to join it. */
async function serverWith12Users(t: ExecutionContext) {
  const server = await openServer(t);
  const users = Array.from({ length: 12 }, (_, i) => `user${i}`);
  for (const u of users) await server.setItem('user', u, 'address-list', big(u, 0));
  return { server, users, client: await openAgent(t, 'client') };
}

test('a joining client reports the plan\'s entities received, of the total, up to done', async (t) => {
  const { server, users, client } = await serverWith12Users(t);
  // A stale copy of ten of them (replaced by the server's), and one user only the client has (uploaded).
  for (const u of users.slice(0, 10)) await client.setItem('user', u, 'address-list', big(u, 1));
  await client.setItem('user', 'own', 'language', { display: 'fr', keyboard: 'fr-FR' });

  const events: JoinProgressEvent[] = [];
  client.on('join-progress', (e) => events.push(e));
  await admit(client, server.port);

  t.deepEqual(events[0], { phase: 'waiting', entities: 0, total: 0, bytes: 0 });
  const last = events[events.length - 1]!;
  t.is(last.phase, 'done');
  t.is(last.total, 10);
  t.is(last.entities, 10);
  // 10 address lists of 1,200 entries travelled (about 0.9 MB), in more than one frame.
  t.true(last.bytes > 800_000, `${last.bytes} bytes`);
  const receiving = events.filter((e) => e.phase === 'receiving');
  t.true(receiving.length >= 3, `${receiving.length} receiving events`);
  t.true(receiving.some((e) => e.entities > 0 && e.entities < 10), 'a part-way count');
  for (let i = 1; i < events.length; i++) {
    t.true(events[i]!.entities >= events[i - 1]!.entities && events[i]!.bytes >= events[i - 1]!.bytes, `monotonic at ${i}`);
  }
  t.deepEqual(events.map((e) => e.phase).filter((p, i, a) => p !== a[i - 1]), ['waiting', 'receiving', 'applying', 'done']);
});

test('a client resuming by cursor reports no join progress', async (t) => {
  const server = await openServer(t);
  const client = await openClient(t, 'client', server);
  const events: JoinProgressEvent[] = [];
  client.on('join-progress', (e) => events.push(e));
  const live = new Promise<void>((resolve) => client.on('sync-state', (s) => s.state === 'live' && resolve()));
  await client.sleep();
  await client.wake();
  await live;
  t.deepEqual(events, []);
});

test('a join cut mid-snapshot keeps what it applied; the rejoin replaces only the rest, each lost value logged once', async (t) => {
  const { server, users, client } = await serverWith12Users(t);
  for (const u of users) await client.setItem('user', u, 'address-list', big(u, 1));
  const proxy = await FaultProxy.start({ targetPort: server.port });
  t.teardown(() => proxy.close());
  // About 0.9 MB of snapshot: the first connection is cut about half-way through it.
  proxy.cutOnceAfter('down', 450_000);

  const plans: number[] = [];
  client.on('join-progress', (e) => {
    if (e.phase === 'receiving' && (plans.length === 0 || e.entities === 0)) plans.push(e.total);
  });
  // The role change fails with the cut (the machine stays standalone); the technician runs it again.
  await t.throwsAsync(admit(client, proxy.port), { code: 'PEER_GONE' });
  t.is(client.status().role, 'standalone');
  await admit(client, proxy.port);

  for (const u of users) t.deepEqual((await client.getItems('user', u, 'address-list')).items['address-list']!.value, big(u, 0), u);
  const conflicts = await client.conflicts();
  t.deepEqual(conflicts.map((c) => c.entity).sort(), users.map((u) => `u:${u}`).sort(), 'each replaced value once');
  t.true(conflicts.every((c) => c.reason === 'join' && JSON.stringify(c.value) === JSON.stringify(big(c.entity.slice(2), 1))), 'the values the client lost');
  // The first plan replaced all 12; the rejoin's plan only those the cut left unapplied.
  t.true(plans.length >= 2, `plans ${JSON.stringify(plans)}`);
  t.is(plans[0], 12);
  t.true(plans[plans.length - 1]! > 0 && plans[plans.length - 1]! < 12, `plans ${JSON.stringify(plans)}`);
});
