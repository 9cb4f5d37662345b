/**
 * In-process agents on real sockets and LevelDB folders: the `join-progress` event a joining client
 * emits (what the simulator's progress bars follow). The total comes from the server's join plan.
 */
import test from 'ava';
import type { JoinProgressEvent } from '../../agent/agent.js';
import { admit, openAgent } from '../helpers/inprocess.js';

/** A value big enough that the snapshot spans several 256 KiB frames. */
const big = (user: string, variant: number) => Array.from({ length: 1200 }, (_, i) => ({ id: `${user}-${i}`, name: `entry ${i} of ${user} #${variant}`, address: `${user}.${i}.${variant}@example.com` }));

test('a joining client reports the plan\'s entities received, of the total, up to done', async (t) => {
  const server = await openAgent(t, 'server');
  await server.setRole('server');
  const users = Array.from({ length: 12 }, (_, i) => `user${i}`);
  for (const u of users) await server.setItem('user', u, 'address-list', big(u, 0));
  const client = await openAgent(t, 'client');
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
  const server = await openAgent(t, 'server');
  await server.setRole('server');
  const client = await openAgent(t, 'client');
  await admit(client, server.port);
  const events: JoinProgressEvent[] = [];
  client.on('join-progress', (e) => events.push(e));
  const live = new Promise<void>((resolve) => client.on('sync-state', (s) => s.state === 'live' && resolve()));
  await client.sleep();
  await client.wake();
  await live;
  t.deepEqual(events, []);
});
