/**
 * Deep sleep end to end: agents as processes with a 1-second heartbeat, driven through the shell; the
 * tests await the `deep-sleep` and `sync-state` events `run --events` prints.
 */
import test from 'ava';
import type { DeviceEntry, PowerStatus } from '../../agent/agent.js';
import { AgentProcess, joinClient, startServer, type AgentEvent } from '../helpers/agents.js';

const deepSleep = (blocked: boolean) => (e: AgentEvent) => e.event === 'deep-sleep' && e.blocked === blocked;
const state = (s: string) => (e: AgentEvent) => e.event === 'sync-state' && e.state === s;

test('deep sleep is blocked while a client operates and released after a SIGKILL\'d client times out', async (t) => {
  const { server, port } = await startServer(t, { heartbeat: 1 });
  const a = await AgentProcess.spawn(t, { name: 'A', heartbeat: 1 });
  const id = String(a.ready!.deviceId);
  let mark = server.events.length;
  await joinClient(a, port);
  t.like(await server.waitFor(deepSleep(true), 15_000, mark), { blockedBy: [id] });

  const p = await server.ok<PowerStatus>('power', 'status');
  t.deepEqual(Object.keys(p).sort(), ['asleep', 'blockedBy', 'clients', 'deepSleepBlocked', 'heartbeatSeconds', 'role', 'timeoutMs']);
  t.like(p, { role: 'server', asleep: false, deepSleepBlocked: true, blockedBy: [id], heartbeatSeconds: 1, timeoutMs: 3000 });
  t.is(p.clients!.length, 1);
  const row = p.clients![0]!;
  t.like(row, { deviceId: id, name: 'A', self: false, state: 'operating', timeoutMs: 3000 });
  t.true(typeof row.lastHeartbeat === 'number' && Math.abs(row.lastHeartbeat - Date.now()) < 5000, `last heartbeat ${row.lastHeartbeat}`);
  t.is(row.expiresAt, row.lastHeartbeat! + 3000);
  t.is(typeof row.skewMs === 'number' || row.skewMs === null, true);

  // On a client, power status answers for its own client part; nothing there blocks deep sleep.
  const own = await a.ok<PowerStatus>('power', 'status');
  t.like(own, { role: 'client', asleep: false, deepSleepBlocked: false, blockedBy: [], client: { state: 'live', operating: true } });
  t.false('clients' in own);

  // Killed outright: the connection is gone at once, but the client counts until three of its
  // intervals after its last heartbeat (it might be reconnecting). Read through the control socket:
  // a shell start-up under load could outlast the 3-second timeout.
  mark = server.events.length;
  const killedAt = Date.now();
  await a.kill('SIGKILL');
  for (;;) {
    const { devices } = await server.control<{ devices: DeviceEntry[] }>('devices.list');
    if (devices.find((d) => d.id === id)!.session === null) break;
  }
  const gone = await server.control<PowerStatus>('power.status');
  t.true(gone.deepSleepBlocked, 'still blocked once the connection is gone');
  t.like(gone.clients![0], { deviceId: id, state: 'operating' });
  const expiresAt = gone.clients![0]!.expiresAt!;
  const released = await server.waitFor(deepSleep(false), 15_000, mark);
  const releasedAt = Date.now();
  t.log(`released ${releasedAt - killedAt} ms after SIGKILL (heartbeat 1 s, timeout 3 s after the last heartbeat)`);
  t.deepEqual(released.blockedBy, []);
  t.true(releasedAt >= expiresAt - 20, `released ${expiresAt - releasedAt} ms before the client's timeout`);
  t.like(await server.waitFor((e) => e.event === 'device-state' && e.deviceId === id, 1000, mark), { state: 'offline', name: 'A' });
  const { devices } = await server.ok<{ devices: { id: string; state: string; session: string | null }[] }>('devices', 'list');
  t.like(devices.find((d) => d.id === id), { state: 'offline', session: null });
});

test('power sleep and power wake: released at once, blocked again, and the client resumes by cursor', async (t) => {
  const { server, port } = await startServer(t, { heartbeat: 1 });
  const a = await AgentProcess.spawn(t, { name: 'A', heartbeat: 1 });
  const id = String(a.ready!.deviceId);
  await a.ok('user', 'set', 'kim', 'language', '{"display":"en"}');
  let mark = server.events.length;
  await joinClient(a, port);
  await server.waitFor(deepSleep(true), 15_000, mark);

  mark = server.events.length;
  let amark = a.events.length;
  const asleep = await a.ok<PowerStatus>('power', 'sleep');
  t.like(asleep, { asleep: true, client: { state: 'sleeping', operating: false } });
  await a.waitFor(state('sleeping'), 1000, amark);
  t.like(await server.waitFor(deepSleep(false), 1000, mark), { blockedBy: [] });
  const { devices } = await server.ok<{ devices: { id: string; state: string }[] }>('devices', 'list');
  t.is(devices.find((d) => d.id === id)!.state, 'sleeping');
  t.false((await server.ok<PowerStatus>('power', 'status')).deepSleepBlocked);

  // A change made on the group while A sleeps reaches it when it wakes, by cursor.
  await server.ok('user', 'set', 'kim', 'language', '{"display":"ja"}');
  mark = server.events.length;
  amark = a.events.length;
  t.like(await a.ok<PowerStatus>('power', 'wake'), { asleep: false });
  await a.waitRemote('kim', 'language', amark);
  await a.waitFor(state('live'), 15_000, amark);
  t.like(await server.waitFor(deepSleep(true), 15_000, mark), { blockedBy: [id] });
  t.deepEqual(await a.value('user', 'kim', 'language'), { display: 'ja' });
  const log = await server.ok<{ entries: { code: string; message: string; deviceId?: string }[] }>('log');
  const mine = log.entries.filter((e) => e.deviceId === id).map((e) => e.code);
  t.deepEqual(mine.slice(-2), ['SLEEPING', 'CONNECTED']);
  t.regex(log.entries.filter((e) => e.code === 'CONNECTED').at(-1)!.message, /resuming by cursor$/);
});
