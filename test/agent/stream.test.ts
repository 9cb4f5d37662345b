/**
 * In-process agents on real sockets and LevelDB folders: a stream of sequential changes, each awaited
 * on the other client. A change queued while the client was settling an ack once stayed unsent
 * (found by the benchmark); every one of these must arrive.
 */
import test from 'ava';
import { admit, openAgent, openServer, remoteChange } from '../helpers/inprocess.js';

test('300 sequential changes on one client each reach the other', async (t) => {
  const server = await openServer(t);
  const [a, b] = await Promise.all([openAgent(t, 'a'), openAgent(t, 'b')]);
  for (const c of [a, b]) await admit(c, server.port);
  const first = remoteChange(b, 'alice', 'language');
  await a.setItem('user', 'alice', 'language', { display: 'en', n: -1 });
  await b.login('alice');
  await first;
  for (let n = 0; n < 300; n++) {
    const arrived = remoteChange(b, 'alice', 'language');
    await a.setItem('user', 'alice', 'language', { display: 'en', n });
    await arrived;
  }
  const { items } = await b.getItems('user', 'alice', 'language');
  t.deepEqual(items.language!.value, { display: 'en', n: 299 });
  t.is(server.group!.itemStates('u:alice')!.get('language')!.v, server.group!.seq);
});
