/**
 * A burst of local changes (firmware saving many items at once) travels in few frames: changes queued
 * in the same turn of the event loop go to the server together and are answered by one acknowledgement.
 * In-process agents on real sockets and real LevelDB folders.
 */
import test from 'ava';
import type { AckSummary } from '../../agent/client.js';
import { openClient, openServer } from '../helpers/inprocess.js';

test('changes written in one turn go out together: 30 changes, at most 3 acknowledgements', async (t) => {
  const server = await openServer(t);
  const client = await openClient(t, 'client', server);

  const acks: AckSummary[] = [];
  const settled = new Promise<void>((resolve) => {
    client.on('changes-acked', (a) => {
      acks.push(a);
      if (a.queued === 0) resolve();
    });
  });
  const users = Array.from({ length: 30 }, (_, i) => `burst-${i}`);
  // One turn: every write is submitted before any of them has been stored or sent.
  await Promise.all(users.map((u, i) => client.setItem('user', u, 'language', { display: 'fr', n: i })));
  await settled;

  const changes = acks.flatMap((a) => a.changes);
  t.is(changes.length, 30, 'every change was acknowledged once');
  t.true(changes.every((c) => c.status === 'applied'));
  // The first write starts alone (the store was idle); the other 29 are written as one batch and sent as one frame.
  t.true(acks.length <= 3, `${acks.length} acknowledgements for 30 changes`);
  for (const [i, u] of users.entries()) {
    t.deepEqual((await server.getItems('user', u, 'language')).items.language!.value, { display: 'fr', n: i });
  }
});
