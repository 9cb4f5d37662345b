/**
 * A server that comes back (after sleep, or a restart) with a full group: its nine clients reconnect
 * spread out by their jittered backoff, not in one burst, and each resumes by cursor. Agents are
 * processes; the server keeps its port across the restart.
 */
import test from 'ava';
import { AgentProcess, freePort, startServer, type AgentEvent } from '../helpers/agents.js';

const state = (s: string) => (e: AgentEvent) => e.event === 'sync-state' && e.state === s;

test('nine clients reconnect to a restarted server spread out, each resuming by cursor', async (t) => {
  t.timeout(60_000);
  const began = performance.now();
  const port = await freePort();
  const { server } = await startServer(t, { port });
  const clients = await Promise.all(Array.from({ length: 9 }, (_, i) => AgentProcess.spawn(t, { name: `c${i + 1}` })));
  // Setup through the control socket (the shell is not what is tested here, and ten node start-ups cost).
  await Promise.all(clients.map((c) => c.control('role.set', { role: 'client', server: `127.0.0.1:${port}`, user: 'admin', password: 'secret-pw' })));
  // Something in the group, so that a full resend would show.
  await clients[0]!.control('item.set', { kind: 'user', id: 'kim', item: 'address-list', value: Array.from({ length: 20 }, (_, i) => ({ name: `n${i}` })) });
  await clients[0]!.waitFor((e) => e.event === 'changes-acked' && e.queued === 0);
  const seq = (await server.ok<{ group: { seq: number } }>('status')).group.seq;

  const marks = clients.map((c) => c.events.length);
  await server.kill('SIGTERM');
  await Promise.all(clients.map((c, i) => c.waitFor(state('offline'), 15_000, marks[i])));

  // While the server is down each client retries; the attempt that succeeds is the last `connecting`
  // before `live`. Its start is taken when the event line arrives here (the test process is idle).
  const attemptAt = clients.map(() => 0);
  const live = clients.map((c, i) =>
    c.waitFor((e) => {
      if (state('connecting')(e)) attemptAt[i] = performance.now();
      return state('live')(e);
    }, 30_000, c.events.length),
  );
  const restart = await server.start();
  t.is(restart.role, 'server');
  const upAt = performance.now();
  await Promise.all(live);

  const offsets = attemptAt.map((a) => a - upAt).sort((x, y) => x - y);
  const spread = offsets.at(-1)! - offsets[0]!;
  t.log(`successful reconnect attempts, ms after the server's ready line: ${offsets.map((o) => o.toFixed(0)).join(', ')}`);
  t.log(`spread ${spread.toFixed(0)} ms`);
  t.true(spread >= 100, `all nine came back within ${spread.toFixed(0)} ms: a reconnect storm`);

  // Server side: one CONNECTED per client after the restart, each resuming by cursor, and no join.
  const { entries } = await server.ok<{ entries: { at: number; code: string; message: string; deviceId?: string }[] }>('log');
  const restartedAt = entries.filter((e) => e.code === 'SERVING').at(-1)!.at;
  const after = entries.filter((e) => e.at >= restartedAt);
  const connected = after.filter((e) => e.code === 'CONNECTED');
  t.deepEqual(connected.map((e) => e.deviceId).sort(), clients.map((c) => String(c.ready!.deviceId)).sort());
  t.true(connected.every((e) => / resuming by cursor$/.test(e.message)), connected.map((e) => e.message).join('\n'));
  t.deepEqual(after.filter((e) => e.code === 'JOINED' || e.code === 'ADMITTED'), []);
  const at = connected.map((e) => e.at);
  t.log(`server-side CONNECTED spread ${Math.max(...at) - Math.min(...at)} ms`);
  // The end of each catch-up tells the client its cursor; wait for it to be applied (a store write).
  const cursorOf = async (c: AgentProcess) => (await c.control<{ client: { cursor: number } }>('status')).client.cursor;
  const cursors = await Promise.all(
    clients.map(async (c) => {
      for (let i = 0; i < 50 && (await cursorOf(c)) < seq; i++);
      return cursorOf(c);
    }),
  );
  t.deepEqual(cursors, clients.map(() => seq), 'every client is at the server\'s seq');
  t.log(`test ran ${((performance.now() - began) / 1000).toFixed(1)} s`);
});
