/**
 * In-process agents on real sockets and LevelDB folders: a stream of sequential changes, each awaited
 * on the other client. A change queued while the client was settling an ack once stayed unsent
 * (found by the benchmark); every one of these must arrive.
 */
import { join } from 'node:path';
import test from 'ava';
import { Agent } from '../../agent/agent.js';
import { initDataDir } from '../../agent/config.js';
import { createLogger } from '../../agent/logger.js';
import { tempDir } from '../helpers/tmp.js';

const quiet = createLogger({ level: 'silent' });

async function open(t: import('ava').ExecutionContext, name: string): Promise<Agent> {
  const dataDir = join(tempDir(t), name);
  initDataDir(dataDir, { name, adminPassword: 'pw' });
  const a = await Agent.open({ dataDir, host: '127.0.0.1', port: 0, logger: quiet });
  t.teardown(() => a.close());
  await a.start();
  return a;
}

function remote(agent: Agent, id: string, item: string, what: string, timeoutMs = 5000): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${what}: no remote ${item} of ${id} within ${timeoutMs} ms (cursor ${agent.local.cursor}, state ${agent.client?.state})`)), timeoutMs);
    const on = (e: { id: string; item: string; source: string }) => {
      if (e.source === 'remote' && e.id === id && e.item === item) {
        clearTimeout(timer);
        agent.off('item-changed', on);
        resolve();
      }
    };
    agent.on('item-changed', on);
  });
}

test('300 sequential changes on one client each reach the other', async (t) => {
  const server = await open(t, 'server');
  await server.setRole('server');
  const [a, b] = await Promise.all([open(t, 'a'), open(t, 'b')]);
  for (const c of [a, b]) await c.setRole('client', { server: `127.0.0.1:${server.port}`, user: 'admin', password: 'pw' });
  const first = remote(b, 'alice', 'language', 'login fetch');
  await a.setItem('user', 'alice', 'language', { display: 'en', n: -1 });
  await b.login('alice');
  await first;
  for (let n = 0; n < 300; n++) {
    const arrived = remote(b, 'alice', 'language', `change ${n} (A queued ${a.local.queueSize}, server seq ${server.group!.seq})`);
    await a.setItem('user', 'alice', 'language', { display: 'en', n });
    await arrived;
  }
  const { items } = await b.getItems('user', 'alice', 'language');
  t.deepEqual(items.language!.value, { display: 'en', n: 299 });
  t.is(server.group!.itemStates('u:alice')!.get('language')!.v, server.group!.seq);
});
